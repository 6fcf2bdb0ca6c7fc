"""``run_search``: join (create or resume) a study as a worker and run its executor until the budget is spent.

Several ``run_search`` calls (``nasx search`` processes) may run one study at once: each is a worker
with its own lock and identity, and they share the budget (see :mod:`nasx.search.workers` for the rules).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nasx.search import provenance
from nasx.search.config import StudyConfig, StudyError
from nasx.search.queries import Progress, progress, trial_rows
from nasx.search.rungs import RungDecider
from nasx.search.study import open_study, recover_stale
from nasx.search.trial import Context, Evaluator, Outcome, replay_rungs
from nasx.search.workers import Heartbeats, Worker, rdb_storage, study_dir


def space_digest(space: Any) -> str:
    blob = json.dumps(space.model_dump(mode="json") if hasattr(space, "model_dump") else repr(space), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_baselines(cfg: StudyConfig, side: int, classes: int) -> None:
    """A baseline is plotted at the cost of the network that trained: its stated input must be the data's."""
    from nasx import zoo
    from nasx.errors import NasxError

    for name in cfg.baselines:
        try:
            zoo.check_fits(zoo.get(name), f"baselines: {name}", side, classes)
        except NasxError as exc:
            raise StudyError(str(exc)) from None


@dataclass(frozen=True)
class SearchSummary:
    folder: Path
    progress: Progress
    retried: list[int]
    rows: list[dict[str, Any]]


def run_search(
    cfg: StudyConfig,
    *,
    root: Path | None = None,
    trials: int | None = None,
    executor: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_epoch: Callable[[], None] | None = None,
    on_start: Callable[[Context, list[int]], None] | None = None,
    space: Any | None = None,
    dry_run_s: float | None = None,
    evaluator: Evaluator | None = None,
) -> SearchSummary:
    """Run ``cfg`` (resuming it if its folder has one), ``trials`` overriding the budget's trial count.

    ``space``: a design-space object to use instead of loading ``cfg.space`` (anything with
    ``sample(trial) -> Network``). ``dry_run_s``: trials sleep that long instead of training (the
    executor benchmark); data is not loaded. ``evaluator`` (benchmarks and tests, local executor only): a dry
    run (``dry_run_s`` 0 unless given) whose candidates are scored by it (:class:`nasx.search.trial.Evaluator`).
    """
    from nasx import data as datasets
    from nasx.errors import NasxError

    if trials is not None:
        cfg = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"trials": trials})})
    kind = executor or cfg.executor.kind
    if kind not in ("local", "ray"):
        raise StudyError(f"executor: must be local or ray, got {kind!r}")
    if evaluator is not None:
        if kind != "local":
            raise StudyError(f"evaluator: the local executor only (its functions are not sent to Ray), got {kind!r}")
        if cfg.executor.workers > 1:
            raise StudyError(
                f"evaluator: one local worker only (not sent to worker processes), got workers {cfg.executor.workers}"
            )
        dry_run_s = 0.0 if dry_run_s is None else dry_run_s
    where = f"{cfg.source_file}: " if cfg.source_file else ""
    # everything that can be refused is checked before the study folder or its identity is written:
    # a first start that fails must leave nothing that a fixed config would then be compared against
    space_given = space is not None
    if space is None:
        from nasx.space.design import load_space

        try:
            space = load_space(cfg.space)
        except NasxError as exc:
            raise StudyError(f"{where}space: {exc}") from None
    if cfg.device is not None and dry_run_s is None and kind == "local":  # with Ray, the trial's own GPU
        from nasx.train.loop import check_device

        check_device(cfg.device, where=f"{where}device")
    splits, data_sha256 = None, None
    if dry_run_s is None:
        try:
            full = datasets.load(cfg.data.source)
            splits = datasets.split(full, cfg.data.val, cfg.data.split_seed, source=full.source)
        except NasxError as exc:
            raise StudyError(f"{where}data.source {cfg.data.source!r}: {exc}") from None
        data_sha256 = full.digest
        check_baselines(cfg, full.train.images.shape[1], len(full.train.classes))
    recipe = cfg.resolved_recipe()
    if splits is not None:
        from nasx.train.loop import check_data

        check_data(splits, recipe, cfg.fidelity, where=f"{where}data.source {cfg.data.source!r}")
    digest = space_digest(space)
    storage = rdb_storage(cfg) if cfg.storage else None  # connects now: a bad URL or server fails here
    folder = study_dir(cfg, root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(f"the study folder {folder} cannot be made: {exc.strerror or exc}") from None
    with Worker(folder, journal=not cfg.storage) as worker:
        study = open_study(cfg, folder, digest, worker, storage=storage)
        with worker.turn():
            run_index = provenance.begin_run(
                study, cfg, digest, data_sha256, worker.id, None if splits is None else len(splits.val)
            )
            retried = recover_stale(study, worker, cfg.failures)
        decider = None
        if cfg.early_stopping.kind == "asha":
            decider = RungDecider(cfg.early_stopping.grace, cfg.early_stopping.reduction, cfg.epochs)
        with Heartbeats(study) as beats:
            ctx = Context(cfg, study, space, splits, recipe, decider, cfg.device, worker, dry_run_s, beats=beats)  # type: ignore[arg-type]
            ctx.evaluator = evaluator
            replay_rungs(ctx)
            if on_start is not None:
                on_start(ctx, retried)
            try:
                if kind == "local":
                    from nasx.search.executors.local import local_workers, run_local

                    with local_workers(cfg, root, dry_run_s, space if space_given else None):
                        budget = cfg.budget
                        run_local(ctx, trials=budget.trials, wall_time=budget.wall_time, on_outcome=on_outcome, on_epoch=on_epoch)
                elif kind == "ray":
                    from nasx.search.executors.ray import run_ray

                    run_ray(
                        ctx,
                        trials=cfg.budget.trials,
                        wall_time=cfg.budget.wall_time,
                        on_outcome=on_outcome,
                        storage_path=str(folder.resolve()),
                    )
            finally:
                with worker.turn():
                    provenance.end_run(study, run_index)
            return SearchSummary(folder, progress(study), retried, trial_rows(study))


def load_study(cfg: StudyConfig, root: Path | None = None) -> optuna.Study:
    """Open an existing study read-only-ish (no lock: status may run beside a search)."""
    from nasx.search.workers import storage_for

    folder = study_dir(cfg, root)
    if not cfg.storage and not (folder / "journal.log").is_file():
        raise StudyError(f"no study {cfg.name!r} in {folder}: run `nasx search` first")
    try:
        return optuna.load_study(study_name=cfg.name, storage=storage_for(cfg, folder))
    except KeyError:
        raise StudyError(f"no study {cfg.name!r} in the storage of {folder}") from None


def status(cfg: StudyConfig, root: Path | None = None) -> tuple[Progress, list[dict[str, Any]]]:
    study = load_study(cfg, root)
    return progress(study), trial_rows(study)
