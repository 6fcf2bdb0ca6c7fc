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
