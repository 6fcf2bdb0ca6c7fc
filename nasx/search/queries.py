"""The record queries: what a study's trial records add up to.

The budget as an ask sees it (:func:`census`), the counts of the live view and ``nasx status``
(:func:`progress`), the genotype twins that make a candidate a duplicate (:func:`find_duplicate`,
:func:`running_twin`), the trial table (:func:`trial_rows`), the study's front (:func:`study_front`,
:func:`front_numbers`), the rows a summary table shows (:func:`summary_rows`), and the design-space
statistics' trials and fANOVA importances (:func:`census_set`, :func:`importances`). Each reads the
:class:`nasx.search.record.TrialRecord` of each trial, never a user attribute by name. They sit
beside :mod:`nasx.search.record` (the record itself).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasx.search import record as rec
from nasx.search.config import FailureKind
from nasx.search.proxies import proxy_values
from nasx.search.record import Role, Status, TrialRecord

if TYPE_CHECKING:
    from nasx.search.workers import Worker


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


def front_numbers(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Any]) -> list[int]:
    """The front of trial ``rows`` on ``objectives`` (val_acc first, then the costs), trial numbers most accurate
    first: :func:`nasx.results.front`, the one definition that the live view, ``nasx status``, the report and
    ``retrain --top`` share."""
    from nasx.results import front

    return front(rows, [o.value for o in objectives[1:]])


def study_front(study: optuna.Study, rows: list[dict[str, Any]] | None = None) -> list[int]:
    """The study's front (trial numbers, most accurate first): :func:`front_numbers` on its stored objectives."""
    return front_numbers(trial_rows(study) if rows is None else rows, study_objectives(study))


def summary_rows(rows: Sequence[Mapping[str, Any]], front: Collection[int], most: int = 12) -> list[Mapping[str, Any]]:
    """The trial rows a study's summary table shows: every baseline and front member, then the most accurate
    complete trials up to ``most`` rows in all; baselines first, then by accuracy."""
    shown = [r for r in rows if r["role"] == Role.BASELINE or r["number"] in front]
    best = sorted((r for r in rows if r not in shown and r["state"] == Status.COMPLETE), key=lambda r: -(r["val_acc"] or 0))
    shown += best[: max(0, most - len(shown))]
    return sorted(shown, key=lambda r: (r["role"] != Role.BASELINE, -(r["val_acc"] or 0)))


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
