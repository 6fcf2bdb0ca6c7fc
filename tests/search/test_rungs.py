"""Multi-objective early stopping at rungs: the cheap end of the front is never stopped for accuracy alone."""

from __future__ import annotations

import pytest

from nasx.search.rungs import RungDecider, RungEntry, dominates, fronts, promoted

# (name, accuracy at the first rung, MACs): plain ASHA on accuracy keeps the top third
CURVES = [
    ("big", 0.62, 400e6),
    ("mid", 0.58, 150e6),
    ("cheap", 0.41, 12e6),
    ("bloated", 0.55, 900e6),
    ("meh", 0.40, 200e6),
    ("worse", 0.35, 300e6),
]


def test_fronts_by_non_dominated_sorting() -> None:
    pts = [(-a, m) for _, a, m in CURVES]
    assert fronts(pts) == [0, 0, 0, 1, 1, 2]
    assert dominates((1, 1), (1, 2)) and not dominates((1, 1), (1, 1)) and not dominates((0, 2), (1, 1))


def test_plain_asha_stops_the_cheap_point_of_the_front_and_mo_asha_does_not() -> None:
    single = RungDecider(grace=1, reduction=3, max_epochs=9)
    multi = RungDecider(grace=1, reduction=3, max_epochs=9)
    stop_single = {n: single.should_stop(1, RungEntry(n, a, ())) for n, a, _ in CURVES}
    stop_multi = {n: multi.should_stop(1, RungEntry(n, a, (m,))) for n, a, m in CURVES}
    # decided in arrival order (asynchronous), then the final verdict over the full rung:
    final_single = {n: not promoted(single.rungs[1], n, 3) for n, _, _ in CURVES}
    final_multi = {n: not promoted(multi.rungs[1], n, 3) for n, _, _ in CURVES}
    assert final_single["cheap"] and not final_single["big"] and not final_single["mid"]
    assert not final_multi["cheap"], "the cheapest network is on the front: it goes on"
    assert final_multi["bloated"] and final_multi["worse"], "dominated points still stop"
    assert stop_single["cheap"] and not stop_multi["cheap"]  # the same holds for the verdicts on arrival
    assert stop_multi["worse"] and stop_single["worse"]


def test_first_arrival_at_a_rung_continues_and_off_rung_epochs_never_stop() -> None:
    d = RungDecider(grace=2, reduction=2, max_epochs=16)
    assert d.milestones == [2, 4, 8]
    assert not d.should_stop(2, RungEntry("a", 0.1, ()))
    assert not d.should_stop(3, RungEntry("b", 0.0, ()))
    assert d.should_stop(2, RungEntry("c", 0.05, ())) is True  # below a's 0.1 with quota 1 of 2


def test_replayed_history_gives_the_same_decisions() -> None:
    live = RungDecider(1, 3, 9)
    verdicts = [live.should_stop(1, RungEntry(n, a, (m,))) for n, a, m in CURVES]
    replay = RungDecider(1, 3, 9)
    for n, a, m in CURVES[:-1]:
        replay.record(1, RungEntry(n, a, (m,)))
    replay.record(1, RungEntry("big", 0.62, (400e6,)))  # a duplicate record is ignored
    n, a, m = CURVES[-1]
    assert replay.should_stop(1, RungEntry(n, a, (m,))) == verdicts[-1]
    assert len(replay.rungs[1]) == len(CURVES)


def test_invalid_rungs_are_rejected() -> None:
    with pytest.raises(ValueError, match="reduction >= 2"):
        RungDecider(1, 1, 9)
