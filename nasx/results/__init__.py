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
