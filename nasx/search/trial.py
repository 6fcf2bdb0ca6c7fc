"""One trial, whichever executor runs it: ask, sample, check cost and constraints, de-duplicate, train, record.

Every outcome is recorded in the trial's record (:mod:`nasx.search.record`: a :class:`Status` with
a reason; a failure also has its kind), so the study is the one source of truth. :func:`next_trial`
is the critical section every worker goes through, under the study's ``ask.lock``: recover stale
trials, check the budget, ask, sample, screen. Its rules are stated in :mod:`nasx.search.workers`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from nasx import zoo
from nasx.data.types import Splits
from nasx.errors import NasxError
from nasx.search import record as rec
from nasx.search.batch import batched
from nasx.search.config import FailureKind, Objective, StudyConfig, StudyError
from nasx.search.proxies import objective_values, prefilter, record_scores
from nasx.search.queries import census, find_duplicate, infeasible_cap, running_twin
from nasx.search.record import Role, Status
from nasx.search.rungs import RungDecider, RungEntry
from nasx.search.study import recover_stale, retry_or_not
from nasx.search.workers import Heartbeats, Worker, heartbeat_stale
from nasx.space.genotype import Network
from nasx.train.loop import TrainingFailed, train
from nasx.train.recipe import Fidelity, Recipe


@dataclass(frozen=True)
class Evaluator:
    """Benchmarks and tests only (``run_search(evaluator=...)``): a trial is scored instead of trained.

    ``accuracy(net)`` is told as the candidate's accuracy (a dry run's curve ends at it); ``proxies(net,
    names)``, when given, are the scores the study's ``proxies:`` section records and its pre-filter ranks
    by (without it a dry run records them as undefined). Both receive the genotype itself, not a
    fidelity's scaled proxy; everything else (sampling, constraints, de-duplication, the pre-filter,
    the journal) runs as in a real search. Local executor only: the callables are not sent to Ray.
    """

    accuracy: Callable[[Network], float]
    proxies: Callable[[Network, Sequence[str]], Mapping[str, float | None]] | None = None


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
    worker: Worker  # this process, holding its lock (see nasx.search.workers)
    dry_run_s: float | None = None  # benchmarks: each trial sleeps this long instead of training
    queued: list[Any] = field(default_factory=list)  # steps a proxy pre-filter settled, handed out first
    proxy_batches: list[Any] | None = None  # the proxies' minibatches of the training split, made once
    beats: Heartbeats | None = None  # RDB storage: the worker's heartbeat for the trials it holds
    evaluator: Evaluator | None = None  # benchmarks and tests: scores instead of training (implies a dry run)


#: How often a worker looks again at a trial it waits for (a twin in training, other workers' last trials).
POLL_S = 0.5


def dry_train(
    net: Network, epochs: int, seconds: float, callback: Callable[[Any], bool | None], accuracy: float | None = None
) -> Any:
    """Stand-in for training (executor benchmarks): sleeps ``seconds`` over ``epochs`` and reports a made-up
    accuracy that depends only on the genotype, so the executors' own overhead can be measured; with
    ``accuracy`` (an :class:`Evaluator`'s), the curve rises to that value instead."""
    from nasx.train.loop import EpochMetrics, TrainResult

    base = int(net.digest[:6], 16) / 0xFFFFFF if accuracy is None else accuracy
    metrics = []
    state = Status.COMPLETE.value
    for e in range(1, epochs + 1):
        time.sleep(seconds / epochs)
        m = EpochMetrics(e, 1.0, 0.0, 1.0, base * e / epochs, 0.0, seconds / epochs, 0.0)
        metrics.append(m)
        if callback(m):
            state = Status.STOPPED.value
            break
    return TrainResult(
        model=None, metrics=metrics, state=state, seconds=seconds, device="dry-run", precision="", channels_last=False
    )  # type: ignore[arg-type]


@dataclass(frozen=True)
class Outcome:
    number: int
    state: Status
    values: tuple[float, ...] | None
    reason: str | None = None


def held(device: str, ctx: Context | None = None) -> dict[str, float]:
    """What a trial on ``device`` held, for its compute cost: CPU threads, or GPUs (Ray: the study's share per trial)."""
    if device.startswith(("cuda", "mps")):
        share = ctx.cfg.executor.gpus_per_trial if ctx is not None and ctx.cfg.executor.kind == "ray" else 0.0
        return {"gpus": share or 1.0}
    if device.startswith("cpu"):
        import torch

        return {"cores": float(torch.get_num_threads())}
    return {}


def costs_of(cfg: StudyConfig, params: int, macs: int) -> tuple[float, ...]:
    table = {Objective.MACS: float(macs), Objective.PARAMS: float(params)}
    return tuple(table[o] for o in cfg.objectives[1:])


def replay_rungs(ctx: Context) -> None:
    """Bring the rung history up to date from the study (on a resume, and before every ask: other workers' results)."""
    if ctx.decider is None:
        return
    for r in rec.records(ctx.study):
        if not r.is_candidate or not r.curve or r.status == Status.DUPLICATE or r.retried or r.params is None:
            continue
        costs = costs_of(ctx.cfg, r.params, r.macs or 0)
        for m in ctx.decider.milestones:
            if m <= len(r.curve):
                ctx.decider.record(m, RungEntry(str(r.number), r.curve[m - 1], costs))


def record_genotype(
    trial: optuna.Trial, net: Network, role: Role | str, name: str | None = None, fidelity: Fidelity | None = None
) -> tuple[int, int]:
    """Store ``net`` (dict, string, digest, family) and its params and MACs in ``trial``; return ``(params, macs)``.

    With a ``fidelity`` that trains a scaled proxy, the proxy's params and MACs are stored too
    (``proxy_params``, ``proxy_macs``); the returned figures are always the genotype's own.
    """
    from nasx.models.complexity import complexity

    cost = complexity(net)
    small = complexity(fidelity.network(net)) if fidelity is not None and fidelity.proxy else None
    rec.write_genotype(
        trial,
        role=Role(role),
        name=name or net.name,
        digest=net.digest,
        string=net.to_string(),
        genotype=net.to_dict(),
        family=zoo.family(net),
        params=cost.params,
        macs=cost.macs,
        proxy_params=None if small is None else small.params,
        proxy_macs=None if small is None else small.macs,
    )
    return cost.params, cost.macs


def finish(
    study: optuna.Study,
    trial: optuna.Trial,
    state: Status | str,
    values: tuple[float, ...] | None,
    reason: str | None,
    violations: dict[str, float] | None = None,
    also: Callable[[], None] | None = None,
) -> Outcome:
    """Record nasx's ``state`` and ``reason`` and tell Optuna (COMPLETE with values, PRUNED, or FAIL).

    An infeasible draw is told PRUNED with its ``violations`` as Optuna constraints (positive: by how
    much, relative to the limit, it breaks each), so that samplers that read constraints (TPE, NSGA-II)
    learn where the feasible region is; it has no objective values and never reaches a front.
    ``also``: more attribute writes of the trial, made in the same journal append as the state.
    """
    state = Status(state)
    with batched(study):
        if also is not None:
            also()
        rec.write_status(trial, state, reason)
        if state == Status.INFEASIBLE:
            for key, value in (violations or {"valid": 1.0}).items():
                trial.set_constraint(key, value)
    if state in (Status.COMPLETE, Status.DUPLICATE) and values is not None:
        study.tell(trial, list(values))
    elif state in (Status.INFEASIBLE, Status.STOPPED, Status.SCREENED):  # screened: left out by a proxy pre-filter
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    return Outcome(trial.number, state, values, reason)


def fail(ctx: Context, trial: optuna.Trial, failure: FailureKind | str, reason: str) -> Outcome:
    """Record a failed trial (``failure``: its kind), queue it again when the failure policy says so, tell Optuna."""
    with ctx.worker.turn():
        retry_or_not(ctx.study, trial, str(getattr(failure, "value", failure)), ctx.cfg.failures)
        return finish(ctx.study, trial, Status.FAILED, None, reason)


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
        rec.write_curve(trial, curve)
        if on_epoch is not None:
            on_epoch()
        if early_stop and ctx.decider is not None:
            return ctx.decider.should_stop(m.epoch, RungEntry(str(trial.number), m.val_acc, costs))
        return False

    t0 = time.perf_counter()
    try:
        record_scores(ctx, trial, net)  # before training, from the same initial weights; no-op without proxies
        if ctx.dry_run_s is not None:
            score = None if ctx.evaluator is None else float(ctx.evaluator.accuracy(net))
            result = dry_train(net, ctx.cfg.epochs, ctx.dry_run_s, callback, score)
        else:
            result = train(net, ctx.splits, ctx.recipe, ctx.cfg.fidelity, seed=ctx.cfg.seed, device=ctx.device, callback=callback)
        device_used[0] = result.device
    except TrainingFailed as exc:
        rec.write_run(trial, time.perf_counter() - t0)
        return fail(ctx, trial, exc.reason, f"{exc.reason} in epoch {exc.epoch}: {exc.detail}")
    except Exception as exc:  # the search's boundary: one trial's crash is recorded, the search goes on
        rec.write_run(trial, time.perf_counter() - t0)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return fail(ctx, trial, FailureKind.CRASH, f"{type(exc).__name__}: {first}")
    wall_s = time.perf_counter() - t0

    def run_record() -> None:  # written in the same journal append as the final state
        rec.write_run(
            trial,
            wall_s,
            device_used[0],
            **held(device_used[0], ctx),
            device_name=getattr(result, "device_name", None),
            cuda=getattr(result, "cuda", None),
        )
        if result.state == Status.STOPPED.value:
            rec.write_stopped_at(trial, result.epochs)

    if result.state == Status.STOPPED.value:
        return finish(ctx.study, trial, Status.STOPPED, None, f"stopped early at epoch {result.epochs}", also=run_record)
    values = (result.val_acc, *costs, *objective_values(ctx, trial))
    return finish(ctx.study, trial, Status.COMPLETE, values, None, also=run_record)


@dataclass(frozen=True)
class Candidate:
    """An asked trial and its genotype, to be trained; with ``twin``, waiting for the live trial training the same genotype."""

    trial: optuna.Trial
    net: Network
    params: int
    macs: int
    early_stop: bool  # candidates stop at rungs; baselines never
    twin: int | None = None


#: What :func:`next_trial` hands an executor: a trial to train (or wait with), an outcome already
#: settled (infeasible, duplicate), "idle" (the budget is taken but other trials of this machine are
#: still running: look again later) or "done".
Step = Candidate | Outcome | Literal["idle", "done"]


def _mark(ctx: Context, trial: optuna.Trial, role: Role) -> None:
    rec.mark(trial, role, ctx.worker.id)
    if ctx.beats is not None:
        ctx.beats.add(trial._trial_id)


def mark_candidate(ctx: Context, trial: optuna.Trial) -> None:
    _mark(ctx, trial, "candidate")


def drop_queued(ctx: Context, why: str) -> None:
    """End the search's queued steps: candidates a pre-filter kept but that will not be trained are recorded as screened."""
    for step in ctx.queued:
        if isinstance(step, Candidate):
            finish(ctx.study, step.trial, "screened", None, why)
    ctx.queued.clear()


def next_trial(ctx: Context, budget: int | None, wall_time: float | None = None) -> Step:
    """The worker's critical section (under ``ask.lock``): recover stale trials, check the budget, ask and screen.

    Steps a proxy pre-filter queued come first (see :func:`nasx.search.proxies.prefilter`); then
    pending baselines (each asked by one worker only); then a candidate while finished
    evaluations plus candidates running on live workers are fewer than ``budget``.
    """
    with ctx.worker.turn():
        recover_stale(ctx.study, ctx.worker, ctx.cfg.failures)
        replay_rungs(ctx)
        if wall_time is not None and rec.elapsed(ctx.study) >= wall_time:
            drop_queued(ctx, "the wall time ran out before it was trained")
            return "done"
        if ctx.queued:
            return ctx.queued.pop(0)
        names = pending_baselines(ctx)
        if names:
            return ask_baseline(ctx, names[0])
        c = census(ctx.study, ctx.worker)
        if budget is not None and c.evaluated + c.running >= budget:
            # wait for this machine's running candidates (one may fail and be retried), and, with a heartbeat,
            # for other machines' too (one whose machine died is failed by its heartbeat and retried here)
            waits = c.running_here or (ctx.beats is not None and ctx.beats.storage is not None and c.running > c.running_here)
            return "idle" if waits else "done"
        if c.infeasible >= infeasible_cap(budget):
            raise StudyError(
                f"{c.infeasible} candidates broke the constraints and only {c.evaluated} met them: "
                "loosen constraints or narrow the space"
            )
        if census_due(ctx):
            return ask_census(ctx)
        step = screen(ctx, ctx.study.ask(), mark=True)
        p = ctx.cfg.proxies
        if p is not None and p.use == "prefilter" and isinstance(step, Candidate) and step.twin is None:
            ctx.queued.extend(prefilter(ctx, step, budget))
            return ctx.queued.pop(0)
        return step


def census_due(ctx: Context) -> bool:
    """Whether the study still owes candidates to its random census (``census`` in the config)."""
    if not ctx.cfg.census:
        return False
    taken = sum(1 for r in rec.records(ctx.study) if r.is_candidate and r.census and not r.retried)
    return taken < ctx.cfg.census


def ask_census(ctx: Context) -> Outcome | Candidate:
    """A census candidate: drawn by a uniform random sampler (whatever the study's), trained to full fidelity."""
    import hashlib

    study, saved = ctx.study, ctx.study.sampler
    n = len(study.get_trials(deepcopy=False))
    seed = int(hashlib.sha256(f"census:{ctx.cfg.sampler.seed}:{n}".encode()).hexdigest()[:8], 16)
    study.sampler = optuna.samplers.RandomSampler(seed=seed)
    try:
        trial = study.ask()
        rec.mark(trial, Role.CANDIDATE, ctx.worker.id, census=True)
        if ctx.beats is not None:
            ctx.beats.add(trial._trial_id)
        return screen(ctx, trial, early_stop=False)
    finally:
        study.sampler = saved


def screen(ctx: Context, trial: optuna.Trial, mark: bool = False, early_stop: bool = True) -> Outcome | Candidate:
    """Sample the trial's genotype and settle it without training when it is infeasible or a duplicate.

    Returns the finished :class:`Outcome`, or the :class:`Candidate` to train or to wait with.
    Call it under ``ask.lock`` (see :func:`next_trial`), so that the running-twin check is exact.
    ``mark``: first record the trial as this worker's candidate (``role``, ``worker``).
    """
    problem = None
    with batched(ctx.study):  # the marks, the parameters and the genotype record: one journal append
        if mark:
            _mark(ctx, trial, Role.CANDIDATE)
        try:
            net = ctx.space.sample(trial)
            params, macs = record_genotype(trial, net, Role.CANDIDATE, fidelity=ctx.cfg.fidelity)
        except NasxError as exc:
            problem = f"not a valid network: {exc}"
        except RuntimeError as exc:  # a shape torch rejects when counting (e.g. a kernel larger than its input)
            problem = f"cannot be built: {str(exc).splitlines()[0]}"
    if problem is not None:
        return finish(ctx.study, trial, Status.INFEASIBLE, None, problem)
    limits = ctx.cfg.constraints
    over = {
        name: (value - limit) / limit
        for name, value, limit in (("max_macs", macs, limits.max_macs), ("max_params", params, limits.max_params))
        if limit is not None and value > limit
    }
    if over:
        checks = (("max_macs", "MACs", macs, limits.max_macs), ("max_params", "params", params, limits.max_params))
        reason = "; ".join(f"{what} {value:,} > {name} {limit:,}" for name, what, value, limit in checks if name in over)
        return finish(ctx.study, trial, Status.INFEASIBLE, None, reason, over)
    side = ctx.cfg.fidelity.resolution
    if side is not None:
        from nasx.models.complexity import resolution_problem

        problem = resolution_problem(net, side)
        if problem is not None:
            return finish(
                ctx.study, trial, Status.INFEASIBLE, None, f"fidelity.resolution {side} is too small: {problem}", {"valid": 1.0}
            )
    return place(ctx, Candidate(trial, net, params, macs, early_stop=early_stop))


def place(ctx: Context, cand: Candidate) -> Outcome | Candidate:
    """Settle ``cand`` against the trials of the same genotype (under ``ask.lock``).

    A finished one whose result would repeat makes it a duplicate (nothing trained); one being
    trained by a live worker makes it wait (``twin``); otherwise it is marked ``training`` and
    returned to be trained.
    """
    trial, digest = cand.trial, cand.net.digest
    twin = find_duplicate(ctx.study, digest, trial.number)
    if twin is not None:
        values = twin.values if twin.optuna_state == TrialState.COMPLETE and twin.values else None
        if values is None:  # the twin was stopped or failed: so is this one, without training again
            with batched(ctx.study):
                rec.write_duplicate(trial, twin.number, twin.curve)
                rec.write_status(trial, Status.DUPLICATE)
            ctx.study.tell(trial, state=TrialState.PRUNED if twin.optuna_state == TrialState.PRUNED else TrialState.FAIL)
            return Outcome(trial.number, Status.DUPLICATE, None, f"same genotype as trial {twin.number}")
        rec.write_duplicate(trial, twin.number, twin.curve)
        return finish(ctx.study, trial, Status.DUPLICATE, values, f"same genotype as trial {twin.number}")
    running = running_twin(ctx.study, digest, trial.number, ctx.worker)
    if running is not None:
        if cand.twin != running.number:
            rec.write_waiting_for(trial, running.number)
        return replace(cand, twin=running.number)
    rec.mark_training(trial)
    return replace(cand, twin=None)


def twin_running(ctx: Context, number: int) -> bool:
    """Whether trial ``number`` is still running on a worker not known dead (read without the lock)."""
    for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number == number:
            where = ctx.worker.liveness(rec.read(t).worker)
            if where == "elsewhere":  # another machine's: running while its heartbeat is fresh (RDB storage)
                return t._trial_id not in heartbeat_stale(ctx.study)
            return where != "dead"
    return False


def settle(ctx: Context, cand: Candidate) -> Outcome | Candidate:
    """Once the twin ``cand`` waited for has finished (or its worker died): place it again."""
    with ctx.worker.turn():
        recover_stale(ctx.study, ctx.worker, ctx.cfg.failures)
        return place(ctx, cand)


def wait_for_twin(ctx: Context, cand: Candidate) -> Outcome | Candidate:
    """Block until ``cand`` no longer waits: a duplicate :class:`Outcome`, or the candidate to train."""
    while cand.twin is not None:
        time.sleep(POLL_S)
        if twin_running(ctx, cand.twin):
            continue
        step = settle(ctx, cand)
        if isinstance(step, Outcome):
            return step
        cand = step
    return cand


def pending_baselines(ctx: Context) -> list[str]:
    """The study's baselines still to train: none of their trials is running on a live worker or has a final result.

    A baseline is never given up for good by a kill: a failed attempt is retried by the failure
    policy (a ``worker_lost`` spends no retry), and one whose retries ran out in an earlier search
    (its worker is gone) is tried once more by each new search. Only a non-finite loss (it repeats)
    or ``failures.lost`` lost workers in a row is final.
    """
    taken = set()
    for r in rec.records(ctx.study):
        if not r.is_baseline:
            continue
        alive = ctx.worker.liveness(r.worker) != "dead"
        if r.running:
            if alive:
                taken.add(r.name)
        elif r.finished and not r.retried:
            final = r.optuna_state != TrialState.FAIL or r.failure == FailureKind.NON_FINITE_LOSS.value
            gave_up = r.failure == FailureKind.WORKER_LOST.value and r.lost >= ctx.cfg.failures.lost
            if final or gave_up or alive:
                taken.add(r.name)
    return [b for b in ctx.cfg.baselines if b not in taken]


def ask_baseline(ctx: Context, name: str) -> Candidate:
    """A new trial for the zoo network ``name``, recorded as a baseline (never stopped early)."""
    study = ctx.study
    # not study.ask(): that would take a candidate queued for retry (a waiting trial) and lose its parameters
    trial = optuna.Trial(study, study._storage.create_new_trial(study._study_id))
    _mark(ctx, trial, Role.BASELINE)
    before = [r for r in rec.records(study) if r.is_baseline and r.name == name and r.optuna_state == TrialState.FAIL]
    if before:
        lost = sum(r.failure == FailureKind.WORKER_LOST.value for r in before)
        rec.write_retry(trial, before[-1].number, len(before) - lost, lost)
    net = zoo.get(name)
    params, macs = record_genotype(trial, net, Role.BASELINE, name, fidelity=ctx.cfg.fidelity)
    rec.mark_training(trial)
    return Candidate(trial, net, params, macs, early_stop=False)
