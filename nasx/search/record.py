"""The trial record: the one place that reads or writes Optuna user attributes.

Every trial of a study carries nasx's record in its user attributes (a flat dict of JSON values,
so journals written by earlier versions read back unchanged). Code outside this module never
spells an attribute name: it reads a :class:`TrialRecord` (:func:`read`) and writes through the
functions below. The study's own attributes (identity, config, provenance, elapsed time, final
runs) are read and written here too.

Role and status are enums whose values are the strings stored in the journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


class Role(StrEnum):
    """What a trial is: a sampled candidate or a zoo baseline."""

    CANDIDATE = "candidate"
    BASELINE = "baseline"


class Status(StrEnum):
    """nasx's state of a trial (richer than Optuna's): stored as ``state``."""

    RUNNING = "running"  # Optuna still has it running (nasx writes its state just before the tell)
    COMPLETE = "complete"  # trained to the study's full fidelity
    STOPPED = "stopped"  # stopped early at a rung
    INFEASIBLE = "infeasible"  # broke a constraint or is not a valid network: nothing trained
    FAILED = "failed"
    DUPLICATE = "duplicate"  # the same genotype as an earlier trial: its result copied
    SCREENED = "screened"  # left out by a zero-cost proxy pre-filter: nothing trained


class Key(StrEnum):
    """The user-attribute names (kept as they were so existing journals read back)."""

    ROLE = "role"
    NAME = "name"
    STATE = "state"
    REASON = "reason"
    FAMILY = "family"
    DIGEST = "digest"
    STRING = "string"
    GENOTYPE = "genotype"
    PARAMS = "params"
    MACS = "macs"
    CURVE = "curve"
    WALL_S = "wall_s"
    DEVICE = "device"
    PROXY_PARAMS = "proxy_params"  # the network trained, when the fidelity scales the genotype down
    PROXY_MACS = "proxy_macs"
    DEVICE_NAME = "device_name"
    CUDA = "cuda"
    CORES = "cores"  # CPU threads a trial trained with (CPU devices)
    GPUS = "gpus"  # GPUs (or a fraction) a trial trained with (CUDA devices)
    DUPLICATE_OF = "duplicate_of"
    WORKER = "worker"
    FAILURE = "failure"
    RETRY_OF = "retry_of"
    RETRIED = "retried"
    ATTEMPT = "attempt"
    LOST = "lost"  # how many runs of it a killed worker took (those spend no retry)
    TRAINING = "training"
    WAITING_FOR = "waiting_for"
    STOPPED_AT = "stopped_at"
    STALE = "stale"
    CENSUS = "census"


_KNOWN = frozenset(k.value for k in Key)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as nasx recorded it (read-only). ``extra``: attributes this module does not know (other tools')."""

    number: int
    optuna_state: TrialState
    role: Role | None
    status: Status
    values: tuple[float, ...] | None
    name: str | None = None
    reason: str | None = None
    family: str | None = None
    digest: str | None = None
    string: str | None = None
    genotype: dict[str, Any] | None = None
    params: int | None = None
    macs: int | None = None
    curve: tuple[float, ...] = ()
    wall_s: float | None = None
    device: str | None = None
    proxy_params: int | None = None
    proxy_macs: int | None = None
    device_name: str | None = None
    cuda: str | None = None
    cores: float | None = None
    gpus: float | None = None
    duplicate_of: int | None = None
    worker: str | None = None
    failure: str | None = None
    retry_of: int | None = None
    retried: bool = False
    attempt: int = 0
    lost: int = 0
    training: bool = False
    waiting_for: int | None = None
    stopped_at: int | None = None
    stale: bool = False
    census: bool = False
    distribution_params: Mapping[str, Any] = field(default_factory=dict)  # the parameters Optuna drew
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_candidate(self) -> bool:
        return self.role is Role.CANDIDATE

    @property
    def is_baseline(self) -> bool:
        return self.role is Role.BASELINE

    @property
    def finished(self) -> bool:
        return self.optuna_state.is_finished()

    @property
    def running(self) -> bool:
        return self.optuna_state == TrialState.RUNNING

    @property
    def val_acc(self) -> float | None:
        """The validation accuracy told to Optuna, else the last epoch's."""
        if self.values:
            return float(self.values[0])
        return float(self.curve[-1]) if self.curve else None

    @property
    def evaluated(self) -> bool:
        """A finished candidate that uses up one trial of the budget: any state but infeasible or screened (by a proxy
        pre-filter), unless failed and retried."""
        return (
            self.finished
            and self.is_candidate
            and self.digest is not None
            and self.status not in (Status.INFEASIBLE, Status.SCREENED)
            and not self.retried
        )

    @property
    def full_fidelity(self) -> bool:
        """Trained to the study's full fidelity in this very trial (not a copy of another's result)."""
        return self.status == Status.COMPLETE and self.optuna_state == TrialState.COMPLETE and bool(self.values)

    def row(self) -> dict[str, Any]:
        """The flat dict the reports, the trial table and ``nasx status`` read."""
        return {
            "number": self.number,
            "role": None if self.role is None else self.role.value,
            "name": self.name,
            "state": self.status.value,
            "reason": self.reason,
            "family": self.family,
            "digest": self.digest,
            "string": self.string,
            "params": self.params,
            "macs": self.macs,
            "proxy_params": self.proxy_params,
            "proxy_macs": self.proxy_macs,
            "val_acc": self.val_acc,
            "epochs": len(self.curve),
            "curve": list(self.curve),
            "wall_s": self.wall_s,
            "device": self.device,
            "device_name": self.device_name,
            "cuda": self.cuda,
            "cores": self.cores,
            "gpus": self.gpus,
            "duplicate_of": self.duplicate_of,
            "worker": self.worker,
            "failure": self.failure,
            "retry_of": self.retry_of,
            "retried": self.retried,
            "census": self.census,
        }


def _status(state: TrialState, stored: Any) -> Status:
    if state == TrialState.RUNNING:
        return Status.RUNNING
    if stored is None:
        return {TrialState.COMPLETE: Status.COMPLETE, TrialState.PRUNED: Status.STOPPED}.get(state, Status.FAILED)
    try:
        return Status(stored)
    except ValueError:
        return Status.FAILED


def _role(v: Any) -> Role | None:
    try:
        return None if v is None else Role(v)
    except ValueError:
        return None


def read(t: FrozenTrial | optuna.Trial) -> TrialRecord:
    """The record of a stored trial, or of a live trial handle (running)."""
    a = t.user_attrs
    state = getattr(t, "state", TrialState.RUNNING)
    values = getattr(t, "values", None)
    return TrialRecord(
        number=t.number,
        optuna_state=state,
        role=_role(a.get(Key.ROLE)),
        status=_status(state, a.get(Key.STATE)),
        values=tuple(float(v) for v in values) if values else None,
        name=a.get(Key.NAME),
        reason=a.get(Key.REASON),
        family=a.get(Key.FAMILY),
        digest=a.get(Key.DIGEST),
        string=a.get(Key.STRING),
        genotype=a.get(Key.GENOTYPE),
        params=_int(a.get(Key.PARAMS)),
        macs=_int(a.get(Key.MACS)),
        curve=tuple(float(x) for x in (a.get(Key.CURVE) or ())),
        wall_s=a.get(Key.WALL_S),
        device=a.get(Key.DEVICE),
        proxy_params=_int(a.get(Key.PROXY_PARAMS)),
        proxy_macs=_int(a.get(Key.PROXY_MACS)),
        device_name=a.get(Key.DEVICE_NAME),
        cuda=a.get(Key.CUDA),
        cores=a.get(Key.CORES),
        gpus=a.get(Key.GPUS),
        duplicate_of=_int(a.get(Key.DUPLICATE_OF)),
        worker=a.get(Key.WORKER),
        failure=a.get(Key.FAILURE),
        retry_of=_int(a.get(Key.RETRY_OF)),
        retried=bool(a.get(Key.RETRIED)),
        attempt=int(a.get(Key.ATTEMPT) or 0),
        lost=int(a.get(Key.LOST) or 0),
        training=bool(a.get(Key.TRAINING)),
        waiting_for=_int(a.get(Key.WAITING_FOR)),
        stopped_at=_int(a.get(Key.STOPPED_AT)),
        stale=bool(a.get(Key.STALE)),
        census=bool(a.get(Key.CENSUS)),
        distribution_params=dict(t.params),
        extra={k: v for k, v in a.items() if k not in _KNOWN},
    )


# Records of finished trials, by the identity of the stored FrozenTrial they were read from. Optuna never
# changes a finished trial, and its journal and in-memory storages replace a trial's object on every write,
# so an object seen again is the same record: each ask reads every trial several times (census, duplicates,
# baselines), and this keeps that flat as a study grows. Entries hold their object, so an id is not reused.
_FINISHED: dict[int, tuple[FrozenTrial, TrialRecord]] = {}
_FINISHED_MAX = 100_000  # storages that return new objects on every read (RDB) only churn it


def records(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[TrialRecord]:
    """Every trial's record (``states``: only those), in trial order."""
    out = []
    for t in study.get_trials(deepcopy=False, states=states):
        if not t.state.is_finished():
            out.append(read(t))
            continue
        hit = _FINISHED.get(id(t))
        if hit is None or hit[0] is not t:
            if len(_FINISHED) >= _FINISHED_MAX:
                _FINISHED.clear()
            hit = _FINISHED[id(t)] = (t, read(t))
        out.append(hit[1])
    return out


# ---- writers: a live trial handle (optuna.Trial) -------------------------------------------------


def _set(trial: optuna.Trial, **attrs: Any) -> None:
    for k, v in attrs.items():
        trial.set_user_attr(Key(k).value, v)


def mark(trial: optuna.Trial, role: Role, worker: str, *, census: bool = False) -> None:
    """A new trial's role and the worker running it."""
    _set(trial, role=Role(role).value, worker=worker)
    if census:
        _set(trial, census=True)


def write_genotype(
    trial: optuna.Trial,
    *,
    role: Role,
    name: str | None,
    digest: str,
    string: str,
    genotype: dict[str, Any],
    family: str,
    params: int,
    macs: int,
    proxy_params: int | None = None,
    proxy_macs: int | None = None,
) -> None:
    if proxy_params is not None and proxy_macs is not None:
        _set(trial, proxy_params=int(proxy_params), proxy_macs=int(proxy_macs))
    _set(
        trial,
        role=Role(role).value,
        name=name,
        digest=digest,
        string=string,
        genotype=genotype,
        family=family,
        params=int(params),
        macs=int(macs),
    )


def write_curve(trial: optuna.Trial, curve: list[float]) -> None:
    _set(trial, curve=[float(x) for x in curve])


def write_run(
    trial: optuna.Trial,
    wall_s: float,
    device: str | None = None,
    *,
    cores: float | None = None,
    gpus: float | None = None,
    device_name: str | None = None,
    cuda: str | None = None,
) -> None:
    """Wall seconds of training, the device it ran on (``cpu``, ``cuda:0``, ...) and the CPU threads or GPUs it
    held: what the search cost (:func:`nasx.results.compute_cost`)."""
    _set(trial, wall_s=float(wall_s))
    if device:
        _set(trial, device=device)
    if cores is not None:
        _set(trial, cores=float(cores))
    if gpus is not None:
        _set(trial, gpus=float(gpus))
    if device_name:
        _set(trial, device_name=device_name)
    if cuda:
        _set(trial, cuda=cuda)


def write_status(trial: optuna.Trial, status: Status, reason: str | None = None) -> None:
    _set(trial, state=Status(status).value)
    if reason:
        _set(trial, reason=reason)


def write_stopped_at(trial: optuna.Trial, epoch: int) -> None:
    _set(trial, stopped_at=int(epoch))


def write_failure(trial: optuna.Trial, kind: str) -> None:
    _set(trial, failure=str(kind))


def mark_retried(trial: optuna.Trial) -> None:
    _set(trial, retried=True)


def mark_stale(trial: optuna.Trial, reason: str) -> None:
    _set(trial, state=Status.FAILED.value, stale=True, reason=reason)


def write_duplicate(trial: optuna.Trial, of: int, curve: tuple[float, ...] | list[float]) -> None:
    _set(trial, duplicate_of=int(of), curve=[float(x) for x in curve])


def write_waiting_for(trial: optuna.Trial, number: int) -> None:
    _set(trial, waiting_for=int(number))


def mark_training(trial: optuna.Trial) -> None:
    _set(trial, training=True)


def write_retry(trial: optuna.Trial, retry_of: int, attempt: int, lost: int = 0) -> None:
    _set(trial, retry_of=int(retry_of), attempt=int(attempt), lost=int(lost))


def retry_attrs(retry_of: int, attempt: int, lost: int = 0) -> dict[str, Any]:
    """The user attributes of a queued retry (``study.enqueue_trial(..., user_attrs=...)``)."""
    return {Key.RETRY_OF.value: int(retry_of), Key.ATTEMPT.value: int(attempt), Key.LOST.value: int(lost)}


def write_extra(trial: optuna.Trial, key: str, value: Any) -> None:
    """An attribute of another tool (e.g. proxy scores): never one of nasx's own names."""
    if key in _KNOWN:
        raise ValueError(f"user attribute {key!r} is nasx's own: write it through its function in nasx.search.record")
    trial.set_user_attr(key, value)


# ---- the study's own attributes -------------------------------------------------------------------

IDENTITY = "identity"
CONFIG = "config"
VERSIONS = "versions"
ELAPSED_S = "elapsed_s"
WORKERS_STARTED = "workers_started"
PROVENANCE = "provenance"
RUNS = "runs"
SEGMENTS = "segments"
FINAL_PREFIX = "final:"


def study_attr(study: optuna.Study, key: str, default: Any = None) -> Any:
    return study.user_attrs.get(key, default)


def set_study_attr(study: optuna.Study, key: str, value: Any) -> None:
    study.set_user_attr(key, value)


def elapsed(study: optuna.Study) -> float:
    return float(study.user_attrs.get(ELAPSED_S, 0.0))


def add_elapsed(study: optuna.Study, seconds: float) -> None:
    study.set_user_attr(ELAPSED_S, elapsed(study) + seconds)


def workers_started(study: optuna.Study) -> int:
    return int(study.user_attrs.get(WORKERS_STARTED, 0))


def final_runs(study: optuna.Study) -> list[dict[str, Any]]:
    """Every recorded final run (the study's ``final:*`` attributes), in key order."""
    return [v for k, v in sorted(study.user_attrs.items()) if k.startswith(FINAL_PREFIX)]


def has_final(study: optuna.Study, key: str) -> bool:
    return key in study.user_attrs


def write_final(study: optuna.Study, key: str, entry: dict[str, Any]) -> None:
    if not key.startswith(FINAL_PREFIX):
        raise ValueError(f"a final run's key starts with {FINAL_PREFIX!r}, got {key!r}")
    study.set_user_attr(key, entry)
