"""A tiny design space and data set for search tests (imported by test_search*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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


WORKER_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from search_helpers import TinySpace, tiny_config
from nasx.search import run_search

cfg = tiny_config(Path({folder!r}), **{overrides!r})
ready = Path({ready!r})
(ready / {name!r}).touch()
deadline = time.time() + 120
while len(list(ready.iterdir())) < {workers}:  # start together, once all have imported torch and optuna
    if time.time() > deadline:
        sys.exit("the other workers did not start")
    time.sleep(0.05)
run_search(cfg, root=Path({folder!r}) / "runs", space=TinySpace(), dry_run_s={dry_run_s!r})
"""


@contextmanager
def workers(folder: Path, n: int, dry_run_s: float, **overrides: Any) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` search processes on the study ``tiny_config(folder, **overrides)``, released at the same moment;
    any still running when the block ends are killed.

    Trials sleep ``dry_run_s`` instead of training (``run_search(dry_run_s=...)``).
    """
    tiny_data(folder)  # once, before the workers race to write it
    ready = folder / "ready"
    ready.mkdir(parents=True, exist_ok=True)
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "NASX_CACHE": str(folder / "cache")}
    procs = []
    for i in range(n):
        script = WORKER_SCRIPT.format(
            tests=tests, folder=str(folder), overrides=overrides, ready=str(ready), name=f"w{i}", workers=n, dry_run_s=dry_run_s
        )
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env))
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def trained_per_digest(rows: list[dict[str, Any]]) -> Counter[str]:
    """How many trials of each genotype were trained to a result (complete or stopped early)."""
    return Counter(r["digest"] for r in rows if r["state"] in ("complete", "stopped"))
