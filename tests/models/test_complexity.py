"""Complexity: the external reference table, parts and totals, hand-worked MACs, families, meta-device cost.

The golden file (search_spaces/zoo/complexity.json) is checked once, in test_zoo.py.
"""

from __future__ import annotations

import json
import numbers
from typing import Any

import pytest
import torch
from helpers import ZOO_NAMES, cached_complexity, run_python
from torch import nn

from nasx import zoo
from nasx.models import build_network
from nasx.models.complexity import Complexity, activation_memory, complexity, count_params
from nasx.space import Network


def _cost(name: str) -> Complexity:
    return cached_complexity(zoo.get(name))


# External reference figures: (params, GMACs). Params must match exactly, MACs within 0.5%.
# Sources: torchvision's model tables (the "GFLOPS" column there is multiply-accumulates) for
# alexnet, vgg16(_bn), resnet18/34/50/101/152, resnext50_32x4d, resnext101_32x8d,
# wide_resnet50_2/101_2; timm for seresnet50; LeCun et al. 1998 for LeNet-5; He et al. 2016
# (the option-A CIFAR ResNets); kuangliu/pytorch-cifar for the CIFAR ResNet-18; Zagoruyko &
# Komodakis 2016 (WRN-28-10). These are the figures quoted in the foundation issue.
REFERENCE: dict[str, tuple[int, float | None]] = {
    "lenet5": (61_706, 0.000417),
    "alexnet": (61_100_840, 0.714),
    "vgg16": (138_357_544, 15.470),
    "vgg16_bn": (138_365_992, 15.470),
    "resnet18": (11_689_512, 1.814),
    "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089),
    "resnext50_32x4d": (25_028_904, 4.230),
    "wide_resnet50_2": (68_883_240, 11.398),
    "seresnet50": (28_088_024, 4.092),
    "resnet20_cifar": (269_722, 0.04055),
    "resnet56_cifar": (853_018, 0.1255),
    "resnet110_cifar": (1_727_962, 0.2529),
    "resnet18_cifar": (11_173_962, 0.5554),
    "wrn28_10_cifar": (36_479_194, 5.243),
    "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514),
    "resnext101_32x8d": (88_791_336, 16.414),
    "wide_resnet101_2": (126_886_696, 22.753),
}


@pytest.mark.parametrize("name", sorted(REFERENCE), ids=sorted(REFERENCE))
def test_reference_table(name: str) -> None:
    params, gmacs = REFERENCE[name]
    c = _cost(name)
    assert c.params == params
    if gmacs is not None:
        assert c.macs / 1e9 == pytest.approx(gmacs, rel=0.005)


@pytest.mark.parametrize("name", ZOO_NAMES, ids=ZOO_NAMES)
def test_parts_add_up_to_the_totals(name: str) -> None:
    net = zoo.get(name)
    c = _cost(name)
    assert sum(p.params for p in c.parts) == c.params
    assert sum(p.macs for p in c.parts) == c.macs
    names = [p.name for p in c.parts]
    expected_names = (["stem"] if net.stem else []) + [f"stage{i + 1}" for i in range(len(net.stages))] + ["head"]
    assert names == expected_names
    stage_parts = [p for p in c.parts if p.name.startswith("stage")]
    assert [p.blocks for p in stage_parts] == [len(s.expand()) for s in net.stages]
    shapes = dict(net.shapes())
    assert [p.out_shape for p in stage_parts] == [tuple(shapes[f"stages[{i}]"]) for i in range(len(net.stages))]
    if net.stem:
        assert c.parts[0].blocks == len(net.stem)
        assert c.parts[0].out_shape == tuple(shapes[f"stem[{len(net.stem) - 1}]"])
    assert c.parts[-1].out_shape == (net.input.classes,)
    assert all(p.params >= 0 and p.macs >= 0 for p in c.parts)
    # the parts cover every parameter of the built module; auxiliary heads are training-only
    with torch.device("meta"):
        model = build_network(net)
    assert count_params(model) - count_params(model.aux_heads) == c.params


def test_tiny_network_macs_by_hand() -> None:
    # conv 3->8 3x3 'same' on 8x8: 8*8 positions x 8 outputs x 27 inputs; BN and ReLU are free;
    # global average pool is free; linear 8->10: 80.
    net = Network.from_dict({"input": {"resolution": 8}, "stages": [{"blocks": [{"kind": "conv", "out": 8}]}]})
    c = complexity(net)
    assert c.macs == 8 * 8 * 8 * 27 + 8 * 10 == 13_904
    assert c.params == 3 * 8 * 9 + 2 * 8 + 8 * 10 + 10
    assert [(p.name, p.macs) for p in c.parts] == [("stage1", 13_824), ("head", 80)]
    # NiN conv classifier: a 1x1 conv with bias to the classes, before pooling
    nin = complexity(Network.from_string("input(resolution=4) | [conv(out=6)] | head(classifier=conv)"))
    assert nin.params == 3 * 6 * 9 + 2 * 6 + 6 * 10 + 10
    assert nin.macs == 4 * 4 * 6 * 27 + 4 * 4 * 6 * 10


def test_strided_conv_pool_and_hidden_layers_by_hand() -> None:
    # 3x8x8 -conv 3->8 k3 s2-> 8x4x4 -maxpool 2-> 8x2x2 -flatten 32-> fc 16 -> fc 10
    net = Network.from_dict(
        {
            "input": {"resolution": 8},
            "stages": [{"blocks": [{"kind": "conv", "out": 8, "stride": 2, "bias": True, "norm": "none"}, {"kind": "pool"}]}],
            "head": {"pool": "none", "hidden": [16]},
        }
    )
    c = complexity(net)
    assert c.macs == 4 * 4 * 8 * 27 + 32 * 16 + 16 * 10
    assert c.params == (3 * 8 * 9 + 8) + (32 * 16 + 16) + (16 * 10 + 10)
    assert c.parts[0].out_shape == (8, 2, 2)


def test_grouped_conv_macs_by_hand() -> None:
    def one_block(groups: int) -> Network:
        return Network.from_dict(
            {
                "input": {"channels": 256, "resolution": 8},
                "stages": [
                    {
                        "block": {"kind": "residual", "variant": "bottleneck", "width": 2, "groups": groups},
                        "depth": 1,
                        "channels": 256,
                    }
                ],
            }
        )

    dense, grouped = complexity(one_block(1)), complexity(one_block(32))
    # only the 3x3 conv (128 -> 128) changes: 9 * 128 * 128 MACs per position become 9 * 128 * 4
    assert dense.macs - grouped.macs == 8 * 8 * 9 * 128 * (128 - 4)
    assert dense.params - grouped.params == 9 * 128 * (128 - 4)


def test_zero_padding_shortcut_costs_nothing() -> None:
    def r(shortcut: str) -> Network:
        return Network.from_dict(
            {
                "input": {"channels": 16, "resolution": 8},
                "stages": [{"block": {"kind": "residual", "shortcut": shortcut}, "depth": 1, "channels": 32, "stride": 2}],
            }
        )

    pad, project = complexity(r("pad")), complexity(r("project"))
    body_macs = 4 * 4 * 32 * (16 * 9) + 4 * 4 * 32 * (32 * 9)
    assert pad.macs == body_macs + 32 * 10
    assert project.macs - pad.macs == 4 * 4 * 32 * 16
    assert project.params - pad.params == 16 * 32 + 2 * 32


# ---- family members follow from numbers only ------------------------------------------------------


def _diff(a, b, path: str = "") -> list[tuple[str, object, object]]:
    """Every differing leaf of two plain trees; a structural difference is reported as one leaf."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append((f"{path}.{key}", a.get(key, "<missing>"), b.get(key, "<missing>")))
            else:
                out += _diff(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(path, f"<{len(a)} items>", f"<{len(b)} items>")]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def _is_number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


FAMILIES = [
    ("resnet50", "resnet101", {"depth"}),
    ("resnet50", "resnet152", {"depth"}),
    ("resnet18", "resnet34", {"depth"}),
    ("resnext50_32x4d", "resnext101_32x8d", {"depth", "width"}),
    ("wide_resnet50_2", "wide_resnet101_2", {"depth"}),
    ("resnet20_cifar", "resnet56_cifar", {"depth"}),
    ("resnet20_cifar", "resnet110_cifar", {"depth"}),
]


@pytest.mark.parametrize(("small", "large", "fields"), FAMILIES, ids=[f"{a}-{b}" for a, b, _ in FAMILIES])
def test_deeper_family_members_differ_only_in_numbers(small: str, large: str, fields: set[str]) -> None:
    diffs = _diff(zoo.get(small).to_dict(), zoo.get(large).to_dict())
    numeric = [(p, a, b) for p, a, b in diffs if p not in (".name", ".reference")]
    assert numeric, "the two networks must differ somewhere"
    for path, a, b in numeric:
        assert _is_number(a) and _is_number(b), (path, a, b)
        assert path.rsplit(".", 1)[-1] in {"depth", "channels", "width", "groups", "expansion"}, path
    assert {p.rsplit(".", 1)[-1] for p, _, _ in numeric} == fields
    assert zoo.family(zoo.get(small)) == zoo.family(zoo.get(large))


def test_diff_helper_sees_structure() -> None:
    assert _diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == [(".a[1].b", 2, 3)]
    assert _diff({"a": [1]}, {"a": [1, 2]}) == [(".a", "<1 items>", "<2 items>")]
    assert _diff({"a": 1}, {"b": 1}) == [(".a", 1, "<missing>"), (".b", "<missing>", 1)]
    assert not _is_number(True) and _is_number(2.0)


# ---- activation memory ---------------------------------------------------------------------------


def test_activation_memory_scales_with_batch() -> None:
    net = zoo.get("resnet20_cifar")
    a1, a2, a4 = (activation_memory(net, batch=b) for b in (1, 2, 4))
    assert 0 < a1 < a2 < a4
    # affine in the batch: every saved activation grows with it ...
    assert a4 - a2 == 2 * (a2 - a1)
    # ... and the batch-independent rest is only BatchNorm's saved per-channel mean and inverse std
    with torch.device("meta"):
        model = build_network(net)
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert 2 * a1 - a2 == 2 * bn_channels * 4
    # at least every stage's output map is kept for the backward pass
    floor = sum(s.c * s.h * s.w for _, s in net.shapes()) * 4
    assert a1 > floor
    assert activation_memory(net, batch=2, bytes_per_element=2) * 2 == a2
    # a conv-only net saves its input for the weight gradient: 3x8x8 floats, plus logits
    tiny = Network.from_string("input(resolution=8) | [conv(out=4, norm=none, act=none)] | head(pool=none)")
    assert activation_memory(tiny, batch=1) == 4 * (3 * 8 * 8 + 4 * 8 * 8 + 10)


# ---- meta device: no allocation, fast ----------------------------------------------------------

_MEASURE = """
import json, resource, time
from nasx import zoo
from nasx.models.complexity import complexity
complexity(zoo.get("lenet5"))  # warm up imports and the flop counter
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
costs = {n: complexity(zoo.get(n)).params for n in ("vgg16", "wide_resnet101_2")}
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "grew_kib": after - before, "params": costs}))
"""


def test_complexity_of_large_networks_allocates_nothing() -> None:
    proc = run_python("-c", _MEASURE)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["params"] == {"vgg16": 138_357_544, "wide_resnet101_2": 126_886_696}
    assert report["seconds"] < 10
    # fp32 weights alone would be 553 MB + 508 MB; allow 200 MB of bookkeeping
    assert report["grew_kib"] < 200 * 1024, report


class RandomDraw:
    """The three suggest methods of a trial, drawing at random."""

    def __init__(self, rng: Any) -> None:
        self.rng, self.params = rng, {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params.setdefault(name, self.rng.choice(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> Any:
        return self.params.setdefault(name, self.rng.randrange(low, high + 1, step))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> Any:
        return self.params.setdefault(name, self.rng.uniform(low, high))


@pytest.mark.parametrize("space_name", ["macro-cifar", "nasnet-cifar"])
def test_block_by_block_counting_equals_tracing_the_whole_network(space_name: str) -> None:
    """complexity() counts each distinct block once and adds up; the whole network traced at once is the reference."""
    import random

    from nasx.models.complexity import _complexity, _whole_network_complexity
    from nasx.space.design import load_space

    space = load_space(space_name)
    rng = random.Random(7)
    for _ in range(3):
        net = space.sample(RandomDraw(rng))
        for aux in (False, True):
            assert _complexity(net, aux) == _whole_network_complexity(net, aux), net.to_string()
