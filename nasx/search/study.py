"""One Optuna study per nasx study: storage, identity checks, workers, stale trials and retries, the trial record.

The study folder (``runs/<name>/`` by default) holds the journal (the default storage: a file,
nothing to start), ``ask.lock`` and ``workers/``. With an RDB URL (PostgreSQL, for many machines)
the storage lives elsewhere and the folder holds only the locks.

**Workers.** Every search process (``nasx search``, a ``run_search`` call) is a *worker*: its
identity is ``<host>-<pid>-<nonce>`` (the nonce tells a reused pid from the process that had it),
it holds ``workers/<identity>.lock`` flock'd for its lifetime (the kernel drops the lock when the
process dies, however it dies), and it records its identity on every trial it runs (user attribute
``worker``). Any number of workers may run one study at once. On one machine they guarantee:

- **Exact stale detection.** A trial still running whose worker's lock can be taken (the process
  is gone) is stale: it is marked failed (``failure: worker_lost``) and, by the failure policy, its
  parameters are queued again. Trials of live workers are never touched. With journal storage a
  running trial with no worker recorded is stale too (its worker died between the ask and the
  mark, which happen under ``ask.lock``). Trials of workers on other machines are left alone.
- **The budget is shared, never exceeded.** Stale recovery, the budget check (finished
  evaluations plus candidates running on live workers) and the ask happen in one critical section
  under ``ask.lock`` (a short flock), so N workers together evaluate exactly ``budget.trials``
  candidates. A worker that finds the budget spent while other live workers of this machine still
  run candidates waits for them (one may fail and be retried) before it returns.
- **No work is duplicated.** The candidate's genotype is sampled and its digest recorded inside the
  same critical section, so a worker sees every genotype being trained on this machine. A candidate
  whose genotype was evaluated before is recorded as a duplicate (its result copied, nothing
  trained). One whose genotype is being trained right now by a live worker waits for that trial
  (user attribute ``waiting_for``) and is then settled the same way: a duplicate of it when it
  finished complete, stopped or with a non-finite loss, or trained when it failed in a way that
  may not repeat. Baselines are trained once per study, by whichever worker asks first.
- **Failure policy** (``failures`` in the study config): a trial that failed by a crash or out of
  memory is queued again up to ``failures.retries`` times (``retry_of``, ``attempt``); one whose
  worker died (``worker_lost``: a kill is not the trial's fault) spends no retry and is queued again
  up to ``failures.lost`` times (``lost``); a non-finite loss is final. The failed trial keeps its
  record, marked ``retried``, and counts towards the budget no more. A baseline whose retries ran
  out is tried once more by each new search (see ``nasx.search.trial.pending_baselines``).
- The n-th worker ever started on a study samples with a seed derived from ``(sampler.seed, n)``
  (the first uses ``sampler.seed`` itself), so a second or resumed worker does not replay the
  draws of the first.

Across machines (an RDB URL) the per-machine guarantees hold on each machine. Between machines a
running trial records Optuna's heartbeat (``heartbeat`` in the study config); one whose heartbeat
is older than the grace period is failed as ``worker_lost`` by the next worker that asks, on any
machine, and retried by the policy. The budget may be overshot by at most one trial per worker of
another machine asking at the same moment.

``NASX_HOST`` names this machine in worker identities instead of its host name (machines or
containers that share a host name must set it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasx.search import record as rec
from nasx.search.config import FailureKind, Failures, StudyConfig, StudyError
from nasx.search.proxies import proxy_values
from nasx.search.record import Status, TrialRecord
from nasx.search.samplers import make_sampler
from nasx.train.run import versions

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# nasx asks and tells itself and runs the heartbeat thread (Heartbeats): Optuna warns on every ask otherwise
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def study_dir(cfg: StudyConfig, root: Path | None = None) -> Path:
    return (root or Path("runs")) / cfg.name


class FlockJournalLock:
    """The journal's write lock as a kernel ``flock`` on ``journal.log.flock``; it repairs a torn tail on taking it.

    Optuna's own journal locks are files that a killed writer leaves behind: the next writer waits
    30 s and then breaks the lock, which would also break one held by a live but slow writer. The
    kernel drops a flock the moment its holder dies, so a ``kill -9`` in the middle of an append
    costs nothing and a live writer's lock is never broken. (Optuna's ``BaseJournalFileLock``
    interface: ``acquire`` and ``release``.)

    A writer killed in the middle of an append (or a full disk) leaves a partial last line. Nobody
    writes while this lock is held, so on taking it a partial last line is moved aside to
    ``journal.log.damaged`` before the next append, which would otherwise glue a valid record to the
    fragment and make the whole journal unreadable (Optuna issue #5138); see :func:`repair_journal`.
    """

    def __init__(self, path: Path, journal: Path | None = None) -> None:
        self.path = path
        self.journal = journal
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        if self.journal is not None:
            try:
                repair_journal(self.journal, full=False)
            except BaseException:
                self.release()
                raise
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the lock

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "journal": self.journal, "_fd": None}


log = logging.getLogger("nasx.search")

#: Damaged journal records are moved to this file beside ``journal.log`` (never deleted).
DAMAGED_SUFFIX = ".damaged"


def _set_aside(journal: Path, pieces: list[bytes]) -> Path:
    aside = journal.with_name(journal.name + DAMAGED_SUFFIX)
    with open(aside, "ab") as f:
        for piece in pieces:
            f.write(piece if piece.endswith(b"\n") else piece + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return aside


def _last_newline_end(f: Any, size: int) -> int:
    """The offset just after the last ``\\n`` of the open file ``f`` of ``size`` bytes (0 when there is none)."""
    end = size
    while end > 0:
        begin = max(0, end - 65536)
        f.seek(begin)
        i = f.read(end - begin).rfind(b"\n")
        if i >= 0:
            return begin + i + 1
        end = begin
    return 0


def repair_journal(journal: Path, *, full: bool) -> list[str]:
    """Make ``journal`` (an Optuna journal file) readable again; returns what was done, each also logged as a warning.

    Call it holding the journal lock (so no append is under way). A partial last line (a writer
    killed mid-append, a full disk) is cut off; with ``full``, every line is also parsed and any
    invalid one in the middle (left when a version without this repair appended after a fragment)
    is taken out. What is removed is appended to ``journal.log.damaged``; the rest is kept as it was.
    """
    try:
        size = journal.stat().st_size
    except FileNotFoundError:
        return []
    notes = []
    if size:
        with open(journal, "rb") as f:
            f.seek(size - 1)
            torn = f.read(1) != b"\n"
            if torn:
                start = _last_newline_end(f, size)
                f.seek(start)
                fragment = f.read()
        if torn:
            aside = _set_aside(journal, [fragment])
            os.truncate(journal, start)
            notes.append(
                f"{journal}: the last record was cut short ({len(fragment)} bytes: a write interrupted by a kill or a "
                f"full disk); moved it to {aside.name} and kept the records before it"
            )
    if full and size:
        lines = journal.read_bytes().splitlines(keepends=True)
        bad = []
        for i, line in enumerate(lines):
            try:
                json.loads(line)
            except ValueError:
                bad.append(i)
        if bad:
            aside = _set_aside(journal, [lines[i] for i in bad])
            tmp = journal.with_name(journal.name + ".repair")
            with open(tmp, "wb") as f:
                skip = set(bad)
                f.writelines(line for i, line in enumerate(lines) if i not in skip)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, journal)
            shown = ", ".join(str(i + 1) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
            notes.append(
                f"{journal}: {len(bad)} damaged record(s) in the middle (line {shown}) moved to {aside.name}; "
                f"the other {len(lines) - len(bad)} records are kept"
            )
    for note in notes:
        log.warning("%s", note)
    return notes


def storage_for(cfg: StudyConfig, folder: Path) -> optuna.storages.BaseStorage:
    """The study's storage: an RDB (with Optuna's heartbeat, see ``StudyConfig.heartbeat``) or the journal in ``folder``.

    The journal is checked whole (and repaired, see :func:`repair_journal`) under its lock before it is read.
    """
    if cfg.storage:
        return rdb_storage(cfg)
    from optuna.storages.journal import JournalFileBackend

    folder.mkdir(parents=True, exist_ok=True)
    journal = folder / "journal.log"
    lock = FlockJournalLock(folder / "journal.log.flock", journal)
    lock.acquire()  # the tail is checked on every acquire; the whole file once per opening
    try:
        repair_journal(journal, full=True)
    finally:
        lock.release()
    from nasx.search.batch import BatchingJournalStorage

    return BatchingJournalStorage(JournalFileBackend(str(journal), lock_obj=lock))  # type: ignore[arg-type]


def rdb_storage(cfg: StudyConfig) -> optuna.storages.RDBStorage:
    """``cfg.storage`` opened with Optuna's heartbeat; a URL that cannot be used is a StudyError naming ``storage``.

    Workers starting together on a fresh database race to create Optuna's tables: one that loses
    ("already exists") opens it again.
    """
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                cfg.storage, heartbeat_interval=cfg.heartbeat.interval, grace_period=cfg.heartbeat.grace
            )
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            if "already exists" in str(exc) and attempt < 4:
                time.sleep(0.2 * (attempt + 1))
                continue
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StudyError(f"storage: cannot open {_hide_password(cfg.storage)}: {first}") from None
    raise AssertionError("unreachable")


def _hide_password(url: str | None) -> str:
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url or "")


_HELD: set[int] = set()  # worker lock fds of this process: a forked child closes them so it cannot keep a lock alive


def _close_held_in_child() -> None:
    for fd in list(_HELD):
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)

Liveness = Literal["live", "dead", "elsewhere"]


class Worker:
    """This process as a worker of the study in ``folder``: a context manager holding its lock file.

    ``journal``: the study's storage is the journal file (one machine), which makes a running trial
    with no worker recorded stale; with an RDB storage such a trial may be another machine's.
    """

    def __init__(self, folder: Path, *, journal: bool = True) -> None:
        self.folder, self.journal = folder, journal
        self.host = re.sub(r"[^A-Za-z0-9_.-]", "_", os.environ.get("NASX_HOST") or socket.gethostname()) or "host"
        self.pid = os.getpid()
        self.id = f"{self.host}-{self.pid}-{secrets.token_hex(3)}"
        self._fd: int | None = None
        self._turns = 0

    @property
    def lock_dir(self) -> Path:
        return self.folder / "workers"

    def __enter__(self) -> Worker:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        path = self.lock_dir / f"{self.id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: nobody else takes it
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": self.pid, "started": time.time()}).encode())
        self._fd = fd
        _HELD.add(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        _HELD.discard(self._fd)
        (self.lock_dir / f"{self.id}.lock").unlink(missing_ok=True)  # still locked: nobody mistakes it for a dead one
        os.close(self._fd)  # releases the lock
        self._fd = None

    def __getstate__(self) -> dict[str, Any]:  # Ray Tune may pickle the searcher that holds the context
        return {**self.__dict__, "_fd": None, "_turns": 0}

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold ``ask.lock``: the critical section of recovery, budget check, ask and screening (re-entrant)."""
        if self._turns:
            self._turns += 1
            try:
                yield
            finally:
                self._turns -= 1
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "ask.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._turns = 1
            yield
        finally:
            self._turns = 0
            os.close(fd)

    def liveness(self, other: str | None) -> Liveness:
        """Whether the worker ``other`` (a trial's ``worker`` attribute) is running, as far as this machine can tell."""
        if other == self.id:
            return "live"
        if other is None:
            return "dead" if self.journal else "elsewhere"
        if not other.startswith(f"{self.host}-"):
            return "elsewhere"
        path = self.lock_dir / f"{other}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return "dead"  # a worker removes its lock file when it exits, or another found it dead
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return "live"
        path.unlink(missing_ok=True)
        os.close(fd)
        return "dead"


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def worker_seed(seed: int, n: int) -> int:
    """The sampler seed of the ``n``-th worker started on a study (0: the first, which uses ``seed`` itself)."""
    if n == 0:
        return seed
    return int(hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()[:8], 16)


def open_study(
    cfg: StudyConfig,
    folder: Path,
    space_digest: str,
    worker: Worker | None = None,
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Create the study, or load it and check that space, objectives, fidelity, recipe and data are unchanged.

    With ``worker``, done under its ``ask.lock``, and the sampler is seeded for the worker's place
    among the workers ever started on the study (see :func:`worker_seed`). ``storage``: one already
    opened (default: :func:`storage_for`).
    """
    directions = cfg.directions
    make_sampler(cfg.sampler, len(directions))  # refused here, before the study's identity is written
    with worker.turn() if worker is not None else _nothing():
        storage = storage or storage_for(cfg, folder)
        study = optuna.create_study(study_name=cfg.name, storage=storage, directions=directions, load_if_exists=True)
        old = rec.study_attr(study, rec.IDENTITY)
        identity = {**cfg.identity(), "space_digest": space_digest}
        if old is None:
            rec.set_study_attr(study, rec.IDENTITY, identity)
            rec.set_study_attr(study, rec.CONFIG, cfg.model_dump(mode="json"))
        elif old != identity:
            changes = "; ".join(_diff(old, identity))
            raise StudyError(
                f"study {cfg.name!r} in {folder} was started with another setup ({changes}); "
                "give the changed study a new name, or delete the old folder"
            )
        rec.set_study_attr(study, rec.VERSIONS, versions())  # of the latest search run, for the report
        n = rec.workers_started(study)
        if worker is not None:
            rec.set_study_attr(study, rec.WORKERS_STARTED, n + 1)
        seed = worker_seed(cfg.sampler.seed, n)
        study.sampler = make_sampler(cfg.sampler.model_copy(update={"seed": seed}), len(directions))
        return study


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def retry_or_not(
    study: optuna.Study, trial: optuna.Trial, failure: str, policy: Failures, params: dict[str, Any] | None = None
) -> bool:
    """Before a failed ``trial`` is told: record ``failure`` and, when the policy allows, queue it again.

    A candidate is re-queued with its parameters (``params``, by default those it drew; ``retry_of``,
    ``attempt``, ``lost``); a baseline is asked again by name (see ``pending_baselines``). A
    ``worker_lost`` failure spends no retry (``attempt`` stays; ``lost`` counts such runs, up to
    ``policy.lost``). Returns whether it will be retried.
    """
    r = rec.read(trial)
    params = trial.params if params is None else params
    rec.write_failure(trial, failure)
    if r.retried:  # queued already by a worker that died before telling
        return True
    if not policy.retries_left(failure, r.attempt, r.lost) or r.role is None:
        return False
    if r.is_candidate and not params:
        return False  # died before drawing its parameters: nothing was evaluated, nothing to repeat
    rec.mark_retried(trial)
    if r.is_candidate:
        if failure == FailureKind.WORKER_LOST.value:  # not the trial's fault: spends no retry
            again = rec.retry_attrs(trial.number, r.attempt, r.lost + 1)
        else:
            again = rec.retry_attrs(trial.number, r.attempt + 1, r.lost)
        study.enqueue_trial(params, user_attrs=again)
    return True


def recover_stale(study: optuna.Study, worker: Worker, policy: Failures | None = None) -> list[int]:
    """Running trials whose worker is dead (see :class:`Worker`), or, with an RDB storage, whose heartbeat is
    stale: mark them failed (``worker_lost``) and retry them by ``policy``.

    Call it under ``worker.turn()``. ``policy``: the study's ``failures`` (default: one retry).
    """
    policy = policy or Failures()
    stale = []
    silent = set(heartbeat_stale(study))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = rec.read(t).worker
        where = worker.liveness(who)
        by_heartbeat = where == "elsewhere" and t._trial_id in silent  # a live worker of this machine is never failed
        if where != "dead" and not by_heartbeat:
            continue
        handle = optuna.trial.Trial(study, t._trial_id)
        why = "stopped sending its heartbeat" if by_heartbeat else "stopped"
        try:
            rec.mark_stale(handle, f"the search process running it ({who or 'unknown'}) {why} (crash or kill)")
            queued = t.system_attrs.get("fixed_params") or {}  # a retry that died before it drew its queued parameters
            retry_or_not(study, handle, FailureKind.WORKER_LOST.value, policy, {**queued, **t.params})
            study.tell(t.number, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # a worker of another machine recovered it first
        stale.append(t.number)
    return stale


def heartbeat_stale(study: optuna.Study) -> list[int]:
    """Ids of running trials whose heartbeat is older than the grace period (an RDB storage with a heartbeat; else none).

    Optuna's ``fail_stale_trials`` would fail them before nasx could record why and queue the retry
    (a finished trial takes no more attributes), so the stale ids are read the way it reads them.
    """
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    return list(storage._get_stale_trial_ids(study._study_id))


class Heartbeats:
    """This worker's heartbeat (RDB storage with a heartbeat; otherwise it does nothing): a thread that records
    Optuna's heartbeat every ``heartbeat.interval`` seconds for each trial :meth:`add`-ed, until it finishes.

    One thread for the worker, not one per trial, so trials held by the Ray executor's driver or waiting
    for a twin beat as well as the one training; the first beat is recorded at once (a worker that
    dies before its first interval is found too).
    """

    def __init__(self, study: optuna.Study) -> None:
        from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

        storage = study._storage
        self.storage = storage if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage) else None
        self.ids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeats:
        if self.storage is not None:
            self._thread = threading.Thread(target=self._run, name="nasx-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def add(self, trial_id: int) -> None:
        if self.storage is None:
            return
        self.storage.record_heartbeat(trial_id)
        self.ids.add(trial_id)

    def _run(self) -> None:
        assert self.storage is not None
        interval = self.storage.get_heartbeat_interval() or 60
        while not self._stop.wait(interval):
            for trial_id in list(self.ids):
                try:
                    if self.storage.get_trial(trial_id).state.is_finished():  # type: ignore[attr-defined]
                        self.ids.discard(trial_id)
                    else:
                        self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # the database unreachable for a moment: beat again next interval
                    log.warning(
                        "heartbeat of trial id %s not recorded: %s", trial_id, str(exc).splitlines()[0] if str(exc) else exc
                    )

    def __getstate__(self) -> dict[str, Any]:  # Ray Tune may pickle the searcher that holds the context
        return {"storage": None, "ids": set(), "_stop": None, "_thread": None}


def evaluated(t: FrozenTrial | TrialRecord) -> bool:
    """A finished candidate that uses up one trial of the budget: any state but infeasible, unless failed and retried."""
    return (t if isinstance(t, TrialRecord) else rec.read(t)).evaluated


@dataclass(frozen=True)
class Census:
    """The trial budget as an ask sees it (taken under ``ask.lock``, after stale recovery)."""

    evaluated: int  # finished candidates that count (see :func:`evaluated`)
    running: int  # candidates running on live workers, on this machine or elsewhere (this worker's included)
    running_here: int  # of those, on live workers of this machine (this worker's included)
    infeasible: int


_RUNNING, _WAITING = TrialState.RUNNING, TrialState.WAITING  # looked up once: these loops run over every trial


def census(study: optuna.Study, worker: Worker) -> Census:
    done = running = here = infeasible = 0
    for r in rec.records(study):
        if not r.is_candidate:
            continue
        if r.running:
            where = worker.liveness(r.worker)
            running += where != "dead"
            here += where == "live"
        elif r.evaluated:
            done += 1
        elif r.finished and r.status == Status.INFEASIBLE:
            infeasible += 1
    return Census(done, running, here, infeasible)


@dataclass(frozen=True)
class Progress:
    """Counts over the study's finished trials, for the budget and the live view."""

    trials: int  # finished candidates that were evaluated (see :func:`evaluated`): the trial budget
    by_state: dict[str, int]  # finished candidates by state; failed ones queued again are "retried"
    baselines: int
    best_acc: float | None
    front: int  # size of the study's front (nasx.results.front: candidates at full fidelity, duplicates collapsed)
    elapsed: float  # wall seconds spent in searches of this study, across runs
    val_images: int | None = None  # the validation split's size: the n of every search accuracy (None: not recorded)


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if rec.read(t).is_candidate]


def study_front(study: optuna.Study, rows: list[dict[str, Any]] | None = None) -> list[int]:
    """The study's front (trial numbers, most accurate first): :func:`nasx.results.front` on its objectives."""
    from nasx.results import front

    names = [o.value for o in study_objectives(study)]
    return front(trial_rows(study) if rows is None else rows, names[1:])


def study_objectives(study: optuna.Study) -> list[Any]:
    """The objectives the study was created with (its stored identity), val_acc first."""
    from nasx.search.config import Objective

    identity = rec.study_attr(study, rec.IDENTITY) or {}
    names = identity.get("objectives") or ["val_acc", "macs"][: len(study.directions)]
    return [Objective(n) for n in names]


def progress(study: optuna.Study) -> Progress:
    records = [r for r in rec.records(study) if r.finished]
    cand = [r for r in records if r.is_candidate]
    by_state: dict[str, int] = {}
    for r in cand:
        s = "retried" if r.retried else r.status.value
        by_state[s] = by_state.get(s, 0) + 1
    accs = [r.values[0] for r in cand if r.full_fidelity and r.values]
    return Progress(
        trials=sum(1 for r in cand if r.evaluated),
        by_state=by_state,
        baselines=sum(1 for r in records if r.is_baseline),
        best_acc=max(accs) if accs else None,
        front=len(study_front(study)),
        elapsed=rec.elapsed(study),
        val_images=(rec.study_attr(study, rec.PROVENANCE) or {}).get("val_images"),
    )


def infeasible_cap(trials: int | None) -> int:
    """How many infeasible draws a search tolerates before it stops (a space that rarely meets its constraints)."""
    return max(200, 20 * (trials or 0))


def add_elapsed(study: optuna.Study, seconds: float) -> None:
    rec.add_elapsed(study, seconds)


def find_duplicate(study: optuna.Study, digest: str, exclude: int) -> TrialRecord | None:
    """A finished trial of the same genotype whose result would repeat (same fidelity: the study's identity fixes it)."""
    for r in rec.records(study):
        same = r.number != exclude and r.finished and r.digest == digest
        repeatable = r.status in (Status.COMPLETE, Status.STOPPED) or r.failure == FailureKind.NON_FINITE_LOSS.value
        if same and repeatable:  # a crash or out-of-memory may not happen again: those are trained again
            return r
    return None


def running_twin(study: optuna.Study, digest: str, exclude: int, worker: Worker) -> TrialRecord | None:
    """A trial of the same genotype that a worker not known dead is training right now (this worker included)."""
    for r in rec.records(study, states=(TrialState.RUNNING,)):
        if r.number != exclude and r.digest == digest and r.training and worker.liveness(r.worker) != "dead":
            return r
    return None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per trial (:meth:`TrialRecord.row`, plus the proxy scores): the record the reports and ``nasx status``
    read. A trial Optuna still has running is ``running``, whatever nasx's state attribute says (it is written just
    before the tell; a worker killed in between leaves it running).
    """
    return [{**r.row(), "proxies": proxy_values(dict(r.extra))} for r in rec.records(study)]


MIN_IMPORTANCE_TRIALS = 4


def census_set(study: optuna.Study, sampler_kind: str) -> tuple[dict[int, float], str]:
    """The trials the design-space statistics may use, and what they are: ``{trial number: val_acc}`` and a note.

    EDFs and importances assume models sampled at random and trained equally (Radosavovic et al.
    2019). So they use, in order: the study's random census (``census`` candidates, drawn uniformly
    and trained to full fidelity; a duplicate counts with its twin's full-fidelity result); else, in
    a random-sampler study, every distinct candidate at the epoch all of them reached (the first rung
    under early stopping); else nothing (a model-based sampler's survivors are not a random sample).
    """
    records = [r for r in rec.records(study) if r.is_candidate and r.finished and not r.retried]
    census = [r for r in records if r.census and r.status in (Status.COMPLETE, Status.DUPLICATE)]
    if census:
        done = {r.number: r.values[0] for r in census if r.values}
        lost = len(census) - len(done)
        extra = f"; {lost} left out (a duplicate of a trial stopped early)" if lost else ""
        return (
            done,
            f"the study's random census: {len(done)} candidates drawn uniformly at random, each trained to full fidelity{extra}",
        )
    if sampler_kind != "random":
        return {}, (
            f"not computed: the study's sampler ({sampler_kind}) is model-based and early stopping keeps survivors, so its "
            "trials are not a random sample trained equally; add `census: N` to the study, or run a random-sampler study"
        )
    seen: set[str] = set()
    distinct = []
    for r in records:
        if r.status in (Status.COMPLETE, Status.STOPPED) and r.curve and r.digest not in seen:
            seen.add(r.digest or "")
            distinct.append(r)
    if not distinct:
        return {}, "not computed: no random candidate has trained yet"
    epoch = min(len(r.curve) for r in distinct)
    failed = sum(1 for r in records if r.status == Status.FAILED)
    extra = f"; {failed} failed left out" if failed else ""
    return {r.number: r.curve[epoch - 1] for r in distinct}, (
        f"all {len(distinct)} distinct candidates of this random-sampler study, at epoch {epoch} (which every one reached){extra}"
    )


def importances(study: optuna.Study, accuracy: dict[int, float] | None = None, what: str = "") -> tuple[dict[str, float], str]:
    """fANOVA importance of each design-space parameter for validation accuracy, and a note.

    ``accuracy``: the trials to use and their accuracy (:func:`census_set`; default: the complete
    candidates at full fidelity), over the parameters every one of them has (conditional parameters
    drop out), with Optuna's ``FanovaImportanceEvaluator`` (seed 0). Returns ``({}, why)`` when it
    cannot be computed.
    """
    if accuracy is None:
        accuracy = {r.number: r.values[0] for r in rec.records(study) if r.is_candidate and r.full_fidelity and r.values}
        what = what or "complete candidates"
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    done = [(by_number[n], acc) for n, acc in accuracy.items() if n in by_number and by_number[n].params]
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return {}, f"needs at least {MIN_IMPORTANCE_TRIALS} trials, got {len(done)}"
    scratch = optuna.create_study(direction="maximize")
    scratch.add_trials([optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=acc) for t, acc in done])
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(scratch, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter common to all trials, or all values equal
        return {}, f"fANOVA could not be computed: {exc}"
    if not found:
        return {}, "no parameter is shared by all the trials"
    return dict(found), f"fANOVA (Optuna, seed 0) over {len(done)} trials ({what}), val_acc as the target"
