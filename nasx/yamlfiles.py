"""The files of nasx: the one safe reader of the YAML files users write, and the one atomic write.

**Reading** (genotypes, design spaces, study configs, recipes, run configs). Only
``yaml.safe_load`` builds values (no python tags, no arbitrary objects), and every way a file can
be bad ends in one :class:`YamlProblem` naming the place: a file that cannot be read or is not
UTF-8 text, a syntax error (its line and column), a key given twice in one mapping (which YAML
would otherwise resolve silently, the last one winning), nesting deep enough to exhaust Python's
recursion, or aliases that multiply a short file into billions of values ("billion laughs").
:func:`load_mapping` (a file) and :func:`parse_mapping` (a text) are what readers call: they also
refuse a document that is not a mapping, and raise each problem as the caller's own
:class:`nasx.errors.NasxError`, so no reader re-wraps YAML errors by hand.

**Writing.** :func:`atomic_write` writes a file through a temporary file in the same folder, fsyncs
it, renames it into place and fsyncs the folder: a reader (or a crash, or a power cut) sees the old
file or the new one, never half of one. Checkpoints, run folders, exports, reports, the journal's
repair and the data cache all write through it.

Imports only yaml and the standard library, so every layer can use it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

#: How deeply lists and mappings may nest (the deepest shipped file, a design space, needs 15), and
#: how many values one document may hold in all (the largest zoo genotype holds about 2,000).
MAX_NESTING, MAX_VALUES = 50, 200_000

#: The largest YAML file read (the largest shipped one is under 5 KiB): a bigger one is refused unread.
MAX_BYTES = 1 << 20


class YamlProblem(ValueError):
    """What is wrong with a YAML text: ``where`` (``line 3, column 7``, a field path, or ``""``) and ``message``."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


def read_text(path: str | Path, what: str, limit: int = MAX_BYTES) -> str:
    """The text of ``path`` (a ``what``, e.g. "study config"), or a YamlProblem saying why it cannot be read.

    Only a regular file is read (not a folder, a device or a pipe), and only up to ``limit`` bytes:
    a larger one is refused with its size, before any parsing.
    """
    p = Path(path)
    try:
        info = p.stat()
        if not p.is_file():
            raise YamlProblem("", f"cannot read the {what}: not a regular file")
        if info.st_size > limit:
            raise YamlProblem(
                "", f"the {what} is {info.st_size:,} bytes; a {what} may be at most {limit:,} bytes ({limit >> 20} MiB)"
            )
        with open(p, "rb") as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            raise YamlProblem("", f"the {what} is over {limit:,} bytes; a {what} may be at most {limit:,} bytes")
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise YamlProblem("", f"cannot read the {what}: not UTF-8 text (byte {exc.start} is {byte:#04x})") from None
    except OSError as exc:
        raise YamlProblem("", f"cannot read the {what}: {exc.strerror or exc}") from None


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def parse(text: str) -> Any:
    """The value of one YAML document, read with PyYAML's safe loader; YamlProblem if it is not a sound one.

    Before any value is built: the nesting depth is checked on the token stream (no recursion), then
    the node graph for keys given twice and for aliases that expand to more than ``MAX_VALUES``
    values; each refusal names its line and column.
    """
    if len(text) > MAX_BYTES:
        raise YamlProblem("", f"the text is {len(text):,} characters; at most {MAX_BYTES:,} are read")
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters at once
        _check_depth(text)
        root = loader.get_single_node()
        _check_nodes(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = _at(mark) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(where, f"invalid YAML: {problem}") from None
    except RecursionError:  # the YAML parser recurses once per nesting level
        raise YamlProblem("", f"invalid YAML: nested more than {MAX_NESTING} levels deep") from None
    finally:
        if loader is not None:
            loader.dispose()
    problem = nesting_problem(data)
    if problem is not None:
        raise YamlProblem(*problem)
    return data


_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_depth(text: str, limit: int = MAX_NESTING) -> None:
    """Refuse, at its line and column, a collection opened more than ``limit`` levels deep (read from the tokens)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > limit:
                raise YamlProblem(_at(token.start_mark), f"invalid YAML: nested more than {limit} levels deep")
        elif isinstance(token, _CLOSE):
            depth -= 1


def _check_nodes(root: yaml.Node | None, most: int = MAX_VALUES) -> None:
    """Refuse a key given twice in one mapping, or a node whose aliases expand it to more than ``most`` values.

    Walked without recursion; an alias is a second reference to the same node, so each node's
    expanded size is computed once and counted at every reference.
    """
    if root is None:
        return
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            size[id(node)] = 1
            continue
        if done:
            open_.discard(id(node))
            total = 1 + sum(size[id(c)] for c in children)
            if total > most:
                raise YamlProblem(_at(node.start_mark), f"holds more than {most} values (YAML aliases multiply them)")
            size[id(node)] = total
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise YamlProblem(_at(node.start_mark), "an alias refers to a value that contains it")
        open_.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_keys(node)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise YamlProblem(_at(child.start_mark), "an alias refers to a value that contains it")
            if id(child) not in size:
                stack.append((child, False))


def _check_keys(node: yaml.MappingNode) -> None:
    """Raise a YamlProblem at the second spelling of a key in the mapping ``node``."""
    first: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if (key.tag, key.value) in first:
                raise YamlProblem(
                    _at(key.start_mark), f"duplicate key {key.value!r} (first given on line {first[key.tag, key.value] + 1})"
                )
            first[key.tag, key.value] = key.start_mark.line


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


# ---- readers: a mapping, each problem raised as the caller's error ---------------------------------


def parse_mapping(text: str, error: Callable[[YamlProblem], BaseException], mapping: str) -> dict[str, Any]:
    """The mapping a YAML ``text`` holds; every problem (:func:`parse`'s, or ``mapping, got list`` for a document
    that is not a mapping, e.g. ``mapping="a genotype must be a mapping"``) is raised as ``error(problem)``."""
    try:
        data = parse(text)
        if not isinstance(data, dict):
            raise YamlProblem("", f"{mapping}, got {type(data).__name__}")
    except YamlProblem as exc:
        raise error(exc) from None
    return data


def read_mapping(path: str | Path, what: str, error: Callable[[YamlProblem], BaseException], mapping: str) -> dict[str, Any]:
    """The mapping the YAML file ``path`` (a ``what``, e.g. "genotype file") holds, read by :func:`read_text` and
    :func:`parse_mapping`; every problem is raised as ``error(problem)`` (readers with structured errors)."""
    try:
        text = read_text(path, what)
    except YamlProblem as exc:
        raise error(exc) from None
    return parse_mapping(text, error, mapping)


def load_mapping(
    path: str | Path, what: str, error: Callable[[str], BaseException], mapping: str | None = None
) -> dict[str, Any]:
    """:func:`read_mapping` for readers whose errors are one line: every problem is raised as
    ``error("PATH: PROBLEM")``, a document that is not a mapping as ``error("PATH: MAPPING, got list")``
    (``mapping``, default ``"a WHAT is a mapping"``)."""
    return read_mapping(path, what, lambda problem: error(f"{path}: {problem}"), mapping or f"a {what} is a mapping")


# ---- writing: atomic, durable ----------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` all at once: ``write(tmp)`` fills a temporary file in the same folder, which is then
    fsynced, renamed over ``path`` and made durable by an fsync of the folder. Never half a file: if
    ``write`` raises (or the process dies), ``path`` is as it was and the temporary file is removed.

    The temporary name (``.NAME.PID.RANDOM.tmp``) is unique to the call, so two writers of one path do
    not mix their bytes; the last rename wins.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


__all__ = [
    "MAX_BYTES",
    "MAX_NESTING",
    "MAX_VALUES",
    "YamlProblem",
    "atomic_write",
    "fsync_dir",
    "load_mapping",
    "nesting_problem",
    "parse",
    "parse_mapping",
    "read_text",
]
