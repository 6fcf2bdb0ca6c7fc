"""The Ray Tune executor: the same study, asked and told from a Ray Tune searcher, trials on Ray workers.

The driver owns the Optuna study and is the study's worker (see :mod:`nasx.search.workers`): it may
run beside other drivers or local workers on the same study. :class:`StudySearcher` asks through
the same critical section as the local executor (:func:`nasx.search.trial.next_trial`), records
infeasible ones and duplicates itself (they never reach a Ray worker), and tells it every result,
so both executors write one record. :class:`RungScheduler` applies the same rung logic as the
local executor (``nasx.search.rungs``) and notes why a trial errored: a Ray worker process that
died is ``worker_lost``, an exception in training ``crash``; either is retried by the failure
policy. If the driver dies, its running trials are stale to the next worker, as with the local
executor. Ray workers are reused between trials (``reuse_actors``) and keep the decoded data in
memory. ``address`` joins an existing cluster; without it a local Ray is started.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from nasx.errors import NasxError
from nasx.search import record as rec
from nasx.search.batch import batched
from nasx.search.config import FailureKind
from nasx.search.proxies import objective_values, record_scores
from nasx.search.queries import add_elapsed, progress
from nasx.search.record import Status
from nasx.search.rungs import RungDecider, RungEntry
from nasx.search.trial import (
    POLL_S,
    Candidate,
    Context,
    Outcome,
    costs_of,
    drop_queued,
    fail,
    finish,
    next_trial,
    settle,
    twin_running,
)

_DATA: dict[tuple[Any, ...], Any] = {}  # per worker process: decoded splits, reused across trials


def _trainable(config: dict[str, Any]) -> None:
    """Runs on a Ray worker: train one genotype, reporting every epoch."""
    from nasx import data as datasets
    from nasx.space.genotype import Network
    from nasx.train.loop import TrainingFailed, train
    from nasx.train.recipe import Fidelity, Recipe

    device = ray_device(config["device"], bool(config.get("gpus")))
    key = (config["source"], config["val_size"], config["split_seed"])
    if key not in _DATA and config.get("dry_run_s") is None:
        _DATA[key] = datasets.load_splits(
            config["source"], val_size=config["val_size"], seed=config["split_seed"], progress=False
        )
    net = Network.from_dict(config["genotype"])
    recipe, fidelity = Recipe.model_validate(config["recipe"]), Fidelity.model_validate(config["fidelity"])
    t0 = time.perf_counter()

    def report(m: Any) -> None:
        tune.report({"epoch": m.epoch, "val_acc": m.val_acc, "wall_s": time.perf_counter() - t0})

    try:
        if config.get("dry_run_s") is not None:
            from nasx.search.trial import dry_train

            result = dry_train(net, fidelity.epochs_for(recipe), config["dry_run_s"], report)
        else:
            result = train(net, _DATA[key], recipe, fidelity, seed=config["seed"], device=device, callback=report)
        tune.report(
            {
                "epoch": result.epochs,
                "val_acc": result.val_acc,
                "finished": True,
                "device": result.device,
                "device_name": result.device_name,
                "cuda": result.cuda,
                "wall_s": time.perf_counter() - t0,
            }
        )
    except TrainingFailed as exc:
        failed = f"{exc.reason} in epoch {exc.epoch}: {exc.detail}"
        tune.report({"epoch": exc.epoch, "val_acc": 0.0, "failed": failed, "failure": exc.reason})


def ray_device(device: str | None, has_gpu: bool) -> str:
    """The device a Ray trial trains on. Ray shows a trial only the GPUs it was given, as ``cuda:0``..., so a
    configured ``cuda:N`` means "a GPU" there; a trial given no GPU trains on the CPU, never on a GPU it did not ask for."""
    if not has_gpu:
        return "cpu"
    if device is None or device.startswith("cuda"):
        return "cuda"
    return device


def trial_resources(gpus_per_trial: float | None, device: str | None, cluster_gpus: float) -> float:
    """The GPU share each Ray trial requests, or a :class:`NasxError` for a setting that would mislead.

    None: one GPU per trial when the cluster has GPUs (and the study does not say ``device: cpu``), 0 without.
    A GPU device with ``gpus_per_trial: 0``, or GPUs requested on a cluster that has none, is refused.
    """
    wants_cpu = device is not None and device.startswith("cpu")
    if gpus_per_trial is None:
        return 1.0 if cluster_gpus > 0 and not wants_cpu else 0.0
    if gpus_per_trial > 0 and cluster_gpus <= 0:
        raise NasxError(
            f"executor.gpus_per_trial: {gpus_per_trial:g} GPUs per trial, but the Ray cluster has no GPU; "
            "set executor.gpus_per_trial: 0 (or leave it out) to train on CPUs"
        )
    if gpus_per_trial > 0 and wants_cpu:
        raise NasxError(f"executor.gpus_per_trial: {gpus_per_trial:g} with device: {device}: pick one")
    if gpus_per_trial == 0 and device is not None and device.startswith("cuda"):
        raise NasxError(
            f"device: {device} with executor.gpus_per_trial: 0 would put every Ray trial on one GPU; "
            "set executor.gpus_per_trial (e.g. 0.5 for two trials per GPU) or leave it out"
        )
    return float(gpus_per_trial)


class StudySearcher(Searcher):
    """Asks the study for trials (baselines first) through :func:`next_trial`, tells it every outcome.

    The driver is the study's worker: trials waiting for a twin trained elsewhere are held here
    (``waiting``) and scheduled or settled as duplicates once the twin finishes; failed trials are
    queued again by the failure policy and asked before anything new.
    """

    def __init__(self, ctx: Context, budget: int | None, on_outcome: Any = None) -> None:
        super().__init__(metric="val_acc", mode="max")
        self.ctx, self.budget, self.on_outcome = ctx, budget, on_outcome
        self.live: dict[str, tuple[optuna.Trial, tuple[float, ...], list[float]]] = {}
        self.waiting: list[Candidate] = []
        self.errors: dict[str, tuple[str, str]] = {}  # Tune trial id -> (failure kind, reason), from RungScheduler
        self.error: NasxError | None = None  # raised by run_ray once Tune has stopped
        self.gpus = 0.0  # each trial's GPU share, set by run_ray from the cluster

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its search algorithm into the experiment state (``tuner.pkl``) for a Tune-level restore,
        which nasx never uses: the study is the state, and a resumed search reopens it. So the live objects
        (the study, this worker's lock, the caller's progress callbacks) are left out of the pickle."""
        state = self.__dict__.copy()
        state.update(ctx=None, on_outcome=None, live={}, waiting=[], error=None)
        return state

    def _report(self, outcome: Outcome) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _settled(self) -> Candidate | None:
        """A waiting candidate whose twin has finished and which must now be trained (duplicates are recorded)."""
        for cand in list(self.waiting):
            if cand.twin is not None and twin_running(self.ctx, cand.twin):
                continue
            self.waiting.remove(cand)
            step = settle(self.ctx, cand)
            if isinstance(step, Outcome):
                self._report(step)
            elif step.twin is not None:
                self.waiting.append(step)
            else:
                return step
        return None

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        try:
            return self._suggest(trial_id)
        except NasxError as exc:  # e.g. too many infeasible candidates: stop asking, run_ray raises it
            self.error = exc
            return Searcher.FINISHED

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        ctx = self.ctx
        cand = self._settled()
        while cand is None:
            if len(self.waiting) >= max(1, len(self.live)):
                return None  # enough trials wait for twins: no more asks until one is settled
            step = next_trial(ctx, self.budget)
            if step == "done":
                return None if self.waiting else Searcher.FINISHED
            if step == "idle":  # the budget is taken; our or this machine's other running trials may still fail
                if not self.live and not self.waiting:
                    time.sleep(POLL_S)
                return None
            if isinstance(step, Outcome):  # infeasible or duplicate: recorded, never scheduled
                self._report(step)
                continue
            if step.twin is not None:
                self.waiting.append(step)
                continue
            cand = step
        trial = cand.trial
        record_scores(ctx, trial, cand.net)  # on the driver, before the trial is scheduled; no-op without proxies
        costs = costs_of(ctx.cfg, cand.params, cand.macs)
        self.live[trial_id] = (trial, costs, [])
        cfg = ctx.cfg
        return {
            "number": trial.number,
            "genotype": cand.net.to_dict(),
            "early_stop": cand.early_stop,
            "costs": list(costs),
            "source": cfg.data.source,
            "val_size": cfg.data.val,
            "split_seed": cfg.data.split_seed,
            "recipe": ctx.recipe.model_dump(mode="json"),
            "fidelity": cfg.fidelity.model_dump(mode="json"),
            "seed": cfg.seed,
            "device": ctx.device,
            "gpus": self.gpus,
            "dry_run_s": ctx.dry_run_s,
        }

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna study is the searcher's state, persisted as it goes."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: see :meth:`save`."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        entry = self.live.get(trial_id)
        if entry is None or result.get("finished") or result.get("failed"):
            return
        trial, _, curve = entry
        curve.append(float(result["val_acc"]))
        rec.write_curve(trial, curve)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.live:
            return
        trial, costs, curve = self.live.pop(trial_id)
        result = result or {}
        with batched(self.ctx.study):  # one journal append for these
            if not result.get("finished") and not result.get("failed") and int(result.get("epoch", 0)) > len(curve):
                curve.append(float(result["val_acc"]))  # the result the scheduler stopped the trial on
                rec.write_curve(trial, curve)
            device = str(result.get("device") or "")
            share = {"gpus": self.gpus or 1.0} if device.startswith("cuda") else {"cores": self.ctx.cfg.executor.cpus_per_trial}
            rec.write_run(
                trial,
                float(result.get("wall_s", 0.0)),
                device or None,
                **(share if device else {}),
                device_name=result.get("device_name"),
                cuda=result.get("cuda"),
            )
        epochs = self.ctx.cfg.epochs
        if error:
            unknown = (FailureKind.CRASH.value, "the Ray trial raised an error (see the Ray logs)")
            kind, reason = self.errors.pop(trial_id, unknown)
            outcome = fail(self.ctx, trial, kind, reason)
        elif result.get("failed"):
            outcome = fail(self.ctx, trial, str(result.get("failure", FailureKind.CRASH.value)), str(result["failed"]))
        elif result.get("finished") and int(result["epoch"]) >= epochs:
            values = (float(result["val_acc"]), *costs, *objective_values(self.ctx, trial))
            outcome = finish(self.ctx.study, trial, Status.COMPLETE, values, None)
        else:
            rec.write_stopped_at(trial, len(curve))
            outcome = finish(self.ctx.study, trial, Status.STOPPED, None, f"stopped early at epoch {len(curve)}")
        self._report(outcome)


def describe_error(trial: Any) -> tuple[str, str]:
    """The failure kind and a one-line reason of a Tune trial that errored (its pickled exception)."""
    from ray import cloudpickle
    from ray.exceptions import OutOfMemoryError, RayActorError, RayTaskError

    exc: Any = None
    try:  # the local copy: the one in storage is synced later
        if trial.pickled_error_file and os.path.isfile(trial.pickled_error_file):
            with open(trial.pickled_error_file, "rb") as f:
                exc = cloudpickle.load(f)
        else:
            exc = trial.get_pickled_error()
    except Exception as read_error:  # an unreadable error file must not take the search down
        exc = read_error
    if isinstance(exc, OutOfMemoryError):
        return FailureKind.OUT_OF_MEMORY.value, "Ray's memory monitor killed the worker running it"
    if isinstance(exc, RayActorError):
        return FailureKind.WORKER_LOST.value, "the Ray worker process running it died (killed, or its node was lost)"
    if isinstance(exc, RayTaskError):
        cause = exc.cause if exc.cause is not None else exc
        first = str(cause).splitlines()[0] if str(cause) else ""
        return FailureKind.CRASH.value, f"{type(cause).__name__}: {first}"
    return FailureKind.CRASH.value, f"the Ray trial failed: {type(exc).__name__ if exc is not None else 'no error recorded'}"


class RungScheduler(FIFOScheduler):
    """The rung logic of ``nasx.search.rungs`` as a Ray Tune scheduler (multi-objective aware)."""

    def __init__(self, decider: RungDecider | None, errors: dict[str, tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.decider = decider
        self.errors = errors if errors is not None else {}

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        """Called by Tune just before the searcher hears of the error: note why the trial failed for it."""
        self.errors[trial.trial_id] = describe_error(trial)
        super().on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self.decider is None or not trial.config.get("early_stop") or result.get("finished") or result.get("failed"):
            return TrialScheduler.CONTINUE
        entry = RungEntry(str(trial.config["number"]), float(result["val_acc"]), tuple(trial.config["costs"]))
        return TrialScheduler.STOP if self.decider.should_stop(int(result["epoch"]), entry) else TrialScheduler.CONTINUE


def run_ray(ctx: Context, *, trials: int | None, wall_time: float | None, on_outcome: Any = None, storage_path: str) -> None:
    """Run the study's remaining budget with Ray Tune."""
    import ray

    ex = ctx.cfg.executor
    # nasx shows its own progress and keeps its own record: Tune's console tables and per-trial loggers are noise here
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger("ray.tune").setLevel(logging.ERROR)  # no per-trial result files to analyse: quiet about it
    started = False
    if not ray.is_initialized():
        ray.init(address=ex.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    t0 = time.perf_counter()
    try:
        remaining_time = None if wall_time is None else max(1.0, wall_time - progress(ctx.study).elapsed)
        searcher = StudySearcher(ctx, trials, on_outcome)
        searcher.gpus = trial_resources(ex.gpus_per_trial, ctx.device, float(ray.cluster_resources().get("GPU", 0)))
        resources = {"cpu": ex.cpus_per_trial, "gpu": searcher.gpus}
        scheduler = RungScheduler(ctx.decider, searcher.errors)
        tuner = tune.Tuner(
            tune.with_resources(_trainable, resources),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=-1,
                max_concurrent_trials=ex.max_concurrent,
                time_budget_s=remaining_time,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage_path, name="ray", verbose=0, log_to_file=False),
        )
        tuner.fit()
        if searcher.error is not None:
            raise searcher.error
    finally:
        with ctx.worker.turn():
            drop_queued(ctx, "the search ended before it was trained")
            add_elapsed(ctx.study, time.perf_counter() - t0)
        if started:
            ray.shutdown()
