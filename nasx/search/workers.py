"""The study folder's machinery: its journal (locked and repaired), the workers that share it, storage, heartbeats.

The study folder (``runs/<name>/`` by default, :func:`study_dir`) holds the journal (the default
storage: a file, nothing to start), ``ask.lock`` and ``workers/``. With an RDB URL (PostgreSQL, for
many machines) the storage lives elsewhere and the folder holds only the locks.

**Workers.** Every search process (``nasx search``, a ``run_search`` call) is a *worker*: its
identity is ``<host>-<pid>-<nonce>`` (the nonce tells a reused pid from the process that had it),
it holds ``workers/<identity>.lock`` flock'd for its lifetime (the kernel drops the lock when the
process dies, however it dies), and it records its identity on every trial it runs (user attribute
``worker``). Any number of workers may run one study at once. On one machine they guarantee:

- **Exact stale detection.** A trial still running whose worker's lock can be taken (the process
  is gone) is stale: it is marked failed (``failure: worker_lost``) and, by the failure policy, its
  parameters are queued again (:func:`nasx.search.study.recover_stale`). Trials of live workers are
  never touched. With journal storage a running trial with no worker recorded is stale too (its
  worker died between the ask and the mark, which happen under ``ask.lock``). Trials of workers on
  other machines are left alone.
- **The budget is shared, never exceeded.** Stale recovery, the budget check (finished
  evaluations plus candidates running on live workers) and the ask happen in one critical section
  under ``ask.lock`` (a short flock, :meth:`Worker.turn`), so N workers together evaluate exactly
  ``budget.trials`` candidates. A worker that finds the budget spent while other live workers of
  this machine still run candidates waits for them (one may fail and be retried) before it returns.
- **No work is duplicated.** The candidate's genotype is sampled and its digest recorded inside the
  same critical section, so a worker sees every genotype being trained on this machine. A candidate
  whose genotype was evaluated before is recorded as a duplicate (its result copied, nothing
  trained). One whose genotype is being trained right now by a live worker waits for that trial
  (user attribute ``waiting_for``) and is then settled the same way: a duplicate of it when it
  finished complete, stopped or with a non-finite loss, or trained when it failed in a way that
  may not repeat. Baselines are trained once per study, by whichever worker asks first.

Across machines (an RDB URL) the per-machine guarantees hold on each machine. Between machines a
running trial records Optuna's heartbeat (``heartbeat`` in the study config, :class:`Heartbeats`);
one whose heartbeat is older than the grace period (:func:`heartbeat_stale`) is failed as
``worker_lost`` by the next worker that asks, on any machine, and retried by the policy. The budget
may be overshot by at most one trial per worker of another machine asking at the same moment.

``NASX_HOST`` names this machine in worker identities instead of its host name (machines or
containers that share a host name must set it).
"""

from __future__ import annotations

import fcntl
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
from pathlib import Path
from typing import Any, Literal

import optuna

from nasx.search.config import StudyConfig, StudyError
from nasx.yamlfiles import atomic_write

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# nasx asks and tells itself and runs the heartbeat thread (Heartbeats): Optuna warns on every ask otherwise
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

log = logging.getLogger("nasx.search")


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
            skip = set(bad)
            atomic_write(journal, lambda tmp: tmp.write_bytes(b"".join(line for i, line in enumerate(lines) if i not in skip)))
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
