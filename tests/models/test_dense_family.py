"""Dense, transition, separable, fire and mbconv blocks, and the zoo networks made of them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasx import zoo
from nasx.errors import GenotypeError
from nasx.models.blocks import InvertedResidual, Separable, build_block
from nasx.models.complexity import complexity
from nasx.models.network import build_network
from nasx.space.genotype import MBConvBlock, Network, SeparableBlock, Shape

# External figures (not produced by nasx): params and GMACs of the reference implementations,
# measured with torch's FlopCounterMode at batch 1 (torchvision 0.28, timm legacy_xception;
# DenseNet-BC from Huang et al.'s CIFAR definition).
REFERENCE = {
    "densenet121": (224, 7_978_856, 2.834),
    "densenet_bc_100_12_cifar": (32, 769_162, 0.2879),
    "xception": (299, 22_855_952, 8.357),
    "squeezenet1_0": (224, 1_248_424, 0.819),
    "squeezenet1_1": (224, 1_235_496, 0.349),
    "mobilenet_v2": (224, 3_504_872, 0.301),
}
NAMES = sorted(REFERENCE)


@pytest.mark.parametrize("name", NAMES)
def test_params_exact_and_macs_within_half_a_percent(name: str) -> None:
    resolution, params, gmacs = REFERENCE[name]
    net = zoo.get(name)
    assert net.input.resolution == resolution
    c = complexity(net)
    assert c.params == params
    assert abs(c.macs / 1e9 - gmacs) / gmacs < 0.005, c.macs


def _block_modules(net: nn.Module) -> list[nn.Module]:
    return [*net.stem, *(m for stage in net.stages for m in stage)]


@pytest.mark.parametrize("name", NAMES)
def test_shape_inference_matches_the_built_modules(name: str) -> None:
    genotype = zoo.get(name)
    with torch.device("meta"):
        net = build_network(genotype).eval()
    modules = _block_modules(net)
    assert len(modules) == len(genotype.blocks())
    x = torch.empty(1, *genotype.input.shape, device="meta")
    shape = genotype.input.shape
    for (path, block), module in zip(genotype.blocks(), modules, strict=True):
        shape = block.out_shape(shape)
        x = module(x)
        assert tuple(x.shape[1:]) == shape, path


# ---- mbconv: the residual exists exactly when stride 1 and in == out ----------------------


def _zero_projection(module: InvertedResidual) -> None:
    bn = module.body.project.bn
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)


@pytest.mark.parametrize(
    ("cin", "out", "stride", "expand", "residual"),
    [(16, 16, 1, 6.0, True), (16, 16, 1, 1.0, True), (16, 16, 2, 6.0, False), (16, 24, 1, 6.0, False), (16, 24, 2, 1.0, False)],
)
def test_mbconv_residual_only_when_shape_is_kept(cin: int, out: int, stride: int, expand: float, residual: bool) -> None:
    block = MBConvBlock(out=out, stride=stride, expand=expand)
    assert block.residual(cin) is residual
    module = build_block(block, cin).eval()
    assert isinstance(module, InvertedResidual) and module.residual is residual
    assert ("expand" in dict(module.body.named_children())) is (expand != 1)
    _zero_projection(module)  # the body now outputs exactly 0: what is left is the shortcut
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        y = module(x)
    assert y.shape == (2, out, 8 // stride, 8 // stride)
    if residual:
        assert torch.equal(y, x)
    else:
        assert torch.count_nonzero(y) == 0


def test_mobilenet_v2_has_torchvisions_ten_residual_blocks() -> None:
    genotype = zoo.get("mobilenet_v2")
    with torch.device("meta"):
        net = build_network(genotype)
    residual = [m.residual for m in net.modules() if isinstance(m, InvertedResidual)]
    assert len(residual) == 17 and sum(residual) == 10
    expected, shape = [], genotype.input.shape
    for _, block in genotype.blocks():
        if isinstance(block, MBConvBlock):
            expected.append(block.residual(shape.c))
        shape = block.out_shape(shape)
    assert residual == expected


def test_mbconv_se_sits_on_the_expanded_features() -> None:
    module = build_block(MBConvBlock(out=24, se=0.25), 16)
    names = [name for name, _ in module.body.named_children()]
    assert names == ["expand", "depthwise", "se", "project"]
    assert module.body.se.fc1.in_channels == 96 and module.body.se.fc1.out_channels == 24


# ---- separable, dense, fire: structure that params alone would not catch -------------------


def test_xception_shortcuts_and_leading_relu() -> None:
    with torch.device("meta"):
        net = build_network(zoo.get("xception"))
    blocks = [m for m in net.modules() if isinstance(m, Separable)]
    kinds = [type(b.shortcut).__name__ for b in blocks]
    assert kinds == ["Sequential"] * 3 + ["Identity"] * 8 + ["Sequential", "NoneType", "NoneType"]
    assert not isinstance(blocks[0].body[0], nn.ReLU) and isinstance(blocks[1].body[0], nn.ReLU)
    assert isinstance(blocks[-1].body[-1], nn.ReLU)  # the exit flow's post-activation
    assert isinstance(blocks[0].body[-1], nn.MaxPool2d) and not isinstance(blocks[5].body[-1], nn.MaxPool2d)


def test_separable_block_without_body_output_is_its_shortcut() -> None:
    block = SeparableBlock(out=8, convs=2)
    module = build_block(block, 8).eval()
    nn.init.zeros_(module.body[-1].weight)
    nn.init.zeros_(module.body[-1].bias)
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(module(x), x)
    projected = build_block(SeparableBlock(out=16, stride=2), 8).eval()
    with torch.no_grad():
        y = projected(x)
    assert y.shape == (1, 16, 3, 3) == (1, *SeparableBlock(out=16, stride=2).out_shape(Shape(8, 5, 5)))


def test_dense_block_keeps_its_input_and_adds_growth_per_layer() -> None:
    net = Network.from_string("stem[conv(out=8)] | [dense(layers=3, growth=4, bn_size=2), transition(compression=0.5)]")
    assert [s for _, s in net.shapes()] == [Shape(8, 32, 32), Shape(10, 16, 16)]
    dense = build_block(net.stages[0].blocks[0], 8).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        y = dense(x)
    assert y.shape == (1, 20, 6, 6) and torch.equal(y[:, :8], x)
    assert [layer[2].out_channels for layer in dense.layers] == [8, 8, 8]  # bottleneck bn_size * growth
    plain = build_block(net.stages[0].blocks[0].model_copy(update={"bn_size": 0}), 8)
    assert all(len(layer) == 3 for layer in plain.layers)  # BN, act, 3x3 conv: no bottleneck


def test_fire_widths_and_concatenation_order() -> None:
    net = Network.from_string("[fire(out=64, squeeze=0.25, pct3x3=0.75)]")
    fire = build_block(net.stages[0].blocks[0], 3).eval()
    assert (fire.squeeze.conv.out_channels, fire.expand1x1.conv.out_channels, fire.expand3x3.conv.out_channels) == (16, 16, 48)
    nn.init.zeros_(fire.expand3x3.conv.weight)
    nn.init.constant_(fire.expand3x3.conv.bias, -1.0)  # ReLU(-1) = 0: only the 1x1 expand is non-zero
    with torch.no_grad():
        y = fire(torch.randn(1, 3, 5, 5))
    assert torch.count_nonzero(y[:, 16:]) == 0 and torch.count_nonzero(y[:, :16]) > 0


def test_classifier_dropout_sits_in_front_of_the_classifier() -> None:
    with torch.device("meta"):
        squeeze = build_network(zoo.get("squeezenet1_1")).head
        mobile = build_network(zoo.get("mobilenet_v2")).head
    assert [n for n, _ in squeeze.named_children()][:2] == ["drop", "classifier"] and squeeze.drop.p == 0.5
    assert [n for n, _ in mobile.named_children()][-2:] == ["drop", "fc"] and mobile.drop.p == 0.2


def test_canonical_spellings_share_a_digest() -> None:
    a = Network.from_string("[separable(out=8, convs=1, grow_first=false)] | 2*mbconv(expand=6)@8")
    b = Network.from_string("[separable(out=8, convs=1)] | 2*mbconv(expand=6.0)@8")
    assert a == b and a.digest == b.digest


def test_family_labels() -> None:
    assert zoo.family(zoo.get("densenet121")) == "dense"
    assert zoo.family(zoo.get("xception")) == "separable"
    assert zoo.family(zoo.get("squeezenet1_0")) == "fire"
    assert zoo.family(zoo.get("mobilenet_v2")) == "mbconv/conv"
    assert zoo.family(Network.from_string("2*mbconv(se=0.25)@16")) == "mbconv+se"


# ---- malformed genotypes: the error names the field -----------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("[dense(layers=2, growth=4, kernel=4)]", "stages[0].blocks[0].kernel", "must be odd, got 4"),
        ("[dense(layers=2, growth=4, out=16)]", "stages[0].blocks[0].out", "derived"),
        ("1*dense(layers=2, growth=4)@16", "stages[0].block.out", "cannot be a repeated stage template"),
        ("[dense(layers=2, growth=4), transition(compression=1.5)]", "stages[0].blocks[1].compression", "1.5"),
        ("stem[conv(out=1)] | [transition(compression=0.5)]", "stages[0].blocks[0].compression", "leaves no channels"),
        ("input(resolution=1) | [transition()]", "stages[0].blocks[0].kind", "at least 2x2"),
        ("2*fire()@4", "stages[0].block.squeeze", "must be >= 1"),
        ("[fire(out=8, pct3x3=0.1)]", "stages[0].blocks[0].pct3x3", "3x3 0"),
        ("2*fire()@128/2", "stages[0].block.stride", "does not downsample"),
        ("[separable(out=8, kernel=2)]", "stages[0].blocks[0].kernel", "must be odd, got 2"),
        ("2*mbconv(expand=0.1)@8", "stages[0].block.expand", "leaves no channels"),
        ("2*mbconv(se=1.5)@8", "stages[0].block.se", "1.5"),
    ],
)
def test_malformed_genotypes_name_the_field(text: str, path: str, words: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_string(text)
    problems = info.value.problems
    assert [p for p, _ in problems] == [path], problems
    assert words in problems[0][1]
