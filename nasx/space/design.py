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
seeded stand-in used by :meth:`DesignSpace.random`); this module never imports optuna.
Some combinations of values may make an invalid genotype (a ``pad`` shortcut that would reduce
the width, channels not divisible by groups): ``sample`` then raises :class:`InfeasibleSample`
with the parameters and the genotype's rule, for the search to record the trial as infeasible.
``encode(network)`` gives the parameters that select a network, so that
``space.sample(FixedTrial(space.encode(g))) == g``.
"""

from __future__ import annotations

import difflib
import math
import os
import random as _random
import re
from collections.abc import Iterator
from collections.abc import Sequence as _Seq
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol, get_args, get_origin

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from nasx.errors import GenotypeError, InfeasibleSample, NotInSpaceError, SpaceError, Wording, field_problems
from nasx.space.genotype import Cell, CellEdge, ForkStep, Network, minimal_dict
from nasx.space.ops import CellOp, parse_cell_op
from nasx.types import Frozen
from nasx.yamlfiles import YamlProblem, nesting_problem, read_text
from nasx.yamlfiles import parse as parse_yaml

_HERE = Path(__file__).resolve().parent.parent

#: How many values an unstepped float range counts for in :meth:`DesignSpace.size` (an estimate).
FLOAT_POINTS = 100
CONCAT_KEYWORDS = ("all", "unused")
_DIST_KEYS: dict[str, tuple[str, ...]] = {
    "choice": ("choice", "labels"),
    "int": ("int", "step", "log"),
    "float": ("float", "step", "log"),
    "shared": ("shared",),
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*\Z")

Scalar = None | bool | int | float | str
_NO = object()


class Trial(Protocol):
    """What :meth:`DesignSpace.sample` needs of a trial: optuna's three suggest methods."""

    def suggest_categorical(self, name: str, choices: _Seq[Any]) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...


# ==== distributions (public: what `params()` reports) ==========================================


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (plain values, option labels, or option indices)."""

    choices: tuple[Scalar, ...]

    def __str__(self) -> str:
        return "choice of " + ", ".join(_show(c) for c in self.choices)

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))


@dataclass(frozen=True)
class IntRange:
    """An int in ``[lo, hi]`` on the grid ``lo + k * step``, log-uniform when ``log``."""

    lo: int
    hi: int
    step: int = 1
    log: bool = False

    def count(self) -> int:
        return (self.hi - self.lo) // self.step + 1

    def holds(self, v: Any) -> bool:
        return _is_int(v) and self.lo <= v <= self.hi and (v - self.lo) % self.step == 0

    def __str__(self) -> str:
        return f"int [{self.lo}, {self.hi}]" + (f" step {self.step}" if self.step != 1 else "") + (" log" if self.log else "")

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.lo, self.hi, step=self.step, log=self.log)


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[lo, hi]``, on the grid ``lo + k * step`` when ``step`` is given, log-uniform when ``log``."""

    lo: float
    hi: float
    step: float | None = None
    log: bool = False

    def count(self) -> int | None:
        """Grid points, or None for a continuous range."""
        return None if self.step is None else round((self.hi - self.lo) / self.step) + 1

    def holds(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        tol = 1e-9 * max(1.0, abs(self.hi), abs(self.lo))
        if not self.lo - tol <= v <= self.hi + tol:
            return False
        if self.step is None:
            return True
        k = (v - self.lo) / self.step
        return abs(k - round(k)) < 1e-6

    def __str__(self) -> str:
        return f"float [{self.lo:g}, {self.hi:g}]" + (f" step {self.step:g}" if self.step else "") + (" log" if self.log else "")

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.lo, self.hi, step=self.step, log=self.log)


Distribution = Categorical | IntRange | FloatRange


@dataclass(frozen=True)
class Param:
    """A parameter of a space: its name, distribution, and when it is drawn.

    ``condition``: the ``(choice parameter, value)`` pairs that must all hold for it to be drawn;
    ``shared``: the shared sub-template it belongs to (drawn when that one is used).
    """

    name: str
    distribution: Distribution
    condition: tuple[tuple[str, Scalar], ...] = ()
    shared: str | None = None

    def active(self, params: dict[str, Any]) -> bool:
        """Whether this parameter is drawn for a point whose parameters are ``params``."""
        return all(name in params and _same_scalar(params[name], value) for name, value in self.condition)

    def __str__(self) -> str:
        when = " and ".join(f"{n} = {_show(v)}" for n, v in self.condition)
        return f"{self.name}: {self.distribution}" + (f"  (when {when})" if when else "")


@dataclass(frozen=True)
class SpaceSize:
    """How many points a space has: exact when ``exact``, else an estimate in which every unstepped
    float range counts for :data:`FLOAT_POINTS` values. Points are parameter assignments: a few may
    select the same network, and some may be infeasible."""

    points: int
    exact: bool

    @property
    def log10(self) -> float:
        return math.log10(self.points)

    def __str__(self) -> str:
        if self.points < 10**6:
            text = str(self.points)
        else:  # by its log: a space of many optional sub-templates can pass float's 1.8e308
            exponent = math.floor(self.log10)
            text = f"{10 ** (self.log10 - exponent):.3f}e+{exponent:02d}"
        return text + ("" if self.exact else f" (estimate: {FLOAT_POINTS} values per float range)")


# ==== template nodes ============================================================================


@dataclass(frozen=True)
class _Const:
    value: Scalar


@dataclass(frozen=True)
class _Failed(_Const):
    """What the parser leaves where a value was malformed (the problem is already reported)."""


@dataclass(frozen=True)
class _Map:
    fields: tuple[tuple[str, _Node], ...]


@dataclass(frozen=True)
class _List:
    items: tuple[_Node, ...]
    #: ``chained[i]``: item i is an optional item of the same template as the optional item before it
    #: (a count, see the module docstring): drawn only when item i - 1 is there.
    chained: tuple[bool, ...] = ()

    def is_chained(self, i: int) -> bool:
        return bool(self.chained) and self.chained[i]


def _optional_one(node: _Node) -> bool:
    """``{choice: [null, X]}``: an optional item of one template."""
    return isinstance(node, _Choice) and len(node.options) == 2 and node.options[0] == _Const(None)


def _chain(items: tuple[_Node, ...]) -> tuple[bool, ...]:
    flags = tuple(i > 0 and _optional_one(x) and _optional_one(items[i - 1]) and x == items[i - 1] for i, x in enumerate(items))
    return flags if any(flags) else ()


@dataclass(frozen=True)
class _Choice:
    options: tuple[_Node, ...]
    labels: tuple[str, ...] | None = None

    @property
    def plain(self) -> bool:
        """A choice among plain values, which suggests the values themselves."""
        return self.labels is None and all(isinstance(o, _Const) for o in self.options)

    @property
    def choices(self) -> tuple[Scalar, ...]:
        if self.labels is not None:
            return self.labels
        if self.plain:
            return tuple(o.value for o in self.options)  # type: ignore[union-attr]
        return tuple(range(len(self.options)))

    def index(self, picked: Any, name: str) -> int:
        for k, c in enumerate(self.choices):
            if _same_scalar(c, picked):
                return k
        raise SpaceError([(name, f"the trial gave {_show(picked)}, which is not one of {list(self.choices)}")])

    def branch(self, name: str, k: int) -> str:
        return f"{name}[{self.choices[k] if self.labels is not None else k}]"


@dataclass(frozen=True)
class _Range:
    dist: IntRange | FloatRange


@dataclass(frozen=True)
class _Shared:
    name: str


_Node = _Const | _Map | _List | _Choice | _Range | _Shared


def _join(name: str, key: str | int) -> str:
    return f"{name}.{key}" if name else str(key)


def _sub(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _same_scalar(a: Any, b: Any) -> bool:
    """Equality that keeps bools apart from ints (``True == 1`` in Python, not here)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is b
    return bool(a == b)


def _show(v: Any) -> str:
    if isinstance(v, Cell):
        text = repr(v.to_string())
    elif isinstance(v, BaseModel):
        text = str(minimal_dict(v))
    elif isinstance(v, StrEnum):
        text = repr(v.value)
    elif isinstance(v, tuple):
        text = str([_plain(x) for x in v])
    elif v is None:
        text = "null"
    else:
        text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 100 else text[:97] + "..."


def _plain(v: Any) -> Any:
    if isinstance(v, StrEnum):
        return v.value
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, BaseModel):
        return _show(v)
    return v


# ==== parsing and checking a template ============================================================


class _Parser:
    """Raw YAML data -> template nodes, collecting every problem with its path."""

    def __init__(self, shared_names: set[str]) -> None:
        self.shared_names = shared_names
        self.problems: list[tuple[str, str]] = []
        self.in_shared = False

    def fail(self, path: str, message: str) -> _Const:
        self.problems.append((path, message))
        return _Failed(None)

    def node(self, raw: Any, path: str) -> _Node:
        if isinstance(raw, dict):
            kinds = [k for k in _DIST_KEYS if k in raw]
            if len(kinds) > 1:
                return self.fail(path, f"a value holds one distribution, got keys {', '.join(kinds)}")
            if kinds:
                return self._distribution(kinds[0], raw, path)
            return self._map(raw, path)
        if isinstance(raw, list):
            items = tuple(self.node(x, f"{path}[{i}]") for i, x in enumerate(raw))
            return _List(items, _chain(items))
        if raw is None or isinstance(raw, bool | int | float | str):
            if isinstance(raw, float) and not math.isfinite(raw):
                return self.fail(path, f"numbers must be finite, got {raw}")
            return _Const(raw)
        return self.fail(path, f"a template value is a mapping, list, number, string, bool or null, got {type(raw).__name__}")

    def _map(self, raw: dict[Any, Any], path: str) -> _Map:
        fields: list[tuple[str, _Node]] = []
        for key, value in raw.items():
            if not isinstance(key, str) or not _IDENT.match(key):
                self.fail(path, f"field names are identifiers, got {key!r}")
                continue
            fields.append((key, self.node(value, f"{path}.{key}")))
        return _Map(tuple(fields))

    def _distribution(self, kind: str, raw: dict[str, Any], path: str) -> _Node:
        unknown = [k for k in raw if k not in _DIST_KEYS[kind]]
        if unknown:
            article = "an" if kind == "int" else "a"
            allowed = ", ".join(_DIST_KEYS[kind])
            return self.fail(path, f"unknown key {unknown[0]!r} in {article} {kind} distribution (allowed: {allowed})")
        if kind == "choice":
            return self._choice(raw, path)
        if kind == "shared":
            return self._shared(raw["shared"], path)
        return self._int(raw, path) if kind == "int" else self._float(raw, path)

    def _choice(self, raw: dict[str, Any], path: str) -> _Node:
        opts = raw["choice"]
        if not isinstance(opts, list) or not opts:
            return self.fail(path, f"choice needs a non-empty list of options, got {opts!r}")
        options = tuple(self.node(o, f"{path}.choice[{i}]") for i, o in enumerate(opts))
        labels = raw.get("labels")
        if labels is not None:
            if not isinstance(labels, list) or len(labels) != len(opts):
                return self.fail(f"{path}.labels", f"needs one label per option ({len(opts)}), got {labels!r}")
            bad = [x for x in labels if not isinstance(x, str) or not _LABEL.match(x)]
            if bad:
                return self.fail(f"{path}.labels", f"labels are words (letters, digits, _ and -), got {bad[0]!r}")
            if len(set(labels)) != len(labels):
                return self.fail(f"{path}.labels", f"labels must be distinct, got {labels}")
        choice = _Choice(options, tuple(labels) if labels is not None else None)
        if choice.plain:
            values = choice.choices
            for i, a in enumerate(values):
                twin = next((b for b in values[:i] if _same_scalar(a, b) or (a is not None and b is not None and a == b)), _NO)
                if twin is not _NO:  # optuna finds a value by ==, so 1, 1.0 and true are one option to it
                    both = f"{_show(twin)} and {_show(a)}"
                    return self.fail(path, f"choice options must be distinct (by ==, as optuna compares them), got {both}")
        return choice

    def _bounds(self, raw: dict[str, Any], kind: str, path: str, check: Any) -> tuple[Any, Any] | None:
        bounds = raw[kind]
        finite = isinstance(bounds, list) and all(not isinstance(b, float) or math.isfinite(b) for b in bounds)
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(check(b) for b in bounds) or not finite:
            self.fail(path, f"{kind} range is [lo, hi] with {kind} bounds, got {bounds!r}")
            return None
        lo, hi = bounds
        if lo > hi:
            self.fail(path, f"{kind} range needs lo <= hi, got [{lo}, {hi}]")
            return None
        return lo, hi

    def _int(self, raw: dict[str, Any], path: str) -> _Node:
        bounds = self._bounds(raw, "int", path, _is_int)
        step, log = raw.get("step", 1), raw.get("log", False)
        if bounds is None:
            return _Failed(None)
        lo, hi = bounds
        if not _is_int(step) or step < 1:
            return self.fail(f"{path}.step", f"an int range's step is a positive int, got {step!r}")
        if not isinstance(log, bool):
            return self.fail(f"{path}.log", f"is true or false, got {log!r}")
        if log and step != 1:
            return self.fail(path, f"a log int range takes no step (optuna's rule), got step {step}")
        if log and lo < 1:
            return self.fail(path, f"a log int range needs lo >= 1, got [{lo}, {hi}]")
        if (hi - lo) % step:
            return self.fail(path, f"int range [{lo}, {hi}] is not a whole number of steps of {step}")
        return _Range(IntRange(lo, hi, step, log))

    def _float(self, raw: dict[str, Any], path: str) -> _Node:
        bounds = self._bounds(raw, "float", path, _is_number)
        step, log = raw.get("step"), raw.get("log", False)
        if bounds is None:
            return _Failed(None)
        lo, hi = float(bounds[0]), float(bounds[1])
        if step is not None and (not _is_number(step) or step <= 0):
            return self.fail(f"{path}.step", f"a float range's step is a positive number, got {step!r}")
        if not isinstance(log, bool):
            return self.fail(f"{path}.log", f"is true or false, got {log!r}")
        if log and step is not None:
            return self.fail(path, f"a log float range takes no step (optuna's rule), got step {step}")
        if log and lo <= 0:
            return self.fail(path, f"a log float range needs lo > 0, got [{lo:g}, {hi:g}]")
        if step is not None:
            k = (hi - lo) / step
            if abs(k - round(k)) > 1e-9:
                return self.fail(path, f"float range [{lo:g}, {hi:g}] is not a whole number of steps of {step:g}")
        return _Range(FloatRange(lo, hi, None if step is None else float(step), log))

    def _shared(self, name: Any, path: str) -> _Node:
        if self.in_shared:
            return self.fail(path, f"a shared template cannot use another one, got {{shared: {name}}}")
        if name not in self.shared_names:
            known = ", ".join(sorted(self.shared_names)) or "none are defined"
            return self.fail(path, f"unknown shared template {name!r} (shared: {known})")
        return _Shared(name)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The genotype model classes a field's annotation admits (unions, optionals and tuples unwrapped)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = get_args(annotation)
    if get_origin(annotation) is Annotated:
        args = args[:1]
    found: list[type[BaseModel]] = []
    for arg in args:
        found += [m for m in _models_in(arg) if m not in found]
    return found


def _tag_allows(model: type[BaseModel], tag: str, value: Any) -> bool:
    info = model.model_fields.get(tag)
    return info is not None and any(_same_scalar(str(v), value) for v in get_args(info.annotation))


def _pick_model(candidates: list[type[BaseModel]], node: _Map, path: str, problems: list[tuple[str, str]]) -> type | None:
    """The model a mapping describes: the only candidate, or the one its constant ``kind`` / ``op`` names."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    fields = dict(node.fields)
    for tag in ("kind", "op"):
        const = fields.get(tag)
        if isinstance(const, _Const):
            fits = [m for m in candidates if _tag_allows(m, tag, const.value)]
            if not fits and tag == "kind":
                kinds = [str(get_args(m.model_fields["kind"].annotation)[0]) for m in candidates if "kind" in m.model_fields]
                problems.append((f"{path}.kind", f"unknown block kind {const.value!r}; expected one of {', '.join(kinds)}"))
            return fits[0] if len(fits) == 1 else None
    if "fork" in fields and ForkStep in candidates:
        return ForkStep
    return None


def _check_fields(node: _Node, candidates: list[type[BaseModel]], path: str, walk: _Walk) -> None:
    """Reject template keys that no genotype field has, wherever the model is known from the template."""
    if isinstance(node, _List):
        for i, item in enumerate(node.items):
            _check_fields(item, candidates, f"{path}[{i}]", walk)
    elif isinstance(node, _Choice):
        for i, option in enumerate(node.options):
            _check_fields(option, candidates, f"{path}.choice[{i}]", walk)
    elif isinstance(node, _Shared) and (node.name, tuple(candidates)) not in walk.checked:
        walk.checked.add((node.name, tuple(candidates)))
        _check_fields(walk.shared[node.name], candidates, f"shared.{node.name}", walk)
    elif isinstance(node, _Map):
        model = _pick_model(candidates, node, path, walk.problems)
        if model is None:
            return
        given = {key for key, _ in node.fields}
        for key, info in model.model_fields.items():
            if info.is_required() and key not in given and key not in ("kind", "op"):
                walk.problems.append((f"{path}.{key}", f"required field is missing (a {model.__name__} needs it)"))
        for key, child in node.fields:
            info = model.model_fields.get(key)
            if info is None:
                known = ", ".join(model.model_fields)
                walk.problems.append((f"{path}.{key}", f"unknown field; a {model.__name__} has {known}"))
            else:
                _check_value(model, key, info, child, f"{path}.{key}", walk)
                _check_fields(child, _models_in(info.annotation), f"{path}.{key}", walk)


def _check_value(model: type[BaseModel], key: str, info: FieldInfo, node: _Node, path: str, walk: _Walk) -> None:
    """A field's constant, each of its plain choice options and its range bounds must have the field's type.

    So ``depth: two`` or ``kernel: {choice: [3, x]}`` is an error when the space is loaded, not an
    infeasible sample in every trial that draws it. Fields with their own before-validators (a cell
    edge's op aliases) and a cell's ``concat`` keywords are left to sampling.
    """
    if any(key in dec.info.fields for dec in model.__pydantic_decorators__.field_validators.values()):
        return
    if isinstance(node, _Failed):
        return
    if isinstance(node, _Const):
        values = [(path, node.value)]
    elif isinstance(node, _Choice) and node.plain:
        values = [(f"{path}.choice[{i}]", o.value) for i, o in enumerate(node.options)]  # type: ignore[union-attr]
    elif isinstance(node, _Range):
        values = [(path, node.dist.lo), (path, node.dist.hi)]
    else:
        return
    adapter = _adapter(model, key)
    for where, value in values:
        if key == "concat" and value in CONCAT_KEYWORDS:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            rule = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            walk.problems.append((where, f"{rule} for {model.__name__}.{key}, got {_show(value)}"))
            return


_ADAPTERS: dict[tuple[type[BaseModel], str], TypeAdapter[Any]] = {}


def _adapter(model: type[BaseModel], key: str) -> TypeAdapter[Any]:
    """A validator of one field of ``model`` on its own (its annotation and constraints, not the model's validators)."""
    if (model, key) not in _ADAPTERS:
        info = model.model_fields[key]
        annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation  # type: ignore[valid-type]
        _ADAPTERS[model, key] = TypeAdapter(annotation)
    return _ADAPTERS[model, key]


@dataclass
class _Walk:
    shared: dict[str, _Node]
    problems: list[tuple[str, str]] = field(default_factory=list)
    checked: set[tuple[str, tuple[type, ...]]] = field(default_factory=set)


# ==== sampling ==================================================================================


def _edge_input(edge: Any) -> int | None:
    try:
        return CellEdge.model_validate(edge).input
    except ValidationError:
        return None


def concat_states(nodes: _Seq[_Seq[Any]], keyword: str) -> list[int]:
    """The states a cell with ``nodes`` concatenates under ``keyword``: ``all`` nodes, or the ``unused`` ones."""
    states = list(range(2, len(nodes) + 2))
    if keyword == "all":
        return states
    used = {_edge_input(edge) for node in nodes if isinstance(node, list | tuple) for edge in node}
    return [s for s in states if s not in used]


@dataclass
class _Draw:
    """One pass of sampling: the trial, the parameters drawn so far, the shared values drawn."""

    trial: Trial
    shared: dict[str, _Node]
    params: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def value(self, node: _Node, name: str) -> Any:
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Map):
            return self._map(node, name)
        if isinstance(node, _List):
            values: list[Any] = []
            for i, item in enumerate(node.items):
                if node.is_chained(i) and values[-1] is None:
                    values.append(None)  # a count ended at the item before: not drawn
                    continue
                values.append(self.value(item, _join(name, i)))
            return [v for v in values if v is not None]
        if isinstance(node, _Choice):
            picked = self.trial.suggest_categorical(name, list(node.choices))
            self.params[name] = picked
            k = node.index(picked, name)
            return self.value(node.options[k], node.branch(name, k))
        if isinstance(node, _Range):
            return self._number(node.dist, name)
        if node.name not in self.values:
            self.values[node.name] = self.value(self.shared[node.name], node.name)
        return self.values[node.name]

    def _map(self, node: _Map, name: str) -> dict[str, Any]:
        out = {key: self.value(child, _join(name, key)) for key, child in node.fields}
        if out.get("concat") in CONCAT_KEYWORDS and isinstance(out.get("nodes"), list):
            out["concat"] = concat_states(out["nodes"], out["concat"])
        return out

    def _number(self, d: IntRange | FloatRange, name: str) -> int | float:
        if isinstance(d, IntRange):
            v: int | float = self.trial.suggest_int(name, d.lo, d.hi, step=d.step, log=d.log)
        else:
            v = self.trial.suggest_float(name, d.lo, d.hi, step=d.step, log=d.log)
        self.params[name] = v
        return v


class _SeededTrial:
    """A stand-in for an optuna trial that draws uniformly (log-uniformly when asked) from a seeded RNG."""

    def __init__(self, rng: _random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: _Seq[Any]) -> Any:
        return self.rng.choice(list(choices))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if log:
            return min(high, int(math.exp(self.rng.uniform(math.log(low), math.log(high + 1)))))
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        if step is not None:
            return low + step * self.rng.randint(0, round((high - low) / step))
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


class _FixedParams:
    """A stand-in for ``optuna.trial.FixedTrial``: replays a dict of parameters, checking each value."""

    def __init__(self, params: dict[str, Any], space: str) -> None:
        self.params, self.space = params, space

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise SpaceError([(name, "no value given for this parameter")], f"params of design space {self.space!r}")
        return self.params[name]

    def _reject(self, name: str, value: Any, dist: Any) -> SpaceError:
        return SpaceError([(name, f"{_show(value)} is not in {dist}")], f"params of design space {self.space!r}")

    def suggest_categorical(self, name: str, choices: _Seq[Any]) -> Any:
        value = self._get(name)
        if not any(_same_scalar(value, c) for c in choices):
            raise self._reject(name, value, Categorical(tuple(choices)))
        return value

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value, dist = self._get(name), IntRange(low, high, step, log)
        if not dist.holds(value):
            raise self._reject(name, value, dist)
        return value  # type: ignore[no-any-return]

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        value, dist = self._get(name), FloatRange(low, high, step, log)
        if not dist.holds(value):
            raise self._reject(name, value, dist)
        return float(value)


# ==== encoding: the parameters that select a genotype ===========================================


class _Mismatch(Exception):
    """The genotype leaves the space at ``path`` (a genotype field path)."""

    def __init__(self, path: str, reason: str, state: _State) -> None:
        self.path, self.reason, self.matched = path, reason, state.matched
        super().__init__(f"{path}: {reason}")


def _deepest(errors: list[_Mismatch]) -> _Mismatch:
    """Of several failed options, the one that matched the most of the genotype before failing (the closest)."""
    return max(errors, key=lambda e: (e.matched, len(e.path)))


@dataclass(frozen=True)
class _State:
    """Parameters found so far, the values bound to shared templates, and how many template values
    matched (to tell the closest option in an error). Copied, never mutated."""

    params: dict[str, Any] = field(default_factory=dict)
    bound: dict[str, Any] = field(default_factory=dict)
    matched: int = 0

    def with_param(self, name: str, value: Any) -> _State:
        return _State({**self.params, name: value}, self.bound, self.matched + 1)

    def with_bound(self, name: str, value: Any) -> _State:
        return _State(self.params, {**self.bound, name: value}, self.matched)

    def with_match(self) -> _State:
        return _State(self.params, self.bound, self.matched + 1)


def _same(template: Scalar, value: Any) -> bool:
    """Whether a template constant spells the genotype's (canonical) value."""
    if isinstance(value, BaseModel):  # a cell or edge written in its string form
        try:
            return isinstance(template, str) and type(value).model_validate(template) == value
        except ValidationError:
            return False
    if isinstance(value, CellOp) and isinstance(template, str):
        try:
            return parse_cell_op(template) == value
        except ValueError:
            return False
    return _same_scalar(template, value)


_Owner = tuple[BaseModel, str]


def _spells_same(model: BaseModel, key: str, template: Scalar) -> bool:
    """Whether writing ``template`` for ``model``'s field ``key`` gives back ``model``.

    A genotype stores what other fields imply in its canonical form (None for a residual block's
    default ``expansion`` or a pool's stride equal to its kernel), so a template constant that
    spells the implied value (``expansion: 1``) is not equal to the stored one but selects it.
    """
    try:
        return type(model).model_validate({**minimal_dict(model), key: template}) == model
    except (ValidationError, ValueError, TypeError):
        return False


def _can_be_absent(node: _Node) -> bool:
    if isinstance(node, _Const):
        return node.value is None
    return isinstance(node, _Choice) and any(_can_be_absent(o) for o in node.options)


class _Matcher:
    def __init__(self, shared: dict[str, _Node]) -> None:
        self.shared = shared

    def match(
        self, node: _Node, value: Any, name: str, path: str, state: _State, cell: Cell | None = None, owner: _Owner | None = None
    ) -> _State:
        """``owner``: the genotype model and field that ``value`` is, where it is one (see :func:`_spells_same`)."""
        if isinstance(node, _Const):
            self._const(node.value, value, path, cell, state, owner)
            return state.with_match()
        if isinstance(node, _Map):
            return self._map(node, value, name, path, state)
        if isinstance(node, _List):
            if not isinstance(value, tuple | list):
                raise _Mismatch(path, f"the space has a list here, the genotype {_show(value)}", state)
            return self._items(node, tuple(value), 0, 0, name, path, state)
        if isinstance(node, _Choice):
            return self._choice(node, value, name, path, state, cell, owner)
        if isinstance(node, _Range):
            if not node.dist.holds(value):
                raise _Mismatch(path, f"{_show(value)} is outside the space's {node.dist}", state)
            return state.with_param(name, float(value) if isinstance(node.dist, FloatRange) else value)
        return self._shared(node, value, path, state)

    def _const(self, template: Scalar, value: Any, path: str, cell: Cell | None, state: _State, owner: _Owner | None) -> None:
        if cell is not None and template in CONCAT_KEYWORDS:
            states = concat_states(cell.nodes, str(template))
            if tuple(states) != value:
                raise _Mismatch(path, f"{_show(value)} is not the {template} nodes {states} that the space concatenates", state)
        elif not _same(template, value) and not (owner is not None and _spells_same(*owner, template)):
            raise _Mismatch(path, f"{_show(value)} is not in the space (it has {_show(template)} here)", state)

    def _map(self, node: _Map, value: Any, name: str, path: str, state: _State) -> _State:
        if not isinstance(value, BaseModel):
            raise _Mismatch(path, f"the space has a mapping here, the genotype {_show(value)}", state)
        fields = dict(node.fields)
        model_fields = type(value).model_fields
        for key in sorted(fields, key=lambda k: k != "kind"):  # a different kind says the most
            if key not in model_fields:
                raise _Mismatch(_sub(path, key), f"a {type(value).__name__} has no field {key!r}", state)
            cell = value if key == "concat" and isinstance(value, Cell) else None
            state = self.match(fields[key], getattr(value, key), _join(name, key), _sub(path, key), state, cell, (value, key))
        for key, v in minimal_dict(value).items():
            if key not in fields and key not in ("kind", "name", "reference"):
                raise _Mismatch(_sub(path, key), f"{_show(v)} is not in the space (the space leaves {key} at its default)", state)
        return state

    def _items(
        self, node: _List, values: tuple[Any, ...], i: int, j: int, name: str, path: str, state: _State, ended: bool = False
    ) -> _State:
        """Align template items with the genotype's, leaving out optional items where needed.

        ``ended``: item i - 1 was left out, so a count item i (see :class:`_List`) is left out undrawn.
        """
        items = node.items
        if i == len(items):
            if j == len(values):
                return state
            raise _Mismatch(f"{path}[{j}]", f"the genotype has {len(values)} items here, the space at most {j}", state)
        if ended and node.is_chained(i):
            return self._items(node, values, i + 1, j, name, path, state, ended=True)
        errors: list[_Mismatch] = []
        if j < len(values):
            try:
                found = self.match(items[i], values[j], _join(name, i), f"{path}[{j}]", state)
                return self._items(node, values, i + 1, j + 1, name, path, found)
            except _Mismatch as exc:
                errors.append(exc)
        if _can_be_absent(items[i]):
            try:
                absent = self._absent(items[i], _join(name, i), state)
                return self._items(node, values, i + 1, j, name, path, absent, ended=True)
            except _Mismatch as exc:
                errors.append(exc)
        if not errors:
            needed = j + sum(not _can_be_absent(item) for item in items[i:])
            raise _Mismatch(path, f"the genotype has {len(values)} items here, the space at least {needed}", state)
        return self._raise(errors)

    @staticmethod
    def _raise(errors: list[_Mismatch]) -> _State:
        raise _deepest(errors)

    def _absent(self, node: _Node, name: str, state: _State) -> _State:
        if not isinstance(node, _Choice):
            return state
        k = next(k for k, o in enumerate(node.options) if _can_be_absent(o))
        return self._absent(node.options[k], node.branch(name, k), state.with_param(name, node.choices[k]))

    def _choice(
        self, node: _Choice, value: Any, name: str, path: str, state: _State, cell: Cell | None, owner: _Owner | None = None
    ) -> _State:
        errors: list[_Mismatch] = []
        for k, option in enumerate(node.options):
            try:
                found = self.match(option, value, node.branch(name, k), path, state, cell, owner)
            except _Mismatch as exc:
                errors.append(exc)
                continue
            return found.with_param(name, node.choices[k])
        if node.plain:
            shown = [f"{c} = {concat_states(cell.nodes, c)}" if cell and c in CONCAT_KEYWORDS else _show(c) for c in node.choices]
            raise _Mismatch(path, f"{_show(value)} is not one of the space's choices {', '.join(shown)}", state)
        return self._raise(errors)

    def _shared(self, node: _Shared, value: Any, path: str, state: _State) -> _State:
        if node.name in state.bound:
            first = state.bound[node.name]
            if first != value:
                diff = _first_difference(minimal_dict(value), minimal_dict(first)) if isinstance(value, BaseModel) else None
                where, mine, theirs = diff if diff else ("", value, first)
                reason = (
                    f"{_show(mine)} differs from {_show(theirs)}, the value of shared template {node.name!r} "
                    f"where the genotype first uses it"
                )
                raise _Mismatch(_sub(path, where), reason, state)
            return state
        found = self.match(self.shared[node.name], value, node.name, path, state)
        return found.with_bound(node.name, value)


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first path where two plain genotype dicts differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            diff = _first_difference(a.get(key), b.get(key), _sub(path, key))
            if diff:
                return diff
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff = _first_difference(x, y, f"{path}[{i}]")
            if diff:
                return diff
        return None
    return None if a == b else (path, a, b)


# ==== params and size ===========================================================================


def _params(node: _Node, name: str, condition: tuple[tuple[str, Scalar], ...], shared: str | None) -> Iterator[Param]:
    if isinstance(node, _Map):
        for key, child in node.fields:
            yield from _params(child, _join(name, key), condition, shared)
    elif isinstance(node, _List):
        when = condition
        for i, item in enumerate(node.items):
            # a count item is drawn when the item before is there (and whatever that one needed)
            before = (_join(name, i - 1), node.items[i - 1].choices[1]) if node.is_chained(i) else None  # type: ignore[union-attr]
            when = (*when, before) if before else condition
            yield from _params(item, _join(name, i), when, shared)
    elif isinstance(node, _Choice):
        yield Param(name, Categorical(node.choices), condition, shared)
        for k, option in enumerate(node.options):
            yield from _params(option, node.branch(name, k), (*condition, (name, node.choices[k])), shared)
    elif isinstance(node, _Range):
        yield Param(name, node.dist, condition, shared)


def _count(node: _Node) -> tuple[int, bool]:
    """Parameter assignments under ``node`` (shared references count once, elsewhere), and whether exact."""
    if isinstance(node, _List) and node.chained:
        total, exact, i = 1, True, 0
        while i < len(node.items):
            run = 1
            while i + run < len(node.items) and node.is_chained(i + run):
                run += 1
            if run == 1:
                n, e = _count(node.items[i])
            else:  # a count of `run` optional items: 0..run of them, each drawn from the one template
                c, e = _count(node.items[i].options[1])  # type: ignore[union-attr]
                n = sum(c**k for k in range(run + 1))
            total, exact, i = total * n, exact and e, i + run
        return total, exact
    if isinstance(node, _Map | _List):
        children = [c for _, c in node.fields] if isinstance(node, _Map) else list(node.items)
        total, exact = 1, True
        for child in children:
            n, e = _count(child)
            total, exact = total * n, exact and e
        return total, exact
    if isinstance(node, _Choice):
        counts = [_count(o) for o in node.options]
        return sum(n for n, _ in counts), all(e for _, e in counts)
    if isinstance(node, _Range):
        n = node.dist.count()
        return (FLOAT_POINTS, False) if n is None else (n, True)
    return 1, True


def _shared_refs(node: _Node) -> Iterator[str]:
    if isinstance(node, _Map):
        for _, child in node.fields:
            yield from _shared_refs(child)
    elif isinstance(node, _List | _Choice):
        for child in node.items if isinstance(node, _List) else node.options:
            yield from _shared_refs(child)
    elif isinstance(node, _Shared):
        yield node.name


# ==== the design space ==========================================================================


class _SpaceFile(Frozen):
    """The schema of a design-space file (unknown keys are errors)."""

    name: str = Field(min_length=1)
    description: str = ""
    contains: tuple[str, ...] = ()
    shared: dict[str, Any] = {}
    template: dict[str, Any]


#: How a design-space file's own keys are worded in errors (the template's are the genotype's).
_FILE_WORDING = Wording(messages={"extra_forbidden": "unknown field"}, unions=None)
_ARCH_FIELDS = tuple(k for k in Network.model_fields if k not in ("name", "reference"))


@dataclass(frozen=True)
class DesignSpace:
    """A genotype template with holes. Build one with :meth:`from_dict`, :meth:`from_yaml` or :func:`load_space`.

    ``members``: the zoo networks the file's ``contains:`` claims as points of the space.
    """

    name: str
    description: str
    members: tuple[str, ...]
    template: dict[str, Any] = field(repr=False)
    shared: dict[str, Any] = field(repr=False)
    _root: _Node = field(repr=False, compare=False)
    _shared: dict[str, _Node] = field(repr=False, compare=False)

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> DesignSpace:
        """Validate a design-space mapping; raises :class:`SpaceError` naming every offending path."""
        if not isinstance(data, dict):
            raise SpaceError([("", f"a design space is a mapping, got {type(data).__name__}")], source)
        too_deep = nesting_problem(data)
        if too_deep is not None:
            raise SpaceError([too_deep], source)
        try:
            spec = _SpaceFile.model_validate(data)
        except ValidationError as exc:
            raise SpaceError(field_problems(exc, _FILE_WORDING), source) from None
        parser = _Parser(set(spec.shared))
        for name in spec.shared:
            if not _IDENT.match(name) or name in Network.model_fields:
                parser.fail(f"shared.{name}", "shared names are identifiers other than the genotype's top-level fields")
        parser.in_shared = True
        shared = {name: parser.node(raw, f"shared.{name}") for name, raw in spec.shared.items()}
        parser.in_shared = False
        root = parser.node(spec.template, "template")
        walk = _Walk(shared, parser.problems)
        for key in spec.template:
            if key not in _ARCH_FIELDS:
                walk.problems.append((f"template.{key}", f"unknown field; a network template has {', '.join(_ARCH_FIELDS)}"))
        _check_fields(root, [Network], "template", walk)
        unused = [n for n in shared if n not in set(_shared_refs(root))]
        walk.problems += [(f"shared.{n}", "is never used by the template") for n in unused]
        from nasx import zoo  # here, not at the top: nasx.zoo imports this package

        known = zoo.names()
        for i, member in enumerate(spec.contains):
            if member not in known:
                close = difflib.get_close_matches(member, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else "see nasx.zoo.names()"
                walk.problems.append((f"contains[{i}]", f"unknown zoo network {member!r}; {hint}"))
        if walk.problems:
            raise SpaceError(list(dict.fromkeys(walk.problems)), source)
        return cls(spec.name, spec.description, spec.contains, spec.template, spec.shared, root, shared)

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> DesignSpace:
        """Parse and validate a design-space file's text (see :mod:`nasx.yamlfiles` for what is refused)."""
        try:
            data = parse_yaml(text)
        except YamlProblem as exc:
            raise SpaceError([(exc.where, exc.message)], source) from None
        return cls.from_dict(data, source)

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, trial: Trial) -> Network:
        """The network the trial's suggestions select; :class:`InfeasibleSample` if it is not a valid genotype."""
        return self._sample(trial)[0]

    def _sample(self, trial: Trial) -> tuple[Network, dict[str, Any]]:
        draw = _Draw(trial, self._shared)
        raw = draw.value(self._root, "")
        try:
            return Network.from_dict(raw), draw.params
        except GenotypeError as exc:
            raise InfeasibleSample(exc.problems, draw.params, self.name) from None

    def select(self, params: dict[str, Any]) -> Network:
        """The network that ``params`` (as from :meth:`encode` or ``trial.params``) select; no optuna needed."""
        return self.sample(_FixedParams(params, self.name))

    def random(self, seed: int, attempts: int = 100) -> Network:
        """A random point from a seeded RNG: the first feasible one of up to ``attempts`` draws (deterministic)."""
        if attempts < 1:
            raise SpaceError([("attempts", f"must be at least 1, got {attempts}")], f"random point of {self.name!r}")
        rng = _random.Random(seed)
        for attempt in range(attempts):
            try:
                return self.sample(_SeededTrial(rng))
            except InfeasibleSample:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable: the loop returns or re-raises")  # pragma: no cover

    # ---- encoding -------------------------------------------------------------------------

    def encode(self, genotype: Network) -> dict[str, Any]:
        """The parameters that select ``genotype``; :class:`NotInSpaceError` naming the field that is not in the space."""
        try:
            state = _Matcher(self._shared).match(self._root, genotype, "", "", _State())
        except _Mismatch as exc:
            raise NotInSpaceError(self.name, genotype.name, exc.path, exc.reason) from None
        try:
            again, drawn = self._sample(_FixedParams(state.params, self.name))
        except GenotypeError as exc:  # cannot happen for a valid genotype that matched; kept as a clear error
            raise NotInSpaceError(self.name, genotype.name, "", f"its parameters do not select it: {exc}") from None
        if again != genotype:
            diff = _first_difference(genotype.arch_dict(), again.arch_dict())
            path, mine, theirs = diff if diff else ("", None, None)
            reason = f"{_show(mine)} is not in the space (the closest point has {_show(theirs)})"
            raise NotInSpaceError(self.name, genotype.name, path, reason)
        return drawn  # the same values as state.params, in the order sampling draws them

    def contains(self, genotype: Network) -> bool:
        """Whether ``genotype`` is a point of this space."""
        try:
            self.encode(genotype)
        except NotInSpaceError:
            return False
        return True

    # ---- reports --------------------------------------------------------------------------

    def params(self) -> list[Param]:
        """Every parameter, with its distribution and the choices that activate it (template order, shared last)."""
        out = list(_params(self._root, "", (), None))
        for name, node in self._shared.items():
            out += _params(node, name, (), name)
        return out

    def size(self) -> SpaceSize:
        """The number of points (parameter assignments); see :class:`SpaceSize` for what an estimate means."""
        total, exact = _count(self._root)
        for node in self._shared.values():
            n, e = _count(node)
            total, exact = total * n, exact and e
        return SpaceSize(total, exact)

    def describe(self) -> str:
        """A few lines for a report: name, size, and the parameters."""
        lines = [f"design space {self.name}: {self.size()} points, {len(self.params())} parameters"]
        if self.members:
            lines.append(f"contains: {', '.join(self.members)}")
        return "\n".join(lines + [f"  {p}" for p in self.params()])


# ==== finding spaces ============================================================================


def spaces_dir() -> Path:
    """The folder of design-space files: inside an installed wheel, or the source checkout's ``search_spaces``."""
    for candidate in (_HERE / "_data" / "search_spaces", _HERE.parent / "search_spaces"):
        if candidate.is_dir():
            return candidate
    raise SpaceError([("", "the design-space folder search_spaces is missing from this installation")])


def space_names() -> list[str]:
    """The names of the shipped design spaces."""
    return sorted(p.stem for p in spaces_dir().glob("*.yaml"))


def load_space(name_or_path: str) -> DesignSpace:
    """A shipped space by name (``macro-cifar``), or a design-space YAML file by path.

    A name is looked up in the spaces folder only; a path is meant when the text holds a ``/`` or
    ends in ``.yaml``/``.yml``, and only a regular file with that suffix is read.
    """
    text = str(name_or_path)
    p = Path(text)
    if "/" in text or os.sep in text or p.suffix in (".yaml", ".yml"):
        if p.suffix not in (".yaml", ".yml"):
            raise SpaceError([("", "a design-space file ends in .yaml or .yml (a name is looked up in search_spaces/)")], text)
    else:
        p = spaces_dir() / f"{text}.yaml"
        if not p.is_file():
            close = difflib.get_close_matches(name_or_path, space_names(), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(space_names())}"
            raise SpaceError([("", f"unknown design space {name_or_path!r}; {hint}")])
    try:
        text = read_text(p, "design-space file")
    except YamlProblem as exc:
        raise SpaceError([(exc.where, exc.message)], str(p)) from None
    return DesignSpace.from_yaml(text, source=str(p))


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
