"""The inception family: parallel branches of op steps (GoogLeNet, Inception-v3/v4, Inception-ResNet).

A *branch* is a list of steps; a step is a conv ``{op: conv, out: 64, kernel: [1, 7]}``, a
pool ``{op: max_pool, kernel: 3, stride: 2, padding: 0}`` (steps default to stride 1 and
'same' padding) or a fork ``{fork: [[...], [...]]}`` whose sub-branches are concatenated.
``inception`` concatenates its branches; ``inception_residual`` projects the concatenation
back to the input width and adds it to the input. Width and stride are derived from the
branches, so a block's ``out`` and ``stride`` are only checks (stored as None when they agree).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, StrictBool, Tag, ValidationError, model_validator

from nasx.space.genotype.base import (
    MAX_FEATURE_CHANNELS,
    Kernel,
    Pad,
    Shape,
    ShapeRuleError,
    Width,
    Window,
    _Block,
    _Frozen,
    _pair,
    _SqueezeExcite,
    _window,
    _Windowed,
)
from nasx.space.ops import Act, Kind, Norm, SeRule, StepOp
from nasx.types import Probability

_StrictBool = StrictBool
_Padding = Pad | tuple[Pad, Pad] | None
_STEP_TAGS = {"conv", "pool", "fork"}  # tags of the step union, dropped from error paths


def _kernel_label(kernel: Kernel) -> str:
    kh, kw = _pair(kernel)
    return f"{kh}x{kw}"


class _Step(_Windowed):
    """What conv and pool steps share: a window with ``stride`` 1 and 'same' padding unless given.

    The fields (``kernel``, ``stride``, ``padding``) are declared by each subclass, so that
    ``op`` comes first in written forms.
    """

    same_padding_field: ClassVar[str] = "kernel"

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


#: One step of an inception branch: a conv, a pool, or a fork of sub-branches.
BranchStep = Annotated[
    Annotated[ConvStep, Tag("conv")] | Annotated[PoolStep, Tag("pool")] | Annotated[ForkStep, Tag("fork")],
    Discriminator(
        _step_tag,
        custom_error_type="invalid_step",
        custom_error_message="a step needs 'op' (one of " + ", ".join(o.value for o in StepOp) + ") or 'fork' (its sub-branches)",
    ),
]
#: The steps of one branch, applied in order.
Branch = Annotated[tuple[BranchStep, ...], Field(min_length=1)]
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


class InceptionBlock(_Block, _SqueezeExcite):
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
