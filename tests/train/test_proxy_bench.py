"""The committed proxy benchmark table (benchmarks/data/proxy_bench.csv): it loads, it is the script's seeded sample,
and the README's correlation table is what the correlation code computes from it (no training here)."""

from __future__ import annotations

import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import proxy_bench  # noqa: E402

from nasx.space import load_space  # noqa: E402
from nasx.train.proxies import PROXY_NAMES  # noqa: E402


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return proxy_bench.load_table()


def test_the_table_holds_at_least_100_networks_of_both_spaces_with_every_proxy(rows: list[dict]) -> None:
    assert len(rows) >= 100
    by_space = {s: [r for r in rows if r["space"] == s] for s in proxy_bench.SPACES}
    assert all(len(v) >= 50 for v in by_space.values())
    assert len({r["digest"] for r in rows}) == len(rows), "distinct networks"
    assert len({r["fidelity"] for r in rows}) == 1, "one stated fidelity"
    for r in rows:
        assert 0.0 <= r["val_acc"] <= 1.0 and r["params"] > 0 and r["macs"] > 0
        assert r["space"] == "nasnet-cifar" or r["macs"] <= proxy_bench.MAX_MACS
        assert all(p in r for p in PROXY_NAMES) and all(f"{p}_s" in r for p in PROXY_NAMES)


def test_the_rows_are_the_scripts_seeded_sample(rows: list[dict]) -> None:
    for space in proxy_bench.SPACES:
        for r in [r for r in rows if r["space"] == space][:2]:
            net = load_space(space).random(int(r["seed"]))
            if space == "nasnet-cifar":
                net = proxy_bench.small_nasnet(net)
            assert net.digest == r["digest"]


def test_the_readme_shows_the_correlations_computed_from_the_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = [line for line in proxy_bench.summary().splitlines() if line.startswith("| ") and "---" not in line]
    correlation_rows = [line for line in table if line.startswith(("| macro-cifar", "| nasnet-cifar", "| all"))]
    assert len(correlation_rows) == 3 * len(PROXY_NAMES)
    missing = [line for line in table if line not in readme]
    assert not missing, f"README lines out of date (rerun `python benchmarks/proxy_bench.py --summary`): {missing[:3]}"
