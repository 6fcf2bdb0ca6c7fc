"""The trial record (nasx.search.record) and the one front (nasx.results.front) that every view shows."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from helpers import config_file_text, make_study
from typer.testing import CliRunner

from nasx.cli import app
from nasx.report import collect
from nasx.results import front, front_ranks
from nasx.search import record as rec
from nasx.search.record import Role, Status
from nasx.search.retrain import front_members
from nasx.search.runner import load_study
from nasx.search.study import front_numbers, open_study, progress, study_dir, trial_rows
from nasx.search.trial import finish, record_genotype
from nasx.space import Network


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASX_CACHE", str(tmp_path / "cache"))


def test_record_reads_what_the_writers_stored_under_the_journal_names(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    rec.mark(trial, Role.CANDIDATE, "host-1-abc")
    running = rec.read(study.trials[0])
    assert running.status is Status.RUNNING and running.is_candidate and running.worker == "host-1-abc"
    net = Network.from_string("stem[conv(out=8)] | 2*residual()@8")
    params, macs = record_genotype(trial, net, Role.CANDIDATE)
    rec.write_curve(trial, [0.2, 0.3])
    finish(study, trial, Status.COMPLETE, (0.3, float(macs)), None)
    (r,) = rec.records(study)
    assert (r.role, r.status, r.digest, r.params, r.macs, r.curve) == (
        Role.CANDIDATE,
        Status.COMPLETE,
        net.digest,
        params,
        macs,
        (0.2, 0.3),
    )
    assert r.full_fidelity and r.evaluated and r.val_acc == 0.3
    # the stored names and values are the journal's: a study written before the record type reads back unchanged
    assert study.trials[0].user_attrs["role"] == "candidate" and study.trials[0].user_attrs["state"] == "complete"
    assert r.row()["state"] == "complete" and r.row()["role"] == "candidate"
    with pytest.raises(ValueError, match="nasx's own"):
        rec.write_extra(trial, "state", "complete")


def test_a_record_of_an_unknown_or_missing_state_is_never_taken_for_complete() -> None:
    study = optuna.create_study()
    t = study.ask()
    t.set_user_attr("state", "exploded")  # a journal written by another tool
    study.tell(t, 0.5)
    t2 = study.ask()
    study.tell(t2, state=optuna.trial.TrialState.PRUNED)
    first, second = rec.records(study)
    assert first.status is Status.FAILED and first.role is None and not first.full_fidelity
    assert second.status is Status.STOPPED


def _disagreeing_study(folder: Path) -> tuple[object, optuna.Study]:
    """make_study plus what made the four old fronts disagree: a duplicate of the best candidate (counted by Optuna's
    best_trials) and a baseline that dominates every candidate (counted by the live view, starred by status)."""
    cfg = make_study(folder, name="fronts", trials=12)
    study = open_study(cfg, study_dir(cfg, folder / "runs"), "synthetic")
    best = max((r for r in rec.records(study) if r.full_fidelity and r.is_candidate), key=lambda r: r.val_acc or 0)
    trial = study.ask()
    net = Network.from_dict(best.genotype or {})
    record_genotype(trial, net, Role.CANDIDATE)
    rec.write_duplicate(trial, best.number, best.curve)
    finish(study, trial, Status.DUPLICATE, best.values, f"same genotype as trial {best.number}")
    trial = study.ask()
    _, macs = record_genotype(trial, Network.from_string("stem[conv(out=4)] | 1*residual()@4"), Role.BASELINE, "tiny_base")
    finish(study, trial, Status.COMPLETE, (0.999, 1.0), None)
    return cfg, study


def test_the_live_view_status_the_report_and_retrain_top_show_one_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, study = _disagreeing_study(tmp_path)
    rows = trial_rows(study)
    expected = front(rows, ["macs"])
    assert len(expected) >= 2, "the synthetic study has a real trade-off"
    by_number = {r["number"]: r for r in rows}
    assert all(by_number[n]["role"] == "candidate" and by_number[n]["state"] == "complete" for n in expected)
    assert len({by_number[n]["digest"] for n in expected}) == len(expected), "duplicates collapsed"
    assert {t.number for t in study.best_trials} != set(expected), "Optuna's own front counts baselines and duplicates"
    # 1. the live view (nasx search): its front count and its table's stars
    assert progress(study).front == len(expected)
    assert set(front_numbers(rows, cfg.objectives)) == set(expected)
    # 2. nasx status
    f = tmp_path / "fronts.yaml"
    f.write_text(config_file_text(cfg))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["status", str(f), "--dir", "runs", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["front"] == sorted(expected) and doc["progress"]["front"] == len(expected)
    # 3. the report
    source = collect.from_study(cfg, tmp_path / "runs")
    assert sorted(source.frame.loc[source.frame["on_front"], "number"]) == sorted(expected)
    # 4. retrain --top: the front first, most accurate first
    picked = [m.number for m in front_members(load_study(cfg, tmp_path / "runs"), cfg, len(expected))]
    assert picked == expected


def test_front_on_every_objective_and_ranks_beyond_it() -> None:
    def row(n: int, acc: float, macs: int, params: int, digest: str, state: str = "complete", role: str = "candidate") -> dict:
        return {"number": n, "role": role, "state": state, "val_acc": acc, "macs": macs, "params": params, "digest": digest}

    rows = [
        row(0, 0.9, 100, 100, "a"),
        row(1, 0.8, 100, 10, "b"),  # worse in accuracy, cheaper in params only: on the front of (acc, macs, params)
        row(2, 0.9, 100, 100, "a"),  # the same genotype again: collapsed
        row(3, 0.95, 1, 1, "c", state="stopped"),  # early stopped: not full fidelity
        row(4, 0.99, 1, 1, "d", role="baseline"),
        row(5, 0.7, 200, 200, "e"),
    ]
    assert front(rows, ["macs"]) == [0]
    assert front(rows, ["macs", "params"]) == [0, 1]
    assert front_ranks(rows, ["macs"]) == [(0, 0), (1, 1), (5, 2)]
    assert front(rows, []) == [0]


def test_records_reuse_finished_trials_and_see_every_write_to_a_running_one(tmp_path: Path) -> None:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    done = study.ask()
    rec.mark(done, Role.CANDIDATE, "w")
    study.tell(done, [0.5, 10.0])
    live = study.ask()
    rec.mark(live, Role.CANDIDATE, "w")
    first = rec.records(study)
    rec.write_status(live, Status.INFEASIBLE)  # a write to the running trial after the first read
    second = rec.records(study)
    assert second[0] is first[0]  # the finished trial's record is read once
    assert second[0] == rec.read(study.trials[0])
    assert first[1].status == Status.RUNNING and second[1].running
    assert study.trials[1].user_attrs[rec.Key.STATE] == Status.INFEASIBLE.value
    study.tell(live, state=optuna.trial.TrialState.PRUNED)
    third = rec.records(study)
    assert third[1].status == Status.INFEASIBLE and third[1].finished  # finishing is a new object: read again
