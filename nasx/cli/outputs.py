"""``nasx export``, ``nasx report``, ``nasx compare``: model folders and reports."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from nasx.cli.common import (
    RootOption,
    SetOption,
    StudyArgument,
    app,
    err,
    friendly,
    out,
    overlay_sources,
    save_report,
    study_config,
)


@app.command("export")
@friendly
def export_models(
    source: Annotated[str, typer.Argument(help="A study config (or its name in studies/), or a `nasx train` run folder.")],
    out_dir: Annotated[str, typer.Option("--out", help="Folder of model folders (one per model).")] = "exports",
    trial: Annotated[int | None, typer.Option(help="Export this trial's final run.")] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Export the K best retrained front members.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Which seed's final run to export.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace a previous export of the same model.")] = False,
    overrides: SetOption = None,
    root: RootOption = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of text.")] = False,
) -> None:
    """Export trained models, one folder each: genotype (YAML and string), weights (safetensors), an
    ONNX file checked against torch with onnxruntime, the recipe, complexity, metrics and a README.

    Load one with `nasx.load(FOLDER)`. From a study, the weights are those of `nasx retrain`'s final runs.
    """
    from pathlib import Path

    from nasx.export import export_run

    out_root = Path(out_dir)
    if Path(source).is_dir():
        targets = [(Path(source).name, Path(source))]
    else:
        from nasx.search.retrain import export_folders

        targets = export_folders(study_config(source, overrides), Path(root), trial=trial, top=top, seed=seed)
    table = Table(title="exported models")
    for col in ("model", "folder", "params", "MACs", "ONNX max |diff|"):
        table.add_column(col, justify="left" if col in ("model", "folder") else "right")
    done = []
    for label, run_dir in targets:
        with err.status(f"exporting {escape(label)} (ONNX export and onnxruntime check)"):
            result = export_run(run_dir, out_root / label, name=label, overwrite=overwrite)
        table.add_row(label, str(result.folder), f"{result.params:,}", f"{result.macs:,}", f"{result.onnx_max_abs_diff:.2e}")
        done.append(
            {
                "model": label,
                "folder": str(result.folder),
                "params": result.params,
                "macs": result.macs,
                "onnx_max_abs_diff": result.onnx_max_abs_diff,
            }
        )
    if as_json:
        print(json.dumps(done, indent=2))
    else:
        out.print(table)


@app.command()
@friendly
def report(
    study: StudyArgument,
    out_file: Annotated[
        str | None, typer.Option("--out", help="The HTML file (default reports/NAME.html); .csv and .parquet go beside it.")
    ] = None,
    overrides: SetOption = None,
    root: RootOption = "runs",
    overlay: Annotated[
        list[str] | None,
        typer.Option(help="A finished classics study whose hand-designed front the fronts draw (default: the config's overlay)."),
    ] = None,
) -> None:
    """Write a study's report: one self-contained HTML page plus the trial table as CSV and parquet.

    The page holds the Pareto fronts (accuracy vs MACs and params, with the baselines), the
    search progress (hypervolume, best so far), error EDFs and fANOVA importances, the front's
    models with diagrams, and what was run. It opens from disk with no network.
    """
    from pathlib import Path

    from nasx.report import collect

    cfg = study_config(study, overrides)
    names = overlay if overlay else ([cfg.overlay] if cfg.overlay else [])
    save_report([collect.from_study(cfg, Path(root))], out_file, cfg.name, overlay_sources(names, root, strict=bool(overlay)))


@app.command()
@friendly
def compare(
    items: Annotated[list[str], typer.Argument(help="Study configs (or names in studies/) and `nasx train` run folders.")],
    out_file: Annotated[str | None, typer.Option("--out", help="The HTML file (default reports/compare-A-B....html).")] = None,
    title: Annotated[str | None, typer.Option(help="The report's title (default: the names joined).")] = None,
    root: RootOption = "runs",
) -> None:
    """Put several studies and training runs on one front: e.g. two samplers on one space, or a
    found model against ResNet retrained in full. Each study keeps its own front line and progress."""
    from pathlib import Path

    from nasx.report import collect

    sources = [collect.resolve(item, Path(root)) for item in items]
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise typer.BadParameter(f"the studies and runs must have distinct names, got {labels}")
    save_report(sources, out_file, title or "compare-" + "-".join(labels))
