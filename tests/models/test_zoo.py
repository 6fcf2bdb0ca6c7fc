"""The zoo (nasx.zoo): one file per classic network, named after itself, and the one golden test.

search_spaces/zoo/complexity.json is read here and nowhere else in the tests: every zoo network's
digest, parameter count and MACs equal the golden file. Other tests compare with the computed
figures (``helpers.cached_complexity``), which this test ties to the file.
"""

from __future__ import annotations

import re

import pytest
from helpers import ROOT, ZOO_NAMES, cached_complexity

from nasx import zoo
from nasx.errors import NasxError
from nasx.space import load_network

GOLDEN = zoo.golden()


def test_zoo_names_are_the_yaml_files_and_the_golden_keys() -> None:
    files = sorted(p.stem for p in (ROOT / "search_spaces" / "zoo").glob("*.yaml"))
    assert files == ZOO_NAMES
    assert len(ZOO_NAMES) >= 20
    assert set(GOLDEN) == set(ZOO_NAMES)


@pytest.mark.parametrize("name", ZOO_NAMES, ids=ZOO_NAMES)
def test_zoo_file_is_named_after_itself_and_loads_the_same_by_path(name: str) -> None:
    net = zoo.get(name)
    assert net.name == name
    assert net.reference, "every zoo network cites its reference implementation"
    assert load_network(str(zoo.path(name))) == net
    assert zoo.resolve(name) == net
    assert zoo.resolve(str(zoo.path(name))) == net


@pytest.mark.parametrize("name", ZOO_NAMES, ids=ZOO_NAMES)
def test_golden_file_equals_the_computed_complexity(name: str) -> None:
    net = zoo.get(name)
    c = cached_complexity(net)
    assert re.fullmatch(r"[0-9a-f]{12}", net.digest)
    assert {"params": c.params, "macs": c.macs, "digest": net.digest} == GOLDEN[name]
    assert c.flops == 2 * c.macs
    assert c.input_shape == net.input.shape


def test_unknown_name_hint_matches_a_prefix() -> None:
    with pytest.raises(NasxError, match="did you mean resnet20_cifar"):
        zoo.path("resnet20")
