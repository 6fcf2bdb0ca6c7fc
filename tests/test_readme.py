"""The README's set-up commands are the ones CI runs, and its examples are true."""

from __future__ import annotations

import re

from helpers import ROOT, cached_complexity

from nasx import zoo
from nasx.models.complexity import complexity
from nasx.space import Network


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must start with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands_main_job_then_tests() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("nasx search studies/quickstart.yaml")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_readme_example_figures_are_measured() -> None:
    text = (ROOT / "README.md").read_text()
    net = zoo.get("resnet20_cifar")
    c = complexity(net)
    assert f"'{net.digest}'" in text
    assert f"({c.params}, {c.macs})" in text
    assert net.to_string() in text
    assert Network.from_string(net.to_string()) == net
    for name in zoo.names():
        row = next((line for line in text.splitlines() if line.startswith(f"│ {name} ")), None)
        assert row is not None, f"README zoo table lacks {name}"
        assert f"{cached_complexity(zoo.get(name)).params:,}" in row
