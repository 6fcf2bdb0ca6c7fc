"""Pareto fronts, 2-D hypervolume and (complexity-normalized) error EDFs; numpy only."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "complexity_weights",
    "edf",
    "front_steps",
    "hypervolume",
    "hypervolume_progress",
    "normalized_edf",
    "pareto_front",
]


def _objectives(acc: ArrayLike, cost: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Check and return ``acc`` as shape (n,) and ``cost`` as shape (n, k), both finite floats."""
    a = np.asarray(acc, dtype=float)
    c = np.asarray(cost, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"acc must be 1-D, got shape {a.shape}")
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2 or c.shape[0] != a.shape[0] or c.shape[1] == 0:
        raise ValueError(f"cost must have shape ({a.shape[0]},) or ({a.shape[0]}, k>=1) to match acc, got {c.shape}")
    if not (np.isfinite(a).all() and np.isfinite(c).all()):
        raise ValueError("acc and cost must be finite (no NaN or inf)")
    return a, c


def pareto_front(acc: ArrayLike, cost: ArrayLike) -> NDArray[np.bool_]:
    """Mask of non-dominated points, accuracy maximised and every cost minimised.

    ``cost`` is shape (n,) or (n, k). Point j dominates i when it is no worse in every
    objective and strictly better in one, so identical points are all kept.
    """
    a, c = _objectives(acc, cost)
    m = np.column_stack([-a, c])  # all objectives minimised
    keep = np.ones(len(a), dtype=bool)
    for i in range(len(a)):
        no_worse = (m <= m[i]).all(axis=1)
        better = (m < m[i]).any(axis=1)
        keep[i] = not (no_worse & better).any()
    return keep


def front_steps(acc: ArrayLike, cost: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The front of one cost as a step line: x = cost ascending, y = accuracy (non-decreasing)."""
    a, c = _objectives(acc, cost)
    if c.shape[1] != 1:
        raise ValueError(f"cost must be 1-D for front_steps, got shape {np.shape(cost)}")
    mask = pareto_front(a, c)
    x, y = c[mask, 0], a[mask]
    order = np.lexsort((y, x))
    return x[order], y[order]


def hypervolume(acc: ArrayLike, cost: ArrayLike, ref_acc: float, ref_cost: float) -> float:
    """Area dominated by the points (accuracy max, cost min) and bounded by (``ref_acc``, ``ref_cost``).

    Exact sweep: sort by cost, take the running best accuracy, sum the strips up to ``ref_cost``.
    Points with accuracy <= ``ref_acc`` or cost >= ``ref_cost`` add nothing.
    """
    a, c = _objectives(acc, cost)
    if c.shape[1] != 1:
        raise ValueError(f"cost must be 1-D for hypervolume, got shape {np.shape(cost)}")
    if not (np.isfinite(ref_acc) and np.isfinite(ref_cost)):
        raise ValueError(f"ref_acc and ref_cost must be finite, got ({ref_acc}, {ref_cost})")
    c1 = c[:, 0]
    inside = (a > ref_acc) & (c1 < ref_cost)
    a, c1 = a[inside], c1[inside]
    if a.size == 0:
        return 0.0
    order = np.argsort(c1, kind="stable")
    xs, best = c1[order], np.maximum.accumulate(a[order])
    widths = np.diff(np.append(xs, ref_cost))
    return float(np.sum(widths * (best - ref_acc)))


def hypervolume_progress(acc: ArrayLike, cost: ArrayLike, ref_acc: float, ref_cost: float) -> NDArray[np.float64]:
    """Hypervolume of the first i points (trial order) for i = 1..n; non-decreasing."""
    a, c = _objectives(acc, cost)
    return np.array([hypervolume(a[:i], c[:i], ref_acc, ref_cost) for i in range(1, len(a) + 1)], dtype=float)


def _weighted_edf(
    errors: NDArray[np.float64], weights: NDArray[np.float64], grid: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    order = np.argsort(errors, kind="stable")
    e, cum = errors[order], np.cumsum(weights[order])
    x = np.unique(e) if grid is None else np.asarray(grid, dtype=float)
    idx = np.searchsorted(e, x, side="right")
    f = np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)
    return x, f


def _errors(errors: ArrayLike) -> NDArray[np.float64]:
    e = np.asarray(errors, dtype=float)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"errors must be a non-empty 1-D array, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("errors must be finite (no NaN or inf)")
    return e


def edf(errors: ArrayLike, grid: ArrayLike | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Empirical distribution F(x) = fraction of errors <= x, at ``grid`` (default: the sorted unique errors)."""
    e = _errors(errors)
    x = np.unique(e) if grid is None else np.asarray(grid, dtype=float)
    return x, np.searchsorted(np.sort(e), x, side="right") / e.size


def complexity_weights(complexity: ArrayLike, bins: int | ArrayLike = 10) -> NDArray[np.float64]:
    """Weights w_i = 1 / (count of models in i's log10-complexity bin * number of non-empty bins); they sum to 1.

    ``bins`` is a bin count (equal widths over the data's log10 range, as ``np.histogram``) or
    explicit edges in log10 units; the last bin includes its right edge.
    """
    c = np.asarray(complexity, dtype=float)
    if c.ndim != 1 or c.size == 0 or not (np.isfinite(c).all() and (c > 0).all()):
        raise ValueError(f"complexity must be a non-empty 1-D array of finite values > 0, got {c!r}")
    logc = np.log10(c)
    edges = np.histogram_bin_edges(logc, bins=bins)
    if logc.min() < edges[0] or logc.max() > edges[-1]:
        raise ValueError(f"bins must cover log10(complexity) in [{logc.min()}, {logc.max()}], got edges {edges}")
    which = np.clip(np.searchsorted(edges, logc, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    return 1.0 / (counts[which] * np.count_nonzero(counts))


def normalized_edf(
    errors: ArrayLike, complexity: ArrayLike, bins: int | ArrayLike = 10, grid: ArrayLike | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Complexity-normalized EDF (Radosavovic et al., "On Network Design Spaces for Visual Recognition", 2019).

    F(x) = sum of w_i over errors_i <= x, with w_i from :func:`complexity_weights`: every non-empty
    log10-complexity bin carries the same total weight, shared equally by its models, so design
    spaces are compared as if their complexity distributions were uniform over the bins.
    """
    e = _errors(errors)
    c = np.asarray(complexity, dtype=float)
    if c.shape != e.shape:
        raise ValueError(f"complexity must have the same shape as errors {e.shape}, got {c.shape}")
    return _weighted_edf(e, complexity_weights(c, bins), grid)
