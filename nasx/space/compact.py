"""The one-line string form of a network, for pasting into an issue, a paper or a config.

::

    input(channels=1) | stem[conv(out=16)] | 3*residual(shortcut=pad)@16
        | 3*residual(shortcut=pad)@32/2 | [conv(out=8), pool()] | head(hidden=[120, 84])

    stem[conv(out=48, act=none)] | 6*cell(normal="sep3@0+sep3@1 | skip@0+dil3@2 ; concat 2,3")@16

Sections are separated by `` | ``: an optional ``input(...)``, an optional ``stem[...]``,
one section per stage, and an optional ``head(...)``. A repeated stage is
``DEPTH*BLOCK@CHANNELS`` with ``/STRIDE`` when the stride is not 1; an explicit stage is a
``[...]`` list of blocks; `` aux(...)`` after a stage is its auxiliary head. A block is
``kind(field=value, ...)`` listing only the fields that differ from their defaults, so the
string is as short as the network is unusual. Name and reference are not part of the
architecture and are not written. A value that is not a plain word or number (a micro cell's
own one-line form, see :func:`cell_to_string`) is double-quoted.

This module imports the genotype, never the reverse: importing it installs the writer and reader
that ``Network.to_string`` and ``Network.from_string`` call (:mod:`nasx.space` imports it).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from nasx.errors import GenotypeError
from nasx.space.genotype import Head, Input, Network, cell_from_string, cell_to_string, minimal_dict
from nasx.space.genotype.network import install_string_form
from nasx.yamlfiles import MAX_NESTING

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
    r'|(?P<str>"[^"]*")|(?P<punct>[()\[\],=*@/|]))'
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---- writing ------------------------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, StrEnum):
        return v.value
    if isinstance(v, str) and not _WORD.fullmatch(v):
        return f'"{v}"'
    if isinstance(v, dict):
        kind = v.get("kind")
        args = ", ".join(f"{k}={_value(x)}" for k, x in v.items() if k != "kind")
        return f"{kind}({args})" if kind else f"({args})"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v) if isinstance(v, float) else str(v)


def _call(name: str, model: BaseModel) -> str:
    fields = {k: v for k, v in minimal_dict(model).items() if k != "kind"}
    return f"{name}(" + ", ".join(f"{k}={_value(v)}" for k, v in fields.items()) + ")"


def _block(block: BaseModel) -> str:
    return _call(block.kind.value, block)


def network_to_string(net: Network) -> str:
    parts: list[str] = []
    if net.input != Input():
        parts.append(_call("input", net.input))
    if net.stem:
        parts.append("stem[" + ", ".join(_block(b) for b in net.stem) + "]")
    for stage in net.stages:
        if stage.blocks is not None:
            parts.append("[" + ", ".join(_block(b) for b in stage.blocks) + "]")
        else:
            text = f"{stage.depth}*{_block(stage.block)}@{stage.channels}"  # type: ignore[arg-type]
            parts.append(text + (f"/{stage.stride}" if stage.stride != 1 else ""))
        if stage.aux is not None:
            parts[-1] += " " + _call("aux", stage.aux)
    if net.head != Head():
        parts.append(_call("head", net.head))
    return " | ".join(parts)


# ---- reading ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                pos += len(text[pos:]) - len(text[pos:].lstrip())
                self.fail(f"unexpected character {text[pos]!r}", pos)
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0  # open brackets and parentheses: the parser recurses once per level

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(f"brackets nested more than {MAX_NESTING} levels deep")

    def fail(self, msg: str, pos: int | None = None) -> None:
        if pos is None:
            pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        raise GenotypeError([(f"column {pos + 1}", msg)], "network string")

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i][:2] if self.i < len(self.tokens) else ("end", "")

    def take(self, kind: str, text: str | None = None) -> str:
        k, t = self.peek()
        if k != kind or (text is not None and t != text):
            self.fail(f"expected {repr(text) if text else kind}, got {repr(t) if t else 'end of string'}")
        self.i += 1
        return t

    def value(self) -> Any:
        kind, text = self.peek()
        if kind == "num":
            self.i += 1
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "str":
            self.i += 1
            return text[1:-1]
        if text == "[":
            return self.list(self.value)
        if text == "(":
            return self.kwargs()  # a mapping with no kind tag, e.g. an inception step (op=conv, out=64, kernel=1)
        if kind == "ident":
            self.i += 1
            if self.peek() == ("punct", "("):
                return {"kind": text, **self.kwargs()}
            return {"true": True, "false": False, "null": None}.get(text, text)
        self.fail(f"expected a value, got {text or 'end of string'!r}")

    def list(self, item: Any) -> list[Any]:
        self.take("punct", "[")
        self.enter()
        items: list[Any] = []
        while self.peek() != ("punct", "]"):
            items.append(item())
            if self.peek() != ("punct", "]"):
                self.take("punct", ",")
        self.take("punct", "]")
        self.depth -= 1
        return items

    def kwargs(self) -> dict[str, Any]:
        self.take("punct", "(")
        self.enter()
        out: dict[str, Any] = {}
        while self.peek() != ("punct", ")"):
            key = self.take("ident")
            self.take("punct", "=")
            out[key] = self.value()
            if self.peek() != ("punct", ")"):
                self.take("punct", ",")
        self.take("punct", ")")
        self.depth -= 1
        return out

    def block(self) -> dict[str, Any]:
        kind = self.take("ident")
        return {"kind": kind, **self.kwargs()}

    def section(self, data: dict[str, Any]) -> None:
        kind, text = self.peek()
        if kind == "ident" and text in ("input", "head"):
            self.i += 1
            data[text] = self.kwargs()
        elif kind == "ident" and text == "stem":
            self.i += 1
            data["stem"] = self.list(self.block)
        elif text == "[":
            data["stages"].append({"blocks": self.list(self.block)})
        elif kind == "num":
            depth = self.value()
            self.take("punct", "*")
            stage: dict[str, Any] = {"depth": depth, "block": self.block()}
            self.take("punct", "@")
            stage["channels"] = self.value()
            if self.peek() == ("punct", "/"):
                self.i += 1
                stage["stride"] = self.value()
            data["stages"].append(stage)
        else:
            self.fail(f"expected input(...), stem[...], a stage or head(...), got {text or 'end of string'!r}")
        if kind != "ident" and self.peek() == ("ident", "aux"):
            self.i += 1
            data["stages"][-1]["aux"] = self.kwargs()

    def network(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stages": []}
        self.section(data)
        while self.peek() != ("end", ""):
            self.take("punct", "|")
            self.section(data)
        return data


def network_from_string(text: str) -> Network:
    """Parse the string form; raises :class:`GenotypeError` with a column or field path."""
    return Network.from_dict(_Parser(text).network(), source="network string")


# ---- Network.to_string and Network.from_string ------------------------------------------------
#
# Installed here, so that the genotype does not import this module. A micro cell's own one-line
# form is part of the genotype language (a YAML file may use it), so it lives with the cell
# (nasx.space.genotype.cell) and is re-exported here.

install_string_form(network_to_string, network_from_string)


__all__ = ["cell_from_string", "cell_to_string", "network_from_string", "network_to_string"]
