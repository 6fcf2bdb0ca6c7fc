"""Network size as a fidelity: the same genotype narrower and shallower, to search on a proxy network.

NASNet and DARTS search a cell in a small network and evaluate it in a large one built from the
same cell: DARTS searches with 8 cells at C = 16 and evaluates with 20 cells at C = 36. Here the
genotype is always the *evaluation* network (what a user deploys, what objectives and constraints
are computed on), and :func:`scaled` derives the network a search trains:

- ``width`` multiplies the ``out`` of every stem block that has one and the ``channels`` of every
  repeated stage, rounded to the nearest integer (at least 1);
- ``depth`` multiplies the ``depth`` of every repeated stage, rounded, at least 1;
- explicit ``blocks:`` stages, block-internal widths (bottleneck width, inception branches, SE)
  and auxiliary heads are kept as written.

DARTS' search network from its evaluation network is ``width: 4/9`` (108, 36, 72, 144 channels
become 48, 16, 32, 64) and ``depth: 1/3`` (stages of 6, 1, 6, 1, 6 cells become 2, 1, 2, 1, 2).
"""

from __future__ import annotations

from typing import Any

from nasx.errors import GenotypeError
from nasx.space.genotype import Network


def _times(value: int, factor: float) -> int:
    return max(1, int(round(value * factor + 1e-9)))


def scaled(net: Network, width: float = 1.0, depth: float = 1.0) -> Network:
    """``net`` with its stem and stage widths times ``width`` and its repeated stages' depths times ``depth``.

    The identity (the same object) when both are 1. Raises :class:`GenotypeError` naming the
    fidelity and the stage when the scaled network breaks a rule (e.g. channels no longer divisible
    by a block's ``groups``).
    """
    if width == 1.0 and depth == 1.0:
        return net
    data: dict[str, Any] = net.to_dict()
    for block in data.get("stem", []):
        if isinstance(block.get("out"), int):
            block["out"] = _times(block["out"], width)
    for stage in data["stages"]:
        if stage.get("blocks") is None:
            stage["channels"] = _times(stage["channels"], width)
            stage["depth"] = _times(stage["depth"], depth)
    try:
        return Network.from_dict(data)
    except GenotypeError as exc:
        problems = [(f"fidelity (width {width:g}, depth {depth:g}) -> {path}", msg) for path, msg in exc.problems]
        raise GenotypeError(problems, net.name or None) from None
