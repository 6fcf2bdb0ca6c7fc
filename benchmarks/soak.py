"""Soak test: local workers on one journal study, killed with ``kill -9`` at random while a driver restarts them.

Each trial sleeps ``--sleep`` seconds instead of training (``run_search(dry_run_s=...)``); sampling,
complexity counting, de-duplication, stale recovery and recording in the journal all run as in a
real search. The driver keeps ``--workers`` search processes running, kills a random one every
``--kill-every`` seconds on average (uniform in [0.5x, 1.5x]) and starts a new one in its place,
until the workers finish the budget by themselves. Then it reads the journal with plain
``optuna.load_study`` and prints:

- injections: the kills;
- lost: budgeted candidates that ended failed for good, plus baselines without a result;
- duplicates: genotypes trained to a result more than once;
- overshoot: candidates evaluated beyond the budget (negative: short of it);
- left running: trials still running in the record.

    python benchmarks/soak.py [--trials 1000] [--workers 4] [--kill-every 3] [--sleep 0.05]

Exits 1 when any of lost, duplicates, overshoot, left running is not 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

WORKER = """
import sys
from pathlib import Path
from nasx.search import StudyConfig, run_search
cfg = StudyConfig.model_validate({config!r})
run_search(cfg, root=Path({root!r}), dry_run_s={sleep!r})
"""


def config(trials: int, space: str) -> dict[str, Any]:
    return {
        "name": "soak",
        "space": space,
        "objectives": ["val_acc", "macs"],
        "sampler": {"kind": "random", "seed": 0},
        "budget": {"trials": trials},
        "fidelity": {"epochs": 2},
        "early_stopping": {"kind": "none"},
        "baselines": ["resnet20_cifar", "resnet56_cifar"],
        "failures": {"retries": 1, "lost": 1000},
    }


def check(root: Path, trials: int, baselines: list[str]) -> dict[str, int]:
    """The record as plain Optuna reads it (no nasx code): lost, duplicates, overshoot, left running."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(root / "soak" / "journal.log")))
    study = optuna.load_study(study_name="soak", storage=storage)
    trials_ = study.get_trials(deepcopy=False)
    cand = [t for t in trials_ if t.user_attrs.get("role") == "candidate"]
    evaluated = [
        t
        for t in cand
        if t.state.is_finished()
        and "digest" in t.user_attrs
        and t.user_attrs.get("state") != "infeasible"
        and not t.user_attrs.get("retried")
    ]
    failed_for_good = [t for t in evaluated if t.state == TrialState.FAIL and t.user_attrs.get("state") == "failed"]
    done_baselines = {
        t.user_attrs.get("name") for t in trials_ if t.user_attrs.get("role") == "baseline" and t.state == TrialState.COMPLETE
    }
    trained = Counter(
        t.user_attrs["digest"] for t in trials_ if t.state.is_finished() and t.user_attrs.get("state") in ("complete", "stopped")
    )
    return {
        "evaluated": len(evaluated),
        "lost": len(failed_for_good) + sum(b not in done_baselines for b in baselines),
        "duplicates": sum(n - 1 for n in trained.values() if n > 1),
        "overshoot": len(evaluated) - trials,
        "left_running": sum(t.state == TrialState.RUNNING for t in trials_),
        "worker_lost": sum(t.user_attrs.get("failure") == "worker_lost" for t in trials_),
        "trials_in_record": len(trials_),
    }


def _forked_worker(cfg: dict[str, Any], root: str, sleep: float) -> None:
    from nasx.search import StudyConfig, run_search

    run_search(StudyConfig.model_validate(cfg), root=Path(root), dry_run_s=sleep)


class _Forked:
    """A worker forked from this (already importing) process: starts in milliseconds; same ``poll``/``wait`` as Popen."""

    def __init__(self, cfg: dict[str, Any], root: str, sleep: float) -> None:
        import multiprocessing

        self.proc = multiprocessing.get_context("fork").Process(target=_forked_worker, args=(cfg, root, sleep))
        self.proc.start()
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.exitcode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self) -> int | None:
        self.proc.join()
        return self.proc.exitcode


def soak(
    trials: int, workers: int, kill_every: float, sleep: float, space: str, folder: Path, seed: int = 0, fork: bool = False
) -> dict[str, int]:
    """Run the soak in ``folder``; ``fork``: workers are forked from this process (fast restarts, for the test
    suite) instead of fresh interpreters (as a user starts them)."""
    rng = random.Random(seed)
    cfg = config(trials, space)
    root = folder / "runs"
    script = WORKER.format(config=cfg, root=str(root), sleep=sleep)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = 0
    if fork:
        import nasx.search  # noqa: F401 (imported once, before forking)

    def start() -> Any:
        nonlocal started
        started += 1
        if fork:
            return _Forked(cfg, str(root), sleep)
        log = open(logs / f"worker{started}.log", "wb")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT)

    procs = [start() for _ in range(workers)]
    kills = failures = 0
    t0 = time.perf_counter()
    next_kill = t0 + rng.uniform(0.5, 1.5) * kill_every
    while True:
        running = [p for p in procs if p.poll() is None]
        for p in procs:
            if p.poll() not in (None, 0, -signal.SIGKILL):
                failures += 1
        procs = running + [p for p in procs if p.poll() == 0]
        if not running:
            break
        if time.perf_counter() >= next_kill:
            victim = rng.choice(running)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            procs.remove(victim)
            procs.append(start())
            next_kill = time.perf_counter() + rng.uniform(0.5, 1.5) * kill_every
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    figures = check(root, trials, cfg["baselines"])
    return {
        "trials": trials,
        "workers": workers,
        "injections": kills,
        "processes": started,
        "crashed": failures,
        **figures,
        "seconds": round(seconds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kills")
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds each trial sleeps instead of training")
    ap.add_argument("--space", default="macro-cifar")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="keep the study in this folder (default: a temporary one)")
    args = ap.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        out = soak(args.trials, args.workers, args.kill_every, args.sleep, args.space, Path(args.keep), args.seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = soak(args.trials, args.workers, args.kill_every, args.sleep, args.space, Path(tmp), args.seed)
    print(json.dumps(out))
    print(
        f"{out['workers']} workers, {out['trials']} trials, {out['injections']} kill -9 injections in {out['seconds']} s: "
        f"lost {out['lost']}, trained twice {out['duplicates']}, overshoot {out['overshoot']}, left running {out['left_running']}"
    )
    if out["lost"] or out["duplicates"] or out["overshoot"] or out["left_running"] or out["crashed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
