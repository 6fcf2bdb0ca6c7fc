"""`nasx retrain`: the front's best and the baselines retrained with seeds, tested once, recorded in the study."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import config_file_text, make_study
from typer.testing import CliRunner

from nasx.cli import app
from nasx.report import collect
from nasx.report.figures import final_figure
from nasx.report.page import write_report
from nasx.results import final_summary
from nasx.search.retrain import front_members, retrain
from nasx.search.runner import load_study
from nasx.train.recipe import Recipe

runner = CliRunner()
TINY = Recipe(name="tiny", epochs=1, batch_size=32, eval_batch_size=64, precision="fp32", channels_last=False, lr=0.05)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


def test_retrain_records_seeded_final_runs_and_the_report_draws_the_final_front(tmp_path: Path) -> None:
    cfg = make_study(tmp_path, baselines=("resnet20_cifar",))
    study = load_study(cfg, tmp_path / "runs")
    top = front_members(study, cfg, 2)
    complete = [t for t in study.trials if t.user_attrs.get("role") == "candidate" and t.user_attrs.get("state") == "complete"]
    assert [m.search_acc for m in top] == sorted((t.values[0] for t in complete), reverse=True)[:2], (
        "the most accurate are on the front"
    )
    planned: list[int] = []
    runs = retrain(cfg, root=tmp_path / "runs", top=2, recipe=TINY, seeds=2, on_start=lambda jobs: planned.append(len(jobs)))
    assert planned == [6] and len(runs) == 6, "(2 front members + 1 baseline) x 2 seeds"
    assert {r["seed"] for r in runs} == {0, 1} and all(0.0 <= r["test_acc"] <= 1.0 for r in runs)
    assert all(r["val_acc"] is None for r in runs), "trained on every training image: no validation split"
    for r in runs:
        summary = json.loads((Path(r["run_dir"]) / "summary.json").read_text())
        assert summary["test_acc"] == r["test_acc"] and (Path(r["run_dir"]) / "weights.safetensors").is_file()
    again = retrain(cfg, root=tmp_path / "runs", top=2, recipe=TINY, seeds=2, on_start=lambda jobs: planned.append(len(jobs)))
    assert planned[-1] == 0 and again == runs, "recorded runs are not trained again"
    table = final_summary(runs)
    assert len(table) == 3 and table["seeds"].tolist() == [2, 2, 2]
    base = table[table["role"] == "baseline"].iloc[0]
    accs = [r["test_acc"] for r in runs if r["role"] == "baseline"]
    assert base["test_mean"] == pytest.approx(sum(accs) / 2)
    assert base["test_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    source = collect.from_study(cfg, tmp_path / "runs")
    files = write_report([source], tmp_path / "r.html", "final")
    html = files.html.read_text()
    assert files.figures == 7 and "Final runs (official test set" in html
    specs = [json.loads(b) for b in re.findall(r'id="fig-\d+-data">(.*?)</script>', html, flags=re.S)]
    finals = [s for s in specs if s["layout"]["title"]["text"].startswith("Final runs")]
    assert len(finals) == 2
    bars = {t.name: t.error_y.array for t in final_figure([source], "macs").data}
    assert list(bars["baselines"]) == pytest.approx([100 * base["test_ci"]]) and len(bars["found (front members)"]) == 2
    assert base["test_ci"] == pytest.approx(12.706 * base["test_std"] / 2**0.5, rel=1e-3), "95% t-interval, 1 degree of freedom"


def test_retrain_command_prints_the_final_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_study(tmp_path, name="cli")
    f = tmp_path / "cli.yaml"
    f.write_text(config_file_text(cfg))
    (tmp_path / "tiny.yaml").write_text(json.dumps(TINY.model_dump(mode="json")))
    monkeypatch.chdir(tmp_path)
    args = ["retrain", str(f), "--dir", "runs", "--top", "1", "--seeds", "1", "--recipe", "tiny.yaml"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "final runs" in result.stdout and "trial" in result.stdout and (tmp_path / "reports" / "cli.html").is_file()
    exported = runner.invoke(app, ["export", str(f), "--dir", "runs", "--top", "1", "--out", "exports"])
    assert exported.exit_code == 0, exported.output
    (folder,) = [p for p in (tmp_path / "exports").iterdir()]
    assert {"genotype.yaml", "weights.safetensors", "model.onnx", "README.md"} <= {p.name for p in folder.iterdir()}
    import torch

    import nasx

    model = nasx.load(folder)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    wrong = runner.invoke(app, [*args, "--baseline", "resnet56_cifar"])
    assert wrong.exit_code == 2 and "not among the study's baselines" in wrong.output
    missing = runner.invoke(app, ["export", str(f), "--dir", "runs", "--trial", "999"])
    assert missing.exit_code == 2 and "trial 999 has no final run" in missing.output
    empty = make_study(tmp_path, name="empty", trials=0)
    g = tmp_path / "empty.yaml"
    g.write_text(config_file_text(empty))
    result = runner.invoke(app, ["retrain", str(g), "--dir", "runs", "--recipe", "tiny.yaml"])
    assert result.exit_code == 2 and "no complete front member and no baseline" in result.output


@pytest.mark.slow
def test_retrain_on_ray_runs_the_seeds_as_parallel_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    cfg = make_study(tmp_path, executor={"kind": "ray", "cpus_per_trial": 1})
    runs = retrain(cfg, root=tmp_path / "runs", top=1, recipe=TINY, seeds=2, executor="ray")
    assert len(runs) == 2 and {r["seed"] for r in runs} == {0, 1}
    assert all((Path(r["run_dir"]) / "summary.json").is_file() and r["device"] == "cpu" for r in runs)
    local = retrain(cfg, root=tmp_path / "runs", top=1, recipe=TINY, seeds=3)
    assert len(local) == 3, "the ray runs count as done: only seed 2 is trained"
    same = [r for r in local if r["seed"] < 2]
    assert same == runs


@pytest.mark.slow
def test_final_runs_on_two_data_sources_are_kept_apart(tmp_path: Path) -> None:
    from helpers import write_batches

    cfg = make_study(tmp_path, name="twodata")
    other = tmp_path / "other-batches" / "cifar-10-batches-py"
    write_batches(other, per_batch=30, n_test=10, seed=5)
    one = retrain(cfg, root=tmp_path / "runs", top=1, recipe=TINY, seeds=1)
    both = retrain(cfg, root=tmp_path / "runs", top=1, recipe=TINY, seeds=1, data=str(other))
    assert len(one) == 1 and len(both) == 2, "the second source is a new run, not the recorded one"
    assert len({r["data_sha256"] for r in both}) == 2 and len({r["setup"] for r in both}) == 2
    table = final_summary(both)
    assert len(table) == 2 and table["seeds"].tolist() == [1, 1], "never averaged across data sources"
    assert table["test_ci"].isna().all(), "one seed: no interval"
    a_recipe = TINY.model_copy(update={"lr": 0.01})  # same name, other settings: another setup too
    three = retrain(cfg, root=tmp_path / "runs", top=1, recipe=a_recipe, seeds=1)
    assert len(three) == 3 and len(final_summary(three)) == 3
