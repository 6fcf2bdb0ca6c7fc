"""`nasx zoo` and `nasx describe`: output, JSON, and one clear error with no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasx import zoo
from nasx.cli import app
from nasx.errors import NasxError

runner = CliRunner()


def test_zoo_json_lists_every_network_with_golden_figures() -> None:
    result = runner.invoke(app, ["zoo", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == zoo.names()
    golden = zoo.golden()
    for r in rows:
        assert r["params"] == golden[r["name"]]["params"] and r["macs"] == golden[r["name"]]["macs"]
        assert len(r["input_size"]) == 3 and r["family"]


def test_zoo_table() -> None:
    result = runner.invoke(app, ["zoo"])
    assert result.exit_code == 0
    line = next(row for row in result.stdout.splitlines() if "resnet20_cifar" in row)
    assert "269,722" in line and "3x32x32" in line and "0.04055" in line


def test_describe_json_parts_sum_to_totals() -> None:
    result = runner.invoke(app, ["describe", "resnet56_cifar", "--json", "--batch", "8"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["params"] == 853_018 == sum(p["params"] for p in doc["parts"])
    assert doc["macs"] == sum(p["macs"] for p in doc["parts"])
    assert [p["out_shape"] for p in doc["parts"]] == [[16, 32, 32], [16, 32, 32], [32, 16, 16], [64, 8, 8], [10]]
    assert doc["activation_batch"] == 8 and doc["activation_bytes"] > 0


def test_describe_a_users_yaml_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(
        "name: mine\nstem: [{kind: conv, out: 8}]\nstages:\n  - {block: {kind: residual, se: 0.25}, depth: 2, channels: 16, stride: 2}\n"
    )
    result = runner.invoke(app, ["describe", str(f)])
    assert result.exit_code == 0, result.output
    assert "stage1" in result.stdout and "16x16x16" in result.stdout
    assert "2*residual(se=0.25)@16/2" in result.stdout


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("stages: [{block: {kind: residual, kernel: 4}, depth: 2, channels: 16}]", "stages[0].block.kernel: must be odd, got 4"),
        ("stages: [{block: {kind: residual}, depth: 2, chanels: 16}]", "stages[0].chanels: unknown field"),
        ("stages: [{block: {kind: residual}, depth: 2: 1}]", "line 1"),
    ],
)
def test_describe_rejects_bad_files_with_one_message(tmp_path: Path, content: str, phrase: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content + "\n")
    result = runner.invoke(app, ["describe", str(f)])
    assert result.exit_code == 2
    assert phrase in result.stderr and result.stderr.startswith("error:")
    assert "Traceback" not in result.output


def test_module_entry_point_errors_cleanly() -> None:
    proc = subprocess.run([sys.executable, "-m", "nasx", "describe", "resnet21"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown zoo network 'resnet21'" in proc.stderr and "did you mean" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    helped = subprocess.run([sys.executable, "-m", "nasx", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "zoo" in helped.stdout and "describe" in helped.stdout


def test_unknown_name_hint_matches_a_prefix() -> None:
    with pytest.raises(NasxError, match="did you mean resnet20_cifar"):
        zoo.path("resnet20")
