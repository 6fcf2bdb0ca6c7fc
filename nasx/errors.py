"""nasx's error types. Imports nothing, so every layer can raise them."""

from __future__ import annotations


class NasxError(Exception):
    """Base of every error nasx reports to a user as one clear message (no traceback)."""


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
    """A pydantic ``ValidationError`` as ``path: rule, got value`` parts joined by ``; ``."""
    parts = []
    for e in exc.errors():  # type: ignore[attr-defined]
        loc = ".".join(str(p) for p in e["loc"]) or "(top)"
        msg = e["msg"].removeprefix("Value error, ")
        got = f", got {e['input']!r}" if e["type"] != "missing" and "got" not in msg else ""
        parts.append(f"{loc}: {msg}{got}")
    return "; ".join(parts)
