"""Encoding: the parameters that select a genotype, or the field where it leaves the space.

The template is matched against the genotype, trying every option of a choice and every way of
leaving out optional list items; the closest miss names the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from nasx.space.design.distributions import FloatRange, Scalar, _same_scalar, _show
from nasx.space.design.sample import concat_states
from nasx.space.design.template import CONCAT_KEYWORDS, _Choice, _Const, _join, _List, _Map, _Node, _Range, _Shared, _sub
from nasx.space.genotype import Cell, minimal_dict
from nasx.space.ops import CellOp, parse_cell_op


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
