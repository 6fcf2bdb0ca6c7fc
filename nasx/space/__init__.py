"""Networks as data: the genotype language and design spaces. Imports neither torch nor optuna.

:mod:`~nasx.space.ops` names every op and block kind, :mod:`~nasx.space.genotype` is the
language, :mod:`~nasx.space.compact` its one-line string form, :mod:`~nasx.space.design` the
design spaces and :mod:`~nasx.space.scale` the narrower, shallower proxy of a network. Everything
in the genotype's ``__all__`` (every block class too) is importable from here.
"""

# ruff: noqa: F403, F405
from nasx.space import (
    compact,  # noqa: F401  (installs Network's string form: compact imports genotype, never the reverse)
    genotype,
)
from nasx.space.design import DesignSpace, Param, load_space, space_names
from nasx.space.genotype import *
from nasx.space.ops import Act, CellOp, Classifier, Kind, Norm, PoolOp, Shortcut, StepOp, Variant

__all__ = [
    *genotype.__all__,
    "Act",
    "CellOp",
    "Classifier",
    "DesignSpace",
    "Kind",
    "Norm",
    "Param",
    "PoolOp",
    "Shortcut",
    "StepOp",
    "Variant",
    "load_space",
    "space_names",
]
