"""Micro cells (NASNet / DARTS), fractal blocks, auxiliary heads and stochastic depth's schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from nasx.space.genotype.base import (
    MAX_CELL_NODES,
    MAX_FRACTAL_COLUMNS,
    OddKernel,
    Shape,
    ShapeRuleError,
    Width,
    Window,
    _Block,
    _Frozen,
    _out_side,
    _same_padding,
    _window,
)
from nasx.space.ops import CELL_OP_ALIAS, CellOp, Kind, parse_cell_op
from nasx.types import NonNegativeInt, Probability

if TYPE_CHECKING:
    from nasx.space.genotype.network import Network


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
        return parse_cell_op(v) if isinstance(v, str) else v


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


# ---- the one-line form of a cell ------------------------------------------------------------
#
#   sep3@0+sep3@1 | sep3@0+sep3@1 | sep3@1+skip@0 | skip@0+dil3@2 ; concat 2,3,4,5
#
# One ``OP@INPUT+OP@INPUT`` per node, nodes separated by ``|``, then ``; concat`` and the states
# whose outputs are concatenated. Ops are written by their short alias (ops.CELL_OP_ALIASES).


def cell_to_string(cell: Cell) -> str:
    nodes = " | ".join("+".join(f"{CELL_OP_ALIAS[e.op]}@{e.input}" for e in node) for node in cell.nodes)
    return f"{nodes} ; concat {','.join(map(str, cell.concat))}"


def cell_from_string(text: str) -> dict[str, Any]:
    """The fields of a :class:`Cell` from its one-line form; edges are checked by the model."""
    body, sep, tail = text.partition(";")
    word, _, numbers = tail.strip().partition(" ")
    if not sep or word != "concat":
        raise ValueError(f"a cell string ends with '; concat I,J,...', got {text!r}")
    concat = [n.strip() for n in numbers.split(",") if n.strip()]
    if not all(n.isdigit() for n in concat):
        raise ValueError(f"concat lists state numbers separated by commas, got {numbers.strip()!r}")
    nodes = []
    for part in body.split("|"):
        edges = [e.strip() for e in part.split("+")]
        if len(edges) != 2 or not all(edges):
            raise ValueError(f"a node is two edges OP@INPUT joined by '+', got {part.strip()!r}")
        nodes.append(edges)
    return {"nodes": nodes, "concat": [int(n) for n in concat]}


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
