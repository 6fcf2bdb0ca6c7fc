"""The ``nasx`` command line (also ``python -m nasx``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nasx.errors import NasxError, RuntimeFailure

app = typer.Typer(
    name="nasx",
    help="Neural-architecture search and design-space explorer: classic CNNs and found cells in one genotype language.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
if not out.is_terminal:  # piped or captured: do not fold tables at 80 columns
    out = Console(width=200)
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    """Report nasx errors as one clear message with no traceback: exit 1 for a runtime failure (training failed, an
    export check failed, damaged data: :class:`RuntimeFailure`), 2 for a usage error (a bad argument or file)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NasxError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(1 if isinstance(exc, RuntimeFailure) else 2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"nasx {version('nasx')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """nasx: networks as data, searched and compared on one chart."""


def _gmacs(macs: int) -> str:
    g = macs / 1e9
    return f"{g:.4f}" if g >= 1 else f"{g:.4g}"


def _progress_view(first: str) -> Any:
    """A transient progress bar on stderr: ``first`` column, bar, m/n, live stats, elapsed, remaining."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn(first),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@app.command()
@_friendly
def zoo(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the classic networks with their params and MACs (measured, batch 1, stated input)."""
    from nasx import zoo as registry
    from nasx.models.complexity import complexity

    rows = []
    for name in registry.names():
        net = registry.get(name)
        c = complexity(net)
        rows.append(
            {
                "name": name,
                "family": registry.family(net),
                "input_size": list(net.input.shape),
                "classes": net.input.classes,
                "params": c.params,
                "macs": c.macs,
                "digest": net.digest,
                "reference": net.reference,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="nasx zoo (params: all, classifier included; MACs: conv + linear, batch 1)")
    for col, justify in [
        ("name", "left"),
        ("family", "left"),
        ("input", "left"),
        ("params", "right"),
        ("GMACs", "right"),
        ("reference", "left"),
    ]:
        table.add_column(col, justify=justify, no_wrap=col != "reference")  # type: ignore[arg-type]
    for r in rows:
        c, h, w = r["input_size"]
        ref = r["reference"].split(" (")[0].split(",")[0].split(":")[0]
        table.add_row(r["name"], r["family"], f"{c}x{h}x{w}", f"{r['params']:,}", _gmacs(r["macs"]), ref)
    out.print(table)


@app.command()
@_friendly
def describe(
    network: Annotated[str, typer.Argument(help="A zoo name (see `nasx zoo`) or the path of a genotype YAML file.")],
    batch: Annotated[int, typer.Option(min=1, help="Batch size for the activation-memory estimate.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Per-stage breakdown of one network: output shape, params, MACs; plus its string form and digest."""
    from nasx import zoo as registry
    from nasx.models.complexity import activation_memory, collapse_warnings, complexity
    from nasx.space.genotype import cell_lines

    net = registry.resolve(network)
    c = complexity(net)
    act = activation_memory(net, batch=batch)
    for line in collapse_warnings(net):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    if as_json:
        doc = {
            "name": net.name,
            "family": registry.family(net),
            "input_size": list(net.input.shape),
            "params": c.params,
            "macs": c.macs,
            "digest": net.digest,
            "string": net.to_string(),
            "cells": cell_lines(net),
            "activation_bytes": act,
            "activation_batch": batch,
            "modules": [{"where": w, "out_shape": list(sh), "summary": t} for w, sh, t in registry.module_lines(net)],
            "parts": [
                {"name": p.name, "blocks": p.blocks, "out_shape": list(p.out_shape), "params": p.params, "macs": p.macs}
                for p in c.parts
            ],
        }
        print(json.dumps(doc, indent=2))
        return
    title = escape(f"{net.name or network}  [{registry.family(net)}]  input {c.input_shape}")
    table = Table(title=title)
    for col, justify in [
        ("part", "left"),
        ("blocks", "right"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("% MACs", "right"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in c.parts:
        shape = "x".join(map(str, p.out_shape))
        share = 100 * p.macs / c.macs if c.macs else 0.0
        table.add_row(p.name, str(p.blocks), shape, f"{p.params:,}", f"{p.macs:,}", f"{share:.1f}")
    table.add_section()
    table.add_row("total", "", "", f"{c.params:,}", f"{c.macs:,}", "100.0")
    out.print(table)
    modules = registry.module_lines(net)
    if modules:
        out.print("modules (branches |, steps >, forks [a, b]):")
    for where, shape, text in modules:
        out.print(f"  {where:<11} {shape!s:<12} {text}", soft_wrap=True, highlight=False, markup=False)
    out.print(f"GMACs {c.macs / 1e9:.4f}   GFLOPs {c.flops / 1e9:.4f}   digest {net.digest}")
    out.print(f"activation memory (training forward, fp32, batch {batch}): ~{act / 2**20:,.1f} MiB")
    out.print(f"string: {net.to_string()}", soft_wrap=True, highlight=False, markup=False)
    for line in cell_lines(net):
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    if net.reference:
        out.print(f"reference: {net.reference}", soft_wrap=True, highlight=False, markup=False)


@app.command()
@_friendly
def space(
    name: Annotated[
        str | None, typer.Argument(help="A shipped design space (see `nasx space`) or the path of a design-space YAML file.")
    ] = None,
    params: Annotated[bool, typer.Option("--params", help="List every parameter with its distribution and condition.")] = False,
) -> None:
    """A design space's size (points), parameter count and the zoo networks it contains; without NAME, every shipped space."""
    from nasx.space.design import load_space, space_names

    if name is None:
        table = Table(title="nasx design spaces (points: parameter assignments)")
        for col in ("name", "points", "parameters", "contains"):
            table.add_column(col, justify="right" if col in ("points", "parameters") else "left")
        for n in space_names():
            sp = load_space(n)
            table.add_row(n, str(sp.size()), str(len(sp.params())), ", ".join(sp.members))
        out.print(table)
        return
    sp = load_space(name)
    text = sp.describe()
    lines = text.splitlines() if params else [line for line in text.splitlines() if not line.startswith("  ")]
    for line in lines:
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    if sp.description:
        out.print(sp.description, soft_wrap=True, highlight=False, markup=False)
    if not params:
        out.print("(--params lists every parameter)", highlight=False, markup=False)


@app.command()
@_friendly
def train(
    network: Annotated[str, typer.Argument(help="A zoo name (see `nasx zoo`) or the path of a genotype YAML file.")],
    data: Annotated[
        str,
        typer.Option(
            help="'mini' (bundled 10k-image CIFAR-10 subset), 'download' (official archive, cached), "
            "cifar-10-python.tar.gz or its folder, or an ImageFolder folder / .tar.gz."
        ),
    ] = "mini",
    recipe: Annotated[str, typer.Option(help="A preset (search, standard, fast) or a recipe YAML file.")] = "standard",
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: the recipe's).")] = None,
    fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of the training split to train on.")] = 1.0,
    resolution: Annotated[int | None, typer.Option(min=1, help="Train at this image side (default: the network's).")] = None,
    val_size: Annotated[
        float | None,
        typer.Option(
            help="Validation images held out of the training set, or a fraction (default 0.1: 5,000 of CIFAR-10's 50,000)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and augmentation.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/val split.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available).")] = None,
    out_dir: Annotated[
        str | None, typer.Option("--out", help="Run folder (default runs/NAME-RECIPE-eEPOCHS-sSEED; rerun to resume).")
    ] = None,
    test: Annotated[bool, typer.Option(help="Also measure the official test set once, after training.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of text.")] = False,
) -> None:
    """Train one network; write config, per-epoch metrics (JSONL), weights (safetensors) and a summary.

    Interrupted runs resume from their last epoch when the same command is run again.
    """
    from pathlib import Path

    from nasx import data as datasets
    from nasx import zoo as registry
    from nasx.models.complexity import collapse_warnings
    from nasx.train import EpochMetrics, Fidelity, load_recipe, train_run
    from nasx.train.loop import check_data, check_device, check_resolution
    from nasx.train.run import run_name

    if not 0 < fraction <= 1:
        raise typer.BadParameter(f"must lie in (0, 1], got {fraction}", param_hint="--fraction")
    net = registry.resolve(network)
    rec = load_recipe(recipe)
    fid = Fidelity(epochs=epochs, fraction=fraction, resolution=resolution)
    check_device(device, where="--device")  # before the data is loaded or the run folder made
    check_resolution(net, fid, where="--resolution")
    n_epochs = fid.epochs_for(rec)
    val = datasets.DEFAULT_VAL_FRACTION if val_size is None else datasets.as_val_size(val_size)
    splits = datasets.load_splits(data, val_size=val, seed=split_seed)
    registry.check_fits(net, net.name or network, splits.train.images.shape[1], len(splits.classes))
    check_data(splits, rec, fid, classes=net.input.classes, where=f"--data {data}")
    test_set = datasets.load_test(data) if test else None
    name = net.name or Path(network).stem
    run_dir = Path(out_dir) if out_dir else Path("runs") / run_name(name, rec.name, n_epochs, seed)
    for line in collapse_warnings(net, fid.resolution):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    err.print(
        f"training {escape(name)} on {escape(splits.source)}: {len(splits.train):,} train / {len(splits.val):,} val, "
        f"recipe {escape(rec.name)}, {n_epochs} epochs -> {escape(str(run_dir))}",
        highlight=False,
    )
    progress = _progress_view("epoch {task.fields[epoch]}/{task.fields[epochs]}")
    from nasx.data.loader import stratified_fraction

    used = len(splits.train) if fraction >= 1 else len(stratified_fraction(splits.train.labels, fraction, seed))
    n_batches = used // rec.batch_size
    stats = [""]
    task = progress.add_task("train", total=n_batches, epoch=1, epochs=n_epochs, stats="")

    def on_step(epoch: int, batch: int) -> None:
        if batch == 1:
            progress.reset(task, total=n_batches, epoch=epoch, epochs=n_epochs, stats=stats[0])
        progress.update(task, completed=batch)

    def on_epoch(m: EpochMetrics) -> None:
        stats[0] = f"loss {m.train_loss:.3f}  val {100 * m.val_acc:.2f}%  {m.images_per_s:,.0f} img/s"
        progress.console.print(
            f"epoch {m.epoch:>3}/{n_epochs}  loss {m.train_loss:.4f}  train {100 * m.train_acc:6.2f}%  "
            f"val {100 * m.val_acc:6.2f}%  lr {m.lr:.4f}  {m.seconds:6.1f}s  {m.images_per_s:,.0f} img/s",
            highlight=False,
        )

    try:
        with progress:
            _, summary = train_run(
                net, splits, rec, fid, run_dir, seed=seed, device=device, callback=on_epoch, on_step=on_step, test=test_set
            )
    except KeyboardInterrupt:
        err.print(f"interrupted: finished epochs are checkpointed in {escape(str(run_dir))}; run the same command to resume")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps({**summary, "val_images": len(splits.val), "run_dir": str(run_dir)}, indent=2))
        return
    from nasx.results.noise import single_run

    line = f"val {single_run(summary['val_acc'], len(splits.val)).text()}" if summary["val_acc"] is not None else "no val"
    if "test_acc" in summary and test_set is not None:
        line += f"  test {single_run(summary['test_acc'], len(test_set), 'test images').text()}"
    out.print(
        f"{line}  ({summary['epochs']} epochs, {summary['train_seconds']:.0f}s training, {summary['images_per_s']:,.0f} img/s, "
        f"{summary['device']} {summary['precision']})  run folder: {run_dir}",
        highlight=False,
        soft_wrap=True,
    )


#: ``--set PATH=VALUE``: shared by every command that reads a study config.
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a setting of the study file, PATH=VALUE with VALUE as YAML; repeat for several "
        "(e.g. --set fidelity.epochs=1 --set data.source=mini). Give the same ones to every command on that study.",
    ),
]


def _study_config(study: str, overrides: list[str] | None = None) -> Any:
    from nasx.search.config import StudyConfig, StudyError, study_file

    path = study_file(study)
    if path is None:
        raise StudyError(f"no study config {study!r} (a YAML file, or a name in studies/)")
    return StudyConfig.load(path, overrides or ())


def _acc(acc: float | None, n: int | None) -> str:
    """A search accuracy with its n: ``47.25% ± 3.46 (±1.96 SE, n=800 val images)``."""
    from nasx.results.noise import single_run

    return "-" if acc is None else single_run(acc, n).text()


def _results_table(rows: list[dict[str, Any]], front: set[int], title: str, n: int | None = None) -> Table:
    table = Table(title=escape(title))
    for col, justify in [("#", "right"), ("role", "left"), ("state", "left"), ("family", "left"), ("params", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    val = f"val acc (±1.96 SE, n={n} val images)" if n else "val acc (n unknown)"
    for col in ("MACs", val, "epochs", "front"):
        table.add_column(col, justify="right")
    from nasx.results.noise import single_run
    from nasx.search.record import Role, Status

    shown = [r for r in rows if r["role"] == Role.BASELINE or r["number"] in front]
    shown += sorted((r for r in rows if r not in shown and r["state"] == Status.COMPLETE), key=lambda r: -(r["val_acc"] or 0))[
        : max(0, 12 - len(shown))
    ]
    for r in sorted(shown, key=lambda r: (r["role"] != Role.BASELINE, -(r["val_acc"] or 0))):
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


def _front_numbers(rows: list[dict[str, Any]], objectives: tuple[Any, ...]) -> set[int]:
    """The study's front (:func:`nasx.results.front`, the one definition) as a set of trial numbers."""
    from nasx.results import front

    return set(front(rows, [o.value for o in objectives[1:]]))


@app.command()
@_friendly
def search(
    study: Annotated[str, typer.Argument(help="A study config YAML (see studies/), or its name in studies/.")],
    trials: Annotated[int | None, typer.Option(min=1, help="Trial budget (overrides the config's budget.trials).")] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray (overrides the config).")] = None,
    overrides: SetOption = None,
    root: Annotated[str, typer.Option("--dir", help="Folder of study folders.")] = "runs",
    report: Annotated[bool, typer.Option(help="Write the study's report (reports/NAME.html) when the search ends.")] = True,
) -> None:
    """Run a search; run it again after Ctrl-C or a crash to continue the same study."""
    from pathlib import Path

    from nasx.search import run_search
    from nasx.search.queries import progress as study_progress
    from nasx.search.record import Status

    cfg = _study_config(study, overrides)
    if executor not in (None, "local", "ray"):
        raise typer.BadParameter(f"--executor must be local or ray, got {executor!r}")
    budget = trials or cfg.budget.trials
    view = _progress_view("{task.description}")
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
        best = "" if p.best_acc is None else f"best {_acc(p.best_acc, p.val_images)}"
        counts = " ".join(f"{k} {v}" for k, v in sorted(p.by_state.items()))
        view.update(task, completed=p.trials, stats=f"{counts}  {best}  front {p.front}")
        if outcome.state in (
            Status.INFEASIBLE,
            Status.SCREENED,
        ):  # counted in the bar; one line each would drown the trained ones
            return
        reason = f" ({outcome.reason.splitlines()[0]})" if outcome.reason and outcome.state != Status.COMPLETE else ""
        acc = f" val {_acc(outcome.values[0], study_progress(state['study']).val_images)}" if outcome.values else ""
        view.console.print(f"trial {outcome.number}: {outcome.state}{acc}{reason}", highlight=False, markup=False)

    try:
        with view:
            summary = run_search(cfg, root=Path(root), trials=trials, executor=executor, on_outcome=on_outcome, on_start=on_start)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: finished trials are stored in {escape(str(Path(root) / cfg.name))}; run the same command to continue"
        )
        raise typer.Exit(130) from None
    front = _front_numbers(summary.rows, cfg.objectives)
    title = f"{cfg.name}: baselines, the front (*) and the best trials"
    out.print(_results_table(summary.rows, front, title, summary.progress.val_images))
    p = summary.progress
    counts = ", ".join(f"{v} {k}" for k, v in sorted(p.by_state.items()))
    out.print(
        f"{p.trials} trials ({counts}), {p.baselines} baselines, {p.elapsed:.0f}s; study folder {summary.folder}", highlight=False
    )
    if report:
        from nasx.report import collect

        overlays = _overlays([cfg.overlay] if cfg.overlay else [], root, strict=False)
        _write_report([collect.from_study(cfg, Path(root))], None, cfg.name, overlays)


@app.command()
@_friendly
def status(
    study: Annotated[str, typer.Argument(help="A study config YAML, or its name in studies/.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    overrides: SetOption = None,
    root: Annotated[str, typer.Option("--dir", help="Folder of study folders.")] = "runs",
) -> None:
    """Progress and results of a study: counts by state, best accuracy, the front, the baselines."""
    from dataclasses import asdict
    from pathlib import Path

    from nasx.search import status as study_status

    cfg = _study_config(study, overrides)
    p, rows = study_status(cfg, Path(root))
    front = _front_numbers(rows, cfg.objectives)
    if as_json:
        print(json.dumps({"progress": asdict(p), "front": sorted(front), "trials": rows}, indent=2))
        return
    out.print(_results_table(rows, front, f"{cfg.name}: baselines, the front (*) and the best trials", p.val_images))
    counts = ", ".join(f"{v} {k}" for k, v in sorted(p.by_state.items()))
    best = _acc(p.best_acc, p.val_images)
    out.print(f"{p.trials} trials ({counts}), {p.baselines} baselines, best val {best}, front {p.front}, {p.elapsed:.0f}s")


@app.command()
@_friendly
def retrain(
    study: Annotated[str, typer.Argument(help="A study config YAML, or its name in studies/.")],
    top: Annotated[int, typer.Option(min=0, help="How many front members to retrain (most accurate first).")] = 3,
    recipe: Annotated[str, typer.Option(help="A preset (search, standard, fast) or a recipe YAML file.")] = "standard",
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
    root: Annotated[str, typer.Option("--dir", help="Folder of study folders.")] = "runs",
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

    cfg = _study_config(study, overrides)
    rec = load_recipe(recipe)
    view = _progress_view("{task.description}")
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
        from nasx.report import collect

        overlays = _overlays([cfg.overlay] if cfg.overlay else [], root, strict=False)
        _write_report([collect.from_study(cfg, Path(root))], None, cfg.name, overlays, err if as_json else out)


@app.command("export")
@_friendly
def export_models(
    source: Annotated[str, typer.Argument(help="A study config (or its name in studies/), or a `nasx train` run folder.")],
    out_dir: Annotated[str, typer.Option("--out", help="Folder of model folders (one per model).")] = "exports",
    trial: Annotated[int | None, typer.Option(help="Export this trial's final run.")] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Export the K best retrained front members.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Which seed's final run to export.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace a previous export of the same model.")] = False,
    overrides: SetOption = None,
    root: Annotated[str, typer.Option("--dir", help="Folder of study folders.")] = "runs",
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
        from nasx.search.retrain import export_targets
        from nasx.search.runner import load_study

        cfg = _study_config(source, overrides)
        runs = export_targets(load_study(cfg, Path(root)), trial=trial, top=top, seed=seed)
        from nasx.train.run import safe_part

        targets = [(safe_part(f"{cfg.name}-{r['label']}"), Path(r["run_dir"])) for r in runs]
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


def _overlays(names: list[str], root: str, strict: bool) -> list[Any]:
    """The classics studies to overlay; a missing one is an error when asked for on the command line
    (``strict``), a warning when it comes from the study's ``overlay:`` (the search's own report still gets written)."""
    from pathlib import Path

    from nasx.report import collect

    found = []
    for name in names:
        try:
            found.append(collect.overlay(name, Path(root)))
        except NasxError as exc:
            if strict:
                raise
            err.print(f"[yellow]warning:[/] not overlaid: {escape(str(exc))}", soft_wrap=True)
    return found


def _write_report(
    sources: list[Any], out_file: str | None, title: str, overlays: list[Any] | None = None, console: Console | None = None
) -> None:
    import re
    from pathlib import Path

    from nasx.report.page import write_report

    path = Path(out_file) if out_file else Path("reports") / (re.sub(r"[^A-Za-z0-9_.-]+", "_", title) + ".html")
    if path.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"--out must end in .html, got {str(path)!r}")
    with err.status("writing the report (figures, fANOVA, diagrams)"):
        files = write_report(sources, path, title, overlays or [])
    (console or out).print(
        f"report: {files.html}  ({files.figures} figures; trial table: {files.csv.name}, {files.parquet.name})", highlight=False
    )


@app.command()
@_friendly
def report(
    study: Annotated[str, typer.Argument(help="A study config YAML, or its name in studies/.")],
    out_file: Annotated[
        str | None, typer.Option("--out", help="The HTML file (default reports/NAME.html); .csv and .parquet go beside it.")
    ] = None,
    overrides: SetOption = None,
    root: Annotated[str, typer.Option("--dir", help="Folder of study folders.")] = "runs",
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

    cfg = _study_config(study, overrides)
    names = overlay if overlay else ([cfg.overlay] if cfg.overlay else [])
    _write_report([collect.from_study(cfg, Path(root))], out_file, cfg.name, _overlays(names, root, strict=bool(overlay)))


@app.command()
@_friendly
def compare(
    items: Annotated[list[str], typer.Argument(help="Study configs (or names in studies/) and `nasx train` run folders.")],
    out_file: Annotated[str | None, typer.Option("--out", help="The HTML file (default reports/compare-A-B....html).")] = None,
    title: Annotated[str | None, typer.Option(help="The report's title (default: the names joined).")] = None,
    root: Annotated[str, typer.Option("--dir", help="Folder of study folders.")] = "runs",
) -> None:
    """Put several studies and training runs on one front: e.g. two samplers on one space, or a
    found model against ResNet retrained in full. Each study keeps its own front line and progress."""
    from pathlib import Path

    from nasx.report import collect

    sources = [collect.resolve(item, Path(root)) for item in items]
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise typer.BadParameter(f"the studies and runs must have distinct names, got {labels}")
    _write_report(sources, out_file, title or "compare-" + "-".join(labels))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
