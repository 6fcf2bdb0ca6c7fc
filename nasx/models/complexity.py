"""Parameters, MACs and activation memory of a genotype, measured on the ``meta`` device.

Convention (DESIGN.md), the one of torchvision's model tables and the NAS papers' mult-adds:

- **params**: every parameter of the built module, classifier included, auxiliary heads
  excluded unless ``include_aux`` is given.
- **MACs**: multiply-accumulates of convolutions, linear layers and matmuls in one forward
  pass at batch 1 at the network's input resolution; BN, activations, pooling, additions and
  the squeeze-excite gate multiplication are not counted. FLOPs = 2 x MACs.

Nothing is allocated: the module is built on ``meta`` (not initialised) and traced under a
dispatch mode that applies torch's FLOP formulas (``torch.utils.flop_counter``, 2 FLOPs per MAC)
to the ops that have one. Unlike ``FlopCounterMode`` it does not decompose the other ops (batch
norm, activations, pooling: none of them holds a matmul) nor track modules, which makes it many
times faster; the totals are the same. Results are cached by genotype digest.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from nasx.models.blocks import CellInputs, build_block
from nasx.models.network import Net, State, build_aux_head, build_head, build_network, last
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


#: In-place initialisers: on ``meta`` there is nothing to fill.
_INIT = frozenset(
    {
        "uniform_",
        "normal_",
        "trunc_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "xavier_uniform_",
        "xavier_normal_",
        "zeros_",
        "ones_",
        "constant_",
        "zero_",
        "fill_",
        "orthogonal_",
    }
)
#: Functions that keep their input's shape and hold no matmul: on ``meta`` their result is an empty tensor
#: of that shape (batch norm's meta kernel alone runs a Python decomposition of a dozen ops).
_SHAPE_KEEPING = frozenset({F.batch_norm, torch.batch_norm, F.layer_norm, F.group_norm})


class _ShapesOnly(TorchFunctionMode):
    """Skips what cannot change a shape or a count on ``meta``: initialisation and normalisation layers."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else next(iter(kwargs.values()), None)  # torch.nn.init passes ``tensor=``
        if isinstance(first, torch.Tensor) and first.is_meta:
            if func in _SHAPE_KEEPING:
                return torch.empty_like(first)
            if getattr(func, "__name__", None) in _INIT:
                return first
        return func(*args, **kwargs)


def _meta_net(genotype: Network) -> Net:
    with _ShapesOnly(), torch.device("meta"):
        return build_network(genotype).eval()


class _Uncacheable(Exception):
    pass


_PLAIN = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout})


def _sig(x: Any) -> Any:
    """What an op's result depends on when its tensors live on ``meta``: shapes, strides, dtypes and plain values."""
    if isinstance(x, torch.Tensor):
        return (x.shape, x.stride(), x.dtype)
    t = type(x)
    if t in _PLAIN:
        return (t, x)
    if t is list or t is tuple:
        return (t, *map(_sig, x))
    raise _Uncacheable


def _shape_of(out: Any) -> Any:
    if isinstance(out, torch.Tensor) and out.device.type == "meta":
        return (tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, list | tuple) and all(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in out):
        return (type(out), tuple(_shape_of(t) for t in out))
    raise _Uncacheable


def _fresh(shape: Any) -> Any:
    if isinstance(shape[0], type):
        return shape[0](_fresh(s) for s in shape[1])
    size, stride, dtype = shape
    return torch.empty_strided(size, stride, dtype=dtype, device="meta")


#: (op, argument signature) -> (output shapes, FLOPs): meta kernels are Python and slow; a search
#: counts thousands of networks made of the same few layers at the same few sizes.
_OPS: dict[tuple[Any, Any], tuple[Any, int]] = {}
_OPS_SIZE = 50_000


class _FlopCount(TorchDispatchMode):
    """Sums torch's FLOP formulas over the ops run under it (convolutions, mm, bmm, addmm, attention).

    On ``meta`` an op's output depends only on its arguments' shapes, strides, dtypes and plain
    values: each distinct call is run once, later ones get fresh ``meta`` tensors of the shapes it
    gave (views and in-place results included: on ``meta`` only shapes matter).
    """

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        try:
            key: Any = (func, _sig(args), _sig(tuple(sorted(kwargs.items()))))
        except _Uncacheable:
            key = None
        if key is not None and key in _OPS:
            shape, flops = _OPS[key]
            self.flops += flops
            return _fresh(shape)
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        flops = int(formula(*args, **kwargs, out_val=out)) if formula is not None else 0
        self.flops += flops
        if key is not None:
            try:
                shape = _shape_of(out)
            except _Uncacheable:
                return out
            if len(_OPS) >= _OPS_SIZE:
                _OPS.clear()
            _OPS[key] = (shape, flops)
        return out


def _count_macs(module: nn.Module, x: State) -> tuple[int, State]:
    with _ShapesOnly(), _FlopCount() as counter, torch.no_grad():
        y = module(x)
    return counter.flops // 2, y


_CACHE: OrderedDict[tuple[str, bool], Complexity] = OrderedDict()
_CACHE_SIZE = 4096


def complexity(genotype: Network, include_aux: bool = False) -> Complexity:
    """Params and MACs of ``genotype``, in total and per stem / stage / head (and aux heads if asked)."""
    key = (genotype.digest, include_aux)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    found = _complexity(genotype, include_aux)
    _CACHE[key] = found
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return found


_BLOCKS: dict[tuple[Any, ...], tuple[int, int]] = {}  # (block, input shapes) -> (params, MACs)


def _block_cost(block: Any, shape: Shape, prev: Shape | None) -> tuple[int, int]:
    """Params and MACs of one block at its input shape(s); a block repeated in a stage, or met again in
    another candidate, is built once."""
    key = (type(block), block, shape, prev if block.two_inputs else None)
    if key not in _BLOCKS:
        if len(_BLOCKS) >= _CACHE_SIZE:
            _BLOCKS.clear()
        with _ShapesOnly(), torch.device("meta"):
            if block.two_inputs:
                s0 = prev or shape
                module = build_block(block, CellInputs(s0.c, shape.c, reduce0=s0.h != shape.h)).eval()
                args: tuple[torch.Tensor, ...] = (torch.empty(1, *s0), torch.empty(1, *shape))
            else:
                module = build_block(block, shape.c).eval()
                args = (torch.empty(1, *shape),)
        with _ShapesOnly(), _FlopCount() as counter, torch.no_grad():
            module(*args)
        _BLOCKS[key] = (count_params(module), counter.flops // 2)
    return _BLOCKS[key]


def _chain_cost(blocks: tuple[Any, ...], shape: Shape, prev: Shape | None) -> tuple[int, int, Shape, Shape | None]:
    """As ``nasx.models.network._stack`` threads shapes through a chain (``prev``: s0's shape after a cell)."""
    params = macs = 0
    for block in blocks:
        p, m = _block_cost(block, shape, prev)
        params, macs = params + p, macs + m
        prev, shape = (shape if block.two_inputs else None), block.out_shape(shape)
    return params, macs, shape, prev


def _complexity(genotype: Network, include_aux: bool) -> Complexity:
    """Block by block: a network's params and MACs are the sums over its blocks (the chains add none of
    their own); checked against :func:`_whole_network_complexity` by the tests."""
    shape, classes = genotype.input.shape, genotype.input.classes
    parts: list[PartCost] = []
    prev: Shape | None = None
    if genotype.stem:
        p, m, shape, prev = _chain_cost(tuple(genotype.stem), shape, None)
        parts.append(PartCost("stem", len(genotype.stem), tuple(shape), p, m))
    for i, stage in enumerate(genotype.stages):
        blocks = tuple(stage.expand())
        p, m, shape, prev = _chain_cost(blocks, shape, prev)
        parts.append(PartCost(f"stage{i + 1}", len(blocks), tuple(shape), p, m))
        if include_aux and stage.aux is not None:
            with _ShapesOnly(), torch.device("meta"):
                aux = build_aux_head(stage.aux, shape, classes).eval()
            aux_macs, y = _count_macs(aux, torch.empty(1, *shape, device="meta"))
            parts.append(PartCost(f"aux (stage{i + 1})", 1, tuple(last(y).shape[1:]), count_params(aux), aux_macs))
    with _ShapesOnly(), torch.device("meta"):
        head = build_head(genotype.head, shape, classes).eval()
    macs, y = _count_macs(head, torch.empty(1, *shape, device="meta"))
    parts.append(PartCost("head", 1, tuple(last(y).shape[1:]), count_params(head), macs))
    total_params, total_macs = sum(p.params for p in parts), sum(p.macs for p in parts)
    return Complexity(params=total_params, macs=total_macs, input_shape=genotype.input.shape, parts=tuple(parts))


def _whole_network_complexity(genotype: Network, include_aux: bool = False) -> Complexity:
    """The reference: the whole network built and traced at once (slower: nothing is shared between blocks)."""
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
