"""Writing a model folder: assembled beside its final place and renamed into it only once the ONNX check passed."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nasx.export.common import (
    CHECK_BATCH,
    COMPLEXITY,
    CONFIG,
    EXPORT_FILES,
    FP32_FACTOR,
    GENOTYPE,
    GENOTYPE_TXT,
    METRICS,
    ONNX,
    ONNX_OPSET,
    ONNX_RTOL,
    README,
    RECIPE,
    SUMMARY,
    WEIGHTS,
    ExportError,
    ExportResult,
    LoadError,
    preprocessing,
)
from nasx.export.onnx_check import check_onnx, export_onnx
from nasx.export.reading import bound_cost, read_json, read_run_config, run_genotype, weight_problems, weight_shapes
from nasx.models.complexity import complexity
from nasx.models.network import build_network
from nasx.space.genotype import Network
from nasx.yamlfiles import atomic_write


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder without ``overwrite``, or with it when
    the folder holds anything an export does not write (it is then not ours to delete)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    if not out.is_dir():
        return
    present = sorted(p.name for p in out.iterdir())
    if not present:
        return
    if not overwrite:
        raise ExportError(
            f"{out}: the folder exists and is not empty ({', '.join(present[:5])}); pass overwrite=True to replace it"
        )
    foreign = [n for n in present if n not in EXPORT_FILES]
    if foreign:
        raise ExportError(
            f"{out}: will not replace a folder that holds files an export does not write ({', '.join(foreign[:5])}); "
            "choose another output folder"
        )


def _publish(staging: Path, out: Path) -> None:
    """Move the finished ``staging`` folder to ``out``, replacing an (empty or export) folder there."""
    if out.is_dir() and any(out.iterdir()):
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)  # rename(2) replaces an empty folder


def _write(folder: Path, name: str, text: str) -> None:
    atomic_write(folder / name, lambda p: p.write_text(text))


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def _fmt_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _readme(
    net: Network, name: str, cost: dict[str, Any], result_files: list[str], metrics: dict[str, Any] | None, check: str
) -> str:
    c, h, w = cost["onnx_input_shape"]
    lines = [f"# {name}", ""]
    if net.reference:
        lines += [f"{net.reference}.", ""]
    lines += [
        f"An image classifier exported by nasx: {cost['classes']} classes from {c}x{h}x{w} images, "
        f"{cost['params']:,} parameters ({_fmt_count(cost['params'])}), {cost['macs']:,} MACs "
        f"({_fmt_count(cost['macs'])}) per image at {cost['input_shape'][1]}x{cost['input_shape'][2]}. "
        f"Genotype digest `{cost['digest']}`; the network in one line (`{GENOTYPE_TXT}`):",
        "",
        "```",
        net.to_string(),
        "```",
        "",
    ]
    if metrics:
        measured = []
        if metrics.get("val_acc") is not None:
            measured.append(f"{100 * metrics['val_acc']:.2f}% on the validation split (held out of the training set)")
        if metrics.get("test_acc") is not None:
            measured.append(f"{100 * metrics['test_acc']:.2f}% on the test set ({metrics.get('test_source', '')})")
        source = metrics.get("data", "")
        epochs = metrics.get("epochs")
        trained = f"Trained {epochs} epoch{'' if epochs == 1 else 's'} on {source} (see `{RECIPE}`)."
        lines += [f"Accuracy: {'; '.join(measured) or 'not measured'}. {trained}", ""]
    else:
        lines += ["No training run came with these weights: no accuracy is recorded.", ""]
    prep = preprocessing(c)
    mean = ", ".join(f"{v:g}" for v in prep["mean"])  # type: ignore[attr-defined]
    std = ", ".join(f"{v:g}" for v in prep["std"])  # type: ignore[attr-defined]
    lines += [
        "## Input",
        "",
        f"float32 NCHW batches of shape (N, {c}, {h}, {w}), RGB, normalised as `(x / 255 - mean) / std` with "
        f"mean ({mean}) and std ({std}). The output is the logits, (N, {cost['classes']}); apply a softmax for "
        "probabilities.",
        "",
        "## Load it",
        "",
        "With nasx (builds the network from `genotype.yaml`, loads `weights.safetensors`, eval mode):",
        "",
        "```python",
        "import nasx",
        "",
        'model = nasx.load("THIS_FOLDER")  # device="cuda" to load onto a GPU',
        "logits = model(images)",
        "```",
        "",
        "With onnxruntime alone (no torch, no nasx):",
        "",
        "```python",
        "import numpy as np",
        "import onnxruntime as ort",
        "",
        f'session = ort.InferenceSession("THIS_FOLDER/{ONNX}", providers=["CPUExecutionProvider"])',
        'logits = session.run(["logits"], {"images": images.astype(np.float32)})[0]',
        "```",
        "",
        check,
        "",
        "## Files",
        "",
    ]
    described = {
        GENOTYPE: "the network in nasx's genotype language",
        GENOTYPE_TXT: "the same network in one line",
        WEIGHTS: "the weights (safetensors)",
        ONNX: f"network and weights as ONNX (opset {cost['onnx']['opset']}, dynamic batch, input `images`, output `logits`)",
        f"{ONNX}.data": "the ONNX model's weights (external data, over 2 GB)",
        RECIPE: "how it was trained: recipe, fidelity, seed, data, preprocessing",
        COMPLEXITY: "params, MACs, FLOPs, input shape, digest",
        METRICS: "the training run's summary",
        README: "this file",
    }
    lines += [f"- `{f}`: {described[f]}" for f in result_files]
    return "\n".join(lines) + "\n"


def export_model(
    net: Network,
    weights: nn.Module | Mapping[str, torch.Tensor] | str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    recipe: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    resolution: int | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write the model folder of ``net`` with ``weights`` to ``out``.

    ``weights``: a module, a state dict, or a safetensors file (checked, then copied byte for byte).

    ``recipe`` (written to ``recipe.yaml``) and ``metrics`` (``metrics.json``) describe the run that
    trained it; without them those files are left out. ``resolution``: the ONNX model's image
    side (default: the genotype's; a run trained at a lower fidelity resolution passes that).
    The folder is assembled beside ``out`` and renamed into place only after the ONNX check
    passed, so ``out`` never holds half an export.
    """
    started = time.perf_counter()
    out = Path(out)
    _prepare_out(out, overwrite)
    name = name or net.name or f"nasx-{net.digest}"
    if name != net.name:
        net = net.model_copy(update={"name": name})  # the name is not part of the digest
    source = Path(weights) if isinstance(weights, str | Path) else None
    if source is not None:
        bound_cost(net, source, ExportError)  # a file from elsewhere: checked on meta before the network is built
    model = build_network(net).eval()
    if source is not None:
        try:
            found = weight_shapes(source)
        except LoadError as exc:
            raise ExportError(str(exc)) from None
    else:
        state = weights.state_dict() if isinstance(weights, nn.Module) else dict(weights)  # type: ignore[union-attr]
        found = {k: (tuple(v.shape), "F32" if v.is_floating_point() else "I64") for k, v in state.items()}
    problems = weight_problems(model, found)
    if problems:
        raise ExportError(f"{source or 'the weights'} do not fit the genotype {name} ({net.digest}): {problems[0]}")
    if source is not None:
        from safetensors.torch import load_file

        state = load_file(str(source))
    model.load_state_dict(
        {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype) for k, v in state.items()}
    )

    cost = complexity(net)
    side = resolution or net.input.resolution
    onnx_shape = (net.input.channels, side, side)
    record = {
        "name": name,
        "digest": net.digest,
        "params": cost.params,
        "macs": cost.macs,
        "flops": cost.flops,
        "input_shape": list(cost.input_shape),
        "onnx_input_shape": list(onnx_shape),
        "classes": net.input.classes,
        "convention": "params: every parameter, auxiliary heads excluded; MACs: convolutions, linear layers and matmuls "
        "of one forward pass at batch 1 at input_shape; FLOPs = 2 x MACs",
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        from safetensors.torch import save_file

        _write(staging, GENOTYPE, net.to_yaml())
        _write(staging, GENOTYPE_TXT, net.to_string() + "\n")
        if source is not None:
            atomic_write(staging / WEIGHTS, lambda p: shutil.copyfile(source, p))
        else:
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
            atomic_write(staging / WEIGHTS, lambda p: save_file(tensors, str(p)))
        shutil.copymode(staging / GENOTYPE, staging / WEIGHTS)  # safetensors writes 0600; the folder is for sharing
        onnx_files = export_onnx(model, staging / ONNX, onnx_shape)
        checked = check_onnx(staging / ONNX, model, onnx_shape)
        record["onnx"] = {"opset": ONNX_OPSET, "exporter": "torch.onnx.export(dynamo=True)", **asdict(checked)}
        _write(staging, COMPLEXITY, json.dumps(record, indent=2) + "\n")
        if recipe is not None:
            _write(staging, RECIPE, _yaml({**recipe, "preprocessing": preprocessing(net.input.channels)}))
        if metrics is not None:
            _write(staging, METRICS, json.dumps(dict(metrics), indent=2) + "\n")
        check = (
            f"The ONNX model was checked at export against the torch model on a seeded random batch of {CHECK_BATCH}: "
            f"max |difference| of the logits {checked.max_abs_diff:.2g} (tolerance {checked.tolerance:.2g}: "
            f"{ONNX_RTOL:g} of the logits' scale, "
            f"or {FP32_FACTOR:g}x torch's own fp32 rounding error where that is larger)."
        )
        candidates = (GENOTYPE, GENOTYPE_TXT, WEIGHTS, *(p.name for p in onnx_files), RECIPE, COMPLEXITY, METRICS)
        listed = [f for f in candidates if (staging / f).is_file()] + [README]
        _write(staging, README, _readme(net, name, record, listed, dict(metrics) if metrics else None, check))
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        folder=out,
        name=name,
        digest=net.digest,
        files=tuple(sorted(listed)),
        params=cost.params,
        macs=cost.macs,
        input_shape=onnx_shape,
        opset=ONNX_OPSET,
        onnx_check=checked,
        seconds=time.perf_counter() - started,
    )


def export_run(run_dir: str | Path, out: str | Path, *, name: str | None = None, overwrite: bool = False) -> ExportResult:
    """Export the finished training run in ``run_dir`` (``nasx train``'s folder) as a model folder ``out``.

    A finished run has ``config.yaml``, ``weights.safetensors`` and ``summary.json`` (written last).
    ``name`` names the model (default: the genotype's name). ``out`` must not exist or be empty,
    unless ``overwrite`` (which replaces only a previous export). See :func:`export_model`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder")
    missing = [f for f in (CONFIG, WEIGHTS, SUMMARY) if not (run_dir / f).is_file()]
    if missing:
        what = "not a nasx training run" if CONFIG in missing else "not a finished training run"
        raise ExportError(f"{run_dir}: {what}: {', '.join(missing)} missing")
    if Path(out).resolve() == run_dir.resolve():
        raise ExportError(f"{out}: the output folder must not be the run folder")
    config = read_run_config(run_dir / CONFIG, ExportError)
    net = run_genotype(config, run_dir / CONFIG, ExportError)
    summary = read_json(run_dir / SUMMARY, "the run summary", ExportError)
    if not isinstance(summary, dict):
        raise ExportError(f"{run_dir / SUMMARY}: a run summary is a JSON object, got {type(summary).__name__}")
    if summary.get("digest") not in (None, net.digest):
        raise ExportError(f"{run_dir}: summary.json is of network {summary.get('digest')}, config.yaml of {net.digest}")
    fidelity = config.get("fidelity") or {}
    recipe = {k: config[k] for k in ("recipe", "fidelity", "seed", "data", "versions") if k in config}
    resolution = fidelity.get("resolution") if isinstance(fidelity, dict) else None
    if isinstance(resolution, bool) or not isinstance(resolution, int | None) or (resolution is not None and resolution < 1):
        raise ExportError(f"{run_dir / CONFIG}: fidelity.resolution must be a positive integer or null, got {resolution!r}")
    return export_model(
        net, run_dir / WEIGHTS, out, name=name, recipe=recipe, metrics=summary, resolution=resolution, overwrite=overwrite
    )
