"""Refusal-threshold calibration: rates per threshold, balanced accuracy, the best threshold, AUC.

A question is answered when its score (the best dense similarity) is >= the threshold, refused
otherwise, as `rag.retrieval.retrieve` does; a missing score (empty index) is always refused.
Balanced accuracy = (share of unanswerable questions refused + share of answerable answered) / 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID = tuple(round(0.05 * i, 2) for i in range(19))  # 0.00, 0.05, ..., 0.90


@dataclass(frozen=True)
class Point:
    threshold: float
    refused_unanswerable: float  # share of unanswerable questions refused (want high)
    false_refusal: float  # share of answerable questions refused (want low)

    @property
    def balanced_accuracy(self) -> float:
        return (self.refused_unanswerable + (1.0 - self.false_refusal)) / 2


def _scores(values: Sequence[float | None]) -> np.ndarray:
    return np.array([-np.inf if v is None else v for v in values], dtype=float)


def curve(answerable: Sequence[float | None], unanswerable: Sequence[float | None],
          thresholds: Sequence[float] = GRID) -> list[Point]:
    pos, neg = _scores(answerable), _scores(unanswerable)
    if not len(pos) or not len(neg):
        raise ValueError("need at least one answerable and one unanswerable score")
    return [Point(float(t), float(np.mean(neg < t)), float(np.mean(pos < t))) for t in thresholds]


def best(points: Sequence[Point]) -> Point:
    """Highest balanced accuracy; among ties the lowest threshold (fewest false refusals)."""
    return max(points, key=lambda p: (round(p.balanced_accuracy, 12), -p.threshold))


def widest_margin(points: Sequence[Point], min_refused: float = 0.90,
                  max_false_refusal: float = 0.05) -> Point | None:
    """Among thresholds meeting both targets, the one farthest from the nearer of them: the
    choice least likely to miss a target on other questions. None when no threshold meets both."""
    meeting = [p for p in points
               if p.refused_unanswerable >= min_refused and p.false_refusal <= max_false_refusal]
    if not meeting:
        return None
    return max(meeting, key=lambda p: (round(min(p.refused_unanswerable - min_refused,
                                                 max_false_refusal - p.false_refusal), 12),
                                       -p.threshold))


def auc(answerable: Sequence[float | None], unanswerable: Sequence[float | None]) -> float:
    """ROC AUC of the score for 'answerable': the chance that a random answerable question
    scores above a random unanswerable one, ties counting half (Mann-Whitney U / n1 n2)."""
    pos, neg = _scores(answerable), _scores(unanswerable)
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_scores = both[order]
    # average ranks over ties, 1-based
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))
