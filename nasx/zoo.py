"""Registry of the classic networks: ``name -> search_spaces/zoo/NAME.yaml``.

Each network is a genotype file, never a class. ``complexity.json`` beside them holds the
golden params, MACs and digests that a test compares against (regenerate with
``python -m nasx.zoo --write-golden`` after an intended change).
"""

from __future__ import annotations

import difflib
import json
import sys
from functools import cache
from pathlib import Path

from nasx.errors import NasxError
from nasx.space.genotype import Network, Shape, load_network

_HERE = Path(__file__).resolve().parent
GOLDEN_NAME = "complexity.json"


def zoo_dir() -> Path:
    """The folder of zoo genotypes: inside an installed wheel, or the source checkout's."""
    for candidate in (_HERE / "_data" / "search_spaces" / "zoo", _HERE.parent / "search_spaces" / "zoo"):
        if candidate.is_dir():
            return candidate
    raise NasxError("the zoo genotype folder search_spaces/zoo is missing from this installation")


def names() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.yaml"))


def fitting(side: int, classes: int) -> list[str]:
    """The zoo networks whose stated input is ``side`` x ``side`` images of ``classes`` classes (e.g. CIFAR-scale)."""
    out = []
    for n in names():
        net = get(n)
        if net.input.resolution == side and net.input.classes == classes:
            out.append(n)
    return out


def check_fits(net: Network, label: str, side: int, classes: int) -> None:
    """Refuse a network whose stated input does not match the data (a 224-px, 1000-class ImageNet network on CIFAR):
    its params and MACs would not be those of the network that trained. One line naming the networks that fit."""
    if net.input.resolution == side and net.input.classes == classes:
        return
    fit = fitting(side, classes)
    names_ = ", ".join(fit) if fit else "none in the zoo: write a genotype with that input"
    raise NasxError(
        f"{label} takes {net.input.resolution}x{net.input.resolution} images and {net.input.classes} classes, the data has "
        f"{side}x{side} and {classes}: not trained as stated, so refused; networks that fit: {names_}"
    )


def path(name: str) -> Path:
    p = zoo_dir() / f"{name}.yaml"
    if not p.is_file():
        prefixed = [n for n in names() if n.startswith(name) or name.startswith(n.split("_")[0] + "_")]
        close = list(dict.fromkeys(prefixed[:3] + difflib.get_close_matches(name, names(), n=3)))[:4]
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(names())}"
        raise NasxError(f"unknown zoo network {name!r}{hint}")
    return p


@cache
def get(name: str) -> Network:
    """The genotype of zoo network ``name``."""
    return load_network(str(path(name)))


def family(net: Network) -> str:
    """A short label of the block families a network's stages are made of, e.g. ``residual-bottleneck+se``."""
    labels: list[str] = []
    for stage in net.stages:
        for block in stage.expand():
            label = block.kind.value
            if label in ("pool", "transition"):
                continue
            if label == "residual":
                label += "-" + block.variant.value
                if block.groups > 1:
                    label += "-grouped"
                if block.preact:
                    label += "-preact"
            if label == "inception" and block.factorized:
                label += "-factorized"
            if getattr(block, "se", 0):  # every family that takes squeeze-excite
                label += "+se"
            if label not in labels:
                labels.append(label)
    return "/".join(labels)


def module_lines(net: Network) -> list[tuple[str, Shape, str]]:
    """``(where, output shape, summary)`` for every block that renders a one-line summary.

    Inception modules do (``1x1 64 | 1x1 48 > 5x5 64 | avg 3x3 > 1x1 32``: branches ``|``-separated,
    steps ``>``-separated, forks in brackets). A repeated stage gives one row, ``stage2 x4``.
    """
    rows: list[tuple[str, Shape, str]] = []
    shape = net.input.shape
    for i, block in enumerate(net.stem):
        shape = block.out_shape(shape)
        if hasattr(block, "summary"):
            rows.append((f"stem[{i}]", shape, block.summary()))
    for s, stage in enumerate(net.stages):
        for i, block in enumerate(stage.expand()):
            shape = block.out_shape(shape)
            if stage.blocks is not None and hasattr(block, "summary"):
                rows.append((f"stage{s + 1}[{i}]", shape, block.summary()))
        if stage.blocks is None and hasattr(stage.block, "summary"):
            rows.append((f"stage{s + 1} x{stage.depth}", shape, stage.block.summary()))  # type: ignore[union-attr]
    return rows


def resolve(name_or_path: str) -> Network:
    """A zoo name, or the path of a genotype YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return load_network(name_or_path)
    return get(name_or_path)


def golden() -> dict[str, dict[str, int | str]]:
    return json.loads((zoo_dir() / GOLDEN_NAME).read_text())


def write_golden() -> Path:
    from nasx.models.complexity import complexity

    table = {}
    for name in names():
        c = complexity(get(name))
        table[name] = {"params": c.params, "macs": c.macs, "digest": get(name).digest}
    out = zoo_dir() / GOLDEN_NAME
    out.write_text(json.dumps(table, indent=2) + "\n")
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-golden"]:
        print(write_golden())
    else:
        sys.exit("usage: python -m nasx.zoo --write-golden")
