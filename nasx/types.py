"""Shared pydantic primitives: the frozen base model and the constrained field types.

One definition each, used by the genotype, the design-space file, the training recipe and the
study config. Imports only pydantic, so every layer may use it (:mod:`nasx.errors`, which every
layer raises, imports nothing at all; this is its pydantic-side sibling).

Ints are strict: YAML gives real ones, and ``epochs: 2.5`` or ``kernel: true`` is a mistake.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    """Base of nasx's config models: immutable, unknown keys rejected, no inf/nan."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


#: An int >= 1.
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
#: An int >= 0.
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
#: A probability that leaves something: in [0, 1) (a dropout rate, label smoothing, squeeze-excite's ratio).
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
#: A part of a whole: in (0, 1].
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]

__all__ = ["Fraction", "Frozen", "NonNegativeInt", "PositiveInt", "Probability"]
