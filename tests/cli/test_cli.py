"""`nasx zoo` and `nasx describe`: figures equal the computed ones; errors are one clear line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ZOO_NAMES, cached_complexity, run_python
from typer.testing import CliRunner

from nasx import zoo
from nasx.cli import app
from nasx.models.complexity import activation_memory, complexity
from nasx.space import Network

runner = CliRunner()


@pytest.fixture(autouse=True)
def _share_complexity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands compute the real figures, but each network is traced once per worker."""
    monkeypatch.setattr("nasx.models.complexity.complexity", cached_complexity)


BAD_KERNEL_YAML = """\
name: my_net
input: {channels: 3, resolution: 32, classes: 10}
stem:
  - {kind: conv, out: 16, kernel: 3}
stages:
  - {block: {kind: residual, variant: basic, kernel: 4}, depth: 3, channels: 16, stride: 1}
"""

MY_NET_YAML = """\
name: my_net
reference: a test network
input: {channels: 3, resolution: 32, classes: 10}
stem:
  - {kind: conv, out: 16, kernel: 3}
stages:
  - {block: {kind: residual, variant: basic, shortcut: pad}, depth: 1, channels: 16, stride: 1}
  - {block: {kind: residual, variant: basic, shortcut: pad}, depth: 2, channels: 32, stride: 2}
head: {pool: avg, classifier: linear}
"""


def _stderr(result) -> str:
    try:
        return result.stderr
    except ValueError:  # older click: stderr mixed into output
        return result.output


def _assert_one_error_line(result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    text = _stderr(result)
    assert "Traceback" not in result.output and "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_zoo_json_lists_every_network_with_the_golden_figures() -> None:
    """The computed figures, which models/test_zoo.py ties to the golden file."""
    result = runner.invoke(app, ["zoo", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ZOO_NAMES
    for row in rows:
        net = zoo.get(row["name"])
        c = cached_complexity(net)
        assert row["params"] == c.params
        assert row["macs"] == c.macs
        assert row["digest"] == net.digest
        assert row["input_size"] == [net.input.channels, net.input.resolution, net.input.resolution]
        assert row["classes"] == net.input.classes
        assert row["family"] == zoo.family(net)


def test_zoo_table() -> None:
    result = runner.invoke(app, ["zoo"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    row = next(line for line in lines if " resnet20_cifar " in line)
    assert "269,722" in row and "3x32x32" in row and "0.04055" in row
    for name in ZOO_NAMES:
        params = f"{cached_complexity(zoo.get(name)).params:,}"
        assert any(f" {name} " in line and params in line for line in lines), name


def test_describe_json_parts_sum_to_totals() -> None:
    result = runner.invoke(app, ["describe", "resnet20_cifar", "--json", "--batch", "4"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    net = zoo.get("resnet20_cifar")
    assert (doc["params"], doc["macs"]) == (269_722, 40_551_040)
    assert sum(p["params"] for p in doc["parts"]) == doc["params"]
    assert sum(p["macs"] for p in doc["parts"]) == doc["macs"]
    assert [p["name"] for p in doc["parts"]] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert [p["out_shape"] for p in doc["parts"]] == [[16, 32, 32], [16, 32, 32], [32, 16, 16], [64, 8, 8], [10]]
    assert doc["digest"] == net.digest
    assert Network.from_string(doc["string"]) == net
    assert doc["activation_batch"] == 4
    assert doc["activation_bytes"] == activation_memory(net, batch=4)
    assert doc["input_size"] == [3, 32, 32]


def test_describe_table() -> None:
    result = runner.invoke(app, ["describe", "resnet20_cifar"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for needle in ("269,722", "40,551,040", "f65a5816b208", "16x32x32", "64x8x8", "total", "batch 128"):
        assert needle in out, needle
    assert f"string: {zoo.get('resnet20_cifar').to_string()}" in out
    assert "residual-basic" in out, "the title names the network's family"


def test_describe_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "my_net.yaml"
    path.write_text(MY_NET_YAML)
    result = runner.invoke(app, ["describe", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    net = Network.from_yaml(MY_NET_YAML)
    c = complexity(net)
    assert doc["name"] == "my_net"
    assert (doc["params"], doc["macs"]) == (c.params, c.macs)
    assert doc["digest"] == net.digest
    assert [p["blocks"] for p in doc["parts"]] == [1, 1, 2, 1]
    table = runner.invoke(app, ["describe", str(path)])
    assert table.exit_code == 0 and "my_net" in table.stdout


def test_describe_unknown_name() -> None:
    line = _assert_one_error_line(runner.invoke(app, ["describe", "nope"]), "nope")
    assert "unknown" in line


def test_describe_close_name_suggests() -> None:
    _assert_one_error_line(runner.invoke(app, ["describe", "resnet5"]), "resnet5", "did you mean", "resnet50")


def test_describe_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    _assert_one_error_line(runner.invoke(app, ["describe", str(missing)]), str(missing))


def test_describe_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nstages:\n  - {block: {kind: residual\n")
    _assert_one_error_line(runner.invoke(app, ["describe", str(path)]), str(path), "line ", "invalid YAML")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (BAD_KERNEL_YAML, "stages[0].block.kernel: must be odd, got 4"),
        (MY_NET_YAML.replace("depth: 2", "depth: 2, colour: red"), "stages[1].colour"),
        (MY_NET_YAML.replace("kernel: 3}", "kernel: 3, groups: 5}"), "stem[0].groups"),
        (MY_NET_YAML.replace("channels: 32", "channels: -32"), "stages[1].channels"),
    ],
    ids=["even-kernel", "unknown-field", "groups", "negative-channels"],
)
def test_describe_invalid_genotype(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "my_net.yaml"
    path.write_text(text)
    _assert_one_error_line(runner.invoke(app, ["describe", str(path)]), f"{path}: ", field)


def test_error_path_with_brackets_is_printed_verbatim(tmp_path: Path) -> None:
    """A file path may contain square brackets; the error shows it as it is, not as console markup."""
    folder = tmp_path / "[draft]"
    folder.mkdir()
    path = folder / "my_net.yaml"
    path.write_text(BAD_KERNEL_YAML)
    _assert_one_error_line(runner.invoke(app, ["describe", str(path)]), f"{path}: stages[0].block.kernel")


@pytest.mark.parametrize("name", ["[/]x", "[bold]nope", "[red]"])
def test_error_name_with_brackets_is_printed_verbatim(name: str) -> None:
    _assert_one_error_line(runner.invoke(app, ["describe", name]), f"unknown zoo network {name!r}")


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("nasx ")


def test_python_dash_m_nasx_error_has_no_traceback() -> None:
    proc = run_python("-m", "nasx", "describe", "nope")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0]


def test_python_dash_m_nasx_help() -> None:
    proc = run_python("-m", "nasx", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "zoo" in proc.stdout and "describe" in proc.stdout
