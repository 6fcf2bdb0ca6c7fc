"""Claims that carry their noise: binomial standard errors, t-intervals over seeds, and when a difference is one.

Every accuracy a report or table states goes through these, so that it shows its n:

- a single run's accuracy on n images: ``p ± SE`` with the binomial SE ``sqrt(p (1 - p) / n)``;
- a model trained with several seeds: the mean with a 95% Student-t interval over the seeds; one
  seed gives no interval (never "± 0.00");
- "beats" only when the two 95% intervals do not overlap, otherwise "within noise".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def binomial_se(acc: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` independent images."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.sqrt(max(acc * (1.0 - acc), 0.0) / n)


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided Student-t quantile (scipy)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


@dataclass(frozen=True)
class Estimate:
    """An accuracy with its uncertainty: a 95% interval [low, high] (None: no interval can be given) and its n."""

    value: float
    low: float | None
    high: float | None
    n: int
    unit: str  # "val images", "test images", "seeds"

    @property
    def half(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2

    def text(self, digits: int = 2) -> str:
        pct = f"{100 * self.value:.{digits}f}%"
        if self.half is None:
            return f"{pct} (n={self.n} {self.unit}, no interval)"
        kind = "95% t-interval" if self.unit == "seeds" else "±1.96 SE"
        return f"{pct} ± {100 * self.half:.{digits}f} ({kind}, n={self.n} {self.unit})"


def single_run(acc: float, n: int | None, unit: str = "val images") -> Estimate:
    """One run's accuracy on ``n`` images (n unknown: no interval)."""
    if not n:
        return Estimate(acc, None, None, 0, unit)
    half = Z95 * binomial_se(acc, n)
    return Estimate(acc, acc - half, acc + half, n, unit)


def over_seeds(values: Sequence[float]) -> Estimate:
    """The mean of per-seed accuracies with a 95% t-interval; one seed: no interval."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, None, None, 1, "seeds")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, "seeds")


def verdict(a: Estimate, b: Estimate) -> str:
    """``"beats"`` when a's interval lies wholly above b's, ``"is beaten by"`` when below, else ``"within noise of"``.

    Without an interval on either side there is no claim: ``"within noise of"`` (unknown noise)."""
    if None in (a.low, a.high, b.low, b.high):
        return "within noise of"
    if a.low > b.high:  # type: ignore[operator]
        return "beats"
    if a.high < b.low:  # type: ignore[operator]
        return "is beaten by"
    return "within noise of"
