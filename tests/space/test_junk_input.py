"""Junk input: anything given to the genotype parsers gives a usable network or a GenotypeError.

The one home of the junk-input tests. Property tests (hypothesis) draw from three sources of input: arbitrary nested JSON-like values (lists, dicts, strings, numbers, bools,
None), the same biased toward the genotype's own keys and enum names, and *structured* junk:
networks put together from real block kinds with random field values, so that many of them
pass validation and reach the shape rules and torch. The property: either the parser returns a
:class:`Network` whose complexity can be measured at its stated input (the network is built and
traced, which fails if torch cannot run it, e.g. a kernel larger than its input), or it raises a
:class:`GenotypeError`. Nothing else escapes: no TypeError, KeyError, RecursionError, pydantic or
YAML error, no RuntimeError from torch.

``NASX_FUZZ_EXAMPLES`` raises the number of examples for a longer local hunt.

Then hand-picked junk dicts, strings and YAML, mutated zoo networks, nesting deep enough to
exhaust a recursive parser and YAML aliases that multiply into billions of values: each is one
GenotypeError. (The messages of invalid but well-formed genotypes are test_validation.py's.)
"""

from __future__ import annotations

import copy
import os
import random
import string

import pytest
import torch
import yaml
from helpers import ZOO_NAMES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasx import zoo
from nasx.errors import GenotypeError
from nasx.models import build_network
from nasx.models.complexity import complexity
from nasx.space import Network
from nasx.space.genotype import BLOCK_TYPES
from nasx.space.ops import CELL_OP_ALIASES, Act, CellOp, Classifier, Kind, Norm, PoolOp, Shortcut, StepOp, Variant

EXAMPLES = int(os.environ.get("NASX_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> settings:
    """Bounded examples (each test well under 10 s), no deadline, no example database written into the repo."""
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- vocabulary: the keys and names a genotype uses ---------------------------------------------

BLOCK_FIELDS = sorted({name for t in BLOCK_TYPES.values() for name in t.model_fields})
KEYS = sorted(
    {
        *BLOCK_FIELDS,
        *("name", "reference", "input", "stem", "stages", "head", "block", "blocks", "depth", "channels", "aux"),
        *("resolution", "classes", "pool_size", "classifier", "pool_stride", "nodes", "concat", "fork", "input"),
        *("cell", "kernel", "conv"),
    }
)
NAMES = sorted(
    {e.value for enum in (Kind, Act, Norm, PoolOp, Variant, Shortcut, Classifier, StepOp, CellOp) for e in enum}
    | set(CELL_OP_ALIASES)
)

ints = st.integers(min_value=-3, max_value=40) | st.sampled_from([0, 1, 2, 3, 4, 7, 64, 2**31, -(2**63)])
floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 4.0])
texts = st.text(string.printable, max_size=12) | st.sampled_from(NAMES)
scalars = st.none() | st.booleans() | ints | floats | texts


def _json(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4)


def _biased(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)


#: Arbitrary JSON-like values.
anything = st.recursive(scalars, _json, max_leaves=30)
#: The same, with the genotype's keys and names.
biased = st.recursive(scalars, _biased, max_leaves=40)

# ---- structured junk: real kinds and fields, random values ---------------------------------------

#: Sizes past every bound (torch overflows int64 on some, others would take forever to build).
huge = st.sampled_from([300, 70_000, 2**31 + 1, 2**40, 2**63, 2**70])
small = st.integers(min_value=1, max_value=24)
pair = st.lists(st.integers(min_value=0, max_value=7), min_size=2, max_size=2)
cell_edge = st.builds(lambda op, i: f"{op}@{i}", st.sampled_from(sorted(CELL_OP_ALIASES)), st.integers(0, 5))
cell_string = st.builds(
    lambda nodes, concat: " | ".join(f"{a}+{b}" for a, b in nodes) + " ; concat " + ",".join(map(str, concat)),
    st.lists(st.tuples(cell_edge, cell_edge), min_size=1, max_size=3),
    st.lists(st.integers(0, 5), min_size=1, max_size=3),
)
step = st.fixed_dictionaries(
    {"op": st.sampled_from([o.value for o in StepOp])},
    optional={"out": small, "kernel": st.integers(1, 5) | pair, "stride": st.integers(1, 3), "padding": st.integers(0, 3) | pair},
)
branch = st.lists(step, min_size=1, max_size=3)
branches = st.lists(branch, min_size=1, max_size=3)

FIELD_VALUES: dict[str, st.SearchStrategy] = {
    "out": small,
    "kernel": st.integers(1, 9) | pair,
    "stride": st.integers(1, 4),
    "padding": st.integers(0, 4) | pair,
    "dilation": st.integers(1, 3),
    "groups": st.integers(1, 8),
    "hidden": st.lists(small, min_size=0, max_size=2),
    "variant": st.sampled_from([v.value for v in Variant]),
    "shortcut": st.sampled_from([v.value for v in Shortcut]),
    "act": st.sampled_from([v.value for v in Act]),
    "norm": st.sampled_from([v.value for v in Norm]),
    "op": st.sampled_from(["max", "avg"]),
    "expansion": st.integers(1, 6),
    "expand": st.sampled_from([1.0, 0.5, 2.0, 6.0, 0.01]),
    "width": st.sampled_from([0.5, 1.0, 2.0, 0.05]),
    "compression": st.sampled_from([0.5, 1.0, 0.01]),
    "squeeze": st.sampled_from([0.125, 0.5, 0.01]),
    "pct3x3": st.sampled_from([0.5, 0.1, 0.9]),
    "layers": st.integers(1, 3),
    "growth": st.integers(1, 12),
    "bn_size": st.integers(0, 4),
    "convs": st.integers(1, 3),
    "columns": st.integers(1, 3),
    "scale": st.sampled_from([0.1, 1.0]),
    "branches": branches,
    "normal": cell_string,
    "reduce": cell_string,
}
FIELD_VALUES |= {
    k: v | huge
    for k, v in FIELD_VALUES.items()
    if k in ("out", "kernel", "stride", "padding", "dilation", "groups", "layers", "growth", "convs", "columns")
}
FIELD_VALUES |= {k: v | st.sampled_from([1e6, 1e300]) for k, v in FIELD_VALUES.items() if k in ("expand", "width")}
VALUE_OF_FIELD = st.sampled_from(BLOCK_FIELDS).flatmap(
    lambda k: st.tuples(st.just(k), FIELD_VALUES.get(k, st.booleans() | st.sampled_from([0.0, 0.1, 0.5])))
)


#: What each kind needs beyond its defaults, so that most structured examples reach the shape rules.
REQUIRED: dict[str, dict[str, st.SearchStrategy]] = {
    "conv": {"out": small},
    "mlpconv": {"out": small, "hidden": st.lists(small, min_size=1, max_size=2)},
    "residual": {"out": small},
    "dense": {"layers": st.integers(1, 3), "growth": st.integers(1, 12)},
    "separable": {"out": small},
    "fire": {"out": small},
    "mbconv": {"out": small},
    "inception": {"branches": branches},
    "inception_residual": {"branches": branches},
    "cell": {"out": small, "normal": cell_string, "reduce": cell_string},
    "fractal": {"out": small},
}


@st.composite
def block(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from([k.value for k in Kind]))
    allowed = BLOCK_TYPES[Kind(kind)].model_fields
    out = {"kind": kind, **{k: draw(v) for k, v in REQUIRED.get(kind, {}).items()}}
    for key, value in draw(st.lists(VALUE_OF_FIELD, max_size=4)):
        if key in allowed and (key not in out or draw(st.booleans())):
            out[key] = value
    return out


template = block().map(lambda b: {k: v for k, v in b.items() if k not in ("out", "stride")})
repeated_stage = st.fixed_dictionaries(
    {"block": template, "depth": st.integers(1, 3), "channels": small},
    optional={
        "stride": st.integers(1, 3),
        "aux": st.fixed_dictionaries({}, optional={"pool": st.integers(1, 6) | huge, "pool_stride": st.integers(1, 4) | huge}),
    },
)
explicit_stage = st.fixed_dictionaries({"blocks": st.lists(block(), min_size=1, max_size=3)})
head = st.fixed_dictionaries(
    {},
    optional={
        "pool": st.sampled_from([v.value for v in PoolOp]),
        "pool_size": st.integers(1, 4) | huge,
        "classifier": st.sampled_from([v.value for v in Classifier]),
        "hidden": st.lists(small | huge, max_size=2),
        "norm": st.booleans(),
    },
)
network = st.fixed_dictionaries(
    {"stages": st.lists(repeated_stage | explicit_stage, min_size=1, max_size=3)},
    optional={
        "input": st.fixed_dictionaries(
            {},
            optional={
                "channels": st.integers(1, 4) | huge,
                "resolution": st.integers(1, 40) | huge,
                "classes": st.integers(1, 10) | huge,
            },
        ),
        "stem": st.lists(block(), max_size=2),
        "head": head,
    },
)


# ---- the property ---------------------------------------------------------------------------------


def _check(parse, value) -> Network | None:
    """``parse(value)`` gives a network that torch can run at its input, or a GenotypeError."""
    try:
        net = parse(value)
    except GenotypeError as exc:
        assert exc.problems and all(isinstance(p, str) and isinstance(m, str) and m for p, m in exc.problems)
        return None
    assert isinstance(net, Network)
    cost = complexity(net)  # builds the module and runs a forward pass (on meta) at the stated input
    assert cost.params > 0 and cost.macs >= 0
    if cost.params < 200_000 and cost.macs < 20_000_000:  # small: build it for real and run it on the CPU
        with torch.no_grad():
            logits = build_network(net).eval()(torch.zeros(1, *net.input.shape))
        assert tuple(logits.shape) == (1, net.input.classes)
    return net


@fuzz(200)
@given(anything)
def test_arbitrary_values_give_a_network_or_a_genotype_error(value) -> None:
    _check(Network.from_dict, value)


@fuzz(200)
@given(st.dictionaries(st.sampled_from(KEYS), biased, max_size=6))
def test_values_with_genotype_keys_give_a_network_or_a_genotype_error(value) -> None:
    _check(Network.from_dict, value)


@fuzz(60)
@given(network)
def test_random_networks_of_real_blocks_validate_only_if_torch_can_run_them(value) -> None:
    net = _check(Network.from_dict, value)
    if net is not None:  # a valid network also survives its written forms
        assert Network.from_yaml(net.to_yaml()) == net
        assert Network.from_string(net.to_string()) == net


@fuzz(300)
@given(st.text(max_size=60) | st.text(alphabet='()[],=*@/|"; 0123456789.-e', max_size=40))
def test_arbitrary_text_gives_a_network_or_a_genotype_error(text: str) -> None:
    _check(Network.from_string, text)
    _check(Network.from_yaml, text)


@fuzz(80)
@given(network | anything)
def test_yaml_of_any_value_gives_a_network_or_a_genotype_error(value) -> None:
    _check(Network.from_yaml, yaml.safe_dump(value))
    _check(Network.from_yaml, yaml.safe_dump(value, default_flow_style=True)[::-1])


# ---- design spaces: templates of the same vocabulary with distributions in them ---------------------

DIST_KEYS = ["choice", "labels", "int", "float", "step", "log", "shared"]


def _distribution(children: st.SearchStrategy) -> st.SearchStrategy:
    return (
        st.fixed_dictionaries({"choice": st.lists(children, max_size=3)}, optional={"labels": st.lists(texts, max_size=3)})
        | st.fixed_dictionaries({"int": st.lists(ints, max_size=3)}, optional={"step": ints, "log": st.booleans()})
        | st.fixed_dictionaries({"float": st.lists(floats | ints, max_size=3)}, optional={"step": floats, "log": st.booleans()})
        | st.fixed_dictionaries({"shared": texts})
    )


template_value = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS + DIST_KEYS), c, max_size=4) | _distribution(c),
    max_leaves=30,
)
#: Real stages whose depth and width became distributions: many of these spaces load and sample.
searchable_stage = repeated_stage.map(
    lambda s: {**s, "depth": {"int": [1, s["depth"]]}, "channels": {"choice": [s["channels"], 16]}}
)
space_file = st.fixed_dictionaries(
    {
        "name": st.just("fuzz"),
        "template": st.fixed_dictionaries(
            {"stages": st.lists(searchable_stage | explicit_stage | template_value, min_size=1, max_size=2)},
            optional={"stem": template_value, "head": template_value},
        ),
    },
    optional={"shared": st.dictionaries(texts, template_value, max_size=2), "contains": st.lists(texts, max_size=2)},
)


@fuzz(80)
@given(space_file)
def test_random_design_spaces_load_and_sample_or_give_a_space_error(value) -> None:
    """A space either loads, sizes and samples (each draw a network or an InfeasibleSample), or is one SpaceError."""
    from nasx.errors import InfeasibleSample, SpaceError
    from nasx.space.design import DesignSpace

    try:
        space = DesignSpace.from_yaml(yaml.safe_dump(value))
    except SpaceError as exc:
        assert exc.problems and all(isinstance(p, str) and m for p, m in exc.problems)
        return
    assert space.size().points >= 1 and space.describe()
    for seed in range(2):
        try:
            net = space.random(seed, attempts=2)
        except InfeasibleSample as exc:
            assert exc.problems and exc.params is not None
            continue
        assert space.select(space.encode(net)) == net


# ---- hand-picked junk, mutated zoo networks, deep nesting and alias bombs ---------------------------

JUNK_DICTS = {
    "None": None,
    "list": [],
    "str": "x",
    "int": 5,
    "float": 1.5,
    "bool": True,
    "empty": {},
    "stages-int": {"stages": 5},
    "stages-empty": {"stages": []},
    "stage-None": {"stages": [None]},
    "stage-int": {"stages": [5]},
    "stage-string-form": {"stages": ["3*residual()@16"]},
    "block-int": {"stages": [{"block": 5}]},
    "blocks-int": {"stages": [{"blocks": 5}]},
    "blocks-str": {"stages": [{"blocks": "abc"}]},
    "blocks-None-item": {"stages": [{"blocks": [None]}]},
    "kind-None": {"stages": [{"blocks": [{"kind": None}]}]},
    "kind-int": {"stages": [{"blocks": [{"kind": 5}]}]},
    "kind-list": {"stages": [{"blocks": [{"kind": ["conv"]}]}]},
    "stem-str": {"stem": "conv", "stages": [{"blocks": [{"kind": "pool"}]}]},
    "input-int": {"input": 5, "stages": []},
    "kernel-triple": {"stages": [{"blocks": [{"kind": "conv", "out": 8, "kernel": [3, 3, 3]}]}]},
    "kernel-str": {"stages": [{"blocks": [{"kind": "conv", "out": 8, "kernel": "3"}]}]},
    "kernel-bools": {"stages": [{"blocks": [{"kind": "conv", "out": 8, "kernel": [True, True]}]}]},
    "padding-triple": {"stages": [{"blocks": [{"kind": "conv", "out": 8, "padding": [1, 1, 1]}]}]},
    "padding-dict": {"stages": [{"blocks": [{"kind": "conv", "out": 4, "padding": {"a": 1}}]}]},
    "padding-negative": {"stages": [{"blocks": [{"kind": "conv", "out": 8, "padding": -1}]}]},
    "dilation-0": {"stages": [{"blocks": [{"kind": "conv", "out": 8, "dilation": 0, "padding": 1}]}]},
    "pool-stride-pair": {"stages": [{"blocks": [{"kind": "pool", "kernel": [2, 2], "stride": [2, 2]}]}]},
    "expansion-str": {"stages": [{"blocks": [{"kind": "residual", "out": 8, "expansion": "4"}]}]},
    "variant-None": {"stages": [{"blocks": [{"kind": "residual", "out": 8, "variant": None, "expansion": 4}]}]},
    "width-nan": {"stages": [{"blocks": [{"kind": "residual", "out": 8, "width": float("nan")}]}]},
    "width-inf": {"stages": [{"blocks": [{"kind": "residual", "out": 8, "width": float("inf")}]}]},
    "hidden-str": {"head": {"hidden": "120"}, "stages": [{"blocks": [{"kind": "pool"}]}]},
}
JUNK_STRINGS = [
    "",
    " ",
    "||",
    "3*",
    "x",
    "$",
    "3*conv",
    "3*conv()@",
    "3*residual()@16/",
    "stem[",
    "stem[]",
    "[",
    "[]",
    "head(",
    "input()",
    "(((",
    "3*residual(kernel=)@16",
    "3*residual(=3)@16",
    "3*residual()@16 | head(",
    "3*residual()@16 @",
    "3*residual()@-16",
    "-3*residual()@16",
    "3.5*residual()@16",
    "3*residual()@1e3",
    "3*residual(kernel=[3,3])@16",
    "3*residual(out=16)@16",
    "3*pool()@16",
    "3*nope()@16",
    "3*residual(shortcut=sideways)@16",
    "1*residual()@16 | input(channels=0)",
    "[conv(out=8, kernel=[)]",
    "stem[conv(out=16)] stem[conv(out=16)]",
    "3*residual(",
    "[conv(out=8)",
    "3*residual()@",
    "x(",
    "@@@",
    "1e",
]
JUNK_YAML = [
    "",
    ":",
    "- a",
    "a: [",
    "{",
    "5",
    "null",
    "[1, 2]",
    "\t",
    "stages: x",
    "stages: [5]",
    "!!python/object/apply:os.system ['echo pwned']",
    "stages: !!binary aGVsbG8=",
    "&a [*a]",
    "stages:\n  - {block: {kind: residual}, depth: 2, channels: 16}\n  - 'x'",
    "x: 1\nx: 2\nstages: []",
    "- 1\n- 2",
    "just text",
    "stages: {a: [",
]


@pytest.mark.parametrize("data", JUNK_DICTS.values(), ids=JUNK_DICTS.keys())
def test_only_genotype_errors_escape_from_dict(data) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    assert info.value.problems and all(isinstance(p, str) and m for p, m in info.value.problems)


@pytest.mark.parametrize("text", JUNK_STRINGS, ids=JUNK_STRINGS)
def test_only_genotype_errors_escape_from_string(text: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_string(text)
    assert info.value.problems


@pytest.mark.parametrize("text", JUNK_YAML, ids=[repr(t)[:40] for t in JUNK_YAML])
def test_only_genotype_errors_escape_from_yaml(text: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_yaml(text)
    assert info.value.problems


def _outcome(parse, value) -> Network | None:
    """``parse(value)``: a network, or None for a GenotypeError; anything else fails the test."""
    try:
        return parse(value)
    except GenotypeError as exc:
        assert exc.problems
        return None


def test_mutated_strings_give_a_network_or_a_genotype_error() -> None:
    rng = random.Random(20240601)
    pieces = list("()[],=*@/| 0123456789.-e") + ["conv", "pool", "residual", "stem", "head", "kernel=", "true", "null", "[3, 3]"]
    sources = [zoo.get(n).to_string() for n in ZOO_NAMES]
    valid = 0
    for _ in range(600):
        chars = list(rng.choice(sources))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                chars.insert(pos, rng.choice(pieces))
            elif op < 0.7:
                del chars[pos]
            else:
                chars[pos] = rng.choice(pieces)
        net = _outcome(Network.from_string, "".join(chars))
        if net is not None:
            valid += 1
            assert Network.from_string(net.to_string()) == net
    assert valid > 0  # the mutations are not all fatal: some still parse and must round-trip


def test_mutated_dicts_give_a_network_or_a_genotype_error() -> None:
    rng = random.Random(7)
    values = [
        None,
        True,
        0,
        -1,
        1,
        2,
        3,
        4,
        1.5,
        float("nan"),
        "x",
        "3",
        [],
        [3],
        [3, 3],
        [2, 4],
        [1, 2, 3],
        {},
        {"kind": "conv"},
        "relu",
        "avg",
        "bn",
        "pad",
        [True, True],
        ["3", "3"],
        [3.0, 3.0],
        [None, None],
    ]
    keys = [
        "kernel",
        "padding",
        "stride",
        "dilation",
        "groups",
        "out",
        "hidden",
        "width",
        "expansion",
        "se",
        "variant",
        "depth",
        "channels",
        "blocks",
        "block",
        "pool_size",
        "ceil_mode",
        "op",
        "classifier",
        "kind",
        "preact",
    ]
    sources = [zoo.get(n).to_dict() for n in ZOO_NAMES]

    def slots(node, trail=()):
        if isinstance(node, dict):
            for k, v in node.items():
                yield node, k
                yield from slots(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield node, i
                yield from slots(v)

    valid = 0
    for _ in range(600):
        data = copy.deepcopy(rng.choice(sources))
        container, key = rng.choice(list(slots(data)))
        if isinstance(container, dict) and rng.random() < 0.3:
            container[rng.choice(keys)] = rng.choice(values)
        else:
            container[key] = rng.choice(values)
        net = _outcome(Network.from_dict, data)
        if net is not None:
            valid += 1
            assert Network.from_yaml(net.to_yaml()) == net
            assert Network.from_string(net.to_string()) == net
    assert valid > 0


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (Network.from_yaml, "stages: " + "[" * 5000 + "]" * 5000),
        (Network.from_yaml, "stages: " + "{a: " * 5000 + "1" + "}" * 5000),
        (Network.from_yaml, "stages: " + "[" * 60 + "]" * 60),
        (Network.from_string, "[conv(out=" + "[" * 5000 + "]" * 5000 + ")]"),
        (Network.from_string, "[inception(branches=" + "[(fork=" * 30 + "))" * 30 + ")]"),
    ],
    ids=["yaml-lists", "yaml-mappings", "yaml-60-levels", "string-lists", "string-forks"],
)
def test_deep_nesting_is_a_genotype_error_not_a_recursion_error(parse, text: str) -> None:
    with pytest.raises(GenotypeError, match="nested more than 50 levels deep"):
        parse(text)


def test_deeply_nested_forks_are_a_genotype_error_naming_where() -> None:
    steps: list = [{"op": "conv", "out": 4, "kernel": 1}]
    for _ in range(400):  # pydantic used to give up with a RecursionError
        steps = [{"fork": [steps, [{"op": "conv", "out": 4, "kernel": 1}]]}]
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(
            {"stem": [{"kind": "conv", "out": 16}], "stages": [{"blocks": [{"kind": "inception", "branches": [steps]}]}]}
        )
    ((path, message),) = info.value.problems
    assert path.startswith("stages[0].blocks[0].branches[0][0].fork[0][0].fork[0]") and "nested more than 50" in message


def test_yaml_aliases_that_multiply_into_billions_of_values_are_refused_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    text = "\n".join([*lines, "stages: [*i]"]) + "\n"  # 10**9 values from a 400-byte file
    with pytest.raises(GenotypeError, match="more than 200000 values"):
        Network.from_yaml(text)
