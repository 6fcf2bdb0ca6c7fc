"""Builders: forward passes, shapes agreeing with the genotype's, and hand-worked parameter counts."""

from __future__ import annotations

import pytest
import torch
from helpers import ZOO_NAMES
from torch import nn

from nasx import zoo
from nasx.errors import NasxError
from nasx.models import build_network
from nasx.models.blocks import _BUILDERS, build_block, register
from nasx.models.complexity import complexity, count_params
from nasx.models.layers import PadShortcut, SqueezeExcite, make_divisible
from nasx.models.network import last
from nasx.space import BLOCK_TYPES, Kind, Network, ResidualBlock

CIFAR_SIZED = [n for n in ZOO_NAMES if zoo.get(n).input.resolution == 32]
# ImageNet networks forwarded at a reduced resolution, to keep the suite fast.
IMAGENET_SMALL = ["resnet18", "resnext50_32x4d", "seresnet50"]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _at_resolution(net: Network, resolution: int) -> Network:
    d = net.to_dict()
    d["input"] = {**d.get("input", {}), "resolution": resolution}
    return Network.from_dict(d)


def _forward(net: Network, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_network(net).eval()
    x = torch.randn(batch, *net.input.shape)
    with torch.no_grad():
        return model(x)


def test_cifar_sized_zoo_is_not_empty() -> None:
    assert {"resnet20_cifar", "lenet5", "nin_cifar", "wrn28_10_cifar"} <= set(CIFAR_SIZED)


@pytest.mark.parametrize("name", CIFAR_SIZED, ids=CIFAR_SIZED)
def test_forward_pass_at_32x32(name: str) -> None:
    net = zoo.get(name)
    y = _forward(net)
    assert y.shape == (2, net.input.classes)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert not torch.equal(y[0], y[1]), "two different images should not give identical logits"


IMAGENET = [n for n in ZOO_NAMES if n not in CIFAR_SIZED]


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_networks_forward_at_their_resolution(name: str) -> None:
    net = zoo.get(name)
    model = build_network(net).eval()
    with torch.no_grad():
        y = model(torch.randn(1, *net.input.shape))
    assert y.shape == (1, 1000)


@pytest.mark.parametrize("name", IMAGENET_SMALL, ids=IMAGENET_SMALL)
def test_forward_pass_of_imagenet_networks_at_64x64(name: str) -> None:
    net = _at_resolution(zoo.get(name), 64)
    assert net.input.resolution == 64
    y = _forward(net)
    assert y.shape == (2, 1000)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ZOO_NAMES, ids=ZOO_NAMES)
def test_built_shapes_equal_the_genotype_shapes(name: str) -> None:
    net = zoo.get(name)
    expected = net.shapes()
    with torch.device("meta"):
        model = build_network(net).eval()
    x = torch.empty(1, *net.input.shape, device="meta")
    got = []
    with torch.no_grad():
        for i, block in enumerate(model.stem):
            x = block(x)
            got.append((f"stem[{i}]", tuple(x.shape[1:])))
        for s, stage in enumerate(model.stages):
            x = stage(x)
            got.append((f"stages[{s}]", tuple(last(x).shape[1:])))
        logits = model.head(last(x))
    assert got == [(path, tuple(shape)) for path, shape in expected]
    assert len(model.stem) == len(net.stem)
    assert len(model.stages) == len(net.stages)
    assert [len(stage) for stage in model.stages] == [len(s.expand()) for s in net.stages]
    assert logits.shape == (1, net.input.classes)


def test_complexity_leaves_the_default_device_alone() -> None:
    complexity(zoo.get("resnet20_cifar"))
    assert torch.empty(1).device.type == "cpu"


# ---- the builder registry ------------------------------------------------------------------


def test_every_block_kind_has_a_genotype_class_and_a_builder() -> None:
    assert set(_BUILDERS) == set(Kind)
    assert set(BLOCK_TYPES) == set(Kind)
    for kind, cls in BLOCK_TYPES.items():
        assert cls.model_fields["kind"].default == kind


def test_a_kind_cannot_be_registered_twice() -> None:
    with pytest.raises(NasxError, match="already registered"):
        register(Kind.CONV)(lambda block, cin: nn.Identity())
    assert _BUILDERS[Kind.CONV].__name__ != "<lambda>"


# ---- hand-worked parameter counts ------------------------------------------------------------


def test_tiny_conv_network_parameter_count() -> None:
    # conv 3->8 3x3 without bias + BN(8) + global pool + linear 8->10
    net = Network.from_dict({"input": {"resolution": 8}, "stages": [{"blocks": [{"kind": "conv", "out": 8}]}]})
    expected = 3 * 8 * 9 + 2 * 8 + (8 * 10 + 10)
    assert expected == 322
    assert count_params(build_network(net)) == expected
    assert complexity(net).params == expected


def test_lenet5_parameter_count_by_hand() -> None:
    # C1 1->6 5x5 + bias, C3 6->16 5x5 + bias (full connectivity), F5 400->120, F6 120->84, out 84->10
    expected = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert expected == 61_706
    assert count_params(build_network(zoo.get("lenet5"))) == expected


def _residual(cin: int, meta: bool = False, **fields) -> nn.Module:
    if meta:
        with torch.device("meta"):
            return build_block(ResidualBlock(**fields), cin)
    return build_block(ResidualBlock(**fields), cin)


def test_basic_block_with_identity_shortcut() -> None:
    block = _residual(16, out=16)
    assert _params(block) == 2 * (16 * 16 * 9 + 2 * 16)
    assert isinstance(block.shortcut, nn.Identity)


def test_torchvision_bottleneck_parameter_count() -> None:
    # torchvision resnet50 layer1[0]: 1x1 64->64, 3x3 64->64, 1x1 64->256, BN after each, 1x1 projection + BN
    block = _residual(64, variant="bottleneck", out=256)
    expected = (64 * 64 + 128) + (64 * 64 * 9 + 128) + (64 * 256 + 512) + (64 * 256 + 512)
    assert expected == 75_008
    assert _params(block) == expected


def test_option_a_shortcut_adds_no_parameters() -> None:
    body = (16 * 32 * 9 + 2 * 32) + (32 * 32 * 9 + 2 * 32)
    pad = _residual(16, out=32, stride=2, shortcut="pad")
    project = _residual(16, out=32, stride=2, shortcut="project")
    assert isinstance(pad.shortcut, PadShortcut)
    assert _params(pad.shortcut) == 0
    assert _params(pad) == body
    assert _params(project) == body + 16 * 32 + 2 * 32


def test_pad_shortcut_subsamples_and_zero_pads_channels() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    sub = x[:, :, ::2, ::2]
    nonzero = [c for c in range(32) if y[:, c].abs().sum() > 0]
    assert len(nonzero) == 16 and nonzero == list(range(nonzero[0], nonzero[0] + 16)), nonzero
    assert torch.equal(y[:, nonzero[0] : nonzero[0] + 16], sub)
    assert y.abs().sum() == sub.abs().sum()  # everything else is exactly zero
    # He et al.'s option A pads the new channels evenly: 8 zero channels on each side here
    assert nonzero[0] == 8
    assert torch.equal(PadShortcut(16, 16, 1)(x), x)


def test_residual_block_adds_the_shortcut_then_activates() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    for block in (_residual(16, out=32, stride=2, shortcut="pad"), _residual(16, out=16), _residual(16, out=32, stride=2)):
        block.eval()
        with torch.no_grad():
            expected = torch.relu(block.body(x) + block.shortcut(x))
            assert torch.allclose(block(x), expected)
            assert (block(x) >= 0).all()


def test_preact_block_structure_wrn() -> None:
    block = _residual(16, out=160, preact=True, dropout=0.3)
    # the projection of a pre-activation block is a bare 1x1 conv: no BN, no activation
    convs = [m for m in block.shortcut.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1) and convs[0].bias is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.shortcut.modules())
    assert not any(isinstance(m, nn.ReLU) for m in block.shortcut.modules())
    # BN-ReLU before each conv; the body ends in a conv (no BN after it) with dropout just before it
    body = list(block.body)
    assert isinstance(body[0], nn.Conv2d) and isinstance(body[-1], nn.Conv2d)
    assert isinstance(body[-2], nn.Dropout) and body[-2].p == 0.3
    assert [type(m) for m in block.pre] == [nn.BatchNorm2d, nn.ReLU]
    expected = 2 * 16 + 16 * 160 * 9 + 2 * 160 + 160 * 160 * 9 + 16 * 160
    assert _params(block) == expected


def test_preact_block_forward() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    project = _residual(16, out=32, stride=2, preact=True).eval()
    same = _residual(16, out=16, preact=True).eval()
    with torch.no_grad():
        pre = project.pre(x)
        # WRN / He et al. 2016b: the projection sees the pre-activated input, and nothing follows the addition
        assert torch.allclose(project(x), project.body(pre) + project.shortcut(pre))
        assert torch.allclose(same(x), same.body(same.pre(x)) + x)
        assert (same(x) < 0).any()


def test_wrn28_10_block_counts() -> None:
    model = build_network(zoo.get("wrn28_10_cifar"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.stem.modules())  # stem conv: no BN, no act
    projections = [b.shortcut for stage in model.stages for b in stage if not isinstance(b.shortcut, nn.Identity)]
    assert len(projections) == 3
    assert [p[0].out_channels for p in projections] == [160, 320, 640]
    assert isinstance(model.head.norm[0], nn.BatchNorm2d) and model.head.norm[0].num_features == 640


@pytest.mark.parametrize(
    ("channels", "se", "hidden"),
    [(64, 0.25, 16), (100, 0.25, 24), (48, 0.1, 8), (256, 0.0625, 16), (2048, 0.0625, 128)],
)
def test_squeeze_excite_parameters(channels: int, se: float, hidden: int) -> None:
    # hidden = channels * se rounded to the nearest multiple of 8 (at least 8), worked out by hand
    assert make_divisible(channels * se) == hidden
    plain = _residual(channels, meta=True, out=channels)
    with_se = _residual(channels, meta=True, out=channels, se=se)
    assert isinstance(with_se.se, SqueezeExcite)
    # 1x1 reduce (weights + bias) and 1x1 expand (weights + bias)
    assert _params(with_se) - _params(plain) == 2 * channels * hidden + hidden + channels


def test_seresnet50_minus_resnet50_is_the_se_layers() -> None:
    stages = [(256, 3), (512, 4), (1024, 6), (2048, 3)]  # (channels, depth); SE hidden = channels / 16
    se = sum(d * (2 * c * (c // 16) + c // 16 + c) for c, d in stages)
    assert se == 2_530_992
    assert complexity(zoo.get("seresnet50")).params - complexity(zoo.get("resnet50")).params == se


def test_resnext_groups_reduce_the_grouped_conv() -> None:
    dense = _residual(256, variant="bottleneck", out=256, width=2)
    grouped = _residual(256, variant="bottleneck", out=256, width=2, groups=32)
    grouped_convs = [m for m in grouped.modules() if isinstance(m, nn.Conv2d) and m.groups == 32]
    assert len(grouped_convs) == 1 and grouped_convs[0].weight.shape == (128, 4, 3, 3)
    assert _params(dense) - _params(grouped) == 128 * 128 * 9 - 128 * 4 * 9


def test_resnext50_and_wide_resnet50_2_differ_by_the_groups() -> None:
    # same width (inner width = out / 2); the 3x3 convs keep 1/32 of their weights in ResNeXt
    mids, depths = [128, 256, 512, 1024], [3, 4, 6, 3]
    saved = sum(d * 9 * m * m * 31 // 32 for m, d in zip(mids, depths, strict=True))
    assert saved == 43_854_336
    wide, resnext = complexity(zoo.get("wide_resnet50_2")), complexity(zoo.get("resnext50_32x4d"))
    assert wide.params - resnext.params == saved


def test_basic_grouped_block_builds_when_valid() -> None:
    net = Network.from_dict(
        {
            "stem": [{"kind": "conv", "out": 16}],
            "stages": [{"block": {"kind": "residual", "groups": 4}, "depth": 2, "channels": 32, "stride": 2}],
        }
    )
    y = _forward(net)
    assert y.shape == (2, 10)
    block = build_network(net).stages[0][0]
    assert _params(block) == (16 * 32 * 9 // 4 + 64) + (32 * 32 * 9 // 4 + 64) + (16 * 32 + 64)


def test_convolutions_are_he_initialised_and_bn_is_identity() -> None:
    torch.manual_seed(0)
    model = build_network(zoo.get("resnet20_cifar"))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() > 10_000]
    assert len(convs) >= 6
    for m in convs:
        fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        assert m.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)


def test_zero_init_residual_makes_every_basic_block_start_as_the_identity_branch() -> None:
    from nasx.models.network import zero_init_residual

    model = build_network(zoo.get("resnet20_cifar")).eval()
    assert zero_init_residual(model) == 9
    block = model.stages[0][1]  # an identity-shortcut block: output = relu(0 + x) = relu(x)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))
