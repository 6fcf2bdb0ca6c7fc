"""A tiny design space and data set for search tests (imported by test_search*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_data import write_batches

from nasx.search.config import StudyConfig
from nasx.space import Network


class TinySpace:
    """stem width x residual depth x an optional SE, at 32x32: 3 * 3 * 2 = 18 points."""

    def sample(self, trial: Any) -> Network:
        width = trial.suggest_categorical("stem.out", [4, 8, 16])
        depth = trial.suggest_int("stages.0.depth", 1, 3)
        se = trial.suggest_categorical("stages.0.block.se", [0.0, 0.25])
        return Network.from_string(f"stem[conv(out={width})] | {depth}*residual(se={se})@{width}")

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return {"tiny": 1}


def tiny_data(folder: Path) -> Path:
    src = folder / "cifar-10-batches-py"
    if not src.exists():
        write_batches(src, per_batch=40, n_test=10)
    return src


def tiny_config(folder: Path, **overrides: Any) -> StudyConfig:
    base: dict[str, Any] = {
        "name": "tiny",
        "space": "tiny",
        "data": {"source": str(tiny_data(folder)), "val_size": 40},
        "objectives": ["val_acc", "macs"],
        "sampler": {"kind": "random", "seed": 0},
        "budget": {"trials": 4},
        "fidelity": {"epochs": 3},
        "recipe": {"batch_size": 32, "eval_batch_size": 64, "precision": "fp32", "channels_last": False, "lr": 0.05},
        "early_stopping": {"kind": "asha", "grace": 1, "reduction": 2},
        "device": "cpu",
    }
    base.update(overrides)
    return StudyConfig.model_validate(base)
