"""nasx's error types, and the one translator of pydantic's validation errors into field paths.

Imports nothing but the standard library (pydantic's errors are read through their ``errors()``
list), so every layer can raise them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple


class NasxError(Exception):
    """Base of every error nasx reports to a user as one clear message (no traceback)."""


class RuntimeFailure(NasxError):
    """Something failed while it ran (training diverged, an export check failed, a download is damaged), as opposed
    to a usage error (a bad argument or file): the command line exits 1 for these and 2 for every other NasxError."""


class GenotypeError(NasxError, ValueError):
    """A genotype or genotype file breaks a rule.

    `problems` holds one ``(path, message)`` pair per violation, e.g.
    ``("stages[2].blocks[0].kernel", "must be odd, got 4")``.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.problems]
        head = f"{source}: " if source else ""
        if len(lines) == 1:
            text = head + lines[0]
        else:
            text = head + f"{len(lines)} problems\n" + "\n".join(f"  {line}" for line in lines)
        super().__init__(text)


class SpaceError(GenotypeError):
    """A design space (or design-space file) breaks a rule.

    ``problems`` as for :class:`GenotypeError`, with paths into the file, e.g.
    ``("template.stages[0].depth", "int range needs lo <= hi, got [5, 2]")``.
    """


class NotInSpaceError(NasxError, ValueError):
    """A genotype is not a point of a design space: ``path`` names the genotype field, ``reason`` says why."""

    def __init__(self, space: str, network: str, path: str, reason: str) -> None:
        self.space = space
        self.path = path
        self.reason = reason
        where = f"{path}: " if path else ""
        super().__init__(f"{network or 'the genotype'} is not in design space {space!r}: {where}{reason}")


class InfeasibleSample(GenotypeError):
    """Parameters of a design space that select an invalid genotype (e.g. channels not divisible by groups).

    A search records such a trial as infeasible with this message; ``params`` holds the parameter
    values that were drawn, ``problems`` the genotype rules they break.
    """

    def __init__(self, problems: list[tuple[str, str]], params: dict[str, object], space: str = "") -> None:
        self.params = dict(params)
        super().__init__(problems, f"infeasible sample of design space {space!r}" if space else "infeasible sample")


class FieldError(ValueError):
    """A rule broken at one field, raised inside a model's validator: :func:`field_problems` puts ``field``
    (which may be a path, ``nodes[0][1].input``) after the model's own path."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


# ---- pydantic's errors as field paths ------------------------------------------------------------

#: Builtin type names, as pydantic names a union's members in an error's location.
_TYPE_NAMES = frozenset({"int", "float", "bool", "str", "tuple", "list", "none", "dict"})
_ENUM_REPR = re.compile(r"<\w+\.\w+: ('[^']*')>")


@dataclass(frozen=True)
class Wording:
    """How one family of models words pydantic's reports: the genotype, a design-space file, a config file.

    ``messages``: our message for a pydantic error type, formatted with the error's ``ctx``.
    ``tags``: the tags of the family's discriminated unions (block kinds), which pydantic puts in a
    location after a list index or after one of the ``tagged`` fields; they are dropped.
    ``nested``: how the paths start that a validator may put at the front of its message
    (``stages[0].block.out: required ...``), which then extend the path.
    ``unions``: how a union's reports are read. pydantic reports every member of a union, under the
    member's name (``kernel.int``, ``kernel.tuple[int, int]``, ``function-after[...]``), and those
    names are dropped from paths; then ``first`` keeps the first report of each path (and drops a
    list's "too short" when its items failed), ``furthest`` keeps the reports of the member that got
    furthest (a member's wrong-type report goes when another member's lies deeper or is not about
    the type). ``None``: the family has no unions, locations are taken as they are.
    ``models_in_unions``: unions of a model and another type (``recipe: str | Recipe``), whose
    member names (capitalised) are dropped too; otherwise so are pydantic's names with a ``-``.
    ``dotted``: list indices written ``objectives.0`` as in ``--set`` keys, instead of ``stages[0]``.
    ``got_after_rules``: ``, got VALUE`` follows every message that does not state it, our validators'
    own ones too; otherwise a validator's message (and a model given whole) states what it needs.
    """

    messages: Mapping[str, str] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    tagged: frozenset[str] = frozenset()
    nested: tuple[str, ...] = ()
    unions: Literal["first", "furthest"] | None = "first"
    models_in_unions: bool = False
    dotted: bool = False
    got_after_rules: bool = False

    def dropped(self, part: Any, prev: Any) -> bool:
        """Whether a location part names a union member or a union's tag rather than a field."""
        if not isinstance(part, str) or self.unions is None:
            return False
        if part in self.tags and (isinstance(prev, int) or prev in self.tagged):
            return True
        if "[" in part or part in _TYPE_NAMES:
            return True
        return part[:1].isupper() if self.models_in_unions else "-" in part


class _Row(NamedTuple):
    path: str
    message: str
    wrong_type: bool = False  # a "wrong type" report, which a union makes for every member that failed
    field_rule: bool = False  # a FieldError: one of our rules, always kept


def field_problems(exc: Any, wording: Wording = Wording()) -> list[tuple[str, str]]:
    """A pydantic ``ValidationError`` as ``(path, message)`` pairs, e.g. ``("stages[2].blocks[0].kernel", "must be odd, got 4")``.

    Union members and discriminator tags are dropped from paths; a :class:`FieldError` raised by a
    validator extends the path with its field; ``, got VALUE`` (shortened) follows a message that does
    not state the value. :class:`Wording` says what a family of models words differently.
    """
    from pydantic import BaseModel  # loaded already: whoever raised ``exc`` uses it

    rows: list[_Row] = []
    for err in exc.errors(include_url=False):
        kind, ctx, loc = err["type"], err.get("ctx") or {}, err["loc"]
        path = _path([p for i, p in enumerate(loc) if not wording.dropped(p, loc[i - 1] if i else None)], wording.dotted)
        if isinstance(ctx.get("error"), FieldError):
            rows.append(_Row(_join(path, ctx["error"].field), str(ctx["error"]), field_rule=True))
            continue
        template = wording.messages.get(kind)
        msg = template.format(**ctx) if template else err["msg"].removeprefix("Value error, ")
        msg = _ENUM_REPR.sub(r"\1", msg)  # pydantic quotes a Literal of enum members as <PoolOp.MAX: 'max'>
        if kind == "value_error" and not path and msg and ":" in msg.split(" ")[0]:
            path, _, msg = msg.partition(": ")  # a whole-model rule that names its field
        elif kind == "value_error" and ": " in msg and msg.split(": ")[0].startswith(wording.nested):
            sub, _, msg = msg.partition(": ")
            path = _join(path, sub)
        stated = kind == "missing" or "got" in msg
        if not wording.got_after_rules:
            stated = stated or kind in ("value_error", "assertion_error") or isinstance(err.get("input"), BaseModel)
        if not stated:
            msg = f"{msg}, got {_short(err.get('input'))}"
        rows.append(_Row(path, msg, wrong_type=kind.endswith("_type")))
    if wording.unions == "furthest":
        return list(dict.fromkeys((r.path, r.message) for r in rows if not _overtaken(r, rows)))
    if wording.unions == "first":  # a union reports once per member: the first message says enough
        rows = [r for i, r in enumerate(rows) if r.field_rule or all(q.path != r.path for q in rows[:i])]
        # A list that failed item validation also reports "too short": keep only the item errors.
        rows = [
            r for r in rows if not (_too_short(r.message) and any(q.path != r.path and q.path.startswith(r.path) for q in rows))
        ]
    return [(r.path, r.message) for r in rows]


def _overtaken(row: _Row, rows: list[_Row]) -> bool:
    """A union member's wrong-type report, where another member got further (deeper, or past the type)."""
    deeper = (f"{row.path}.", f"{row.path}[")
    return row.wrong_type and any(
        q.path != row.path and q.path.startswith(deeper) or (q.path == row.path and not q.wrong_type) for q in rows
    )


def _too_short(message: str) -> bool:
    return message.startswith(("Tuple should have at least", "List should have at least"))


def _items_failed(row: _Row, rows: list[_Row]) -> bool:
    return any(q.path != row.path and q.path.startswith(row.path) for q in rows)


#: The config files' wording (a recipe, a study config): ``--set``-style paths, unions of a preset name and a model.
CONFIG_WORDING = Wording(models_in_unions=True, dotted=True, got_after_rules=True, unions="furthest")


def validation_problems(exc: object) -> str:
    """A config file's pydantic ``ValidationError`` as ``path: rule, got value`` parts joined by ``; ``.

    A field that is a union (``recipe: str | Recipe``) makes pydantic report every member, each
    under the member's name (``recipe.str``, ``recipe.Recipe.lrr``): member names are dropped from
    paths, and a member's "wrong type" report is dropped when another member got further.
    """
    return "; ".join(f"{path or '(top)'}: {msg}" for path, msg in field_problems(exc, CONFIG_WORDING))


def _path(parts: list[Any], dotted: bool) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) and not dotted else f".{p}" for p in parts).removeprefix(".")


def _join(path: str, sub: str) -> str:
    return f"{path}.{sub}" if path else sub


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
