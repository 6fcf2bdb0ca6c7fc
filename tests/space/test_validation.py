"""Invalid genotypes are rejected when they are made, with the field path, the rule and the value."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from nasx.errors import GenotypeError, NasxError
from nasx.space import Network


def _net(**changes) -> dict:
    """A valid CIFAR-style network; keyword arguments replace top-level fields."""
    d = {
        "input": {"channels": 3, "resolution": 32, "classes": 10},
        "stem": [{"kind": "conv", "out": 16}],
        "stages": [
            {"block": {"kind": "residual", "shortcut": "pad"}, "depth": 2, "channels": 16},
            {"block": {"kind": "residual", "shortcut": "pad"}, "depth": 2, "channels": 32, "stride": 2},
        ],
    }
    d.update(changes)
    return d


def _stage(block: dict, channels: int = 16, depth: int = 2, **kw) -> list[dict]:
    return [{"block": block, "depth": depth, "channels": channels, **kw}]


def test_the_base_network_is_valid() -> None:
    assert Network.from_dict(_net()).shapes()[-1][1] == (32, 16, 16)


# (genotype, accepted field paths, phrases the message must contain)
CASES = {
    "residual-even-kernel": (
        _net(stages=_stage({"kind": "residual", "kernel": 4})),
        {"stages[0].block.kernel"},
        ["must be odd", "4"],
    ),
    "residual-even-kernel-in-second-stage-blocks": (
        _net(stages=[*_stage({"kind": "residual"}), {"blocks": [{"kind": "residual", "out": 16, "kernel": 2}]}]),
        {"stages[1].blocks[0].kernel"},
        ["must be odd", "2"],
    ),
    "conv-even-kernel-without-padding": (
        _net(stem=[{"kind": "conv", "out": 16, "kernel": 4}]),
        {"stem[0].kernel", "stem[0].padding"},
        ["even", "4", "padding"],
    ),
    "mlpconv-even-kernel-without-padding": (
        _net(stages=[{"blocks": [{"kind": "mlpconv", "out": 16, "hidden": [8], "kernel": 2}]}]),
        {"stages[0].blocks[0].kernel", "stages[0].blocks[0].padding"},
        ["even", "2", "padding"],
    ),
    "residual-groups-not-dividing-stage-channels": (
        _net(stages=_stage({"kind": "residual", "groups": 3})),
        {"stages[0].block.groups"},
        ["divisible", "3", "16"],
    ),
    "bottleneck-groups-not-dividing-inner-width": (
        _net(stages=_stage({"kind": "residual", "variant": "bottleneck", "groups": 32}, channels=64)),
        {"stages[0].block.groups"},
        ["divisible", "32"],
    ),
    "conv-template-groups-not-dividing-channels": (
        _net(stages=_stage({"kind": "conv", "groups": 3})),
        {"stages[0].block.groups"},
        ["divisible", "3"],
    ),
    "conv-groups-not-dividing-input-channels": (
        _net(stages=[{"blocks": [{"kind": "conv", "out": 18, "groups": 3}]}]),
        {"stages[0].blocks[0].groups"},
        ["divisible", "16", "3"],
    ),
    "basic-groups-not-dividing-input-channels": (
        # a grouped basic block's first conv takes the 18 incoming channels in 4 groups
        _net(stem=[{"kind": "conv", "out": 18}], stages=_stage({"kind": "residual", "groups": 4}, channels=32, depth=1)),
        {"stages[0].block.groups"},
        ["divisible", "4"],
    ),
    "basic-groups-not-dividing-output-channels": (
        # inner width int(20 * 0.9) = 18 is divisible by 3, but the second conv's 20 outputs are not
        _net(stages=_stage({"kind": "residual", "groups": 3, "width": 0.9}, channels=20, depth=1)),
        {"stages[0].block.groups"},
        ["divisible", "3"],
    ),
    "unknown-field-in-template": (
        _net(stages=_stage({"kind": "residual", "colour": "red"})),
        {"stages[0].block.colour"},
        ["unknown field", "red"],
    ),
    "unknown-field-in-head": (_net(head={"pooling": "avg"}), {"head.pooling"}, ["unknown field"]),
    "unknown-top-level-field": (_net(stage=[]), {"stage"}, ["unknown field"]),
    "unknown-block-kind": (
        _net(stem=[{"kind": "convolution", "out": 16}]),
        {"stem[0]", "stem[0].kind"},
        ["unknown block kind", "convolution", "conv, pool, mlpconv, residual"],
    ),
    "missing-kind": (
        _net(stages=_stage({"variant": "basic"})),
        {"stages[0].block", "stages[0].block.kind"},
        ["kind"],
    ),
    "spatial-size-below-1": (
        # lenet5 at resolution 8: 8 -conv5-> 4 -pool-> 2 -conv5-> nothing left
        {
            "input": {"channels": 1, "resolution": 8},
            "stages": [
                {"blocks": [{"kind": "conv", "out": 6, "kernel": 5, "padding": 0}, {"kind": "pool"}]},
                {"blocks": [{"kind": "conv", "out": 16, "kernel": 5, "padding": 0}, {"kind": "pool"}]},
            ],
        },
        {"stages[1].blocks[0]", "stages[1].blocks[0].kernel"},
        ["spatial size", "6x2x2"],
    ),
    "too-many-pools": (
        {
            "input": {"resolution": 8},
            "stem": [{"kind": "conv", "out": 8}, {"kind": "pool"}, {"kind": "pool"}, {"kind": "pool"}],
            "stages": [{"blocks": [{"kind": "pool"}]}],
        },
        {"stages[0].blocks[0]", "stages[0].blocks[0].kernel"},
        ["spatial size", "8x1x1"],
    ),
    "pad-shortcut-reducing-channels": (
        _net(stem=[{"kind": "conv", "out": 32}]),
        {"stages[0].block.shortcut"},
        ["cannot reduce channels", "32 -> 16"],
    ),
    "stage-with-blocks-and-block": (
        _net(stages=[{"block": {"kind": "residual"}, "depth": 2, "channels": 16, "blocks": [{"kind": "conv", "out": 16}]}]),
        {"stages[0]"},
        ["either", "not both"],
    ),
    "template-sets-out": (
        _net(stages=_stage({"kind": "residual", "out": 16})),
        {"stages[0].block", "stages[0].block.out"},
        ["'out'", "channels"],
    ),
    "template-sets-stride": (
        _net(stages=_stage({"kind": "residual", "stride": 2})),
        {"stages[0].block", "stages[0].block.stride"},
        ["'stride'"],
    ),
    "pool-as-template": (_net(stages=_stage({"kind": "pool"})), {"stages[0].block"}, ["pool", "blocks"]),
    "repeated-stage-without-depth": (
        _net(stages=[{"block": {"kind": "residual"}, "channels": 16}]),
        {"stages[0]", "stages[0].depth"},
        ["depth"],
    ),
    "empty-blocks": (_net(stages=[{"blocks": []}]), {"stages[0]", "stages[0].blocks"}, ["empty"]),
    "no-stages": (_net(stages=[]), {"stages"}, ["at least 1"]),
    "depth-not-a-number": (_net(stages=_stage({"kind": "residual"}, depth="x")), {"stages[0].depth"}, ["integer", "'x'"]),
    "depth-as-float": (_net(stages=_stage({"kind": "residual"}, depth=2.5)), {"stages[0].depth"}, ["integer", "2.5"]),
    "depth-as-bool": (_net(stages=_stage({"kind": "residual"}, depth=True)), {"stages[0].depth"}, ["integer"]),
    "kernel-as-bool": (
        _net(stages=[{"blocks": [{"kind": "conv", "out": 8, "kernel": True}]}]),
        {"stages[0].blocks[0].kernel"},
        ["integer"],
    ),
    "zero-channels": (_net(stages=_stage({"kind": "residual"}, channels=0)), {"stages[0].channels"}, ["greater than 0", "0"]),
    "negative-out": (_net(stem=[{"kind": "conv", "out": -4}]), {"stem[0].out"}, ["greater than 0", "-4"]),
    "zero-depth": (_net(stages=_stage({"kind": "residual"}, depth=0)), {"stages[0].depth"}, ["greater than 0"]),
    "negative-resolution": (_net(input={"resolution": -32}), {"input.resolution"}, ["greater than 0", "-32"]),
    "conv-classifier-with-hidden-layers": (
        _net(head={"classifier": "conv", "hidden": [100]}),
        {"head.hidden"},
        ["conv classifier", "hidden", "100"],
    ),
    "conv-classifier-without-global-pool": (
        _net(head={"classifier": "conv", "pool": "none"}),
        {"head.pool"},
        ["global pooling"],
    ),
    "unknown-activation": (_net(stem=[{"kind": "conv", "out": 16, "act": "relu7"}]), {"stem[0].act"}, ["relu7"]),
    "se-ratio-out-of-range": (_net(stages=_stage({"kind": "residual", "se": 1.0})), {"stages[0].block.se"}, ["less than 1"]),
    "inner-width-below-1": (
        _net(stages=_stage({"kind": "residual", "width": 0.01})),
        {"stages[0].block.width"},
        [">= 1"],
    ),
    "pool-padding-over-half-kernel": (
        _net(stages=[{"blocks": [{"kind": "pool", "kernel": 2, "padding": 2}]}]),
        {"stages[0].blocks[0].padding"},
        ["half the kernel", "2"],
    ),
    "mlpconv-without-hidden": (
        _net(stages=[{"blocks": [{"kind": "mlpconv", "out": 16, "hidden": []}]}]),
        {"stages[0].blocks[0].hidden"},
        [],
    ),
    "stem-conv-without-out": (
        # a concrete block (outside a stage template) must say how many channels it makes
        _net(stem=[{"kind": "conv"}]),
        {"stem[0].out"},
        ["out"],
    ),
    "explicit-residual-without-out": (
        _net(stages=[{"blocks": [{"kind": "residual"}]}]),
        {"stages[0].blocks[0].out"},
        ["out"],
    ),
    "explicit-mlpconv-without-out": (
        _net(stages=[{"blocks": [{"kind": "mlpconv", "hidden": [8]}]}]),
        {"stages[0].blocks[0].out"},
        ["out"],
    ),
    # unknown ops, by the place they are named in
    "unknown-inception-step-op": (
        _net(
            stages=[
                {"blocks": [{"kind": "inception", "branches": [[{"op": "conv", "out": 8, "kernel": 1}], [{"op": "median"}]]}]}
            ]
        ),
        {"stages[0].blocks[0].branches[1][0]"},
        ["'op'", "conv, max_pool, avg_pool", "median"],
    ),
    "unknown-cell-op-in-mapping-form": (
        _net(stages=_stage({"kind": "cell", "normal": {"nodes": [[{"op": "conv9", "input": 0}, "sep3@1"]], "concat": [2]}})),
        {"stages[0].block.normal.nodes[0][0].op"},
        ["unknown cell op 'conv9'", "sep3"],
    ),
    "cell-input-pointing-at-its-own-node": (
        _net(stages=_stage({"kind": "cell", "normal": {"nodes": [["sep3@0", ["skip", 2]]], "concat": [2]}})),
        {"stages[0].block.normal.nodes[0][1].input"},
        ["0..1", "got 2"],
    ),
    "unknown-pool-op": (
        _net(stages=[{"blocks": [{"kind": "pool", "op": "median"}]}]),
        {"stages[0].blocks[0].op"},
        ["'max' or 'avg'", "'median'"],  # not pydantic's <PoolOp.MAX: 'max'>
    ),
    # sizes that torch cannot represent (it overflowed int64 inside the trace) or that never finish building
    "resolution-past-the-bound": (_net(input={"resolution": 2**40}), {"input.resolution"}, ["8192", str(2**40)]),
    "stride-past-int64": (_net(stem=[{"kind": "conv", "out": 16, "stride": 2**70}]), {"stem[0].stride"}, ["256", str(2**70)]),
    "kernel-past-the-bound": (_net(stem=[{"kind": "conv", "out": 16, "kernel": 2**31 + 1}]), {"stem[0].kernel"}, ["256"]),
    "padding-past-the-bound": (_net(stem=[{"kind": "conv", "out": 16, "padding": 2**40}]), {"stem[0].padding"}, ["256"]),
    "head-pool-size-past-int64": (_net(head={"pool_size": 2**64}), {"head.pool_size"}, ["256"]),
    "expand-past-the-bound": (
        _net(stages=[{"blocks": [{"kind": "mbconv", "out": 16, "expand": 1e300}]}]),
        {"stages[0].blocks[0].expand"},
        ["64", "1e+300"],
    ),
    "fractal-with-2**39-convolutions": (
        _net(stages=[{"blocks": [{"kind": "fractal", "out": 16, "columns": 40}]}]),
        {"stages[0].blocks[0].columns"},
        ["8", "40"],
    ),
    "dense-block-of-ten-million-layers": (
        _net(stages=[{"blocks": [{"kind": "dense", "layers": 10**7, "growth": 1}]}]),
        {"stages[0].blocks[0].layers"},
        ["256", "10000000"],
    ),
    "feature-map-too-large": (
        # 65536 x 8192 x 8192 at the stem; flattened into the classifier it made a weight of 2**62 elements
        {
            "input": {"resolution": 8192, "classes": 2**20},
            "stem": [{"kind": "conv", "out": 2**16}],
            "stages": [{"blocks": [{"kind": "conv", "out": 8, "kernel": 1}]}],
            "head": {"pool": "none"},
        },
        {"stem[0]"},
        ["too large", "65536x8192x8192"],
    ),
    "too-many-blocks-in-all": (
        _net(stages=_stage({"kind": "conv"}, depth=10_000) * 3),
        {"stages"},
        ["at most 20000 blocks", "30001"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_invalid_genotype_names_field_rule_and_value(case) -> None:
    data, paths, phrases = case
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(copy.deepcopy(data))
    err = info.value
    assert isinstance(err, NasxError) and isinstance(err, ValueError)
    assert len(err.problems) == 1, err.problems  # one message, naming the one place
    path, message = err.problems[0]
    assert path in paths, err.problems
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    assert str(err).startswith(f"{path}: " if path else message)
    # the same genotype written as YAML is rejected at the same fields
    with pytest.raises(GenotypeError) as again:
        Network.from_yaml(yaml.safe_dump(copy.deepcopy(data)))
    assert [p for p, _ in again.value.problems] == [p for p, _ in err.problems]


SHAPE_CASES = [
    "spatial-size-below-1",
    "too-many-pools",
    "pad-shortcut-reducing-channels",
    "conv-groups-not-dividing-input-channels",
]


@pytest.mark.parametrize("name", SHAPE_CASES)
def test_shape_errors_quote_the_offending_value_not_the_whole_network(name: str) -> None:
    """A shape rule's message names the shapes involved; it must not dump the whole genotype."""
    data = CASES[name][0]
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(copy.deepcopy(data))
    path, message = info.value.problems[0]
    assert "'stages'" not in message and "'input'" not in message, message
    assert len(str(info.value)) < 200, str(info.value)


def test_error_string_names_the_source() -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(_net(stages=_stage({"kind": "residual", "kernel": 4})), source="my_net.yaml")
    assert str(info.value) == "my_net.yaml: stages[0].block.kernel: must be odd, got 4"
    assert info.value.source == "my_net.yaml"


def test_every_problem_is_reported() -> None:
    data = _net(
        stem=[{"kind": "conv", "out": 16, "colour": "red"}],
        stages=[*_stage({"kind": "residual"}, channels=0), *_stage({"kind": "residual", "kernel": 4})],
    )
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    paths = [p for p, _ in info.value.problems]
    assert set(paths) == {"stem[0].colour", "stages[0].channels", "stages[1].block.kernel"}
    text = str(info.value)
    assert text.startswith("3 problems")
    for path in paths:
        assert f"\n  {path}: " in text


def test_yaml_syntax_error_reports_the_line() -> None:
    text = "name: broken\nstages:\n  - {block: {kind: residual, depth: 2\nhead: {}\n"
    with pytest.raises(GenotypeError) as info:
        Network.from_yaml(text, source="broken.yaml")
    ((path, message),) = info.value.problems
    assert re.fullmatch(r"line [34], column \d+", path), path  # the unclosed mapping opened on line 3
    assert "invalid YAML" in message
    assert str(info.value).startswith("broken.yaml: line ")


def test_yaml_bad_indentation_reports_its_line() -> None:
    text = "name: x\ninput: {channels: 3}\nstages:\n  - block: {kind: residual}\n   depth: 2\n"
    with pytest.raises(GenotypeError) as info:
        Network.from_yaml(text)
    ((path, _),) = info.value.problems
    assert re.fullmatch(r"line 5, column \d+", path), path


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("stem[conv(out=16)] | 3*residual(shortcut=pad)@16x", 49),
        ("3*residual(shortcut=pad)@16 | $", 31),
        ("3*residual(shortcut=pad)16", 25),
        ("3*residual(shortcut=pad)@16 |", 30),
        ("3*", 3),
        ("||", 1),
        ("3*residual()@16 ! 2*residual()@32", 17),
    ],
)
def test_string_syntax_error_reports_the_column(text: str, column: int) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_string(text)
    ((path, message),) = info.value.problems
    assert path == f"column {column}", (path, message)
    assert message


def test_string_form_semantic_error_reports_the_field_path() -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_string("stem[conv(out=16)] | 3*residual(kernel=4)@16")
    assert info.value.problems[0][0] == "stages[0].block.kernel"


def test_huge_depth_is_rejected_before_expansion() -> None:
    from nasx.space.genotype import MAX_DEPTH

    with pytest.raises(GenotypeError, match=r"stages\[0\]\.depth: .*less than or equal to 10000, got 1999999998"):
        Network.from_string("stem[conv(out=16)] | 1999999998*residual()@16")
    assert Network.from_string(f"stem[conv(out=16)] | {MAX_DEPTH}*residual()@16").stages[0].depth == MAX_DEPTH


def test_a_key_given_twice_is_refused_at_its_line() -> None:
    text = "stem: [{kind: conv, out: 16}]\nstages: [{block: {kind: residual}, depth: 2, channels: 16}]\nstem: []\n"
    with pytest.raises(GenotypeError) as info:
        Network.from_yaml(text)  # yaml.safe_load alone keeps the last one and says nothing
    assert info.value.problems == [("line 3, column 1", "duplicate key 'stem' (first given on line 1)")]


def test_a_genotype_file_that_is_not_text_or_not_there(tmp_path) -> None:
    from nasx.space import load_network

    binary = tmp_path / "net.yaml"
    binary.write_bytes(b"stages: []\n\x89PNG\r\n")
    with pytest.raises(GenotypeError, match=r"net\.yaml: cannot read the genotype file: not UTF-8 text \(byte 11 is 0x89\)"):
        load_network(str(binary))
    with pytest.raises(GenotypeError, match=r"gone\.yaml: cannot read the genotype file: No such file"):
        load_network(str(tmp_path / "gone.yaml"))
