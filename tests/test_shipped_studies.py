"""Every shipped study (studies/*.yaml) runs end to end at micro scale, through the `nasx` command as a user types it.

Each study keeps its space, objectives, sampler, baselines, early stopping, proxy size and executor
(Ray for the GPU studies); `--set` shrinks only the data (synthetic), the epochs, the budget and the
batch, and moves GPU requests to the CPU. Then `nasx status`, `nasx report`, `nasx retrain` and
`nasx export` run on the result. A study that cannot run fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, write_batches

from nasx import zoo
from nasx.models.complexity import complexity
from nasx.search.config import StudyConfig
from nasx.space.genotype import Network

STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def nasx(*argv: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NASX_CACHE": str(cwd / "cache"), "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "nasx", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def micro(cfg: StudyConfig, data: Path) -> list[str]:
    """``--set`` options that run ``cfg`` at micro scale and change nothing else of it."""
    sets = [
        f"data.source={data}",
        "data.val_size=16",
        "fidelity.epochs=1",
        f"budget.trials={min(cfg.budget.trials, 2)}",  # a baselines-only study (the classics) keeps 0
        "budget.wall_time=null",
        "device=cpu",
    ]
    if isinstance(cfg.recipe, str):
        sets.append(f"recipe={{preset: {cfg.recipe}, batch_size: 16, eval_batch_size: 64}}")
    else:  # a preset with changes (the quickstart's): keep the changes, shrink the batches
        sets += ["recipe.batch_size=16", "recipe.eval_batch_size=64"]
    if cfg.executor.kind == "ray":
        sets += ["executor.gpus_per_trial=null", "executor.cpus_per_trial=1"]
    return [x for s in sets for x in ("--set", s)]


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_runs_end_to_end_from_the_command_line(study: Path, tmp_path: Path) -> None:
    data = tmp_path / "cifar-10-batches-py"
    write_batches(data, per_batch=16, n_test=10)
    cfg = StudyConfig.load(study)
    sets = micro(cfg, data)
    runs = ["--dir", str(tmp_path / "runs")]

    search = nasx("search", str(study), *runs, *sets, cwd=tmp_path)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    assert "Traceback" not in search.stderr

    status = nasx("status", str(study), *runs, *sets, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-2000:]
    doc = json.loads(status.stdout)
    rows = doc["trials"]
    baselines = [r for r in rows if r["role"] == "baseline"]
    assert sorted(r["name"] for r in baselines) == sorted(cfg.baselines)
    assert all(r["state"] == "complete" for r in baselines), [(r["name"], r["state"], r.get("reason")) for r in baselines]
    trained = [r for r in rows if r["role"] == "candidate" and r["state"] in ("complete", "stopped")]
    failed = [(r["number"], r.get("reason")) for r in rows if r["state"] == "failed"]
    assert not failed, failed
    assert len(trained) == min(cfg.budget.trials, 2), [(r["number"], r["state"], r.get("reason")) for r in rows]

    report = nasx("report", str(study), *runs, *sets, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "reports" / f"{cfg.name}.html").stat().st_size > 100_000

    cheapest = min(cfg.baselines, key=lambda b: complexity(zoo.get(b)).macs) if cfg.baselines else None
    only = ["--baseline", cheapest] if cheapest else []
    small = tmp_path / "standard-b16.yaml"
    small.write_text("preset: standard\nbatch_size: 16\neval_batch_size: 64\nlr: 0.02\n")  # 4 steps: keep BN sane
    retrain = nasx(
        "retrain",
        str(study),
        *runs,
        *sets,
        "--recipe",
        str(small),
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--top",
        "1",
        *only,
        cwd=tmp_path,
    )
    assert retrain.returncode == 0, retrain.stdout[-2000:] + retrain.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs" / cfg.name).rglob("summary.json")]
    assert len(summaries) == bool(trained) + bool(only), "one final run per retrained model"
    by_digest = {r["digest"]: r for r in rows if r.get("digest")}
    for summary in summaries:  # final runs train the evaluation network, never the search proxy
        assert summary["epochs"] == 1 and summary["test_acc"] is not None
        assert summary["params"] == by_digest[summary["digest"]]["params"]
        assert "trained_params" not in summary

    which = ["--top", "1"] if trained else ["--trial", str(next(r["number"] for r in baselines if r["name"] == cheapest))]
    export = nasx("export", str(study), *runs, *sets, *which, "--out", str(tmp_path / "exports"), cwd=tmp_path)
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-2000:]
    folders = [p for p in (tmp_path / "exports").iterdir() if p.is_dir()]
    assert len(folders) == 1 and (folders[0] / "model.onnx").is_file()
    exported = Network.from_yaml((folders[0] / "genotype.yaml").read_text())
    cost = json.loads((folders[0] / "complexity.json").read_text())
    assert cost["params"] == complexity(exported).params == by_digest[exported.digest]["params"]
