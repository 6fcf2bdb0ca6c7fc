"""Bad design-space and study files: each is refused with one NasxError naming the place (line or field path).

The design-space cases already covered in test_design.py (unknown template keys, empty choices,
int ranges with lo > hi, malformed labels) are not repeated here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nasx.errors import NasxError, SpaceError
from nasx.search.config import StudyConfig, StudyError
from nasx.space.design import load_space

STAGE = "{block: {kind: conv}, depth: 2, channels: 8}"
SPACE_OK = f"name: s\ntemplate:\n  stages: [{STAGE}]\n"

BAD_SPACES = {
    "syntax-error": (
        "name: s\ntemplate:\n  stages: [{block: {kind: conv}, depth: 2\n  head: {}\n",
        "line 4, column 7: invalid YAML: expected ',' or '}', but got ':'",
    ),
    "tab-indent": ("name: s\ntemplate:\n\tstages: []\n", "line 3, column 1: invalid YAML: found character '\\t'"),
    "duplicate-key": (SPACE_OK + "name: t\n", "line 4, column 1: duplicate key 'name' (first given on line 1)"),
    "duplicate-nested-key": (
        "name: s\ntemplate:\n  stages: [{block: {kind: conv, kind: pool}, depth: 2, channels: 8}]\n",
        "line 3, column 33: duplicate key 'kind' (first given on line 3)",
    ),
    "wrong-type-constant": (
        "name: s\ntemplate: {stages: [{block: {kind: conv}, depth: two, channels: 8}]}\n",
        "template.stages[0].depth: Input should be a valid integer for Stage.depth, got 'two'",
    ),
    "wrong-type-choice-option": (
        "name: s\ntemplate: {stages: [{block: {kind: conv, act: {choice: [relu, swish]}}, depth: 2, channels: 8}]}\n",
        "template.stages[0].block.act.choice[1]: Input should be 'relu', ",
    ),
    "range-past-the-field's-bound": (
        "name: s\ntemplate: {stages: [{block: {kind: conv}, depth: {int: [1, 100000]}, channels: 8}]}\n",
        "template.stages[0].depth: Input should be less than or equal to 10000 for Stage.depth, got 100000",
    ),
    "float-range-lo-above-hi": (
        SPACE_OK + "  head: {dropout: {float: [0.5, 0.1]}}\n",
        "template.head.dropout: float range needs lo <= hi, got [0.5, 0.1]",
    ),
    "float-range-nan-bound": (
        SPACE_OK + "  head: {dropout: {float: [.nan, 0.1]}}\n",
        "template.head.dropout: float range is [lo, hi] with float bounds, got [nan, 0.1]",
    ),
    "choice-not-a-list": (
        "name: s\ntemplate: {stages: [{block: {kind: conv}, depth: {choice: 3}, channels: 8}]}\n",
        "template.stages[0].depth: choice needs a non-empty list of options, got 3",
    ),
    "template-without-stages": (
        "name: s\ntemplate: {stem: [{kind: conv, out: 8}]}\n",
        "template.stages: required field is missing",
    ),
    "block-missing-required-field": (
        "name: s\ntemplate: {stages: [{blocks: [{kind: dense, growth: 12}]}]}\n",
        "template.stages[0].blocks[0].layers: required field is missing (a DenseBlock needs it)",
    ),
    "unknown-zoo-member": (
        f"name: s\ncontains: [resnet20_cifar, resnet21_cifar]\ntemplate: {{stages: [{STAGE}]}}\n",
        "contains[1]: unknown zoo network 'resnet21_cifar'; did you mean resnet20_cifar",
    ),
    "nested-too-deep": ("name: s\ntemplate: {stages: " + "[" * 3000 + "]" * 3000 + "}\n", "nested more than 50 levels deep"),
    "python-tag": (
        "name: !!python/object/apply:os.system ['echo pwned']\ntemplate: {}\n",
        "line 1, column 7: invalid YAML: could not determine a constructor for the tag",
    ),
}


@pytest.mark.parametrize(("text", "message"), BAD_SPACES.values(), ids=BAD_SPACES.keys())
def test_bad_design_space_files_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(str(f))
    assert len(info.value.problems) == 1, info.value.problems
    assert str(info.value).startswith(f"{f}: ") and message in str(info.value), str(info.value)


def test_the_base_space_is_valid(tmp_path: Path) -> None:
    f = tmp_path / "space.yaml"
    f.write_text(SPACE_OK)
    assert load_space(str(f)).size().points == 1


def test_a_space_file_that_is_not_text_or_not_there(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: s\n")
    with pytest.raises(SpaceError, match=r"binary\.yaml: cannot read the design-space file: not UTF-8 text \(byte 0 is 0xff\)"):
        load_space(str(binary))
    with pytest.raises(SpaceError, match=r"missing\.yaml: cannot read the design-space file: No such file"):
        load_space(str(tmp_path / "missing.yaml"))


def test_yaml_aliases_cannot_blow_a_space_file_up(tmp_path: Path) -> None:
    lines = ["name: s", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    f = tmp_path / "laughs.yaml"
    f.write_text("\n".join([*lines, "template: {stages: [*i]}"]) + "\n")  # 10**9 values from 400 bytes
    with pytest.raises(SpaceError, match="holds more than 200000 values"):
        load_space(str(f))


# ---- study configs --------------------------------------------------------------------------------

STUDY_OK = "name: s\nspace: macro-cifar\nbudget: {trials: 2}\n"

BAD_STUDIES = {
    "syntax-error": (
        "name: s\nspace: macro-cifar\nbudget: {trials: 2\nobjectives: [val_acc]\n",
        "line 4, column 11: invalid YAML: expected ',' or '}', but got ':'",
    ),
    "duplicate-key": (STUDY_OK + "budget: {trials: 3}\n", "line 4, column 1: duplicate key 'budget' (first given on line 3)"),
    "unknown-key": (STUDY_OK + "objectivs: [val_acc, macs]\n", "objectivs: Extra inputs are not permitted"),
    "unknown-nested-key": (STUDY_OK + "sampler: {kind: tpe, sed: 3}\n", "sampler.sed: Extra inputs are not permitted, got 3"),
    "wrong-type": (
        "name: s\nspace: macro-cifar\nbudget: {trials: many}\n",
        "budget.trials: Input should be a valid integer, got 'many'",
    ),
    "wrong-type-section": ("name: s\nspace: macro-cifar\nbudget: 5\n", "budget: Input should be a valid dictionary"),
    "objective-naming-an-unknown-metric": (
        STUDY_OK + "objectives: [val_acc, flops]\n",
        "objectives.1: Input should be 'val_acc', 'macs', 'params' or 'latency', got 'flops'",
    ),
    "constraint-naming-an-unknown-metric": (
        STUDY_OK + "constraints: {max_flops: 1000000}\n",
        "constraints.max_flops: Extra inputs are not permitted, got 1000000",
    ),
    "constraint-of-the-wrong-type": (
        STUDY_OK + "constraints: {max_macs: lots}\n",
        "constraints.max_macs: Input should be a valid integer",
    ),
    "unknown-space": (
        "name: s\nspace: macro-cifra\nbudget: {trials: 2}\n",
        "space: unknown design space 'macro-cifra'; did you mean macro-cifar",
    ),
    "unknown-baseline": (
        STUDY_OK + "baselines: [resnet20_cifar, resnet2O_cifar]\n",
        "baselines: item 1 is not a zoo network, got 'resnet2O_cifar'; did you mean resnet20_cifar",
    ),
    "inline-recipe-with-an-unknown-key": (
        STUDY_OK + "recipe: {lr: 0.1, lrr: 2}\n",
        "recipe.lrr: Extra inputs are not permitted, got 2",  # not also "recipe.str: Input should be a valid string"
    ),
    "not-a-mapping": ("- name: s\n", "a study config is a mapping, got list"),
    "nested-too-deep": (STUDY_OK + "seed: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 50 levels deep"),
    "python-tag": (
        STUDY_OK + "seed: !!python/object/apply:os.system ['echo pwned']\n",
        "line 4, column 7: invalid YAML: could not determine a constructor for the tag",
    ),
}


@pytest.mark.parametrize(("text", "message"), BAD_STUDIES.values(), ids=BAD_STUDIES.keys())
def test_bad_study_files_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "study.yaml"
    f.write_text(text)
    with pytest.raises(StudyError) as info:
        StudyConfig.load(f)
    text = str(info.value)
    assert isinstance(info.value, NasxError) and text.startswith(f"{f}: ") and message in text, text
    assert not re.search(r"; [\w.\[\]]+: ", text), f"more than one problem reported: {text}"
    assert "\n" not in text and "<unicode string>" not in text


def test_the_base_study_is_valid(tmp_path: Path) -> None:
    f = tmp_path / "study.yaml"
    f.write_text(STUDY_OK + "baselines: [resnet20_cifar]\nobjectives: [val_acc, macs]\nconstraints: {max_macs: 60000000}\n")
    cfg = StudyConfig.load(f)
    assert cfg.space == "macro-cifar" and cfg.baselines == ("resnet20_cifar",) and cfg.constraints.max_macs == 60_000_000


def test_a_study_file_that_is_not_text_or_not_there(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: s\xff\n")
    with pytest.raises(StudyError, match=r"binary\.yaml: cannot read the study config: not UTF-8 text \(byte 7 is 0xff\)"):
        StudyConfig.load(binary)
    with pytest.raises(StudyError, match=r"missing\.yaml: cannot read the study config: No such file"):
        StudyConfig.load(tmp_path / "missing.yaml")


def test_recipe_files_go_through_the_same_reader(tmp_path: Path) -> None:
    from nasx.train.recipe import RecipeError, load_recipe

    f = tmp_path / "recipe.yaml"
    f.write_text("lr: 0.1\nepochs: 3\nlr: 0.2\n")
    with pytest.raises(RecipeError, match=r"recipe\.yaml: line 3, column 1: duplicate key 'lr' \(first given on line 1\)"):
        load_recipe(str(f))
