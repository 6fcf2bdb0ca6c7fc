"""nasx.results: Pareto fronts, hypervolume, EDFs and the trial table, on hand-worked cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_python

from nasx.results import (
    complexity_weights,
    edf,
    front_steps,
    hypervolume,
    hypervolume_progress,
    normalized_edf,
    pareto_front,
    rows_to_frame,
)


def test_front_ties_equal_in_one_coordinate_and_worse_in_the_other_are_dominated() -> None:
    # (0.9, 3) has the same accuracy as (0.9, 2) and a higher cost
    assert pareto_front([0.9, 0.9, 0.8], [2, 3, 1]).tolist() == [True, False, True]
    # (0.8, 2) has the same cost as (0.9, 2) and a lower accuracy
    assert pareto_front([0.9, 0.8], [2, 2]).tolist() == [True, False]


def test_front_identical_points_are_all_kept() -> None:
    assert pareto_front([0.9, 0.9, 0.8], [1, 1, 2]).tolist() == [True, True, False]


def test_front_single_empty_and_all_dominated_but_one() -> None:
    assert pareto_front([0.5], [7]).tolist() == [True]
    empty = pareto_front([], [])
    assert empty.dtype == bool and empty.shape == (0,)
    assert pareto_front([0.9, 0.5, 0.6, 0.7], [1, 2, 3, 4]).tolist() == [True, False, False, False]


def test_front_two_costs() -> None:
    acc = [0.9, 0.8, 0.8, 0.7]
    cost = [[3, 1], [1, 3], [2, 2], [2, 3]]
    # (0.8, 2, 2) would be dominated by (0.8, 1, 3) on the first cost alone; (0.7, 2, 3) is dominated by (0.8, 2, 2)
    assert pareto_front(acc, cost).tolist() == [True, True, True, False]
    assert pareto_front(acc, [c[0] for c in cost]).tolist() == [True, True, False, False]


def test_front_rejects_mismatched_lengths_and_nan() -> None:
    with pytest.raises(ValueError, match="cost"):
        pareto_front([0.9, 0.8], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        pareto_front([0.9, float("nan")], [1, 2])


def test_front_steps_are_the_front_sorted_by_cost() -> None:
    x, y = front_steps([0.7, 0.9, 0.8, 0.6], [1, 5, 3, 4])
    assert x.tolist() == [1, 3, 5] and y.tolist() == [0.7, 0.8, 0.9]
    assert (np.diff(x) >= 0).all() and (np.diff(y) >= 0).all()
    with pytest.raises(ValueError, match="1-D"):
        front_steps([0.9], [[1, 2]])


# Points (acc, cost) = (0.9, 3), (0.8, 1), (0.85, 2), reference (0.5, 4).
# Sweeping cost from left to right, the best accuracy reached so far is
#   cost [1, 2): 0.80 -> strip 1 x 0.30 = 0.30
#   cost [2, 3): 0.85 -> strip 1 x 0.35 = 0.35
#   cost [3, 4): 0.90 -> strip 1 x 0.40 = 0.40
# union of the three rectangles = 1.05
ACC, COST = [0.9, 0.8, 0.85], [3, 1, 2]


def test_hypervolume_hand_worked() -> None:
    assert hypervolume(ACC, COST, 0.5, 4) == pytest.approx(1.05)
    assert hypervolume([0.8], [1], 0.5, 4) == pytest.approx(0.9)  # 3 x 0.3


def test_hypervolume_ignores_dominated_points_and_points_beyond_the_reference() -> None:
    assert hypervolume([*ACC, 0.7], [*COST, 2.5], 0.5, 4) == pytest.approx(1.05)  # (0.7, 2.5) is under (0.85, 2)
    assert hypervolume([*ACC, 0.95], [*COST, 5], 0.5, 4) == pytest.approx(1.05)  # cost beyond ref_cost
    assert hypervolume([*ACC, 0.4], [*COST, 0.5], 0.5, 4) == pytest.approx(1.05)  # accuracy below ref_acc
    assert hypervolume([0.4], [5], 0.5, 4) == 0.0


def test_hypervolume_progress() -> None:
    # trial order: (0.8, 1) -> 0.9; (0.7, 2.5) dominated -> 0.9; (0.9, 3) -> 2 x 0.3 + 1 x 0.4 = 1.0; (0.85, 2) -> 1.05
    progress = hypervolume_progress([0.8, 0.7, 0.9, 0.85], [1, 2.5, 3, 2], 0.5, 4)
    assert progress == pytest.approx([0.9, 0.9, 1.0, 1.05])
    assert (np.diff(progress) >= 0).all()
    assert progress[-1] == pytest.approx(hypervolume(ACC, COST, 0.5, 4))


def test_edf_values() -> None:
    errors = [0.3, 0.1, 0.2, 0.2]
    x, f = edf(errors, grid=[0.05, 0.1, 0.15, 0.2, 0.3, 0.5])
    assert f.tolist() == [0.0, 0.25, 0.25, 0.75, 1.0, 1.0]
    x, f = edf(errors)
    assert x.tolist() == [0.1, 0.2, 0.3] and f.tolist() == [0.25, 0.75, 1.0]
    with pytest.raises(ValueError, match="errors"):
        edf([])


def test_normalized_edf_weights_bins_equally() -> None:
    # log10 complexity 1, 3, 3, 3 in 2 bins: the lone model weighs 1/(1*2), the other three 1/(3*2) each
    complexity = [10, 1000, 1000, 1000]
    w = complexity_weights(complexity, bins=2)
    assert w == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6]) and w.sum() == pytest.approx(1.0)
    x, f = normalized_edf([0.4, 0.1, 0.2, 0.3], complexity, bins=2)
    assert x.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert f == pytest.approx([1 / 6, 2 / 6, 3 / 6, 1.0])
    with pytest.raises(ValueError, match="complexity"):
        normalized_edf([0.1, 0.2], [10])


def test_normalized_edf_equals_edf_when_bins_hold_equal_counts() -> None:
    errors = [0.4, 0.1, 0.3, 0.2, 0.25, 0.15]
    complexity = [10, 10, 100, 100, 1000, 1000]
    assert complexity_weights(complexity, bins=3).sum() == pytest.approx(1.0)
    x, f = normalized_edf(errors, complexity, bins=3)
    x0, f0 = edf(errors)
    assert x.tolist() == x0.tolist() and f == pytest.approx(f0)


def _row(number: int, role: str, state: str, val_acc: float | None, macs: int | None) -> dict:
    return {
        "number": number,
        "role": role,
        "name": None,
        "state": state,
        "reason": None,
        "family": "resnet",
        "digest": f"d{number}",
        "string": "",
        "params": 1000,
        "macs": macs,
        "val_acc": val_acc,
        "epochs": 2,
        "curve": [0.1, val_acc],
        "wall_s": 1.0,
        "device": "cpu",
        "duplicate_of": None,
    }


def test_rows_to_frame_marks_the_front_of_complete_candidates() -> None:
    rows = [
        _row(0, "candidate", "complete", 0.9, 300),  # front
        _row(1, "candidate", "complete", 0.8, 100),  # front
        _row(2, "candidate", "complete", 0.7, 200),  # dominated by 1
        _row(3, "baseline", "complete", 0.95, 50),  # would dominate all, but a baseline
        _row(4, "candidate", "stopped", 0.99, 10),  # would dominate all, but stopped
    ]
    frame = rows_to_frame(rows)
    assert frame["on_front"].tolist() == [True, True, False, False, False]
    assert frame["error"].to_numpy() == pytest.approx([0.1, 0.2, 0.3, 0.05, 0.01])
    assert list(frame.columns[:16]) == list(rows[0]) and {"error", "on_front"} <= set(frame.columns)


def test_rows_to_frame_handles_missing_values_and_no_rows() -> None:
    frame = rows_to_frame([_row(0, "candidate", "failed", None, None), _row(1, "candidate", "complete", 0.5, 10)])
    assert frame["on_front"].tolist() == [False, True] and np.isnan(frame["error"][0])
    empty = rows_to_frame([])
    assert len(empty) == 0 and {"number", "val_acc", "error", "on_front"} <= set(empty.columns)


def test_results_imports_no_torch_and_no_optuna() -> None:
    code = "import json, sys, nasx.results; print(json.dumps(sorted(m for m in ('torch', 'optuna', 'ray', 'plotly') if m in sys.modules)))"
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
