"""The dense family: dense and transition (DenseNet), separable (Xception), fire (SqueezeNet), mbconv (MobileNetV2)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool, model_validator

from nasx.space.genotype.base import (
    MAX_DENSE_LAYERS,
    MAX_RATIO,
    MAX_SEPARABLE_CONVS,
    OddKernel,
    Shape,
    ShapeRuleError,
    Width,
    Window,
    _Block,
    _same_padding,
    _SqueezeExcite,
    _window,
)
from nasx.space.ops import Act, Kind, SeRule
from nasx.types import Probability


def _derived_out(block: Any, rule: str) -> None:
    """Reject ``out`` on kinds whose width follows from their input (one spelling per network)."""
    if block.out is not None:
        raise ShapeRuleError(
            "out",
            f"the width of a {block.kind.value} block is derived ({rule}), so it takes no 'out' "
            f"and cannot be a repeated stage template (use 'blocks'), got out={block.out}",
        )


class DenseBlock(_Block):
    """A DenseNet dense block (Huang et al. 2017): ``layers`` dense layers, each concatenated to its input.

    A dense layer is pre-activation: BN-``act``-1x1 conv to ``bn_size * growth`` (the "B"
    bottleneck; omitted when ``bn_size`` is 0), BN-``act``-kxk conv to ``growth``, optional
    ``dropout``; convolutions have no bias. The block's width is derived, ``in + layers * growth``,
    so ``out`` is never given and a dense block lives in an explicit ``blocks`` list.
    """

    derived_out: ClassVar[bool] = True
    kind: Literal[Kind.DENSE] = Kind.DENSE
    out: Width | None = None
    layers: Annotated[int, Field(strict=True, gt=0, le=MAX_DENSE_LAYERS)]
    growth: Width
    bn_size: Annotated[int, Field(strict=True, ge=0, le=MAX_RATIO)] = 4
    kernel: OddKernel = 3
    act: Act = Act.RELU
    dropout: Probability = 0.0

    @model_validator(mode="after")
    def _rules(self) -> DenseBlock:
        _derived_out(self, "input width + layers * growth")
        return self

    def out_shape(self, shape: Shape) -> Shape:
        return Shape(shape.c + self.layers * self.growth, shape.h, shape.w)


class TransitionBlock(_Block):
    """DenseNet's transition: BN-``act``-1x1 conv (no bias) to ``floor(in * compression)``, then 2x2 average pooling."""

    derived_out: ClassVar[bool] = True
    kind: Literal[Kind.TRANSITION] = Kind.TRANSITION
    out: Width | None = None
    compression: float = Field(default=0.5, gt=0.0, le=1.0)
    act: Act = Act.RELU

    @model_validator(mode="after")
    def _rules(self) -> TransitionBlock:
        _derived_out(self, "floor(input width * compression)")
        return self

    def width(self, cin: int) -> int:
        return int(cin * self.compression)

    def out_shape(self, shape: Shape) -> Shape:
        if self.width(shape.c) < 1:
            raise ShapeRuleError("compression", f"floor({shape.c} * {self.compression}) leaves no channels")
        if shape.h < 2 or shape.w < 2:
            raise ShapeRuleError("kind", f"a transition halves the spatial size, which must be at least 2x2, got {shape}")
        return Shape(self.width(shape.c), shape.h // 2, shape.w // 2)


class SeparableBlock(_Block, _SqueezeExcite):
    """Xception's block (Chollet 2017): ``convs`` depthwise-separable convolutions, each BN'd.

    A separable conv is a depthwise kxk then a pointwise 1x1 conv, both without bias, then BN.
    ``act`` precedes every separable conv but the first, which has it only when ``act_first``
    (the entry flow's first block has none); ``act_last`` puts ``act`` after the last BN too
    (the exit flow's un-shortcut convs). ``grow_first``: the first conv changes the width to
    ``out``, else the last one does. ``stride`` > 1 ends the block with a 3x3 max pool of that
    stride (padding 1). ``residual``: add the input, through a strided 1x1 conv + BN when the
    shape changes. ``se`` > 0 gates the body's output with squeeze-and-excitation before the
    addition (``se_hidden(out, se, se_rule)`` hidden channels), as SE-ResNet does.
    """

    kind: Literal[Kind.SEPARABLE] = Kind.SEPARABLE
    out: Width | None = None
    stride: Window = 1
    kernel: OddKernel = 3
    convs: Annotated[int, Field(strict=True, gt=0, le=MAX_SEPARABLE_CONVS)] = 2
    grow_first: StrictBool = True
    act_first: StrictBool = True
    act_last: StrictBool = False
    residual: StrictBool = True
    act: Act = Act.RELU
    se: Probability = 0.0
    se_rule: SeRule = SeRule.ROUND8

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("convs", 2) == 1 and "grow_first" in values:
            values = {k: v for k, v in values.items() if k != "grow_first"}  # one conv: both orders are the same
        return values

    def widths(self, cin: int) -> list[int]:
        """Output width of each separable conv."""
        out = self.out or 0
        return [out] * self.convs if self.grow_first else [cin] * (self.convs - 1) + [out]

    def out_shape(self, shape: Shape) -> Shape:
        if self.stride == 1:
            return Shape(self.out or 0, shape.h, shape.w)
        return _window(shape, self.out or 0, 3, self.stride, (1, 1))


class FireBlock(_Block):
    """SqueezeNet's fire module (Iandola et al. 2016): squeeze 1x1, then expand 1x1 and 3x3, concatenated.

    The squeeze has ``floor(out * squeeze)`` channels (the paper's squeeze ratio SR); the 3x3
    expand has ``floor(out * pct3x3)`` and the 1x1 expand the rest of ``out``. Every conv has a
    bias and ``act``, no normalisation. A fire module does not downsample (``stride`` is 1).
    """

    kind: Literal[Kind.FIRE] = Kind.FIRE
    out: Width | None = None
    stride: Window = 1
    squeeze: float = Field(default=0.125, gt=0.0, le=1.0)
    pct3x3: float = Field(default=0.5, gt=0.0, lt=1.0)
    act: Act = Act.RELU

    @model_validator(mode="after")
    def _rules(self) -> FireBlock:
        if self.out is not None:
            s, e1, e3 = self.widths
            if s < 1:
                raise ShapeRuleError("squeeze", f"floor(out * squeeze) must be >= 1, got {self.out} * {self.squeeze} -> {s}")
            if e1 < 1 or e3 < 1:
                raise ShapeRuleError("pct3x3", f"both expands need a channel: out {self.out} splits into 1x1 {e1} + 3x3 {e3}")
        return self

    @property
    def widths(self) -> tuple[int, int, int]:
        """(squeeze, expand 1x1, expand 3x3) widths."""
        out = self.out or 0
        e3 = int(out * self.pct3x3)
        return int(out * self.squeeze), out - e3, e3

    def out_shape(self, shape: Shape) -> Shape:
        if self.stride != 1:  # checked here, not at validation: a stage's stride is filled in without validation
            raise ShapeRuleError("stride", f"a fire module does not downsample; put a pool block before it, got {self.stride}")
        return Shape(self.out or 0, shape.h, shape.w)


class MBConvBlock(_Block, _SqueezeExcite):
    """MobileNetV2's inverted residual (Sandler et al. 2018).

    1x1 expansion to ``round(in * expand)`` channels (omitted when ``expand`` is 1 unless
    ``keep_expand``), depthwise kxk (strided), optional squeeze-excite with
    ``se_hidden(mid, se, se_rule)`` hidden channels, then a linear 1x1 projection to ``out``; BN
    after every conv, ``act`` after all but the projection. The input is added when ``stride`` is 1
    and the width is unchanged; with ``project_shortcut`` a stride-1 block that changes the width
    adds its input through a 1x1 conv + BN.

    ``keep_expand`` and ``project_shortcut`` are the two quirks of kuangliu/pytorch-cifar's
    MobileNetV2 (its expand-1 block still has a 1x1 conv; its stride-1 width changes are residual).
    """

    kind: Literal[Kind.MBCONV] = Kind.MBCONV
    out: Width | None = None
    stride: Window = 1
    kernel: OddKernel = 3
    expand: float = Field(default=6.0, gt=0.0, le=MAX_RATIO)
    se: Probability = 0.0
    se_rule: SeRule = SeRule.ROUND8
    act: Act = Act.RELU6
    keep_expand: StrictBool = False
    project_shortcut: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("expand", 6.0) != 1 and "keep_expand" in values:  # the conv is there anyway
            values = {k: v for k, v in values.items() if k != "keep_expand"}
        return values

    @property
    def has_expand(self) -> bool:
        """Whether the block starts with the 1x1 expansion conv."""
        return self.expand != 1 or self.keep_expand

    def mid(self, cin: int) -> int:
        """Width of the expanded (depthwise) features."""
        return cin if self.expand == 1 else int(round(cin * self.expand))

    def residual(self, cin: int) -> bool:
        return self.stride == 1 and cin == self.out

    def projected(self, cin: int) -> bool:
        """Whether the input is added through a 1x1 projection (``project_shortcut``, stride 1, width changes)."""
        return self.project_shortcut and self.stride == 1 and cin != self.out

    def out_shape(self, shape: Shape) -> Shape:
        if self.mid(shape.c) < 1:
            raise ShapeRuleError("expand", f"round({shape.c} * {self.expand}) leaves no channels to expand to")
        return _window(shape, self.out or 0, self.kernel, self.stride, _same_padding(self.kernel))  # type: ignore[arg-type]
