"""Searches end to end on tiny data: records, constraints, de-duplication, samplers, identity, resume,
workers sharing a study, stale trials and the failure policy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from helpers import ROOT, TinySpace, tiny_config, trained_per_digest, workers
from pydantic import ValidationError

from nasx.search import StudyConfig, StudyError, run_search, status
from nasx.search import record as rec
from nasx.search.config import SamplerConfig
from nasx.search.runner import load_study, space_digest
from nasx.search.samplers import RegularizedEvolutionSampler
from nasx.search.study import Worker, open_study
from nasx.train.loop import TrainingFailed


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


@pytest.mark.slow
def test_a_second_search_of_the_same_study_shares_it(tmp_path: Path) -> None:
    """Two processes on one journal: the budget is shared exactly, no genotype is trained twice, one baseline."""
    budget = 10
    common = {"budget": {"trials": budget}, "early_stopping": {"kind": "none"}, "fidelity": {"epochs": 2}}
    with workers(tmp_path, 2, dry_run_s=0.8, baselines=["resnet20_cifar"], **common) as procs:
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    cfg = tiny_config(tmp_path, baselines=["resnet20_cifar"], **common)
    p, rows = status(cfg, tmp_path / "runs")  # the journal loads
    cand = [r for r in rows if r["role"] == "candidate"]
    assert p.trials == budget == sum(r["state"] in ("complete", "stopped", "duplicate", "failed") for r in cand)
    assert not any(r["state"] in ("running", "waiting") for r in rows)
    assert max(trained_per_digest(rows).values()) == 1, "no genotype is trained twice"
    assert sum(r["role"] == "baseline" for r in rows) == 1, "the baseline is trained by one worker"
    assert len({r["worker"] for r in cand}) == 2, "both workers ran candidates"
    assert not list((tmp_path / "runs" / "tiny" / "workers").iterdir()), "each worker removed its lock file"


def test_executor_workers_start_worker_processes_that_share_the_study(tmp_path: Path) -> None:
    """``executor.workers: 2``: one call, a second process joins the study; the budget and de-duplication stay exact.

    (Which process trains how many of 6 tiny trials depends on how fast the second one starts; the shipped
    quickstart, two workers, runs end to end through ``python -m nasx`` in tests/test_shipped_studies.py.)"""
    budget = 6
    cfg = tiny_config(
        tmp_path,
        budget={"trials": budget},
        early_stopping={"kind": "none"},
        fidelity={"epochs": 1},
        executor={"kind": "local", "workers": 2},
    )
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    cand = [r for r in summary.rows if r["role"] == "candidate"]
    assert summary.progress.trials == budget
    assert not any(r["state"] in ("running", "waiting") for r in summary.rows)
    assert max(trained_per_digest(summary.rows).values()) == 1, "no genotype is trained twice"
    runs = rec.study_attr(load_study(cfg, tmp_path / "runs"), rec.RUNS)
    assert len({r["worker"] for r in runs}) == 2 and all(r["end"] for r in runs), "the worker process joined and ended"
    assert {r["worker"] for r in cand} <= {r["worker"] for r in runs}
    with pytest.raises(ValidationError, match="workers: only the local executor"):
        StudyConfig.model_validate({**cfg.model_dump(exclude={"source_file"}), "executor": {"kind": "ray", "workers": 2}})


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_recovered_by_the_other_while_it_runs(tmp_path: Path) -> None:
    budget = 8
    common = {"budget": {"trials": budget}, "early_stopping": {"kind": "none"}, "fidelity": {"epochs": 2}}
    with workers(tmp_path, 2, dry_run_s=1.5, **common) as (victim, survivor):
        cfg = tiny_config(tmp_path, **common)
        deadline = time.time() + 90
        killed = None
        while killed is None and time.time() < deadline:
            if (tmp_path / "runs" / "tiny" / "journal.log").is_file():
                _, rows = status(cfg, tmp_path / "runs")
                mine = [r for r in rows if r["state"] == "running" and r["digest"] and f"-{victim.pid}-" in (r["worker"] or "")]
                if mine and any(r["state"] == "complete" for r in rows):
                    os.kill(victim.pid, signal.SIGKILL)
                    killed = mine[0]["number"]
            time.sleep(0.1)
        assert killed is not None, "the victim was caught running a trial"
        assert victim.wait(timeout=30) == -signal.SIGKILL and survivor.wait(timeout=90) == 0
    p, rows = status(cfg, tmp_path / "runs")
    lost = rows[killed]
    assert (
        lost["state"] == "failed" and lost["failure"] == "worker_lost" and lost["retried"] and str(victim.pid) in lost["reason"]
    )
    retry = next(r for r in rows if r["retry_of"] == killed)
    assert retry["state"] in ("complete", "duplicate") and f"-{survivor.pid}-" in retry["worker"]
    assert p.trials == budget and max(trained_per_digest(rows).values()) == 1
    assert not any(r["state"] in ("running", "waiting") for r in rows)


def test_a_genotype_in_training_on_another_worker_is_waited_for_not_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nasx.search.trial as trial_mod

    cfg = tiny_config(tmp_path, budget={"trials": 2}, early_stopping={"kind": "none"}, fidelity={"epochs": 1})
    study = open_study(cfg, tmp_path / "runs" / "tiny", space_digest(TinySpace()))
    point = {"stem.out": 8, "stages.0.depth": 2, "stages.0.block.se": 0.25}
    study.enqueue_trial(point)
    study.enqueue_trial(point)  # both workers draw the same genotype at once
    trained = []
    real = trial_mod.dry_train
    monkeypatch.setattr(trial_mod, "dry_train", lambda net, *a: trained.append(net.digest) or real(net, *a))
    workers = [
        threading.Thread(
            target=run_search, args=(cfg,), kwargs={"root": tmp_path / "runs", "space": TinySpace(), "dry_run_s": 2.0}
        )
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(trained) == 1
    trials = load_study(cfg, tmp_path / "runs").get_trials()
    first, second = sorted(trials, key=lambda t: t.user_attrs["state"])
    assert first.user_attrs["state"] == "complete" and second.user_attrs["state"] == "duplicate"
    assert second.user_attrs["waiting_for"] == second.user_attrs["duplicate_of"] == first.number
    assert second.values == first.values and first.user_attrs["worker"] != second.user_attrs["worker"]


def test_a_worker_is_live_exactly_while_its_process_holds_its_lock(tmp_path: Path) -> None:
    me = Worker(tmp_path)
    with Worker(tmp_path) as other:
        assert me.liveness(other.id) == "live" and (tmp_path / "workers" / f"{other.id}.lock").is_file()
    assert me.liveness(other.id) == "dead"
    crashed = f"{me.host}-999999-abcdef"
    (tmp_path / "workers" / f"{crashed}.lock").write_text("{}")  # left behind by a process that died: nobody holds it
    assert me.liveness(crashed) == "dead" and not (tmp_path / "workers" / f"{crashed}.lock").exists()
    assert me.liveness("elsewhere.example-12-abcdef") == "elsewhere", "another machine's trials are left alone"
    assert me.liveness(None) == "dead" and Worker(tmp_path, journal=False).liveness(None) == "elsewhere"


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
    from helpers import TinySpace, tiny_config
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


def fake_train(fail_with: dict[int, Exception]):
    """A stand-in for ``train`` that fails on the calls numbered in ``fail_with`` (1-based) and otherwise
    reports the made-up result of ``dry_train`` at once; ``calls`` lists the genotypes it was given."""
    import nasx.search.trial as trial_mod

    calls: list[str] = []

    def train(net, splits, recipe, fidelity, *, seed, device, callback):
        calls.append(net.digest)
        if len(calls) in fail_with:
            raise fail_with[len(calls)]
        return trial_mod.dry_train(net, fidelity.epochs_for(recipe), 0.0, callback)

    return train, calls


def test_a_trial_that_crashes_is_recorded_as_failed_retried_once_and_the_search_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nasx.search.trial as trial_mod

    train, calls = fake_train({1: RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")})
    monkeypatch.setattr(trial_mod, "train", train)
    cfg = tiny_config(tmp_path, budget={"trials": 2}, fidelity={"epochs": 1}, early_stopping={"kind": "none"})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    first, retry = summary.rows[0], summary.rows[1]
    assert first["state"] == "failed" and first["reason"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert first["failure"] == "crash" and first["retried"]
    assert retry["retry_of"] == 0 and retry["digest"] == first["digest"] and retry["state"] == "complete"
    assert summary.progress.trials == 2 and summary.progress.by_state == {"retried": 1, "complete": 2}
    assert len(calls) == 3


def test_retries_are_bounded_by_the_failure_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasx.search.trial as trial_mod

    train, calls = fake_train({n: RuntimeError("always") for n in range(1, 20)})
    monkeypatch.setattr(trial_mod, "train", train)
    common = {"budget": {"trials": 2}, "fidelity": {"epochs": 1}, "early_stopping": {"kind": "none"}}
    summary = run_search(tiny_config(tmp_path, failures={"retries": 2}, **common), root=tmp_path / "runs", space=TinySpace())
    rows = summary.rows
    assert [r["state"] for r in rows] == ["failed"] * 6 and [r["retry_of"] for r in rows] == [None, 0, 1, None, 3, 4]
    assert [r["retried"] for r in rows] == [True, True, False] * 2 and summary.progress.trials == 2 and len(calls) == 6
    summary = run_search(
        tiny_config(tmp_path / "none", failures={"retries": 0}, **common), root=tmp_path / "none", space=TinySpace()
    )
    assert [r["retried"] for r in summary.rows] == [False, False]


def test_a_non_finite_loss_is_final_and_an_out_of_memory_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasx.search.trial as trial_mod

    train, calls = fake_train(
        {
            1: TrainingFailed("non_finite_loss", 2, "mean training loss nan"),
            2: TrainingFailed("out_of_memory", 1, "CUDA out of memory. Tried to allocate 2.00 GiB"),
        }
    )
    monkeypatch.setattr(trial_mod, "train", train)
    cfg = tiny_config(tmp_path, budget={"trials": 3}, fidelity={"epochs": 2}, early_stopping={"kind": "none"})
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    nan, oom = summary.rows[0], summary.rows[1]
    assert nan["state"] == "failed" and nan["failure"] == "non_finite_loss" and not nan["retried"]
    assert nan["reason"] == "non_finite_loss in epoch 2: mean training loss nan"
    assert oom["state"] == "failed" and oom["failure"] == "out_of_memory" and oom["retried"]
    assert oom["reason"].startswith("out_of_memory in epoch 1: CUDA out of memory")
    retries = [r for r in summary.rows if r["retry_of"] is not None]
    assert [(r["retry_of"], r["state"]) for r in retries] == [(oom["number"], "complete")], "only the out-of-memory one"
    assert summary.progress.trials == 3, "the study carries on: the NaN counts, the retried OOM does not"
    again = [r for r in summary.rows if r["digest"] == nan["digest"] and r["number"] != nan["number"]]
    assert all(r["state"] == "duplicate" for r in again), "a NaN genotype drawn again is not trained again"


def test_the_failure_policy_is_validated_by_path(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"failures.retry: Extra inputs are not permitted"):
        StudyConfig.load(_yaml(tmp_path, "failures: {retry: 2}"))
    with pytest.raises(StudyError, match=r"failures.retry_on.*non_finite_loss repeats"):
        StudyConfig.load(_yaml(tmp_path, "failures: {retry_on: [crash, non_finite_loss]}"))
    with pytest.raises(StudyError, match=r"failures.retries"):
        StudyConfig.load(_yaml(tmp_path, "failures: {retries: -1}"))
    assert StudyConfig.load(_yaml(tmp_path, "failures: {retries: 3, retry_on: [worker_lost]}")).failures.retries == 3


def _yaml(folder: Path, extra: str) -> Path:
    f = folder / "s.yaml"
    f.write_text(f"name: s\nspace: macro-cifar\nbudget: {{trials: 2}}\n{extra}\n")
    return f


def test_a_writer_killed_while_it_holds_the_journal_lock_does_not_stall_the_next(tmp_path: Path) -> None:
    from nasx.search.study import FlockJournalLock

    lock = tmp_path / "journal.log.flock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, time; f = open({str(lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"1\n", "the lock is held"
    mine = FlockJournalLock(lock)
    waiter = threading.Thread(target=mine.acquire)
    waiter.start()
    waiter.join(timeout=0.5)
    assert waiter.is_alive(), "a held lock excludes the next writer"
    holder.kill()  # dies holding it, as a worker killed in the middle of an append
    holder.wait()
    waiter.join(timeout=1.0)
    assert not waiter.is_alive(), "released at once: Optuna's own file locks would wait 30 s, then break it"
    mine.release()


def test_a_queued_retry_whose_worker_died_before_it_drew_its_parameters_is_queued_again(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from nasx.search.study import recover_stale

    cfg = tiny_config(tmp_path, budget={"trials": 2})
    folder = tmp_path / "runs" / "tiny"
    study = open_study(cfg, folder, space_digest(TinySpace()))
    point = {"stem.out": 4, "stages.0.depth": 1, "stages.0.block.se": 0.0}
    study.enqueue_trial(point, user_attrs={"retry_of": 0, "attempt": 1})
    with Worker(folder) as me:
        asked = study.ask()  # by a worker that dies at once, before sampling
        asked.set_user_attr("role", "candidate")
        asked.set_user_attr("worker", f"{me.host}-999999-abcdef")
        unmarked = study.ask()  # and one that died between the ask and the mark: stale too (journal storage)
        with me.turn():
            assert recover_stale(study, me, cfg.failures.model_copy(update={"retries": 2})) == [asked.number, unmarked.number]
    trials = study.get_trials()
    assert trials[asked.number].state == TrialState.FAIL and trials[asked.number].user_attrs["retried"]
    again = [t for t in trials if t.state == TrialState.WAITING]
    assert len(again) == 1 and again[0].system_attrs["fixed_params"] == point
    assert again[0].user_attrs == {"retry_of": asked.number, "attempt": 1, "lost": 1}, "a lost worker spends no retry"
    assert trials[unmarked.number].state == TrialState.FAIL and "retried" not in trials[unmarked.number].user_attrs
