"""The Ray Tune executor on a local Ray (2 CPUs): it completes a study and records into the same storage,
and loses nothing when its driver or one of its worker processes is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, TinySpace, tiny_config, trained_per_digest

from nasx.search import run_search, status
from nasx.search.runner import load_study

pytest.importorskip("ray.tune")

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.mark.slow
def test_ray_executor_continues_a_local_study_in_the_same_storage(tmp_path: Path) -> None:
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


def session_processes(sid: int, title: str = "") -> list[int]:
    """Pids of the processes of session ``sid`` whose command line contains ``title`` (Ray's workers keep the driver's session)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if os.getsid(int(entry)) == sid and title in cmdline:
                found.append(int(entry))
        except (OSError, ProcessLookupError):  # gone meanwhile
            continue
    return found


def ray_config(folder: Path, trials: int):
    return tiny_config(
        folder,
        budget={"trials": trials},
        fidelity={"epochs": 2},
        early_stopping={"kind": "none"},
        executor={"kind": "ray", "cpus_per_trial": 1, "max_concurrent": 2},
    )


DRIVER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{here!r}, {tests!r}]
    from pathlib import Path
    from test_search_ray import ray_config
    from helpers import TinySpace
    from nasx.search import run_search

    run_search(ray_config(Path({folder!r}), {trials}), root=Path({folder!r}) / "runs", space=TinySpace(), dry_run_s=3.0)
    """
)


@pytest.mark.slow
def test_kill_9_of_the_ray_driver_loses_no_finished_trial_and_retries_the_running_ones(tmp_path: Path) -> None:
    budget = 4
    cfg = ray_config(tmp_path, budget)
    script = DRIVER.format(here=str(HERE), tests=str(ROOT / "tests"), folder=str(tmp_path), trials=budget)
    driver = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ), start_new_session=True)
    deadline = time.time() + 180
    before: list[dict] = []
    try:
        while time.time() < deadline:
            if (tmp_path / "runs" / "tiny" / "journal.log").is_file():
                _, rows = status(cfg, tmp_path / "runs")
                if any(r["state"] == "complete" for r in rows) and any(r["state"] == "running" and r["curve"] for r in rows):
                    os.kill(driver.pid, signal.SIGKILL)  # mid-trial: a trial is running, one epoch in
                    driver.wait()
                    break
            time.sleep(0.2)
    finally:
        for pid in session_processes(driver.pid):  # Ray's own processes, left behind by the killed driver
            os.kill(pid, signal.SIGKILL)
        driver.kill()
    assert driver.returncode == -signal.SIGKILL, "the driver was killed mid-trial"
    _, before = status(cfg, tmp_path / "runs")
    finished = {r["number"]: r for r in before if r["state"] in ("complete", "stopped", "duplicate")}
    interrupted = [r["number"] for r in before if r["state"] == "running"]
    assert finished and interrupted

    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace(), dry_run_s=3.0)
    after = {r["number"]: r for r in summary.rows}
    for n, r in finished.items():
        assert (after[n]["state"], after[n]["val_acc"], after[n]["digest"]) == (r["state"], r["val_acc"], r["digest"])
    trials = {t.number: t for t in load_study(cfg, tmp_path / "runs").get_trials()}
    for n in interrupted:
        assert after[n]["state"] == "failed" and after[n]["failure"] == "worker_lost" and "search process" in after[n]["reason"]
        retry = [r for r in summary.rows if r["retry_of"] == n]
        if trials[n].params:
            assert after[n]["retried"] and len(retry) == 1 and retry[0]["state"] in ("complete", "duplicate")
            assert trials[retry[0]["number"]].params == trials[n].params
        else:  # asked, killed before its parameters were drawn: nothing was evaluated, nothing to retry
            assert not after[n]["retried"] and not retry
    assert max(trained_per_digest(summary.rows).values()) == 1, "no finished genotype is trained twice"
    assert summary.progress.trials == budget and not any(r["state"] in ("running", "waiting") for r in summary.rows)


@pytest.mark.slow
def test_a_ray_worker_killed_during_a_trial_is_recorded_failed_and_retried(tmp_path: Path) -> None:
    budget = 2
    cfg = ray_config(tmp_path, budget).model_copy(
        update={"executor": ray_config(tmp_path, budget).executor.model_copy(update={"max_concurrent": 1})}
    )
    killed: list[int] = []
    stop = threading.Event()

    def kill_a_trial_worker() -> None:  # once a trial is one epoch in, SIGKILL the Ray worker process running it
        me = os.getsid(0)
        while not stop.is_set() and not killed:
            if (tmp_path / "runs" / "tiny" / "journal.log").is_file():
                _, rows = status(cfg, tmp_path / "runs")
                running = [r for r in rows if r["state"] == "running" and len(r["curve"]) == 1]
                workers = session_processes(me, "ray::ImplicitFunc.train")
                if running and len(workers) == 1:
                    os.kill(workers[0], signal.SIGKILL)
                    killed.append(running[0]["number"])
            time.sleep(0.1)

    spy = threading.Thread(target=kill_a_trial_worker)
    spy.start()
    try:
        summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace(), dry_run_s=3.0)
    finally:
        stop.set()
        spy.join()
    assert len(killed) == 1, "one fault injected"
    rows = {r["number"]: r for r in summary.rows}
    lost = rows[killed[0]]
    assert lost["state"] == "failed" and lost["failure"] == "worker_lost" and "Ray worker process" in lost["reason"]
    assert lost["retried"] and lost["curve"] == lost["curve"][:1]
    retry = [r for r in summary.rows if r["retry_of"] == killed[0]]
    assert len(retry) == 1 and retry[0]["state"] in ("complete", "duplicate") and retry[0]["digest"] == lost["digest"]
    assert summary.progress.trials == budget and max(trained_per_digest(summary.rows).values()) == 1


@pytest.mark.slow
def test_ray_executor_runs_a_proxy_prefilter_study(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path,
        budget={"trials": 2},
        fidelity={"epochs": 1},
        early_stopping={"kind": "none"},
        proxies={"use": "prefilter", "compute": ["params", "naswot"], "draw": 4, "keep": 2, "batches": 1, "batch_size": 16},
        executor={"kind": "ray", "cpus_per_trial": 1, "max_concurrent": 2},
    )
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    rows = [r for r in summary.rows if r["role"] == "candidate"]
    trained = [r for r in rows if r["state"] == "complete"]
    assert len(trained) == 2 == summary.progress.trials
    assert all(r["proxies"]["naswot"] is not None for r in trained), "scored on the driver before scheduling"
    assert sum(1 for r in rows if r["state"] == "screened" and "ranked" in r["reason"]) == 2
