"""The proxy trust report: rank correlations with n and Fisher-z intervals, the verdict against the parameter count,
and the report section of a study whose trials were scored."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import tiny_config
from scipy import stats

from nasx.report import collect
from nasx.report.page import render
from nasx.results.correlation import proxy_trust, rank_correlation, study_trust
from nasx.search.proxies import set_proxy_attrs
from nasx.search.study import open_study, study_dir
from nasx.search.trial import finish, record_genotype
from nasx.space import Network


def test_rank_correlation_matches_scipy_drops_missing_pairs_and_its_interval_narrows_with_n() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    n, tau, rho = rank_correlation([*x, None, math.nan], [*y, 0.5, 0.1])
    assert n == 60
    assert tau.value == pytest.approx(stats.kendalltau(x, y).statistic)
    assert rho.value == pytest.approx(stats.spearmanr(x, y).statistic)
    assert tau.low < tau.value < tau.high and rho.low < rho.value < rho.high
    _, small, _ = rank_correlation(x[:15], y[:15])
    assert small.high - small.low > tau.high - tau.low
    # Fisher z for tau: se = sqrt(0.437 / (n - 4))
    assert math.atanh(tau.high) - math.atanh(tau.value) == pytest.approx(1.959964 * math.sqrt(0.437 / 56), rel=1e-5)
    assert rank_correlation([1, 2, 3], [1, 2, 3])[1].value == pytest.approx(1.0)
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3])[1].value), "a constant proxy ranks nothing"


def test_a_proxy_that_does_not_beat_the_parameter_count_is_marked() -> None:
    acc = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    table = {t.proxy: t for t in proxy_trust({"params": [1, 2, 3, 5, 4, 6], "good": acc, "bad": acc[::-1]}, acc)}
    assert table["params"].beats_reference is None
    assert table["good"].beats_reference is True and table["bad"].beats_reference is False
    assert table["good"].n == 6
    few = {t.proxy: t for t in proxy_trust({"params": acc[:4][::-1], "good": acc[:4]}, acc[:4])}
    assert few["good"].kendall.value == pytest.approx(1.0) and few["good"].beats_reference is None, "4 networks: no verdict"
    # below zero nothing beats it, even a proxy less wrong than a parameter count that ranks backwards
    worse = {t.proxy: t for t in proxy_trust({"params": acc[::-1], "less_bad": [1, 3, 2, 6, 5, 4][::-1]}, acc)}
    assert worse["less_bad"].kendall.value > worse["params"].kendall.value and worse["less_bad"].beats_reference is False


def test_final_runs_are_matched_to_their_trials_by_digest() -> None:
    frame = pd.DataFrame(
        {
            "state": ["complete"] * 5 + ["stopped"],
            "val_acc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.9],
            "digest": list("abcdef"),
            "proxies": [{"params": 5 - i, "naswot": i} for i in range(6)],
        }
    )
    final = pd.DataFrame({"digest": ["a", "c", "e", "z"], "test_mean": [0.3, 0.2, 0.9, 0.5]})
    tables = study_trust(frame, final)
    search = {t.proxy: t for t in tables["search"]}
    assert [t.proxy for t in tables["search"]] == ["params", "naswot"]
    assert search["naswot"].n == 5 and search["naswot"].kendall.value == pytest.approx(1.0), "the stopped trial is left out"
    final_t = {t.proxy: t for t in tables["final"]}
    assert final_t["naswot"].n == 3  # "z" has no trial
    assert final_t["naswot"].spearman.value == pytest.approx(stats.spearmanr([0, 2, 4], [0.3, 0.2, 0.9]).statistic)


def test_the_report_shows_the_trust_section_of_a_scored_study(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, name="scored", proxies={"compute": ["params", "naswot"]})
    study = open_study(cfg, study_dir(cfg, tmp_path / "runs"), "synthetic")
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for i, width in enumerate([4, 8, 16, 4, 8, 16, 8]):
        trial = study.ask()
        net = Network.from_string(f"stem[conv(out={width})] | {1 + i % 3}*residual()@{width}")
        params, macs = record_genotype(trial, net, "candidate")
        acc = 0.2 + 0.05 * i
        set_proxy_attrs(trial, {"params": float(params), "naswot": -acc}, {"params": 0.0, "naswot": 0.1})  # naswot backwards
        trial.set_user_attr("curve", [acc])
        finish(study, trial, "complete", (acc, float(macs)), None)
    source = collect.from_study(cfg, tmp_path / "runs")
    html = render([source], "scored")
    section = html[html.index("5. Zero-cost proxy trust") : html.index("6. What was run")]
    assert "<td><code>naswot</code></td><td>7</td><td>-1.00 [" in section
    assert "does not beat the parameter count" in section and "the reference" in section
    unscored = tiny_config(tmp_path, name="unscored")
    open_study(unscored, study_dir(unscored, tmp_path / "runs"), "synthetic")
    assert "No trial was scored" in render([collect.from_study(unscored, tmp_path / "runs")], "unscored")
