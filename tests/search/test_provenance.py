"""Provenance frozen in the study: the setup at creation, segments on changed settings, one entry per run, the cost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import TinySpace, tiny_config, tiny_data, write_batches

from nasx.report import collect
from nasx.results import compute_cost
from nasx.search import StudyError, run_search
from nasx.search import provenance as prov
from nasx.search.runner import load_study


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


@pytest.mark.slow
def test_a_resumed_study_keeps_its_creation_record_appends_runs_and_a_segment(tmp_path: Path) -> None:
    first = tiny_config(tmp_path, budget={"trials": 2}, fidelity={"epochs": 1}, early_stopping={"kind": "none"})
    run_search(first, root=tmp_path / "runs", space=TinySpace())
    study = load_study(first, tmp_path / "runs")
    created = prov.provenance(study)
    assert created["config"]["seed"] == 0 and len(created["data_sha256"]) == 64 and created["space_digest"]
    assert created["code"]["nasx"]
    # a resume with another training seed: allowed, but recorded as a new segment from the next trial on
    second = first.model_copy(update={"seed": 7, "budget": first.budget.model_copy(update={"trials": 3})})
    run_search(second, root=tmp_path / "runs", space=TinySpace())
    study = load_study(first, tmp_path / "runs")
    assert prov.provenance(study) == created, "the creation record is frozen"
    segs = prov.segments(study)
    assert [s["settings"]["seed"] for s in segs] == [0, 7] and segs[1]["from_trial"] == 2
    runs = prov.runs(study)
    assert len(runs) == 2 and all(r["end"] and r["cpu"] and r["host"] and r["versions"]["torch"] for r in runs)
    assert [r["segment"] for r in runs] == [0, 1]
    # a third run with unchanged settings: a run entry, no new segment
    run_search(second, root=tmp_path / "runs", space=TinySpace())
    study = load_study(first, tmp_path / "runs")
    assert len(prov.segments(study)) == 2 and len(prov.runs(study)) == 3
    # the report reads the stored record, not the YAML: the study config on disk now claims another sampler seed
    disk = second.model_copy(update={"sampler": second.sampler.model_copy(update={"seed": 99})})
    meta = collect.from_study(disk, tmp_path / "runs").meta
    assert meta["sampler"] == "random, seed 0" and "stored in the study" in meta["record"]
    assert "trials 0-1: seed 0" in meta["segments"] and "trials 2 on: seed 7" in meta["segments"]
    assert meta["search runs"].count(" to ") == 3
    cost = compute_cost(collect.from_study(disk, tmp_path / "runs").frame.to_dict("records"))
    assert cost["candidates"]["cpu_core_h"] > 0 and cost["baselines"]["cpu_core_h"] == 0 and cost["total"]["gpu_h"] == 0
    assert "candidates" in meta["compute"] and "CPU core-h" in meta["compute"]


def test_a_resume_on_other_bytes_at_the_same_path_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, budget={"trials": 1}, fidelity={"epochs": 1}, early_stopping={"kind": "none"})
    run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    src = tiny_data(tmp_path)
    shutil.rmtree(src)
    write_batches(src, per_batch=41, n_test=10)  # same folder, other images
    with pytest.raises(StudyError, match="sha256"):
        run_search(
            cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"trials": 2})}),
            root=tmp_path / "runs",
            space=TinySpace(),
        )


def test_compute_cost_splits_by_part_and_device() -> None:
    rows = [
        {"role": "candidate", "state": "complete", "wall_s": 3600, "device": "cpu", "cores": 4},
        {"role": "candidate", "state": "duplicate", "wall_s": 3600, "device": "cpu", "cores": 4},  # trained nothing
        {"role": "baseline", "state": "complete", "wall_s": 1800, "device": "cuda:0", "gpus": 0.5},
        {"role": "candidate", "state": "infeasible", "wall_s": None, "device": None},
    ]
    finals = [{"train_seconds": 7200, "device": "cuda", "gpus": 1.0}]
    cost = compute_cost(rows, finals)
    assert cost["candidates"] == {"cpu_core_h": 4.0, "gpu_h": 0.0}
    assert cost["baselines"] == {"cpu_core_h": 0.0, "gpu_h": 0.25}
    assert cost["final runs"] == {"cpu_core_h": 0.0, "gpu_h": 2.0}
    assert cost["total"] == {"cpu_core_h": 4.0, "gpu_h": 2.25}


def test_a_baseline_whose_input_does_not_match_the_data_is_refused(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, budget={"trials": 1}, baselines=["resnet50"])
    with pytest.raises(StudyError, match=r"224x224.*resnet20_cifar"):
        run_search(cfg, root=tmp_path / "runs", space=TinySpace())
