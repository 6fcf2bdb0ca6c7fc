"""A training run as a folder: ``config.yaml``, ``metrics.jsonl``, ``weights.safetensors``, ``summary.json``.

The folder also holds ``checkpoint.pt`` (written atomically after every epoch), so running the
same command again after an interruption resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from nasx.data.types import ImageSet, Splits
from nasx.models.complexity import complexity
from nasx.space.genotype import Network
from nasx.train.loop import Callback, EpochMetrics, TrainResult, evaluate, train
from nasx.train.recipe import Fidelity, Recipe
from nasx.yamlfiles import atomic_write

CONFIG, METRICS, WEIGHTS, SUMMARY = "config.yaml", "metrics.jsonl", "weights.safetensors", "summary.json"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("nasx", "torch", "optuna", "ray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def safe_part(text: str) -> str:
    """``text`` as one path component that stays where it is put: no separators, no ``..``, no leading dot.

    Names come from user files (a genotype's or a recipe's ``name:``); anything but letters, digits,
    ``_``, ``.`` and ``-`` becomes ``_``, so ``../../x`` is ``.._.._x`` made harmless as ``_.._.._x``.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:120] or "_"
    return "_" + cleaned if cleaned.startswith(".") else cleaned


def run_name(network: str, recipe: str, epochs: int, seed: int) -> str:
    """The default run folder name ``NETWORK-RECIPE-eEPOCHS-sSEED``, one safe path component (see :func:`safe_part`)."""
    return safe_part(f"{network}-{recipe}-e{epochs}-s{seed}")


@dataclass(frozen=True)
class RunPlan:
    """One ``nasx train`` run, resolved and checked before anything is written: what :func:`train_run` is given."""

    net: Network
    name: str  # the network's name, else its file's stem
    recipe: Recipe
    fidelity: Fidelity
    epochs: int
    splits: Splits
    test: ImageSet | None  # the official test set, when it is to be measured once after training
    run_dir: Path
    batches: int  # training batches per epoch


def plan_run(
    network: str,
    *,
    data: str = "mini",
    recipe: str = "standard",
    epochs: int | None = None,
    fraction: float = 1.0,
    resolution: int | None = None,
    val_size: float | None = None,
    seed: int = 0,
    split_seed: int = 0,
    device: str | None = None,
    out: str | Path | None = None,
    test: bool = False,
    root: Path = Path("runs"),
) -> RunPlan:
    """Resolve a ``nasx train`` command (its options, by name) into a :class:`RunPlan`; every refusal (a bad device,
    resolution, data set or network) comes before the data is read where it can, and always before the run folder
    is made. The run folder is ``out``, else ``root/NETWORK-RECIPE-eEPOCHS-sSEED`` (:func:`run_name`)."""
    from nasx import data as datasets
    from nasx import zoo as registry
    from nasx.train.loop import check_data, check_device, check_resolution, images_used
    from nasx.train.recipe import load_recipe

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
    run_dir = Path(out) if out else root / run_name(name, rec.name, n_epochs, seed)
    batches = images_used(splits.train.labels, fraction, seed) // rec.batch_size
    return RunPlan(net, name, rec, fid, n_epochs, splits, test_set, run_dir, batches)


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's state dict as safetensors (CPU, contiguous), written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(tensors, str(p)))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def _finite(x: float) -> float | None:
    """None for NaN (no validation split), so summary.json stays standard JSON."""
    return None if math.isnan(x) else x


def train_run(
    genotype: Network,
    data: Splits,
    recipe: Recipe,
    fidelity: Fidelity,
    run_dir: Path,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
    on_step: Callable[[int, int], None] | None = None,
    test: ImageSet | None = None,
    test_source: str = "",
) -> tuple[TrainResult, dict[str, Any]]:
    """Train into ``run_dir`` and return the result and the summary written there.

    ``test`` (the official test set) is evaluated once, after training, for the final report of a
    chosen model; search code never passes it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "network": genotype.to_dict(),
        "digest": genotype.digest,
        "recipe": recipe.model_dump(mode="json"),
        "fidelity": fidelity.model_dump(mode="json"),
        "data": {"source": data.source, "train": len(data.train), "val": len(data.val), "split_seed": data.seed},
        "seed": seed,
        "versions": versions(),
    }
    _write_text(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))

    def record(m: EpochMetrics) -> bool | None:
        path = run_dir / METRICS
        lines = path.read_text().splitlines() if path.is_file() else []
        kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] < m.epoch]
        _write_text(path, "".join(f"{line}\n" for line in [*kept, json.dumps(asdict(m))]))
        return callback(m) if callback is not None else None

    result = train(genotype, data, recipe, fidelity, seed=seed, device=device, run_dir=run_dir, callback=record, on_step=on_step)
    save_weights(result.model, run_dir / WEIGHTS)
    cost = complexity(genotype)
    last = result.metrics[-1]
    summary: dict[str, Any] = {
        "name": genotype.name,
        "digest": genotype.digest,
        "params": cost.params,
        "macs": cost.macs,
        "state": result.state,
        "epochs": result.epochs,
        "val_acc": _finite(last.val_acc),
        "val_loss": _finite(last.val_loss),
        "best_val_acc": _finite(max(m.val_acc for m in result.metrics)),
        "train_seconds": sum(m.seconds for m in result.metrics),
        "images_per_s": sum(m.images_per_s for m in result.metrics) / len(result.metrics),
        "device": result.device,
        "precision": result.precision,
        "channels_last": result.channels_last,
        "data": data.source,
        "val_images": len(data.val),
    }
    if fidelity.proxy:  # the network trained was the genotype's scaled proxy: its own figures too
        small = complexity(fidelity.network(genotype))
        summary.update(trained_params=small.params, trained_macs=small.macs, width=fidelity.width, depth=fidelity.depth)
    if test is not None:
        test_loss, test_acc = evaluate(
            result.model,
            test,
            device=result.device,
            batch_size=recipe.eval_batch_size,
            tta_flip=recipe.tta_flip,
            precision=result.precision,
            channels_last=result.channels_last,
            resolution=fidelity.resolution,
        )
        summary.update(test_acc=test_acc, test_loss=test_loss, test_source=test_source or data.source, test_images=len(test))
    _write_text(run_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return result, summary
