"""Zero-cost proxies in a search: recorded with each trained trial, a pre-filter that trains only k of N, an extra objective."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers import TinySpace, tiny_config

from nasx.search import StudyError, run_search
from nasx.search.runner import load_study

PROXIES = {"compute": ["params", "synflow", "naswot"], "rank_by": "naswot", "batches": 1, "batch_size": 16}
FAST = {"fidelity": {"epochs": 1}, "early_stopping": {"kind": "none"}}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


def counting_train(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import nasx.search.trial as trial_mod

    trained: list[str] = []
    real = trial_mod.train
    monkeypatch.setattr(trial_mod, "train", lambda net, *a, **k: trained.append(net.digest) or real(net, *a, **k))
    return trained


def test_proxies_are_recorded_with_every_trained_trial_for_the_network_it_trains(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, budget={"trials": 3}, proxies=PROXIES, **{**FAST, "fidelity": {"epochs": 1, "width": 0.5}})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    trained = [r for r in summary.rows if r["state"] == "complete"]
    assert trained
    for r in trained:
        assert set(r["proxies"]) == {"params", "synflow", "naswot"}
        assert r["proxies"]["params"] == r["proxy_params"] < r["params"]  # the half-width network that is trained
        assert all(v is not None for v in r["proxies"].values())
    study = load_study(cfg, tmp_path / "runs")
    assert len(study.directions) == 2, "record only: no extra objective"


def test_a_prefilter_study_trains_only_k_of_n_and_tells_the_rest_to_optuna_as_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = counting_train(monkeypatch)
    cfg = tiny_config(tmp_path, budget={"trials": 2}, proxies={**PROXIES, "use": "prefilter", "draw": 6, "keep": 2}, **FAST)
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    rows = [r for r in summary.rows if r["role"] == "candidate"]
    screened = [r for r in rows if r["state"] == "screened"]
    kept = [r for r in rows if r["state"] in ("complete", "stopped")]
    assert len(trained) == 2 == len(kept) == summary.progress.trials, "only k trained; screened ones spend no budget"
    assert len(screened) == len(rows) - 2 and all(r["epochs"] == 0 for r in screened)
    scored = [r for r in screened if "ranked" in r["reason"]]
    assert len(scored) == 4 and all(r["reason"].endswith("of 6: not trained") for r in scored), "a pool of N = 6"
    twins = [r for r in screened if "ranked" not in r["reason"]]  # a genotype drawn twice in the pool is not scored twice
    assert all("same genotype" in r["reason"] for r in twins)
    assert max(r["proxies"]["naswot"] for r in scored) <= min(r["proxies"]["naswot"] for r in kept), "the best k are kept"
    study = load_study(cfg, tmp_path / "runs")
    states = {t.number: t.state for t in study.get_trials()}
    assert all(states[r["number"]] == optuna.trial.TrialState.PRUNED for r in screened)


def test_a_proxy_objective_is_one_more_maximised_objective(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, budget={"trials": 2}, proxies={**PROXIES, "use": "objective", "rank_by": "synflow"}, **FAST)
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    study = load_study(cfg, tmp_path / "runs")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MAXIMIZE"]
    done = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all(t.values[2] == t.user_attrs["proxies"]["synflow"] for t in done)
    assert summary.progress.trials == 2
    # the objective is part of the study's identity: dropping it is an error, not a silent change
    with pytest.raises(StudyError, match="proxy_objective"):
        run_search(tiny_config(tmp_path, budget={"trials": 3}, **FAST), root=tmp_path / "runs", space=TinySpace())


@pytest.mark.parametrize(
    ("proxies", "message"),
    [
        ({"use": "prefilter", "draw": 2, "keep": 3}, "proxies: keep: must be at most draw"),
        ({"use": "objective", "compute": ["params"], "rank_by": "zico"}, "proxies: rank_by: must be one of compute"),
        ({"compute": ["jacov"]}, "proxies.compute"),
        ({"draw_n": 3}, "proxies.draw_n"),
    ],
)
def test_the_proxies_section_is_validated_by_path(tmp_path: Path, proxies: dict, message: str) -> None:
    from nasx.search.config import validated

    with pytest.raises(StudyError, match=message.replace(".", r"\.")):
        validated({"name": "x", "space": "macro-cifar", "budget": {"trials": 1}, "proxies": proxies}, "x.yaml")
