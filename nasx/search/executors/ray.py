"""The Ray Tune executor: the same study, asked and told from a Ray Tune searcher, trials on Ray workers.

The driver owns the Optuna study: :class:`StudySearcher` asks it for candidates, records
infeasible ones and duplicates itself (they never reach a worker), and tells it every result, so
both executors write one record. :class:`RungScheduler` applies the same rung logic as the local
executor (``nasx.search.rungs``). Workers are reused between trials (``reuse_actors``) and keep the
decoded data in memory. ``address`` joins an existing cluster; without it a local Ray is started.
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
from nasx.search.rungs import RungDecider, RungEntry
from nasx.search.study import add_elapsed, infeasible_cap, progress
from nasx.search.trial import Context, Outcome, costs_of, finish, pending_baselines, record_genotype, screen

_DATA: dict[tuple[Any, ...], Any] = {}  # per worker process: decoded splits, reused across trials


def _trainable(config: dict[str, Any]) -> None:
    """Runs on a Ray worker: train one genotype, reporting every epoch."""
    from nasx import data as datasets
    from nasx.space.genotype import Network
    from nasx.train.loop import TrainingFailed, train
    from nasx.train.recipe import Fidelity, Recipe

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
            result = train(net, _DATA[key], recipe, fidelity, seed=config["seed"], device=config["device"], callback=report)
        tune.report(
            {
                "epoch": result.epochs,
                "val_acc": result.val_acc,
                "finished": True,
                "device": result.device,
                "wall_s": time.perf_counter() - t0,
            }
        )
    except TrainingFailed as exc:
        tune.report({"epoch": exc.epoch, "val_acc": 0.0, "failed": f"{exc.reason} in epoch {exc.epoch}: {exc.detail}"})


class StudySearcher(Searcher):
    """Asks the study for candidates (baselines first), tells it every outcome."""

    def __init__(self, ctx: Context, budget: int | None, on_outcome: Any = None) -> None:
        super().__init__(metric="val_acc", mode="max")
        self.ctx, self.budget, self.on_outcome = ctx, budget, on_outcome
        self.baselines = pending_baselines(ctx)
        self.live: dict[str, tuple[optuna.Trial, tuple[float, ...], list[float]]] = {}
        self.finished = False

    def _issued(self) -> int:
        return progress(self.ctx.study).trials + sum(
            1 for t, _, _ in self.live.values() if t.user_attrs.get("role") == "candidate"
        )

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        ctx = self.ctx
        while True:
            if self.baselines:
                from nasx import zoo

                name = self.baselines.pop(0)
                trial = ctx.study.ask()
                net = zoo.get(name)
                params, macs = record_genotype(trial, net, "baseline", name)
                early = False
            else:
                if self.budget is not None and self._issued() >= self.budget:
                    return Searcher.FINISHED
                trial = ctx.study.ask()
                trial.set_user_attr("role", "candidate")
                screened = screen(ctx, trial)
                if isinstance(screened, Outcome):  # infeasible or duplicate: recorded, never scheduled
                    if self.on_outcome is not None:
                        self.on_outcome(screened)
                    if progress(ctx.study).by_state.get("infeasible", 0) >= infeasible_cap(self.budget):
                        return Searcher.FINISHED
                    continue
                net, params, macs = screened
                early = True
            costs = costs_of(ctx.cfg, params, macs)
            self.live[trial_id] = (trial, costs, [])
            cfg = ctx.cfg
            return {
                "number": trial.number,
                "genotype": net.to_dict(),
                "early_stop": early,
                "costs": list(costs),
                "source": cfg.data.source,
                "val_size": cfg.data.val_size if cfg.data.val_size < 1 else int(cfg.data.val_size),
                "split_seed": cfg.data.split_seed,
                "recipe": ctx.recipe.model_dump(mode="json"),
                "fidelity": cfg.fidelity.model_dump(mode="json"),
                "seed": cfg.seed,
                "device": ctx.device,
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
        trial.set_user_attr("curve", list(curve))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial, costs, curve = self.live.pop(trial_id)
        result = result or {}
        if not result.get("finished") and not result.get("failed") and int(result.get("epoch", 0)) > len(curve):
            curve.append(float(result["val_acc"]))  # the result the scheduler stopped the trial on
            trial.set_user_attr("curve", list(curve))
        trial.set_user_attr("wall_s", float(result.get("wall_s", 0.0)))
        if result.get("device"):
            trial.set_user_attr("device", result["device"])
        epochs = self.ctx.cfg.epochs
        if error:
            outcome = finish(self.ctx.study, trial, "failed", None, "the Ray worker raised an error (see the Ray logs)")
        elif result.get("failed"):
            outcome = finish(self.ctx.study, trial, "failed", None, str(result["failed"]))
        elif result.get("finished") and int(result["epoch"]) >= epochs:
            outcome = finish(self.ctx.study, trial, "complete", (float(result["val_acc"]), *costs), None)
        else:
            trial.set_user_attr("stopped_at", len(curve))
            outcome = finish(self.ctx.study, trial, "stopped", None, f"stopped early at epoch {len(curve)}")
        if self.on_outcome is not None:
            self.on_outcome(outcome)


class RungScheduler(FIFOScheduler):
    """The rung logic of ``nasx.search.rungs`` as a Ray Tune scheduler (multi-objective aware)."""

    def __init__(self, decider: RungDecider | None) -> None:
        super().__init__()
        self.decider = decider

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
        resources = {"cpu": ex.cpus_per_trial, "gpu": ex.gpus_per_trial}
        tuner = tune.Tuner(
            tune.with_resources(_trainable, resources),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=RungScheduler(ctx.decider),
                num_samples=-1,
                max_concurrent_trials=ex.max_concurrent,
                time_budget_s=remaining_time,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage_path, name="ray", verbose=0, log_to_file=False),
        )
        tuner.fit()
    except NasxError:
        raise
    finally:
        add_elapsed(ctx.study, time.perf_counter() - t0)
        if started:
            ray.shutdown()
