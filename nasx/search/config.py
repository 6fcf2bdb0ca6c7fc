"""Study configuration: a YAML file per study, validated with unknown keys rejected by path."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from nasx.errors import NasxError, validation_problems
from nasx.train.recipe import Fidelity, Frozen, Recipe, load_recipe
from nasx.types import PositiveInt
from nasx.yamlfiles import YamlProblem, load_mapping
from nasx.yamlfiles import parse as parse_yaml


class StudyError(NasxError):
    """A study config that does not validate, or a study that cannot be opened or resumed as asked."""


class Objective(StrEnum):
    """What a study optimises: validation accuracy is maximised, the costs minimised."""

    VAL_ACC = "val_acc"
    MACS = "macs"
    PARAMS = "params"
    LATENCY = "latency"

    @property
    def direction(self) -> str:
        return "maximize" if self == Objective.VAL_ACC else "minimize"


class SamplerKind(StrEnum):
    RANDOM = "random"
    TPE = "tpe"
    NSGA2 = "nsga2"
    EVOLUTION = "evolution"


class DataConfig(Frozen):
    """Where the images come from and how the validation split is drawn (the test set is never read)."""

    source: str = "mini"
    val_size: Annotated[float, Field(gt=0)] = 0.1
    split_seed: int = 0

    @field_validator("val_size")
    @classmethod
    def _val_size(cls, v: float) -> float:
        if v >= 1 and not float(v).is_integer():
            raise ValueError(f"a fraction must be below 1 and a count a whole number of images (>= 1), got {v!r}")
        return v

    @property
    def val(self) -> int | float:
        """``val_size`` as ``load_splits`` takes it: a fraction, or an int count."""
        return self.val_size if self.val_size < 1 else int(self.val_size)


class Constraints(Frozen):
    """Checked from the genotype before any training; a violating candidate is recorded as infeasible."""

    max_macs: PositiveInt | None = None
    max_params: PositiveInt | None = None


class SamplerConfig(Frozen):
    """``population``/``sample_size``: NSGA-II's population, regularized evolution's population and tournament size."""

    kind: SamplerKind = SamplerKind.TPE
    seed: int = 0
    population: PositiveInt = 20
    sample_size: PositiveInt = 5


class Budget(Frozen):
    """Trials and/or wall time (seconds, or '90s', '10m', '2h'), counted across resumed runs and workers.

    ``trials`` is shared exactly by the workers of one machine (see ``nasx.search.workers``);
    ``wall_time`` is search time summed over the workers, so two workers spend it twice as fast.
    ``trials: 0`` samples no candidate: the study trains its baselines only (studies/cifar10-classics.yaml).
    """

    trials: Annotated[int, Field(strict=True, ge=0)] | None = None
    wall_time: Annotated[float, Field(gt=0)] | None = None

    @field_validator("wall_time", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", v)
            if not m:
                raise ValueError(f"a duration is seconds or a number with s, m or h, got {v!r}")
            return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        return v

    @model_validator(mode="after")
    def _some(self) -> Budget:
        if self.trials is None and self.wall_time is None:
            raise ValueError("give trials, wall_time or both")
        return self


class EarlyStopping(Frozen):
    """Asynchronous successive halving at rungs ``grace * reduction**k`` (multi-objective aware, see nasx.search.rungs)."""

    kind: Literal["none", "asha"] = "asha"
    grace: PositiveInt = 1
    reduction: Annotated[int, Field(strict=True, ge=2)] = 3


class ExecutorConfig(Frozen):
    """``local`` runs trials in this process (and ``workers - 1`` more); ``ray`` schedules them with Ray Tune
    (``address`` joins a cluster).

    ``gpus_per_trial`` (Ray): the GPU share each trial requests; 0.25 runs four trials per GPU.
    None (the default) is 1 on a cluster with GPUs and 0 without, so that trials never pile onto
    GPU 0 by default (see :func:`nasx.search.executors.ray.trial_resources`).
    """

    kind: Literal["local", "ray"] = "local"
    #: local: processes on this machine, each training one trial at a time on an equal share of the cores
    #: (1: this process alone, with torch's default threads). Small networks on a CPU train faster as two
    #: one-thread processes than as one two-thread process.
    workers: PositiveInt = 1
    cpus_per_trial: Annotated[float, Field(gt=0)] = 1.0
    gpus_per_trial: Annotated[float, Field(ge=0)] | None = None
    max_concurrent: PositiveInt | None = None
    address: str | None = None

    @model_validator(mode="after")
    def _local_workers(self) -> ExecutorConfig:
        if self.workers > 1 and self.kind != "local":
            raise ValueError(
                f"workers: only the local executor starts worker processes (Ray: max_concurrent), got {self.workers}"
            )
        return self


class FailureKind(StrEnum):
    """Why a trial failed. ``non_finite_loss`` repeats (same genotype, recipe and seed) and is never retried."""

    CRASH = "crash"  # an exception while training (a CUDA error, a bug in a block)
    OUT_OF_MEMORY = "out_of_memory"  # device or host memory; may pass when the device is less busy
    WORKER_LOST = "worker_lost"  # the process running it died (kill -9, a lost Ray worker or node)
    NON_FINITE_LOSS = "non_finite_loss"  # the loss diverged: deterministic


class Failures(Frozen):
    """The failure policy: a trial that failed for a reason in ``retry_on`` is queued again, up to ``retries`` times.

    The retry is a new trial with the same parameters and the user attributes ``retry_of`` (the
    failed trial's number) and ``attempt``; the failed trial keeps its record, marked ``retried``,
    and no longer counts towards the trial budget (its retry does).
    """

    retries: Annotated[int, Field(strict=True, ge=0)] = 1
    retry_on: tuple[FailureKind, ...] = (FailureKind.CRASH, FailureKind.OUT_OF_MEMORY, FailureKind.WORKER_LOST)
    #: A trial whose worker died (``worker_lost``: a kill, a crash of the machine) is not at fault and does not
    #: spend ``retries``; it is queued again up to this many times (one whose worker dies every time, e.g. killed
    #: by the kernel for memory, stops there).
    lost: Annotated[int, Field(strict=True, ge=0)] = 10

    @field_validator("retry_on")
    @classmethod
    def _deterministic(cls, v: tuple[FailureKind, ...]) -> tuple[FailureKind, ...]:
        if FailureKind.NON_FINITE_LOSS in v:
            raise ValueError("non_finite_loss repeats with the same genotype, recipe and seed: it is never retried")
        return v

    def retries_left(self, failure: str, attempt: int, lost: int = 0) -> bool:
        """Whether a trial that failed with ``failure`` is tried again: ``attempt`` retries were spent before
        it (0: the first run) and ``lost`` earlier runs of it lost their worker (those spend no retry)."""
        if failure not in {k.value for k in self.retry_on}:
            return False
        if failure == FailureKind.WORKER_LOST.value:
            return lost < self.lost
        return attempt < self.retries


class Heartbeat(Frozen):
    """With an RDB ``storage``: a running trial records a heartbeat every ``interval`` seconds, and one silent for
    ``grace`` seconds (default ``2 * interval``) is failed as ``worker_lost`` by the next worker that asks, on any
    machine, and retried by the failure policy (Optuna's RDB heartbeat)."""

    interval: PositiveInt = 60
    grace: PositiveInt | None = None

    @model_validator(mode="after")
    def _longer(self) -> Heartbeat:
        if self.grace is not None and self.grace <= self.interval:
            raise ValueError(f"grace must be longer than interval ({self.interval} s), got {self.grace}")
        return self


#: Recipe and fidelity fields added after studies were first recorded, with their defaults: left out
#: of a study's identity while at those defaults, so that a study started before them still resumes.
_ADDED_LATER = {"aux_weight": 0.4, "drop_path": None, "width": 1.0, "depth": 1.0}


def _without_new_defaults(dump: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dump.items() if not (k in _ADDED_LATER and v == _ADDED_LATER[k])}


ProxyName = Literal["params", "synflow", "naswot", "grad_norm", "snip", "zico"]  # nasx.train.proxies.PROXY_NAMES


class Proxies(Frozen):
    """Zero-cost proxies (``nasx.train.proxies``) scored for every trained trial before training, and how the search uses them.

    ``use``: ``record`` (recorded only, for the report's trust section); ``prefilter`` (draw ``draw``
    feasible new candidates, score them, train only the best ``keep`` by ``rank_by``; the others are
    recorded as ``screened``, told to Optuna as pruned and not counted in the trial budget);
    ``objective`` (``rank_by`` becomes one more objective, maximised, after the study's own).
    Scored on ``batches`` seeded minibatches of ``batch_size`` images of the training split at the
    fidelity's resolution, from the same initial weights the trial is trained from.
    """

    use: Literal["record", "prefilter", "objective"] = "record"
    compute: tuple[ProxyName, ...] = ("params", "synflow", "naswot", "grad_norm", "snip", "zico")
    rank_by: ProxyName = "naswot"
    draw: PositiveInt = 8
    keep: PositiveInt = 2
    batches: PositiveInt = 2
    batch_size: PositiveInt = 64
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> Proxies:
        if len(set(self.compute)) != len(self.compute):
            raise ValueError(f"compute: proxies must be distinct, got {list(self.compute)}")
        if self.use != "record" and self.rank_by not in self.compute:
            raise ValueError(f"rank_by: must be one of compute {list(self.compute)}, got {self.rank_by!r}")
        if self.keep > self.draw:
            raise ValueError(f"keep: must be at most draw ({self.draw}), got {self.keep}")
        return self


class StudyConfig(Frozen):
    """One study: a space searched with a sampler under a budget, every trial recorded in one Optuna study."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    space: str
    data: DataConfig = DataConfig()
    objectives: tuple[Objective, ...] = (Objective.VAL_ACC,)
    constraints: Constraints = Constraints()
    sampler: SamplerConfig = SamplerConfig()
    budget: Budget
    fidelity: Fidelity = Fidelity(epochs=3)
    recipe: str | Recipe = "search"
    early_stopping: EarlyStopping = EarlyStopping()
    baselines: tuple[str, ...] = ()
    #: A finished baselines-only study (config path or name in studies/, e.g. cifar10-classics) whose
    #: hand-designed front this study's reports overlay; None: no overlay.
    overlay: str | None = None
    executor: ExecutorConfig = ExecutorConfig()
    failures: Failures = Failures()
    proxies: Proxies | None = None
    storage: str | None = None  # default: a journal file in the study folder; or an RDB URL
    heartbeat: Heartbeat = Heartbeat()
    seed: int = 0
    device: str | None = None
    _file: str | None = PrivateAttr(default=None)  # the YAML file it was read from (for messages)

    @property
    def source_file(self) -> str | None:
        """The study file this config was read from (None when built in code)."""
        return self._file

    # candidates sampled uniformly at random and trained to full fidelity (never stopped early), for the report's
    # design-space statistics (EDFs, importances need random samples trained equally); they count towards the budget
    census: Annotated[int, Field(strict=True, ge=0)] = 0

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: tuple[Objective, ...]) -> tuple[Objective, ...]:
        if not v or v[0] != Objective.VAL_ACC:
            raise ValueError(f"the first objective must be val_acc, got {[o.value for o in v]}")
        if len(set(v)) != len(v):
            raise ValueError(f"objectives must be distinct, got {[o.value for o in v]}")
        if Objective.LATENCY in v:
            raise ValueError("latency is not measured yet; use macs or params")
        return v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        """An RDB URL SQLAlchemy knows (its dialect; the driver is imported when the study is opened)."""
        if v is None:
            return v
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(v).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"not a database URL SQLAlchemy can use ({text}); e.g. postgresql://user@host/db, or leave it out for "
                "the journal file"
            ) from None
        return v

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from nasx import zoo

        for i, name in enumerate(v):
            if name not in zoo.names():
                close = difflib.get_close_matches(name, zoo.names(), n=3)
                hint = f"did you mean {', '.join(close)}?" if close else "see `nasx zoo`"
                raise ValueError(f"item {i} is not a zoo network, got {name!r}; {hint}")
        return v

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe_preset(cls, v: Any) -> Any:
        """``recipe: {preset: search, batch_size: 32}``: a preset with some fields changed, as in a recipe file."""
        if isinstance(v, dict) and "preset" in v:
            from nasx.train.recipe import preset

            rest = {k: x for k, x in v.items() if k != "preset"}
            if rest:  # a changed preset is not the preset: it must not share its name (run keys, tables)
                rest.setdefault("name", f"{v['preset']}-custom")
            return {**preset(str(v["preset"])).model_dump(), **rest}
        return v

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: str | Recipe) -> str | Recipe:
        if isinstance(v, str):
            load_recipe(v)  # a preset name or an existing file: fail at load time, not at the first trial
        return v

    def resolved_recipe(self) -> Recipe:
        return load_recipe(self.recipe) if isinstance(self.recipe, str) else self.recipe

    @property
    def epochs(self) -> int:
        return self.fidelity.epochs_for(self.resolved_recipe())

    def identity(self) -> dict[str, Any]:
        """What may not change when a study is resumed: space, objectives, fidelity, recipe, data (and a proxy objective)."""
        ident = {
            "space": self.space,
            "objectives": [o.value for o in self.objectives],
            "fidelity": _without_new_defaults(self.fidelity.model_dump(mode="json")),
            "recipe": _without_new_defaults(self.resolved_recipe().model_dump(mode="json")),
            "data": self.data.model_dump(mode="json"),
        }
        if self.proxy_objective is not None:  # only then: studies without one keep their identity
            ident["proxy_objective"] = self.proxy_objective
        return ident

    @property
    def proxy_objective(self) -> str | None:
        """The proxy that is an extra objective (``proxies.use: objective``), or None."""
        return self.proxies.rank_by if self.proxies is not None and self.proxies.use == "objective" else None

    @property
    def directions(self) -> list[str]:
        """The Optuna study's directions: one per objective, then ``maximize`` for a proxy objective."""
        return [o.direction for o in self.objectives] + (["maximize"] if self.proxy_objective else [])

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
        """Read and validate a study file, its design space included, so that a bad file fails before any trial.

        ``overrides``: ``PATH=VALUE`` settings applied on top of the file (the CLI's ``--set``), e.g.
        ``fidelity.epochs=1`` or ``data.source=mini``; VALUE is read as YAML (``[a, b]``, ``{k: v}``,
        ``null``). Raises :class:`StudyError` with one message naming the place: the line and column
        of a YAML syntax error or of a key given twice, the ``--set`` at fault, or the field path of a
        value that breaks a rule.
        """
        path = Path(path)
        data = load_mapping(path, "study config", StudyError)
        for setting in overrides:
            apply_override(data, setting)
        cfg = validated(data, str(path) + (" with --set " + ", ".join(overrides) if overrides else ""))
        cfg._file = str(path)
        from nasx.space.design import load_space

        try:
            load_space(cfg.space)
        except NasxError as exc:
            raise StudyError(f"{path}: space: {exc}") from None
        return cfg


def apply_override(data: dict[str, Any], setting: str) -> None:
    """Set ``data[a][b]... = value`` from ``"a.b...=value"`` (VALUE read as YAML), creating mappings on the way."""
    key, sep, text = setting.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise StudyError(f"--set {setting!r}: expected PATH=VALUE, e.g. fidelity.epochs=1")
    try:
        value = parse_yaml(text) if text.strip() else None
    except YamlProblem as exc:
        raise StudyError(f"--set {setting!r}: the value is not YAML: {exc}") from None
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise StudyError(f"--set {setting!r}: {'.'.join(parts[: i + 1])} is not a mapping (it is {child!r})")
        node = child
    node[parts[-1]] = value


def study_file(study: str) -> Path | None:
    """The config file ``study`` names: a YAML path, or a name in ``studies/``; None when there is none."""
    path = Path(study)
    if not path.is_file() and not study.endswith((".yaml", ".yml")):
        path = Path("studies") / f"{study}.yaml"
    return path if path.is_file() else None


def validated(data: dict[str, Any], where: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise StudyError(f"{where}: {validation_problems(exc)}") from None
    except NasxError as exc:
        raise StudyError(f"{where}: recipe: {exc}") from None
