"""The genotype language: round trips, canonical digests, validation with field paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from nasx import zoo
from nasx.errors import GenotypeError
from nasx.space import Network

NAMES = zoo.names()


@pytest.mark.parametrize("name", NAMES)
def test_yaml_and_string_round_trip_keep_the_network_and_digest(name: str) -> None:
    net = zoo.get(name)
    again = Network.from_yaml(net.to_yaml())
    assert again == net and again.digest == net.digest and again.to_dict() == net.to_dict()
    assert again.name == net.name and again.reference == net.reference
    text = net.to_string()
    parsed = Network.from_string(text)
    assert parsed == net and parsed.digest == net.digest
    assert parsed.to_string() == text


def test_digests_match_the_golden_file_and_a_fresh_process() -> None:
    golden = zoo.golden()
    here = {name: zoo.get(name).digest for name in NAMES}
    assert here == {name: golden[name]["digest"] for name in NAMES}
    code = "import json; from nasx import zoo; print(json.dumps({n: zoo.get(n).digest for n in zoo.names()}))"
    fresh = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert fresh == here


def _r20() -> dict:
    return zoo.get("resnet20_cifar").to_dict()


def test_alternative_spellings_are_one_point() -> None:
    base = Network.from_dict(_r20())
    spelled = _r20()
    spelled["stem"][0].update(kernel=[3, 3], padding=1, bias=False)
    spelled["stages"][0]["block"].update(expansion=1, variant="basic")
    spelled["name"], spelled["reference"] = "another name", "another reference"
    other = Network.from_dict(spelled)
    assert other == base and other.digest == base.digest and hash(other) == hash(base)
    assert other.to_string() == base.to_string()
    pool = Network.from_string("[conv(out=8), pool(kernel=2, stride=2)]")
    assert pool == Network.from_string("[conv(out=8), pool()]")
    bottleneck = Network.from_string("2*residual(variant=bottleneck, expansion=4)@64")
    assert bottleneck.digest == Network.from_string("2*residual(variant=bottleneck)@64").digest


def test_a_real_change_changes_the_digest() -> None:
    changed = _r20()
    changed["stages"][0]["depth"] = 4
    assert Network.from_dict(changed).digest != zoo.get("resnet20_cifar").digest
    assert Network.from_dict(changed) != zoo.get("resnet20_cifar")


def test_networks_are_frozen() -> None:
    net = zoo.get("resnet20_cifar")
    with pytest.raises(ValueError):
        net.stages[0].depth = 5  # type: ignore[misc]


def test_string_form_is_the_documented_one() -> None:
    assert zoo.get("resnet20_cifar").to_string() == (
        "stem[conv(out=16)] | 3*residual(shortcut=pad)@16 | 3*residual(shortcut=pad)@32/2 | 3*residual(shortcut=pad)@64/2"
    )
    lenet = Network.from_string(
        "input(channels=1) | [conv(out=6, kernel=5, padding=0, act=tanh), pool()] | head(pool=none, hidden=[120, 84])"
    )
    assert lenet.input.channels == 1 and lenet.head.hidden == (120, 84)
    assert lenet.stages[0].blocks[0].padding == 0


def _stage(**block: object) -> dict:
    return {"stages": [{"block": {"kind": "residual", **block}, "depth": 2, "channels": 16}]}


MALFORMED = [
    ("residual-even-kernel", _stage(kernel=4), "stages[0].block.kernel", "must be odd"),
    (
        "conv-even-kernel-same-padding",
        {"stages": [{"blocks": [{"kind": "conv", "out": 8, "kernel": 4}]}]},
        "stages[0].blocks[0].padding",
        "even",
    ),
    ("groups-do-not-divide", _stage(variant="bottleneck", groups=3), "stages[0].block.groups", "divisible by groups"),
    ("unknown-field", _stage(colour="red"), "stages[0].block.colour", "unknown field"),
    (
        "unknown-kind",
        {"stages": [{"blocks": [{"kind": "convv", "out": 8}]}]},
        "stages[0].blocks[0]",
        "unknown block kind 'convv'",
    ),
    ("missing-kind", {"stages": [{"blocks": [{"out": 8}]}]}, "stages[0].blocks[0]", "needs a 'kind'"),
    (
        "shrinks-below-one",
        {
            "input": {"resolution": 8},
            "stages": [{"blocks": [{"kind": "pool"}, {"kind": "pool"}, {"kind": "pool"}, {"kind": "pool"}]}],
        },
        "stages[0].blocks[3].kernel",
        "spatial size must stay >= 1",
    ),
    (
        "pad-reduces-channels",
        {
            "stem": [{"kind": "conv", "out": 32}],
            "stages": [{"block": {"kind": "residual", "shortcut": "pad"}, "depth": 1, "channels": 16}],
        },
        "stages[0].block.shortcut",
        "cannot reduce channels",
    ),
    (
        "both-stage-forms",
        {"stages": [{"block": {"kind": "residual"}, "depth": 1, "channels": 8, "blocks": [{"kind": "conv", "out": 8}]}]},
        "stages[0]",
        "not both",
    ),
    ("template-sets-out", _stage(out=16), "stages[0].block", "set by the stage"),
    ("wrong-type", {"stages": [{"block": {"kind": "residual"}, "depth": "x", "channels": 8}]}, "stages[0].depth", "integer"),
    (
        "bool-is-not-int",
        {"stages": [{"blocks": [{"kind": "conv", "out": 8, "kernel": True}]}]},
        "stages[0].blocks[0].kernel",
        "integer",
    ),
    (
        "zero-channels",
        {"stages": [{"block": {"kind": "residual"}, "depth": 1, "channels": 0}]},
        "stages[0].channels",
        "greater than 0",
    ),
    (
        "conv-classifier-hidden",
        {"stages": [{"blocks": [{"kind": "conv", "out": 8}]}], "head": {"classifier": "conv", "hidden": [10]}},
        "head.hidden",
        "no hidden layers",
    ),
    ("no-stages", {"stages": []}, "stages", "at least 1"),
    ("unknown-activation", _stage(act="relu7"), "stages[0].block.act", "relu"),
]


@pytest.mark.parametrize(("data", "path", "phrase"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_genotypes_name_the_field(data: dict, path: str, phrase: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    problems = info.value.problems
    assert any(p == path and phrase in m for p, m in problems), problems
    assert path in str(info.value)


def test_yaml_syntax_errors_give_the_line() -> None:
    with pytest.raises(GenotypeError, match=r"line 3"):
        Network.from_yaml("name: x\nstages:\n  - {block: {kind: residual}, depth: 1: 2}\nhead: {}\n", source="x.yaml")


def test_string_syntax_errors_give_the_column() -> None:
    with pytest.raises(GenotypeError, match=r"column 17"):
        Network.from_string("3*residual()@16 ! 2*residual()@32")


@pytest.mark.parametrize(
    "junk",
    [
        None,
        [],
        "x",
        5,
        {"stages": 5},
        {"stages": [None]},
        {"stages": [{"blocks": "abc"}]},
        {"stages": [{"blocks": [{"kind": "conv", "out": 4, "padding": {"a": 1}}]}]},
    ],
)
def test_junk_dicts_raise_only_genotype_errors(junk: object) -> None:
    with pytest.raises(GenotypeError):
        Network.from_dict(junk)


@pytest.mark.parametrize("junk", ["", "||", "3*", "3*residual(", "[conv(out=8)", "head(", "3*residual()@", "x(", "@@@", "1e"])
def test_junk_strings_raise_only_genotype_errors(junk: str) -> None:
    with pytest.raises(GenotypeError):
        Network.from_string(junk)


@pytest.mark.parametrize("junk", ["- 1\n- 2", "just text", "stages: {a: [", "\t"])
def test_junk_yaml_raises_only_genotype_errors(junk: str) -> None:
    with pytest.raises(GenotypeError):
        Network.from_yaml(junk)


def test_importing_the_space_imports_no_torch_or_optuna() -> None:
    code = (
        "import sys; from nasx.space import load_network; from nasx import zoo; "
        "net = load_network(str(zoo.path('resnet50'))); net.shapes(); net.to_string(); "
        "print(sorted(m for m in ('torch', 'optuna', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_to_yaml_is_minimal_and_safe_loadable() -> None:
    doc = yaml.safe_load(zoo.get("resnet20_cifar").to_yaml())
    assert doc["stem"] == [{"kind": "conv", "out": 16}]
    assert doc["stages"][1] == {"block": {"kind": "residual", "shortcut": "pad"}, "depth": 3, "channels": 32, "stride": 2}
