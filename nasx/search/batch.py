"""Journal writes in batches: one append (one lock, one ``fsync``) for the several attributes of a trial.

Optuna's journal storage appends and fsyncs every ``set_user_attr`` and every ``suggest_*`` on its
own: a candidate of macro-cifar took about 40 appends before it was trained. Inside
:func:`batched`, the journal storage keeps this thread's writes and appends them together, in
order, when the block ends; nothing else changes. A batch must only hold writes that nobody reads
back from the storage before the block ends: a trial's parameters and attributes (``optuna.Trial``
reads its own from its cache) and sampler attributes, never a ``tell`` (it reads the trial back).
Other storages (RDB) write as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages import JournalStorage


class BatchingJournalStorage(JournalStorage):
    """``JournalStorage`` whose writes inside :meth:`batch` are appended together when it ends."""

    _pending: list[dict[str, Any]] | None = None
    _batch_thread: int | None = None

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        if self._pending is not None and self._batch_thread == threading.get_ident():
            self._pending.append({"op_code": op_code, "worker_id": self._replay_result.worker_id, **extra_fields})
            return
        super()._write_log(op_code, extra_fields)

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self._pending is not None:  # nested, or another thread's batch: write through it
            yield
            return
        self._pending, self._batch_thread = [], threading.get_ident()
        try:
            yield
        finally:
            logs, self._pending, self._batch_thread = self._pending, None, None
            if logs:
                with self._thread_lock:
                    self._backend.append_logs(logs)
                    self._sync_with_backend()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_pending", None)
        state.pop("_batch_thread", None)
        return state


@contextmanager
def batched(study: optuna.Study) -> Iterator[None]:
    """Batch ``study``'s journal writes made in this block (see the module's rules); a no-op for other storages."""
    storage = study._storage
    if isinstance(storage, BatchingJournalStorage):
        with storage.batch():
            yield
    else:
        yield
