"""Network and cell diagrams (nasx.report.diagram): well-formed, self-contained, escaped SVG for every zoo network."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from functools import cache

import pytest
from helpers import ZOO_NAMES, run_python

from nasx import zoo
from nasx.report.diagram import KIND_COLOURS, MAX_WIDTH, OP_COLOURS, cell_svg, diagrams, network_svg
from nasx.space import Cell, CellBlock, CellOp, Kind, Network
from nasx.space.ops import CELL_OP_ALIAS

NS = "{http://www.w3.org/2000/svg}"


@cache
def _diagrams(name: str) -> list[tuple[str, str]]:
    return diagrams(zoo.get(name))


def _classed(root: ET.Element, cls: str) -> list[ET.Element]:
    return [el for el in root.iter() if cls in el.get("class", "").split()]


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


def _lines(box: ET.Element) -> list[str]:
    """The text lines drawn in a box (its tooltip left out)."""
    return [_text(t) for t in box.iter(f"{NS}text")]


def _cells(net: Network) -> list[Cell]:
    found: list[Cell] = []
    for _, block in net.blocks():
        if isinstance(block, CellBlock) and block.cell not in found:
            found.append(block.cell)
    return found


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_diagrams_are_wellformed_svg(name: str) -> None:
    net = zoo.get(name)
    pairs = _diagrams(name)
    assert [c for c, _ in pairs][0] == name and len(pairs) == 1 + len(_cells(net))
    for caption, svg in pairs:
        root = ET.fromstring(svg)
        assert root.tag == f"{NS}svg" and root.get("role") == "img"
        assert root.get("viewBox") and float(root.get("width")) > 0 and float(root.get("height")) > 0
        assert root[0].tag == f"{NS}title" and root[0].text == caption
        assert not any(el.get("id") or el.get("href") or el.tag in (f"{NS}script", f"{NS}style") for el in root.iter())
        assert "url(" not in svg and "<?xml" not in svg
    root = ET.fromstring(pairs[0][1])
    assert float(root.get("width")) <= MAX_WIDTH
    stages = _classed(root, "stage")
    assert len(stages) == len(net.stages)
    for group, stage in zip(stages, net.stages, strict=True):  # an explicit stage shows each block, a repeated one one box
        boxes = _classed(group, "block")
        assert len(boxes) == (len(stage.blocks) if stage.blocks is not None else 1)
        if stage.blocks is None and stage.depth > 1:
            assert _lines(boxes[0])[0].endswith(f"×{stage.depth}")
    assert len(_classed(root, "block")) == len(net.stem) + sum(len(s.blocks) if s.blocks is not None else 1 for s in net.stages)


def test_zoo_covers_every_kind_and_colour_maps_are_complete() -> None:
    kinds = {b.kind for name in ZOO_NAMES for _, b in zoo.get(name).blocks()}
    assert kinds == set(Kind)  # so the test above labels every kind
    assert set(KIND_COLOURS) == set(Kind) and set(OP_COLOURS) == set(CellOp)


def test_boxes_are_sized_to_their_text() -> None:
    for name in ("inception_resnet_v2", "seresnet50", "squeezenet1_1", "alexnet"):
        root = ET.fromstring(_diagrams(name)[0][1])
        for box in [*_classed(root, "block"), *_classed(root, "head")]:
            width = float(box.find(f"{NS}rect").get("width"))
            assert all(len(line) * 6.5 < width for line in _lines(box)), _lines(box)


def test_repeated_and_explicit_stages() -> None:
    root = ET.fromstring(network_svg(zoo.get("resnet110_cifar")))
    lines = [_lines(b) for b in _classed(root, "block")]
    assert [label for label, _ in lines[1:]] == [f"residual basic 3x3 ·{c}  ×18" for c in (16, 32, 64)]
    assert [shape for _, shape in lines[1:]] == ["16x32x32", "32x16x16 · first /2", "64x8x8 · first /2"]
    root = ET.fromstring(network_svg(zoo.get("googlenet")))
    assert sum(_lines(b)[0] == "inception 4 branches" for b in _classed(root, "block")) == 9


def test_network_from_string_and_wrapping() -> None:
    root = ET.fromstring(network_svg(Network.from_string("stem[conv(out=8)] | 2*residual(se=0.25)@8")))
    assert [_lines(b) for b in _classed(root, "block")] == [
        ["conv 3x3 ·8", "8x32x32"],
        ["residual basic 3x3 ·8 se0.25  ×2", "8x32x32"],
    ]
    assert _text(root[0]) == "network"
    one_row = ET.fromstring(network_svg(Network.from_string("[" + ", ".join(["conv(out=8)"] * 2) + "]")))
    many = ET.fromstring(network_svg(Network.from_string("[" + ", ".join(["conv(out=8)"] * 40) + "]")))
    assert float(many.get("width")) <= MAX_WIDTH and float(many.get("height")) > 4 * float(one_row.get("height"))


@pytest.mark.parametrize("name", [n for n in ZOO_NAMES if any(isinstance(b, CellBlock) for _, b in zoo.get(n).blocks())])
def test_cell_edges_and_labels(name: str) -> None:
    for cell, (_, svg) in zip(_cells(zoo.get(name)), _diagrams(name)[1:], strict=True):
        root = ET.fromstring(svg)
        assert len(_classed(root, "edge")) == 2 * len(cell.nodes) + len(cell.concat)
        ops = Counter(CELL_OP_ALIAS[e.op] for node in cell.nodes for e in node)
        assert Counter(_text(t) for t in _classed(root, "edge-label")) == ops


def test_darts_has_network_normal_and_reduction_cell() -> None:
    assert [c for c, _ in _diagrams("darts_v2_cifar")] == ["darts_v2_cifar", "normal cell", "reduction cell"]


def test_none_edges_are_dashed() -> None:
    cell = Cell.model_validate("none@0+sep3@1 | none@2+skip@0 ; concat 2,3")
    root = ET.fromstring(cell_svg(cell, "c"))
    dashed = [e for e in _classed(root, "edge") if e.get("stroke-dasharray")]
    assert len(dashed) == 2 and len(_classed(root, "edge")) == 6


def test_names_are_escaped() -> None:
    name = "<script>alert(1)</script>"
    net = zoo.get("darts_v2_cifar").model_copy(update={"name": name})
    pairs = diagrams(net)
    assert "<script" not in "".join(svg for _, svg in pairs)
    root = ET.fromstring(pairs[0][1])
    assert not any(el.tag.endswith("script") for el in root.iter())
    assert any(el.text == name for el in root.iter()) and root.get("aria-label") == name
    assert ET.fromstring(cell_svg(_cells(net)[0], 'a "<b>" & c'))[0].text == 'a "<b>" & c'


def test_deterministic() -> None:
    net = zoo.get("amoebanet_a_cifar")
    assert diagrams(net) == diagrams(Network.from_yaml(net.to_yaml()))


def test_imports_no_torch_plotly_or_optuna() -> None:
    code = (
        "import json, sys\nfrom nasx import zoo\nfrom nasx.report.diagram import diagrams\n"
        "assert all(diagrams(zoo.get(n)) for n in zoo.names())\n"
        "print(json.dumps(sorted(m for m in ('torch', 'plotly', 'optuna') if m in sys.modules)))"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
