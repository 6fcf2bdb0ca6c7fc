"""Study results as tables and numbers: Pareto fronts, hypervolume, EDFs (numpy and pandas only)."""

from __future__ import annotations

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
    "edf",
    "final_summary",
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


def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Table of ``nasx.search.study.trial_rows`` dicts plus ``error`` (1 - val_acc) and ``on_front``.

    ``on_front`` is the Pareto front over (val_acc max, macs min) among complete candidates
    with both values; every other row is False.
    """
    extra = [k for r in rows for k in r if k not in COLUMNS]
    frame = pd.DataFrame.from_records(rows, columns=[*COLUMNS, *dict.fromkeys(extra)])
    frame["val_acc"] = frame["val_acc"].astype(float)
    frame["error"] = 1.0 - frame["val_acc"]
    macs = frame["macs"].astype(float)
    eligible = (
        (frame["state"] == "complete") & (frame["role"] == "candidate") & frame["val_acc"].notna() & macs.notna()
    ).to_numpy()
    on_front = np.zeros(len(frame), dtype=bool)
    on_front[eligible] = pareto_front(frame["val_acc"].to_numpy()[eligible], macs.to_numpy()[eligible])
    frame["on_front"] = on_front
    return frame


FINAL_COLUMNS = ("label", "role", "name", "digest", "string", "recipe", "epochs", "params", "macs", "search_acc")


def final_summary(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Final runs (``nasx.search.retrain.final_runs``) per model and recipe: seeds, test accuracy mean and std.

    ``test_std`` is the sample standard deviation over seeds (0 for one seed). Rows are sorted by MACs.
    """
    columns = [*FINAL_COLUMNS, "seeds", "test_mean", "test_std"]
    if not runs:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame.from_records(runs)
    frame["search_acc"] = frame["search_acc"].astype(float)
    grouped = frame.groupby(["digest", "recipe", "epochs"], sort=False)
    out = grouped.agg(
        label=("label", "first"),
        role=("role", "first"),
        name=("name", "first"),
        string=("string", "first"),
        params=("params", "first"),
        macs=("macs", "first"),
        search_acc=("search_acc", "first"),
        seeds=("seed", "nunique"),
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0),
    ).reset_index()
    return out[columns].sort_values("macs", kind="stable").reset_index(drop=True)
