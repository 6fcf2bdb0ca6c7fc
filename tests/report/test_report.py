"""Reports from a synthetic study: the files, the figures' content, escaping, `nasx report` and `nasx compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import HOSTILE, config_file_text, make_study
from typer.testing import CliRunner

from nasx.cli import app
from nasx.report import collect
from nasx.report.figures import front_figure, progress_figure
from nasx.report.page import headline, write_report
from nasx.results import front_steps

runner = CliRunner()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, collect.Source]:
    folder = tmp_path_factory.mktemp("report")
    cfg = make_study(folder)
    return folder, collect.from_study(cfg, folder / "runs")


def figure_specs(html: str) -> list[dict]:
    blobs = re.findall(r'<script type="application/json" id="fig-\d+-data">(.*?)</script>', html, flags=re.S)
    return [json.loads(b) for b in blobs]


def test_source_reads_every_trial_with_its_final_state(study) -> None:
    _, source = study
    states = source.frame.groupby("state").size().to_dict()
    assert states == {"complete": 10, "stopped": 2, "failed": 1, "infeasible": 1}, "9 complete candidates + the baseline"
    assert source.frame.loc[source.frame["role"] == "baseline", "name"].tolist() == [HOSTILE]
    assert source.cost == "macs" and source.meta["sampler"] == "random, seed 0"
    assert "torch" in source.meta["versions"], "the search records the versions it ran with"
    assert set(source.importances) == {"stem.out", "stages.0.depth", "stages.0.block.se"}
    assert abs(sum(source.importances.values()) - 1.0) < 1e-6


def test_stopped_trials_are_drawn_apart_and_never_join_the_front(study) -> None:
    _, source = study
    fig = front_figure([source], "macs")
    traces = {t.name: t for t in fig.data}
    stopped = next(t for name, t in traces.items() if name.startswith("stopped early"))
    assert len(stopped.x) == 2 and max(stopped.y) == pytest.approx(99.0)
    front = traces["Pareto front"]
    full = source.frame[(source.frame["role"] == "candidate") & (source.frame["state"] == "complete")]
    x, y = front_steps(full["val_acc"].to_numpy(float), full["macs"].to_numpy(float))
    assert list(front.x) == list(x) and list(front.y) == pytest.approx(list(100 * y))
    assert max(front.y) < 99.0, "the stopped trials' 99% does not reach the front"
    assert fig.layout.xaxis.type == "log"
    baseline = next(t for t in fig.data if t.mode == "markers+text")
    assert list(baseline.text) == ["&lt;script&gt;alert(1)&lt;/script&gt;"], "names reach plotly escaped"


def test_hover_names_the_genotype_digest_costs_and_epochs(study) -> None:
    _, source = study
    fig = front_figure([source], "params")
    row = source.frame[(source.frame["role"] == "candidate") & (source.frame["state"] == "complete")].iloc[0]
    texts = [h for t in fig.data if t.hovertext is not None for h in t.hovertext]
    mine = next(h for h in texts if f"trial {row['number']}<" in h)
    for piece in (row["digest"], f"{int(row['params']):,}", f"{int(row['macs']):,}", "3 epochs", "residual"):
        assert str(piece) in mine


def test_progress_states_its_reference_point_and_never_decreases(study) -> None:
    _, source = study
    fig = progress_figure([source])
    hv, best = fig.data[0], fig.data[1]
    assert "reference point: accuracy 0%, macs" in fig.layout.title.text
    assert all(b >= a for a, b in zip(hv.y, hv.y[1:], strict=False)) and 0 < hv.y[-1] <= 1
    assert best.y[-1] == pytest.approx(100 * source.frame.query("role == 'candidate' and state == 'complete'")["val_acc"].max())


def test_headline_claims_beats_only_when_the_noise_allows_and_shows_n(study) -> None:
    _, source = study
    lines = headline([source])
    assert source.val_images == 40
    line = next(line for line in lines if HOSTILE in line)
    assert "n=40 val images" in line, "every accuracy shows its n"
    full = source.frame.query("role == 'candidate' and state == 'complete'")
    base = source.frame.query("role == 'baseline'").iloc[0]
    top = full[full["macs"] <= base["macs"]]["val_acc"].max()
    se = lambda p: 1.96 * (p * (1 - p) / 40) ** 0.5  # noqa: E731
    separated = top - se(top) > base["val_acc"] + se(base["val_acc"])
    beaten = top + se(top) < base["val_acc"] - se(base["val_acc"])
    assert (" beats it" in line) == separated and ("is beaten by" in line) == beaten
    assert ("within noise" in line) == (not separated and not beaten)
    assert any("selected at search fidelity" in line for line in lines)
    assert not any("± 0.00" in line for line in lines)


def test_report_files_figures_and_escaping(study, tmp_path: Path) -> None:
    _, source = study
    files = write_report([source], tmp_path / "r.html", "synthetic")
    html = files.html.read_text()
    assert files.figures == 5, "two fronts, progress, EDFs, importance"
    specs = figure_specs(html)
    assert len(specs) == 5 and all(s["data"] for s in specs)
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("<svg") >= 2, "the top models carry their diagrams"
    table = pd.read_csv(files.csv)
    parquet = pd.read_parquet(files.parquet)
    assert len(table) == len(parquet) == len(source.frame)
    assert table["digest"].fillna("").tolist() == parquet["digest"].fillna("").tolist()
    assert json.loads(parquet["curve"].iloc[0]) == source.frame["curve"].iloc[0]


def test_report_and_compare_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_file = tmp_path / "synthetic.yaml"
    cfg = make_study(tmp_path, name="other", seed=1)
    cfg_file.write_text(config_file_text(cfg))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", str(cfg_file), "--dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "other.html").is_file() and (tmp_path / "reports" / "other.parquet").is_file()
    run = tmp_path / "run"
    run.mkdir()
    summary = {"name": "resnet_run", "params": 1000, "macs": 2_000_000, "val_acc": 0.6, "test_acc": 0.58, "epochs": 3}
    (run / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "cmp.html"
    result = runner.invoke(app, ["compare", str(cfg_file), str(run), "--dir", str(tmp_path / "runs"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    specs = figure_specs(out.read_text())
    names = [t.get("name") for t in specs[0]["data"]]
    assert "Pareto front (other)" in names and "baselines and runs" in names
    assert "test 58.00%" in out.read_text()
    missing = runner.invoke(app, ["compare", "no-such-study", "--dir", str(tmp_path / "runs")])
    assert missing.exit_code == 2 and missing.output.count("error:") == 1 and "no-such-study" in missing.output


def test_compare_of_sources_trained_differently_says_so_and_claims_nothing(study, tmp_path: Path) -> None:
    _, source = study
    run = tmp_path / "other-run"
    run.mkdir()
    summary = {"name": "r", "params": 10, "macs": 1000, "val_acc": 0.99, "test_acc": 0.98, "test_images": 100, "epochs": 30}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.yaml").write_text(json.dumps({"recipe": {"name": "standard", "lr": 0.2}, "fidelity": {"epochs": 30}}))
    lines = headline([source, collect.from_run(run)])
    assert lines[0].startswith("The sources differ in recipe, fidelity, data") and "not comparable" in lines[0]
    assert not any(" beats " in line or "is beaten by" in line for line in lines)
    assert any("test 98.00% ± 2.74 (±1.96 SE, n=100 test images)" in line for line in lines)
