"""The local executor: trials one after another in this process, asked from and told to the study.

Any number of local workers (``nasx search`` processes) may run one study together; each goes
through :func:`nasx.search.trial.next_trial` for every trial, which keeps the shared budget, the
baselines and the de-duplication exact between them (the rules are in :mod:`nasx.search.workers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
