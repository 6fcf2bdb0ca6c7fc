"""The CIFAR classics: the kuangliu/pytorch-cifar entries, the genotype fields their quirks need, and the
classics-cifar space that holds every CIFAR-scale classic as a point."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from helpers import ROOT, cached_complexity, tiny_data
from typer.testing import CliRunner

from nasx import zoo
from nasx.cli import app
from nasx.models.blocks import build_block
from nasx.models.complexity import count_params
from nasx.models.network import build_network
from nasx.report import collect
from nasx.report.figures import front_figure
from nasx.search import StudyConfig
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
runner = CliRunner()


@pytest.mark.parametrize("name", sorted(KUANGLIU))
def test_kuangliu_classics_match_their_reference_params_exactly_and_macs_within_half_a_percent(name: str) -> None:
    params, macs = KUANGLIU[name]
    c = cached_complexity(zoo.get(name))
    assert c.params == params
    assert abs(c.macs - macs) <= 0.005 * macs
    assert "kuangliu/pytorch-cifar" in zoo.get(name).reference


def test_the_classics_space_contains_every_cifar_scale_classic() -> None:
    """Every 3x32x32 zoo network that is not a micro-cell network (those are nasnet-cifar's) is a member."""
    cifar = {n for n in zoo.names() if zoo.get(n).input.shape == (3, 32, 32) and "cell" not in zoo.family(zoo.get(n)).split("/")}
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
        (
            InceptionBlock.model_validate(
                {"branches": [[{"op": "conv", "out": 16, "kernel": 1}]] * 2, "se": 0.25, "se_rule": "floor"}
            ),
            8,
            32,
        ),
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
            if p.name.startswith(f"{parent}[{value}]"):
                continue
            # or a count: item j of a list is drawn when the earlier item i (same list, same template) is there
            stem, _, i = parent.rpartition(".")
            j = re.match(r"\d+", p.name[len(stem) + 1 :]) if p.name.startswith(stem + ".") else None
            assert i.isdigit() and j is not None and int(j.group()) > int(i), (p.name, parent, value)
    names = {p.name for p in space.params()}
    for se in (
        "stages.0[repeat].block[basic].se",
        "stages.1[stage][inception].blocks.0.se",
        "stages.3[stage][repeat].block[mbconv].se",
    ):
        assert se in names
    assert "stages.0[repeat].block[bottleneck].drop_path" in names and "stages.0[fractal].blocks.0.local_drop" in names


def test_nasx_space_prints_size_and_parameter_count() -> None:
    result = CliRunner().invoke(app, ["space", SPACE])
    assert result.exit_code == 0, result.output
    space = load_space(SPACE)
    assert re.search(rf"{SPACE}: \S+ points, {len(space.params())} parameters", result.output)
    assert str(space.size()) in result.output and "googlenet_cifar" in result.output
    listing = CliRunner().invoke(app, ["space"])
    assert listing.exit_code == 0 and SPACE in listing.output and "macro-cifar" in listing.output


# ---- the hand-designed front: studies/cifar10-classics.yaml at micro scale -------------------------------------


def _micro(study: dict[str, Any], data: Path) -> dict[str, Any]:
    """``study`` on the synthetic CIFAR batches: 1 epoch on 8 images downsampled to 8 px, evaluated on 8, on the CPU."""
    return {
        **study,
        "data": {"source": str(data), "val_size": 8},
        "fidelity": {"epochs": 1, "fraction": 0.05, "resolution": 8},
        "recipe": {"batch_size": 8, "eval_batch_size": 8, "precision": "fp32", "channels_last": False},
        "device": "cpu",
    }


def _front_of(rows: list[dict[str, Any]], cost: str) -> list[float]:
    """The non-dominated (accuracy up, cost down) costs, found by brute force."""
    points = [(r["val_acc"], r[cost]) for r in rows]
    keep = [c for a, c in points if not any(a2 >= a and c2 <= c and (a2 > a or c2 < c) for a2, c2 in points)]
    return sorted(set(float(c) for c in keep))


@pytest.mark.slow
def test_the_classics_study_at_micro_scale_draws_the_hand_designed_front_and_overlays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # reports go to ./reports/
    runs, data = str(tmp_path / "runs"), tiny_data(tmp_path)
    shipped = yaml.safe_load((ROOT / "studies" / "cifar10-classics.yaml").read_text())
    assert shipped["budget"] == {"trials": 0} and set(shipped["baselines"]) == set(load_space(SPACE).members)
    classics = tmp_path / "cifar10-classics.yaml"
    classics.write_text(yaml.safe_dump(_micro(shipped, data)))
    result = runner.invoke(app, ["search", str(classics), "--dir", runs])
    assert result.exit_code == 0, result.output
    doc = json.loads(runner.invoke(app, ["status", str(classics), "--dir", runs, "--json"]).stdout)
    assert doc["progress"]["trials"] == 0 and doc["progress"]["baselines"] >= 14
    done = [t for t in doc["trials"] if t["role"] == "baseline" and t["state"] == "complete"]
    # FractalNet flattens its 1x1x512 map: at 8 px its fifth pool has nothing left, so it alone cannot run here
    assert {t["name"] for t in done} == set(shipped["baselines"]) - {"fractalnet20_cifar"}, doc["trials"]

    source = collect.from_study(StudyConfig.load(classics), Path(runs))
    for cost in ("macs", "params"):
        fig = front_figure([source], cost)
        line = next(t for t in fig.data if t.name == "hand-designed front")
        assert sorted(float(x) for x in line.x) == _front_of(done, cost)
    html = (tmp_path / "reports" / "cifar10-classics.html").read_text()
    assert "Hand-designed front (cifar10-classics" in html

    # A search study overlays it: its report draws the classics' front as a line of its own.
    search = tmp_path / "search.yaml"
    search.write_text(
        yaml.safe_dump(
            _micro(
                {
                    "name": "search",
                    "space": "macro-cifar",
                    "objectives": ["val_acc", "macs"],
                    "constraints": {"max_macs": 20_000_000},
                    "sampler": {"kind": "random", "seed": 1},
                    "budget": {"trials": 1},
                    "overlay": str(classics),
                },
                data,
            )
        )
    )
    result = runner.invoke(app, ["search", str(search), "--dir", runs])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "reports" / "search.html").read_text()
    assert "hand-designed front (cifar10-classics" in page and "overlaid from cifar10-classics" in page
    overlay = collect.overlay(str(classics), Path(runs))
    fig = front_figure([collect.from_study(StudyConfig.load(search), Path(runs))], "macs", [overlay])
    dashed = next(t for t in fig.data if t.name.startswith("hand-designed front (cifar10-classics"))
    assert sorted(float(x) for x in dashed.x) == _front_of(done, "macs")
    # asked for on the command line, an overlay that is not a finished study is an error, not a silent omission
    bad = runner.invoke(app, ["report", str(search), "--dir", runs, "--overlay", str(search)])
    assert bad.exit_code == 2 and "no finished baseline" in bad.stderr


def test_consecutive_optional_items_of_one_template_are_a_count() -> None:
    """``[X, more, more]`` with ``more: {choice: [null, X]}`` is one to three X's, each length spelled once."""
    from nasx.space.design import DesignSpace

    text = """
name: count
template:
  stages:
    - {block: {kind: conv}, depth: 1, channels: 16}
    - &more {choice: [null, {block: {kind: conv, kernel: {choice: [1, 3]}}, depth: 1, channels: 16}], labels: [none, stage]}
    - *more
"""
    space = DesignSpace.from_yaml(text)
    assert space.size().points == 1 + 2 + 2 * 2  # zero, one or two more stages, each of two kernels
    seen: dict[str, dict[str, Any]] = {}
    for k1 in ("none", "stage"):
        for k2 in ("none", "stage"):
            params: dict[str, Any] = {"stages.1": k1}
            if k1 == "stage":
                params["stages.1[stage].block.kernel"] = 3
                params["stages.2"] = k2
                if k2 == "stage":
                    params["stages.2[stage].block.kernel"] = 1
            net = space.select(params)
            assert space.encode(net) == params  # one spelling per network
            seen[net.digest] = params
    assert len(seen) == 3
    cond = {p.name: p.condition for p in space.params()}
    assert cond["stages.2"] == (("stages.1", "stage"),)
    with pytest.raises(Exception, match="stages.1"):  # a second stage needs the first: asked for, it is not drawn
        space.select({"stages.2": "stage", "stages.2[stage].block.kernel": 1})
