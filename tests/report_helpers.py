"""A synthetic study written through nasx's own trial recording, for the report tests (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from search_helpers import tiny_config

from nasx.search.config import StudyConfig
from nasx.search.study import open_study, study_dir
from nasx.search.trial import finish, record_genotype
from nasx.space import Network

HOSTILE = "<script>alert(1)</script>"


def synthetic_accuracy(width: int, depth: int, se: float) -> float:
    """Made-up but deterministic: wider, deeper and SE are better."""
    return 0.30 + 0.01 * width + 0.03 * depth + 0.1 * se


def make_study(
    folder: Path, name: str = "synthetic", trials: int = 12, seed: int = 0, baselines: tuple[str, ...] = (), **overrides: Any
) -> StudyConfig:
    """A finished study of ``trials`` candidates over the tiny space (some stopped, one failed), one baseline named
    ``HOSTILE`` and one infeasible draw, recorded exactly as a search records them."""
    cfg = tiny_config(folder, name=name, baselines=list(baselines), **overrides)
    study = open_study(cfg, study_dir(cfg, folder / "runs"), "synthetic")
    sampler_rng = optuna.samplers.RandomSampler(seed=seed)
    study.sampler = sampler_rng
    for i in range(trials):
        trial = study.ask()
        width = trial.suggest_categorical("stem.out", [4, 8, 16])
        depth = trial.suggest_int("stages.0.depth", 1, 3)
        se = trial.suggest_categorical("stages.0.block.se", [0.0, 0.25])
        net = Network.from_string(f"stem[conv(out={width})] | {depth}*residual(se={se})@{width}")
        params, macs = record_genotype(trial, net, "candidate")
        acc = synthetic_accuracy(width, depth, se)
        if i % 5 == 3:  # stopped early at epoch 1, with a tempting accuracy that must not join the front
            trial.set_user_attr("curve", [0.99])
            finish(study, trial, "stopped", None, "stopped early at epoch 1")
        elif i == trials - 1:
            trial.set_user_attr("curve", [0.2])
            finish(study, trial, "failed", None, "non_finite_loss in epoch 2: loss is nan")
        else:
            trial.set_user_attr("curve", [acc - 0.1, acc - 0.05, acc])
            finish(study, trial, "complete", (acc, float(macs)), None)
    trial = study.ask()
    net = Network.from_string("stem[conv(out=8)] | 2*residual()@8")
    _, macs = record_genotype(trial, net, "baseline", HOSTILE)
    trial.set_user_attr("curve", [0.40, 0.45, 0.5])
    finish(study, trial, "complete", (0.5, float(macs)), None)
    trial = study.ask()
    trial.suggest_categorical("stem.out", [4, 8, 16])
    trial.set_user_attr("role", "candidate")
    finish(study, trial, "infeasible", None, "MACs 99 > max_macs 1")
    return cfg


def config_file_text(cfg: StudyConfig) -> str:
    """The study as a config file the CLI loads: the tiny space is given in code, so the file names a real one
    (report, status and retrain read the record and never sample the space)."""
    import json

    return json.dumps({**cfg.model_dump(mode="json"), "space": "macro-cifar"})  # JSON is YAML
