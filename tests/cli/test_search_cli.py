"""`nasx search` and `nasx status` as a user runs them, and the shipped study configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, tiny_data
from typer.testing import CliRunner

from nasx import zoo
from nasx.cli import app
from nasx.search import StudyConfig, run_search
from nasx.space.design import load_space

runner = CliRunner()
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


def test_search_then_status_on_the_macro_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the report goes to ./reports/
    study = {
        "name": "cli",
        "space": "macro-cifar",
        "data": {"source": str(tiny_data(tmp_path)), "val_size": 40},
        "objectives": ["val_acc", "macs"],
        "constraints": {"max_macs": 60_000_000},
        "sampler": {"kind": "random", "seed": 3},
        "budget": {"trials": 3},
        "fidelity": {"epochs": 1},
        "recipe": {"batch_size": 32, "eval_batch_size": 64, "precision": "fp32", "channels_last": False},
        "baselines": ["resnet20_cifar"],
        "device": "cpu",
    }
    f = tmp_path / "cli.yaml"
    f.write_text(yaml.safe_dump(study))
    result = runner.invoke(app, ["search", str(f), "--dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "baseline resnet20_cifar" in result.stdout and "3 trials" in result.stdout
    assert "report: reports/cli.html" in result.stdout and (tmp_path / "reports" / "cli.parquet").is_file()
    status = runner.invoke(app, ["status", str(f), "--dir", str(tmp_path / "runs"), "--json"])
    doc = json.loads(status.stdout)
    assert doc["progress"]["trials"] == 3 and doc["progress"]["baselines"] == 1
    evaluated = [t for t in doc["trials"] if t["role"] == "candidate" and t["state"] != "infeasible"]
    assert len(evaluated) == 3, "infeasible draws do not count against the budget"
    assert all(t["macs"] is None or t["macs"] > 60_000_000 for t in doc["trials"] if t["state"] == "infeasible")
    assert set(doc["front"]) <= {t["number"] for t in doc["trials"] if t["state"] == "complete"}
    again = runner.invoke(app, ["search", str(f), "--dir", str(tmp_path / "runs"), "--no-report"])
    assert again.exit_code == 0 and "3 trials" in again.stdout, "a finished study is not run again"


def test_status_of_a_study_never_run_is_one_error_line(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: never\nspace: macro-cifar\nbudget: {trials: 1}\n")
    result = runner.invoke(app, ["status", str(f), "--dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "no study 'never'" in result.stderr


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_configs_are_valid(path: Path) -> None:
    cfg = StudyConfig.load(path)
    space = load_space(cfg.space)
    for name in cfg.baselines:
        zoo.get(name)
    assert space.random(0).input.resolution == 32


def test_the_quickstart_runs_end_to_end_as_a_dry_run(tmp_path: Path) -> None:
    cfg = StudyConfig.load(ROOT / "studies" / "quickstart.yaml")
    summary = run_search(cfg, root=tmp_path / "runs", trials=6, dry_run_s=0.0)
    assert summary.progress.trials == 6 and summary.progress.baselines == len(cfg.baselines) == 2
    limit = cfg.constraints.max_macs
    assert limit is not None
    assert all(
        r["macs"] is None or r["state"] != "complete" or r["macs"] <= limit for r in summary.rows if r["role"] == "candidate"
    )
