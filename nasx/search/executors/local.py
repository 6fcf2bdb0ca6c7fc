"""The local executor: trials one after another in this process, asked from and told to the study.

Any number of local workers (``nasx search`` processes) may run one study together; each goes
through :func:`nasx.search.trial.next_trial` for every trial, which keeps the shared budget, the
baselines and the de-duplication exact between them (the rules are in :mod:`nasx.search.workers`).
``executor.workers: N`` starts N - 1 of them as child processes of this one (:func:`start_workers`),
each on an equal share of the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nasx.search.queries import add_elapsed
from nasx.search.trial import POLL_S, Candidate, Context, Outcome, next_trial, train_and_record, wait_for_twin


def run_local(
    ctx: Context,
    *,
    trials: int | None,
    wall_time: float | None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_epoch: Callable[[], None] | None = None,
) -> None:
    """Train the pending baselines, then candidates until the budget (counted across runs and workers) is spent.

    Returns when the budget is spent and no other worker of this machine still runs a candidate
    (one of those may fail and be queued again), or when the wall time is up.
    """
    while True:
        step = next_trial(ctx, trials, wall_time)
        if step == "done":
            return
        if step == "idle":
            time.sleep(POLL_S)
            continue
        if isinstance(step, Candidate):
            step = wait_for_twin(ctx, step)  # another worker trains the same genotype: not counted as time spent here
        t0 = time.perf_counter()
        if isinstance(step, Outcome):
            outcome = step
        else:
            outcome = train_and_record(ctx, step.trial, step.net, step.params, step.macs, step.early_stop, on_epoch)
        with ctx.worker.turn():
            add_elapsed(ctx.study, time.perf_counter() - t0)
        if on_outcome is not None:
            on_outcome(outcome)


def worker_threads(workers: int) -> int:
    """Torch threads for each of ``workers`` local worker processes: an equal share of this machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def _child(cfg: Any, root: Path | None, threads: int, dry_run_s: float | None, space: Any) -> None:
    """A worker process started by :func:`start_workers`: the same study, one more worker, no output of its own."""
    import torch

    from nasx.errors import NasxError
    from nasx.search.runner import run_search

    torch.set_num_threads(threads)
    try:
        run_search(cfg, root=root, dry_run_s=dry_run_s, space=space)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent reports it
        pass
    except NasxError as exc:
        print(f"nasx: worker process {os.getpid()} stopped: {exc}", file=sys.stderr)
        sys.exit(1)


def start_workers(cfg: Any, root: Path | None, dry_run_s: float | None = None, space: Any = None) -> list[Any]:
    """Start ``cfg.executor.workers - 1`` worker processes on the study (already created by this process).

    Each runs ``run_search`` on a copy of ``cfg`` with one worker, so it starts none of its own; this
    process is the remaining worker. Returns the processes, for :func:`stop_workers`.
    """
    n = cfg.executor.workers
    if n <= 1:
        return []
    one = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"workers": 1})})
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding locks, threads and open journals
    procs = []
    for _ in range(n - 1):
        p = ctx.Process(target=_child, args=(one, root, worker_threads(n), dry_run_s, space), daemon=False)
        p.start()
        procs.append(p)
    return procs


def stop_workers(procs: list[Any], wait_s: float = 30.0) -> list[int]:
    """Wait for the worker processes (the budget is spent, or Ctrl-C reached them too); end any that hang.

    Returns their exit codes. A worker ended here leaves its trial running in the study, which the
    next search recovers like any killed worker's (see ``nasx.search.study.recover_stale``).
    """
    deadline = time.monotonic() + wait_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(5)
    return [p.exitcode for p in procs]


@contextmanager
def local_workers(cfg: Any, root: Path | None, dry_run_s: float | None = None, space: Any = None) -> Iterator[None]:
    """This process as one of ``cfg.executor.workers`` local workers for the block: the others started as child
    processes (:func:`start_workers`), this one's torch threads set to its share, both undone at the end."""
    children = start_workers(cfg, root, dry_run_s, space)
    if not children:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(worker_threads(cfg.executor.workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)
        stop_workers(children)
