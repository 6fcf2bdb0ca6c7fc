"""What the commands share: the Typer app, the two consoles, error reporting, the progress bar, the study options,
and writing a report."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

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


def friendly(fn: F) -> F:
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


def progress_view(first: str) -> Any:
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


#: ``--set PATH=VALUE``: shared by every command that reads a study config.
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a setting of the study file, PATH=VALUE with VALUE as YAML; repeat for several "
        "(e.g. --set fidelity.epochs=1 --set data.source=mini). Give the same ones to every command on that study.",
    ),
]
#: ``--dir``: the folder of study folders.
RootOption = Annotated[str, typer.Option("--dir", help="Folder of study folders.")]
#: A study named on the command line.
StudyArgument = Annotated[str, typer.Argument(help="A study config YAML, or its name in studies/.")]
#: A network named on the command line.
NetworkArgument = Annotated[str, typer.Argument(help="A zoo name (see `nasx zoo`) or the path of a genotype YAML file.")]
#: ``--recipe``: a preset or a recipe file.
RecipeOption = Annotated[str, typer.Option(help="A preset (search, standard, fast) or a recipe YAML file.")]


def study_config(study: str, overrides: list[str] | None = None) -> Any:
    from nasx.search.config import StudyConfig, StudyError, study_file

    path = study_file(study)
    if path is None:
        raise StudyError(f"no study config {study!r} (a YAML file, or a name in studies/)")
    return StudyConfig.load(path, overrides or ())


def acc_text(acc: float | None, n: int | None) -> str:
    """A search accuracy with its n: ``47.25% ± 3.46 (±1.96 SE, n=800 val images)``."""
    from nasx.results.noise import single_run

    return "-" if acc is None else single_run(acc, n).text()


def overlay_sources(names: list[str], root: str, strict: bool) -> list[Any]:
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


def save_report(
    sources: list[Any], out_file: str | None, title: str, overlays: list[Any] | None = None, console: Console | None = None
) -> None:
    from pathlib import Path

    from nasx.report.page import default_path, write_report

    path = Path(out_file) if out_file else default_path(title)
    if path.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"--out must end in .html, got {str(path)!r}")
    with err.status("writing the report (figures, fANOVA, diagrams)"):
        files = write_report(sources, path, title, overlays or [])
    (console or out).print(
        f"report: {files.html}  ({files.figures} figures; trial table: {files.csv.name}, {files.parquet.name})", highlight=False
    )


def study_report(cfg: Any, root: str, console: Console | None = None) -> None:
    """Write the study's own report (``reports/NAME.html``) with the config's ``overlay:``, if any."""
    from pathlib import Path

    from nasx.report import collect

    overlays = overlay_sources([cfg.overlay] if cfg.overlay else [], root, strict=False)
    save_report([collect.from_study(cfg, Path(root))], None, cfg.name, overlays, console)
