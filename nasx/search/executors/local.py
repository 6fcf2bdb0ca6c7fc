"""The local executor: trials one after another in this process, asked from and told to the study."""

from __future__ import annotations

import time
from collections.abc import Callable

from nasx.search.config import StudyError
from nasx.search.study import add_elapsed, infeasible_cap, progress
from nasx.search.trial import Context, Outcome, pending_baselines, run_baseline, run_candidate


def run_local(
    ctx: Context,
    *,
    trials: int | None,
    wall_time: float | None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_epoch: Callable[[], None] | None = None,
) -> None:
    """Train the pending baselines, then candidates until the budget (counted across runs) is spent."""
    for name in pending_baselines(ctx):
        t0 = time.perf_counter()
        outcome = run_baseline(ctx, name, on_epoch)
        add_elapsed(ctx.study, time.perf_counter() - t0)
        if on_outcome is not None:
            on_outcome(outcome)
    while True:
        p = progress(ctx.study)
        if trials is not None and p.trials >= trials:
            return
        if wall_time is not None and p.elapsed >= wall_time:
            return
        if p.by_state.get("infeasible", 0) >= infeasible_cap(trials):
            raise StudyError(
                f"{p.by_state['infeasible']} candidates broke the constraints and only {p.trials} met them: "
                "loosen constraints or narrow the space"
            )
        t0 = time.perf_counter()
        outcome = run_candidate(ctx, on_epoch)
        add_elapsed(ctx.study, time.perf_counter() - t0)
        if on_outcome is not None:
            on_outcome(outcome)
