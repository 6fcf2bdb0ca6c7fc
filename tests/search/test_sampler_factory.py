"""Samplers come from one table: every SamplerKind has a factory, and a kind without one is refused."""

from __future__ import annotations

import pytest
from optuna.samplers import BaseSampler

from nasx.search.config import SamplerConfig, SamplerKind, StudyError
from nasx.search.samplers import SAMPLERS, make_sampler


def test_every_sampler_kind_has_a_factory() -> None:
    assert set(SAMPLERS) == set(SamplerKind)


@pytest.mark.parametrize("kind", list(SamplerKind))
def test_each_factory_builds_a_seeded_sampler(kind: SamplerKind) -> None:
    sampler = make_sampler(SamplerConfig(kind=kind, seed=3, population=4), 2)
    assert isinstance(sampler, BaseSampler)


def test_an_unknown_kind_is_an_error_not_evolution() -> None:
    cfg = SamplerConfig().model_copy(update={"kind": "annealing"})  # model_copy does not validate
    with pytest.raises(StudyError, match=r"sampler.kind: unknown sampler 'annealing'; known: random, tpe, nsga2, evolution"):
        make_sampler(cfg, 2)
