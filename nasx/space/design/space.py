"""The design space: a design-space file read, checked and wrapped as :class:`DesignSpace`; the shipped spaces."""

from __future__ import annotations

import difflib
import os
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from nasx.errors import GenotypeError, InfeasibleSample, NotInSpaceError, SpaceError, Wording, field_problems
from nasx.space.design.distributions import Param, SpaceSize, Trial, _show
from nasx.space.design.encode import _first_difference, _Matcher, _Mismatch, _State
from nasx.space.design.sample import _Draw, _FixedParams, _SeededTrial
from nasx.space.design.template import _IDENT, _check_fields, _count, _Node, _params, _Parser, _shared_refs, _Walk
from nasx.space.genotype import Network
from nasx.types import Frozen
from nasx.yamlfiles import YamlProblem, nesting_problem, parse_mapping, read_mapping

_HERE = Path(__file__).resolve().parents[2]


class _SpaceFile(Frozen):
    """The schema of a design-space file (unknown keys are errors)."""

    name: str = Field(min_length=1)
    description: str = ""
    contains: tuple[str, ...] = ()
    shared: dict[str, Any] = {}
    template: dict[str, Any]


#: How a design-space file's own keys are worded in errors (the template's are the genotype's).
_FILE_WORDING = Wording(messages={"extra_forbidden": "unknown field"}, unions=None)
_ARCH_FIELDS = tuple(k for k in Network.model_fields if k not in ("name", "reference"))


@dataclass(frozen=True)
class DesignSpace:
    """A genotype template with holes. Build one with :meth:`from_dict`, :meth:`from_yaml` or :func:`load_space`.

    ``members``: the zoo networks the file's ``contains:`` claims as points of the space.
    """

    name: str
    description: str
    members: tuple[str, ...]
    template: dict[str, Any] = field(repr=False)
    shared: dict[str, Any] = field(repr=False)
    _root: _Node = field(repr=False, compare=False)
    _shared: dict[str, _Node] = field(repr=False, compare=False)

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> DesignSpace:
        """Validate a design-space mapping; raises :class:`SpaceError` naming every offending path."""
        if not isinstance(data, dict):
            raise SpaceError([("", f"a design space is a mapping, got {type(data).__name__}")], source)
        too_deep = nesting_problem(data)
        if too_deep is not None:
            raise SpaceError([too_deep], source)
        try:
            spec = _SpaceFile.model_validate(data)
        except ValidationError as exc:
            raise SpaceError(field_problems(exc, _FILE_WORDING), source) from None
        parser = _Parser(set(spec.shared))
        for name in spec.shared:
            if not _IDENT.match(name) or name in Network.model_fields:
                parser.fail(f"shared.{name}", "shared names are identifiers other than the genotype's top-level fields")
        parser.in_shared = True
        shared = {name: parser.node(raw, f"shared.{name}") for name, raw in spec.shared.items()}
        parser.in_shared = False
        root = parser.node(spec.template, "template")
        walk = _Walk(shared, parser.problems)
        for key in spec.template:
            if key not in _ARCH_FIELDS:
                walk.problems.append((f"template.{key}", f"unknown field; a network template has {', '.join(_ARCH_FIELDS)}"))
        _check_fields(root, [Network], "template", walk)
        unused = [n for n in shared if n not in set(_shared_refs(root))]
        walk.problems += [(f"shared.{n}", "is never used by the template") for n in unused]
        from nasx import zoo  # here, not at the top: nasx.zoo imports this package

        known = zoo.names()
        for i, member in enumerate(spec.contains):
            if member not in known:
                close = difflib.get_close_matches(member, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else "see nasx.zoo.names()"
                walk.problems.append((f"contains[{i}]", f"unknown zoo network {member!r}; {hint}"))
        if walk.problems:
            raise SpaceError(list(dict.fromkeys(walk.problems)), source)
        return cls(spec.name, spec.description, spec.contains, spec.template, spec.shared, root, shared)

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> DesignSpace:
        """Parse and validate a design-space file's text (see :mod:`nasx.yamlfiles` for what is refused)."""
        return cls.from_dict(parse_mapping(text, _yaml_error(source), SPACE_MAPPING), source)

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, trial: Trial) -> Network:
        """The network the trial's suggestions select; :class:`InfeasibleSample` if it is not a valid genotype."""
        return self._sample(trial)[0]

    def _sample(self, trial: Trial) -> tuple[Network, dict[str, Any]]:
        draw = _Draw(trial, self._shared)
        raw = draw.value(self._root, "")
        try:
            return Network.from_dict(raw), draw.params
        except GenotypeError as exc:
            raise InfeasibleSample(exc.problems, draw.params, self.name) from None

    def select(self, params: dict[str, Any]) -> Network:
        """The network that ``params`` (as from :meth:`encode` or ``trial.params``) select; no optuna needed."""
        return self.sample(_FixedParams(params, self.name))

    def random(self, seed: int, attempts: int = 100) -> Network:
        """A random point from a seeded RNG: the first feasible one of up to ``attempts`` draws (deterministic)."""
        if attempts < 1:
            raise SpaceError([("attempts", f"must be at least 1, got {attempts}")], f"random point of {self.name!r}")
        rng = _random.Random(seed)
        for attempt in range(attempts):
            try:
                return self.sample(_SeededTrial(rng))
            except InfeasibleSample:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable: the loop returns or re-raises")  # pragma: no cover

    # ---- encoding -------------------------------------------------------------------------

    def encode(self, genotype: Network) -> dict[str, Any]:
        """The parameters that select ``genotype``; :class:`NotInSpaceError` naming the field that is not in the space."""
        try:
            state = _Matcher(self._shared).match(self._root, genotype, "", "", _State())
        except _Mismatch as exc:
            raise NotInSpaceError(self.name, genotype.name, exc.path, exc.reason) from None
        try:
            again, drawn = self._sample(_FixedParams(state.params, self.name))
        except GenotypeError as exc:  # cannot happen for a valid genotype that matched; kept as a clear error
            raise NotInSpaceError(self.name, genotype.name, "", f"its parameters do not select it: {exc}") from None
        if again != genotype:
            diff = _first_difference(genotype.arch_dict(), again.arch_dict())
            path, mine, theirs = diff if diff else ("", None, None)
            reason = f"{_show(mine)} is not in the space (the closest point has {_show(theirs)})"
            raise NotInSpaceError(self.name, genotype.name, path, reason)
        return drawn  # the same values as state.params, in the order sampling draws them

    def contains(self, genotype: Network) -> bool:
        """Whether ``genotype`` is a point of this space."""
        try:
            self.encode(genotype)
        except NotInSpaceError:
            return False
        return True

    # ---- reports --------------------------------------------------------------------------

    def params(self) -> list[Param]:
        """Every parameter, with its distribution and the choices that activate it (template order, shared last)."""
        out = list(_params(self._root, "", (), None))
        for name, node in self._shared.items():
            out += _params(node, name, (), name)
        return out

    def size(self) -> SpaceSize:
        """The number of points (parameter assignments); see :class:`SpaceSize` for what an estimate means."""
        total, exact = _count(self._root)
        for node in self._shared.values():
            n, e = _count(node)
            total, exact = total * n, exact and e
        return SpaceSize(total, exact)

    def describe(self) -> str:
        """A few lines for a report: name, size, and the parameters."""
        lines = [f"design space {self.name}: {self.size()} points, {len(self.params())} parameters"]
        if self.members:
            lines.append(f"contains: {', '.join(self.members)}")
        return "\n".join(lines + [f"  {p}" for p in self.params()])


def spaces_dir() -> Path:
    """The folder of design-space files: inside an installed wheel, or the source checkout's ``search_spaces``."""
    for candidate in (_HERE / "_data" / "search_spaces", _HERE.parent / "search_spaces"):
        if candidate.is_dir():
            return candidate
    raise SpaceError([("", "the design-space folder search_spaces is missing from this installation")])


def space_names() -> list[str]:
    """The names of the shipped design spaces."""
    return sorted(p.stem for p in spaces_dir().glob("*.yaml"))


def load_space(name_or_path: str) -> DesignSpace:
    """A shipped space by name (``macro-cifar``), or a design-space YAML file by path.

    A name is looked up in the spaces folder only; a path is meant when the text holds a ``/`` or
    ends in ``.yaml``/``.yml``, and only a regular file with that suffix is read.
    """
    text = str(name_or_path)
    p = Path(text)
    if "/" in text or os.sep in text or p.suffix in (".yaml", ".yml"):
        if p.suffix not in (".yaml", ".yml"):
            raise SpaceError([("", "a design-space file ends in .yaml or .yml (a name is looked up in search_spaces/)")], text)
    else:
        p = spaces_dir() / f"{text}.yaml"
        if not p.is_file():
            close = difflib.get_close_matches(name_or_path, space_names(), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(space_names())}"
            raise SpaceError([("", f"unknown design space {name_or_path!r}; {hint}")])
    return DesignSpace.from_dict(read_mapping(p, "design-space file", _yaml_error(str(p)), SPACE_MAPPING), str(p))


SPACE_MAPPING = "a design space is a mapping"


def _yaml_error(source: str | None) -> Callable[[YamlProblem], SpaceError]:
    """How a design-space reader reports a YAML problem: one located problem of the file ``source``."""
    return lambda exc: SpaceError([(exc.where, exc.message)], source)
