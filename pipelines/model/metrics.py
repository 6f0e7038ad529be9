"""Ranking metrics for model evaluation (numpy only; same definitions as scikit-learn).

``roc_auc``: probability that a random positive outscores a random negative, ties counting
one half (Mann-Whitney U). ``average_precision``: sum over distinct score thresholds of
(recall step) x precision, as ``sklearn.metrics.average_precision_score``.
"""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of scores ``s`` for boolean labels ``y``; NaN when a class is absent."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    pos = int(y.sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # average rank of each tie group (1-based)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision of scores ``s`` for boolean labels ``y``; NaN without positives."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], y.size - 1]  # last index of each threshold
    tps = np.cumsum(y_sorted)[last]
    precision = tps / (last + 1)
    recall = tps / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
