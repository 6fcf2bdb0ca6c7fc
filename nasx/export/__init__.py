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

The package along its seams, every name re-exported here: :mod:`~nasx.export.common` (the folder's
files, the check's settings, errors, results), :mod:`~nasx.export.reading` (genotype, weights header,
cost bound), :mod:`~nasx.export.onnx_check` (ONNX export and onnxruntime check),
:mod:`~nasx.export.writing` (``export_model``, ``export_run``); ``load`` is defined here.
"""

from __future__ import annotations

from pathlib import Path

import torch

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
    ExportCheckFailed,
    ExportError,
    ExportResult,
    LoadError,
    OnnxCheck,
    preprocessing,
)
from nasx.export.onnx_check import check_onnx, export_onnx
from nasx.export.reading import bound_cost, read_genotype, weight_problems, weight_shapes
from nasx.export.writing import export_model, export_run
from nasx.models.network import Net, build_network

__all__ = [
    "CHECK_BATCH",
    "COMPLEXITY",
    "CONFIG",
    "EXPORT_FILES",
    "FP32_FACTOR",
    "GENOTYPE",
    "GENOTYPE_TXT",
    "METRICS",
    "ONNX",
    "ONNX_OPSET",
    "ONNX_RTOL",
    "README",
    "RECIPE",
    "SUMMARY",
    "WEIGHTS",
    "ExportCheckFailed",
    "ExportError",
    "ExportResult",
    "LoadError",
    "OnnxCheck",
    "bound_cost",
    "build_network",
    "check_onnx",
    "export_model",
    "export_onnx",
    "export_run",
    "load",
    "preprocessing",
    "read_genotype",
    "weight_problems",
    "weight_shapes",
]


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
