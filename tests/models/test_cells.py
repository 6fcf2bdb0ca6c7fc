"""Micro cells (NASNet/DARTS), fractal blocks and stochastic depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nasx import zoo
from nasx.cli import app
from nasx.errors import GenotypeError
from nasx.models import build_network
from nasx.models.blocks import Fractal
from nasx.models.complexity import activation_memory, complexity
from nasx.models.layers import DropPath
from nasx.space.genotype import Cell, FractalBlock, Network

DARTS_V2_NORMAL = "sep3@0+sep3@1 | sep3@0+sep3@1 | sep3@1+skip@0 | skip@0+dil3@2 ; concat 2,3,4,5"

# name: (params, GMACs) of the DARTS evaluation network (C=36, 20 cells, aux head excluded) at 32x32
CELL_NETS = {
    "darts_v2_cifar": (3_349_342, 0.5284),
    "nasnet_a_cifar": (3_830_950, 0.6035),
    "amoebanet_a_cifar": (3_145_078, 0.4889),
}


def _net(normal: object, **stage: object) -> dict:
    return {
        "stem": [{"kind": "conv", "out": 12, "act": "none"}],
        "stages": [{"block": {"kind": "cell", "normal": normal}, "depth": 2, "channels": 4, **stage}],
        "input": {"resolution": 8},
    }


@pytest.mark.parametrize("name", sorted(CELL_NETS))
def test_cell_networks_match_the_darts_counts(name: str) -> None:
    params, gmacs = CELL_NETS[name]
    c = complexity(zoo.get(name))
    assert c.params == params
    assert abs(c.macs / 1e9 - gmacs) / gmacs < 0.005


def test_auxiliary_head_is_excluded_unless_asked_for() -> None:
    net = zoo.get("darts_v2_cifar")
    with_aux = complexity(net, include_aux=True)
    # DARTS AuxiliaryHeadCIFAR on 576 channels: 1x1 conv 128 + BN, 2x2 conv 768 + BN, linear 768 -> 10
    assert with_aux.params - complexity(net).params == 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10


def test_fractalnet_matches_the_construction_in_the_paper() -> None:
    # 5 blocks of 2**3 - 1 = 7 conv-BN-ReLU units (3 read the block input), linear on 512; = pytorchcv fractalnet_cifar10
    widths, cin, expected = [64, 128, 256, 512, 512], 3, 512 * 10 + 10
    for w in widths:
        expected += 3 * 9 * cin * w + 4 * 9 * w * w + 7 * 2 * w
        cin = w
    assert complexity(zoo.get("fractalnet20_cifar")).params == expected == 33_724_618


def test_compact_cell_string_round_trips() -> None:
    cell = Cell.model_validate(DARTS_V2_NORMAL)
    assert cell.to_string() == DARTS_V2_NORMAL
    assert [(e.op.value, e.input) for e in cell.nodes[3]] == [("skip_connect", 0), ("dil_conv_3x3", 2)]
    assert cell.concat == (2, 3, 4, 5)
    assert Cell.model_validate(cell.model_dump()) == cell


def test_cell_string_is_accepted_in_yaml_in_place_of_the_structured_form() -> None:
    structured = """
stem: [{kind: conv, out: 12, act: none}]
stages:
  - block:
      kind: cell
      normal:
        nodes:
          - [{op: sep_conv_3x3, input: 0}, {op: sep3, input: 1}]
          - [sep3@0, [sep_conv_3x3, 1]]
          - [{op: sep_conv_3x3, input: 1}, {op: skip_connect, input: 0}]
          - [{op: skip, input: 0}, {op: dil_conv_3x3, input: 2}]
        concat: [2, 3, 4, 5]
    depth: 2
    channels: 4
"""
    compact = f"""
stem: [{{kind: conv, out: 12, act: none}}]
stages:
  - {{block: {{kind: cell, normal: "{DARTS_V2_NORMAL}"}}, depth: 2, channels: 4}}
"""
    a, b = Network.from_yaml(structured), Network.from_yaml(compact)
    assert a == b and a.digest == b.digest
    assert Network.from_yaml(a.to_yaml()) == a
    assert f'normal="{DARTS_V2_NORMAL}"' in a.to_string()


@pytest.mark.parametrize(
    ("normal", "path", "words"),
    [
        ("sep3@0+sep3@1 | sep3@0+sep3@1 | sep3@1+skip@0 | skip@0+dil3@5 ; concat 2,3,4,5", "nodes[3][1].input", "got 5"),
        ("sep3@0+sep3@1 | sep3@0+sep3@1 | sep3@1+conv9@0 ; concat 2,3,4", "nodes[2][1].op", "unknown cell op 'conv9'"),
        ("sep3@0+sep3@1 | sep3@0+sep3@1 ; concat", "concat", "at least one"),
        ("sep3@0+sep3@1 | sep3@0+sep3@1 ; concat 2,4", "concat[1]", "got 4"),
        ("sep3@0+sep3@1 | sep3@0+sep3@1 ; concat 1,2", "concat[0]", "got 1"),
    ],
)
def test_invalid_cells_are_rejected_with_the_field_path(normal: str, path: str, words: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(_net(normal))
    assert f"stages[0].block.normal.{path}: " in str(info.value)
    assert words in str(info.value)


def test_reduction_cell_rules() -> None:
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.block\.reduce: .*needs a 'reduce' cell"):
        Network.from_dict(_net(DARTS_V2_NORMAL, stride=2))
    odd = {**_net(DARTS_V2_NORMAL, stride=2), "input": {"resolution": 7}}
    odd["stages"][0]["block"]["reduce"] = DARTS_V2_NORMAL
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.block\.stride: .*even input size"):
        Network.from_dict(odd)


def test_aux_logits_only_in_training() -> None:
    torch.manual_seed(0)
    net = build_network(zoo.get("darts_v2_cifar"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, aux = net.train()(x)
        assert logits.shape == aux.shape == (2, 10)
        assert isinstance(net.eval()(x), torch.Tensor)


def _pair(p: float, kind: str) -> tuple[nn.Module, nn.Module]:
    """The same small network with and without drop-path, sharing weights."""
    if kind == "cell":
        data = _net(DARTS_V2_NORMAL)
        data["stages"][0]["block"]["drop_path"] = p
    else:
        data = {"stem": [{"kind": "conv", "out": 8}], "input": {"resolution": 8}}
        data["stages"] = [{"block": {"kind": "residual", "drop_path": p}, "depth": 2, "channels": 8}]
    plain = dict(data, stages=[dict(data["stages"][0], block=dict(data["stages"][0]["block"], drop_path=0.0))])
    torch.manual_seed(0)
    a = build_network(Network.from_dict(data))
    b = build_network(Network.from_dict(plain))
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("kind", ["residual", "cell"])
def test_drop_path_is_identity_in_eval_and_active_in_training(kind: str) -> None:
    dropping, plain = _pair(0.5, kind)
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(dropping.eval()(x), plain.eval()(x))
        torch.manual_seed(1)
        assert not torch.allclose(dropping.train()(x), plain.train()(x))


def test_drop_path_rate_rises_linearly_over_the_blocks() -> None:
    net = Network.from_dict(
        {
            "stem": [{"kind": "conv", "out": 8}],
            "input": {"resolution": 8},
            "stages": [
                {"block": {"kind": "residual", "drop_path": 0.5}, "depth": 3, "channels": 8},
                {"block": {"kind": "residual", "drop_path": 0.5}, "depth": 2, "channels": 16, "stride": 2},
            ],
        }
    )
    rates = [m.p for m in build_network(net).modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx([0.5 * position / 5 for position in range(1, 6)])


def test_drop_path_layer_rescales_survivors() -> None:
    torch.manual_seed(0)
    layer = DropPath(0.25).train()
    y = layer(torch.ones(4000, 1, 1, 1))
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))
    assert abs((y == 0).float().mean().item() - 0.25) < 0.03


def test_fractal_join_is_a_mean() -> None:
    # columns=2: out = mean(f(f(x)) deep column, g(x) shallow column), each unit conv1x1-BN-ReLU
    block = FractalBlock(out=1, columns=2, kernel=1)
    module = Fractal(block, 1).eval()
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3  # 2**C - 1 units
    deep1, deep2, shallow = convs  # level 1: deep column; level 2: deep column, then shallow column
    for conv, w in zip((deep1, deep2, shallow), (2.0, 3.0, 5.0), strict=True):
        nn.init.constant_(conv.weight, w)
    bn = 1 / (1 + 1e-5) ** 0.5  # eval BN with fresh statistics
    x = torch.rand(1, 1, 3, 3) + 0.1
    with torch.no_grad():
        expected = ((3 * bn) * (2 * bn) * x + 5 * bn * x) / 2
        assert torch.allclose(module(x), expected, atol=1e-6)


def test_fractal_structure_deepest_path() -> None:
    module = Fractal(FractalBlock(out=4, columns=3), 2)
    assert [len(level) for level in module.levels] == [1, 2, 1, 3]  # 4 levels, 7 units, last join has 3 inputs
    torch.manual_seed(0)
    module.train()
    module.local_drop, module.global_drop = 0.99, 0.0  # nearly every join input dropped: one must survive
    y = module(torch.randn(16, 2, 4, 4))
    assert y.shape == (16, 4, 4, 4) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", [*sorted(CELL_NETS), "fractalnet20_cifar"])
def test_training_mode_traces_on_meta(name: str) -> None:
    assert activation_memory(zoo.get(name), batch=2) > 0


def test_describe_shows_the_cells() -> None:
    result = CliRunner().invoke(app, ["describe", "darts_v2_cifar"])
    assert result.exit_code == 0, result.output
    assert f"normal cell: {DARTS_V2_NORMAL}" in result.output
    assert "node 5 = skip_connect(in0) + dil_conv_3x3(node 2)" in result.output
    assert "node 2 = max_pool_3x3(in0, stride 2) + max_pool_3x3(in1, stride 2)" in result.output


def test_family_labels() -> None:
    assert zoo.family(zoo.get("darts_v2_cifar")) == "cell"
    assert zoo.family(zoo.get("fractalnet20_cifar")) == "fractal"
