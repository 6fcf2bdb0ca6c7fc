"""The genotype language: a network as a small, frozen, typed value.

A :class:`Network` is ``input``, ``stem`` (a list of blocks), ``stages`` and ``head``. A stage
is either a block template repeated ``depth`` times at ``channels`` output channels (the first
block takes the stage's ``stride``), or an explicit ``blocks`` list. Each block kind is a
frozen pydantic model with a ``kind`` tag (see :class:`nasx.space.ops.Kind`).

Values are *canonical*: anything implied by other fields (same-padding, a pool's stride equal
to its kernel, a variant's default expansion) is stored as ``None``, so two spellings of one
network compare equal and share a digest. Equality, hashing and the digest ignore ``name`` and
``reference``: a found network that equals ResNet-20 *is* ResNet-20.

No torch here: shapes are inferred arithmetically, which is also how invalid networks
(spatial size below 1, channels not divisible by groups) are rejected before anything is built.

The package, along its seams (each module imports only those above it):

- :mod:`~nasx.space.genotype.base`: limits, constrained field types, :class:`Shape`, window arithmetic;
- :mod:`~nasx.space.genotype.plain`: conv, pool, mlpconv, residual;
- :mod:`~nasx.space.genotype.dense`: dense, transition, separable, fire, mbconv;
- :mod:`~nasx.space.genotype.inception`: branches of steps, inception, inception_residual;
- :mod:`~nasx.space.genotype.cell`: micro cells, fractal blocks, auxiliary heads;
- :mod:`~nasx.space.genotype.network`: the ``Block`` union, input, stages, head, :class:`Network`.

Every public name of every module is re-exported here (a new block kind needs no entry): import from
``nasx.space.genotype``. ``__all__`` lists the genotype's own vocabulary, every block class included.
"""

# Each module's public names, as the one-file module had them (no module sets __all__).
# ruff: noqa: F403, F405
from nasx.space.genotype.base import *
from nasx.space.genotype.cell import *
from nasx.space.genotype.dense import *
from nasx.space.genotype.inception import *
from nasx.space.genotype.network import *
from nasx.space.genotype.network import BLOCK_TYPES
from nasx.space.genotype.plain import *

__all__ = [
    "BLOCK_TYPES",
    "AuxHead",
    "Block",
    "Cell",
    "CellEdge",
    "ConvStep",
    "ForkStep",
    "Head",
    "Input",
    "Network",
    "PoolStep",
    "Shape",
    "Stage",
    "cell_lines",
    "drop_path_schedule",
    "load_network",
    "se_hidden",
    *(block.__name__ for block in BLOCK_TYPES.values()),  # every block kind's class
]
