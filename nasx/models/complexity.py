"""Parameters, MACs and activation memory of a genotype, measured on the ``meta`` device.

Convention (DESIGN.md), the one of torchvision's model tables and the NAS papers' mult-adds:

- **params**: every parameter of the built module, classifier included, auxiliary heads
  excluded unless ``include_aux`` is given.
- **MACs**: multiply-accumulates of convolutions, linear layers and matmuls in one forward
  pass at batch 1 at the network's input resolution; BN, activations, pooling, additions and
  the squeeze-excite gate multiplication are not counted. FLOPs = 2 x MACs.

Nothing is allocated: the module is built on ``meta`` and traced with torch's
``FlopCounterMode`` (which counts 2 FLOPs per MAC), so even a 100M-parameter network is
measured in well under a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasx.models.network import Net, State, build_network, last
from nasx.space.genotype import Network, Shape


@dataclass(frozen=True)
class PartCost:
    """One row of the breakdown: the stem, a stage or the head."""

    name: str
    blocks: int
    out_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class Complexity:
    """Totals and the per-part breakdown of one network."""

    params: int
    macs: int
    input_shape: Shape
    parts: tuple[PartCost, ...]

    @property
    def flops(self) -> int:
        return 2 * self.macs


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta_net(genotype: Network) -> Net:
    with torch.device("meta"):
        return build_network(genotype).eval()


def _count_macs(module: nn.Module, x: State) -> tuple[int, State]:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = module(x)
    return counter.get_total_flops() // 2, y


def complexity(genotype: Network, include_aux: bool = False) -> Complexity:
    """Params and MACs of ``genotype``, in total and per stem / stage / head (and aux heads if asked)."""
    net = _meta_net(genotype)
    shape = genotype.input.shape
    x: State = torch.empty(1, *shape, device="meta")
    parts: list[PartCost] = []
    named = [("stem", net.stem, None)]
    aux_heads = dict(net.aux_heads.items())
    named += [(f"stage{i + 1}", s, aux_heads.get(str(i))) for i, s in enumerate(net.stages)]
    named += [("head", net.head, None)]
    for name, module, aux in named:
        if name == "stem" and len(module) == 0:
            continue
        macs, x = _count_macs(module, last(x) if name == "head" else x)
        out = last(x)
        parts.append(PartCost(name, len(module) if name != "head" else 1, tuple(out.shape[1:]), count_params(module), macs))
        if include_aux and aux is not None:
            aux_macs, y = _count_macs(aux, out)
            parts.append(PartCost(f"aux ({name})", 1, tuple(last(y).shape[1:]), count_params(aux), aux_macs))
    return Complexity(params=sum(p.params for p in parts), macs=sum(p.macs for p in parts), input_shape=shape, parts=tuple(parts))


def activation_memory(genotype: Network, batch: int = 1, bytes_per_element: int = 4) -> int:
    """Estimated peak activation memory in bytes of one training-mode forward pass.

    Counts every distinct tensor that autograd saves for the backward pass, plus the logits,
    traced on ``meta``. Parameters, gradients and optimizer state are not included; the
    allocator's fragmentation and the backward pass's temporaries are not modelled. Scales
    with ``bytes_per_element`` (4 for fp32, 2 for bf16 autocast, roughly).
    """
    net = _meta_net(genotype).train()
    params = {p.untyped_storage()._cdata for p in net.parameters()}
    params |= {b.untyped_storage()._cdata for b in net.buffers()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata  # identity of the storage: views and re-saves count once
        if key not in params:
            saved[key] = storage.nbytes() // t.element_size()  # elements
        return t

    x = torch.empty(batch, *genotype.input.shape, device="meta", requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = net(x)
    logits = y if isinstance(y, tuple) else (y,)  # training mode: auxiliary logits too
    return (sum(saved.values()) + sum(t.numel() for t in logits)) * bytes_per_element


def _stage_inputs(net: Net, side: int, channels: int) -> list[tuple[str, int, int]]:
    """``(part, input side, output side)`` of the stem and each stage for a square input of ``side`` (meta, no allocation)."""
    x: State = torch.empty(1, channels, side, side, device="meta")
    rows = []
    named = [("stem", net.stem)] + [(f"stage{i + 1}", s) for i, s in enumerate(net.stages)]
    with torch.no_grad():
        for name, module in named:
            before = int(last(x).shape[-1])
            x = module(x)
            rows.append((name, before, int(last(x).shape[-1])))
    return rows


def resolution_problem(genotype: Network, resolution: int | None = None) -> str | None:
    """Why ``genotype`` cannot sensibly run at ``resolution`` (default: its own), or None.

    A part that reduces the spatial size (seen at a large input) whose input is already 1x1 has
    nothing left to reduce: the later stages work on a single pixel. A kernel larger than its
    input, or an output size of 0, is refused by torch and reported as such.
    """
    net = _meta_net(genotype)
    channels = genotype.input.channels
    side = resolution or genotype.input.resolution
    big = _stage_inputs(net, 1024 * max(1, side), channels)
    try:
        rows = _stage_inputs(net, side, channels)
    except RuntimeError as exc:
        return f"torch refuses it: {str(exc).splitlines()[0]}"
    for (name, big_in, big_out), (_, small_in, small_out) in zip(big, rows, strict=True):
        if small_out < 1:
            return f"{name} has an output of size 0"
        if big_out < big_in and small_in <= 1:
            return f"{name} reduces the spatial size but its input is already {small_in}x{small_in}"
    return None


def min_resolution(genotype: Network) -> int:
    """The smallest square input side at which :func:`resolution_problem` finds nothing (binary search, meta device)."""
    lo, hi = 1, max(1, genotype.input.resolution)
    while resolution_problem(genotype, hi) is not None and hi < 1 << 14:
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if resolution_problem(genotype, mid) is None:
            hi = mid
        else:
            lo = mid + 1
    return hi


def collapse_warnings(genotype: Network, resolution: int | None = None) -> list[str]:
    """Warnings for a network whose strides leave later stages a single pixel (at ``resolution``, default its own)."""
    side = resolution or genotype.input.resolution
    name = genotype.name or "the network"
    problem = resolution_problem(genotype, side)
    if problem is not None:
        return [f"{name} at resolution {side}: {problem}; the later stages see a single pixel"]
    rows = _stage_inputs(_meta_net(genotype), side, genotype.input.channels)
    early = [part for part, _, out in rows[:-1] if out <= 1 < side]
    if early:
        return [f"{name} at resolution {side}: the spatial size is 1x1 after {early[0]}, before the last stage"]
    return []


def state_bytes(genotype: Network) -> int:
    """Bytes of the built network's state dict (parameters and buffers, at their dtypes), counted on ``meta``."""
    return sum(t.numel() * t.element_size() for t in _meta_net(genotype).state_dict().values())


def physical_memory(device: torch.device | str = "cpu") -> int | None:
    """Total memory of ``device`` in bytes (host RAM for the CPU), or None when it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device.index or 0).total_memory)
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def memory_problem(genotype: Network, device: torch.device | str = "cpu", copies: int = 1) -> str | None:
    """Why ``copies`` of the network's state (1 to load it; weights, gradients and optimizer state to train it)
    cannot fit in ``device``'s total memory, or None. Counted on ``meta``: nothing is allocated."""
    need = state_bytes(genotype) * copies
    total = physical_memory(device)
    if total is not None and need > total:
        gib = 1 << 30
        return (
            f"{genotype.name or 'the network'} has {complexity(genotype).params:,} parameters: "
            f"{need / gib:,.1f} GiB for {'its weights' if copies == 1 else f'{copies} copies of its weights (training)'}, "
            f"more than the {total / gib:,.1f} GiB of {torch.device(device).type} memory here"
        )
    return None
