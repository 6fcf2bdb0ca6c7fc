"""The samplers search: NSGA-II breeds from its parents beside baselines and in conditional spaces,
evolution mutates exactly one decision and keeps duplicates out, TPE learns the feasible region."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nasx.search.config import SamplerConfig, StudyConfig
from nasx.search.samplers import MUTATED_KEY, PARENT_KEY, ConditionalNSGAIISampler, RegularizedEvolutionSampler, make_sampler
from nasx.search.study import Worker
from nasx.search.trial import Candidate, Context, finish, screen
from nasx.space import Network

BRANCHES = {"a": ["a0", "a1", "a2"], "b": ["b0", "b1"]}


def conditional_float_space(trial: Any) -> dict[str, Any]:
    """Two shared floats, then a branch choice with its own floats: a random draw never repeats a value."""
    out: dict[str, Any] = {k: trial.suggest_float(k, 0.0, 1.0) for k in ("s0", "s1")}
    kind = out["kind"] = trial.suggest_categorical("kind", list(BRANCHES))
    out.update({k: trial.suggest_float(k, 0.0, 1.0) for k in BRANCHES[kind]})
    return out


def add_baseline(study: optuna.Study, values: list[float]) -> None:
    """A trial without parameters, as nasx records a baseline."""
    t = study.ask()
    t.set_user_attr("role", "baseline")
    study.tell(t, values)


def test_nsga2_children_after_the_first_generation_are_built_from_their_parents_values() -> None:
    pop = 6
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=ConditionalNSGAIISampler(population_size=pop, seed=0)
    )
    add_baseline(study, [0.5, 0.5])

    def objective(t: optuna.Trial) -> tuple[float, float]:
        p = conditional_float_space(t)
        xs = [v for k, v in p.items() if k != "kind"]
        return sum(xs) / len(xs), xs[0] ** 2 + (0.3 if p["kind"] == "a" else 0.0)

    study.optimize(objective, n_trials=8 * pop)
    cand = [t for t in study.trials if t.params]
    gen_key = ConditionalNSGAIISampler._get_generation_key()
    later = [t for t in cand if t.system_attrs.get(gen_key, 0) >= 1]
    assert len(later) >= 5 * pop, "the baseline does not stall the generations"
    inherited = total = 0
    for child in later:
        earlier = [t for t in cand if t.number < child.number]
        parents = [study.trials[n] for n in child.system_attrs[PARENT_KEY]]
        assert parents and all(p.params for p in parents), "parents are candidates, never the baseline"
        for name, value in child.params.items():
            total += 1
            inherited += any(t.params.get(name) == value for t in earlier)  # floats: random draws never repeat one
            if name not in child.system_attrs[MUTATED_KEY] and any(name in p.params for p in parents):
                assert value in [p.params[name] for p in parents if name in p.params], (child.number, name)
    # crossover of the shared floats and of the branch's own floats (conditional parameters), mutation at ~1/5
    assert inherited / total > 0.7, f"only {inherited}/{total} values come from earlier trials: random search"


def test_nsga2_from_the_study_config_is_nasx_s_own() -> None:
    assert isinstance(make_sampler(SamplerConfig(kind="nsga2", population=4), 2), ConditionalNSGAIISampler)


CELL_OPS = ["sep3", "sep5", "dil3", "max3", "avg3", "skip"]


def small_conditional_space(trial: Any) -> dict[str, Any]:
    """Categoricals with few values (a redraw from all values would often repeat the parent's), one of
    which changes the structure."""
    out = {f"op{i}": trial.suggest_categorical(f"op{i}", CELL_OPS[:3]) for i in range(3)}
    out["deep"] = trial.suggest_categorical("deep", [False, True])
    if out["deep"]:
        out["width"] = trial.suggest_int("width", 1, 3)
    return out


def test_every_evolution_child_differs_from_its_parent_in_exactly_one_decision() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=RegularizedEvolutionSampler(6, 3, seed=0))
    add_baseline(study, [0.9, 0.1])

    def objective(t: optuna.Trial) -> tuple[float, float]:
        p = small_conditional_space(t)
        return sum(v == "sep3" for v in p.values()) + p.get("width", 0), float(p["deep"])

    study.optimize(objective, n_trials=80)
    children = [t for t in study.trials if PARENT_KEY in t.system_attrs]
    assert len(children) >= 70
    structural = 0
    for child in children:
        (n,) = child.system_attrs[PARENT_KEY]
        parent, (mutated,) = study.trials[n], child.system_attrs[MUTATED_KEY]
        changed = {k for k in set(child.params) & set(parent.params) if child.params[k] != parent.params[k]}
        assert changed == {mutated}, (child.number, child.params, parent.params)
        if set(child.params) != set(parent.params):  # the one decision exposed or hid parameters
            assert mutated == "deep"
            structural += 1
    assert structural > 0


def test_duplicates_never_join_the_evolution_population() -> None:
    study = optuna.create_study(sampler=RegularizedEvolutionSampler(5, 3, seed=1), direction="maximize")
    seen: dict[tuple[Any, ...], float] = {}

    def objective(t: optuna.Trial) -> float:
        p = small_conditional_space(t)
        key = tuple(sorted(p.items()))
        if key in seen:
            t.set_user_attr("state", "duplicate")  # as nasx.search.trial.place records one
            return seen[key]
        seen[key] = random.Random(str(key)).random()
        return seen[key]

    study.optimize(objective, n_trials=60)
    duplicates = {t.number for t in study.trials if t.user_attrs.get("state") == "duplicate"}
    assert duplicates, "the small space repeats itself"
    parents = {n for t in study.trials for n in t.system_attrs.get(PARENT_KEY, [])}
    assert parents and not parents & duplicates


def test_an_evolution_run_on_nasnet_cifar_is_almost_free_of_duplicates() -> None:
    """200 trials, each genotype's accuracy made up from its digest, duplicates recorded as nasx does."""
    from nasx.space.design import load_space

    space = load_space("nasnet-cifar")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=RegularizedEvolutionSampler(20, 5, seed=0))
    seen: dict[str, tuple[float, float]] = {}
    dups = 0
    for _ in range(200):
        t = study.ask()
        net = space.sample(t)
        if net.digest in seen:
            dups += 1
            t.set_user_attr("state", "duplicate")
            study.tell(t, list(seen[net.digest]))
            continue
        seen[net.digest] = (int(net.digest[:6], 16) / 0xFFFFFF, float(int(net.digest[6:12], 16)))
        study.tell(t, list(seen[net.digest]))
    assert dups / 200 < 0.05, f"{dups} of 200 trials are duplicates"


class ChannelsSpace:
    """Stem width and two stages of width and depth: MACs span two orders of magnitude."""

    def sample(self, trial: Any) -> Network:
        stem = trial.suggest_categorical("stem", [8, 16, 32, 64])
        c1 = trial.suggest_int("c1", 8, 64, step=8)
        d1 = trial.suggest_int("d1", 1, 4)
        c2 = trial.suggest_int("c2", 16, 128, step=16)
        return Network.from_string(f"input(resolution=8) | stem[conv(out={stem})] | {d1}*residual()@{c1} | 1*residual()@{c2}/2")

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return {"channels": 1}


@pytest.mark.slow
def test_tpe_learns_to_avoid_infeasible_draws(tmp_path: Path) -> None:
    """Infeasible draws are told to TPE with their violation: the share of them falls over the run."""
    cfg = StudyConfig.model_validate(
        {
            "name": "constrained",
            "space": "channels",
            "objectives": ["val_acc", "macs"],
            "constraints": {"max_macs": 1_000_000},
            "sampler": {"kind": "tpe", "seed": 0, "population": 10},
            "budget": {"trials": 80},
        }
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(cfg.sampler, 2))
    space = ChannelsSpace()
    with Worker(tmp_path) as worker:
        ctx = Context(cfg, study, space, None, cfg.resolved_recipe(), None, None, worker)  # type: ignore[arg-type]
        flags = []
        for _ in range(80):
            step = screen(ctx, study.ask())
            if isinstance(step, Candidate):
                finish(study, step.trial, "complete", (int(step.net.digest[:6], 16) / 0xFFFFFF, float(step.macs)), None)
                flags.append(False)
            else:  # settled without training: infeasible, or a duplicate of a feasible one
                flags.append(step.state == "infeasible")
    first, second = sum(flags[:40]) / 40, sum(flags[40:]) / 40
    assert first > 0.4, f"the constraint cuts most of the space at random ({first:.0%})"
    assert second < first - 0.2, f"infeasible share {first:.0%} in the first half, {second:.0%} in the second"
    infeasible = [t for t in study.trials if t.user_attrs.get("state") == "infeasible"]
    assert all(t.state == TrialState.PRUNED and t.constraints["max_macs"] > 0 for t in infeasible)
