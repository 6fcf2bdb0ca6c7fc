"""The inception family: inception and inception_residual blocks, and the zoo networks made of them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import yaml

from nasx import zoo
from nasx.errors import GenotypeError
from nasx.models import build_block, build_network
from nasx.models.complexity import complexity
from nasx.space.genotype import InceptionBlock, InceptionResidualBlock, Network, Shape
from nasx.space.ops import Act

# External figures: the reference implementations' parameter counts and MACs (batch 1, stated input),
# as printed by tools/reference_models.py for torchvision / timm, and for the CIFAR GoogLeNet the
# kuangliu/pytorch-cifar model (its count is quoted in that repository; MACs measured on its code).
REFERENCE = {
    "googlenet": (224, 6_624_904, 1.498e9),
    "inception_v3": (299, 23_834_568, 5.713e9),
    "inception_v4": (299, 42_679_816, 12.254e9),
    "inception_resnet_v2": (299, 55_843_464, 13.156e9),
    "googlenet_cifar": (32, 6_166_250, 1.5218e9),
}
NAMES = sorted(REFERENCE)


def conv(out: int, kernel: Any = 1, **kw: Any) -> dict[str, Any]:
    return {"op": "conv", "out": out, "kernel": kernel, **kw}


def raw(name: str) -> dict[str, Any]:
    return yaml.safe_load(zoo.path(name).read_text())


# ---- the zoo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_zoo_matches_reference(name: str) -> None:
    res, params, macs = REFERENCE[name]
    net = zoo.get(name)
    c = complexity(net)
    assert net.input.resolution == res
    assert c.params == params
    assert abs(c.macs / macs - 1) < 0.005


@pytest.mark.parametrize("name", NAMES)
def test_forward_pass_and_shapes_match_inference(name: str) -> None:
    """Every block's output shape is the inferred one (on the meta device: the real CPU passes are test_models.py's)."""
    net = zoo.get(name)
    with torch.device("meta"):
        model = build_network(net).eval()
    modules = [*model.stem, *(m for stage in model.stages for m in stage)]
    blocks = net.blocks()
    assert len(modules) == len(blocks)
    seen: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, y: seen.append(tuple(y.shape[1:]))) for m in modules]
    with torch.no_grad():
        y = model(torch.empty(1, *net.input.shape, device="meta"))
    for h in hooks:
        h.remove()
    assert y.shape == (1, net.input.classes)
    shape, expected = net.input.shape, []
    for _, block in blocks:
        shape = block.out_shape(shape)
        expected.append(tuple(shape))
    assert seen == expected


def test_googlenet_paper_variant_is_one_number() -> None:
    """torchvision's 3x3 in the '5x5' branch; kernel 5 gives the paper's module, (25 - 9) * cin * cout more weights each."""
    data = raw("googlenet")
    extra = 0
    for stage in data["stages"]:
        for block in stage["blocks"]:
            if block["kind"] == "inception":
                reduce, five = block["branches"][2]
                five["kernel"] = 5
                extra += (25 - 9) * reduce["out"] * five["out"]
    paper = Network.from_dict(data)
    assert paper != zoo.get("googlenet")
    assert complexity(paper).params == REFERENCE["googlenet"][1] + extra


def test_inception_resnet_v2_last_block() -> None:
    last = zoo.get("inception_resnet_v2").stages[6].blocks[0]  # type: ignore[index]
    assert isinstance(last, InceptionResidualBlock)
    assert (last.scale, last.act.value) == (1.0, "none")
    repeated = zoo.get("inception_resnet_v2").stages[5]
    assert repeated.depth == 9 and repeated.block.scale == 0.2  # type: ignore[union-attr]
    assert last.branches == repeated.block.branches  # type: ignore[union-attr]


# ---- the blocks ------------------------------------------------------------------------------


E_MODULE = {
    "kind": "inception",
    "branches": [
        [conv(8)],
        [conv(6), {"fork": [[conv(5, [1, 3])], [conv(4, [3, 1])]]}],
        [{"op": "avg_pool", "kernel": 3}, conv(2)],
    ],
}


def test_fork_and_factorized_kernels_build_the_right_shapes() -> None:
    block = InceptionBlock.model_validate(E_MODULE)
    assert block.width(16) == 8 + (5 + 4) + 2
    assert block.out_shape(Shape(16, 9, 11)) == Shape(19, 9, 11)
    module = build_block(block, 16)
    assert module(torch.randn(2, 16, 9, 11)).shape == (2, 19, 9, 11)
    fork = module.branches[1][1]
    one_by_three, three_by_one = (branch[0].conv for branch in fork.branches)
    assert one_by_three.weight.shape == (5, 6, 1, 3) and one_by_three.padding == (0, 1)
    assert three_by_one.weight.shape == (4, 6, 3, 1) and three_by_one.padding == (1, 0)


def test_factorized_strided_branch_and_explicit_padding() -> None:
    steps = [conv(6), conv(6, [1, 7]), conv(7, [7, 1], stride=2, padding=[3, 0])]
    block = InceptionBlock.model_validate({"branches": [steps, [{"op": "max_pool", "kernel": 3, "stride": 2, "padding": 1}]]})
    assert block.reduction == 2 and block.width(None) is None and block.width(10) == 17
    assert block.factorized
    assert block.out_shape(Shape(10, 15, 12)) == Shape(17, 8, 6)
    module = build_block(block, 10)
    assert module(torch.randn(1, 10, 15, 12)).shape == (1, 17, 8, 6)
    seven_by_one = module.branches[0][2].conv
    assert seven_by_one.weight.shape == (7, 6, 7, 1) and seven_by_one.stride == (2, 2) and seven_by_one.padding == (3, 0)


def test_inception_residual_adds_the_scaled_projection() -> None:
    block = InceptionResidualBlock.model_validate(
        {"kind": "inception_residual", "scale": 0.3, "act": "none", "branches": [[conv(4)], [conv(3), conv(5, [1, 3])]]}
    )
    module = build_block(block, 6).eval()
    assert module.project.weight.shape == (6, 9, 1, 1) and module.project.bias is not None
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        y = module(x)
        inner = module.project(module.branches(x))
    torch.testing.assert_close(y, x + 0.3 * inner)
    assert (y < 0).any()  # act none: no ReLU after the addition
    relu = build_block(block.model_copy(update={"act": Act.RELU}), 6).eval()
    relu.load_state_dict(module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(relu(x), torch.relu(y))


def test_implied_out_and_stride_are_canonical() -> None:
    plain = InceptionBlock.model_validate(E_MODULE)
    spelled = InceptionBlock.model_validate({**E_MODULE, "out": 8 + 9 + 2, "stride": 1})
    assert plain == spelled and spelled.out is None and spelled.stride is None
    assert InceptionBlock.model_validate({**E_MODULE, "branches": [[conv(4, 3, padding=1)]]}) == InceptionBlock.model_validate(
        {**E_MODULE, "branches": [[conv(4, [3, 3], padding=[1, 1])]]}
    )


def test_repeated_stage_uses_the_derived_width() -> None:
    data = raw("inception_v4")
    assert data["stages"][1]["channels"] == 384
    data["stages"][1]["channels"] = 400
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    assert info.value.problems == [("stages[1].block.out", "the branches concatenate to 384 channels, got 400")]


def _v3_with(path: tuple[Any, ...], **change: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw("inception_v3"))
    node: Any = data
    for key in path:
        node = node[key]
    for k, v in change.items():
        if v is None:
            node.pop(k)
        else:
            node[k] = v
    return data


A = ("stages", 0, "blocks", 0, "branches")  # Mixed_5b's branches


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (_v3_with((*A, 1, 1), kernel=4), "stages[0].blocks[0].branches[1][1].kernel", "is even"),
        (_v3_with((*A, 3, 0), op="maxpool"), "stages[0].blocks[0].branches[3][0]", "a step needs 'op'"),
        (_v3_with((*A, 0, 0), out=None), "stages[0].blocks[0].branches[0][0].out", "required field is missing"),
        (_v3_with((*A, 0, 0), strides=2), "stages[0].blocks[0].branches[0][0].strides", "unknown field"),
        (_v3_with((*A, 0, 0), stride=2), "stages[0].blocks[0].branches[1]", "strides by 1, but branches[0] by 2"),
        (_v3_with((*A, 3, 0), padding=2), "stages[0].blocks[0].branches[3][0].padding", "at most half the kernel"),
        (_v3_with(("stages", 0, "blocks", 0), out=250), "stages[0].blocks[0].out", "concatenate to 256 channels, got 250"),
        (
            _v3_with(("stages", 1, "blocks", 0, "branches", 0, 0), padding=1),
            "stages[1].blocks[0].branches[1]",
            "gives 17x17 but branches[0] gives 18x18",
        ),
        (
            _v3_with(("stages", 2, "blocks", 1, "branches", 2, 2, "fork", 1, 0), kernel=[2, 1]),
            "stages[2].blocks[1].branches[2][2].fork[1][0].kernel",
            "is even",
        ),
    ],
)
def test_malformed_inception_is_rejected_with_its_path(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    problems = dict(info.value.problems)
    assert path in problems, info.value.problems
    assert message in problems[path]


def test_inception_residual_must_keep_the_shape() -> None:
    data = raw("inception_resnet_v2")
    data["stages"][1]["block"]["branches"][1][1]["padding"] = 0  # a valid 3x3: 35x35 -> 33x33
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    assert info.value.problems[0][0] == "stages[1].block.branches[1]"
    data = raw("inception_resnet_v2")
    data["stages"][6]["blocks"][0]["stride"] = 2
    with pytest.raises(GenotypeError) as info:
        Network.from_dict(data)
    assert info.value.problems == [("stages[6].blocks[0].stride", "a residual block keeps its spatial size (stride 1), got 2")]


# ---- describe ----------------------------------------------------------------------------------


def test_describe_shows_each_module_on_one_line() -> None:
    rows = {where: (shape, text) for where, shape, text in zoo.module_lines(zoo.get("inception_v3"))}
    assert len(rows) == 11
    assert rows["stage1[0]"] == (
        Shape(256, 35, 35),
        "inception  1x1 64 | 1x1 48 > 5x5 64 | 1x1 64 > 3x3 96 > 3x3 96 | avg 3x3 > 1x1 32",
    )
    assert rows["stage2[0]"][1] == "inception  3x3/2 384 | 1x1 64 > 3x3 96 > 3x3/2 96 | max 3x3/2"
    assert rows["stage3[2]"][1] == (
        "inception  1x1 320 | 1x1 384 > [1x3 384, 3x1 384] | 1x1 448 > 3x3 384 > [1x3 384, 3x1 384] | avg 3x3 > 1x1 192"
    )
    irv2 = zoo.module_lines(zoo.get("inception_resnet_v2"))
    assert irv2[1][0] == "stage2 x10" and irv2[1][2].endswith("; 1x1 proj, x0.17 + input, relu")
    assert irv2[-1][2].endswith("; 1x1 proj, x1 + input")


def test_describe_cli_prints_module_lines() -> None:
    from typer.testing import CliRunner

    from nasx.cli import app

    result = CliRunner().invoke(app, ["describe", "googlenet", "--batch", "1"])
    assert result.exit_code == 0, result.output
    assert "stage1[0]   256x28x28    inception  1x1 64 | 1x1 96 > 3x3 128 | 1x1 16 > 3x3 32 | max 3x3 > 1x1 32" in result.output
    assert zoo.family(zoo.get("googlenet")) == "inception"
    assert zoo.family(zoo.get("inception_v4")) == "inception/inception-factorized"
