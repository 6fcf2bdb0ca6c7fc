"""One builder per block kind, registered by kind: ``build_block(block, in_channels)``.

A block kind is its :class:`~nasx.space.ops.Kind` value, its genotype class in the
:data:`nasx.space.genotype.Block` union and its builder here (``@register(Kind.X)``); nothing else
names it (the tests check that every kind has a builder).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from nasx.errors import NasxError
from nasx.models.layers import (
    Concat,
    DropPath,
    FactorizedReduce,
    PadShortcut,
    SqueezeExcite,
    Zero,
    act_layer,
    conv_norm_act,
    dil_conv,
    norm_act,
    pool2d,
    relu_conv_bn,
    sep_conv,
    separable_conv,
)
from nasx.space import genotype
from nasx.space.genotype import se_hidden
from nasx.space.ops import Act, CellOp, Kind, Norm, PoolOp, Shortcut, StepOp, Variant

Builder = Callable[[Any, int], nn.Module]
_BUILDERS: dict[Kind, Builder] = {}


def register(kind: Kind) -> Callable[[Builder], Builder]:
    """Register the builder of one block kind (exactly one per kind)."""

    def deco(fn: Builder) -> Builder:
        if kind in _BUILDERS:
            raise NasxError(f"a builder for block kind {kind.value!r} is already registered")
        _BUILDERS[kind] = fn
        return fn

    return deco


def build_block(block: Any, cin: int) -> nn.Module:
    """Build the torch module of one concrete block (``out`` and ``stride`` filled in)."""
    try:
        builder = _BUILDERS[block.kind]
    except KeyError:
        raise NasxError(f"no builder is registered for block kind {block.kind!r}") from None
    return builder(block, cin)


def _se(channels: int, b: Any) -> nn.Module:
    """The squeeze-excite of a block that takes one (``se``, ``se_rule``), or the identity."""
    return SqueezeExcite(channels, se_hidden(channels, b.se, b.se_rule)) if b.se else nn.Identity()


@register(Kind.CONV)
def _conv(b: genotype.ConvBlock, cin: int) -> nn.Module:
    conv = conv_norm_act(
        cin, b.out, b.kernel, b.stride, b.pad, dilation=b.dilation, groups=b.groups, bias=b.bias, norm=b.norm, act=b.act
    )
    if b.se:
        conv.add_module("se", _se(b.out, b))
    return conv


@register(Kind.POOL)
def _pool(b: genotype.PoolBlock, cin: int) -> nn.Module:
    layer = pool2d(b.op, b.kernel, b.step, b.padding, b.ceil_mode)
    return nn.Sequential(layer, nn.Dropout(b.dropout)) if b.dropout else layer


@register(Kind.MLPCONV)
def _mlpconv(b: genotype.MlpConvBlock, cin: int) -> nn.Module:
    widths = [*b.hidden, b.out]
    common = {"bias": b.bias, "norm": b.norm, "act": b.act}
    layers = [conv_norm_act(cin, widths[0], b.kernel, b.stride, b.pad, **common)]
    layers += [conv_norm_act(widths[i], widths[i + 1], 1, **common) for i in range(len(widths) - 1)]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """A residual unit: ``post(body(x) [* se] + shortcut(x))``, post- or pre-activation."""

    def __init__(self, b: genotype.ResidualBlock, cin: int) -> None:
        super().__init__()
        self.preact = b.preact
        out, mid, k = b.out, b.mid, b.kernel
        if b.variant == Variant.BASIC:
            convs = [(cin, mid, k, b.stride, b.groups), (mid, out, k, 1, b.groups)]
        else:
            convs = [(cin, mid, 1, 1, 1), (mid, mid, k, b.stride, b.groups), (mid, out, 1, 1, 1)]
        body: list[nn.Module] = []
        for i, (ci, co, kk, s, g) in enumerate(convs):
            last = i == len(convs) - 1
            if b.preact and i > 0:  # the first BN-act is shared with the shortcut: self.pre
                body += [*norm_act(ci, b.act)]
            if last and b.dropout:
                body.append(nn.Dropout(b.dropout))
            body.append(nn.Conv2d(ci, co, kk, s, kk // 2, groups=g, bias=False))
            if not b.preact:
                body += [nn.BatchNorm2d(co)] + ([] if last else [act_layer(b.act)])
        self.pre = norm_act(cin, b.act) if b.preact else nn.Identity()
        self.body = nn.Sequential(*body)
        self.se = _se(out, b)
        self.project = False
        if cin == out and b.stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        elif b.shortcut == Shortcut.PAD:
            self.shortcut = PadShortcut(cin, out, b.stride)
        else:
            self.project = True
            norm = Norm.NONE if b.preact else Norm.BN
            self.shortcut = conv_norm_act(cin, out, 1, b.stride, 0, norm=norm, act=Act.NONE)
        self.post = nn.Identity() if b.preact else act_layer(b.act)
        self.drop_path = DropPath(b.drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre(x)
        # pre-activation networks project the pre-activated input (WRN, He et al. 2016b)
        short = self.shortcut(pre if self.project else x)
        return self.post(self.drop_path(self.se(self.body(pre))) + short)


@register(Kind.RESIDUAL)
def _residual(b: genotype.ResidualBlock, cin: int) -> nn.Module:
    return Residual(b, cin)


# ---- dense family: dense, transition, separable, fire, mbconv ---------------------------------


class Dense(nn.Module):
    """A dense block: every layer sees the concatenation of the block input and all earlier layers' outputs."""

    def __init__(self, b: genotype.DenseBlock, cin: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for i in range(b.layers):
            c = cin + i * b.growth
            layer: list[nn.Module] = []
            if b.bn_size:
                layer += [*norm_act(c, b.act), nn.Conv2d(c, b.bn_size * b.growth, 1, bias=False)]
                c = b.bn_size * b.growth
            layer += [*norm_act(c, b.act), nn.Conv2d(c, b.growth, b.kernel, 1, b.kernel // 2, bias=False)]
            if b.dropout:
                layer.append(nn.Dropout(b.dropout))
            self.layers.append(nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


@register(Kind.DENSE)
def _dense(b: genotype.DenseBlock, cin: int) -> nn.Module:
    return Dense(b, cin)


@register(Kind.TRANSITION)
def _transition(b: genotype.TransitionBlock, cin: int) -> nn.Module:
    return nn.Sequential(*norm_act(cin, b.act), nn.Conv2d(cin, b.width(cin), 1, bias=False), nn.AvgPool2d(2, 2))


class Separable(nn.Module):
    """Xception block: ``[act] sep-conv BN`` x convs, [max pool], plus the (projected) input when residual."""

    def __init__(self, b: genotype.SeparableBlock, cin: int) -> None:
        super().__init__()
        body: list[nn.Module] = []
        c = cin
        for i, width in enumerate(b.widths(cin)):
            if i > 0 or b.act_first:
                body.append(act_layer(b.act))  # not in place: the shortcut still reads the input
            body += [separable_conv(c, width, b.kernel), nn.BatchNorm2d(width)]
            c = width
        if b.act_last:
            body.append(act_layer(b.act))
        if b.stride > 1:
            body.append(nn.MaxPool2d(3, b.stride, 1))
        if b.se:
            body.append(_se(b.out, b))
        self.body = nn.Sequential(*body)
        self.shortcut: nn.Module | None = None
        if b.residual:
            same = cin == b.out and b.stride == 1
            self.shortcut = nn.Identity() if same else conv_norm_act(cin, b.out, 1, b.stride, 0, act=Act.NONE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y if self.shortcut is None else y + self.shortcut(x)


@register(Kind.SEPARABLE)
def _separable(b: genotype.SeparableBlock, cin: int) -> nn.Module:
    return Separable(b, cin)


class Fire(nn.Module):
    """Fire module: ``cat(expand1x1(s), expand3x3(s))`` with ``s = squeeze(x)``."""

    def __init__(self, b: genotype.FireBlock, cin: int) -> None:
        super().__init__()
        s, e1, e3 = b.widths
        common = {"bias": True, "norm": Norm.NONE, "act": b.act}
        self.squeeze = conv_norm_act(cin, s, 1, **common)
        self.expand1x1 = conv_norm_act(s, e1, 1, **common)
        self.expand3x3 = conv_norm_act(s, e3, 3, 1, 1, **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], 1)


@register(Kind.FIRE)
def _fire(b: genotype.FireBlock, cin: int) -> nn.Module:
    return Fire(b, cin)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> depthwise kxk -> [SE] -> linear 1x1 projection, + input when shapes
    match (or + a 1x1 projection of it, ``project_shortcut``)."""

    def __init__(self, b: genotype.MBConvBlock, cin: int) -> None:
        super().__init__()
        mid = b.mid(cin)
        body: dict[str, nn.Module] = {}
        if b.has_expand:
            body["expand"] = conv_norm_act(cin, mid, 1, act=b.act)
        body["depthwise"] = conv_norm_act(mid, mid, b.kernel, b.stride, b.kernel // 2, groups=mid, act=b.act)
        if b.se:
            body["se"] = _se(mid, b)
        body["project"] = conv_norm_act(mid, b.out, 1, act=Act.NONE)
        self.body = nn.Sequential(OrderedDict(body))
        self.residual = b.residual(cin)
        self.shortcut = conv_norm_act(cin, b.out, 1, act=Act.NONE) if b.projected(cin) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            return y + self.shortcut(x)
        return x + y if self.residual else y


@register(Kind.MBCONV)
def _mbconv(b: genotype.MBConvBlock, cin: int) -> nn.Module:
    return InvertedResidual(b, cin)


# ---- inception family: branches of steps, concatenated ----------------------------------------


def _branch(steps: tuple[Any, ...], cin: int) -> tuple[nn.Sequential, int]:
    """One branch: its steps in sequence; returns the module and its output width."""
    layers: list[nn.Module] = []
    for step in steps:
        if isinstance(step, genotype.ConvStep):
            layers.append(
                conv_norm_act(cin, step.out, step.kernel, step.stride, step.pad, bias=step.bias, norm=step.norm, act=step.act)
            )
            cin = step.out
        elif isinstance(step, genotype.PoolStep):
            op = PoolOp.MAX if step.op == StepOp.MAX_POOL else PoolOp.AVG
            layers.append(pool2d(op, step.kernel, step.stride, step.pad))
        else:  # a fork
            fork, cin = _concat(step.fork, cin)
            layers.append(fork)
    return nn.Sequential(*layers), cin


def _concat(branches: tuple[tuple[Any, ...], ...], cin: int) -> tuple[Concat, int]:
    built = [_branch(steps, cin) for steps in branches]
    return Concat([module for module, _ in built]), sum(width for _, width in built)


@register(Kind.INCEPTION)
def _inception(b: genotype.InceptionBlock, cin: int) -> nn.Module:
    module, width = _concat(b.branches, cin)
    return nn.Sequential(module, _se(width, b)) if b.se else module


class InceptionResidual(nn.Module):
    """``act(x + scale * project(concat(branches(x))))``; the 1x1 projection is linear."""

    def __init__(self, b: genotype.InceptionResidualBlock, cin: int) -> None:
        super().__init__()
        self.branches, width = _concat(b.branches, cin)
        self.project = nn.Conv2d(width, cin, 1, bias=b.bias)
        self.scale = b.scale
        self.act = act_layer(b.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.project(self.branches(x)) * self.scale + x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@register(Kind.INCEPTION_RESIDUAL)
def _inception_residual(b: genotype.InceptionResidualBlock, cin: int) -> nn.Module:
    return InceptionResidual(b, cin)


# ==== micro cells and fractal blocks ==========================================================


class CellInputs(NamedTuple):
    """What a two-input block is built for: both inputs' channels, and whether s0 is twice s1's size."""

    c0: int
    c1: int
    reduce0: bool


def build_cell_op(op: CellOp, channels: int, stride: int) -> nn.Module:
    """One edge's module, exactly as DARTS' ``OPS[name](C, stride, affine=True)``."""
    c = channels
    if op == CellOp.NONE:
        return Zero(stride)
    if op == CellOp.SKIP:
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if op in (CellOp.AVG_POOL_3X3, CellOp.MAX_POOL_3X3):
        if op == CellOp.MAX_POOL_3X3:
            return nn.MaxPool2d(3, stride, 1)
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if op == CellOp.CONV_7X1_1X7:
        return nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c, c, (1, 7), (1, stride), (0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), (stride, 1), (3, 0), bias=False),
            nn.BatchNorm2d(c),
        )
    kernel = int(op.value[-1])  # sep_conv_KxK / dil_conv_KxK
    return sep_conv(c, kernel, stride) if op.value.startswith("sep") else dil_conv(c, kernel, stride)


class MicroCell(nn.Module):
    """A NASNet/DARTS cell: ``forward(s0, s1)`` -> concat of the ``concat`` states (DARTS model.Cell)."""

    def __init__(self, b: genotype.CellBlock, inputs: CellInputs) -> None:
        super().__init__()
        c, cell = b.out, b.cell
        self.pre0 = FactorizedReduce(inputs.c0, c) if inputs.reduce0 else relu_conv_bn(inputs.c0, c, 1)
        self.pre1 = relu_conv_bn(inputs.c1, c, 1)
        edges = [e for node in cell.nodes for e in node]
        self.edges = nn.ModuleList(build_cell_op(e.op, c, b.stride if e.input < 2 else 1) for e in edges)
        self.inputs = tuple(e.input for e in edges)
        self.concat = cell.concat
        self.drop_path = DropPath(b.drop_path)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for k in range(0, len(self.edges), 2):
            node = 0
            for op, i in zip(self.edges[k : k + 2], self.inputs[k : k + 2], strict=True):
                h = op(states[i])
                node = node + (h if isinstance(op, nn.Identity) else self.drop_path(h))
            states.append(node)  # type: ignore[arg-type]
        return torch.cat([states[i] for i in self.concat], dim=1)


@register(Kind.CELL)
def _cell(b: genotype.CellBlock, inputs: CellInputs) -> nn.Module:
    return MicroCell(b, inputs)


class Fractal(nn.Module):
    """A fractal block: columns of 1, 2, 4, ... conv-BN-ReLU units, joined by element-wise means.

    Column j (0 = deepest) has one conv per ``2 ** j`` levels; at each level the columns with a
    conv there (always the deepest ones) are joined, and the mean feeds all of them. Global
    drop-path keeps one column per block and minibatch (the paper keeps one for the whole network).
    """

    def __init__(self, b: genotype.FractalBlock, cin: int) -> None:
        super().__init__()
        self.local_drop, self.global_drop, self.columns = b.local_drop, b.global_drop, b.columns
        depth, cols = b.depth, b.columns
        pad = b.kernel // 2
        self.levels = nn.ModuleList()
        for level in range(1, depth + 1):
            units = nn.ModuleList()
            for j in range(cols):  # column j has a conv every 2**j levels
                span = 2**j
                if level % span == 0:
                    first = level == span
                    units.append(conv_norm_act(cin if first else b.out, b.out, b.kernel, b.stride if first else 1, pad))
            self.levels.append(units)

    def join(self, xs: list[torch.Tensor], column: int | None) -> torch.Tensor:
        """Mean of the join's inputs; in training, drop-path (global: ``column`` only, if it is here)."""
        if not self.training or len(xs) == 1:
            return torch.stack(xs).mean(0)
        if column is not None:  # global drop-path: inputs come deepest first, so the kept one is xs[column]
            return xs[column] if column < len(xs) else torch.stack(xs).mean(0)
        n, batch, device = len(xs), xs[0].shape[0], xs[0].device
        keep = torch.rand(n, batch, device=device) >= self.local_drop
        rescue = torch.randint(n, (batch,), device=device) == torch.arange(n, device=device)[:, None]
        keep = keep | (rescue & ~keep.any(0))  # a sample that lost every input keeps a random one
        w = keep.to(xs[0].dtype).view(n, -1, 1, 1, 1)
        return (torch.stack(xs) * w).sum(0) / w.sum(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = self.columns
        column = None
        if self.training and self.global_drop > 0 and float(torch.rand((), device="cpu")) < self.global_drop:
            column = int(torch.randint(cols, (), device="cpu"))
        outs = [x] * cols
        for units in self.levels:
            active = list(range(len(units)))  # the deepest len(units) columns
            joined = self.join([u(outs[j]) for u, j in zip(units, active, strict=True)], column)
            for j in active:
                outs[j] = joined
        return outs[0]


@register(Kind.FRACTAL)
def _fractal(b: genotype.FractalBlock, cin: int) -> nn.Module:
    return Fractal(b, cin)
