"""Sampling a design space: the values a trial's suggestions give to every hole of the template.

Besides an optuna trial, a seeded stand-in (:meth:`DesignSpace.random`) and a replay of fixed
parameters (:meth:`DesignSpace.select`) suggest values.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Sequence as _Seq
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nasx.errors import SpaceError
from nasx.space.design.distributions import Categorical, FloatRange, IntRange, Trial, _same_scalar, _show
from nasx.space.design.template import CONCAT_KEYWORDS, _Choice, _Const, _join, _List, _Map, _Node, _Range
from nasx.space.genotype import CellEdge


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
