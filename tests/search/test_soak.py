"""The soak benchmark at reduced scale: workers killed with ``kill -9`` at random while a driver restarts them
(``benchmarks/soak.py`` runs it at full scale: 4 workers, 1,000 trials). Workers are forked from the test
process, so a restart costs no interpreter start."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_killed_and_restarted_workers_lose_nothing_train_nothing_twice_and_keep_the_budget(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    out = soak.soak(trials=40, workers=4, kill_every=0.5, sleep=0.3, space="macro-cifar", folder=tmp_path, seed=1, fork=True)
    assert out["injections"] >= 5, out
    assert (out["lost"], out["duplicates"], out["overshoot"], out["left_running"], out["crashed"]) == (0, 0, 0, 0, 0), out
    assert out["evaluated"] == 40
