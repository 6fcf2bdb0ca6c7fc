"""Zero-cost proxies in a search: score trials before training, record the scores, pre-filter candidates.

The scores themselves are :mod:`nasx.train.proxies` (torch only). Here they meet the study:

- every trial that is about to be trained (candidate or baseline, in either executor) is scored
  once, on seeded minibatches of the *training* split, as the network that is trained (the
  fidelity's scaled proxy, if any) from the initial weights it is trained from (``cfg.seed``),
  and the scores are recorded with it (:func:`record_scores`);
- ``use: prefilter`` (:func:`prefilter`): a fresh candidate is not trained at once; ``draw``
  feasible new candidates are asked and scored, the best ``keep`` by ``rank_by`` are trained, the
  others are recorded as ``screened`` and told to Optuna as **pruned**, so that the sampler learns
  from them (TPE puts pruned trials in its "worse" group; NSGA-II and evolution use complete trials
  only) while they do not spend the trial budget;
- ``use: objective``: the proxy is one more objective, maximised (:func:`objective_values`).

The user attributes written here (``proxies``: name -> value or None; ``proxy_s``: name -> seconds)
go through the small helpers below, so that they can move into the trial record with the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna

from nasx.space.genotype import Network

if TYPE_CHECKING:
    from nasx.search.trial import Candidate, Context

#: User attributes: the scores (name -> float, or None where not finite) and their seconds.
PROXIES_ATTR = "proxies"
PROXY_SECONDS_ATTR = "proxy_s"


def set_proxy_attrs(trial: optuna.Trial, values: Mapping[str, float | None], seconds: Mapping[str, float]) -> None:
    trial.set_user_attr(PROXIES_ATTR, dict(values))
    trial.set_user_attr(PROXY_SECONDS_ATTR, {k: round(v, 4) for k, v in seconds.items()})


def proxy_values(attrs: Mapping[str, Any]) -> dict[str, float | None]:
    """The recorded proxy scores of a trial's user attributes ({} when it was never scored)."""
    return dict(attrs.get(PROXIES_ATTR) or {})


def batches_for(ctx: Context) -> list[Any]:
    """The study's proxy minibatches (from the training split; made once per search run)."""
    cached = ctx.proxy_batches
    if cached is None:
        from nasx.train.proxies import proxy_batches

        p = ctx.cfg.proxies
        assert p is not None  # noqa: S101 - callers check; not user input
        cached = proxy_batches(
            ctx.splits.train,
            batches=p.batches,
            batch_size=p.batch_size,
            seed=p.seed,
            resolution=ctx.cfg.fidelity.resolution,
            device=ctx.device or "cpu",
        )
        ctx.proxy_batches = cached
    return cached


def record_scores(ctx: Context, trial: optuna.Trial, net: Network) -> dict[str, float | None]:
    """Score ``net`` with the study's proxies and record them in ``trial`` (once: a scored trial is left as it is)."""
    p = ctx.cfg.proxies
    if p is None:
        return {}
    done = proxy_values(trial.user_attrs)
    if done:
        return done
    if ctx.splits is None:  # a dry run (executor benchmarks): no data; a benchmark's evaluator may score instead
        score = ctx.evaluator.proxies if ctx.evaluator is not None else None
        values: dict[str, float | None] = {name: None for name in p.compute} if score is None else dict(score(net, p.compute))
        set_proxy_attrs(trial, values, {})
        return values
    from nasx.train.proxies import score_network

    # the network the trial trains (a scaled proxy of the genotype at a width/depth fidelity), from its initial weights
    scores = score_network(ctx.cfg.fidelity.network(net), batches_for(ctx), p.compute, seed=ctx.cfg.seed)
    set_proxy_attrs(trial, scores.values, scores.seconds)
    return scores.values


def objective_values(ctx: Context, trial: optuna.Trial | optuna.trial.FrozenTrial) -> tuple[float, ...]:
    """The values a trial adds after the study's objectives: its ``rank_by`` score when it is an objective, else ()."""
    name = ctx.cfg.proxy_objective
    if name is None:
        return ()
    value = proxy_values(trial.user_attrs).get(name)
    return (float(value) if value is not None else -math.inf,)


def _key(values: Mapping[str, float | None], name: str) -> float:
    v = values.get(name)
    return v if v is not None else -math.inf


def _scored(ctx: Context, cand: Candidate) -> dict[str, float | None]:
    """The candidate's scores; a network the proxies cannot run is ranked last (training would show why it fails)."""
    try:
        return record_scores(ctx, cand.trial, cand.net)
    except (RuntimeError, ValueError) as exc:
        cand.trial.set_user_attr("proxy_error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return {}


def prefilter(ctx: Context, first: Candidate, budget: int | None) -> list[Any]:
    """Draw up to ``draw`` fresh candidates (``first`` included), keep the best ``keep``, screen the rest.

    Call under ``ask.lock`` (from :func:`nasx.search.trial.next_trial`). A draw of a genotype that
    is running (in this pool or on a worker) is screened too; a duplicate of a finished trial is
    settled as usual and, like every evaluation, spends the budget, so fewer are kept when the
    budget is nearly spent. Returns the steps to hand out in order: the outcomes (infeasible,
    duplicates, screened), then the kept candidates. Infeasible draws stop at the study's cap.
    """
    from nasx.search.queries import census, infeasible_cap
    from nasx.search.trial import Candidate, finish, mark_candidate, screen

    p = ctx.cfg.proxies
    if p is None:
        raise ValueError("prefilter: the study has no proxies section")
    pool: list[Candidate] = [first]
    steps: list[Any] = []
    cap = infeasible_cap(ctx.cfg.budget.trials)

    def room() -> int | None:  # budget left for kept candidates (the pool is running here); None: no trial budget
        c = census(ctx.study, ctx.worker)
        if c.infeasible >= cap:
            return 0
        return None if budget is None else budget - c.evaluated - (c.running - len(pool))

    while len(pool) < p.draw:
        left = room()
        if left is not None and left <= 0:  # infeasible cap, or duplicates drawn meanwhile spent the budget
            break
        trial = ctx.study.ask()
        mark_candidate(ctx, trial)
        step = screen(ctx, trial)
        if isinstance(step, Candidate) and step.twin is not None:
            step.trial.set_user_attr("training", False)
            steps.append(finish(ctx.study, step.trial, "screened", None, f"same genotype as trial {step.twin}, running"))
        elif isinstance(step, Candidate):
            pool.append(step)
        else:
            steps.append(step)
    keep = p.keep
    if budget is not None:
        c = census(ctx.study, ctx.worker)  # the pool is running here: what is left besides it
        keep = min(keep, budget - c.evaluated - (c.running - len(pool)))
    ranked = sorted(((_scored(ctx, cand), cand) for cand in pool), key=lambda vc: -_key(vc[0], p.rank_by))
    for rank, (values, cand) in enumerate(ranked[max(keep, 0) :], start=max(keep, 0) + 1):
        cand.trial.set_user_attr("training", False)
        shown = values.get(p.rank_by)
        why = f"{p.rank_by} {'undefined' if shown is None else f'{shown:.4g}'} ranked {rank} of {len(pool)}: not trained"
        steps.append(finish(ctx.study, cand.trial, "screened", None, why))
    return [*steps, *(cand for _, cand in ranked[: max(keep, 0)])]
