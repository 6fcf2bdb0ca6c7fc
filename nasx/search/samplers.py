"""Optuna samplers for a study, all seeded: Optuna's random and TPE, and two of nasx's own that work on
conditional spaces and keep baselines (trials without parameters) and duplicates out of their view:
NSGA-II (:class:`ConditionalNSGAIISampler`) and regularized evolution (Real et al. 2019).

Samplers come from one table, :data:`SAMPLERS` (``{SamplerKind: factory}``); :func:`make_sampler`
refuses a kind that has no factory. Each of nasx's samplers records where a child came from in the
trial's system attributes (:data:`PARENT_KEY`, :data:`MUTATED_KEY`), so that a study shows how it
searched.
"""

from __future__ import annotations

import math
import random as pyrandom
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.samplers.nsgaii._constraints_evaluation import _constrained_dominates
from optuna.study import Study
from optuna.study._constrained_optimization import _is_constrained_optimization
from optuna.study._multi_objective import _dominates
from optuna.trial import FrozenTrial, TrialState

from nasx.search.config import SamplerConfig, SamplerKind, StudyError
from nasx.search.rungs import fronts

#: Trial system attributes: the parents' trial numbers of a child, and the parameters mutated in it.
PARENT_KEY = "nasx:parents"
MUTATED_KEY = "nasx:mutated"


def member(t: FrozenTrial) -> bool:
    """A trial a population-based sampler may learn from: a complete candidate with parameters that is
    not a copy of an earlier trial's result (``state: duplicate``, see ``nasx.search.trial.place``)."""
    return t.state == TrialState.COMPLETE and bool(t.params) and bool(t.values) and t.user_attrs.get("state") != "duplicate"


def _grid(d: BaseDistribution) -> int | None:
    """How many values ``d`` holds, when they are finitely many."""
    if isinstance(d, CategoricalDistribution):
        return len(d.choices)
    if isinstance(d, IntDistribution):
        return (d.high - d.low) // d.step + 1
    if isinstance(d, FloatDistribution) and d.step is not None:
        return int(round((d.high - d.low) / d.step)) + 1
    return None


def _kth(d: BaseDistribution, k: int) -> Any:
    if isinstance(d, CategoricalDistribution):
        return d.choices[k]
    if isinstance(d, IntDistribution):
        return d.low + k * d.step
    assert isinstance(d, FloatDistribution) and d.step is not None
    return float(min(d.high, d.low + k * d.step))


def other_value(d: BaseDistribution, value: Any, rng: pyrandom.Random) -> Any:
    """A value of ``d`` other than ``value``, uniformly among the others (log-uniformly for a log range);
    ``value`` itself when ``d`` holds no other."""
    if d.single():
        return value
    n = _grid(d)
    if n is not None and not getattr(d, "log", False):
        try:
            own = int(d.to_internal_repr(value)) if isinstance(d, CategoricalDistribution) else None
        except ValueError:  # not one of the choices: any value differs
            return _kth(d, rng.randrange(n))
        if own is None:
            own = int(round((float(value) - float(d.low)) / float(d.step)))  # type: ignore[attr-defined]
        k = rng.randrange(n - 1)
        return _kth(d, k + (k >= own))
    assert isinstance(d, (IntDistribution, FloatDistribution))
    lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (float(d.low), float(d.high))
    for _ in range(1000):
        x = rng.uniform(lo, hi)
        x = math.exp(x) if d.log else x
        v: Any = min(d.high, max(d.low, int(round(x)))) if isinstance(d, IntDistribution) else x
        if v != value:
            return v
    return value


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution as an Optuna sampler.

    Until ``population`` trials have finished, parameters are drawn at random. Then each new trial
    picks ``sample_size`` of the ``population`` most recent members (complete candidates, not
    duplicates, see :func:`member`), takes the best as parent (best accuracy; with several
    objectives, the first non-dominated front, then accuracy) and copies its parameters except one,
    chosen at random among those with more than one value, which is redrawn from the values other
    than the parent's. So every child differs from its parent in exactly one decision; when that
    decision changes the conditional structure (a block kind), the parameters it newly exposes are
    drawn at random and those it hides are dropped. Trials without parameters (baselines) and
    duplicates are never parents and never age the population.
    """

    def __init__(self, population: int = 20, sample_size: int = 5, seed: int | None = None) -> None:
        self.population, self.sample_size = population, sample_size
        self._rng = pyrandom.Random(seed)
        self._random = RandomSampler(seed=seed)
        self._plan: dict[int, tuple[dict[str, Any], str | None]] = {}

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def _parent(self, study: Study, trial: FrozenTrial) -> tuple[dict[str, Any], str | None]:
        done = [t for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True) if member(t)]
        if len(done) < self.population:
            return {}, None
        recent = done[-self.population :]
        sample = self._rng.sample(recent, min(self.sample_size, len(recent)))
        directions = study.directions
        points = [
            [-v if d == optuna.study.StudyDirection.MAXIMIZE else v for v, d in zip(t.values, directions, strict=True)]
            for t in sample
        ]
        rank = fronts(points)
        best = min(range(len(sample)), key=lambda i: (rank[i], points[i][0], sample[i].number))
        parent = sample[best]
        mutable = sorted(k for k, d in parent.distributions.items() if not d.single())
        mutate = self._rng.choice(mutable) if mutable else None
        study._storage.set_trial_system_attr(trial._trial_id, PARENT_KEY, [parent.number])
        study._storage.set_trial_system_attr(trial._trial_id, MUTATED_KEY, [mutate] if mutate else [])
        return dict(parent.params), mutate

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if trial.number not in self._plan:
            self._plan[trial.number] = self._parent(study, trial)
        params, mutate = self._plan[trial.number]
        if param_name in params and _holds(param_distribution, params[param_name]):
            value = params[param_name]
            return other_value(param_distribution, value, self._rng) if param_name == mutate else value
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._plan.pop(trial.number, None)


def _holds(d: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is one of ``d``'s values (a parent's value may come from another distribution of the name)."""
    try:
        return bool(d._contains(d.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


class ConditionalNSGAIISampler(NSGAIISampler):
    """NSGA-II (Deb et al. 2002) for conditional spaces, in studies with baselines.

    Optuna's ``NSGAIISampler`` crosses over only the parameters of the intersection search space
    over all finished trials: one baseline (no parameters) makes it empty, and so do conditional
    parameters, and every parameter then falls back to random sampling. This sampler keeps
    Optuna's generations, elitist (constrained) non-dominated selection and binary tournaments,
    but its populations hold only :func:`member` trials, and the child is built per parameter as
    the trial asks for it: uniform crossover of the two parents' values for a parameter both have,
    the one parent's value for a parameter only one has (the branch it took), a random value for
    one neither has; then each parameter is redrawn at random with probability 1 / (number of the
    parents' parameters).
    """

    def __init__(
        self, *, population_size: int = 50, seed: int | None = None, crossover_prob: float = 0.9, swapping_prob: float = 0.5
    ) -> None:
        super().__init__(population_size=population_size, seed=seed, crossover_prob=crossover_prob, swapping_prob=swapping_prob)
        self._crossover_p, self._swapping_p = crossover_prob, swapping_prob
        self._plan: dict[int, tuple[dict[str, Any], set[str]]] = {}

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def _members(self, study: Study) -> list[FrozenTrial]:
        return [t for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True) if member(t)]

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        """As Optuna's, counting only :func:`member` trials toward a generation."""
        key = self._get_generation_key()
        stored = study._storage.get_trial_system_attrs(trial._trial_id).get(key)
        if stored is not None:
            return int(stored)
        counts: dict[int, int] = {}
        for t in self._members(study):
            g = t.system_attrs.get(key)
            if g is not None:
                counts[g] = counts.get(g, 0) + 1
        top = max(counts, default=0)
        generation = top if counts.get(top, 0) < (self._population_size or 2) else top + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        key = self._get_generation_key()
        return [t for t in self._members(study) if t.system_attrs.get(key) == generation]

    def _child(self, study: Study, trial: FrozenTrial) -> tuple[dict[str, Any], set[str]]:
        generation = self.get_trial_generation(study, trial)
        pool = self.get_parent_population(study, generation)
        if not pool:
            return {}, set()
        rng = self._rng.rng
        dominates = _constrained_dominates if _is_constrained_optimization(pool) else _dominates

        def tournament(among: Sequence[FrozenTrial]) -> FrozenTrial:
            a, b = among[rng.choice(len(among))], among[rng.choice(len(among))]
            return a if dominates(a, b, study.directions) else b

        first = tournament(pool)
        if rng.rand() < self._crossover_p and len(pool) > 1:
            second = tournament([t for t in pool if t.number != first.number])
            parents = [first, second]
            child: dict[str, Any] = {}
            for name in sorted(set(first.params) | set(second.params)):
                have = [p for p in parents if name in p.params]
                pick = have[0] if len(have) == 1 else parents[int(rng.rand() < self._swapping_p)]
                child[name] = pick.params[name]
        else:
            parents, child = [first], dict(first.params)
        rate = 1.0 / max(1, len(child))
        mutated = {name for name in sorted(child) if rng.rand() < rate}
        study._storage.set_trial_system_attr(trial._trial_id, PARENT_KEY, [p.number for p in parents])
        study._storage.set_trial_system_attr(trial._trial_id, MUTATED_KEY, sorted(mutated))
        return child, mutated

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if trial.number not in self._plan:
            self._plan[trial.number] = self._child(study, trial)
        child, mutated = self._plan[trial.number]
        if param_name in child and param_name not in mutated and _holds(param_distribution, child[param_name]):
            return child[param_name]
        return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._plan.pop(trial.number, None)
        super().after_trial(study, trial, state, values)


def _random(cfg: SamplerConfig, n_objectives: int) -> BaseSampler:
    return RandomSampler(seed=cfg.seed)


def _tpe(cfg: SamplerConfig, n_objectives: int) -> BaseSampler:
    # multivariate/group are marked experimental; they handle conditional spaces. Infeasible draws are
    # told with their constraint violation (nasx.search.trial.screen), which TPE reads from the trial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return TPESampler(seed=cfg.seed, n_startup_trials=min(10, cfg.population), multivariate=True, group=True)


def _nsga2(cfg: SamplerConfig, n_objectives: int) -> BaseSampler:
    return ConditionalNSGAIISampler(seed=cfg.seed, population_size=max(2, cfg.population))


def _evolution(cfg: SamplerConfig, n_objectives: int) -> BaseSampler:
    return RegularizedEvolutionSampler(population=cfg.population, sample_size=cfg.sample_size, seed=cfg.seed)


#: The one table of samplers: a new sampler is its :class:`SamplerKind` value and a factory here.
SAMPLERS: dict[SamplerKind, Callable[[SamplerConfig, int], BaseSampler]] = {
    SamplerKind.RANDOM: _random,
    SamplerKind.TPE: _tpe,
    SamplerKind.NSGA2: _nsga2,
    SamplerKind.EVOLUTION: _evolution,
}


def make_sampler(cfg: SamplerConfig, n_objectives: int) -> BaseSampler:
    """The seeded sampler ``cfg`` names, for a study of ``n_objectives``; an unknown kind is a StudyError."""
    factory = SAMPLERS.get(cfg.kind)
    if factory is None:
        known = ", ".join(k.value for k in SAMPLERS)
        raise StudyError(f"sampler.kind: unknown sampler {cfg.kind!r}; known: {known}")
    return factory(cfg, n_objectives)
