"""Builders and complexity: exact reference counts, hand-worked cases, shapes, forward passes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from nasx import zoo
from nasx.models import build_network
from nasx.models.blocks import _BUILDERS
from nasx.models.complexity import activation_memory, complexity, count_params
from nasx.models.layers import PadShortcut, make_divisible
from nasx.space import Kind, Network

# The reference figures (torchvision, timm, the CIFAR papers) are checked in test_complexity.py.


@pytest.mark.parametrize("name", zoo.names())
def test_golden_complexity_and_breakdown(name: str) -> None:
    net = zoo.get(name)
    c = complexity(net)
    assert {"params": c.params, "macs": c.macs} == {k: zoo.golden()[name][k] for k in ("params", "macs")}
    assert sum(p.params for p in c.parts) == c.params and sum(p.macs for p in c.parts) == c.macs
    with torch.device("meta"):
        model = build_network(net)
    assert count_params(model) - count_params(model.aux_heads) == c.params  # aux heads are training-only
    # the builder's stage outputs are the shapes the space infers without torch
    inferred = [s for path, s in net.shapes() if path.startswith("stages")]
    built = [p.out_shape for p in c.parts if p.name.startswith("stage")]
    assert built == [tuple(s) for s in inferred]
    assert c.parts[-1].out_shape == (net.input.classes,)


CIFAR = [n for n in zoo.names() if zoo.get(n).input.resolution <= 32]


@pytest.mark.parametrize("name", CIFAR)
def test_forward_pass_on_cpu(name: str) -> None:
    net = zoo.get(name)
    torch.manual_seed(0)
    model = build_network(net).eval()
    with torch.no_grad():
        y = model(torch.randn(2, *net.input.shape))
    assert y.shape == (2, net.input.classes) and torch.isfinite(y).all()


IMAGENET = [n for n in zoo.names() if n not in CIFAR]


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_networks_forward_at_their_resolution(name: str) -> None:
    net = zoo.get(name)
    model = build_network(net).eval()
    with torch.no_grad():
        y = model(torch.randn(1, *net.input.shape))
    assert y.shape == (1, 1000)


def test_every_kind_has_exactly_one_builder() -> None:
    assert set(_BUILDERS) == set(Kind)


def test_hand_worked_params_and_macs() -> None:
    # conv 3->8 3x3 (no bias) + BN on 8x8, global pool, linear 8->10
    net = Network.from_string("input(resolution=8) | [conv(out=8)]")
    c = complexity(net)
    assert c.params == 3 * 8 * 9 + 2 * 8 + 8 * 10 + 10
    assert c.macs == 8 * 8 * 8 * 27 + 8 * 10
    # NiN conv classifier: a 1x1 conv with bias to the classes, before pooling
    nin = complexity(Network.from_string("input(resolution=4) | [conv(out=6)] | head(classifier=conv)"))
    assert nin.params == 3 * 6 * 9 + 2 * 6 + 6 * 10 + 10
    assert nin.macs == 4 * 4 * 6 * 27 + 4 * 4 * 6 * 10


def test_grouped_bottleneck_params_follow_the_formula() -> None:
    def body(groups: int) -> int:
        net = Network.from_string(
            f"input(resolution=8) | stem[conv(out=64)] | 1*residual(variant=bottleneck, groups={groups}, width=2)@64"
        )
        return complexity(net).parts[1].params

    mid = 64 * 2 // 4  # 32
    bn = 2 * (mid + mid + 64)
    assert body(1) == 64 * mid + mid * mid * 9 + mid * 64 + bn
    assert body(8) == 64 * mid + mid * (mid // 8) * 9 + mid * 64 + bn


def test_squeeze_excite_params() -> None:
    plain = complexity(Network.from_string("input(resolution=8) | stem[conv(out=64)] | 1*residual()@64")).params
    se = complexity(Network.from_string("input(resolution=8) | stem[conv(out=64)] | 1*residual(se=0.25)@64")).params
    hidden = make_divisible(64 * 0.25)
    assert se - plain == 64 * hidden + hidden + hidden * 64 + 64


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 4, 6, 6)
    y = PadShortcut(4, 8, 2)(x)
    assert y.shape == (2, 8, 3, 3)
    assert torch.equal(y[:, 2:6], x[:, :, ::2, ::2])
    assert not y[:, :2].any() and not y[:, 6:].any()
    pad = Network.from_string("input(resolution=8) | stem[conv(out=16)] | 1*residual(shortcut=pad)@32/2")
    proj = Network.from_string("input(resolution=8) | stem[conv(out=16)] | 1*residual()@32/2")
    assert complexity(proj).params - complexity(pad).params == 16 * 32 + 2 * 32


def test_preactivation_projects_without_bn_and_ends_with_head_norm() -> None:
    model = build_network(zoo.get("wrn28_10_cifar"))
    first = model.stages[0][0]
    assert isinstance(first.shortcut[0], nn.Conv2d) and len(first.shortcut) == 1
    assert isinstance(first.pre[0], nn.BatchNorm2d)
    assert isinstance(model.head.norm[0], nn.BatchNorm2d)


def test_deeper_family_members_differ_only_in_numbers() -> None:
    def leaves(d: object, path: str = "") -> dict[str, object]:
        if isinstance(d, dict):
            return {k: v for key, val in d.items() for k, v in leaves(val, f"{path}.{key}").items()}
        if isinstance(d, list):
            return {k: v for i, val in enumerate(d) for k, v in leaves(val, f"{path}[{i}]").items()}
        return {path: d}

    for small, big in [
        ("resnet50", "resnet101"),
        ("resnet50", "resnet152"),
        ("resnext50_32x4d", "resnext101_32x8d"),
        ("wide_resnet50_2", "wide_resnet101_2"),
        ("resnet20_cifar", "resnet110_cifar"),
    ]:
        a, b = leaves(zoo.get(small).to_dict()), leaves(zoo.get(big).to_dict())
        assert a.keys() == b.keys()
        changed = {k for k in a if a[k] != b[k] and not k.startswith((".name", ".reference"))}
        assert changed and all(isinstance(a[k], int | float) and isinstance(b[k], int | float) for k in changed), changed


def test_activation_memory_is_linear_in_batch_and_counts_saved_tensors() -> None:
    net = zoo.get("resnet20_cifar")
    one, two = activation_memory(net, batch=2), activation_memory(net, batch=4)
    # linear up to BN's per-channel saved statistics, which do not grow with the batch
    assert one > 0 and 0 <= 2 * one - two < 0.01 * one
    # a conv-only net saves its input for the weight gradient: 3x8x8 floats, plus logits
    tiny = Network.from_string("input(resolution=8) | [conv(out=4, norm=none, act=none)] | head(pool=none)")
    assert activation_memory(tiny, batch=1) == 4 * (3 * 8 * 8 + 4 * 8 * 8 + 10)


def test_complexity_of_large_networks_allocates_nothing() -> None:
    code = (
        "import resource, time; from nasx import zoo; from nasx.models.complexity import complexity; "
        "import torch; r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; t = time.time(); "
        "c = complexity(zoo.get('wide_resnet101_2')); complexity(zoo.get('vgg16')); "
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) // 1024, time.time() - t, c.params)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    grown_mib, seconds, params = int(out[0]), float(out[1]), int(out[2])
    assert params == 126_886_696
    assert grown_mib < 200  # the fp32 weights alone would be ~1 GB
    assert seconds < 20
