"""Rank correlation of zero-cost proxies with trained accuracy, with n and 95% confidence intervals (the trust report).

Kendall's tau-b and Spearman's rho (``scipy.stats``), each with a Fisher-z interval:
``tanh(atanh(r) +- 1.96 * se)`` with ``se = sqrt(0.437 / (n - 4))`` for tau and
``sqrt(1.06 / (n - 3))`` for rho (Fieller, Hartley & Pearson 1957), deterministic and cheap;
below 5 pairs the interval is the whole range [-1, 1]. A proxy *beats the parameter count* when its
Kendall tau on the same networks is above the parameter count's and above zero (a proxy that ranks
networks against their accuracy is no use, even if the parameter count does worse); with fewer than
``MIN_N`` networks there is no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

REFERENCE = "params"
MIN_N = 5  # fewer pairs: no interval, no verdict
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Correlation:
    value: float  # nan when undefined (fewer than 2 pairs, or a constant side)
    low: float
    high: float


@dataclass(frozen=True)
class ProxyTrust:
    """One proxy against accuracy: ``n`` pairs with both values finite."""

    proxy: str
    n: int
    kendall: Correlation
    spearman: Correlation
    beats_reference: bool | None  # None for the reference itself, below MIN_N pairs, or when either tau is undefined


def _interval(r: float, n: int, var: float, dof: int) -> Correlation:
    if math.isnan(r) or n - dof <= 0:
        return Correlation(r, -1.0, 1.0)
    z = math.atanh(max(-0.999999, min(0.999999, r)))
    half = Z95 * math.sqrt(var / (n - dof))
    return Correlation(r, math.tanh(z - half), math.tanh(z + half))


def rank_correlation(x: Sequence[float | None], y: Sequence[float | None]) -> tuple[int, Correlation, Correlation]:
    """``(n, kendall, spearman)`` over the pairs where both values are finite."""
    from scipy import stats

    pairs = [
        (a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    n = len(pairs)
    if n < 2:
        nan = Correlation(math.nan, -1.0, 1.0)
        return n, nan, nan
    a, b = np.array(pairs, dtype=float).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        nan = Correlation(math.nan, -1.0, 1.0)
        return n, nan, nan
    tau = float(stats.kendalltau(a, b).statistic)
    rho = float(stats.spearmanr(a, b).statistic)
    return n, _interval(tau, n, 0.437, 4), _interval(rho, n, 1.06, 3)


def proxy_trust(proxies: Mapping[str, Sequence[float | None]], accuracy: Sequence[float | None]) -> list[ProxyTrust]:
    """Each proxy's correlation with ``accuracy`` (same order of networks), and whether it beats ``params``."""
    measured = {name: rank_correlation(values, accuracy) for name, values in proxies.items()}
    ref = measured.get(REFERENCE)
    ref_tau = ref[1].value if ref is not None else math.nan
    out = []
    for name, (n, kendall, spearman) in measured.items():
        undefined = name == REFERENCE or n < MIN_N or math.isnan(ref_tau) or math.isnan(kendall.value)
        beats = None if undefined else kendall.value > max(ref_tau, 0.0)
        out.append(ProxyTrust(name, n, kendall, spearman, beats))
    return out


def study_trust(frame: Any, final: Any = None) -> dict[str, list[ProxyTrust]]:
    """A study's trust tables: ``"search"`` (proxies vs validation accuracy of the trials trained to the study's
    fidelity: state complete, candidates and baselines) and, when final runs exist, ``"final"`` (vs the mean test
    accuracy over seeds of each retrained model, matched to its trial by digest). {} when nothing was scored."""
    if "proxies" not in frame.columns:
        return {}
    trained = frame[(frame["state"] == "complete") & frame["val_acc"].notna()]
    scored = [(r["proxies"] or {}, r["val_acc"], r["digest"]) for _, r in trained.iterrows() if r["proxies"]]
    if not scored:
        return {}
    names = list(dict.fromkeys(k for p, _, _ in scored for k in p))
    if REFERENCE in names:  # the reference first
        names.remove(REFERENCE)
        names.insert(0, REFERENCE)
    out = {"search": proxy_trust({n: [p.get(n) for p, _, _ in scored] for n in names}, [a for _, a, _ in scored])}
    if final is not None and len(final):
        by_digest = {d: p for p, _, d in scored}
        pairs = [(by_digest[r["digest"]], r["test_mean"]) for _, r in final.iterrows() if r["digest"] in by_digest]
        if pairs:
            out["final"] = proxy_trust({n: [p.get(n) for p, _ in pairs] for n in names}, [a for _, a in pairs])
    return out
