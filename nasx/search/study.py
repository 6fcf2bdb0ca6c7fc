"""One Optuna study per nasx study: storage, identity checks, resume after a crash, the trial record.

The study folder (``runs/<name>/`` by default) holds the journal (the default storage: a file,
nothing to start) and a lock. Whoever holds the lock is the only search running on that journal,
so trials still marked running when it is taken belong to a dead process: they are marked failed
and their parameters queued again. With an RDB URL (PostgreSQL, for many machines) the storage
lives elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasx.search.config import StudyConfig, StudyError
from nasx.search.samplers import make_sampler
from nasx.train.run import versions

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def study_dir(cfg: StudyConfig, root: Path | None = None) -> Path:
    return (root or Path("runs")) / cfg.name


def storage_for(cfg: StudyConfig, folder: Path) -> optuna.storages.BaseStorage:
    if cfg.storage:
        return optuna.storages.RDBStorage(cfg.storage)
    from optuna.storages.journal import JournalFileBackend

    folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the study's lock; a second search of the same study fails with a clear message."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "search.lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(f"another `nasx search` is running this study ({folder}); wait for it or stop it") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def open_study(cfg: StudyConfig, folder: Path, space_digest: str) -> optuna.Study:
    """Create the study, or load it and check that space, objectives, fidelity, recipe and data are unchanged."""
    storage = storage_for(cfg, folder)
    directions = [o.direction for o in cfg.objectives]
    sampler = make_sampler(cfg.sampler, len(directions))
    identity = {**cfg.identity(), "space_digest": space_digest}
    study = optuna.create_study(study_name=cfg.name, storage=storage, directions=directions, sampler=sampler, load_if_exists=True)
    old = study.user_attrs.get("identity")
    if old is None:
        study.set_user_attr("identity", identity)
        study.set_user_attr("config", cfg.model_dump(mode="json"))
    elif old != identity:
        changes = "; ".join(_diff(old, identity))
        raise StudyError(
            f"study {cfg.name!r} in {folder} was started with another setup ({changes}); "
            "give the changed study a new name, or delete the old folder"
        )
    study.set_user_attr("versions", versions())  # of the latest search run, for the report
    return study


def recover_stale(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a dead process: mark them failed and queue their parameters again."""
    retried = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        handle = optuna.trial.Trial(study, t._trial_id)
        handle.set_user_attr("state", "failed")
        handle.set_user_attr("stale", True)
        handle.set_user_attr("reason", "the search process running it stopped (crash or kill)")
        study.tell(t.number, state=TrialState.FAIL)
        if t.user_attrs.get("role") == "candidate" and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        retried.append(t.number)
    return retried


@dataclass(frozen=True)
class Progress:
    """Counts over the study's finished trials, for the budget and the live view."""

    trials: int  # finished candidates that were evaluated (any state but infeasible): the trial budget
    by_state: dict[str, int]
    baselines: int
    best_acc: float | None
    front: int  # size of the Pareto front among complete trials
    elapsed: float  # wall seconds spent in searches of this study, across runs


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("role") == "candidate"]


def progress(study: optuna.Study) -> Progress:
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    cand = [t for t in finished if t.user_attrs.get("role") == "candidate" and not t.user_attrs.get("stale")]
    by_state: dict[str, int] = {}
    for t in cand:
        s = t.user_attrs.get("state", "failed")
        by_state[s] = by_state.get(s, 0) + 1
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.values]
    accs = [t.values[0] for t in complete]
    try:
        front = len(study.best_trials) if complete else 0
    except RuntimeError:
        front = 0
    return Progress(
        trials=sum(1 for t in cand if t.user_attrs.get("state") != "infeasible"),
        by_state=by_state,
        baselines=sum(1 for t in finished if t.user_attrs.get("role") == "baseline"),
        best_acc=max(accs) if accs else None,
        front=front,
        elapsed=float(study.user_attrs.get("elapsed_s", 0.0)),
    )


def infeasible_cap(trials: int | None) -> int:
    """How many infeasible draws a search tolerates before it stops (a space that rarely meets its constraints)."""
    return max(200, 20 * (trials or 0))


def add_elapsed(study: optuna.Study, seconds: float) -> None:
    study.set_user_attr("elapsed_s", float(study.user_attrs.get("elapsed_s", 0.0)) + seconds)


def find_duplicate(study: optuna.Study, digest: str, exclude: int) -> FrozenTrial | None:
    """A finished trial of the same genotype whose result would repeat (same fidelity: the study's identity fixes it)."""
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        same = t.number != exclude and t.state.is_finished() and a.get("digest") == digest
        repeatable = a.get("state") in ("complete", "stopped") or str(a.get("reason", "")).startswith("non_finite_loss")
        if same and repeatable:  # a crash or out-of-memory may not happen again: those are retried
            return t
    return None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per trial: the record the reports and ``nasx status`` read."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "role": a.get("role"),
                "name": a.get("name"),
                "state": a.get("state", "running" if t.state == TrialState.RUNNING else t.state.name.lower()),
                "reason": a.get("reason"),
                "family": a.get("family"),
                "digest": a.get("digest"),
                "string": a.get("string"),
                "params": a.get("params"),
                "macs": a.get("macs"),
                "val_acc": (t.values[0] if t.values else (a.get("curve") or [None])[-1]),
                "epochs": len(a.get("curve") or []),
                "curve": a.get("curve") or [],
                "wall_s": a.get("wall_s"),
                "device": a.get("device"),
                "duplicate_of": a.get("duplicate_of"),
            }
        )
    return rows


MIN_IMPORTANCE_TRIALS = 4


def importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """fANOVA importance of each design-space parameter for validation accuracy, and a note.

    Computed over the complete candidates (baselines have no parameters) and the parameters
    every one of them has (conditional parameters drop out), with Optuna's
    ``FanovaImportanceEvaluator`` (seed 0). Returns ``({}, why)`` when it cannot be computed.
    """
    done = [t for t in candidates(study) if t.state == TrialState.COMPLETE and t.values and t.params]
    done = [t for t in done if t.user_attrs.get("state") == "complete"]  # duplicates repeat a trial
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return {}, f"needs at least {MIN_IMPORTANCE_TRIALS} complete candidates, got {len(done)}"
    scratch = optuna.create_study(directions=study.directions)
    scratch.add_trials(done)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(scratch, evaluator=evaluator, target=lambda t: t.values[0])
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter common to all trials, or all values equal
        return {}, f"fANOVA could not be computed: {exc}"
    if not found:
        return {}, "no parameter is shared by all complete candidates"
    return dict(found), f"fANOVA (Optuna, seed 0) over {len(done)} complete candidates, val_acc as the target"
