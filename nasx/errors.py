"""nasx's error types. Imports nothing, so every layer can raise them."""

from __future__ import annotations


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


def validation_problems(exc: object) -> str:
    """A pydantic ``ValidationError`` as ``path: rule, got value`` parts joined by ``; ``.

    A field that is a union (``recipe: str | Recipe``) makes pydantic report every member, each
    under the member's name (``recipe.str``, ``recipe.Recipe.lrr``): member names are dropped from
    paths, and a member's "wrong type" report is dropped when another member got further.
    """
    rows: list[tuple[str, str, bool]] = []
    for e in exc.errors():  # type: ignore[attr-defined]
        parts = [str(p) for p in e["loc"] if not (isinstance(p, str) and _union_member(p))]
        loc = ".".join(parts) or "(top)"
        msg = e["msg"].removeprefix("Value error, ")
        got = f", got {_short(e['input'])}" if e["type"] != "missing" and "got" not in msg else ""
        rows.append((loc, f"{loc}: {msg}{got}", e["type"].endswith("_type")))
    deeper = [
        (loc, text)
        for loc, text, wrong_type in rows
        if not (wrong_type and any(o != loc and o.startswith((f"{loc}.", f"{loc}[")) or (o == loc and not w) for o, _, w in rows))
    ]
    return "; ".join(dict.fromkeys(text for _, text in deeper))


def _union_member(part: str) -> bool:
    """Whether a pydantic location part names a union member (a type or model name) rather than a field."""
    return part in ("str", "int", "float", "bool", "none", "list", "dict", "tuple") or part[:1].isupper() or "[" in part


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
