"""The operation vocabulary: the only place where op, activation and block-kind names live.

Every name that can appear in a genotype file is a member of one of these enums, so a typo
in YAML is rejected with the list of valid names and code never compares raw strings.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """Block kinds; each has exactly one genotype class and one builder."""

    CONV = "conv"
    POOL = "pool"
    MLPCONV = "mlpconv"
    RESIDUAL = "residual"
    # dense family: DenseNet, Xception, SqueezeNet, MobileNetV2
    DENSE = "dense"
    TRANSITION = "transition"
    SEPARABLE = "separable"
    FIRE = "fire"
    MBCONV = "mbconv"
    INCEPTION = "inception"
    INCEPTION_RESIDUAL = "inception_residual"
    # NAS cells and FractalNet
    CELL = "cell"
    FRACTAL = "fractal"


class Act(StrEnum):
    """Activation functions."""

    RELU = "relu"
    RELU6 = "relu6"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    SILU = "silu"
    GELU = "gelu"
    HARDSWISH = "hardswish"
    NONE = "none"


class Norm(StrEnum):
    """Normalisation after a convolution."""

    BN = "bn"
    NONE = "none"


class PoolOp(StrEnum):
    """Pooling operations (spatial pooling blocks and the head's global pool)."""

    MAX = "max"
    AVG = "avg"
    NONE = "none"


class Variant(StrEnum):
    """Residual block variants."""

    BASIC = "basic"
    BOTTLENECK = "bottleneck"


class Shortcut(StrEnum):
    """How a residual block's shortcut changes shape when the block does.

    `pad`: option A of He et al. 2016, stride by subsampling and zero-padded channels (no
    parameters). `project`: a strided 1x1 convolution (followed by BN unless pre-activation).
    When the block keeps its shape the shortcut is always the identity.
    """

    PAD = "pad"
    PROJECT = "project"


class SeRule(StrEnum):
    """How squeeze-and-excitation's hidden width follows from the gated width C and the ratio ``se``.

    `round8`: ``C * se`` rounded to the nearest multiple of 8, at least 8 (timm's and TF's
    make_divisible). `floor`: ``floor(C * se)``, at least 1 (the SE paper's C/r, as
    kuangliu/pytorch-cifar's ``planes // 16``). Only meaningful when ``se`` > 0.
    """

    ROUND8 = "round8"
    FLOOR = "floor"


class Classifier(StrEnum):
    """The head's classifier: a (stack of) linear layers, or NiN's 1x1 conv before pooling."""

    LINEAR = "linear"
    CONV = "conv"


class StepOp(StrEnum):
    """The ops of one step of an inception branch (a fork step is spelled ``{fork: [...]}``)."""

    CONV = "conv"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"


# ---- micro-cell operations (NASNet / DARTS) -------------------------------------------------


class CellOp(StrEnum):
    """Operations on a micro cell's edges, named as in the DARTS code (quark0/darts, operations.py).

    Every op keeps the node width C. On an edge reading one of the cell's two inputs in a
    reduction cell the op has stride 2; ``skip_connect`` then becomes a factorized reduction.
    """

    NONE = "none"
    SKIP = "skip_connect"
    AVG_POOL_3X3 = "avg_pool_3x3"
    MAX_POOL_3X3 = "max_pool_3x3"
    SEP_CONV_3X3 = "sep_conv_3x3"
    SEP_CONV_5X5 = "sep_conv_5x5"
    SEP_CONV_7X7 = "sep_conv_7x7"
    DIL_CONV_3X3 = "dil_conv_3x3"
    DIL_CONV_5X5 = "dil_conv_5x5"
    CONV_7X1_1X7 = "conv_7x1_1x7"


#: The short names of the compact cell string (``sep3@0+skip@1 | ...``); the one alias table.
CELL_OP_ALIASES: dict[str, CellOp] = {
    "none": CellOp.NONE,
    "skip": CellOp.SKIP,
    "avg3": CellOp.AVG_POOL_3X3,
    "max3": CellOp.MAX_POOL_3X3,
    "sep3": CellOp.SEP_CONV_3X3,
    "sep5": CellOp.SEP_CONV_5X5,
    "sep7": CellOp.SEP_CONV_7X7,
    "dil3": CellOp.DIL_CONV_3X3,
    "dil5": CellOp.DIL_CONV_5X5,
    "conv7x1": CellOp.CONV_7X1_1X7,
}
CELL_OP_ALIAS: dict[CellOp, str] = {op: alias for alias, op in CELL_OP_ALIASES.items()}


def parse_cell_op(name: str) -> CellOp:
    """A cell op from its DARTS name or its short alias; ValueError listing both otherwise."""
    if name in CELL_OP_ALIASES:
        return CELL_OP_ALIASES[name]
    try:
        return CellOp(name)
    except ValueError:
        known = ", ".join(f"{a} ({op.value})" if a != op.value else a for a, op in CELL_OP_ALIASES.items())
        raise ValueError(f"unknown cell op {name!r}; expected one of {known}") from None
