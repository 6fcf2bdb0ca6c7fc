"""Study results as tables and numbers: Pareto fronts, hypervolume, EDFs (numpy and pandas only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nasx.results.pareto import (
    complexity_weights,
    edf,
    front_steps,
    hypervolume,
    hypervolume_progress,
    normalized_edf,
    pareto_front,
)

__all__ = [
    "COLUMNS",
    "complexity_weights",
    "compute_cost",
    "cost_line",
    "edf",
    "final_summary",
    "front",
    "front_ranks",
    "front_steps",
    "hypervolume",
    "hypervolume_progress",
    "normalized_edf",
    "pareto_front",
    "rows_to_frame",
]

COLUMNS = (
    "number",
    "role",
    "name",
    "state",
    "reason",
    "family",
    "digest",
    "string",
    "params",
    "macs",
    "val_acc",
    "epochs",
    "curve",
    "wall_s",
    "device",
    "duplicate_of",
)


def _eligible(rows: Sequence[Mapping[str, Any]], costs: Sequence[str]) -> list[Mapping[str, Any]]:
    """Candidates trained to full fidelity (state complete: not stopped, not a duplicate) with every objective
    known; of several trials of one genotype (same digest), the first."""
    seen: set[Any] = set()
    out = []
    for r in sorted(rows, key=lambda r: r["number"]):
        if r.get("role") != "candidate" or r.get("state") != "complete":
            continue
        values = [r.get("val_acc"), *(r.get(c) for c in costs)]
        if any(v is None or v != v for v in values):  # None or NaN
            continue
        key = r.get("digest") or ("trial", r["number"])
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def front_ranks(rows: Sequence[Mapping[str, Any]] | pd.DataFrame, costs: Sequence[str]) -> list[tuple[int, int]]:
    """``(trial number, front index)`` of every eligible trial (see :func:`front`), by non-dominated sorting
    (0: the front, 1: the front once that one is removed, ...); ordered by front, then accuracy, then number."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    done = _eligible(rows, costs)
    if not done:
        return []
    acc = np.array([float(r["val_acc"]) for r in done])
    cost = np.array([[float(r[c]) for c in costs] for r in done]) if costs else np.zeros((len(done), 1))
    rank = np.full(len(done), -1)
    level = 0
    while (rank < 0).any():
        left = np.flatnonzero(rank < 0)
        rank[left[pareto_front(acc[left], cost[left])]] = level
        level += 1
    order = sorted(range(len(done)), key=lambda i: (rank[i], -acc[i], done[i]["number"]))
    return [(int(done[i]["number"]), int(rank[i])) for i in order]


def front(rows: Sequence[Mapping[str, Any]] | pd.DataFrame, costs: Sequence[str]) -> list[int]:
    """The study's front: the one definition every view uses (live view, ``nasx status``, the report, ``retrain --top``).

    Trial numbers, most accurate first, of the non-dominated trials among candidates only
    (baselines are references, not results), trained at full fidelity (state ``complete``:
    early-stopped trials and duplicates are not), on the study's objectives: validation accuracy
    (max) and ``costs`` (the cost objectives, min; empty for an accuracy-only study), with
    duplicates collapsed (one trial per genotype digest, the first). ``rows``: trial-row dicts
    (``nasx.search.queries.trial_rows``) or their frame.
    """
    return [n for n, r in front_ranks(rows, costs) if r == 0]


def rows_to_frame(rows: list[dict[str, Any]], costs: Sequence[str] = ("macs",)) -> pd.DataFrame:
    """Table of ``nasx.search.queries.trial_rows`` dicts plus ``error`` (1 - val_acc) and ``on_front``.

    ``on_front`` marks the study's front (:func:`front` over ``costs``, the study's cost objectives).
    """
    extra = [k for r in rows for k in r if k not in COLUMNS]
    frame = pd.DataFrame.from_records(rows, columns=[*COLUMNS, *dict.fromkeys(extra)])
    frame["val_acc"] = frame["val_acc"].astype(float)
    frame["error"] = 1.0 - frame["val_acc"]
    frame["on_front"] = frame["number"].isin(front(rows, costs))
    return frame


FINAL_COLUMNS = ("label", "role", "name", "digest", "string", "recipe", "epochs", "params", "macs", "search_acc")


def final_summary(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Final runs (``nasx.search.retrain.final_runs``) per model and setup: seeds, test accuracy mean, std and 95% CI.

    A setup is everything but the seed that changes a run's result (the run's ``setup``: genotype,
    full recipe, fidelity, data sha256, validation size); runs of different setups are never
    averaged together. Runs recorded before setups existed fall back to (digest, recipe name,
    epochs). ``test_std`` is the sample standard deviation and ``test_ci`` the half-width of the
    95% t-interval over seeds: both NaN for one seed (no interval, never "± 0"). ``test_images``:
    the test set's size. Rows are sorted by MACs.
    """
    from nasx.results.noise import over_seeds

    columns = [*FINAL_COLUMNS, "setup", "data_sha256", "seeds", "test_mean", "test_std", "test_ci", "test_images"]
    if not runs:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame.from_records(runs)
    for col in ("setup", "data_sha256", "test_images"):
        if col not in frame:
            frame[col] = None
    legacy = frame["digest"].astype(str) + ":" + frame["recipe"].astype(str) + ":e" + frame["epochs"].astype(str)
    frame["setup"] = frame["setup"].where(frame["setup"].notna(), legacy)
    frame["search_acc"] = frame["search_acc"].astype(float)
    grouped = frame.groupby("setup", sort=False)
    out = grouped.agg(
        label=("label", "first"),
        role=("role", "first"),
        name=("name", "first"),
        digest=("digest", "first"),
        string=("string", "first"),
        recipe=("recipe", "first"),
        epochs=("epochs", "first"),
        params=("params", "first"),
        macs=("macs", "first"),
        search_acc=("search_acc", "first"),
        data_sha256=("data_sha256", "first"),
        test_images=("test_images", "first"),
        seeds=("seed", "nunique"),
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")),
        test_ci=("test_acc", lambda x: over_seeds(list(x)).half if len(x) > 1 else float("nan")),
    ).reset_index()
    return out[columns].sort_values("macs", kind="stable").reset_index(drop=True)


def _hours(seconds: Any, device: Any, cores: Any, gpus: Any) -> tuple[float, float]:
    """(CPU core-hours, GPU-hours) of one training: wall seconds x CPU threads, or x GPUs (unknown: 1)."""
    if seconds is None or seconds != seconds or not device:
        return 0.0, 0.0
    device = str(device)
    if device.startswith(("cuda", "mps")):
        return 0.0, float(seconds) * float(gpus or 1.0) / 3600
    if device.startswith("cpu"):
        return float(seconds) * float(cores or 1.0) / 3600, 0.0
    return 0.0, 0.0  # a dry run: no training


def compute_cost(rows: Sequence[Mapping[str, Any]], final_runs: Sequence[Mapping[str, Any]] = ()) -> dict[str, dict[str, float]]:
    """Compute spent, by part (``baselines``, ``candidates``, ``final runs``, ``total``): ``cpu_core_h`` (training wall
    time x the CPU threads it held) and ``gpu_h`` (x the GPUs it held). Duplicates and infeasible draws trained
    nothing and cost nothing here; a trial that failed costs what it ran."""
    out = {part: {"cpu_core_h": 0.0, "gpu_h": 0.0} for part in ("baselines", "candidates", "final runs", "total")}

    def add(part: str, hours: tuple[float, float]) -> None:
        for p in (part, "total"):
            out[p]["cpu_core_h"] += hours[0]
            out[p]["gpu_h"] += hours[1]

    for r in rows:
        part = {"baseline": "baselines", "candidate": "candidates"}.get(str(r.get("role")))
        if part is not None and r.get("state") != "duplicate":
            add(part, _hours(r.get("wall_s"), r.get("device"), r.get("cores"), r.get("gpus")))
    for f in final_runs:
        add("final runs", _hours(f.get("train_seconds"), f.get("device"), f.get("cores"), f.get("gpus")))
    return out


def cost_line(cost: Mapping[str, Mapping[str, float]]) -> str:
    """One line: ``baselines 0.01 CPU core-h; candidates 0.20 CPU core-h + 0.05 GPU-h; final runs none; total ...``."""

    def part(c: Mapping[str, float]) -> str:
        bits = [f"{c['cpu_core_h']:.3g} CPU core-h" if c["cpu_core_h"] else "", f"{c['gpu_h']:.3g} GPU-h" if c["gpu_h"] else ""]
        return " + ".join(b for b in bits if b) or "none"

    return "; ".join(f"{name} {part(c)}" for name, c in cost.items())
