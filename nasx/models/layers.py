"""Layers shared by every block builder: conv-norm-act, squeeze-excite, concat of branches, option-A shortcut."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from nasx.space.ops import Act, Norm, PoolOp

_ACTS: dict[Act, type[nn.Module]] = {
    Act.RELU: nn.ReLU,
    Act.RELU6: nn.ReLU6,
    Act.TANH: nn.Tanh,
    Act.SIGMOID: nn.Sigmoid,
    Act.SILU: nn.SiLU,
    Act.GELU: nn.GELU,
    Act.HARDSWISH: nn.Hardswish,
    Act.NONE: nn.Identity,
}


def act_layer(act: Act) -> nn.Module:
    return _ACTS[act]()


def norm_act(channels: int, act: Act) -> nn.Sequential:
    """BN then activation: the pre-activation of He et al. 2016b."""
    return nn.Sequential(nn.BatchNorm2d(channels), act_layer(act))


def conv_norm_act(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    *,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
    norm: Norm = Norm.BN,
    act: Act = Act.RELU,
) -> nn.Sequential:
    """Conv2d, optional BN, optional activation, as one Sequential (conv, bn, act)."""
    layers: dict[str, nn.Module] = {
        "conv": nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=bias)
    }
    if norm == Norm.BN:
        layers["bn"] = nn.BatchNorm2d(cout)
    if act != Act.NONE:
        layers["act"] = act_layer(act)
    return nn.Sequential(OrderedDict(layers))


def pool2d(
    op: PoolOp, kernel: int | tuple[int, int], stride: int, padding: int | tuple[int, int] = 0, ceil_mode: bool = False
) -> nn.Module:
    if op == PoolOp.MAX:
        return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    return nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), as timm and TF do."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global pool, 1x1 reduce, ReLU, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class Concat(nn.Module):
    """Parallel branches on one input, concatenated along channels (inception modules, forks)."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


class PadShortcut(nn.Module):
    """Option-A shortcut: spatial subsampling by ``stride`` and zero-padded channels (no params)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.lo = (cout - cin) // 2
        self.hi = cout - cin - self.lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.lo, self.hi))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.lo}, {self.hi})"


def separable_conv(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise kxk conv then pointwise 1x1 conv, both without bias or normalisation (Xception's SeparableConv2d)."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        OrderedDict(
            depthwise=nn.Conv2d(cin, cin, kernel, stride, pad, dilation=dilation, groups=cin, bias=False),
            pointwise=nn.Conv2d(cin, cout, 1, bias=False),
        )
    )


# ---- micro-cell primitives (as in the DARTS code, quark0/darts operations.py) -----------------


def relu_conv_bn(
    cin: int, cout: int, kernel: int | tuple[int, int], stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0
) -> nn.Sequential:
    """ReLU, conv (no bias), BN: DARTS' ReLUConvBN, the cells' input preprocessing."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout))


def dil_conv(channels: int, kernel: int, stride: int, dilation: int = 2) -> nn.Sequential:
    """ReLU, depthwise kxk conv with ``dilation``, pointwise conv, BN (DARTS DilConv)."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(channels, channels, kernel, stride, pad, dilation=dilation, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels),
    )


def sep_conv(channels: int, kernel: int, stride: int) -> nn.Sequential:
    """Two stacked ReLU-depthwise-pointwise-BN units, the first strided (DARTS SepConv)."""
    return nn.Sequential(*dil_conv(channels, kernel, stride, dilation=1), *dil_conv(channels, kernel, 1, dilation=1))


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing pixels: ReLU, two strided 1x1 convs on offset grids, concat, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(cin, cout - cout // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):
    """The ``none`` op: zeros of the (strided) input's shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class DropPath(nn.Module):
    """Drop the whole input per sample with probability ``p`` in training, scaling survivors by 1/(1-p).

    The identity in eval mode and when ``p`` is 0 (stochastic depth, Huang et al. 2016; DARTS' drop_path).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
