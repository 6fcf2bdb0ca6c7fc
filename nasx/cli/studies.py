"""``nasx search``, ``nasx status``, ``nasx retrain``: running a study, its progress, its final runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from nasx.cli.common import (
    RecipeOption,
    RootOption,
    SetOption,
    StudyArgument,
    acc_text,
    app,
    err,
    friendly,
    out,
    progress_view,
    study_config,
    study_report,
)

TABLE_TITLE = "baselines, the front (*) and the best trials"


def _results_table(rows: list[dict[str, Any]], front: set[int], title: str, n: int | None = None) -> Table:
    table = Table(title=escape(title))
    for col, justify in [("#", "right"), ("role", "left"), ("state", "left"), ("family", "left"), ("params", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    val = f"val acc (±1.96 SE, n={n} val images)" if n else "val acc (n unknown)"
    for col in ("MACs", val, "epochs", "front"):
        table.add_column(col, justify="right")
    from nasx.results.noise import single_run
    from nasx.search.queries import summary_rows
    from nasx.search.record import Role

    for r in summary_rows(rows, front):
        half = None if r["val_acc"] is None or not n else single_run(r["val_acc"], n).half
        acc = "" if r["val_acc"] is None else f"{100 * r['val_acc']:.2f}%" + ("" if half is None else f" ± {100 * half:.2f}")
        table.add_row(
            str(r["number"]),
            r["role"] + (f" {r['name']}" if r["role"] == Role.BASELINE else ""),
            r["state"],
            r["family"] or "",
            "" if r["params"] is None else f"{r['params']:,}",
            "" if r["macs"] is None else f"{r['macs']:,}",
            acc,
            str(r["epochs"]),
            "*" if r["number"] in front else "",
        )
    return table


def _final_table(runs: list[dict[str, Any]], title: str) -> Table:
    from nasx.report.figures import final_estimate
    from nasx.results import final_summary

    table = Table(title=escape(title))
    for col, justify in [("model", "left"), ("role", "left"), ("setup", "left"), ("params", "right"), ("MACs", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for col in ("test acc (mean, 95% t-interval over seeds)", "search val acc (selection)"):
        table.add_column(col, justify="right")
    for r in final_summary(runs).itertuples():
        search = "" if r.search_acc != r.search_acc else f"{100 * r.search_acc:.2f}%"  # NaN: not recorded
        data = f" d{str(r.data_sha256)[:6]}" if isinstance(r.data_sha256, str) else ""
        table.add_row(
            r.label,
            r.role,
            f"{r.recipe} e{r.epochs}{data}",
            f"{r.params:,}",
            f"{r.macs:,}",
            final_estimate(r).text(),
            search,
        )
    return table


@app.command()
@friendly
def search(
    study: Annotated[str, typer.Argument(help="A study config YAML (see studies/), or its name in studies/.")],
    trials: Annotated[int | None, typer.Option(min=1, help="Trial budget (overrides the config's budget.trials).")] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray (overrides the config).")] = None,
    overrides: SetOption = None,
    root: RootOption = "runs",
    report: Annotated[bool, typer.Option(help="Write the study's report (reports/NAME.html) when the search ends.")] = True,
) -> None:
    """Run a search; run it again after Ctrl-C or a crash to continue the same study."""
    from pathlib import Path

    from nasx.search import run_search
    from nasx.search.queries import front_numbers
    from nasx.search.queries import progress as study_progress
    from nasx.search.record import Status

    cfg = study_config(study, overrides)
    if executor not in (None, "local", "ray"):
        raise typer.BadParameter(f"--executor must be local or ray, got {executor!r}")
    budget = trials or cfg.budget.trials
    view = progress_view("{task.description}")
    task = view.add_task("trials", total=budget, stats="")
    state: dict[str, Any] = {}

    def on_start(ctx: Any, retried: list[int]) -> None:
        state["study"] = ctx.study
        p = study_progress(ctx.study)
        view.update(task, completed=p.trials)
        if retried:
            view.console.print(
                f"resumed: trials {retried} were left running by a stopped search: marked failed, retried by the failure policy"
            )
        elif p.trials:
            view.console.print(f"resumed: {p.trials} trials already done")

    def on_outcome(outcome: Any) -> None:
        p = study_progress(state["study"])
        best = "" if p.best_acc is None else f"best {acc_text(p.best_acc, p.val_images)}"
        counts = " ".join(f"{k} {v}" for k, v in sorted(p.by_state.items()))
        view.update(task, completed=p.trials, stats=f"{counts}  {best}  front {p.front}")
        if outcome.state in (
            Status.INFEASIBLE,
            Status.SCREENED,
        ):  # counted in the bar; one line each would drown the trained ones
            return
        reason = f" ({outcome.reason.splitlines()[0]})" if outcome.reason and outcome.state != Status.COMPLETE else ""
        acc = f" val {acc_text(outcome.values[0], study_progress(state['study']).val_images)}" if outcome.values else ""
        view.console.print(f"trial {outcome.number}: {outcome.state}{acc}{reason}", highlight=False, markup=False)

    try:
        with view:
            summary = run_search(cfg, root=Path(root), trials=trials, executor=executor, on_outcome=on_outcome, on_start=on_start)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: finished trials are stored in {escape(str(Path(root) / cfg.name))}; run the same command to continue"
        )
        raise typer.Exit(130) from None
    front = set(front_numbers(summary.rows, cfg.objectives))
    out.print(_results_table(summary.rows, front, f"{cfg.name}: {TABLE_TITLE}", summary.progress.val_images))
    p = summary.progress
    counts = ", ".join(f"{v} {k}" for k, v in sorted(p.by_state.items()))
    out.print(
        f"{p.trials} trials ({counts}), {p.baselines} baselines, {p.elapsed:.0f}s; study folder {summary.folder}", highlight=False
    )
    if report:
        study_report(cfg, root)


@app.command()
@friendly
def status(
    study: StudyArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    overrides: SetOption = None,
    root: RootOption = "runs",
) -> None:
    """Progress and results of a study: counts by state, best accuracy, the front, the baselines."""
    from dataclasses import asdict
    from pathlib import Path

    from nasx.search import status as study_status
    from nasx.search.queries import front_numbers

    cfg = study_config(study, overrides)
    p, rows = study_status(cfg, Path(root))
    front = set(front_numbers(rows, cfg.objectives))
    if as_json:
        print(json.dumps({"progress": asdict(p), "front": sorted(front), "trials": rows}, indent=2))
        return
    out.print(_results_table(rows, front, f"{cfg.name}: {TABLE_TITLE}", p.val_images))
    counts = ", ".join(f"{v} {k}" for k, v in sorted(p.by_state.items()))
    best = acc_text(p.best_acc, p.val_images)
    out.print(f"{p.trials} trials ({counts}), {p.baselines} baselines, best val {best}, front {p.front}, {p.elapsed:.0f}s")


@app.command()
@friendly
def retrain(
    study: StudyArgument,
    top: Annotated[int, typer.Option(min=0, help="How many front members to retrain (most accurate first).")] = 3,
    recipe: RecipeOption = "standard",
    seeds: Annotated[int, typer.Option(min=1, help="Runs per model, seeds 0..N-1.")] = 3,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: the recipe's).")] = None,
    data: Annotated[str | None, typer.Option(help="Data source (default: the study's), e.g. the full CIFAR-10 archive.")] = None,
    val_size: Annotated[
        float, typer.Option(min=0.0, help="Hold out a validation split (count or fraction); 0 trains on every training image.")
    ] = 0.0,
    baseline: Annotated[
        list[str] | None, typer.Option(help="Retrain only this of the study's baselines (repeat for several; default all).")
    ] = None,
    executor: Annotated[
        str, typer.Option(help="local (one after another) or ray (parallel tasks, the study's resources).")
    ] = "local",
    overrides: SetOption = None,
    root: RootOption = "runs",
    report: Annotated[bool, typer.Option(help="Rewrite the study's report with the final front.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of text.")] = False,
) -> None:
    """Retrain the best front members and the baselines at full fidelity with several seeds; test once.

    Each run is a `nasx train` folder under runs/STUDY/final/ and is recorded in the study; run
    the command again after an interruption to continue (finished runs are kept).
    """
    from pathlib import Path

    from nasx.search.retrain import retrain as run_retrain
    from nasx.train import load_recipe

    cfg = study_config(study, overrides)
    rec = load_recipe(recipe)
    view = progress_view("{task.description}")
    task = view.add_task("final runs", total=1, stats="")
    done: dict[str, Any] = {"epochs": 0}

    def on_start(jobs: list[Any]) -> None:
        n_epochs = done["per_run"] = epochs or rec.epochs
        view.update(task, total=max(1, len(jobs) * n_epochs))
        view.console.print(f"{len(jobs)} runs to train ({n_epochs} epochs each)" if jobs else "every final run is recorded")

    def on_epoch(m: Any) -> None:
        done["epochs"] += 1
        view.update(task, completed=done["epochs"], stats=f"loss {m.train_loss:.3f}")

    def on_run(job: Any, entry: dict[str, Any]) -> None:
        done["runs"] = done.get("runs", 0) + 1  # with ray, epochs are not reported back: count whole runs
        view.update(task, completed=max(done["epochs"], done["runs"] * done["per_run"]))
        view.console.print(
            f"{job.model.label} seed {job.seed}: test {100 * entry['test_acc']:.2f}%  ({entry['train_seconds']:.0f}s)",
            highlight=False,
            markup=False,
        )

    try:
        with view:
            runs = run_retrain(
                cfg,
                root=Path(root),
                top=top,
                recipe=rec,
                seeds=seeds,
                epochs=epochs,
                data=data,
                val_size=val_size,
                executor=executor,
                only_baselines=tuple(baseline) if baseline else None,
                on_start=on_start,
                on_run=on_run,
                callback=on_epoch,
            )
    except KeyboardInterrupt:
        err.print("interrupted: finished runs are recorded and the current one is checkpointed; run the same command to continue")
        raise typer.Exit(130) from None
    if as_json:
        from nasx.results import final_summary

        table = final_summary(runs).drop(columns=["string"]).astype(object)
        summary = table.where(table.notna(), None).to_dict("records")
        print(json.dumps({"runs": runs, "summary": summary}, indent=2, default=str))
    else:
        out.print(_final_table(runs, f"{cfg.name}: final runs (official test set)"))
    if report:
        study_report(cfg, root, err if as_json else out)
