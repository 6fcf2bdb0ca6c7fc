"""What a design space's parameters are drawn from, as :meth:`DesignSpace.params` reports them.

A parameter (:class:`Param`) has a distribution (:class:`Categorical`, :class:`IntRange`,
:class:`FloatRange`) and the choices that make it drawn; :class:`SpaceSize` is how many points a
space has. :class:`Trial` is what sampling needs of an optuna trial (optuna is never imported).
"""

from __future__ import annotations

import math
from collections.abc import Sequence as _Seq
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from nasx.space.genotype import Cell, minimal_dict

#: How many values an unstepped float range counts for in :meth:`DesignSpace.size` (an estimate).
FLOAT_POINTS = 100

Scalar = None | bool | int | float | str


class Trial(Protocol):
    """What :meth:`DesignSpace.sample` needs of a trial: optuna's three suggest methods."""

    def suggest_categorical(self, name: str, choices: _Seq[Any]) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...


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
