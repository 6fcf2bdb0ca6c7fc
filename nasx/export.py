"""From a training run to a usable model: one self-contained folder, and ``load`` to read it back.

``export_run(run_dir, out)`` turns a finished ``nasx train`` run folder into a model folder::

    genotype.yaml         the network (nasx's genotype language)
    genotype.txt          the same network in its one-line string form
    weights.safetensors   the trained weights (copied from the run)
    model.onnx            the network with its weights, checked against torch with onnxruntime
    recipe.yaml           how it was trained: recipe, fidelity, seed, data, input preprocessing
    complexity.json       params, MACs, FLOPs, input shape, digest
    metrics.json          the run's summary (val accuracy, test accuracy when measured ...)
    README.md             what the model is and how to load it

``load(folder)`` gives the torch module back in eval mode, from a model folder or straight from a
run folder, and refuses weights that do not fit the genotype, naming the tensor. Weights are only
ever read as safetensors, never unpickled.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nasx.data.loader import normalization
from nasx.errors import GenotypeError, NasxError, RuntimeFailure
from nasx.models.complexity import complexity
from nasx.models.network import Net, build_network
from nasx.space.genotype import Network
from nasx.train.run import CONFIG, SUMMARY, WEIGHTS
from nasx.yamlfiles import atomic_write, load_mapping

GENOTYPE, GENOTYPE_TXT, ONNX, RECIPE, COMPLEXITY, METRICS, README = (
    "genotype.yaml",
    "genotype.txt",
    "model.onnx",
    "recipe.yaml",
    "complexity.json",
    "metrics.json",
    "README.md",
)
#: Everything an export folder may hold (``model.onnx.data`` only for models over the 2 GB protobuf limit).
EXPORT_FILES = frozenset({GENOTYPE, GENOTYPE_TXT, WEIGHTS, ONNX, f"{ONNX}.data", RECIPE, COMPLEXITY, METRICS, README})

#: The ONNX opset written, fixed so that an export does not change with the torch version: 18 is the
#: opset torch's ONNX function library is written in (torch 2.13 defaults to 20, reached by a version
#: conversion pass), and onnxruntime runs it from 1.14 on.
ONNX_OPSET = 18
#: The ONNX check passes when ``max |onnx - torch| <= max(ONNX_RTOL * max(1, max |logits|), FP32_FACTOR * e32)``,
#: where ``e32 = max |torch fp32 - torch fp64|`` is torch's own fp32 rounding error on the same batch. Two fp32
#: runtimes differ by rounding, which grows with the logits' scale and with depth: on a 20-cell DARTS
#: network torch's fp32 logits are already ~1e-4 away from fp64's, so no fp32 runtime can be held to
#: 1e-4 there; a wrong operator, by contrast, moves logits by a good fraction of their scale.
ONNX_RTOL = 1e-4
FP32_FACTOR = 4.0
#: Size of the seeded random batch the check runs (not the export's example batch of 2, so that
#: the dynamic batch axis is exercised too).
CHECK_BATCH = 3


def preprocessing(channels: int) -> dict[str, object]:
    """Input normalisation every nasx run trains with (``nasx.data.loader.DeviceLoader``'s defaults)."""
    mean, std = normalization(channels)
    return {
        "layout": "NCHW float32, RGB" if channels == 3 else f"NCHW float32, {channels} channel(s)",
        "scale": "x / 255",
        "mean": list(mean),
        "std": list(std),
        "formula": "(x / 255 - mean) / std per channel",
    }


_PROTOBUF_LIMIT = 2**31 - 2**26  # leave 64 MiB of room for the graph under protobuf's 2 GiB


class ExportError(NasxError):
    """A run folder that cannot be exported, an output folder that must not be written, a failed ONNX check."""


class ExportCheckFailed(ExportError, RuntimeFailure):
    """The exporter or the ONNX check failed on a model that should export: a runtime failure (exit 1)."""


class LoadError(NasxError):
    """A model folder that cannot be loaded: no genotype, no weights, or weights that do not fit the genotype."""


@dataclass(frozen=True)
class OnnxCheck:
    """What :func:`check_onnx` measured on its random batch."""

    max_abs_diff: float  # max |onnx - torch fp32| over the logits
    tolerance: float  # the bound it was checked against
    logit_scale: float  # max |torch logits|
    fp32_error: float  # max |torch fp32 - torch fp64|: torch's own rounding error on the batch
    batch: int


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` / :func:`export_model` wrote and measured."""

    folder: Path
    name: str
    digest: str
    files: tuple[str, ...]
    params: int
    macs: int
    input_shape: tuple[int, int, int]  # (C, H, W) of the ONNX model's input; the batch axis is dynamic
    opset: int
    onnx_check: OnnxCheck
    seconds: float

    @property
    def onnx_max_abs_diff(self) -> float:
        """max |onnx - torch| over the check batch's logits."""
        return self.onnx_check.max_abs_diff

    @property
    def onnx_tolerance(self) -> float:
        return self.onnx_check.tolerance


# ---- reading folders ---------------------------------------------------------------------------


def _read_config(path: Path, error: type[NasxError]) -> dict[str, Any]:
    """A run's ``config.yaml``, read by the project's one safe YAML reader; any problem raised as ``error``."""
    return load_mapping(path, "the run config", error, "a run's config needs a 'network' mapping (the genotype)")


def _read_json(path: Path, what: str, error: type[NasxError]) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON: {exc}") from None


def _run_genotype(config: Any, path: Path, error: type[NasxError]) -> Network:
    if not isinstance(config, dict) or not isinstance(config.get("network"), dict):
        raise error(f"{path}: a run's config needs a 'network' mapping (the genotype), got {type(config).__name__}")
    try:
        net = Network.from_dict(config["network"], source=f"{path}: network")
    except GenotypeError as exc:
        raise error(str(exc)) from None
    recorded = config.get("digest")
    if recorded is not None and recorded != net.digest:
        raise error(f"{path}: the network's digest is {net.digest}, but the config records {recorded}; it was edited")
    return net


def read_genotype(folder: str | Path) -> Network:
    """The genotype of a model folder (``genotype.yaml``) or of a ``nasx train`` run folder (``config.yaml``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(f"{folder}: no such folder (expected a model folder from `export_run` or a `nasx train` run)")
    if (folder / GENOTYPE).is_file():
        try:
            net = Network.from_yaml((folder / GENOTYPE).read_text(), source=str(folder / GENOTYPE))
        except GenotypeError as exc:
            raise LoadError(str(exc)) from None
        except OSError as exc:
            raise LoadError(f"{folder / GENOTYPE}: cannot read the genotype: {exc.strerror}") from None
        if (folder / COMPLEXITY).is_file():
            recorded = _read_json(folder / COMPLEXITY, "the complexity record", LoadError)
            digest = recorded.get("digest") if isinstance(recorded, dict) else None
            if digest is not None and digest != net.digest:
                raise LoadError(
                    f"{folder / GENOTYPE}: the genotype's digest is {net.digest}, but {COMPLEXITY} records {digest}; "
                    "the genotype was edited after export"
                )
        return net
    if (folder / CONFIG).is_file():
        return _run_genotype(_read_config(folder / CONFIG, LoadError), folder / CONFIG, LoadError)
    raise LoadError(f"{folder}: neither {GENOTYPE} (a model folder) nor {CONFIG} (a `nasx train` run folder) is there")


def weight_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``name -> (shape, safetensors dtype)`` from a safetensors file's header, without reading the tensors.

    Anything that is not a safetensors file (a pickle, a ``torch.save`` zip) is refused unread.
    """
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise LoadError(f"{path}: the weights file is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            out = {}
            for key in f.keys():  # noqa: SIM118 - safe_open handles are not iterable
                part = f.get_slice(key)
                out[key] = (tuple(part.get_shape()), str(part.get_dtype()))
            return out
    except SafetensorError as exc:
        raise LoadError(
            f"{path}: not a safetensors file ({exc}); weights are only read as safetensors, never unpickled"
        ) from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read the weights: {exc.strerror}") from None


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def weight_problems(model: nn.Module, found: Mapping[str, tuple[tuple[int, ...], str]]) -> list[str]:
    """Every way the tensors in ``found`` (name -> (shape, dtype)) fail to fit ``model``'s state dict."""
    problems = []
    wanted = model.state_dict()
    for key, tensor in wanted.items():
        if key not in found:
            problems.append(
                f"{key}: the genotype needs a tensor of shape {_shape(tuple(tensor.shape))}, the weights file lacks it"
            )
            continue
        shape, dtype = found[key]
        if shape != tuple(tensor.shape):
            problems.append(
                f"{key}: the genotype needs shape {_shape(tuple(tensor.shape))}, the weights file has {_shape(shape)}"
            )
        elif tensor.is_floating_point() != dtype.startswith(("F", "BF")):
            problems.append(f"{key}: the genotype needs a {tensor.dtype} tensor, the weights file has {dtype}")
    problems += [
        f"{key}: the weights file has a tensor of shape {_shape(shape)} the genotype does not (unexpected)"
        for key, (shape, _) in found.items()
        if key not in wanted
    ]
    return problems


def _check_weights(model: nn.Module, path: Path, net: Network) -> None:
    problems = weight_problems(model, weight_shapes(path))
    if problems:
        shown = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        head = f"{path} does not fit the genotype {net.name + ' ' if net.name else ''}({net.digest})"
        raise LoadError(f"{head}: " + ("\n  ".join(["", *shown]) if len(shown) > 1 else shown[0]))


def load(folder: str | Path, device: torch.device | str = "cpu") -> Net:
    """The network of a model folder (:func:`export_run`) or a ``nasx train`` run folder, in eval mode.

    Reads ``genotype.yaml`` (or a run's ``config.yaml``) with YAML's safe loader, builds the
    network and loads ``weights.safetensors`` onto ``device``. Before loading, every tensor's name
    and shape is compared with what the genotype builds; a missing, unexpected or misshapen tensor
    raises :class:`LoadError` naming it.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    net = read_genotype(folder)
    path = folder / WEIGHTS
    bound_cost(net, path, LoadError)
    model = build_network(net)
    model.load_state_dict(load_file(str(path), device="cpu"))
    return model.to(device).eval()


def bound_cost(net: Network, weights: Path, error: type[NasxError]) -> None:
    """Refuse, before anything is allocated, a genotype the weights file does not fit or this machine cannot hold.

    The network is built on the ``meta`` device (no memory) and its state dict compared, tensor by
    tensor, with the shapes in the safetensors header (read without the tensors); a genotype far
    larger than its weights file (e.g. 65,536 channels wide) fails here. Then its bytes are compared
    with the host memory.
    """
    from nasx.models.complexity import memory_problem

    with torch.device("meta"):
        meta = build_network(net)
    try:
        _check_weights(meta, weights, net)
    except LoadError as exc:
        raise error(str(exc)) from None
    size = weights.stat().st_size
    need = sum(t.numel() * t.element_size() for t in meta.state_dict().values())
    if need > 2 * size + (1 << 20):  # fp32 from a bf16/fp16 file at most doubles; the header is small
        raise error(f"{weights}: the genotype {net.name or net.digest} needs {need:,} bytes of weights, the file holds {size:,}")
    problem = memory_problem(net)
    if problem is not None:
        raise error(f"{weights.parent}: {problem}")


# ---- ONNX --------------------------------------------------------------------------------------


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's per-op registration notes (e.g. 'torchvision is not installed') while it runs."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*treespec.*LeafSpec", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: nn.Module, path: Path, input_shape: tuple[int, int, int], *, opset: int = ONNX_OPSET) -> list[Path]:
    """Write ``model`` (on the CPU, eval mode, fp32) as ONNX: input ``images`` (N, C, H, W), output ``logits``.

    Exporter: ``torch.onnx.export(dynamo=True)``, the ``torch.export``-based exporter. It is
    torch's default and maintained path since 2.9; the TorchScript exporter (``dynamo=False``)
    warns that it is deprecated and will be removed. Both exported all 35 zoo networks with
    matching logits when this was written (torch 2.13; the TorchScript one about 2.5x faster in
    total, 4 vs 11 minutes on two CPU cores), but choosing the one that has a future keeps an
    export working across torch upgrades. The batch axis is dynamic
    (``torch.export.Dim``; a batch-size specialisation in the network fails the export instead of
    silently fixing the batch) and the opset is fixed (:data:`ONNX_OPSET`). Weights are stored in
    the ``.onnx`` file, or beside it in ``model.onnx.data`` when they pass protobuf's 2 GB limit.
    Returns the files written.
    """
    model.eval()  # an auxiliary head is a training-time output; BN uses its running statistics
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    big = sum(t.numel() * t.element_size() for t in model.state_dict().values()) > _PROTOBUF_LIMIT
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["images"],
                output_names=["logits"],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types (torch._dynamo, torch.export, onnxscript)
        raise ExportCheckFailed(f"torch.onnx.export (dynamo) failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    if program is None:
        raise ExportCheckFailed("torch.onnx.export (dynamo) returned no program")
    saved_as: list[Path] = []

    def save(tmp: Path) -> None:
        saved_as.append(tmp)
        program.save(str(tmp), external_data=big)

    atomic_write(path, save)
    written = [path]
    if big:  # the exporter names the data file after the temporary file; give it its final name
        data = saved_as[0].with_name(f"{saved_as[0].name}.data")
        _relink_external_data(path, data)
        written.append(path.with_name(f"{path.name}.data"))
    return written


def _relink_external_data(path: Path, data: Path) -> None:
    import onnx

    final = path.with_name(f"{path.name}.data")
    os.replace(data, final)
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = final.name
    atomic_write(path, lambda p: onnx.save(model, str(p)))


def check_onnx(
    path: Path, model: nn.Module, input_shape: tuple[int, int, int], *, batch: int = CHECK_BATCH, seed: int = 0
) -> OnnxCheck:
    """Run ``path`` with onnxruntime (CPU) and ``model`` (eval, fp32) on one seeded random batch.

    Returns what it measured; raises :class:`ExportError` with the difference
    when it exceeds the tolerance (see :data:`ONNX_RTOL`: a relative bound, widened to a few times
    torch's own fp32 error for networks where fp32 itself is less exact), or when the ONNX model is
    malformed or has the wrong input and output names.
    """
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportCheckFailed(f"{path}: the ONNX model does not validate: {exc}") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != (["images"], ["logits"]):
        raise ExportCheckFailed(f"{path}: expected input ['images'] and output ['logits'], got {names[0]} and {names[1]}")
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want = model.eval()(x).float()
        exact = copy.deepcopy(model).double()(x.double())
    if not bool(torch.isfinite(want).all()):  # the model itself, not the export: say so
        raise ExportCheckFailed(
            f"{path}: the model's own logits (torch, eval mode) are not finite on a random batch of {batch}: its weights "
            "or batch-norm statistics are degenerate (e.g. a run of a few steps at a high learning rate); nothing exported"
        )
    got = session.run(["logits"], {"images": x.numpy()})[0]
    if got.shape != tuple(want.shape):
        raise ExportCheckFailed(f"{path}: onnxruntime gives logits of shape {got.shape}, torch {tuple(want.shape)}")
    diff = float(abs(got - want.numpy()).max())
    fp32_error = float((want.double() - exact).abs().max())
    scale = float(want.abs().max())
    tolerance = max(ONNX_RTOL * max(1.0, scale), FP32_FACTOR * fp32_error)
    if not diff <= tolerance:  # catches nan too
        raise ExportCheckFailed(
            f"{path}: onnxruntime's logits differ from torch's by up to {diff:.3g} on a random batch of {batch} "
            f"(tolerance {tolerance:.3g}; torch's own fp32 error {fp32_error:.2g})"
        )
    return OnnxCheck(max_abs_diff=diff, tolerance=tolerance, logit_scale=scale, fp32_error=fp32_error, batch=batch)


# ---- writing a model folder --------------------------------------------------------------------


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
    config = _read_config(run_dir / CONFIG, ExportError)
    net = _run_genotype(config, run_dir / CONFIG, ExportError)
    summary = _read_json(run_dir / SUMMARY, "the run summary", ExportError)
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
