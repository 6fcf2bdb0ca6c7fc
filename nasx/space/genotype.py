"""The genotype language: a network as a small, frozen, typed value.

A :class:`Network` is ``input``, ``stem`` (a list of blocks), ``stages`` and ``head``. A stage
is either a block template repeated ``depth`` times at ``channels`` output channels (the first
block takes the stage's ``stride``), or an explicit ``blocks`` list. Each block kind is a
frozen pydantic model with a ``kind`` tag (see :class:`nasx.space.ops.Kind`).

Values are *canonical*: anything implied by other fields (same-padding, a pool's stride equal
to its kernel, a variant's default expansion) is stored as ``None``, so two spellings of one
network compare equal and share a digest. Equality, hashing and the digest ignore ``name`` and
``reference``: a found network that equals ResNet-20 *is* ResNet-20.

No torch here: shapes are inferred arithmetically, which is also how invalid networks
(spatial size below 1, channels not divisible by groups) are rejected before anything is built.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from nasx.errors import GenotypeError
from nasx.space.ops import Act, CellOp, Classifier, Kind, Norm, PoolOp, SeRule, Shortcut, StepOp, Variant, cell_op
from nasx.yamlfiles import YamlProblem, nesting_problem, read_text
from nasx.yamlfiles import parse as parse_yaml

# Upper bounds. Far above every published network, they keep every size torch computes (feature
# maps, weights: at most about 2**60 elements) inside int64, and every build finite: without them a
# ten-line file could ask for a 2**40-pixel input or a fractal block of 2**39 convolutions, which
# torch reports as an overflow deep inside a trace, or never finishes building.
#: Widths a genotype states: ``out``, ``channels``, hidden layers, ``growth``, ``groups``, input channels.
MAX_WIDTH = 2**16
#: Kernel sides, strides, paddings, dilations and pooling windows.
MAX_WINDOW = 256
#: Input resolution (pixels a side).
MAX_RESOLUTION = 8192
#: Classes of the classifier.
MAX_CLASSES = 2**20
#: Channels of a feature map between blocks (concatenations make them wider than any one ``out``).
MAX_FEATURE_CHANNELS = 2**20
#: Elements (channels x height x width) of a feature map between blocks, at batch 1.
MAX_FEATURE_ELEMENTS = 2**36
#: Multipliers of a width: a residual block's ``width``, an mbconv's ``expand``, a dense layer's ``bn_size``.
MAX_RATIO = 64
#: Layers of one dense block, convolutions of one separable block, columns of one fractal block
#: (a fractal block has 2**columns - 1 convolutions).
MAX_DENSE_LAYERS, MAX_SEPARABLE_CONVS, MAX_FRACTAL_COLUMNS = 256, 16, 8
#: Nodes of one micro cell (DARTS has 4, NASNet and AmoebaNet 5).
MAX_CELL_NODES = 64

# Strict ints and bools: YAML gives real ones, and `kernel: true` or `depth: 2.5` is a mistake.
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Width = Annotated[int, Field(strict=True, gt=0, le=MAX_WIDTH)]
Window = Annotated[int, Field(strict=True, gt=0, le=MAX_WINDOW)]
Pad = Annotated[int, Field(strict=True, ge=0, le=MAX_WINDOW)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
Kernel = Window | tuple[Window, Window]


class Shape(NamedTuple):
    """Channels, height, width of a feature map (batch excluded)."""

    c: int
    h: int
    w: int

    def __str__(self) -> str:
        return f"{self.c}x{self.h}x{self.w}"


class ShapeRuleError(ValueError):
    """A rule that depends on the incoming shape; carries the offending field's name."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _pair(v: Kernel) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def _same_padding(kernel: Kernel, dilation: int = 1) -> tuple[int, int] | None:
    kh, kw = _pair(kernel)
    if kh % 2 == 0 or kw % 2 == 0:
        return None
    return (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)


def _out_side(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if not ceil:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad:  # the last window must start inside the input
        out -= 1
    return out


def _window(
    shape: Shape, c_out: int, kernel: Kernel, stride: int, pad: tuple[int, int], dilation: int = 1, ceil: bool = False
) -> Shape:
    (kh, kw), (ph, pw) = _pair(kernel), pad
    out = Shape(c_out, _out_side(shape.h, kh, stride, ph, dilation, ceil), _out_side(shape.w, kw, stride, pw, dilation, ceil))
    if out.h < 1 or out.w < 1:
        raise ShapeRuleError("kernel", f"spatial size must stay >= 1, but {shape} becomes {out}")
    return out


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)


class _Block(_Frozen):
    """Common interface of block kinds: shape inference.

    ``derived_out``: the kind's width follows from its input or branches, so ``out`` is never
    required; every other kind with an ``out`` field needs it outside a repeated stage template.
    """

    derived_out: ClassVar[bool] = False
    #: Two-input kinds (the micro cell) also read the output of the block before the previous one.
    two_inputs: ClassVar[bool] = False

    def out_shape(self, shape: Shape) -> Shape:  # pragma: no cover - every kind overrides
        raise NotImplementedError


def _check_kernel_padding(kernel: Kernel, padding: Any) -> None:
    if padding is None and _same_padding(kernel) is None:
        raise ShapeRuleError("padding", f"kernel {kernel} is even, so 'same' padding does not exist: give padding explicitly")


def _int_pair(v: Any) -> tuple[int, int] | None:
    """``v`` as an (h, w) pair if it is an int or a two-int list, else None (left to validation)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return (v[0], v[1])
    return None


def _canonical_padding(values: dict[str, Any]) -> dict[str, Any]:
    """Store square kernels and paddings as one int, and padding as None when it is 'same' padding."""
    kernel, pad = _int_pair(values.get("kernel", 3)), _int_pair(values.get("padding"))
    if kernel and kernel[0] == kernel[1] and "kernel" in values:
        values["kernel"] = kernel[0]
    if pad and pad[0] == pad[1]:
        values["padding"] = pad[0]
    dilation = values.get("dilation", 1)
    if kernel and pad and isinstance(dilation, int) and dilation > 0 and _same_padding(kernel, dilation) == pad:
        values["padding"] = None
    return values


def se_hidden(channels: int, se: float, rule: SeRule) -> int:
    """Hidden width of the squeeze-excite on ``channels`` channels at ratio ``se`` (see :class:`SeRule`)."""
    if rule == SeRule.FLOOR:
        return max(1, int(channels * se))
    return max(8, int(channels * se + 4) // 8 * 8)


def _canonical_se(values: dict[str, Any]) -> dict[str, Any]:
    """Without squeeze-excite (``se`` 0) its hidden-width rule means nothing: store the default."""
    if not values.get("se") and "se_rule" in values:
        values = {k: v for k, v in values.items() if k != "se_rule"}
    return values


class ConvBlock(_Block):
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

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        return _canonical_se(_canonical_padding(dict(values))) if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _rules(self) -> ConvBlock:
        _check_kernel_padding(self.kernel, self.padding)
        if self.out is not None and self.out % self.groups:
            raise ShapeRuleError("groups", f"out ({self.out}) must be divisible by groups ({self.groups})")
        return self

    @property
    def pad(self) -> tuple[int, int]:
        return _same_padding(self.kernel, self.dilation) if self.padding is None else _pair(self.padding)  # type: ignore[return-value]

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


class MlpConvBlock(_Block):
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

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        return _canonical_padding(dict(values)) if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _rules(self) -> MlpConvBlock:
        _check_kernel_padding(self.kernel, self.padding)
        return self

    @property
    def pad(self) -> tuple[int, int]:
        return _same_padding(self.kernel) if self.padding is None else _pair(self.padding)  # type: ignore[return-value]

    def out_shape(self, shape: Shape) -> Shape:
        return _window(shape, self.out or 0, self.kernel, self.stride, self.pad)


def _odd(v: int) -> int:
    """A kernel side must be odd, so that 'same' padding exists."""
    if v % 2 == 0:
        raise ValueError(f"must be odd, got {v}")
    return v


OddKernel = Annotated[Window, AfterValidator(_odd)]


class ResidualBlock(_Block):
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
        if isinstance(values, dict):
            values = _canonical_se(values)
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


# ---- dense family: dense, transition (DenseNet), separable (Xception), fire (SqueezeNet), mbconv (MobileNetV2) ----


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


class SeparableBlock(_Block):
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
        if isinstance(values, dict):
            values = _canonical_se(values)
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


class MBConvBlock(_Block):
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
        if not isinstance(values, dict):
            return values
        values = _canonical_se(values)
        if values.get("expand", 6.0) != 1 and "keep_expand" in values:  # the conv is there anyway
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


# ==== inception family: parallel branches of op steps ========================================
#
# A *branch* is a list of steps; a step is a conv ``{op: conv, out: 64, kernel: [1, 7]}``, a
# pool ``{op: max_pool, kernel: 3, stride: 2, padding: 0}`` (steps default to stride 1 and
# 'same' padding) or a fork ``{fork: [[...], [...]]}`` whose sub-branches are concatenated.
# ``inception`` concatenates its branches; ``inception_residual`` projects the concatenation
# back to the input width and adds it to the input. Width and stride are derived from the
# branches, so a block's ``out`` and ``stride`` are only checks (stored as None when they agree).

_StrictBool = StrictBool
_Padding = Pad | tuple[Pad, Pad] | None
_STEP_TAGS = {"conv", "pool", "fork"}  # tags of the step union, dropped from error paths


def _kernel_label(kernel: Kernel) -> str:
    kh, kw = _pair(kernel)
    return f"{kh}x{kw}"


class _Step(_Frozen):
    """What conv and pool steps share: a window with ``stride`` 1 and 'same' padding unless given.

    The fields (``kernel``, ``stride``, ``padding``) are declared by each subclass, so that
    ``op`` comes first in written forms.
    """

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        return _canonical_padding(dict(values)) if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _rules(self) -> _Step:
        if self.padding is None and _same_padding(self.kernel) is None:
            raise ShapeRuleError("kernel", f"{self.kernel} is even, so 'same' padding does not exist: give padding explicitly")
        return self

    @property
    def pad(self) -> tuple[int, int]:
        return _same_padding(self.kernel) if self.padding is None else _pair(self.padding)  # type: ignore[return-value]

    def width(self, cin: int | None) -> int | None:
        """Output channels for ``cin`` input channels (None: depends on the unknown ``cin``)."""
        return cin

    def out_shape(self, shape: Shape) -> Shape:
        return _window(shape, self.width(shape.c) or 0, self.kernel, self.stride, self.pad)


class ConvStep(_Step):
    """Conv, BN, activation; ``bias`` for the reference projections that carry one."""

    op: Literal[StepOp.CONV]
    out: Width
    kernel: Kernel
    stride: Window = 1
    padding: _Padding = None
    bias: _StrictBool = False
    norm: Norm = Norm.BN
    act: Act = Act.RELU

    def width(self, cin: int | None) -> int | None:
        return self.out

    def label(self) -> str:
        return f"{_kernel_label(self.kernel)}{f'/{self.stride}' if self.stride > 1 else ''} {self.out}"


class PoolStep(_Step):
    """Max or average pooling; keeps the channels."""

    op: Literal[StepOp.MAX_POOL, StepOp.AVG_POOL]
    kernel: Kernel
    stride: Window = 1
    padding: _Padding = None

    @model_validator(mode="after")
    def _half_kernel(self) -> PoolStep:
        if any(2 * p > k for p, k in zip(self.pad, _pair(self.kernel), strict=True)):
            raise ShapeRuleError("padding", f"must be at most half the kernel ({self.kernel}), got {self.padding}")
        return self

    def label(self) -> str:
        return f"{self.op.value.split('_')[0]} {_kernel_label(self.kernel)}{f'/{self.stride}' if self.stride > 1 else ''}"


class ForkStep(_Frozen):
    """Parallel sub-branches on the same input, concatenated (Inception-v3's E, Inception-v4's C)."""

    fork: tuple[Branch, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _rules(self) -> ForkStep:
        _check_strides(self.fork, "fork")
        return self

    @property
    def stride(self) -> int:
        return _branch_stride(self.fork[0])

    def width(self, cin: int | None) -> int | None:
        widths = [_branch_width(b, cin) for b in self.fork]
        return None if None in widths else sum(widths)  # type: ignore[arg-type]

    def out_shape(self, shape: Shape) -> Shape:
        return _concat_shape(self.fork, shape, "fork")

    def label(self) -> str:
        return "[" + ", ".join(_branch_label(b) for b in self.fork) + "]"


def _step_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "fork" in value:
            return "fork"
        op = value.get("op")
    elif isinstance(value, ForkStep):
        return "fork"
    else:
        op = getattr(value, "op", None)
    if op == StepOp.CONV:
        return "conv"
    return "pool" if op in (StepOp.MAX_POOL, StepOp.AVG_POOL) else None


Step = Annotated[
    Annotated[ConvStep, Tag("conv")] | Annotated[PoolStep, Tag("pool")] | Annotated[ForkStep, Tag("fork")],
    Discriminator(
        _step_tag,
        custom_error_type="invalid_step",
        custom_error_message="a step needs 'op' (one of " + ", ".join(o.value for o in StepOp) + ") or 'fork' (its sub-branches)",
    ),
]
Branch = Annotated[tuple[Step, ...], Field(min_length=1)]
ForkStep.model_rebuild()


def _branch_stride(steps: tuple[Any, ...]) -> int:
    stride = 1
    for step in steps:
        stride *= step.stride
    return stride


def _branch_width(steps: tuple[Any, ...], cin: int | None) -> int | None:
    for step in steps:
        cin = step.width(cin)
    return cin


def _all_steps(branches: tuple[tuple[Any, ...], ...]) -> list[Any]:
    """Every conv and pool step of ``branches``, forks flattened."""
    return [x for steps in branches for s in steps for x in (_all_steps(s.fork) if isinstance(s, ForkStep) else [s])]


def _branch_label(steps: tuple[Any, ...]) -> str:
    return " > ".join(step.label() for step in steps)


def _check_strides(branches: tuple[tuple[Any, ...], ...], path: str) -> int:
    """The common stride of parallel branches; they must agree to be concatenated."""
    strides = [_branch_stride(b) for b in branches]
    for i, s in enumerate(strides):
        if s != strides[0]:
            raise ShapeRuleError(f"{path}[{i}]", f"strides by {s}, but {path}[0] by {strides[0]}; parallel branches must agree")
    return strides[0]


def _branch_shape(steps: tuple[Any, ...], shape: Shape, path: str) -> Shape:
    for j, step in enumerate(steps):
        try:
            shape = step.out_shape(shape)
        except ShapeRuleError as exc:
            raise ShapeRuleError(f"{path}[{j}].{exc.field}", str(exc)) from None
    return shape


def _concat_shape(branches: tuple[tuple[Any, ...], ...], shape: Shape, path: str) -> Shape:
    outs = [_branch_shape(b, shape, f"{path}[{i}]") for i, b in enumerate(branches)]
    for i, o in enumerate(outs):
        if (o.h, o.w) != (outs[0].h, outs[0].w):
            raise ShapeRuleError(
                f"{path}[{i}]", f"gives {o.h}x{o.w} but {path}[0] gives {outs[0].h}x{outs[0].w}; they cannot be concatenated"
            )
    return Shape(sum(o.c for o in outs), outs[0].h, outs[0].w)


class _Branches(_Frozen):
    branches: tuple[Branch, ...]


class InceptionBlock(_Block):
    """Parallel branches concatenated along channels (GoogLeNet, Inception-v3/v4, their reductions).

    ``out`` (the sum of the branches' widths; a bare pool branch passes the input's width) and
    ``stride`` (the branches' common stride) are derived; give them only as checks. A repeated
    stage's ``channels`` must equal the derived width. ``se`` > 0 gates the concatenation with
    squeeze-and-excitation (SE-Inception, Hu et al. 2018), ``se_hidden(width, se, se_rule)`` hidden.
    """

    derived_out: ClassVar[bool] = True
    kind: Literal[Kind.INCEPTION] = Kind.INCEPTION
    branches: tuple[Branch, ...] = Field(min_length=1)
    out: Annotated[int, Field(strict=True, gt=0, le=MAX_FEATURE_CHANNELS)] | None = None
    stride: Window | None = None
    se: Probability = 0.0
    se_rule: SeRule = SeRule.ROUND8

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        """Drop ``out`` and ``stride`` when they equal what the branches give (checked in _rules otherwise)."""
        if isinstance(values, dict):
            values = _canonical_se(values)
        if not isinstance(values, dict) or (values.get("out") is None and values.get("stride") is None):
            return values
        try:
            branches = _Branches.model_validate({"branches": values.get("branches")}).branches
        except ValidationError:
            return values  # reported, with its path, by the validation of the field itself
        values = dict(values)
        strides = {_branch_stride(b) for b in branches}
        if len(strides) == 1 and values.get("stride") == strides.pop() and not isinstance(values.get("stride"), bool):
            values["stride"] = None
        widths = [_branch_width(b, None) for b in branches]
        if None not in widths and values.get("out") == sum(widths) and not isinstance(values.get("out"), bool):  # type: ignore[arg-type]
            values["out"] = None
        return values

    @model_validator(mode="after")
    def _rules(self) -> InceptionBlock:
        stride = _check_strides(self.branches, "branches")
        if self.stride is not None and self.stride != stride:
            raise ShapeRuleError("stride", f"the branches stride by {stride}, got {self.stride}")
        width = self.width(None)
        if self.out is not None and width is not None and self.out != width:
            raise ShapeRuleError("out", f"the branches concatenate to {width} channels, got {self.out}")
        return self

    @property
    def reduction(self) -> int:
        """The branches' common stride."""
        return _branch_stride(self.branches[0])

    @property
    def factorized(self) -> bool:
        """Whether some conv is factorized into 1xn / nx1 (Inception-v3 and later)."""
        return any(_pair(s.kernel)[0] != _pair(s.kernel)[1] for s in _all_steps(self.branches))

    def width(self, cin: int | None) -> int | None:
        """Output channels for ``cin`` input channels (None when a pass-through branch needs ``cin``)."""
        widths = [_branch_width(b, cin) for b in self.branches]
        return None if None in widths else sum(widths)  # type: ignore[arg-type]

    def out_shape(self, shape: Shape) -> Shape:
        out = _concat_shape(self.branches, shape, "branches")
        if self.stride is not None and self.stride != self.reduction:
            raise ShapeRuleError(
                "stride", f"the block is given stride {self.stride}, but its branches stride by {self.reduction}"
            )
        if self.out is not None and self.out != out.c:
            raise ShapeRuleError("out", f"the branches concatenate to {out.c} channels, but {self.out} are asked for")
        return out

    def summary(self) -> str:
        """One line: the branches, ``|``-separated, steps ``>``-separated, e.g. ``1x1 64 | 1x1 48 > 5x5 64``."""
        return f"{self.kind.value}  " + " | ".join(_branch_label(b) for b in self.branches)


class InceptionResidualBlock(_Block):
    """Inception-ResNet: ``act(x + scale * conv1x1(concat(branches(x))))`` (Szegedy et al. 2017).

    The 1x1 projection back to the input width is linear (no norm, no activation) with ``bias``,
    as in timm; ``act: none`` drops the activation after the addition (the last Block8). The
    block keeps its input shape, so ``out`` (the input width) and ``stride`` (1) are only checks.
    """

    derived_out: ClassVar[bool] = True
    kind: Literal[Kind.INCEPTION_RESIDUAL] = Kind.INCEPTION_RESIDUAL
    branches: tuple[Branch, ...] = Field(min_length=1)
    scale: float = Field(default=1.0, gt=0)
    act: Act = Act.RELU
    bias: _StrictBool = True
    out: Annotated[int, Field(strict=True, gt=0, le=MAX_FEATURE_CHANNELS)] | None = None
    stride: Window | None = None

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("stride") == 1 and not isinstance(values.get("stride"), bool):
            values = {**values, "stride": None}
        return values

    @model_validator(mode="after")
    def _rules(self) -> InceptionResidualBlock:
        if self.stride is not None and self.stride != 1:
            raise ShapeRuleError("stride", f"a residual block keeps its spatial size (stride 1), got {self.stride}")
        if _check_strides(self.branches, "branches") != 1:
            raise ShapeRuleError("branches", "must keep the spatial size (stride 1) for the residual addition")
        return self

    def width(self, cin: int | None) -> int | None:
        """Width of the concatenated branches (the projection's input)."""
        widths = [_branch_width(b, cin) for b in self.branches]
        return None if None in widths else sum(widths)  # type: ignore[arg-type]

    def out_shape(self, shape: Shape) -> Shape:
        inner = _concat_shape(self.branches, shape, "branches")
        if (inner.h, inner.w) != (shape.h, shape.w):
            raise ShapeRuleError("branches", f"must keep the spatial size for the addition: {shape} becomes {inner}")
        if self.stride not in (None, 1):
            raise ShapeRuleError("stride", f"a residual block keeps its spatial size (stride 1), got {self.stride}")
        if self.out is not None and self.out != shape.c:
            raise ShapeRuleError("out", f"a residual block keeps the input width {shape.c}, got {self.out}")
        return shape

    def summary(self) -> str:
        tail = f"1x1 proj, x{self.scale:g} + input" + ("" if self.act == Act.NONE else f", {self.act.value}")
        return f"{self.kind.value}  " + " | ".join(_branch_label(b) for b in self.branches) + f"  ; {tail}"


# ==== micro cells (NASNet / DARTS), fractal blocks, stochastic depth ==========================


class CellEdge(_Frozen):
    """One (op, input) pair of a cell node: ``op`` applied to state ``input``.

    States 0 and 1 are the cell's two inputs (outputs of the previous-previous and the previous
    block), state ``i >= 2`` is node ``i - 2``. Written ``sep3@0`` in the compact form; the op
    may be given by its DARTS name or its short alias (:data:`nasx.space.ops.CELL_OP_ALIASES`).
    """

    op: CellOp
    input: NonNegativeInt

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, values: Any) -> Any:
        if isinstance(values, str):
            op, sep, index = values.partition("@")
            if not sep or not index.strip().isdigit():
                raise ValueError(f"an edge is written OP@INPUT, e.g. sep3@0, got {values!r}")
            values = {"op": op.strip(), "input": int(index)}
        elif isinstance(values, (list, tuple)) and len(values) == 2:
            values = {"op": values[0], "input": values[1]}
        return values

    @field_validator("op", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        return cell_op(v) if isinstance(v, str) else v


class Cell(_Frozen):
    """A NASNet/DARTS micro cell: a DAG of nodes, each the sum of two edges, and a concat list.

    ``nodes[k]`` computes state ``k + 2`` and may read states ``0 .. k + 1``; the cell's output
    is the channel concatenation of the states in ``concat`` (each of them a node, >= 2). The
    compact string form ``sep3@0+sep3@1 | skip@0+dil3@2 ; concat 2,3`` is accepted wherever a
    cell is expected (YAML included) and is what :meth:`to_string` writes.
    """

    nodes: tuple[tuple[CellEdge, CellEdge], ...] = Field(max_length=MAX_CELL_NODES)
    concat: tuple[NonNegativeInt, ...]

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, values: Any) -> Any:
        if isinstance(values, str):
            from nasx.space.compact import cell_from_string

            return cell_from_string(values)
        return values

    @model_validator(mode="after")
    def _rules(self) -> Cell:
        if not self.nodes:
            raise ShapeRuleError("nodes", "a cell needs at least one node, got none")
        for k, node in enumerate(self.nodes):
            for j, edge in enumerate(node):
                if edge.input >= k + 2:
                    raise ShapeRuleError(
                        f"nodes[{k}][{j}].input",
                        f"node {k + 2} may read only states 0..{k + 1} (the two inputs and earlier nodes), got {edge.input}",
                    )
        if not self.concat:
            raise ShapeRuleError("concat", "must list at least one node, got []")
        states = len(self.nodes) + 2
        for i, c in enumerate(self.concat):
            if not 2 <= c < states:
                raise ShapeRuleError(f"concat[{i}]", f"must be a node state in 2..{states - 1}, got {c}")
        if len(set(self.concat)) != len(self.concat):
            raise ShapeRuleError("concat", f"states must be distinct, got {list(self.concat)}")
        return self

    def to_string(self) -> str:
        from nasx.space.compact import cell_to_string

        return cell_to_string(self)

    def lines(self, reduction: bool = False) -> list[str]:
        """Which op feeds which node, one line per node: ``node 4 = sep_conv_3x3(in1) + skip_connect(in0)``."""

        def state(i: int) -> str:
            return f"in{i}" if i < 2 else f"node {i}"

        stride = ", stride 2" if reduction else ""
        out = []
        for k, node in enumerate(self.nodes):
            terms = [f"{e.op.value}({state(e.input)}{stride if e.input < 2 else ''})" for e in node]
            out.append(f"node {k + 2} = {' + '.join(terms)}")
        out.append(f"output = concat({', '.join(state(i) for i in self.concat)})")
        return out

    def __str__(self) -> str:
        return self.to_string()


class CellBlock(_Block):
    """A micro cell with its two inputs' preprocessing, as in the DARTS evaluation network.

    ``out`` is the node width C (the stage's ``channels``); the block's output has
    ``C * len(concat)`` channels. ``stride`` 1 runs the ``normal`` cell, stride 2 the ``reduce``
    cell (ops reading the cell's inputs get stride 2). The previous-previous output is reduced by
    a factorized reduction when it is twice the size of the previous one, else by ReLU-conv1x1-BN;
    the previous output always by ReLU-conv1x1-BN. After a plain (single-input) block both inputs
    are that block's output. ``drop_path`` drops every non-identity edge per sample in training,
    with the network's linear schedule (see :func:`drop_path_schedule`).
    """

    two_inputs: ClassVar[bool] = True

    kind: Literal[Kind.CELL] = Kind.CELL
    out: Width | None = None
    stride: Window = 1
    normal: Cell
    reduce: Cell | None = None
    drop_path: Probability = 0.0

    @model_validator(mode="after")
    def _rules(self) -> CellBlock:
        if self.out is not None and self.out % 2:
            raise ShapeRuleError("out", f"the node width must be even (factorized reduction halves it), got {self.out}")
        return self

    @property
    def cell(self) -> Cell:
        """The cell this block runs: ``reduce`` when strided, else ``normal``."""
        return self.reduce if self.stride == 2 and self.reduce is not None else self.normal

    def out_shape(self, shape: Shape) -> Shape:
        if self.stride not in (1, 2):
            raise ShapeRuleError("stride", f"a cell keeps its size or halves it (stride 1 or 2), got {self.stride}")
        if self.stride == 2:
            if self.reduce is None:
                raise ShapeRuleError("reduce", "a strided (reduction) cell needs a 'reduce' cell")
            if shape.h % 2 or shape.w % 2:
                raise ShapeRuleError("stride", f"a reduction cell needs an even input size, got {shape}")
        return Shape((self.out or 0) * len(self.cell.concat), shape.h // self.stride, shape.w // self.stride)


class FractalBlock(_Block):
    """A fractal block (Larsson et al. 2017): ``f_1 = conv``, ``f_{C+1} = join(f_C o f_C, conv)``.

    Every conv is ``kernel`` x ``kernel`` conv-BN-ReLU at ``out`` channels; the first conv of each
    of the ``columns`` columns takes ``stride``. Joins are element-wise means over all columns
    meeting there. In training, ``local_drop`` drops each join input with that probability
    (keeping at least one), and a ``global_drop`` fraction of minibatches keeps a single random
    column per block; in eval every path is used.
    """

    kind: Literal[Kind.FRACTAL] = Kind.FRACTAL
    out: Width | None = None
    stride: Window = 1
    columns: Annotated[int, Field(strict=True, gt=0, le=MAX_FRACTAL_COLUMNS)] = 3
    kernel: OddKernel = 3
    local_drop: Probability = 0.0
    global_drop: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    @property
    def depth(self) -> int:
        """Convolutions on the deepest path: ``2 ** (columns - 1)``."""
        return 2 ** (self.columns - 1)

    def out_shape(self, shape: Shape) -> Shape:
        return _window(shape, self.out or 0, self.kernel, self.stride, _same_padding(self.kernel))  # type: ignore[arg-type]


class AuxHead(_Frozen):
    """An auxiliary classifier on a stage's output (DARTS / NASNet CIFAR form).

    ReLU, ``pool`` x ``pool`` average pooling with stride ``pool_stride``, 1x1 conv to ``hidden``
    + BN + ReLU, a conv covering the pooled map to ``width`` + BN + ReLU, linear to the classes.
    Used in training only; excluded from params and MACs unless asked for.
    """

    pool: Window = 5
    pool_stride: Window = 3
    hidden: Width = 128
    width: Width = 768

    def pooled(self, shape: Shape) -> Shape:
        side = [_out_side(n, self.pool, self.pool_stride, 0) for n in (shape.h, shape.w)]
        out = Shape(shape.c, side[0], side[1])
        if out.h < 1 or out.w < 1:
            raise ShapeRuleError("aux.pool", f"the stage output {shape} is smaller than the {self.pool}x{self.pool} pool")
        return out


def cell_lines(net: Network) -> list[str]:
    """The distinct micro cells of ``net``: compact string, then which op feeds which node."""
    seen: list[Cell] = []
    lines: list[str] = []
    for _, block in net.blocks():
        if not isinstance(block, CellBlock):
            continue
        for role, cell in (("normal", block.normal), ("reduce", block.reduce)):
            if cell is None or cell in seen:
                continue
            seen.append(cell)
            lines.append(f"{role} cell: {cell.to_string()}")
            lines += [f"  {line}" for line in cell.lines(reduction=role == "reduce")]
    if lines:
        lines.insert(0, "cells (in0, in1: outputs of the block before the previous one and of the previous one)")
    return lines


def drop_path_schedule(rate: float, position: int, total: int) -> float:
    """Stochastic depth's linear rule (Huang et al. 2016): block ``position`` (1-based) of ``total``.

    A block's ``drop_path`` field is the rate reached at the network's last block; the block at
    position l of the L blocks of all stages (stem excluded) is dropped with ``rate * l / L``.
    The network builder applies it, so a repeated stage's rate rises with block index.
    """
    return rate * position / total


# ==== end of micro cells / fractal ===============================================================


Block = Annotated[
    ConvBlock
    | PoolBlock
    | MlpConvBlock
    | ResidualBlock
    | DenseBlock
    | TransitionBlock
    | SeparableBlock
    | FireBlock
    | MBConvBlock
    | InceptionBlock
    | InceptionResidualBlock
    | CellBlock
    | FractalBlock,
    Field(discriminator="kind"),
]
BLOCK_TYPES: dict[Kind, type[_Block]] = {
    Kind.CONV: ConvBlock,
    Kind.POOL: PoolBlock,
    Kind.MLPCONV: MlpConvBlock,
    Kind.RESIDUAL: ResidualBlock,
    Kind.DENSE: DenseBlock,
    Kind.TRANSITION: TransitionBlock,
    Kind.SEPARABLE: SeparableBlock,
    Kind.FIRE: FireBlock,
    Kind.MBCONV: MBConvBlock,
    Kind.INCEPTION: InceptionBlock,
    Kind.INCEPTION_RESIDUAL: InceptionResidualBlock,
    Kind.CELL: CellBlock,
    Kind.FRACTAL: FractalBlock,
}


class Input(_Frozen):
    """Input tensor and label space."""

    channels: Width = 3
    resolution: Annotated[int, Field(strict=True, gt=0, le=MAX_RESOLUTION)] = 32
    classes: Annotated[int, Field(strict=True, gt=0, le=MAX_CLASSES)] = 10

    @property
    def shape(self) -> Shape:
        return Shape(self.channels, self.resolution, self.resolution)


#: The deepest repeated stage accepted (ResNet-1202 has 200 blocks a stage; this bounds memory).
MAX_DEPTH = 10_000
#: The most blocks a whole network may have, stem and every stage together.
MAX_BLOCKS = 2 * MAX_DEPTH


class Stage(_Frozen):
    """``block`` repeated ``depth`` times at ``channels`` (first block strided), or ``blocks``.

    ``aux``: an auxiliary classifier reading this stage's output (training only).
    """

    block: Block | None = None
    depth: Annotated[int, Field(strict=True, gt=0, le=MAX_DEPTH)] | None = None
    channels: Width | None = None
    stride: Window = 1
    blocks: tuple[Block, ...] | None = None
    aux: AuxHead | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Stage:
        repeated = (self.block, self.depth, self.channels)
        if self.blocks is not None:
            if any(v is not None for v in repeated) or self.stride != 1:
                raise ValueError("give either 'blocks' or 'block' with 'depth', 'channels' and 'stride', not both")
            if not self.blocks:
                raise ValueError("'blocks' must not be empty")
            return self
        missing = [n for n, v in zip(("block", "depth", "channels"), repeated, strict=False) if v is None]
        if missing:
            raise ValueError(f"a repeated stage needs {', '.join(missing)} (or give an explicit 'blocks' list)")
        template = self.block
        if isinstance(template, PoolBlock):
            raise ShapeRuleError("block", "a pool block cannot be repeated as a stage template; use 'blocks'")
        if getattr(template, "out", None) is not None:
            raise ShapeRuleError(
                "block", f"'out' is set by the stage's channels; remove it from the template, got out={template.out}"
            )  # type: ignore[union-attr]
        if getattr(template, "stride", None) not in (None, 1):  # None: a block that derives its stride
            raise ShapeRuleError("block", "'stride' is set by the stage; remove it from the template")
        # Validate the template at the stage's width (e.g. groups must divide it).
        try:
            type(template).model_validate({**template.model_dump(), "out": self.channels})  # type: ignore[union-attr]
        except ValidationError as exc:
            path, msg = _problems(exc)[0]
            raise ShapeRuleError(f"block.{path}" if path else "block", msg) from None
        return self

    def expand(self) -> tuple[Any, ...]:
        """The concrete blocks of this stage, with ``out`` and ``stride`` filled in."""
        if self.blocks is not None:
            return self.blocks
        assert self.block is not None and self.depth is not None  # guaranteed by _one_form
        return tuple(
            self.block.model_copy(update={"out": self.channels, "stride": self.stride if i == 0 else 1})
            for i in range(self.depth)
        )


class Head(_Frozen):
    """Classifier head.

    ``norm``: BN + ``act`` before pooling (pre-activation networks). ``pool``: adaptive pooling
    to ``pool_size`` x ``pool_size`` (1 = global), or ``none`` to flatten the feature map as is.
    ``classifier: linear``: ``hidden`` fully connected layers with ``act`` and ``dropout``
    (AlexNet/VGG), then a linear layer to the classes; with no hidden layers, ``dropout`` sits in
    front of that linear layer (MobileNetV2). ``classifier: conv``: NiN's 1x1 conv to the classes
    with ``act``, before global pooling, with ``dropout`` in front of it (SqueezeNet).
    """

    norm: StrictBool = False
    pool: PoolOp = PoolOp.AVG
    pool_size: Window = 1
    classifier: Classifier = Classifier.LINEAR
    hidden: tuple[Width, ...] = ()
    dropout: Probability = 0.0
    act: Act = Act.RELU
    bias: StrictBool = True

    @model_validator(mode="after")
    def _rules(self) -> Head:
        if self.classifier == Classifier.CONV:
            if self.hidden:
                raise ShapeRuleError("hidden", f"a conv classifier takes no hidden layers, got {list(self.hidden)}")
            if self.pool == PoolOp.NONE or self.pool_size != 1:
                raise ShapeRuleError("pool", "a conv classifier needs global pooling (pool avg or max, pool_size 1)")
        return self

    def features(self, shape: Shape) -> int:
        """Width of the flattened features entering the (linear) classifier."""
        if self.pool == PoolOp.NONE:
            return shape.c * shape.h * shape.w
        return shape.c * self.pool_size * self.pool_size


class Network(_Frozen):
    """A whole network. See the module docstring for the conventions."""

    name: str = ""
    reference: str = ""
    input: Input = Input()
    stem: tuple[Block, ...] = ()
    stages: tuple[Stage, ...] = Field(min_length=1)
    head: Head = Head()

    @model_validator(mode="after")
    def _shapes_fit(self) -> Network:
        total = len(self.stem) + sum(len(s.blocks) if s.blocks is not None else s.depth or 0 for s in self.stages)
        if total > MAX_BLOCKS:  # checked before anything is expanded
            raise ValueError(f"stages: a network may have at most {MAX_BLOCKS} blocks (stem included), got {total}")
        self.shapes()  # raises with the block's path
        return self

    # ---- shapes ---------------------------------------------------------------------------

    def blocks(self) -> list[tuple[str, Any]]:
        """``(path, block)`` for every concrete block, stem first, stages expanded."""
        out: list[tuple[str, Any]] = [(f"stem[{i}]", b) for i, b in enumerate(self.stem)]
        for s, stage in enumerate(self.stages):
            out += [(_block_path(s, stage, i), b) for i, b in enumerate(stage.expand())]
        return out

    def shapes(self) -> list[tuple[str, Shape]]:
        """Output shape of every stem block and stage, in order; raises on a shape rule."""
        shape = self.input.shape
        if shape.c * shape.h * shape.w > MAX_FEATURE_ELEMENTS:
            raise ValueError(f"input: {shape} is too large (at most {MAX_FEATURE_ELEMENTS} elements)")
        result: list[tuple[str, Shape]] = []
        for i, b in enumerate(self.stem):
            shape = _apply(b, shape, f"stem[{i}]")
            result.append((f"stem[{i}]", shape))
        for s, stage in enumerate(self.stages):
            for i, b in enumerate(stage.expand()):
                shape = _apply(b, shape, _block_path(s, stage, i))
            if stage.aux is not None:
                _apply(stage.aux, shape, f"stages[{s}]", "pooled")
            result.append((f"stages[{s}]", shape))
        return result

    # ---- canonical forms ------------------------------------------------------------------

    def arch_dict(self) -> dict[str, Any]:
        """The canonical architecture: the non-default fields (see :func:`minimal_dict`), name and
        reference dropped. Defaults are left out so that a field added later with a default that
        keeps the old behaviour does not change any existing digest."""
        arch = minimal_dict(self)
        arch.pop("name", None)
        arch.pop("reference", None)
        return arch

    @property
    def digest(self) -> str:
        """sha256 over the canonical architecture (12 hex digits); spelling-independent."""
        blob = json.dumps(self.arch_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Network):
            return NotImplemented
        return self.arch_dict() == other.arch_dict()

    def __hash__(self) -> int:
        return hash(self.digest)

    def to_dict(self) -> dict[str, Any]:
        """Minimal plain dict (defaults left out, ``kind`` kept), the form written to YAML."""
        return minimal_dict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    def to_string(self) -> str:
        from nasx.space.compact import network_to_string

        return network_to_string(self)

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> Network:
        """Validate ``data``; raises :class:`GenotypeError` naming each offending field."""
        too_deep = nesting_problem(data)
        if too_deep is not None:
            raise GenotypeError([too_deep], source)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise GenotypeError(_problems(exc), source) from None

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> Network:
        """Parse and validate a genotype's YAML text (see :mod:`nasx.yamlfiles` for what is refused)."""
        try:
            data = parse_yaml(text)
        except YamlProblem as exc:
            raise GenotypeError([(exc.where, exc.message)], source) from None
        if not isinstance(data, dict):
            raise GenotypeError([("", f"a genotype must be a mapping, got {type(data).__name__}")], source)
        return cls.from_dict(data, source)

    @classmethod
    def from_string(cls, text: str) -> Network:
        from nasx.space.compact import network_from_string

        return network_from_string(text)

    def __str__(self) -> str:
        return self.to_string()


def minimal_dict(model: BaseModel) -> dict[str, Any]:
    """``model`` as a plain dict holding only non-default fields, plus every ``kind`` tag."""
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name != "kind" and not info.is_required() and value == info.get_default(call_default_factory=True):
            continue
        out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Cell):  # a micro cell is written in its one-line form
        return value.to_string()
    if isinstance(value, BaseModel):
        return minimal_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def _block_path(s: int, stage: Stage, i: int) -> str:
    """Path of the i-th concrete block of stage s; repeated blocks point at the template."""
    if stage.blocks is not None:
        return f"stages[{s}].blocks[{i}]"
    return f"stages[{s}].block"


def _apply(block: Any, shape: Shape, where: str, method: str = "out_shape") -> Shape:
    if "out" in type(block).model_fields and not block.derived_out and block.out is None:
        raise ValueError(f"{where}.out: required outside a repeated stage (there the stage's channels set it)")
    try:
        out = getattr(block, method)(shape)
    except ShapeRuleError as exc:
        raise ValueError(f"{where}.{exc.field}: {exc} (input {shape})") from None
    if out.c > MAX_FEATURE_CHANNELS or out.c * out.h * out.w > MAX_FEATURE_ELEMENTS:
        raise ValueError(
            f"{where}: its output {out} is too large (at most {MAX_FEATURE_CHANNELS} channels and "
            f"{MAX_FEATURE_ELEMENTS} elements a feature map, input {shape})"
        )
    return out


def _loc(loc: tuple[Any, ...]) -> str:
    """pydantic location -> ``stages[2].blocks[0].kernel`` (dropping union tags)."""
    parts: list[str] = []
    prev: Any = None
    kinds = {k.value for k in Kind} | _STEP_TAGS
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str) and item in kinds and (isinstance(prev, int) or prev == "block"):
            pass  # the discriminated-union tag pydantic inserts
        elif isinstance(item, str) and ("[" in item or "-" in item or item in _UNION_MEMBERS):
            pass  # a union member's or validator's name
        else:
            parts.append(("." if parts else "") + str(item))
        prev = item
    return "".join(parts)


_ENUM_REPR = re.compile(r"<\w+\.\w+: ('[^']*')>")
_UNION_MEMBERS = {"int", "float", "bool", "str", "tuple", "list", "none", "dict"}
_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "union_tag_invalid": "unknown block kind {tag!r}; expected one of " + ", ".join(k.value for k in Kind),
    "union_tag_not_found": "a block needs a 'kind' (one of " + ", ".join(k.value for k in Kind) + ")",
}


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        path = _loc(tuple(err["loc"]))
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ShapeRuleError):
            path = f"{path}.{ctx_error.field}" if path else ctx_error.field
            problems.append((path, str(ctx_error)))
            continue
        template = _MESSAGES.get(err["type"])
        msg = template.format(**(err.get("ctx") or {})) if template else err["msg"].removeprefix("Value error, ")
        msg = _ENUM_REPR.sub(r"\1", msg)  # pydantic quotes a Literal of enum members as <PoolOp.MAX: 'max'>
        if err["type"] == "value_error" and (":" in msg.split(" ")[0] if msg else False) and not path:
            path, _, msg = msg.partition(": ")
        elif err["type"] == "value_error" and ": " in msg and msg.split(": ")[0].startswith(("stem[", "stages[")):
            sub, _, msg = msg.partition(": ")
            path = f"{path}.{sub}" if path else sub
        own_rule = err["type"] in ("missing", "value_error", "assertion_error")  # our rules state their values
        if not own_rule and "got" not in msg and not isinstance(err.get("input"), BaseModel):
            shown = repr(err.get("input"))
            msg = f"{msg}, got {shown if len(shown) <= 80 else shown[:77] + '...'}"
        if any(p == path for p, _ in problems):
            continue  # a union reports once per member; the first message says enough
        problems.append((path, msg))
    # A list that failed item validation also reports "too short": keep only the item errors.
    return [
        (p, m)
        for p, m in problems
        if not (
            m.startswith(("Tuple should have at least", "List should have at least"))
            and any(q != p and q.startswith(p) for q, _ in problems)
        )
    ]


def load_network(path: str) -> Network:
    """Read a genotype YAML file."""
    from pathlib import Path

    p = Path(path)
    try:
        text = read_text(p, "genotype file")
    except YamlProblem as exc:
        raise GenotypeError([(exc.where, exc.message)], str(p)) from None
    return Network.from_yaml(text, source=str(p))


__all__ = [
    "BLOCK_TYPES",
    "AuxHead",
    "Block",
    "Cell",
    "CellBlock",
    "CellEdge",
    "ConvBlock",
    "DenseBlock",
    "FireBlock",
    "FractalBlock",
    "ConvStep",
    "ForkStep",
    "Head",
    "InceptionBlock",
    "InceptionResidualBlock",
    "Input",
    "MBConvBlock",
    "MlpConvBlock",
    "Network",
    "PoolBlock",
    "PoolStep",
    "ResidualBlock",
    "SeparableBlock",
    "Shape",
    "Stage",
    "TransitionBlock",
    "cell_lines",
    "drop_path_schedule",
    "load_network",
    "se_hidden",
]
