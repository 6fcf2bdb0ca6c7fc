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
