"""The sampler benchmark (benchmarks/sampler_bench.py) at micro scale: real searches scored by the injected
evaluator, hypervolumes that only grow, counts that add up, a CSV that gives back the same table, and
paired differences taken on matched seeds only."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import sampler_bench as sb  # noqa: E402

from nasx.search.config import StudyError  # noqa: E402


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[sb.Run], sb.Scorer]:
    """random and proxy-screened TPE, seeds 0 and 1, 6 evaluated trials each, scored as in the benchmark."""
    scorer = sb.Scorer()
    rows, runs = sb.run_all(["random", "tpe+screen"], [0, 1], 6, [2, 4, 6], scorer, tmp_path_factory.mktemp("bench"), log=False)
    return rows, runs, scorer


@pytest.mark.slow
def test_every_run_reaches_its_budget_and_its_hypervolume_never_falls(micro: tuple[list[dict], list[sb.Run], sb.Scorer]) -> None:
    rows, runs, _ = micro
    assert sorted((r["sampler"], r["seed"], r["trials"]) for r in rows) == sorted(
        (s, seed, n) for s in ("random", "tpe+screen") for seed in (0, 1) for n in (2, 4, 6)
    )
    for run in runs:
        assert run.stopped is None
        evaluated = [p for p in run.points if p is not None]
        assert len(evaluated) == 6  # the pre-filter stops filling a pool once duplicates it settles spend the budget
        assert all(macs <= sb.MAX_MACS for _, macs in evaluated), "the constraint holds for every evaluated candidate"
        curve = [sb.normalised_hypervolume(evaluated[:i]) for i in range(1, len(evaluated) + 1)]
        assert all(b >= a - 1e-12 for a, b in zip(curve, curve[1:], strict=False)), curve  # a repeated point: rounding only
        assert curve[-1] > 0
        mine = sorted((r for r in rows if r["sampler"] == run.sampler and r["seed"] == run.seed), key=lambda r: r["trials"])
        assert [r["hypervolume"] for r in mine] == [round(curve[n - 1], 6) for n in (2, 4, 6)]


@pytest.mark.slow
def test_draws_add_up_and_the_screened_run_screens_by_its_proxy(micro: tuple[list[dict], list[sb.Run], sb.Scorer]) -> None:
    rows, runs, scorer = micro
    for r in rows:
        # every draw is evaluated (complete or duplicate), infeasible, or screened by the pre-filter
        assert r["failed"] == 0, r
        assert r["draws"] == r["trials"] + r["infeasible"] + r["screened"], r
        assert (r["screened"] > 0) == (r["sampler"] == "tpe+screen"), r
    assert all(r["screened"] >= r["trials"] for r in rows if r["sampler"] == "tpe+screen" and r["trials"] == 6)
    # the pre-filter ranked by the evaluator's synflow (a dry run without it records every score as undefined):
    # each draw it screened for its score is ranked below the 2 it kept
    ranked = [why for run in runs for state, why in zip(run.states, run.reasons, strict=True) if state == "screened"]
    by_score = [why for why in ranked if why and why.startswith(f"{sb.SCREEN_BY} ")]
    assert by_score, ranked
    for why in by_score:
        assert "undefined" not in why, why
        rank = int(why.split(" ranked ")[1].split(" of ")[0])
        assert rank > 2, why
    assert scorer.cpu[sb.SCREEN_BY] and scorer.cpu[sb.OBJECTIVE]


@pytest.mark.slow
def test_the_csv_gives_back_the_rows_and_the_same_tables(
    micro: tuple[list[dict], list[sb.Run], sb.Scorer], tmp_path: Path
) -> None:
    rows, _, _ = micro
    path = tmp_path / "bench.csv"
    sb.write_csv(rows, path)
    back = sb.read_csv(path)
    assert back == rows
    assert sb.tables(back) == sb.tables(rows)
    assert sb.main(["--from-csv", "--csv", str(path)]) is None


def test_scores_are_a_deterministic_function_of_the_genotype() -> None:
    from nasx.space import load_space

    net = load_space("macro-cifar").random(3)
    a, b = sb.Scorer(batch_size=8), sb.Scorer(batch_size=8)
    assert a.score(net, "naswot") == b.score(net, "naswot")  # two caches, two computations
    assert a.computed == b.computed == 1
    a.score(net, "naswot")
    assert a.computed == 1, "the second score of one genotype is the cache's"


def test_the_hypervolume_box_is_fixed() -> None:
    assert sb.normalised_hypervolume([(sb.TOP_SCORE, sb.MIN_MACS)]) == pytest.approx(1.0)
    assert sb.normalised_hypervolume([(sb.REF_SCORE, sb.MIN_MACS), (sb.TOP_SCORE, sb.MAX_MACS)]) == 0.0
    mid = (sb.REF_SCORE + sb.TOP_SCORE) / 2
    assert sb.normalised_hypervolume([(mid, sb.MIN_MACS)]) == pytest.approx(0.5)
    assert sb.normalised_hypervolume([]) == 0.0


def _row(sampler: str, seed: int, hv: float, trials: int = 50) -> dict:
    return {"sampler": sampler, "seed": seed, "trials": trials, "hypervolume": hv}


def test_the_paired_difference_uses_only_the_seeds_both_samplers_ran() -> None:
    rows = [_row("random", s, 0.1 * s) for s in (0, 1, 2)] + [_row("tpe", s, 0.1 * s + 0.05 * s) for s in (1, 2, 3)]
    rows.append(_row("tpe", 0, 0.9, trials=100))  # another checkpoint: not mixed in
    diff = sb.paired_difference(rows, "tpe", 50)
    assert diff.n == 2
    assert diff.mean == pytest.approx((0.05 + 0.10) / 2)


def test_the_t_interval_and_the_verdict() -> None:
    i = sb.t_interval([1.0, 2.0, 3.0])
    assert i.mean == 2.0 and i.n == 3
    assert i.high - i.mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) * sd / sqrt(n)
    assert sb.verdict(sb.t_interval([0.10, 0.11, 0.12])) == "beats random"
    assert sb.verdict(sb.t_interval([0.01, 0.02, 0.03])) == "no difference shown"  # mean 0.02, half-width 0.025
    assert sb.verdict(sb.t_interval([-0.05, 0.02, 0.03])) == "no difference shown"
    assert sb.verdict(sb.t_interval([-0.10, -0.11, -0.12])) == "worse than random"
    assert sb.verdict(sb.t_interval([0.5])) == "too few seeds"


def test_an_injected_evaluator_runs_the_local_executor_only(tmp_path: Path) -> None:
    from nasx.search import run_search
    from nasx.search.trial import Evaluator

    with pytest.raises(StudyError, match="local executor only"):
        run_search(sb.study_config("random", 0, 2), root=tmp_path, executor="ray", evaluator=Evaluator(lambda net: 0.0))
    assert not (tmp_path / "random-s0").exists(), "refused before the study folder is made"


def test_the_committed_table_is_complete_and_is_the_one_in_the_readme() -> None:
    rows = sb.read_csv(sb.CSV_PATH)
    for s in sb.SAMPLERS:
        seeds = {r["seed"] for r in rows if r["sampler"] == s}
        assert len(seeds) >= 5, (s, seeds)
        assert {(r["seed"], r["trials"]) for r in rows if r["sampler"] == s} == {(x, n) for x in seeds for n in sb.CHECKPOINTS}
    readme = (ROOT / "README.md").read_text()
    assert sb.tables(rows) in readme, "README's sampler tables are not the ones benchmarks/data/sampler_bench.csv gives"
