"""The threshold calibration's arithmetic on hand-made scores whose answers are known."""

from __future__ import annotations

import pytest

from bench.calibration import GRID, auc, best, curve, widest_margin


def test_grid_runs_from_0_to_0_9_in_steps_of_0_05():
    assert GRID[0] == 0.0 and GRID[-1] == 0.9 and len(GRID) == 19
    assert GRID[8] == 0.4


def test_rates_count_a_score_equal_to_the_threshold_as_answered():
    # retrieve() refuses only when best < threshold
    (point,) = curve([0.5, 0.6], [0.5, 0.2], thresholds=[0.5])
    assert point.false_refusal == 0.0
    assert point.refused_unanswerable == 0.5
    assert point.balanced_accuracy == 0.75


def test_best_threshold_maximises_balanced_accuracy():
    answerable = [0.45, 0.5, 0.6, 0.7]
    unanswerable = [0.1, 0.2, 0.3, 0.5]
    points = curve(answerable, unanswerable, thresholds=[0.2, 0.35, 0.45, 0.55])
    by_threshold = {p.threshold: p for p in points}
    assert by_threshold[0.35].balanced_accuracy == pytest.approx((3 / 4 + 1) / 2)
    assert by_threshold[0.45].balanced_accuracy == pytest.approx((3 / 4 + 1) / 2)
    assert by_threshold[0.55].balanced_accuracy == pytest.approx((1 + 2 / 4) / 2)
    assert best(points).threshold == 0.35  # tie: the lower threshold refuses fewer real questions


def test_a_missing_score_is_always_refused():
    (point,) = curve([None, 0.9], [None], thresholds=[0.0])
    assert point.false_refusal == 0.5 and point.refused_unanswerable == 1.0


def test_auc_perfect_chance_and_ties():
    assert auc([0.8, 0.9], [0.1, 0.2]) == 1.0
    assert auc([0.1, 0.2], [0.8, 0.9]) == 0.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([0.3, 0.6], [0.4, 0.1]) == pytest.approx(0.75)


def test_auc_matches_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    answerable = [0.41, 0.52, 0.52, 0.9, 0.33, 0.7]
    unanswerable = [0.2, 0.52, 0.35, 0.41, 0.1]
    expected = metrics.roc_auc_score([1] * 6 + [0] * 5, answerable + unanswerable)
    assert auc(answerable, unanswerable) == pytest.approx(expected)


def test_curve_needs_both_kinds():
    with pytest.raises(ValueError):
        curve([], [0.1])


def test_widest_margin_prefers_the_threshold_farthest_from_both_targets():
    # 0.40: 92.4% refused, 1.7% false (margins 2.4 and 3.3 points); 0.45: 95.7%, 4.7% (5.7, 0.3)
    answerable = [0.3] * 17 + [0.42] * 30 + [0.9] * 953
    unanswerable = [0.1] * 900 + [0.37] * 24 + [0.42] * 33 + [0.9] * 43
    points = curve(answerable, unanswerable, thresholds=[0.35, 0.40, 0.45, 0.50])
    by_threshold = {p.threshold: p for p in points}
    assert by_threshold[0.40].refused_unanswerable == pytest.approx(0.924)
    assert by_threshold[0.45].false_refusal == pytest.approx(0.047)
    assert widest_margin(points).threshold == 0.40
    assert widest_margin(points, min_refused=0.99) is None
