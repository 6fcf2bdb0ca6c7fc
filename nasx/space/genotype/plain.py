"""Plain block kinds: conv and pool (LeNet, AlexNet, VGG), mlpconv (NiN), residual (ResNet, ResNeXt, WRN, SE-ResNet)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, model_validator

from nasx.space.genotype.base import (
    MAX_RATIO,
    Kernel,
    OddKernel,
    Pad,
    Shape,
    ShapeRuleError,
    Width,
    Window,
    _Block,
    _pair,
    _same_padding,
    _SqueezeExcite,
    _window,
    _Windowed,
)
from nasx.space.ops import Act, Kind, Norm, PoolOp, SeRule, Shortcut, Variant
from nasx.types import Probability


class ConvBlock(_Block, _Windowed, _SqueezeExcite):
    """A plain convolution with optional normalisation and activation (LeNet, AlexNet, VGG).

    ``se`` > 0 adds squeeze-and-excitation after the activation, with ``se_hidden(out, se, se_rule)``
    hidden channels (:class:`nasx.space.ops.SeRule`).
    """

    kind: Literal[Kind.CONV] = Kind.CONV
    out: Width | None = None
    kernel: Kernel = 3
    stride: Window = 1
    padding: Pad | tuple[Pad, Pad] | None = None
    dilation: Window = 1
    groups: Width = 1
    bias: StrictBool = False
    norm: Norm = Norm.BN
    act: Act = Act.RELU
    se: Probability = 0.0
    se_rule: SeRule = SeRule.ROUND8

    @model_validator(mode="after")
    def _rules(self) -> ConvBlock:
        if self.out is not None and self.out % self.groups:
            raise ShapeRuleError("groups", f"out ({self.out}) must be divisible by groups ({self.groups})")
        return self

    def out_shape(self, shape: Shape) -> Shape:
        if shape.c % self.groups:
            raise ShapeRuleError("groups", f"input channels ({shape.c}) must be divisible by groups ({self.groups})")
        return _window(shape, self.out or 0, self.kernel, self.stride, self.pad, self.dilation)


class PoolBlock(_Block):
    """Spatial max or average pooling; ``stride`` defaults to ``kernel``. Optional dropout after."""

    kind: Literal[Kind.POOL] = Kind.POOL
    op: Literal[PoolOp.MAX, PoolOp.AVG] = PoolOp.MAX
    kernel: Kernel = 2
    stride: Window | None = None
    padding: Pad = 0
    ceil_mode: StrictBool = False
    dropout: Probability = 0.0

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        if isinstance(values, dict):
            values = dict(values)
            kernel = values.get("kernel", 2)
            if isinstance(kernel, (list, tuple)) and len(kernel) == 2 and kernel[0] == kernel[1]:
                values["kernel"] = kernel = kernel[0]
            if values.get("stride") is not None and values.get("stride") == kernel:
                values["stride"] = None
        return values

    @model_validator(mode="after")
    def _rules(self) -> PoolBlock:
        if 2 * self.padding > min(_pair(self.kernel)):
            raise ShapeRuleError("padding", f"must be at most half the kernel ({self.kernel}), got {self.padding}")
        return self

    @property
    def step(self) -> int:
        return self.stride if self.stride is not None else max(_pair(self.kernel))

    def out_shape(self, shape: Shape) -> Shape:
        return _window(shape, shape.c, self.kernel, self.step, (self.padding, self.padding), ceil=self.ceil_mode)


class MlpConvBlock(_Block, _Windowed):
    """NiN's mlpconv: a kxk convolution then 1x1 convolutions, each followed by ``act``.

    ``hidden`` lists the output channels of the kxk conv and of every 1x1 conv but the last,
    whose width is ``out``.
    """

    kind: Literal[Kind.MLPCONV] = Kind.MLPCONV
    out: Width | None = None
    hidden: tuple[Width, ...] = Field(min_length=1)
    kernel: Kernel = 3
    stride: Window = 1
    padding: Pad | tuple[Pad, Pad] | None = None
    bias: StrictBool = True
    norm: Norm = Norm.NONE
    act: Act = Act.RELU

    def out_shape(self, shape: Shape) -> Shape:
        return _window(shape, self.out or 0, self.kernel, self.stride, self.pad)


class ResidualBlock(_Block, _SqueezeExcite):
    """Residual block: basic (two kxk convs) or bottleneck (1x1, grouped kxk, 1x1).

    The inner width is ``floor(out * width / expansion)``; ``expansion`` defaults to 1 for
    basic and 4 for bottleneck blocks, so ``groups: 32, width: 2`` is ResNeXt-50 32x4d and
    ``width: 2`` is Wide-ResNet-50-2. ``preact`` gives the pre-activation ordering (BN-act-conv,
    He et al. 2016b, WRN). ``se`` > 0 adds squeeze-and-excitation with
    ``se_hidden(out, se, se_rule)`` hidden channels before the addition: ``round8`` (the default,
    timm) or ``floor`` (``out // 16`` at ``se: 0.0625``, kuangliu's SENet-18; see :class:`SeRule`). ``dropout`` sits between the
    convolutions of a basic block (WRN). ``drop_path`` is stochastic depth (Huang et al. 2016): the
    residual branch is dropped per sample in training, with the network's linear schedule (see
    :func:`drop_path_schedule`).
    """

    kind: Literal[Kind.RESIDUAL] = Kind.RESIDUAL
    variant: Variant = Variant.BASIC
    out: Width | None = None
    stride: Window = 1
    kernel: OddKernel = 3
    expansion: Width | None = None
    width: float = Field(default=1.0, gt=0, le=MAX_RATIO)
    groups: Width = 1
    preact: StrictBool = False
    shortcut: Shortcut = Shortcut.PROJECT
    se: Probability = 0.0
    se_rule: SeRule = SeRule.ROUND8
    act: Act = Act.RELU
    dropout: Probability = 0.0
    drop_path: Probability = 0.0

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("expansion") is not None:
            values = dict(values)
            default = 4 if str(values.get("variant", Variant.BASIC)) == Variant.BOTTLENECK else 1
            if values["expansion"] == default:
                values["expansion"] = None
        return values

    @model_validator(mode="after")
    def _rules(self) -> ResidualBlock:
        if self.out is not None:
            if self.mid < 1:
                raise ShapeRuleError("width", f"inner width floor(out * width / expansion) must be >= 1, got {self.mid}")
            if self.mid % self.groups:
                raise ShapeRuleError("groups", f"inner width ({self.mid}) must be divisible by groups ({self.groups})")
        return self

    @property
    def expand_ratio(self) -> int:
        if self.expansion is not None:
            return self.expansion
        return 4 if self.variant == Variant.BOTTLENECK else 1

    @property
    def mid(self) -> int:
        """Width of the inner convolution(s)."""
        return int((self.out or 0) * self.width / self.expand_ratio)

    def out_shape(self, shape: Shape) -> Shape:
        out = _window(shape, self.out or 0, self.kernel, self.stride, _same_padding(self.kernel))  # type: ignore[arg-type]
        if self.variant == Variant.BASIC and (shape.c % self.groups or out.c % self.groups):
            raise ShapeRuleError(
                "groups", f"input ({shape.c}) and output ({out.c}) channels must be divisible by groups ({self.groups})"
            )
        if self.shortcut == Shortcut.PAD and out.c < shape.c:
            raise ShapeRuleError("shortcut", f"'pad' cannot reduce channels ({shape.c} -> {out.c}); use 'project'")
        return out
