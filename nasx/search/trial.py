"""One trial, whichever executor runs it: sample, check cost and constraints, de-duplicate, train, record.

Every outcome is recorded in the trial's user attributes (``state``: complete, stopped,
infeasible, failed or duplicate, with ``reason``), so the study is the one source of truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nasx import zoo
from nasx.data.types import Splits
from nasx.errors import NasxError
from nasx.search.config import Objective, StudyConfig
from nasx.search.rungs import RungDecider, RungEntry
from nasx.search.study import find_duplicate
from nasx.space.genotype import Network
from nasx.train.loop import TrainingFailed, train
from nasx.train.recipe import Recipe


@dataclass
class Context:
    """What every trial of one search run shares."""

    cfg: StudyConfig
    study: optuna.Study
    space: Any  # nasx.space.design.DesignSpace
    splits: Splits
    recipe: Recipe
    decider: RungDecider | None
    device: str | None
    dry_run_s: float | None = None  # benchmarks: each trial sleeps this long instead of training


def dry_train(net: Network, epochs: int, seconds: float, callback: Callable[[Any], bool | None]) -> Any:
    """Stand-in for training (executor benchmarks): sleeps ``seconds`` over ``epochs`` and reports a made-up
    accuracy that depends only on the genotype, so the executors' own overhead can be measured."""
    from nasx.train.loop import EpochMetrics, TrainResult

    base = int(net.digest[:6], 16) / 0xFFFFFF
    metrics = []
    state = "complete"
    for e in range(1, epochs + 1):
        time.sleep(seconds / epochs)
        m = EpochMetrics(e, 1.0, 0.0, 1.0, base * e / epochs, 0.0, seconds / epochs, 0.0)
        metrics.append(m)
        if callback(m):
            state = "stopped"
            break
    return TrainResult(
        model=None, metrics=metrics, state=state, seconds=seconds, device="dry-run", precision="", channels_last=False
    )  # type: ignore[arg-type]


@dataclass(frozen=True)
class Outcome:
    number: int
    state: str
    values: tuple[float, ...] | None
    reason: str | None = None


def costs_of(cfg: StudyConfig, params: int, macs: int) -> tuple[float, ...]:
    table = {Objective.MACS: float(macs), Objective.PARAMS: float(params)}
    return tuple(table[o] for o in cfg.objectives[1:])


def replay_rungs(ctx: Context) -> None:
    """Rebuild the rung history from the study (after a resume) so decisions stay consistent."""
    if ctx.decider is None:
        return
    for t in ctx.study.get_trials(deepcopy=False):
        curve = t.user_attrs.get("curve") or []
        if t.user_attrs.get("role") != "candidate" or not curve or t.user_attrs.get("state") == "duplicate":
            continue
        costs = costs_of(ctx.cfg, t.user_attrs["params"], t.user_attrs["macs"])
        for m in ctx.decider.milestones:
            if m <= len(curve):
                ctx.decider.record(m, RungEntry(str(t.number), curve[m - 1], costs))


def record_genotype(trial: optuna.Trial, net: Network, role: str, name: str | None = None) -> tuple[int, int]:
    """Store ``net`` (dict, string, digest, family) and its params and MACs in ``trial``; return ``(params, macs)``."""
    from nasx.models.complexity import complexity

    cost = complexity(net)
    attrs = {
        "role": role,
        "name": name or net.name,
        "digest": net.digest,
        "string": net.to_string(),
        "genotype": net.to_dict(),
        "family": zoo.family(net),
        "params": cost.params,
        "macs": cost.macs,
    }
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    return cost.params, cost.macs


def finish(study: optuna.Study, trial: optuna.Trial, state: str, values: tuple[float, ...] | None, reason: str | None) -> Outcome:
    """Record nasx's ``state`` and ``reason`` and tell Optuna (COMPLETE with values, PRUNED, or FAIL)."""
    trial.set_user_attr("state", state)
    if reason:
        trial.set_user_attr("reason", reason)
    if state in ("complete", "duplicate") and values is not None:
        study.tell(trial, list(values))
    elif state == "stopped":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    return Outcome(trial.number, state, values, reason)


def train_and_record(
    ctx: Context,
    trial: optuna.Trial,
    net: Network,
    params: int,
    macs: int,
    early_stop: bool,
    on_epoch: Callable[[], None] | None = None,
) -> Outcome:
    """Train ``net`` for the study's fidelity, reporting each epoch's accuracy into the trial."""
    curve: list[float] = []
    costs = costs_of(ctx.cfg, params, macs)
    device_used = [""]

    def callback(m: Any) -> bool:
        curve.append(m.val_acc)
        trial.set_user_attr("curve", list(curve))
        if on_epoch is not None:
            on_epoch()
        if early_stop and ctx.decider is not None:
            return ctx.decider.should_stop(m.epoch, RungEntry(str(trial.number), m.val_acc, costs))
        return False

    t0 = time.perf_counter()
    try:
        if ctx.dry_run_s is not None:
            result = dry_train(net, ctx.cfg.epochs, ctx.dry_run_s, callback)
        else:
            result = train(net, ctx.splits, ctx.recipe, ctx.cfg.fidelity, seed=ctx.cfg.seed, device=ctx.device, callback=callback)
        device_used[0] = result.device
    except TrainingFailed as exc:
        trial.set_user_attr("wall_s", time.perf_counter() - t0)
        return finish(ctx.study, trial, "failed", None, f"{exc.reason} in epoch {exc.epoch}: {exc.detail}")
    except Exception as exc:  # the search's boundary: one trial's crash is recorded, the search goes on
        trial.set_user_attr("wall_s", time.perf_counter() - t0)
        return finish(ctx.study, trial, "failed", None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    trial.set_user_attr("wall_s", time.perf_counter() - t0)
    trial.set_user_attr("device", device_used[0])
    if result.state == "stopped":
        trial.set_user_attr("stopped_at", result.epochs)
        return finish(ctx.study, trial, "stopped", None, f"stopped early at epoch {result.epochs}")
    return finish(ctx.study, trial, "complete", (result.val_acc, *costs), None)


def screen(ctx: Context, trial: optuna.Trial) -> Outcome | tuple[Network, int, int]:
    """Sample the trial's genotype and settle it without training when it is infeasible or a duplicate.

    Returns the finished :class:`Outcome`, or ``(network, params, macs)`` to be trained.
    """
    try:
        net = ctx.space.sample(trial)
        params, macs = record_genotype(trial, net, "candidate")
    except NasxError as exc:
        return finish(ctx.study, trial, "infeasible", None, f"not a valid network: {exc}")
    except RuntimeError as exc:  # a shape torch rejects when counting (e.g. a kernel larger than its input)
        return finish(ctx.study, trial, "infeasible", None, f"cannot be built: {str(exc).splitlines()[0]}")
    limits = ctx.cfg.constraints
    if limits.max_macs is not None and macs > limits.max_macs:
        return finish(ctx.study, trial, "infeasible", None, f"MACs {macs:,} > max_macs {limits.max_macs:,}")
    if limits.max_params is not None and params > limits.max_params:
        return finish(ctx.study, trial, "infeasible", None, f"params {params:,} > max_params {limits.max_params:,}")
    twin = find_duplicate(ctx.study, net.digest, trial.number)
    if twin is not None:
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("curve", twin.user_attrs.get("curve", []))
        values = tuple(twin.values) if twin.state == TrialState.COMPLETE and twin.values else None
        if values is None:  # the twin was stopped or failed: so is this one, without training again
            trial.set_user_attr("state", "duplicate")
            ctx.study.tell(trial, state=TrialState.PRUNED if twin.state == TrialState.PRUNED else TrialState.FAIL)
            return Outcome(trial.number, "duplicate", None, f"same genotype as trial {twin.number}")
        return finish(ctx.study, trial, "duplicate", values, f"same genotype as trial {twin.number}")
    return net, params, macs


def run_candidate(ctx: Context, on_epoch: Callable[[], None] | None = None) -> Outcome:
    """Ask the sampler for a candidate and take it to its final state."""
    trial = ctx.study.ask()
    trial.set_user_attr("role", "candidate")
    screened = screen(ctx, trial)
    if isinstance(screened, Outcome):
        return screened
    net, params, macs = screened
    return train_and_record(ctx, trial, net, params, macs, early_stop=True, on_epoch=on_epoch)


def pending_baselines(ctx: Context) -> list[str]:
    done = {
        t.user_attrs.get("name")
        for t in ctx.study.get_trials(deepcopy=False)
        if t.user_attrs.get("role") == "baseline" and t.state.is_finished() and t.user_attrs.get("state") != "failed"
    }
    return [b for b in ctx.cfg.baselines if b not in done]


def run_baseline(ctx: Context, name: str, on_epoch: Callable[[], None] | None = None) -> Outcome:
    """Train a zoo network with the study's recipe and fidelity, recorded as a baseline (never stopped early)."""
    trial = ctx.study.ask()
    net = zoo.get(name)
    params, macs = record_genotype(trial, net, "baseline", name)
    return train_and_record(ctx, trial, net, params, macs, early_stop=False, on_epoch=on_epoch)
