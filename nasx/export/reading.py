"""Reading model folders and run folders: the genotype (checked against its recorded digest), the weights'
header (safetensors only, never unpickled) compared tensor by tensor with what the genotype builds, and the
bound on what a genotype may cost before anything is allocated."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasx.errors import GenotypeError, NasxError
from nasx.export.common import COMPLEXITY, CONFIG, GENOTYPE, LoadError
from nasx.models.network import build_network
from nasx.space.genotype import Network
from nasx.yamlfiles import load_mapping


def read_run_config(path: Path, error: type[NasxError]) -> dict[str, Any]:
    """A run's ``config.yaml``, read by the project's one safe YAML reader; any problem raised as ``error``."""
    return load_mapping(path, "the run config", error, "a run's config needs a 'network' mapping (the genotype)")


def read_json(path: Path, what: str, error: type[NasxError]) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON: {exc}") from None


def run_genotype(config: Any, path: Path, error: type[NasxError]) -> Network:
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
            recorded = read_json(folder / COMPLEXITY, "the complexity record", LoadError)
            digest = recorded.get("digest") if isinstance(recorded, dict) else None
            if digest is not None and digest != net.digest:
                raise LoadError(
                    f"{folder / GENOTYPE}: the genotype's digest is {net.digest}, but {COMPLEXITY} records {digest}; "
                    "the genotype was edited after export"
                )
        return net
    if (folder / CONFIG).is_file():
        return run_genotype(read_run_config(folder / CONFIG, LoadError), folder / CONFIG, LoadError)
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
