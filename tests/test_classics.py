"""The CIFAR classics: the kuangliu/pytorch-cifar entries, the genotype fields their quirks need, and the
classics-cifar space that holds every CIFAR-scale classic as a point."""

from __future__ import annotations

import re
from typing import Any

import optuna
import pytest
import torch
from conftest import cached_complexity
from typer.testing import CliRunner

from nasx import zoo
from nasx.cli import app
from nasx.models.blocks import build_block
from nasx.models.complexity import count_params
from nasx.models.network import build_network
from nasx.space import Network
from nasx.space.design import load_space
from nasx.space.genotype import ConvBlock, InceptionBlock, MBConvBlock, ResidualBlock, SeparableBlock, se_hidden
from nasx.space.ops import SeRule

# (params, MACs) of the reference models of kuangliu/pytorch-cifar (models/densenet.py DenseNet121,
# resnext.py ResNeXt29_2x64d, senet.py SENet18, mobilenetv2.py MobileNetV2, regnet.py RegNetX_200MF),
# 10 classes at 32 px. Params as the issue and the repository state them; MACs measured on the reference
# code itself (built in plain torch, counted with torch's FlopCounterMode / 2 at batch 1), not with nasx.
KUANGLIU = {
    "densenet121_cifar": (6_956_298, 888_350_720),
    "resnext29_2x64d_cifar": (9_128_778, 1_409_492_992),
    "senet18_cifar": (11_260_354, 555_509_760),
    "mobilenet_v2_cifar": (2_296_922, 91_154_944),
    "regnetx_200mf_cifar": (2_321_946, 223_317_600),
}
SPACE = "classics-cifar"


@pytest.mark.parametrize("name", sorted(KUANGLIU))
def test_kuangliu_classics_match_their_reference_params_exactly_and_macs_within_half_a_percent(name: str) -> None:
    params, macs = KUANGLIU[name]
    c = cached_complexity(zoo.get(name))
    assert c.params == params
    assert abs(c.macs - macs) <= 0.005 * macs
    assert "kuangliu/pytorch-cifar" in zoo.get(name).reference


def test_the_classics_space_contains_every_cifar_scale_classic() -> None:
    """Every 3x32x32 zoo network that is not a micro-cell network (those are nasnet-cifar's) is a member."""
    cifar = {
        n
        for n in zoo.names()
        if zoo.get(n).input.shape == (3, 32, 32) and "cell" not in zoo.family(zoo.get(n)).split("/")
    }
    assert len(cifar) == 14
    assert cifar == set(load_space(SPACE).members)


def test_se_rule_states_the_hidden_width() -> None:
    assert [se_hidden(c, 0.0625, SeRule.FLOOR) for c in (64, 128, 24)] == [4, 8, 1]
    assert [se_hidden(c, 0.0625, SeRule.ROUND8) for c in (64, 128, 24)] == [8, 8, 8]
    assert se_hidden(200, 0.25, SeRule.ROUND8) == 48 and se_hidden(200, 0.25, SeRule.FLOOR) == 50
    # SENet-18 with timm's rounding is another network: its 64-wide SE layers get 8 hidden channels, not 4.
    data = zoo.get("senet18_cifar").to_dict()
    for stage in data["stages"]:
        stage["block"].pop("se_rule")
    rounded = Network.from_dict(data)
    assert rounded != zoo.get("senet18_cifar")
    extra = 2 * (2 * 64 * 4 + 4)  # two 64-wide blocks, each with 4 more hidden units (weights in and out, biases)
    assert count_params(build_network(rounded)) - count_params(build_network(zoo.get("senet18_cifar"))) == extra


def test_se_rule_without_se_is_one_spelling() -> None:
    assert ResidualBlock(se_rule=SeRule.FLOOR) == ResidualBlock()
    assert "se_rule" not in MBConvBlock.model_validate({"se_rule": "floor"}).model_dump(exclude_defaults=True)


@pytest.mark.parametrize(
    ("block", "cin", "channels"),
    [
        (ConvBlock(out=32, se=0.25, se_rule=SeRule.FLOOR), 16, 32),
        (SeparableBlock(out=32, se=0.25, se_rule=SeRule.FLOOR), 16, 32),
        (InceptionBlock.model_validate({"branches": [[{"op": "conv", "out": 16, "kernel": 1}]] * 2, "se": 0.25, "se_rule": "floor"}), 8, 32),
        (ResidualBlock(out=32, se=0.25, se_rule=SeRule.FLOOR), 32, 32),
    ],
)
def test_squeeze_excite_is_a_field_of_every_family_that_takes_it(block: Any, cin: int, channels: int) -> None:
    without = block.model_copy(update={"se": 0.0})
    hidden = channels // 4
    gained = count_params(build_block(block, cin)) - count_params(build_block(without, cin))
    assert gained == 2 * channels * hidden + hidden + channels  # the two 1x1 convs with biases
    y = build_block(block, cin)(torch.randn(2, cin, 8, 8))
    assert y.shape == (2, channels, 8, 8)


def test_mbconv_keep_expand_and_project_shortcut() -> None:
    plain = MBConvBlock(out=16, expand=1)
    kept = MBConvBlock(out=16, expand=1, keep_expand=True, project_shortcut=True)
    # keep_expand: the 1x1 expansion conv of an expand-1 block (32 x 32 + BN); project: a 1x1 conv + BN 32 -> 16
    assert count_params(build_block(kept, 32)) - count_params(build_block(plain, 32)) == (32 * 32 + 64) + (32 * 16 + 32)
    x = torch.randn(2, 32, 8, 8)
    module = build_block(kept, 32).eval()
    body_only = module.body(x)
    assert not torch.allclose(module(x), body_only)  # the projected input is added
    assert MBConvBlock(expand=6, keep_expand=True) == MBConvBlock(expand=6)  # expand != 1 has the conv anyway
    assert not MBConvBlock(out=16, stride=2, project_shortcut=True).projected(32)  # strided blocks are never residual
    net = zoo.get("mobilenet_v2_cifar")
    assert "keep_expand=true" in net.to_string() and "project_shortcut=true" in net.to_string()
    assert Network.from_string(net.to_string()) == net


def _googlenet_params() -> tuple[Any, dict[str, Any]]:
    space = load_space(SPACE)
    return space, space.encode(zoo.get("googlenet_cifar"))


def test_inception_branches_and_steps_are_searched() -> None:
    space, params = _googlenet_params()
    first = "stages.0[inception].blocks.0"
    edited = {k: v for k, v in params.items() if not k.startswith(f"{first}.branches.3[")}
    edited[f"{first}.branches.3"] = "none"  # three branches instead of four
    edited[f"{first}.branches.1[branch][conv2].1.kernel"] = "k1x7"  # a factorized step
    edited[f"{first}.branches.2[branch][conv3].0.out"] = 24
    edited[f"{first}.se"] = 0.25
    net = space.sample(optuna.trial.FixedTrial(edited))
    module = net.stages[0].blocks[0]
    assert isinstance(module, InceptionBlock) and len(module.branches) == 3
    assert module.branches[1][1].kernel == (1, 7) and module.factorized
    assert module.branches[2][0].out == 24 and module.se == 0.25
    assert net.stages[0].blocks[1] == zoo.get("googlenet_cifar").stages[0].blocks[1]  # the rest is untouched
    build_network(net)(torch.randn(1, 3, 32, 32))  # and it builds and runs


def test_conditional_parameter_names_say_which_choice_they_belong_to() -> None:
    space = load_space(SPACE)
    for p in space.params():
        for parent, value in p.condition:
            assert p.name.startswith(f"{parent}[{value}]"), (p.name, parent, value)
    names = {p.name for p in space.params()}
    assert "stages.0[repeat].block[basic].se" in names and "stages.1[inception].blocks.0.se" in names
    assert "stages.3[repeat].block[mbconv].se" in names and "stages.0[repeat].block[bottleneck].drop_path" in names


def test_nasx_space_prints_size_and_parameter_count() -> None:
    result = CliRunner().invoke(app, ["space", SPACE])
    assert result.exit_code == 0, result.output
    space = load_space(SPACE)
    assert re.search(rf"{SPACE}: \S+ points, {len(space.params())} parameters", result.output)
    assert str(space.size()) in result.output and "googlenet_cifar" in result.output
    listing = CliRunner().invoke(app, ["space"])
    assert listing.exit_code == 0 and SPACE in listing.output and "macro-cifar" in listing.output
