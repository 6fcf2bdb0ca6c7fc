"""The whole network: the :data:`Block` union of every kind, input, stages, head, and :class:`Network`.

Also the canonical plain dict (:func:`minimal_dict`), how the genotype words pydantic's errors
(:data:`WORDING`), the hook through which :mod:`nasx.space.compact` gives ``Network`` its string
form, and :func:`load_network`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, get_args

import yaml
from pydantic import BaseModel, Field, StrictBool, ValidationError, model_validator

from nasx.errors import GenotypeError, Wording, field_problems
from nasx.space.genotype import cell, dense, inception, plain
from nasx.space.genotype.base import (
    MAX_CLASSES,
    MAX_FEATURE_CHANNELS,
    MAX_FEATURE_ELEMENTS,
    MAX_RESOLUTION,
    Shape,
    ShapeRuleError,
    Width,
    Window,
    _Block,
    _Frozen,
)
from nasx.space.genotype.cell import AuxHead, Cell
from nasx.space.genotype.inception import _STEP_TAGS
from nasx.space.genotype.plain import PoolBlock
from nasx.space.ops import Act, Classifier, Kind, PoolOp
from nasx.types import Probability
from nasx.yamlfiles import YamlProblem, nesting_problem, parse_mapping, read_mapping

#: Every block kind, told apart by its ``kind`` tag. A new kind is its :class:`~nasx.space.ops.Kind` value,
#: its class here and its builder in :mod:`nasx.models.blocks`.
Block = Annotated[
    plain.ConvBlock
    | plain.PoolBlock
    | plain.MlpConvBlock
    | plain.ResidualBlock
    | dense.DenseBlock
    | dense.TransitionBlock
    | dense.SeparableBlock
    | dense.FireBlock
    | dense.MBConvBlock
    | inception.InceptionBlock
    | inception.InceptionResidualBlock
    | cell.CellBlock
    | cell.FractalBlock,
    Field(discriminator="kind"),
]
#: The class of each block kind, read from the union (a new kind is its class in the union above).
BLOCK_TYPES: dict[Kind, type[_Block]] = {cls.model_fields["kind"].default: cls for cls in get_args(get_args(Block)[0])}


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
        """The one-line string form (:mod:`nasx.space.compact`)."""
        return _STRING_FORM["write"](self)

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
        return cls.from_dict(parse_mapping(text, _yaml_error(source), GENOTYPE_MAPPING), source)

    @classmethod
    def from_string(cls, text: str) -> Network:
        """Parse the one-line string form (:mod:`nasx.space.compact`); raises :class:`GenotypeError`."""
        return _STRING_FORM["read"](text)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self.to_string()


#: The one-line string form's writer and reader, installed by :mod:`nasx.space.compact` (which
#: imports this module, never the reverse) when it is imported; :mod:`nasx.space` imports it.
_STRING_FORM: dict[str, Callable[..., Any]] = {}


def install_string_form(write: Callable[[Network], str], read: Callable[[str], Network]) -> None:
    """Install what ``Network.to_string`` and ``Network.from_string`` call (done by :mod:`nasx.space.compact`)."""
    _STRING_FORM.update(write=write, read=read)


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


#: How the genotype words pydantic's errors (see :func:`nasx.errors.field_problems`).
WORDING = Wording(
    messages={
        "extra_forbidden": "unknown field",
        "missing": "required field is missing",
        "union_tag_invalid": "unknown block kind {tag!r}; expected one of " + ", ".join(k.value for k in Kind),
        "union_tag_not_found": "a block needs a 'kind' (one of " + ", ".join(k.value for k in Kind) + ")",
    },
    tags=frozenset({k.value for k in Kind} | _STEP_TAGS),
    tagged=frozenset({"block"}),
    nested=("stem[", "stages["),
)


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return field_problems(exc, WORDING)


def load_network(path: str) -> Network:
    """Read a genotype YAML file."""
    from pathlib import Path

    p = Path(path)
    return Network.from_dict(read_mapping(p, "genotype file", _yaml_error(str(p)), GENOTYPE_MAPPING), source=str(p))


GENOTYPE_MAPPING = "a genotype must be a mapping"


def _yaml_error(source: str | None) -> Callable[[YamlProblem], GenotypeError]:
    """How a genotype reader reports a YAML problem: one located problem of the file ``source``."""
    return lambda exc: GenotypeError([(exc.where, exc.message)], source)
