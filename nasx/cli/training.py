"""``nasx train``: one network trained into a run folder (resumed when run again)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from nasx.cli.common import NetworkArgument, RecipeOption, app, err, friendly, out, progress_view


@app.command()
@friendly
def train(
    network: NetworkArgument,
    data: Annotated[
        str,
        typer.Option(
            help="'mini' (bundled 10k-image CIFAR-10 subset), 'download' (official archive, cached), "
            "cifar-10-python.tar.gz or its folder, or an ImageFolder folder / .tar.gz."
        ),
    ] = "mini",
    recipe: RecipeOption = "standard",
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
    from nasx.models.complexity import collapse_warnings
    from nasx.train import EpochMetrics, train_run
    from nasx.train.run import plan_run

    if not 0 < fraction <= 1:
        raise typer.BadParameter(f"must lie in (0, 1], got {fraction}", param_hint="--fraction")
    plan = plan_run(
        network,
        data=data,
        recipe=recipe,
        epochs=epochs,
        fraction=fraction,
        resolution=resolution,
        val_size=val_size,
        seed=seed,
        split_seed=split_seed,
        device=device,
        out=out_dir,
        test=test,
    )
    splits, rec, n_epochs, run_dir, test_set = plan.splits, plan.recipe, plan.epochs, plan.run_dir, plan.test
    for line in collapse_warnings(plan.net, plan.fidelity.resolution):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    err.print(
        f"training {escape(plan.name)} on {escape(splits.source)}: {len(splits.train):,} train / {len(splits.val):,} val, "
        f"recipe {escape(rec.name)}, {n_epochs} epochs -> {escape(str(run_dir))}",
        highlight=False,
    )
    progress = progress_view("epoch {task.fields[epoch]}/{task.fields[epochs]}")
    n_batches = plan.batches
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
                plan.net,
                splits,
                rec,
                plan.fidelity,
                run_dir,
                seed=seed,
                device=device,
                callback=on_epoch,
                on_step=on_step,
                test=test_set,
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
