"""The genotype's base: limits, constrained field types, :class:`Shape` and window arithmetic, the block interface.

Also what several kinds share: a kxk window with its padding (:class:`_Windowed`), and
squeeze-and-excitation (:class:`_SqueezeExcite`, :func:`se_hidden`). Every other module of the
package builds on this one; it knows no block kind.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, NamedTuple

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from nasx.errors import FieldError
from nasx.space.ops import SeRule
from nasx.types import Frozen

# Upper bounds. Far above every published network, they keep every size torch computes (feature
# maps, weights: at most about 2**60 elements) inside int64, and every build finite: without them a
# ten-line file could ask for a 2**40-pixel input or a fractal block of 2**39 convolutions, which
# torch reports as an overflow deep inside a trace, or never finishes building.
#: Channels (and channel counts) a genotype states: ``out``, ``channels``, hidden layers, ``growth``, ``groups``,
#: input channels.
MAX_CHANNELS = 2**16
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
Width = Annotated[int, Field(strict=True, gt=0, le=MAX_CHANNELS)]
Window = Annotated[int, Field(strict=True, gt=0, le=MAX_WINDOW)]
Pad = Annotated[int, Field(strict=True, ge=0, le=MAX_WINDOW)]
Kernel = Window | tuple[Window, Window]


class Shape(NamedTuple):
    """Channels, height, width of a feature map (batch excluded)."""

    c: int
    h: int
    w: int

    def __str__(self) -> str:
        return f"{self.c}x{self.h}x{self.w}"


class ShapeRuleError(FieldError):
    """A genotype rule broken at one field (many depend on the incoming shape); carries the field's name."""


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


class _Frozen(Frozen):
    """Base of the genotype's models: :class:`nasx.types.Frozen`, and defaults validated too."""

    model_config = ConfigDict(validate_default=True)


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


class _Windowed(_Frozen):
    """What every kxk window with an optional padding shares: conv and mlpconv blocks, conv and pool steps.

    Square kernels and paddings are stored as one int and 'same' padding as None (canonical forms),
    'same' padding must exist when no padding is given (an odd kernel), and :attr:`pad` is the
    padding in use. The fields (``kernel``, ``padding``, and ``dilation`` where there is one) are
    declared by each class, so that its own fields come first in written forms.
    """

    #: The field an even kernel without padding is reported on.
    same_padding_field: ClassVar[str] = "padding"

    @model_validator(mode="before")
    @classmethod
    def _canonical_window(cls, values: Any) -> Any:
        return _canonical_padding(dict(values)) if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _same_padding_exists(self) -> _Windowed:
        if self.padding is None and _same_padding(self.kernel) is None:  # type: ignore[attr-defined]
            where = self.same_padding_field
            kernel = f"{'' if where == 'kernel' else 'kernel '}{self.kernel}"  # type: ignore[attr-defined]
            raise ShapeRuleError(where, f"{kernel} is even, so 'same' padding does not exist: give padding explicitly")
        return self

    @property
    def pad(self) -> tuple[int, int]:
        """The padding in use, (h, w)."""
        if self.padding is None:  # type: ignore[attr-defined]
            return _same_padding(self.kernel, getattr(self, "dilation", 1))  # type: ignore[attr-defined, return-value]
        return _pair(self.padding)  # type: ignore[attr-defined]


def se_hidden(channels: int, se: float, rule: SeRule) -> int:
    """Hidden width of the squeeze-excite on ``channels`` channels at ratio ``se`` (see :class:`SeRule`)."""
    if rule == SeRule.FLOOR:
        return max(1, int(channels * se))
    return max(8, int(channels * se + 4) // 8 * 8)


class _SqueezeExcite(_Frozen):
    """What the kinds that take squeeze-and-excitation share (conv, residual, separable, mbconv, inception).

    ``se`` > 0 gates the block's features with ``se_hidden(width, se, se_rule)`` hidden channels;
    without it (``se`` 0) the hidden-width rule means nothing, so its default is stored (canonical
    form). The fields are declared by each kind, so that its own fields come first in written forms.
    """

    @model_validator(mode="before")
    @classmethod
    def _canonical_se(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("se") and "se_rule" in values:
            values = {k: v for k, v in values.items() if k != "se_rule"}
        return values


def _odd(v: int) -> int:
    """A kernel side must be odd, so that 'same' padding exists."""
    if v % 2 == 0:
        raise ValueError(f"must be odd, got {v}")
    return v


OddKernel = Annotated[Window, AfterValidator(_odd)]
