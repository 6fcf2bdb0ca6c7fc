"""Early stopping at rungs, multi-objective aware (in the manner of MO-ASHA), with no optuna or ray in sight.

Rungs sit at ``grace * reduction**k`` epochs below ``max_epochs``. When a trial reaches a rung it
is compared with every trial that reached the same rung before it (asynchronous successive
halving). With one objective it continues if its accuracy is in the top ``1/reduction`` (plain
ASHA). With cost objectives too (MACs, params: known before training) the trials at the rung are
ranked by non-dominated sorting over (accuracy so far, costs): the trial continues if it is on
the first front, or if its place in (front, accuracy) order is within the top ``1/reduction``.
So a cheap network is never stopped merely for being less accurate than an expensive one.

The same :class:`RungDecider` serves the local executor and the Ray Tune scheduler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` dominates ``b`` when every coordinate is <= and one is < (all minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def fronts(points: Sequence[Sequence[float]]) -> list[int]:
    """The non-dominated sorting front index (0 = Pareto front) of every point; all coordinates minimised."""
    n = len(points)
    rank = [-1] * n
    remaining = set(range(n))
    level = 0
    while remaining:
        front = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining if j != i)}
        for i in front:
            rank[i] = level
        remaining -= front
        level += 1
    return rank


@dataclass(frozen=True)
class RungEntry:
    key: str  # the trial's id
    accuracy: float  # higher is better
    costs: tuple[float, ...]  # lower is better (empty for single-objective studies)


@dataclass
class RungDecider:
    """Decides at each rung whether a trial goes on; the history of every rung is kept in memory.

    ``grace``: first rung (epochs); ``reduction``: keep the top 1/reduction; ``max_epochs``: the
    fidelity's epochs (no rung at or beyond it).
    """

    grace: int
    reduction: int
    max_epochs: int
    rungs: dict[int, list[RungEntry]] = field(default_factory=dict)
    _keys: dict[int, set[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.grace < 1 or self.reduction < 2:
            raise ValueError(f"grace must be >= 1 and reduction >= 2, got {self.grace} and {self.reduction}")

    @property
    def milestones(self) -> list[int]:
        out, r = [], self.grace
        while r < self.max_epochs:
            out.append(r)
            r *= self.reduction
        return out

    def record(self, epoch: int, entry: RungEntry) -> None:
        """Add a result at ``epoch`` (when it is a rung) without deciding: for replaying history on resume."""
        if epoch in self.milestones:
            entries = self.rungs.setdefault(epoch, [])
            keys = self._keys.setdefault(epoch, {e.key for e in entries})
            if entry.key not in keys:  # a set beside the list: replaying a long history stays linear
                keys.add(entry.key)
                entries.append(entry)

    def should_stop(self, epoch: int, entry: RungEntry) -> bool:
        """Record ``entry`` at ``epoch`` and say whether the trial stops there."""
        if epoch not in self.milestones:
            return False
        self.record(epoch, entry)
        entries = self.rungs[epoch]
        return not promoted(entries, entry.key, self.reduction)


def promoted(entries: Sequence[RungEntry], key: str, reduction: int) -> bool:
    """Whether ``key`` is among those that continue from a rung holding ``entries``."""
    quota = max(1, math.ceil(len(entries) / reduction))
    points = [(-e.accuracy, *e.costs) for e in entries]
    rank = fronts(points)
    order = sorted(range(len(entries)), key=lambda i: (rank[i], -entries[i].accuracy, entries[i].key))
    me = next(i for i, e in enumerate(entries) if e.key == key)
    return rank[me] == 0 or order.index(me) < quota
