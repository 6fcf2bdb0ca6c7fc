"""One Optuna study per nasx study: opening it (its identity checked), recovering stale trials, retrying failures.

The study folder, its journal, the workers that share it and the heartbeat are in
:mod:`nasx.search.workers` (the guarantees several workers keep are stated there); what a study's
records add up to (the budget census, progress, duplicates, the front) is in
:mod:`nasx.search.queries`. Both are re-exported here under the names they always had.

- **Opening** (:func:`open_study`): a new study records its identity (space, objectives, fidelity,
  recipe, data); a study opened again must match it, or the change is refused, naming each field.
- **Failure policy** (``failures`` in the study config, :func:`retry_or_not`): a trial that failed
  by a crash or out of memory is queued again up to ``failures.retries`` times (``retry_of``,
  ``attempt``); one whose worker died (``worker_lost``: a kill is not the trial's fault) spends no
  retry and is queued again up to ``failures.lost`` times (``lost``); a non-finite loss is final.
  The failed trial keeps its record, marked ``retried``, and counts towards the budget no more. A
  baseline whose retries ran out is tried once more by each new search (see
  ``nasx.search.trial.pending_baselines``).
- **Stale trials** (:func:`recover_stale`): a running trial whose worker is dead, or whose heartbeat
  is stale, is failed as ``worker_lost`` and retried by the policy.
- The n-th worker ever started on a study samples with a seed derived from ``(sampler.seed, n)``
  (the first uses ``sampler.seed`` itself, :func:`worker_seed`), so a second or resumed worker does
  not replay the draws of the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasx.search import record as rec
from nasx.search.config import FailureKind, Failures, StudyConfig, StudyError
from nasx.search.queries import (
    MIN_IMPORTANCE_TRIALS,
    Census,
    Progress,
    add_elapsed,
    candidates,
    census,
    census_set,
    evaluated,
    find_duplicate,
    front_numbers,
    importances,
    infeasible_cap,
    progress,
    running_twin,
    study_front,
    study_objectives,
    summary_rows,
    trial_rows,
)
from nasx.search.samplers import make_sampler
from nasx.search.workers import (
    DAMAGED_SUFFIX,
    FlockJournalLock,
    Heartbeats,
    Liveness,
    Worker,
    heartbeat_stale,
    log,
    rdb_storage,
    repair_journal,
    storage_for,
    study_dir,
)
from nasx.train.run import versions

__all__ = [
    # study.py's own
    "open_study",
    "recover_stale",
    "retry_or_not",
    "worker_seed",
    # re-exported from nasx.search.workers
    "DAMAGED_SUFFIX",
    "FlockJournalLock",
    "Heartbeats",
    "Liveness",
    "Worker",
    "heartbeat_stale",
    "log",
    "rdb_storage",
    "repair_journal",
    "storage_for",
    "study_dir",
    # re-exported from nasx.search.queries
    "MIN_IMPORTANCE_TRIALS",
    "Census",
    "Progress",
    "add_elapsed",
    "candidates",
    "census",
    "census_set",
    "evaluated",
    "find_duplicate",
    "front_numbers",
    "importances",
    "infeasible_cap",
    "progress",
    "running_twin",
    "study_front",
    "study_objectives",
    "summary_rows",
    "trial_rows",
]


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def worker_seed(seed: int, n: int) -> int:
    """The sampler seed of the ``n``-th worker started on a study (0: the first, which uses ``seed`` itself)."""
    if n == 0:
        return seed
    return int(hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()[:8], 16)


def open_study(
    cfg: StudyConfig,
    folder: Path,
    space_digest: str,
    worker: Worker | None = None,
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Create the study, or load it and check that space, objectives, fidelity, recipe and data are unchanged.

    With ``worker``, done under its ``ask.lock``, and the sampler is seeded for the worker's place
    among the workers ever started on the study (see :func:`worker_seed`). ``storage``: one already
    opened (default: :func:`storage_for`).
    """
    directions = cfg.directions
    make_sampler(cfg.sampler, len(directions))  # refused here, before the study's identity is written
    with worker.turn() if worker is not None else _nothing():
        storage = storage or storage_for(cfg, folder)
        study = optuna.create_study(study_name=cfg.name, storage=storage, directions=directions, load_if_exists=True)
        old = rec.study_attr(study, rec.IDENTITY)
        identity = {**cfg.identity(), "space_digest": space_digest}
        if old is None:
            rec.set_study_attr(study, rec.IDENTITY, identity)
            rec.set_study_attr(study, rec.CONFIG, cfg.model_dump(mode="json"))
        elif old != identity:
            changes = "; ".join(_diff(old, identity))
            raise StudyError(
                f"study {cfg.name!r} in {folder} was started with another setup ({changes}); "
                "give the changed study a new name, or delete the old folder"
            )
        rec.set_study_attr(study, rec.VERSIONS, versions())  # of the latest search run, for the report
        n = rec.workers_started(study)
        if worker is not None:
            rec.set_study_attr(study, rec.WORKERS_STARTED, n + 1)
        seed = worker_seed(cfg.sampler.seed, n)
        study.sampler = make_sampler(cfg.sampler.model_copy(update={"seed": seed}), len(directions))
        return study


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def retry_or_not(
    study: optuna.Study, trial: optuna.Trial, failure: str, policy: Failures, params: dict[str, Any] | None = None
) -> bool:
    """Before a failed ``trial`` is told: record ``failure`` and, when the policy allows, queue it again.

    A candidate is re-queued with its parameters (``params``, by default those it drew; ``retry_of``,
    ``attempt``, ``lost``); a baseline is asked again by name (see ``pending_baselines``). A
    ``worker_lost`` failure spends no retry (``attempt`` stays; ``lost`` counts such runs, up to
    ``policy.lost``). Returns whether it will be retried.
    """
    r = rec.read(trial)
    params = trial.params if params is None else params
    rec.write_failure(trial, failure)
    if r.retried:  # queued already by a worker that died before telling
        return True
    if not policy.retries_left(failure, r.attempt, r.lost) or r.role is None:
        return False
    if r.is_candidate and not params:
        return False  # died before drawing its parameters: nothing was evaluated, nothing to repeat
    rec.mark_retried(trial)
    if r.is_candidate:
        if failure == FailureKind.WORKER_LOST.value:  # not the trial's fault: spends no retry
            again = rec.retry_attrs(trial.number, r.attempt, r.lost + 1)
        else:
            again = rec.retry_attrs(trial.number, r.attempt + 1, r.lost)
        study.enqueue_trial(params, user_attrs=again)
    return True


def recover_stale(study: optuna.Study, worker: Worker, policy: Failures | None = None) -> list[int]:
    """Running trials whose worker is dead (see :class:`Worker`), or, with an RDB storage, whose heartbeat is
    stale: mark them failed (``worker_lost``) and retry them by ``policy``.

    Call it under ``worker.turn()``. ``policy``: the study's ``failures`` (default: one retry).
    """
    policy = policy or Failures()
    stale = []
    silent = set(heartbeat_stale(study))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = rec.read(t).worker
        where = worker.liveness(who)
        by_heartbeat = where == "elsewhere" and t._trial_id in silent  # a live worker of this machine is never failed
        if where != "dead" and not by_heartbeat:
            continue
        handle = optuna.trial.Trial(study, t._trial_id)
        why = "stopped sending its heartbeat" if by_heartbeat else "stopped"
        try:
            rec.mark_stale(handle, f"the search process running it ({who or 'unknown'}) {why} (crash or kill)")
            queued = t.system_attrs.get("fixed_params") or {}  # a retry that died before it drew its queued parameters
            retry_or_not(study, handle, FailureKind.WORKER_LOST.value, policy, {**queued, **t.params})
            study.tell(t.number, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # a worker of another machine recovered it first
        stale.append(t.number)
    return stale
