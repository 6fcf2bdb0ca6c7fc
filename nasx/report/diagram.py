"""Network genotypes as inline SVG for the HTML report: standard library only, no ids, no scripts.

:func:`network_svg` draws a network as a left-to-right strip that wraps into rows: the input,
the stem blocks, one group box per stage holding its blocks (a repeated stage is one box marked
``×depth``) and the head. :func:`cell_svg` draws a NASNet/DARTS micro cell as a DAG and
:func:`diagrams` gives both for a network. Every string taken from the genotype is escaped, and
sizes come from a fixed estimate of the text width, so the output is a pure function of its input.
A block kind is drawn without an entry of its own here: a kind beyond the palette is grey, and a
kind without label details shows its width.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise
from statistics import fmean
from typing import Any, NamedTuple

from nasx.space.genotype import Cell, CellBlock, Network, Shape, Stage
from nasx.space.ops import CELL_OP_ALIAS, CellOp, Classifier, Kind, PoolOp

FONT = "system-ui, sans-serif"
CHAR_W = 7.0  # estimated width of a character at the 12 px font
SMALL_W = 6.5  # ... and at the 11 px font of shapes and edge labels
MAX_WIDTH = 960
MARGIN = 6
GAP = 22  # between the items of a row: room for an arrow
ROW_GAP = 24
WRAP = 10  # side room of a wrapped flow for the connector between rows
PAD = 8
LINE = 15
INK, MUTED, NEUTRAL = "#1f2328", "#57606a", "#7f8c9a"
_KIND_PALETTE = "#4e79a7 #9c755f #76b7b2 #f28e2b #59a14f #8f9f3f #b07aa1 #e15759 #d37295 #c9a227 #a36a2c #499894 #6b5fb5"
_OP_PALETTE = "#9a9a9a #555555 #17a2b8 #1f77b4 #d62728 #e377c2 #ff7f0e #2ca02c #9467bd #8c564b"


def _colours(members: Any, palette: str) -> dict[Any, str]:
    """The palette's colours in the enum's order; a member beyond the palette is drawn in the generic grey."""
    colours = palette.split()
    return {m: colours[i] if i < len(colours) else NEUTRAL for i, m in enumerate(members)}


#: Colour of each block kind (box outline and a light fill) and of each micro-cell op (edge and label).
KIND_COLOURS: dict[Kind, str] = _colours(Kind, _KIND_PALETTE)
OP_COLOURS: dict[CellOp, str] = _colours(CellOp, _OP_PALETTE)

Point = tuple[float, float]


class _Item(NamedTuple):
    """A drawn piece at its own origin: width, height and SVG markup."""

    w: float
    h: float
    body: str


# ---- SVG primitives ------------------------------------------------------------------------


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(v: float) -> str:
    return str(round(v, 1)).removesuffix(".0")


def _pt(p: Point) -> str:
    return f"{_num(p[0])},{_num(p[1])}"


def _tag(name: str, content: str = "", **attrs: object) -> str:
    """An element; attribute names ``font_size`` -> ``font-size``, ``class_`` -> ``class``."""
    text = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{_num(v) if isinstance(v, float) else _esc(v)}"' for k, v in attrs.items()
    )
    return f"<{name}{text}>{content}</{name}>" if content else f"<{name}{text}/>"


def _text(x: float, y: float, text: str, **attrs: object) -> str:
    return _tag("text", _esc(text), **{"x": x, "y": y, "text_anchor": "middle", **attrs})


def _at(x: float, y: float, body: str) -> str:
    return _tag("g", body, transform=f"translate({_num(x)} {_num(y)})")


def _arrow(points: Sequence[Point]) -> str:
    """A polyline ending in a right-pointing arrowhead at its last point."""
    (x, y), line = points[-1], [*points[:-1], (points[-1][0] - 5, points[-1][1])]
    path = " ".join(map(_pt, line))
    head = " ".join(map(_pt, ((x - 6, y - 3.5), (x, y), (x - 6, y + 3.5))))
    line_svg = _tag("polyline", points=path, fill="none", stroke=NEUTRAL, stroke_width=1.2)
    return line_svg + _tag("polygon", points=head, fill=NEUTRAL)


def _svg(title: str, item: _Item) -> str:
    w, h = item.w + 2 * MARGIN, item.h + 2 * MARGIN
    body = _tag("title", _esc(title)) + _at(MARGIN, MARGIN, item.body)
    attrs = {"xmlns": "http://www.w3.org/2000/svg", "width": w, "height": h, "viewBox": f"0 0 {_num(w)} {_num(h)}"}
    return _tag("svg", body, **attrs, role="img", aria_label=title, font_family=FONT, font_size=12)


# ---- layout --------------------------------------------------------------------------------


def _box(lines: Sequence[str], colour: str, cls: str, tip: str = "") -> _Item:
    """A rounded box sized to its lines: the first in the 12 px font, the rest smaller and muted."""
    w = max(len(lines[0]) * CHAR_W, *(len(s) * SMALL_W for s in lines[1:])) + 2 * PAD
    h = len(lines) * LINE + 2 * PAD - 3
    texts = "".join(
        _text(w / 2, PAD + 11 + i * LINE, s, fill=INK if i == 0 else MUTED, font_size=12 if i == 0 else 11)
        for i, s in enumerate(lines)
    )
    rect = _tag("rect", width=w, height=h, rx=5, fill=colour, fill_opacity=0.15, stroke=colour)
    return _Item(w, h, _tag("g", (_tag("title", _esc(tip)) if tip else "") + rect + texts, class_=cls))


def _flow(items: Sequence[_Item], max_w: float) -> _Item:
    """``items`` left to right with arrows between them, wrapping into rows no wider than ``max_w``."""
    rows: list[list[_Item]] = [[]]
    for item in items:
        if rows[-1] and sum(i.w + GAP for i in rows[-1]) + item.w > max_w - 2 * WRAP:
            rows.append([])
        rows[-1].append(item)
    side = WRAP if len(rows) > 1 else 0
    parts: list[str] = []
    ends: list[tuple[float, float]] = []  # right end of each row's last item, at the row's middle
    y = 0.0
    for row in rows:
        height = max(i.h for i in row)
        x, mid = float(side), y + height / 2
        if ends:  # connector from the end of the previous row, through the gap, to this row's start
            (px, py), between = ends[-1], y - ROW_GAP / 2
            parts.append(_arrow([(px, py), (px + 6, py), (px + 6, between), (side / 2, between), (side / 2, mid), (x, mid)]))
        for k, item in enumerate(row):
            if k:
                parts.append(_arrow([(x - GAP, mid), (x, mid)]))
            parts.append(_at(x, mid - item.h / 2, item.body))
            x += item.w + GAP
        ends.append((x - GAP, mid))
        y += height + ROW_GAP
    return _Item(max(e[0] for e in ends) + side, y - ROW_GAP, "".join(parts))


def _group(title: str, inner: _Item) -> _Item:
    """A labelled frame around ``inner``."""
    w, h = max(inner.w, len(title) * CHAR_W) + 2 * PAD, inner.h + LINE + 3 * PAD
    frame = _tag("rect", width=w, height=h, rx=7, fill="#f6f8fa", stroke="#8c959f", stroke_dasharray="4 3")
    label = _text(PAD, PAD + 10, title, text_anchor="start", fill=MUTED)
    return _Item(w, h, _tag("g", frame + label + _at(PAD, LINE + 2 * PAD, inner.body), class_="stage"))


# ---- networks ------------------------------------------------------------------------------


def _kernel(k: int | tuple[int, int]) -> str:
    kh, kw = (k, k) if isinstance(k, int) else k
    return f"{kh}x{kw}"


def _flags(*pairs: tuple[bool, str]) -> str:
    return "".join(f" {text}" for on, text in pairs if on)


#: What follows the kind in a block's label: its key fields (a kind without an entry shows its width).
_DETAILS: dict[Kind, Callable[[Any], str]] = {
    Kind.CONV: lambda b: f"{_kernel(b.kernel)} ·{b.out}" + _flags((b.groups > 1, f"g{b.groups}")),
    Kind.POOL: lambda b: f"{b.op.value} {_kernel(b.kernel)}",
    Kind.MLPCONV: lambda b: f"{_kernel(b.kernel)} ·{b.out}",
    Kind.RESIDUAL: lambda b: (
        f"{b.variant.value} {_kernel(b.kernel)} ·{b.out}"
        + _flags((b.groups > 1, f"g{b.groups}"), (b.width != 1, f"w{b.width:g}"), (b.preact, "preact"), (b.se > 0, f"se{b.se:g}"))
    ),
    Kind.DENSE: lambda b: f"{b.layers}×{b.growth}",
    Kind.TRANSITION: lambda b: f"c{b.compression:g}",
    Kind.SEPARABLE: lambda b: f"{b.convs}x {_kernel(b.kernel)} ·{b.out}",
    Kind.FIRE: lambda b: "{}→{}+{}".format(*b.widths),
    Kind.MBCONV: lambda b: f"e{b.expand:g} k{b.kernel} ·{b.out}" + _flags((b.se > 0, f"se{b.se:g}")),
    Kind.INCEPTION: lambda b: f"{len(b.branches)} branches",
    Kind.INCEPTION_RESIDUAL: lambda b: f"{len(b.branches)} branches ×{b.scale:g}",
    Kind.CELL: lambda b: f"{'reduce' if b.stride == 2 else 'normal'} ·{b.out}",
    Kind.FRACTAL: lambda b: f"{b.columns} columns ·{b.out}",
}


def _stride(block: Any) -> int:
    """The block's spatial stride (a pool's step, an inception's reduction)."""
    return next((v for v in (getattr(block, a, None) for a in ("step", "reduction", "stride")) if v), 1)


def _generic_details(block: Any) -> str:
    """A kind without its own entry in :data:`_DETAILS`: its width, when it states one."""
    out = getattr(block, "out", None)
    return f"·{out}" if out else ""


def _label(block: Any) -> str:
    """A short label of a block's kind and key fields, e.g. ``residual basic 3x3 ·64 /2``."""
    stride = _stride(block)
    details = _DETAILS.get(block.kind, _generic_details)(block)
    return " ".join(filter(None, (block.kind.value, details))) + (f" /{stride}" if stride > 1 else "")


def _block_box(block: Any, shape: Shape, repeat: int = 1, note: str = "") -> _Item:
    label = _label(block) + (f"  ×{repeat}" if repeat > 1 else "")
    tip = block.summary() if hasattr(block, "summary") else ""
    return _box([label, f"{shape}{note}"], KIND_COLOURS[block.kind], "block", tip)


def _stage_group(index: int, stage: Stage, shape: Shape) -> tuple[_Item, Shape]:
    """A stage's group box and output shape: each explicit block, or one box for a repeated block."""
    blocks, boxes = stage.expand(), []
    for block in blocks:
        shape = block.out_shape(shape)
        if stage.blocks is not None:
            boxes.append(_block_box(block, shape))
    if stage.blocks is None:
        depth = len(blocks)
        note = f" · first /{stage.stride}" if depth > 1 and stage.stride > 1 else ""
        boxes.append(_block_box(blocks[-1], shape, depth, note))
    title = f"stage {index + 1} · {shape}" + (" · aux head" if stage.aux is not None else "")
    inner = _flow(boxes, MAX_WIDTH - 2 * (MARGIN + WRAP + PAD))
    return _group(title, inner), shape


def _head_box(net: Network) -> _Item:
    head, classes = net.head, net.input.classes
    pool = "flatten" if head.pool == PoolOp.NONE else f"{head.pool.value} pool"
    pool += f" {head.pool_size}x{head.pool_size}" if head.pool_size > 1 else ""
    steps = [f"bn-{head.act.value}"] if head.norm else []
    if head.classifier == Classifier.CONV:
        steps += [f"{head.classifier.value} 1x1 ·{classes}", pool]
    else:
        steps += [pool, *(f"fc {n}" for n in (*head.hidden, classes))]
    return _box([" → ".join(steps), f"{classes} classes"], NEUTRAL, "head")


def network_svg(net: Network) -> str:
    """The network as an ``<svg>`` strip: input, stem blocks, stage groups and head, wrapped into rows."""
    shape = net.input.shape
    items = [_box(["input", str(shape)], NEUTRAL, "input")]
    for block in net.stem:
        shape = block.out_shape(shape)
        items.append(_block_box(block, shape))
    for index, stage in enumerate(net.stages):
        group, shape = _stage_group(index, stage, shape)
        items.append(group)
    items.append(_head_box(net))
    return _svg(net.name or "network", _flow(items, MAX_WIDTH - 2 * MARGIN))


# ---- micro cells ---------------------------------------------------------------------------

COL_PITCH = 170  # between the centres of neighbouring columns of a cell
ROW_PITCH = 60  # the room of a node in its column
BEND_PITCH = 20  # ... and of a long edge passing through a column
NODE_H = 26
PORT = 7  # between the ends of the edges entering one node
_HALO = {"stroke": "#ffffff", "stroke_width": 3, "paint_order": "stroke"}  # keeps an edge label legible over lines

Key = int | tuple[int, int]  # a state, or (edge, column): where a long edge bends through a column
Edge = tuple[int, int, int, CellOp | None]  # source state, target state, port, op (None: into the output)


def _cell_edges(cell: Cell) -> list[Edge]:
    """Two edges into each node, then one from each concatenated state into the output (state ``len(nodes) + 2``)."""
    output = len(cell.nodes) + 2
    nodes = [(e.input, k + 2, j, e.op) for k, node in enumerate(cell.nodes) for j, e in enumerate(node)]
    return nodes + [(s, output, j, None) for j, s in enumerate(cell.concat)]


def _depths(reads: list[list[int]]) -> list[int]:
    """The column of every state: its longest path from the inputs; the output in a column of its own."""
    depth: list[int] = []
    for sources in reads:
        depth.append(1 + max(depth[i] for i in sources) if sources else 0)
    depth[-1] = max(depth[:-1]) + 1
    return depth


def _pitch(key: Key) -> int:
    return ROW_PITCH if isinstance(key, int) else BEND_PITCH


def _rows(depth: list[int], chains: list[list[Key]]) -> tuple[dict[Key, float], float]:
    """The y of every state and bend, and the height; a column is ordered by the mean y of what feeds it."""
    columns: list[list[Key]] = [[] for _ in range(depth[-1] + 1)]
    feeds: dict[Key, list[Key]] = {}
    for s, d in enumerate(depth):
        columns[d].append(s)
    for chain in chains:
        for a, b in pairwise(chain):
            feeds.setdefault(b, []).append(a)
        for bend in chain[1:-1]:
            columns[bend[1]].append(bend)  # type: ignore[index]
    height = max(sum(map(_pitch, col)) for col in columns)
    y: dict[Key, float] = {}
    for col in columns:
        col.sort(key=lambda k: (fmean(y[a] for a in feeds[k]) if k in feeds else 0.0, isinstance(k, tuple), str(k)))
        top = (height - sum(map(_pitch, col))) / 2
        for key in col:
            y[key] = top + _pitch(key) / 2
            top += _pitch(key)
    return y, height


def _ports(ends: list[tuple[int, float]]) -> list[float]:
    """Per edge, the y offset of its end on node ``ends[e][0]``: a node's edge ends lie ``PORT`` apart,
    in the order of the heights ``ends[e][1]`` they come from or go to, so that they do not cross there."""
    by_node: dict[int, list[tuple[float, int]]] = {}
    for e, (node, toward) in enumerate(ends):
        by_node.setdefault(node, []).append((toward, e))
    offsets = [0.0] * len(ends)
    for group in by_node.values():
        for i, (_, e) in enumerate(sorted(group)):
            offsets[e] = (i - (len(group) - 1) / 2) * PORT
    return offsets


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (centre x, centre y, width, height) boxes overlap."""
    return abs(a[0] - b[0]) * 2 < a[2] + b[2] and abs(a[1] - b[1]) * 2 < a[3] + b[3]


def _place_label(curve: Sequence[Point], w: float, taken: list[tuple[float, float, float, float]]) -> Point:
    """The point of the cubic ``curve``, nearest its middle, where a ``w``-wide label overlaps nothing ``taken``."""
    for t in (0.55, 0.42, 0.68, 0.32, 0.78, 0.22, 0.88):
        weights = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3)
        x, y = (sum(k * p[i] for k, p in zip(weights, curve, strict=True)) for i in (0, 1))
        if not any(_overlaps((x, y, w, 14), box) for box in taken):
            break
    taken.append((x, y, w, 14))
    return x, y


def _node(x: float, y: float, w: float, h: float, name: str, sub: str) -> str:
    """A rounded node box with its name and an optional subscript."""
    rect = _tag("rect", x=x - w / 2, y=y - h / 2, width=w, height=h, rx=min(w, h) / 2, fill="#ffffff", stroke=INK)
    label = _esc(name) + (_tag("tspan", _esc(sub), dy=3, font_size=9) if sub else "")
    return rect + _tag("text", label, x=x, y=y + 4, text_anchor="middle", fill=INK)


def cell_svg(cell: Cell, title: str) -> str:
    """A micro cell as a DAG: inputs left, nodes in columns by depth, the concat output right; edges labelled by op."""
    edges = _cell_edges(cell)
    output = len(cell.nodes) + 2
    reads = [[s for s, t, _, _ in edges if t == state] for state in range(output + 1)]
    depth = _depths(reads)
    chains: list[list[Key]] = [[s, *((e, c) for c in range(depth[s] + 1, depth[t])), t] for e, (s, t, _, _) in enumerate(edges)]
    y, height = _rows(depth, chains)
    names = [("c", "k-2"), ("c", "k-1"), *((str(s), "") for s in range(2, output)), ("concat", "")]
    widths = [max(NODE_H, len(a + b) * CHAR_W + 2 * PAD) for a, b in names]
    ends = [max(len(reads[s]), sum(c[0] == s for c in chains)) for s in range(output + 1)]
    heights = [max(NODE_H, PORT * n + 8) for n in ends]
    leave, enter = _ports([(c[0], y[c[1]]) for c in chains]), _ports([(c[-1], y[c[-2]]) for c in chains])

    def x(column: int) -> float:
        return widths[0] / 2 + 1 + column * COL_PITCH

    taken = [(x(depth[s]), y[s], widths[s], heights[s]) for s in range(output + 1)]
    paths, labels = [], []
    for e, (s, t, _, op) in enumerate(edges):
        bends = [(x(c), y[(e, c)]) for c in range(depth[s] + 1, depth[t])]
        points = [(x(depth[s]) + widths[s] / 2, y[s] + leave[e]), *bends, (x(depth[t]) - widths[t] / 2 - 1, y[t] + enter[e])]
        curves = [(a, ((a[0] + b[0]) / 2, a[1]), ((a[0] + b[0]) / 2, b[1]), b) for a, b in pairwise(points)]
        d = f"M{_pt(points[0])}" + "".join(f" C{_pt(c1)} {_pt(c2)} {_pt(b)}" for _, c1, c2, b in curves)
        colour = NEUTRAL if op is None else OP_COLOURS[op]
        dash = {"stroke_dasharray": "4 3"} if op == CellOp.NONE else {}
        paths.append(_tag("path", d=d, fill="none", stroke=colour, stroke_width=1.5, class_="edge", **dash))
        if op is not None:
            alias = CELL_OP_ALIAS[op]
            lx, ly = _place_label(curves[-1], len(alias) * SMALL_W + 4, taken)
            labels.append(_text(lx, ly + 4, alias, class_="edge-label", fill=colour, font_size=11, **_HALO))
    nodes = "".join(_node(x(depth[s]), y[s], widths[s], heights[s], *names[s]) for s in range(output + 1))
    return _svg(title, _Item(x(depth[-1]) + widths[-1] / 2 + 1, height, "".join(paths) + nodes + "".join(labels)))


def diagrams(net: Network) -> list[tuple[str, str]]:
    """``(caption, svg)`` pairs: the network, then each distinct cell its cell blocks run."""
    out = [(net.name or "network", network_svg(net))]
    seen: list[Cell] = []
    roles: Counter[str] = Counter()
    for _, block in net.blocks():
        if isinstance(block, CellBlock) and block.cell not in seen:
            seen.append(block.cell)
            role = "reduction cell" if block.stride == 2 else "normal cell"
            roles[role] += 1
            caption = role + (f" {roles[role]}" if roles[role] > 1 else "")
            out.append((caption, cell_svg(block.cell, caption)))
    return out
