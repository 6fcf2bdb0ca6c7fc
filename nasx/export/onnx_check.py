"""The ONNX file of a model folder: written with torch's exporter, then checked against torch with onnxruntime."""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from nasx.export.common import CHECK_BATCH, FP32_FACTOR, ONNX_OPSET, ONNX_RTOL, ExportCheckFailed, OnnxCheck
from nasx.yamlfiles import atomic_write

_PROTOBUF_LIMIT = 2**31 - 2**26  # leave 64 MiB of room for the graph under protobuf's 2 GiB


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
