"""The genotype language: round trips, canonical digest, de-duplication, immutability, string form."""

from __future__ import annotations

import copy
import json

import pydantic
import pytest
import yaml
from helpers import ZOO_NAMES, run_python

from nasx import zoo
from nasx.space import Network

# ---- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ZOO_NAMES, ids=ZOO_NAMES)
def test_yaml_round_trip(name: str) -> None:
    net = zoo.get(name)
    text = net.to_yaml()
    back = Network.from_yaml(text)
    assert back == net
    assert back.digest == net.digest
    assert back.to_dict() == net.to_dict()
    assert back.arch_dict() == net.arch_dict()
    assert (back.name, back.reference) == (net.name, net.reference)
    assert back.to_yaml() == text  # a fixed point
    # the minimal dict is the file's canonical content: reading it as a plain dict gives the same network
    assert Network.from_dict(yaml.safe_load(text)) == net


def test_to_yaml_is_minimal_and_safe_loadable() -> None:
    doc = yaml.safe_load(zoo.get("resnet20_cifar").to_yaml())
    assert doc["stem"] == [{"kind": "conv", "out": 16}]
    assert doc["stages"][1] == {"block": {"kind": "residual", "shortcut": "pad"}, "depth": 3, "channels": 32, "stride": 2}


@pytest.mark.parametrize("name", ZOO_NAMES, ids=ZOO_NAMES)
def test_string_round_trip(name: str) -> None:
    net = zoo.get(name)
    s = net.to_string()
    assert "\n" not in s
    assert name not in s, "name is not part of the architecture and is not written"
    back = Network.from_string(s)
    assert back == net
    assert back.digest == net.digest
    assert back.to_string() == s
    assert str(net) == s


def test_zoo_digests_are_all_different() -> None:
    digests = [zoo.get(n).digest for n in ZOO_NAMES]
    assert len(set(digests)) == len(digests)


def test_digest_is_the_same_in_a_fresh_process() -> None:
    code = "import json; from nasx import zoo; print(json.dumps({n: zoo.get(n).digest for n in zoo.names()}))"
    here = {n: zoo.get(n).digest for n in ZOO_NAMES}
    # a fixed hash seed unlike this process's random one: the digest must not depend on hash()
    proc = run_python("-c", code, env={"PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == here


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


@pytest.mark.parametrize("name", ["resnet20_cifar", "alexnet", "nin_cifar", "seresnet50"])
def test_digest_does_not_depend_on_key_order(name: str) -> None:
    net = zoo.get(name)
    assert Network.from_dict(_reverse_keys(net.to_dict())).digest == net.digest


# ---- canonical form: spellings de-duplicate, real changes do not -------------------------------


def _base() -> dict:
    """A small network that exercises conv, pool and both residual variants."""
    return {
        "input": {"channels": 3, "resolution": 32, "classes": 10},
        "stem": [{"kind": "conv", "out": 16}, {"kind": "pool"}],
        "stages": [
            {"block": {"kind": "residual", "shortcut": "pad"}, "depth": 3, "channels": 16},
            {"block": {"kind": "residual", "variant": "bottleneck"}, "depth": 2, "channels": 64, "stride": 2},
            {"blocks": [{"kind": "conv", "out": 64, "kernel": 5}, {"kind": "pool", "op": "avg", "kernel": 2}]},
        ],
    }


def _spell(edit) -> dict:
    d = copy.deepcopy(_base())
    edit(d)
    return d


def _set(*path_and_value):
    *path, key, value = path_and_value

    def edit(d: dict) -> None:
        target = d
        for p in path:
            target = target[p]
        target[key] = value

    return edit


SAME = {
    "explicit-same-padding": _set("stem", 0, "padding", 1),
    "same-padding-pair": _set("stem", 0, "padding", [1, 1]),
    "square-kernel-list": _set("stem", 0, "kernel", [3, 3]),
    "kernel-list-and-padding-pair": lambda d: d["stem"].__setitem__(
        0, {"kind": "conv", "out": 16, "kernel": [3, 3], "padding": [1, 1]}
    ),
    "explicit-kernel-3": _set("stem", 0, "kernel", 3),
    "k5-same-padding": _set("stages", 2, "blocks", 0, "padding", 2),
    "pool-stride-equals-kernel": _set("stem", 1, "stride", 2),
    "pool-square-kernel-list-and-stride": lambda d: d["stem"].__setitem__(1, {"kind": "pool", "kernel": [2, 2], "stride": 2}),
    "avg-pool-stride-equals-kernel": _set("stages", 2, "blocks", 1, "stride", 2),
    "bottleneck-expansion-4": _set("stages", 1, "block", "expansion", 4),
    "basic-expansion-1": _set("stages", 0, "block", "expansion", 1),
    "explicit-variant-basic": _set("stages", 0, "block", "variant", "basic"),
    "explicit-width-groups": lambda d: d["stages"][1]["block"].update({"width": 1, "groups": 1, "se": 0, "dropout": 0.0}),
    "explicit-stage-stride-1": _set("stages", 0, "stride", 1),
    "explicit-conv-defaults": lambda d: d["stem"][0].update(
        {"stride": 1, "dilation": 1, "groups": 1, "bias": False, "norm": "bn", "act": "relu"}
    ),
    "explicit-input-defaults": _set("input", {"channels": 3, "resolution": 32, "classes": 10}),
    "omitted-input": lambda d: d.pop("input"),
    "explicit-head-defaults": _set("head", {"pool": "avg", "classifier": "linear", "pool_size": 1, "hidden": [], "bias": True}),
    "explicit-shortcut-project": _set("stages", 1, "block", "shortcut", "project"),
}


@pytest.mark.parametrize("edit", SAME.values(), ids=SAME.keys())
def test_alternative_spellings_are_one_network(edit) -> None:
    base = Network.from_dict(_base())
    other = Network.from_dict(_spell(edit))
    assert other == base
    assert other.digest == base.digest
    assert hash(other) == hash(base)
    assert other.to_dict() == base.to_dict()
    assert other.to_string() == base.to_string()
    assert len({base, other}) == 1


def test_dilated_same_padding_is_canonical() -> None:
    plain = {"stages": [{"blocks": [{"kind": "conv", "out": 8, "dilation": 2}]}]}
    spelled = {"stages": [{"blocks": [{"kind": "conv", "out": 8, "dilation": 2, "padding": 2}]}]}
    assert Network.from_dict(plain) == Network.from_dict(spelled)
    not_same = {"stages": [{"blocks": [{"kind": "conv", "out": 8, "dilation": 2, "padding": 1}]}]}
    assert Network.from_dict(not_same) != Network.from_dict(plain)
    assert Network.from_dict(not_same).shapes()[-1][1].h == 30


DIFFERENT = {
    "depth-3-to-4": _set("stages", 0, "depth", 4),
    "channels": _set("stages", 1, "channels", 128),
    "stage-stride": _set("stages", 1, "stride", 1),
    "kernel-5": _set("stem", 0, "kernel", 5),
    "padding-0": _set("stem", 0, "padding", 0),
    "pool-overlapping": _set("stem", 1, "kernel", 3),
    "pool-stride-1": _set("stem", 1, "stride", 1),
    "pool-op": _set("stem", 1, "op", "avg"),
    "bottleneck-expansion-2": _set("stages", 1, "block", "expansion", 2),
    "basic-expansion-2": _set("stages", 0, "block", "expansion", 2),
    "width": _set("stages", 1, "block", "width", 2),
    "se": _set("stages", 1, "block", "se", 0.25),
    "shortcut": _set("stages", 1, "block", "shortcut", "pad"),
    "preact": _set("stages", 0, "block", "preact", True),
    "classes": _set("input", "classes", 100),
    "resolution": _set("input", "resolution", 64),
    "head-hidden": _set("head", {"hidden": [32]}),
    "bias": _set("stem", 0, "bias", True),
    "act": _set("stem", 0, "act", "tanh"),
}


@pytest.mark.parametrize("edit", DIFFERENT.values(), ids=DIFFERENT.keys())
def test_a_real_change_changes_the_digest(edit) -> None:
    base = Network.from_dict(_base())
    other = Network.from_dict(_spell(edit))
    assert other != base
    assert other.digest != base.digest
    assert other.to_string() != base.to_string()
    assert len({base, other}) == 2


def test_resnet20_and_resnet56_differ_only_by_depth_and_digest() -> None:
    d = zoo.get("resnet20_cifar").to_dict()
    for stage in d["stages"]:
        stage["depth"] = 9
    assert Network.from_dict(d) == zoo.get("resnet56_cifar")
    assert Network.from_dict(d).digest == zoo.get("resnet56_cifar").digest


def test_name_and_reference_are_not_part_of_the_architecture() -> None:
    a = Network.from_dict({**_base(), "name": "a", "reference": "one paper"})
    b = Network.from_dict({**_base(), "name": "b", "reference": "another paper"})
    c = Network.from_dict(_base())
    assert a == b == c
    assert a.digest == b.digest == c.digest
    assert hash(a) == hash(b) == hash(c)
    assert a.arch_dict() == c.arch_dict()
    assert "name" not in a.arch_dict() and "reference" not in a.arch_dict()
    assert a.to_dict()["name"] == "a" and b.to_dict()["reference"] == "another paper"
    assert a.to_string() == c.to_string()
    assert len({a, b, c}) == 1
    renamed = Network.from_dict({**zoo.get("resnet20_cifar").to_dict(), "name": "my_found_net", "reference": ""})
    assert renamed == zoo.get("resnet20_cifar")


def test_networks_are_frozen_and_hashable() -> None:
    net = zoo.get("resnet20_cifar")
    frozen_errors = (pydantic.ValidationError, TypeError, AttributeError)
    with pytest.raises(frozen_errors):
        net.name = "x"  # type: ignore[misc]
    with pytest.raises(frozen_errors):
        net.stages[0].depth = 4  # type: ignore[misc]
    with pytest.raises(frozen_errors):
        net.head.pool = "max"  # type: ignore[misc]
    with pytest.raises(frozen_errors):
        net.stem[0].out = 32  # type: ignore[misc]
    with pytest.raises(frozen_errors):
        net.input.resolution = 64  # type: ignore[misc]
    assert isinstance(net.stages, tuple) and isinstance(net.stem, tuple)
    with pytest.raises(TypeError):
        net.stages[0] = net.stages[1]  # type: ignore[index]
    assert net.digest == "f65a5816b208"  # unchanged by the attempts (the golden file holds the same)
    table = {net: "resnet20"}
    assert table[Network.from_string(net.to_string())] == "resnet20"


def test_comparison_with_other_types() -> None:
    net = zoo.get("resnet20_cifar")
    assert net != net.to_dict()
    assert net != net.to_string()
    assert net != zoo.get("resnet56_cifar")


# ---- the compact string form ----------------------------------------------------------------

RESNET20_STRING = (
    "stem[conv(out=16)] | 3*residual(shortcut=pad)@16 | 3*residual(shortcut=pad)@32/2 | 3*residual(shortcut=pad)@64/2"
)

SMALL = {
    "name": "small",
    "reference": "hand-written for the tests",
    "input": {"channels": 1, "resolution": 28, "classes": 10},
    "stem": [{"kind": "conv", "out": 8, "kernel": 5, "padding": 2}, {"kind": "pool", "op": "max", "kernel": 2, "stride": 2}],
    "stages": [
        {
            "blocks": [
                {"kind": "conv", "out": 16, "kernel": [3, 3], "bias": True, "norm": "none"},
                {"kind": "pool", "op": "avg", "kernel": 3, "stride": 2, "ceil_mode": True},
            ]
        },
        {
            "block": {"kind": "residual", "variant": "bottleneck", "expansion": 4, "groups": 2},
            "depth": 2,
            "channels": 64,
            "stride": 2,
        },
    ],
    "head": {"hidden": [32], "dropout": 0.5},
}
# Derived by hand from the grammar in nasx/space/compact.py: input(...) only for a non-default
# input, stem[...], an explicit stage as [...], a repeated stage as DEPTH*BLOCK@CHANNELS/STRIDE,
# head(...) only for a non-default head; each call lists only non-default fields, in field order.
SMALL_STRING = (
    "input(channels=1, resolution=28) | stem[conv(out=8, kernel=5), pool()]"
    " | [conv(out=16, bias=true, norm=none), pool(op=avg, kernel=3, stride=2, ceil_mode=true)]"
    " | 2*residual(variant=bottleneck, groups=2)@64/2 | head(hidden=[32], dropout=0.5)"
)


def test_resnet20_string_form_is_exact() -> None:
    net = zoo.get("resnet20_cifar")
    assert net.to_string() == RESNET20_STRING
    assert Network.from_string(RESNET20_STRING) == net


def test_hand_written_network_string_form_is_exact() -> None:
    net = Network.from_dict(SMALL)
    assert net.to_string() == SMALL_STRING
    parsed = Network.from_string(SMALL_STRING)
    assert parsed == net
    assert parsed.name == "" and parsed.reference == ""
    assert [str(s) for _, s in net.shapes()] == ["8x28x28", "8x14x14", "16x7x7", "64x4x4"]


def test_string_form_tolerates_whitespace() -> None:
    squeezed = RESNET20_STRING.replace(" ", "")
    spaced = RESNET20_STRING.replace("|", "  |  ").replace("(", " ( ").replace("@", " @ ")
    assert Network.from_string(squeezed) == zoo.get("resnet20_cifar")
    assert Network.from_string(spaced) == zoo.get("resnet20_cifar")


def test_string_form_of_default_input_and_head_is_omitted() -> None:
    net = Network.from_dict({"stages": [{"block": {"kind": "residual"}, "depth": 1, "channels": 8}]})
    assert net.to_string() == "1*residual()@8"
    assert Network.from_string("1*residual()@8") == net
