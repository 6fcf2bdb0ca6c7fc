"""Reliability under real use (issue 17): a torn journal, kills, hostile names and sizes, and inputs refused
with one placed line before anything is created."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from helpers import ROOT, TinySpace, tiny_config, tiny_data, write_batches
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from typer.testing import CliRunner

from nasx.cli import app
from nasx.data.types import ImageSet, Splits
from nasx.search import run_search, status
from nasx.search.config import StudyConfig, StudyError
from nasx.search.runner import space_digest
from nasx.search.study import Worker, open_study, recover_stale
from nasx.space import Network

runner = CliRunner()
NET = "input(resolution=32, classes=10) | stem[conv(out=8)] | 1*residual()@8"


def _plain_load(folder: Path, name: str = "tiny") -> optuna.Study:
    """The study as plain Optuna reads it (its own backend and lock, no nasx code)."""
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


# ---- 1. a torn journal -------------------------------------------------------------------------


def _finished_study(tmp_path: Path) -> Path:
    run_search(tiny_config(tmp_path, budget={"trials": 3}), root=tmp_path / "runs", space=TinySpace(), dry_run_s=0.0)
    return tmp_path / "runs" / "tiny"


def test_a_torn_last_record_is_moved_aside_said_and_the_next_search_appends_after_a_whole_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _finished_study(tmp_path)
    journal = folder / "journal.log"
    whole = journal.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[1]
    torn = whole[: len(whole) - len(last) // 2 - 1]  # the last line cut in half, as a kill mid-append leaves it
    journal.write_bytes(torn)
    cfg = tiny_config(tmp_path, budget={"trials": 5})
    with caplog.at_level(logging.WARNING, logger="nasx.search"):
        p, rows = status(cfg, tmp_path / "runs")  # status says so rather than silently dropping it
    assert any("cut short" in r.getMessage() and "journal.log.damaged" in r.getMessage() for r in caplog.records), caplog.text
    assert (folder / "journal.log.damaged").read_bytes() == torn[torn.rfind(b"\n") + 1 :] + b"\n"
    assert journal.read_bytes().endswith(b"\n") and p.trials >= 2
    run_search(cfg, root=tmp_path / "runs", space=TinySpace(), dry_run_s=0.0)  # appends after the repair
    study = _plain_load(folder)  # before the repair: JSONDecodeError from here on
    done = [t for t in study.get_trials() if t.user_attrs.get("role") == "candidate" and t.state.is_finished()]
    assert sum(not t.user_attrs.get("retried") for t in done) == 5


def test_an_invalid_line_in_the_middle_is_moved_aside_when_the_study_is_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _finished_study(tmp_path)
    journal = folder / "journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines.insert(5, b'{"op_code": 5, "worker_id": "x", "tri' + lines[5])  # a fragment glued to the next record
    journal.write_bytes(b"".join(lines))
    with pytest.raises(ValueError):
        _plain_load(folder)  # what an older nasx left: unreadable
    with caplog.at_level(logging.WARNING, logger="nasx.search"):
        status(tiny_config(tmp_path), tmp_path / "runs")
    assert any("damaged record(s) in the middle (line 6)" in r.getMessage() for r in caplog.records), caplog.text
    assert len(_plain_load(folder).get_trials()) >= 3


def test_nasx_status_shows_the_repair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _finished_study(tmp_path)
    journal = folder / "journal.log"
    journal.write_bytes(journal.read_bytes()[:-7])
    monkeypatch.chdir(tmp_path)
    config = dict(tiny_config(tmp_path).model_dump(mode="json"), space="macro-cifar")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "nasx", "status", str(tmp_path / "tiny.yaml"), "--dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "the last record was cut short" in result.stderr and "journal.log.damaged" in result.stderr


# ---- 2. kills spend no retry; baselines are completed ------------------------------------------


def _dead_worker(me: Worker) -> str:
    return f"{me.host}-999999-abcdef"  # no lock file: a process that is gone


def test_a_trial_whose_worker_was_killed_is_retried_even_with_no_retries_left(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, failures={"retries": 0})
    folder = tmp_path / "runs" / "tiny"
    study = open_study(cfg, folder, space_digest(TinySpace()))
    with Worker(folder) as me:
        t = study.ask({"stem.out": optuna.distributions.CategoricalDistribution([4, 8])})
        t.set_user_attr("role", "candidate")
        t.set_user_attr("worker", _dead_worker(me))
        with me.turn():
            assert recover_stale(study, me, cfg.failures) == [t.number]
    again = [x for x in study.get_trials() if x.state == TrialState.WAITING]
    assert len(again) == 1 and again[0].user_attrs == {"retry_of": t.number, "attempt": 0, "lost": 1}


def test_a_killed_baseline_is_trained_by_the_next_search_whatever_the_retries(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, failures={"retries": 0}, baselines=["resnet20_cifar"], budget={"trials": 2})
    folder = tmp_path / "runs" / "tiny"
    study = open_study(cfg, folder, space_digest(TinySpace()))
    with Worker(folder) as me:
        # killed twice over: once while running (recovered now), once earlier with its retries spent
        spent = optuna.Trial(study, study._storage.create_new_trial(study._study_id))
        for k, v in {"role": "baseline", "name": "resnet20_cifar", "worker": _dead_worker(me), "state": "failed"}.items():
            spent.set_user_attr(k, v)
        spent.set_user_attr("failure", "crash")
        study.tell(spent, state=TrialState.FAIL)
        running = optuna.Trial(study, study._storage.create_new_trial(study._study_id))
        for k, v in {"role": "baseline", "name": "resnet20_cifar", "worker": _dead_worker(me)}.items():
            running.set_user_attr(k, v)
    summary = run_search(cfg, root=tmp_path / "runs", space=TinySpace(), dry_run_s=0.0)
    base = [r for r in summary.rows if r["role"] == "baseline"]
    assert [r["state"] for r in base if not r["retried"]][-1] == "complete", base
    assert sum(r["role"] == "candidate" and r["state"] == "complete" for r in summary.rows) >= 1


# ---- 3. names from files stay inside their folder ------------------------------------------------


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))
    write_batches(tmp_path / "cifar-10-batches-py", per_batch=24, n_test=16)
    return tmp_path / "cifar-10-batches-py"


def test_a_genotype_or_recipe_named_with_dot_dots_trains_inside_runs(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    net = Network.from_string(NET).model_copy(update={"name": "../../../escaped"})
    (work / "net.yaml").write_text(net.to_yaml())
    (work / "recipe.yaml").write_text("name: ../../away\nbatch_size: 16\neval_batch_size: 32\nprecision: fp32\nepochs: 1\n")
    monkeypatch.chdir(work)
    result = runner.invoke(
        app, ["train", "net.yaml", "--data", str(data), "--recipe", "recipe.yaml", "--device", "cpu", "--val-size", "20"]
    )
    assert result.exit_code == 0, result.output
    made = [p for p in (work / "runs").iterdir()]
    assert len(made) == 1 and (made[0] / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "cifar-10-batches-py", "work"]


# ---- 4. nasx.load bounds the cost before building -------------------------------------------------


def _small_model_folder(folder: Path, wide: int) -> None:
    """A model folder whose genotype is ``wide`` channels wide, with the weights of an 8-channel network."""
    from safetensors.torch import save_file

    from nasx.models.network import build_network

    small = Network.from_string(NET)
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in build_network(small).state_dict().items()}, str(folder / "weights.safetensors"))
    (folder / "genotype.yaml").write_text(
        Network.from_string(NET.replace("@8", f"@{wide}").replace("out=8", f"out={wide}")).to_yaml()
    )


def test_load_refuses_a_huge_genotype_before_building_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import nasx.export as export

    built = []
    real = export.build_network

    def watched(net: Network) -> torch.nn.Module:
        if torch.empty(0).device.type != "meta":
            built.append(net)
        return real(net)

    monkeypatch.setattr(export, "build_network", watched)
    _small_model_folder(tmp_path / "m", wide=65536)
    t0 = time.perf_counter()
    with pytest.raises(export.LoadError, match=r"needs shape \(65536, 3, 3, 3\), the weights file has \(8, 3, 3, 3\)"):
        export.load(tmp_path / "m")
    assert built == [] and time.perf_counter() - t0 < 10, "nothing was built off the meta device"


def test_load_refuses_a_network_larger_than_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasx.export as export
    import nasx.models.complexity as complexity

    _small_model_folder(tmp_path / "m", wide=8)
    monkeypatch.setattr(complexity, "physical_memory", lambda device="cpu": 1000)
    with pytest.raises(export.LoadError, match=r"more than the 0.0 GiB of cpu memory here"):
        export.load(tmp_path / "m")


# ---- 5. tracebacks left ---------------------------------------------------------------------------


def test_a_storage_url_sqlalchemy_cannot_use_is_one_line_naming_storage(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nspace: macro-cifar\nbudget: {trials: 1}\nstorage: 'nosuchdb://x/y'\n")
    with pytest.raises(StudyError, match=r"s\.yaml: storage: not a database URL"):
        StudyConfig.load(path)


def test_fraction_zero_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "resnet20_cifar", "--fraction", "0"])
    assert result.exit_code == 2 and "--fraction" in result.output and "(0, 1]" in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_a_missing_cuda_device_is_refused_before_data_or_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasx.data as datasets

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_splits", lambda *a, **k: pytest.fail("data loaded before the device was checked"))
    result = runner.invoke(app, ["train", "resnet20_cifar", "--device", "cuda:7", "--data", "nowhere"])
    assert result.exit_code == 2, result.output
    assert "--device" in result.output and "cuda:7" in result.output and not (tmp_path / "runs").exists()


# ---- 6. a failed first start leaves nothing -------------------------------------------------------


def test_a_failed_first_start_does_not_poison_the_study(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    good = tiny_config(tmp_path).model_dump(mode="json")
    bad = {**good, "space": "macro-cifar", "data": {**good["data"], "source": str(tmp_path / "missing")}}
    path.write_text(yaml.safe_dump(bad))
    cfg = StudyConfig.load(path)
    with pytest.raises(StudyError, match=rf"study\.yaml: data\.source '{tmp_path / 'missing'}'"):
        run_search(cfg, root=tmp_path / "runs", space=TinySpace())
    assert not (tmp_path / "runs").exists(), "nothing created by a start that failed"
    path.write_text(yaml.safe_dump({**bad, "data": good["data"]}))
    summary = run_search(StudyConfig.load(path), root=tmp_path / "runs", space=TinySpace(), trials=1, dry_run_s=0.0)
    assert summary.progress.trials == 1


# ---- 7. refused or warned -------------------------------------------------------------------------


def _splits(labels: list[int], n_val: int = 4) -> Splits:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (len(labels), 32, 32, 3), dtype=np.uint8)
    train = ImageSet(images, np.asarray(labels, dtype=np.int64), tuple(f"c{i}" for i in range(10)))
    return Splits(train=train, val=train.subset(np.arange(n_val)), source="synthetic", seed=0)


def test_one_class_data_is_refused_and_a_subset_of_classes_warned(caplog: pytest.LogCaptureFixture) -> None:
    from nasx.train import load_recipe
    from nasx.train.loop import SetupError, train

    recipe = load_recipe("search").model_copy(update={"batch_size": 8, "precision": "fp32"})
    with pytest.raises(SetupError, match=r"one class only \('c3'\)"):
        train(Network.from_string(NET), _splits([3] * 40), recipe, device="cpu")
    from nasx.train.loop import check_data

    with caplog.at_level(logging.WARNING, logger="nasx.train"):
        check_data(_splits([0, 1] * 20), recipe, classes=10)
    assert "2 of the network's 10 classes" in caplog.text


def test_val_size_above_one_must_be_a_whole_count(tmp_path: Path, data: Path) -> None:
    result = runner.invoke(app, ["train", "resnet20_cifar", "--data", str(data), "--val-size", "1.5", "--device", "cpu"])
    assert result.exit_code == 2 and "val_size" in result.output and "1.5" in result.output
    from nasx.search.config import validated

    with pytest.raises(StudyError, match=r"here: data.val_size: .*whole number.*got 1.5"):
        validated({"name": "s", "space": "x", "budget": {"trials": 1}, "data": {"val_size": 1.5}}, "here")


def test_a_stride_that_leaves_later_stages_one_pixel_is_warned() -> None:
    collapsed = "input(resolution=8, classes=10) | stem[conv(out=8)] | 1*residual()@8/2 | 1*residual()@8/2 | 1*residual()@8/2 | 1*residual()@8/2"
    fine = collapsed.replace("resolution=8", "resolution=32")
    from nasx.models.complexity import collapse_warnings

    assert collapse_warnings(Network.from_string(fine)) == []
    (warning,) = collapse_warnings(Network.from_string(collapsed))
    assert "stage4 reduces the spatial size but its input is already 1x1" in warning
    (warning,) = collapse_warnings(Network.from_string(NET.replace("1*residual()@8", "1*residual()@8/255 | 1*residual()@16")))
    assert "the spatial size is 1x1 after stage1, before the last stage" in warning


def test_describe_prints_the_collapse_warning(tmp_path: Path) -> None:
    net = Network.from_string(
        "input(resolution=4, classes=10) | stem[conv(out=8)] | 1*residual()@8/2 | 1*residual()@8/2 | 1*residual()@8/2"
    )
    (tmp_path / "n.yaml").write_text(net.to_yaml())
    result = runner.invoke(app, ["describe", str(tmp_path / "n.yaml")])
    assert result.exit_code == 0 and "warning:" in result.output and "stage3" in result.output


def test_a_yaml_file_over_one_mebibyte_is_refused_at_once_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: s\nspace: macro-cifar\nbudget: {trials: 1}\n" + "# padding\n" * 200_000)
    t0 = time.perf_counter()
    with pytest.raises(
        StudyError, match=r"big\.yaml: the study config is 2,000,0\d\d bytes; a study config may be at most 1,048,576"
    ):
        StudyConfig.load(path)
    assert time.perf_counter() - t0 < 1


def test_a_space_name_is_looked_up_in_the_spaces_folder_and_a_path_must_be_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nasx.errors import SpaceError
    from nasx.space.design import load_space

    monkeypatch.chdir(tmp_path)
    (tmp_path / "macro-cifar").write_text("not: a space\n")  # a file in the working folder named like a shipped space
    assert load_space("macro-cifar").name == "macro-cifar"
    for hostile in ("../../../etc/passwd", "/etc/hostname", str(tmp_path)):
        with pytest.raises(SpaceError, match=r"a design-space file ends in \.yaml or \.yml"):
            load_space(hostile)
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SpaceError, match="not a regular file"):
        load_space("dir.yaml")


# ---- 8. messages with their place -----------------------------------------------------------------


def test_a_resolution_too_small_says_the_minimum(tmp_path: Path, data: Path) -> None:
    result = runner.invoke(app, ["train", "resnet20_cifar", "--data", str(data), "--resolution", "1", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "--resolution: 1 is too small for resnet20_cifar" in result.output and "smallest it trains at is 3" in result.output


def test_data_smaller_than_a_batch_is_reported_as_too_few_images(tmp_path: Path, data: Path) -> None:
    result = runner.invoke(
        app, ["train", "resnet20_cifar", "--data", str(data), "--recipe", "fast", "--device", "cpu", "--val-size", "20"]
    )
    assert result.exit_code == 2, result.output
    assert "holds 100 images" in result.output and "fewer than one batch of 512" in result.output


def test_an_unknown_preset_in_a_recipe_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    from nasx.train import load_recipe
    from nasx.train.recipe import RecipeError

    (tmp_path / "r.yaml").write_text("preset: quick\nepochs: 2\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: preset: unknown recipe preset 'quick'"):
        load_recipe(str(tmp_path / "r.yaml"))


def test_alias_bombs_and_deep_nesting_are_refused_at_their_line_and_column() -> None:
    from nasx.yamlfiles import YamlProblem, parse

    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(YamlProblem, match=r"^line 6, column 4: holds more than 200000 values"):
        parse("\n".join(lines) + "\n")
    with pytest.raises(YamlProblem, match=r"^line 2, column 58: invalid YAML: nested more than 50 levels deep"):
        parse("name: x\nstages: " + "[" * 3000 + "]" * 3000 + "\n")


def test_a_study_file_with_a_bad_data_source_names_the_file_and_the_field(tmp_path: Path) -> None:
    good = tiny_config(tmp_path).model_dump(mode="json")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**good, "space": "macro-cifar", "data": {"source": "nowhere.tar.gz", "val_size": 40}}))
    with pytest.raises(StudyError) as info:
        run_search(StudyConfig.load(path), root=tmp_path / "runs", space=TinySpace())
    assert str(info.value).startswith(f"{path}: data.source 'nowhere.tar.gz': ")
    assert tiny_data(tmp_path).is_dir() and json.dumps(good)


def test_a_study_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StudyError, match=r"the study folder .*afile/tiny cannot be made: "):
        run_search(tiny_config(tmp_path), root=tmp_path / "afile", space=TinySpace(), dry_run_s=0.0)


def test_candidates_too_small_for_the_fidelity_resolution_are_infeasible_with_the_reason(tmp_path: Path) -> None:
    class Strided(TinySpace):
        def sample(self, trial: optuna.Trial) -> Network:
            stride = trial.suggest_categorical("stride", [1, 2])
            return Network.from_string(f"stem[conv(out=4)] | 1*residual()@4/{stride} | 1*residual()@4/{stride}")

    cfg = tiny_config(tmp_path, fidelity={"epochs": 1, "resolution": 2}, budget={"trials": 3}, early_stopping={"kind": "none"})
    run_search(cfg, root=tmp_path / "runs", space=Strided(), dry_run_s=0.0)
    rows = status(cfg, tmp_path / "runs")[1]
    bad = [r for r in rows if r["state"] == "infeasible"]
    assert bad and all("fidelity.resolution 2 is too small: stage2 reduces the spatial size" in r["reason"] for r in bad)
    assert all("/2" in r["string"] for r in bad) and not any("/2" in (r["string"] or "") for r in rows if r not in bad)
