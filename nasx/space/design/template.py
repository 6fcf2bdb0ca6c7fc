"""A design-space template: the nodes it parses into, and the checks against the genotype's models.

Raw YAML data becomes a tree of nodes (:class:`_Const`, :class:`_Map`, :class:`_List`,
:class:`_Choice`, :class:`_Range`, :class:`_Shared`), every problem collected with its path;
template keys and constants are checked against the genotype's fields where the model is known
from the template. Also the parameters and the size a tree of nodes has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from nasx.errors import SpaceError
from nasx.space.design.distributions import (
    FLOAT_POINTS,
    Categorical,
    FloatRange,
    IntRange,
    Param,
    Scalar,
    _is_int,
    _is_number,
    _same_scalar,
    _show,
)
from nasx.space.genotype import ForkStep

CONCAT_KEYWORDS = ("all", "unused")
_DIST_KEYS: dict[str, tuple[str, ...]] = {
    "choice": ("choice", "labels"),
    "int": ("int", "step", "log"),
    "float": ("float", "step", "log"),
    "shared": ("shared",),
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*\Z")

_NO = object()


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
