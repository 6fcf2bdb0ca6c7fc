"""Design spaces: templates with holes, sampled by optuna, encoded back, sized, and rejected when malformed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from helpers import cached_complexity

from nasx import zoo
from nasx.errors import InfeasibleSample, NotInSpaceError, SpaceError
from nasx.space import Network
from nasx.space.design import FLOAT_POINTS, DesignSpace, load_space, space_names, spaces_dir

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACES = space_names()
MEMBERS = [(space, member) for space in SPACES for member in load_space(space).members]


def _active(space: DesignSpace, params: dict[str, Any]) -> set[str]:
    """The parameter names that ``params()`` says are drawn for a point with these values."""
    return {p.name for p in space.params() if p.active(params)}


DARTS_NORMAL = "sep3@0+sep3@1 | sep3@0+sep3@1 | sep3@1+skip@0 | skip@0+dil3@2"


def _modified(name: str, edit: Any) -> Network:
    data = zoo.get(name).to_dict()
    edit(data)
    return Network.from_dict(data)


# ---- the shipped spaces ------------------------------------------------------------------------


def test_the_two_spaces_ship_with_the_required_members() -> None:
    assert {"macro-cifar", "nasnet-cifar"} <= set(SPACES)
    assert {"resnet20_cifar", "resnet56_cifar", "resnet110_cifar", "resnet18_cifar"} <= set(load_space("macro-cifar").members)
    assert {"darts_v2_cifar", "nasnet_a_cifar", "amoebanet_a_cifar"} <= set(load_space("nasnet-cifar").members)
    for name in SPACES:
        space = load_space(name)
        assert space.name == name  # a file is named after its space
        assert set(space.members) <= set(zoo.names())


@pytest.mark.parametrize(("space_name", "member"), MEMBERS)
def test_contained_zoo_networks_round_trip_through_encode_and_fixed_trial(space_name: str, member: str) -> None:
    space, net = load_space(space_name), zoo.get(member)
    params = space.encode(net)
    again = space.sample(optuna.trial.FixedTrial(params))
    assert again == net and again.digest == net.digest
    assert space.select(params) == net and space.contains(net)
    assert set(params) == _active(space, params)  # exactly the parameters its branches draw


@pytest.mark.parametrize("space_name", SPACES)
def test_contains_agrees_with_the_members_list_over_the_whole_zoo(space_name: str) -> None:
    space = load_space(space_name)
    assert {n for n in zoo.names() if space.contains(zoo.get(n))} == set(space.members)


def test_resnet_depths_and_shortcuts_are_parameters_of_one_space() -> None:
    space = load_space("macro-cifar")
    r20, r110, r18 = (space.encode(zoo.get(n)) for n in ("resnet20_cifar", "resnet110_cifar", "resnet18_cifar"))
    assert r20["stages.1[repeat].depth"] == 3 and r110["stages.1[repeat].depth"] == 18
    assert r20["stages.0[repeat].block[basic].shortcut"] == "pad" and r18["stages.0[repeat].block[basic].shortcut"] == "project"
    assert r20["stages.3"] == "none" and r18["stages.3"] == "repeat" and r18["stages.3[repeat].channels"] == 512
    assert not any(k.startswith("stages.3[") for k in r20)


def test_nasnet_space_encodes_cells_by_node_and_concat_rule() -> None:
    space = load_space("nasnet-cifar")
    darts, nasnet, amoeba = (space.encode(zoo.get(n)) for n in ("darts_v2_cifar", "nasnet_a_cifar", "amoebanet_a_cifar"))
    assert darts["cells.normal.nodes.4"] == 0 and "cells.normal.nodes.4[1].0.op" not in darts  # 4 nodes
    assert nasnet["cells.reduce.nodes.4"] == 1 and nasnet["cells.reduce.nodes.4[1].0.input"] == 2
    assert darts["cells.normal.concat"] == "all"  # node 2 is read by node 5, and still concatenated
    assert nasnet["cells.reduce.concat"] == amoeba["cells.normal.concat"] == "unused"
    assert amoeba["cells.reduce.nodes.4[1].0.op"] == "conv7x1" and amoeba["cells.reduce.nodes.4[1].1.input"] == 5


@pytest.mark.parametrize(
    ("space_name", "network", "where", "why"),
    [
        ("macro-cifar", lambda: zoo.get("vgg16"), "input.resolution", "224"),
        (
            "macro-cifar",
            lambda: zoo.get("densenet_bc_100_12_cifar"),
            "stem[0].out",
            "24 is not one of the space's choices 16, 32, 64",
        ),
        (
            "macro-cifar",
            lambda: _modified("resnet20_cifar", lambda d: d["stages"][1].update(depth=19)),
            "stages[1].depth",
            "19 is outside the space's int [1, 18]",
        ),
        (
            "macro-cifar",
            lambda: _modified("resnet20_cifar", lambda d: d["stages"][2]["block"].update(se=0.5)),
            "stages[2].block.se",
            "0.5 is not one of",
        ),
        (
            "macro-cifar",
            lambda: _modified("resnet20_cifar", lambda d: d["stages"][0]["block"].update(kernel=5)),
            "stages[0].block.kernel",
            "leaves kernel at its default",
        ),
        (
            "macro-cifar",
            lambda: _modified("resnet18_cifar", lambda d: d["stages"].append(d["stages"][-1])),
            "stages[4]",
            "5 items",
        ),
        ("nasnet-cifar", lambda: zoo.get("resnet20_cifar"), "stem[0].out", "16"),
        (
            "nasnet-cifar",
            lambda: _modified(
                "darts_v2_cifar",
                lambda d: [
                    s.update(block={**s["block"], "normal": "sep3@0+sep3@1 | skip@0+dil3@2 ; concat 3"}) for s in d["stages"]
                ],
            ),
            "stages[0].block.normal.nodes",
            "the genotype has 2 items here, the space at least 4",
        ),
        (
            "nasnet-cifar",
            lambda: _modified(
                "darts_v2_cifar",
                lambda d: [s.update(block={**s["block"], "normal": DARTS_NORMAL + " ; concat 4,5"}) for s in d["stages"]],
            ),
            "stages[0].block.normal.concat",
            "[4, 5] is not one of the space's choices all = [2, 3, 4, 5], unused = [3, 4, 5]",
        ),
        (
            "nasnet-cifar",
            lambda: _modified(
                "darts_v2_cifar",
                lambda d: d["stages"][2].update(block={**d["stages"][2]["block"], "reduce": "max3@0+max3@1 ; concat 2"}),
            ),
            "stages[2].block.reduce",
            "shared template 'cells'",
        ),
    ],
)
def test_networks_outside_a_space_are_rejected_naming_the_field(space_name: str, network: Any, where: str, why: str) -> None:
    space, net = load_space(space_name), network()
    assert not space.contains(net)
    with pytest.raises(NotInSpaceError) as info:
        space.encode(net)
    assert info.value.path == where and why in info.value.reason
    assert space_name in str(info.value) and where in str(info.value)


# ---- sampling with optuna ----------------------------------------------------------------------

SAMPLERS = {
    "random": lambda: optuna.samplers.RandomSampler(seed=0),
    "tpe": lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=0, population_size=6),
}


def _objective(space: DesignSpace, nets: dict[int, Network]) -> Any:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        try:
            net = space.sample(trial)
        except InfeasibleSample as exc:
            trial.set_user_attr("infeasible", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        nets[trial.number] = net
        return float(len(net.blocks())), float(net.shapes()[-1][1].c)

    return objective


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_optuna_samplers_draw_valid_networks_with_the_branch_params_only(space_name: str, sampler: str) -> None:
    space, nets = load_space(space_name), {}
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=SAMPLERS[sampler]())
    study.optimize(_objective(space, nets), n_trials=20)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 12
    for t in study.trials:
        assert set(t.params) == _active(space, t.params), t.number  # conditional params: only the chosen branches
        if t.state == optuna.trial.TrialState.PRUNED:
            assert "infeasible sample" in t.user_attrs["infeasible"]
            continue
        net = nets[t.number]
        assert space.select(t.params) == net and space.encode(net) == t.params  # sample and encode are inverse
    assert len({nets[t.number].digest for t in complete}) >= len(complete) // 2  # the samplers really explore


@pytest.mark.parametrize("space_name", SPACES)
def test_sampled_networks_build(space_name: str) -> None:
    space = load_space(space_name)
    for seed in range(3):
        net = space.random(seed)
        c = cached_complexity(net)  # builds the torch module on the meta device and traces it
        assert c.params > 0 and c.parts[-1].out_shape == (10,)


def test_infeasible_combinations_raise_a_typed_error_with_params_and_rule() -> None:
    space = load_space("macro-cifar")
    params = {**space.encode(zoo.get("resnet20_cifar")), "stem.0.out": 64}  # a pad shortcut from 64 down to 16 channels
    with pytest.raises(InfeasibleSample) as info:
        space.sample(optuna.trial.FixedTrial(params))
    assert info.value.params["stem.0.out"] == 64
    assert info.value.problems[0][0] == "stages[0].block.shortcut" and "cannot reduce channels (64 -> 16)" in str(info.value)


def test_select_rejects_missing_and_out_of_range_params_by_name() -> None:
    space = load_space("macro-cifar")
    params = space.encode(zoo.get("resnet20_cifar"))
    with pytest.raises(SpaceError, match=r"stages\.1\[repeat\]\.depth: 40 is not in int \[1, 18\]"):
        space.select({**params, "stages.1[repeat].depth": 40})
    with pytest.raises(SpaceError, match=r"stem\.0\.out: no value given"):
        space.select({k: v for k, v in params.items() if k != "stem.0.out"})
    with pytest.raises(SpaceError, match=r"stages\.0: 'wide' is not in choice of 'repeat', 'inception', 'dense'"):
        space.select({**params, "stages.0": "wide"})


def test_random_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    for name in SPACES:
        space = load_space(name)
        first = [space.random(seed) for seed in range(6)]
        assert [space.random(seed).digest for seed in range(6)] == [n.digest for n in first]
        assert len({n.digest for n in first}) >= 5
        assert all(space.contains(n) for n in first)


# ---- size and params ---------------------------------------------------------------------------


def test_sizes_of_the_shipped_spaces_are_exact_counts() -> None:
    per_edge = [10 * (k + 2) for k in range(5)]  # ops x inputs of node k
    cell = math.prod(e * e for e in per_edge[:4]) * (1 + per_edge[4] ** 2) * 2  # optional node 4; concat all | unused
    nasnet = load_space("nasnet-cifar").size()
    assert nasnet.exact and nasnet.points == cell**2 and round(nasnet.log10, 2) == 32.03

    blocks = 2 + 4 + 4 + 4 + 2 + 12  # conv k, basic/bottleneck shortcut x se, grouped groups x se, separable k, mbconv
    inception, dense = 3 * (1 + 3), 15 * 3 * 2

    def stage(widths: int) -> int:
        return blocks * 18 * widths + inception + dense

    macro = load_space("macro-cifar").size()
    assert macro.exact and macro.points == 3 * stage(4) * stage(5) * stage(5) * (1 + stage(5))


def _space(template: dict[str, Any], **extra: Any) -> DesignSpace:
    return DesignSpace.from_dict({"name": "toy", "template": template, **extra})


_STAGE = {"block": {"kind": "residual"}, "depth": 2, "channels": 16}


def test_size_counts_grids_and_estimates_continuous_floats() -> None:
    grid = _space(
        {
            "stages": [
                {
                    **_STAGE,
                    "depth": {"int": [1, 9], "step": 2},
                    "block": {"kind": "residual", "se": {"float": [0.0, 0.5], "step": 0.25}},
                }
            ]
        }
    )
    assert grid.size().exact and grid.size().points == 5 * 3
    cont = _space({"stages": [{**_STAGE, "block": {"kind": "residual", "dropout": {"float": [0.0, 0.5]}}}]})
    assert not cont.size().exact and cont.size().points == FLOAT_POINTS and "estimate" in str(cont.size())


def test_params_list_names_distributions_and_conditions() -> None:
    space = load_space("macro-cifar")
    params = {p.name: p for p in space.params()}
    assert len(params) == len(space.params())  # names are unique
    se = params["stages.2[repeat].block[grouped].se"]
    assert se.condition == (("stages.2", "repeat"), ("stages.2[repeat].block", "grouped"))
    assert se.distribution.to_optuna() == optuna.distributions.CategoricalDistribution([0.0, 0.25])
    assert params["stages.0[repeat].depth"].distribution.to_optuna() == optuna.distributions.IntDistribution(1, 18)
    assert params["stages.3"].distribution.choices == ("none", "repeat", "inception", "dense")
    nasnet = load_space("nasnet-cifar").params()
    assert len(nasnet) == 2 * (4 * 4 + 1 + 4 + 1) and {p.shared for p in nasnet} == {"cells"}


# ---- template semantics ------------------------------------------------------------------------


def test_optional_list_items_shared_templates_and_concat_keywords() -> None:
    space = _space(
        {
            "stem": [{"kind": "conv", "out": 48, "kernel": 3}],
            "stages": [
                {"block": {"shared": "c"}, "depth": 1, "channels": 16},
                {"choice": [None, {"block": {"shared": "c"}, "depth": 1, "channels": 32, "stride": 2}]},
            ],
        },
        shared={
            "c": {
                "kind": "cell",
                "normal": {
                    "nodes": [
                        ["sep3@0", {"op": "skip", "input": 1}],
                        [{"op": {"choice": ["sep3", "max3"]}, "input": 2}, "skip@0"],
                    ],
                    "concat": "unused",
                },
                "reduce": {"nodes": [["max3@0", "max3@1"]], "concat": "all"},
            }
        },
    )
    one = space.select({"stages.1": 0, "c.normal.nodes.1.0.op": "max3"})
    assert len(one.stages) == 1 and one.stages[0].block.normal.to_string() == "sep3@0+skip@1 | max3@2+skip@0 ; concat 3"
    two = space.select({"stages.1": 1, "c.normal.nodes.1.0.op": "sep3"})
    assert len(two.stages) == 2 and two.stages[0].block == two.stages[1].block  # one draw, used twice
    assert two.stages[1].block.reduce.concat == (2,)
    assert space.encode(two) == {"stages.1": 1, "c.normal.nodes.1.0.op": "sep3"}


def test_labels_name_branches_and_plain_choices_suggest_values() -> None:
    space = _space(
        {
            "stages": [
                {
                    "block": {
                        "choice": [{"kind": "conv"}, {"kind": "residual", "se": {"choice": [0.0, 0.25]}}],
                        "labels": ["plain", "res"],
                    },
                    "depth": {"int": [1, 4]},
                    "channels": {"choice": [16, 32]},
                }
            ]
        }
    )
    trial = optuna.trial.FixedTrial(
        {"stages.0.block": "res", "stages.0.block[res].se": 0.25, "stages.0.depth": 2, "stages.0.channels": 32}
    )
    net = space.sample(trial)
    assert net.stages[0].block.se == 0.25 and net.stages[0].channels == 32
    assert space.encode(net) == {
        "stages.0.block": "res",
        "stages.0.block[res].se": 0.25,
        "stages.0.depth": 2,
        "stages.0.channels": 32,
    }
    unlabelled = _space(
        {"stages": [{**_STAGE, "block": {"choice": [{"kind": "conv"}, {"kind": "residual", "se": {"choice": [0.0, 0.25]}}]}}]}
    )
    assert {p.name for p in unlabelled.params()} == {"stages.0.block", "stages.0.block[1].se"}
    assert unlabelled.encode(
        net.model_copy(update={"stages": (net.stages[0].model_copy(update={"depth": 2, "channels": 16}),)})
    ) == {
        "stages.0.block": 1,
        "stages.0.block[1].se": 0.25,
    }


def test_float_ranges_round_trip_through_fixed_trial() -> None:
    space = _space(
        {
            "stages": [
                {
                    **_STAGE,
                    "block": {"kind": "residual", "dropout": {"float": [0.0, 0.5]}, "width": {"float": [0.5, 4.0], "log": True}},
                }
            ]
        }
    )
    net = Network.from_dict({"stages": [{**_STAGE, "block": {"kind": "residual", "dropout": 0.3, "width": 1.5}}]})
    params = space.encode(net)
    assert params == {"stages.0.block.dropout": 0.3, "stages.0.block.width": 1.5}
    assert space.sample(optuna.trial.FixedTrial(params)) == net


# ---- malformed spaces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({**_STAGE, "depth": {"int": [5, 2]}}, "template.stages[0].depth: int range needs lo <= hi, got [5, 2]"),
        (
            {**_STAGE, "depth": {"int": [1, 8], "step": 3}},
            "template.stages[0].depth: int range [1, 8] is not a whole number of steps of 3",
        ),
        ({**_STAGE, "depth": {"int": [1, 8], "step": 2, "log": True}}, "template.stages[0].depth: a log int range takes no step"),
        (
            {**_STAGE, "depth": {"int": [1, 8], "stepp": 2}},
            "template.stages[0].depth: unknown key 'stepp' in an int distribution",
        ),
        ({**_STAGE, "depth": {"choice": []}}, "template.stages[0].depth: choice needs a non-empty list of options"),
        ({**_STAGE, "depth": {"choice": [1, True]}}, "template.stages[0].depth: choice options must be distinct"),
        ({**_STAGE, "depth": {"choice": [1, 2], "int": [1, 2]}}, "template.stages[0].depth: a value holds one distribution"),
        ({**_STAGE, "channels": {"float": [0, 1], "log": True}}, "template.stages[0].channels: a log float range needs lo > 0"),
        (
            {**_STAGE, "channels": {"choice": [16, 32], "labels": ["a"]}},
            "template.stages[0].channels.labels: needs one label per option (2)",
        ),
        ({**_STAGE, "dept": 3}, "template.stages[0].dept: unknown field; a Stage has block, depth"),
        ({**_STAGE, "block": {"kind": "resnet"}}, "template.stages[0].block.kind: unknown block kind 'resnet'"),
        (
            {**_STAGE, "block": {"choice": [{"kind": "conv", "kernal": 3}]}},
            "template.stages[0].block.choice[0].kernal: unknown field; a ConvBlock has",
        ),
        ({**_STAGE, "block": {"shared": "cell"}}, "template.stages[0].block: unknown shared template 'cell'"),
        (
            {"blocks": [{"kind": "cell", "normal": {"nodes": [[{"op": "sep3", "inptu": 0}, "skip@1"]], "concat": "all"}}]},
            "template.stages[0].blocks[0].normal.nodes[0][0].inptu: unknown field; a CellEdge has op, input",
        ),
    ],
)
def test_malformed_templates_are_rejected_with_path_rule_and_value(stage: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError) as info:
        DesignSpace.from_yaml(yaml.safe_dump({"name": "bad", "template": {"stages": [stage]}}), source="bad.yaml")
    assert str(info.value).startswith("bad.yaml: ") and message in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "s", "conatins": ["x"], "template": {"stages": [_STAGE]}}, "conatins: unknown field"),
        ({"template": {"stages": [_STAGE]}}, "name: Field required"),
        (
            {"name": "s", "template": {"name": "x", "stages": [_STAGE]}},
            "template.name: unknown field; a network template has input, stem, stages, head",
        ),
        (
            {"name": "s", "shared": {"c": {"kind": "conv"}}, "template": {"stages": [_STAGE]}},
            "shared.c: is never used by the template",
        ),
        (
            {
                "name": "s",
                "shared": {"stages": {"kind": "conv"}},
                "template": {"stages": [{**_STAGE, "block": {"shared": "stages"}}]},
            },
            "shared.stages: shared names are",
        ),
        (
            {"name": "s", "shared": {"a": {"shared": "a"}}, "template": {"stages": [{**_STAGE, "block": {"shared": "a"}}]}},
            "shared.a: a shared template cannot use another",
        ),
        (["not", "a", "mapping"], "a design space is a mapping, got list"),
    ],
)
def test_malformed_space_files_are_rejected(data: Any, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        DesignSpace.from_dict(data)
    assert message in str(info.value)


def test_load_space_by_name_or_path_and_unknown_names(tmp_path: Path) -> None:
    assert spaces_dir().name == "search_spaces" and load_space("macro-cifar") == load_space(
        str(spaces_dir() / "macro-cifar.yaml")
    )
    with pytest.raises(SpaceError, match="unknown design space 'macro-cifra'; did you mean macro-cifar"):
        load_space("macro-cifra")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntemplate: {stages: [{block: {kind: conv}, depth: {int: [3, 1]}, channels: 8}]}\n")
    with pytest.raises(SpaceError, match=r"bad\.yaml: template\.stages\[0\]\.depth: int range needs lo <= hi, got \[3, 1\]"):
        load_space(str(bad))


def test_template_constants_that_spell_an_implied_value_still_encode() -> None:
    """Found by the design-space property test: ``expansion: 1`` is stored as None (the basic block's
    default), and ``encode`` said the network sampled from the space was not in it."""
    space = DesignSpace.from_dict(
        {
            "name": "implied",
            "template": {
                "stem": [{"kind": "conv", "out": 16}, {"kind": "pool", "kernel": 2, "stride": {"choice": [2, 1]}}],
                "stages": [
                    {"block": {"kind": "residual", "expansion": {"choice": [1, 2]}}, "depth": 2, "channels": 16},
                    {"blocks": [{"kind": "separable", "out": 32, "convs": 1, "grow_first": False}]},
                ],
            },
        }
    )
    for params in ({"stem.1.stride": 2, "stages.0.block.expansion": 1}, {"stem.1.stride": 1, "stages.0.block.expansion": 2}):
        net = space.select(params)
        assert space.encode(net) == params and space.contains(net)
