"""Searches end to end on tiny data: records, constraints, de-duplication, samplers, identity, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from search_helpers import TinySpace, tiny_config

from nasx.search import StudyConfig, StudyError, run_search, status
from nasx.search.config import SamplerConfig
from nasx.search.samplers import RegularizedEvolutionSampler
from nasx.search.study import exclusive

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


def test_a_study_records_every_trial_with_its_genotype_costs_and_curve(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, baselines=[])
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    rows = [r for r in summary.rows if r["role"] == "candidate"]
    assert summary.progress.trials == 4 == len(rows)
    for r in rows:
        assert r["state"] in ("complete", "stopped", "duplicate") and r["digest"] and r["string"].startswith("stem[")
        assert r["macs"] > 0 and r["params"] > 0 and r["family"]
        if r["state"] == "complete":
            assert r["epochs"] == 3 and r["val_acc"] == r["curve"][-1]
        if r["state"] == "stopped":
            assert r["epochs"] in (1, 2) and "stopped early" in r["reason"]
    assert (tmp_path / "runs" / "tiny" / "journal.log").is_file()
    p, again = status(cfg, tmp_path / "runs")
    assert p.trials == 4 and [r["digest"] for r in again] == [r["digest"] for r in summary.rows]


def test_constraints_keep_infeasible_candidates_from_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasx.search.trial as trial_mod

    trained = []
    real = trial_mod.train
    monkeypatch.setattr(trial_mod, "train", lambda net, *a, **k: trained.append(net.digest) or real(net, *a, **k))
    cfg = tiny_config(tmp_path, constraints={"max_macs": 1_500_000}, budget={"trials": 6})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    infeasible = [r for r in summary.rows if r["state"] == "infeasible"]
    assert infeasible, "the tiny space has points above 1.5M MACs"
    assert all(r["macs"] > 1_500_000 and "max_macs" in r["reason"] and r["epochs"] == 0 for r in infeasible)
    assert not {r["digest"] for r in infeasible} & set(trained)


def test_a_genotype_evaluated_before_is_not_trained_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasx.search.trial as trial_mod

    calls = []
    real = trial_mod.train
    monkeypatch.setattr(trial_mod, "train", lambda net, *a, **k: calls.append(net.digest) or real(net, *a, **k))
    cfg = tiny_config(tmp_path, budget={"trials": 30}, early_stopping={"kind": "none"}, fidelity={"epochs": 1})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    dups = [r for r in summary.rows if r["state"] == "duplicate"]
    assert len(calls) == len(set(calls)) <= 18, "each of the 18 points is trained at most once"
    assert dups and all(r["duplicate_of"] is not None and r["val_acc"] is not None for r in dups)


def test_baselines_are_trained_with_the_same_recipe_and_recorded(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, baselines=["resnet20_cifar"], budget={"trials": 2}, fidelity={"epochs": 1})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    base = [r for r in summary.rows if r["role"] == "baseline"]
    assert len(base) == 1 and base[0]["name"] == "resnet20_cifar" and base[0]["params"] == 269_722
    assert base[0]["state"] == "complete" and base[0]["epochs"] == 1
    assert summary.progress.trials == 2 and summary.progress.baselines == 1
    again = run_search(cfg, root=tmp_path / "runs", space=TinySpace(), trials=3)
    assert sum(r["role"] == "baseline" for r in again.rows) == 1, "a baseline is trained once per study"


@pytest.mark.parametrize("kind", ["random", "tpe", "nsga2", "evolution"])
def test_every_sampler_gives_valid_trials_beside_baselines(tmp_path: Path, kind: str) -> None:
    cfg = tiny_config(
        tmp_path,
        sampler={"kind": kind, "seed": 1, "population": 2, "sample_size": 2},
        budget={"trials": 5},
        fidelity={"epochs": 1},
        early_stopping={"kind": "none"},
        baselines=["resnet20_cifar"],
    )
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    cand = [r for r in summary.rows if r["role"] == "candidate"]
    assert len(cand) == 5 and all(r["state"] in ("complete", "duplicate") for r in cand)


def test_evolution_mutates_exactly_one_parameter_of_a_parent() -> None:
    sampler = RegularizedEvolutionSampler(population=4, sample_size=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    space = TinySpace()
    study.optimize(lambda t: float(space.sample(t).stages[0].depth), n_trials=30)
    trials = study.trials
    for child in trials[4:]:
        parents = [t for t in trials[: child.number] if t.params]
        assert min(sum(t.params[k] != child.params[k] for k in child.params) for t in parents) <= 1


def test_a_changed_study_is_an_error_that_says_what_changed(tmp_path: Path) -> None:
    run_search(tiny_config(tmp_path, budget={"trials": 1}), root=tmp_path / "runs", space=TinySpace())
    changed = tiny_config(tmp_path, budget={"trials": 1}, fidelity={"epochs": 2})
    with pytest.raises(StudyError, match=r"fidelity.epochs: 3 -> 2"):
        run_search(changed, root=tmp_path / "runs", space=TinySpace())


def test_a_second_search_of_the_same_study_is_refused(tmp_path: Path) -> None:
    with exclusive(tmp_path), pytest.raises(StudyError, match="another `nasx search` is running"), exclusive(tmp_path):
        pass


def test_unknown_keys_and_bad_values_name_their_path(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: s\nspace: tiny\nbudget: {trials: 2, wall: 3}\nsampler: {kind: annealing}\n")
    with pytest.raises(StudyError) as info:
        StudyConfig.load(f)
    assert "budget.wall: Extra inputs are not permitted" in str(info.value) and "sampler.kind" in str(info.value)
    assert SamplerConfig().kind == "tpe"


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from search_helpers import TinySpace, tiny_config
    import nasx.search.trial as trial_mod
    from nasx.search import run_search

    real = trial_mod.train
    def slow(net, *a, **k):
        result = real(net, *a, **k)
        if Path({marker!r}).exists():
            time.sleep(60)  # the second trial hangs until it is killed
        Path({marker!r}).write_text("one trial done")
        return result
    trial_mod.train = slow
    cfg = tiny_config(Path({folder!r}), budget={{"trials": 3}}, early_stopping={{"kind": "none"}}, fidelity={{"epochs": 1}})
    run_search(cfg, root=Path({folder!r}) / "runs", space=TinySpace())
    """
)


def test_kill_9_loses_no_finished_trial_and_retries_the_running_one(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), marker=str(marker), folder=str(tmp_path))
    env = {**os.environ, "NASX_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 90
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the first trial finished"
    cfg = tiny_config(tmp_path, budget={"trials": 3}, early_stopping={"kind": "none"}, fidelity={"epochs": 1})
    while time.time() < deadline:  # wait until one trial is recorded as finished and the next one as running
        _, rows = status(cfg, tmp_path / "runs")
        if any(r["state"] == "running" for r in rows) and any(r["state"] in ("complete", "duplicate") for r in rows):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    p, rows = status(cfg, tmp_path / "runs")
    finished_before = [r["number"] for r in rows if r["state"] in ("complete", "duplicate")]
    assert finished_before and any(r["state"] == "running" for r in rows)
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    assert summary.retried, "the trial left running was marked failed and queued again"
    after = {r["number"]: r for r in summary.rows}
    assert all(after[n]["state"] in ("complete", "duplicate") for n in finished_before)
    stale = after[summary.retried[0]]
    assert stale["state"] == "failed" and "stopped" in stale["reason"]
    assert summary.progress.trials >= 3
    assert any(r["state"] in ("complete", "duplicate") and r["number"] > summary.retried[0] for r in summary.rows)


def test_a_trial_that_crashes_is_recorded_as_failed_and_the_search_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nasx.search.trial as trial_mod

    real = trial_mod.train
    calls = []

    def flaky(net, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")
        return real(net, *a, **k)

    monkeypatch.setattr(trial_mod, "train", flaky)
    cfg = tiny_config(tmp_path, budget={"trials": 2}, fidelity={"epochs": 1}, early_stopping={"kind": "none"})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    first = summary.rows[0]
    assert first["state"] == "failed" and first["reason"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert summary.rows[1]["state"] in ("complete", "duplicate")
