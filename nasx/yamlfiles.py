"""Reading the YAML files users write (genotypes, design spaces, study configs, recipes).

Only ``yaml.safe_load`` builds values (no python tags, no arbitrary objects), and every way a
file can be bad ends in one :class:`YamlProblem` naming the place: a file that cannot be read
or is not UTF-8 text, a syntax error (its line and column), a key given twice in one mapping
(which YAML would otherwise resolve silently, the last one winning), nesting deep enough to
exhaust Python's recursion, or aliases that multiply a short file into billions of values
("billion laughs"). Callers turn the problem into their own :class:`nasx.errors.NasxError`.
Imports only yaml, so every layer can use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: How deeply lists and mappings may nest (the deepest shipped file, a design space, needs 15), and
#: how many values one document may hold in all (the largest zoo genotype holds about 2,000).
MAX_NESTING, MAX_VALUES = 50, 200_000


class YamlProblem(ValueError):
    """What is wrong with a YAML text: ``where`` (``line 3, column 7``, a field path, or ``""``) and ``message``."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


def read_text(path: str | Path, what: str) -> str:
    """The text of ``path`` (a ``what``, e.g. "study config"), or a YamlProblem saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise YamlProblem("", f"cannot read the {what}: not UTF-8 text (byte {exc.start} is {byte:#04x})") from None
    except OSError as exc:
        raise YamlProblem("", f"cannot read the {what}: {exc.strerror or exc}") from None


def parse(text: str) -> Any:
    """The value of one YAML document, read with ``yaml.safe_load``; YamlProblem if it is not a sound one."""
    try:
        data = yaml.safe_load(text)
        _check_duplicate_keys(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(where, f"invalid YAML: {problem}") from None
    except RecursionError:  # the YAML parser recurses once per nesting level
        raise YamlProblem("", f"invalid YAML: nested more than {MAX_NESTING} levels deep") from None
    problem = nesting_problem(data)
    if problem is not None:
        raise YamlProblem(*problem)
    return data


def _check_duplicate_keys(text: str) -> None:
    """Raise a YamlProblem at the second spelling of a key in one mapping (the node graph is walked once per node)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in first:
                        mark = key.start_mark
                        raise YamlProblem(
                            f"line {mark.line + 1}, column {mark.column + 1}",
                            f"duplicate key {key.value!r} (first given on line {first[key.tag, key.value] + 1})",
                        )
                    first[key.tag, key.value] = key.start_mark.line
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def nesting_problem(data: Any, limit: int = MAX_NESTING, most: int = MAX_VALUES) -> tuple[str, str] | None:
    """``(path, message)`` for the first list or mapping nested more than ``limit`` levels deep, or for
    data holding more than ``most`` values; None when neither.

    Checked without recursion before validation: pydantic, the YAML parser and torch recurse once
    per level, and a hostile file could otherwise end in a RecursionError or never finish.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    seen = 1
    while stack:
        value, path, depth = stack.pop()
        if not isinstance(value, dict | list | tuple):
            continue
        if depth >= limit:
            return (path, f"nested more than {limit} levels deep")
        seen += len(value)
        if seen > most:
            return ("", f"holds more than {most} values (YAML aliases can multiply them)")
        if isinstance(value, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in value.items())
        else:
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


__all__ = ["MAX_NESTING", "MAX_VALUES", "YamlProblem", "nesting_problem", "parse", "read_text"]
