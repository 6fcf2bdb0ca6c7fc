"""The Ray Tune executor on a local Ray (2 CPUs): it completes a study and records into the same storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_helpers import TinySpace, tiny_config

from nasx.search import run_search

pytest.importorskip("ray.tune")


@pytest.mark.slow
def test_ray_executor_continues_a_local_study_in_the_same_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    common = {"budget": {"trials": 2}, "fidelity": {"epochs": 2}, "early_stopping": {"kind": "none"}}
    local = run_search(tiny_config(tmp_path, **common), root=tmp_path / "runs", space=TinySpace())
    assert local.progress.trials == 2
    cfg = tiny_config(
        tmp_path,
        **{**common, "budget": {"trials": 5}},
        baselines=["resnet20_cifar"],
        executor={"kind": "ray", "cpus_per_trial": 1, "max_concurrent": 2},
    )
    seen = []
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace(), on_outcome=seen.append)
    rows = summary.rows
    assert summary.progress.trials == 5 and summary.progress.baselines == 1
    assert [r["number"] for r in rows[:2]] == [r["number"] for r in local.rows[:2]], "the local trials are kept"
    ray_rows = [r for r in rows if r["number"] >= 2]
    assert all(r["state"] in ("complete", "duplicate") for r in ray_rows)
    trained = [r for r in ray_rows if r["state"] == "complete"]
    assert trained and all(r["epochs"] == 2 and r["val_acc"] == r["curve"][-1] for r in trained)
    assert {o.number for o in seen} == {r["number"] for r in ray_rows}
