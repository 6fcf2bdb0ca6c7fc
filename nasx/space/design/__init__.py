"""Design spaces: a genotype template in which any field may be a distribution.

A design-space file (``search_spaces/NAME.yaml``)::

    name: macro-cifar
    description: one line or a paragraph
    contains: [resnet20_cifar, resnet56_cifar]   # zoo networks that are points of the space (tested)
    shared:                                      # optional: named sub-templates sampled once per point
      cells: {kind: cell, normal: ..., reduce: ...}
    template:                                    # a Network written as a genotype, with holes
      stem:
        - {kind: conv, out: {choice: [16, 32, 64]}, kernel: 3}
      stages:
        - block: {choice: [{kind: conv}, {kind: residual, se: {choice: [0.0, 0.25]}}], labels: [conv, residual]}
          depth: {int: [1, 18]}
          channels: {int: [16, 128], step: 16}
        - {choice: [null, {block: {shared: cells}, depth: 2, channels: 64, stride: 2}]}  # an optional stage

Template syntax. Any value may be replaced by a *distribution*, a mapping with one of these keys:

``{choice: [a, b, ...], labels: [la, lb, ...]}``
    One of the options. Options are values or whole sub-templates (which may hold distributions
    themselves: these are conditional parameters). ``labels`` (optional) names the options.
``{int: [lo, hi], step: 1, log: false}`` / ``{float: [lo, hi], step: null, log: false}``
    A number in ``[lo, hi]`` (both inclusive), on the grid ``lo + k * step`` when a step is given;
    ``log`` samples log-uniformly (optuna's rules: not with a step, and ``lo > 0``).
``{shared: NAME}``
    The value of the sub-template ``shared.NAME``, drawn once per point however often it is used
    (the NASNet cell pair that every stage of a network runs).

Two rules of the template language go beyond the genotype's:

- **An item of a list that comes out as ``null`` is left out**, so ``{choice: [null, X]}`` in a
  list is an optional item: an optional stage, an optional node of a cell.
- **Consecutive optional items of one template are a count**: in ``[X, *more, *more, *more]`` with
  ``more: {choice: [null, X]}``, an item is drawn only when the one before it is there, so the list
  holds one to four X's and each length has one spelling (``sample`` and ``encode`` stay inverse).
  Its parameters carry that condition: ``blocks.3`` is drawn when ``blocks.2`` is ``X``'s label.
- **A cell's ``concat`` may be the keyword ``all`` (every node) or ``unused`` (the nodes no other
  node reads)** in any mapping that also has ``nodes``; DARTS cells concatenate all nodes,
  NASNet's and AmoebaNet's the unused ones.

Parameter names are field paths: mapping keys and list indices joined by dots, e.g. ``stem.0.out``,
``stages.2.block.groups``. A choice among sub-templates is a parameter of its own (its value is the
option's label, or its index when there are no labels), and a parameter inside option ``K`` of the
choice named ``P`` is named ``P[K].rest``: ``stages.0[repeat].block[basic].shortcut``. Such a
parameter is drawn only when its branch is chosen, and two branches never share a name, so every
name always has one distribution. A choice among plain values (numbers, strings, bools, null, no
labels) suggests the values themselves. Parameters of a shared sub-template are named from its
name: ``cells.normal.nodes.3.0.op``.

``sample(trial)`` fills the holes from anything with optuna's ``suggest_categorical``,
``suggest_int`` and ``suggest_float`` (an optuna trial, ``optuna.trial.FixedTrial``, or the
seeded stand-in used by :meth:`DesignSpace.random`); this package never imports optuna.
Some combinations of values may make an invalid genotype (a ``pad`` shortcut that would reduce
the width, channels not divisible by groups): ``sample`` then raises :class:`InfeasibleSample`
with the parameters and the genotype's rule, for the search to record the trial as infeasible.
``encode(network)`` gives the parameters that select a network, so that
``space.sample(FixedTrial(space.encode(g))) == g``.

The package, along its seams (each module imports only those above it):

- :mod:`~nasx.space.design.distributions`: :class:`Param`, its distributions, :class:`SpaceSize`, :class:`Trial`;
- :mod:`~nasx.space.design.template`: the template's nodes, parsing and checking them, their parameters and size;
- :mod:`~nasx.space.design.sample`: drawing values (a trial, a seeded RNG, fixed parameters);
- :mod:`~nasx.space.design.encode`: matching a genotype against the template;
- :mod:`~nasx.space.design.space`: :class:`DesignSpace`, the design-space file, the shipped spaces.

Every public name is re-exported here: import from ``nasx.space.design``.
"""

# Each module's public names, as the one-file module had them (no module sets __all__).
# ruff: noqa: F403, F405
from nasx.space.design.distributions import *
from nasx.space.design.encode import *
from nasx.space.design.sample import *
from nasx.space.design.space import *
from nasx.space.design.template import *

__all__ = [
    "CONCAT_KEYWORDS",
    "FLOAT_POINTS",
    "Categorical",
    "DesignSpace",
    "Distribution",
    "FloatRange",
    "IntRange",
    "Param",
    "SpaceSize",
    "Trial",
    "concat_states",
    "load_space",
    "space_names",
    "spaces_dir",
]
