"""What the export modules share: the files of a model folder, the ONNX check's settings, the input
preprocessing, the errors and the results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nasx.data.loader import normalization
from nasx.errors import NasxError, RuntimeFailure
from nasx.train.run import CONFIG, SUMMARY, WEIGHTS

__all__ = ["CONFIG", "SUMMARY", "WEIGHTS"]  # the run folder's files, re-exported beside the model folder's

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
