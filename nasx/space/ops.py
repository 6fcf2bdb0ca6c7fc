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


class Classifier(StrEnum):
    """The head's classifier: a (stack of) linear layers, or NiN's 1x1 conv before pooling."""

    LINEAR = "linear"
    CONV = "conv"


class StepOp(StrEnum):
    """The ops of one step of an inception branch (a fork step is spelled ``{fork: [...]}``)."""

    CONV = "conv"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"
