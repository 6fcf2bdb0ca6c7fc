"""Optuna samplers for a study, all seeded, including regularized evolution (Real et al. 2019)."""

from __future__ import annotations

import random as pyrandom
import warnings
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nasx.search.config import SamplerConfig, SamplerKind
from nasx.search.rungs import fronts


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution as an Optuna sampler.

    Until ``population`` trials have finished, parameters are drawn at random. Then each new trial
    picks ``sample_size`` of the ``population`` most recent complete trials, takes the best as
    parent (best accuracy; with several objectives, the first non-dominated front, then accuracy)
    and copies its parameters except one, chosen at random, which is drawn afresh. Parameters
    the parent does not have (another branch of a conditional space) are drawn at random. Trials
    without parameters (baselines) are not parents.
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

    def _parent(self, study: Study) -> tuple[dict[str, Any], str | None]:
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.params and t.values]
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
        return dict(parent.params), self._rng.choice(sorted(parent.params))

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if trial.number not in self._plan:
            self._plan[trial.number] = self._parent(study)
        params, mutate = self._plan[trial.number]
        if (
            param_name in params
            and param_name != mutate
            and param_distribution._contains(param_distribution.to_internal_repr(params[param_name]))
        ):
            return params[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._plan.pop(trial.number, None)


def make_sampler(cfg: SamplerConfig, n_objectives: int) -> BaseSampler:
    if cfg.kind == SamplerKind.RANDOM:
        return RandomSampler(seed=cfg.seed)
    if cfg.kind == SamplerKind.TPE:
        with warnings.catch_warnings():  # multivariate/group are marked experimental; they handle conditional spaces
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return TPESampler(seed=cfg.seed, n_startup_trials=min(10, cfg.population), multivariate=True, group=True)
    if cfg.kind == SamplerKind.NSGA2:
        return NSGAIISampler(seed=cfg.seed, population_size=max(2, cfg.population))
    return RegularizedEvolutionSampler(population=cfg.population, sample_size=cfg.sample_size, seed=cfg.seed)
