"""`nasx train` end to end on a tiny official-format CIFAR written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_batches
from typer.testing import CliRunner

from nasx.cli import app
from nasx.space import Network

runner = CliRunner()
NET = "input(resolution=32, classes=10) | stem[conv(out=8)] | 1*residual()@8"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))
    write_batches(tmp_path / "cifar-10-batches-py", per_batch=24, n_test=16)
    (tmp_path / "net.yaml").write_text(Network.from_string(NET).to_yaml())
    (tmp_path / "recipe.yaml").write_text("preset: standard\nbatch_size: 16\neval_batch_size: 32\nprecision: fp32\n")
    return tmp_path


def _train_args(setup: Path, *, epochs: int, out: Path) -> list[str]:
    """`nasx train` of the fixture's network, data and recipe on the CPU."""
    data, recipe = str(setup / "cifar-10-batches-py"), str(setup / "recipe.yaml")
    return ["train", str(setup / "net.yaml"), "--data", data, "--recipe", recipe, "--epochs", str(epochs)] + [
        "--val-size",
        "20",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]


def test_train_writes_a_run_folder_and_reports_val_and_test(setup: Path) -> None:
    run = setup / "run"
    args = [*_train_args(setup, epochs=2, out=run), "--test"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "val " in result.stdout and "test " in result.stdout and str(run) in result.stdout
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "weights.safetensors",
        "summary.json",
        "checkpoint.pt",
    }
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and "test_acc" in summary
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    # the same command again resumes: nothing left to train, the same figures
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and json.loads((run / "summary.json").read_text())["val_acc"] == summary["val_acc"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--recipe", "quick"], "unknown recipe preset 'quick'"),
        (["--data", "nowhere/cifar.tar.gz"], "nowhere/cifar.tar.gz"),
    ],
)
def test_train_errors_are_one_line(setup: Path, extra: list[str], needle: str) -> None:
    result = runner.invoke(app, ["train", str(setup / "net.yaml"), *extra])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output


def test_an_imagenet_network_on_cifar_is_refused_in_one_line_naming_the_ones_that_fit(setup: Path) -> None:
    result = runner.invoke(app, ["train", "resnet50", "--data", str(setup / "cifar-10-batches-py"), "--epochs", "1"])
    assert result.exit_code == 2, "a usage error"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "224x224" in lines[0] and "1000 classes" in lines[0] and "resnet20_cifar" in lines[0]
    assert "resnet50," not in lines[0].split("fit:")[1]


def test_train_json_summary_and_exit_1_when_training_fails(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _train_args(setup, epochs=1, out=setup / "run")
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["epochs"] == 1 and doc["val_images"] == 20 and doc["macs"] > 0 and doc["run_dir"] == str(setup / "run")
    from nasx.train.loop import TrainingFailed

    def diverge(*a: object, **k: object) -> None:
        raise TrainingFailed("non_finite_loss", 1, "loss is nan")

    monkeypatch.setattr("nasx.train.train_run", diverge)
    failed = runner.invoke(app, [*args[:-2], "--out", str(setup / "run2")])
    assert failed.exit_code == 1, "a runtime failure, not a usage error"
    assert "training failed" in failed.stderr
