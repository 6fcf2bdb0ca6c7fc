"""Design-space statistics only over random samples trained equally: the census, or a random-sampler study."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TinySpace, make_study, tiny_config

from nasx.report import collect
from nasx.report.figures import edf_figure
from nasx.search import record as rec
from nasx.search import run_search
from nasx.search.runner import load_study
from nasx.search.study import census_set


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


def test_a_model_based_study_draws_no_edf_until_it_takes_a_census(tmp_path: Path) -> None:
    common = {
        "sampler": {"kind": "tpe", "seed": 0},
        "fidelity": {"epochs": 4},
        "early_stopping": {"kind": "asha", "grace": 1, "reduction": 2},
    }
    cfg = tiny_config(tmp_path, name="tpe", budget={"trials": 6}, **common)
    run_search(cfg, root=tmp_path / "runs", space=TinySpace(), dry_run_s=0.0)
    study = load_study(cfg, tmp_path / "runs")
    accuracy, note = census_set(study, "tpe")
    assert accuracy == {} and "not computed" in note and "census" in note
    source = collect.from_study(cfg, tmp_path / "runs")
    assert edf_figure([source]) is None and source.importances == {} and "not computed" in source.importance_note
    # the same study with a census of 4: four more candidates, drawn at random, never stopped early
    more = cfg.model_copy(update={"census": 4, "budget": cfg.budget.model_copy(update={"trials": 10})})
    run_search(more, root=tmp_path / "runs", space=TinySpace(), dry_run_s=0.0)
    study = load_study(cfg, tmp_path / "runs")
    taken = [r for r in rec.records(study) if r.census]
    assert len(taken) == 4 and all(r.status in ("complete", "duplicate") for r in taken)
    assert all(len(r.curve) == 4 for r in taken if r.status == "complete"), "trained to full fidelity"
    accuracy, note = census_set(study, "tpe")
    assert set(accuracy) <= {r.number for r in taken} and "random census" in note
    fig = edf_figure([collect.from_study(more, tmp_path / "runs")])
    assert fig is not None and f"n={len(accuracy)}" in fig.layout.title.text and "random census" in fig.layout.title.text


def test_a_random_sampler_study_uses_every_distinct_candidate_at_the_epoch_all_reached(tmp_path: Path) -> None:
    cfg = make_study(tmp_path, trials=12)  # random sampler, asha: some stopped at epoch 1, one failed
    study = load_study(cfg, tmp_path / "runs")
    accuracy, note = census_set(study, "random")
    curves = {r.number: r.curve for r in rec.records(study)}
    assert accuracy and all(acc == curves[n][0] for n, acc in accuracy.items()), "epoch 1, which every one reached"
    assert "at epoch 1" in note and "1 failed left out" in note
    source = collect.from_study(cfg, tmp_path / "runs")
    assert f"over {len(accuracy)} trials" in source.importance_note
