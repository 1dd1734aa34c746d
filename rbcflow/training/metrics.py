"""What each stage's network outputs mean, and binary metrics with the paper's conventions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rbcflow.schema import FLIPPING, LABEL_NAMES, TANK_TREADING, UNRELIABLE

STAGE_CLASSES: dict[int, list[str]] = {
    1: ["unreliable", "reliable"],
    2: [LABEL_NAMES[TANK_TREADING], LABEL_NAMES[FLIPPING]],
}
"""Class names of each stage's network outputs, in output order."""

POSITIVE: dict[int, int] = {1: 1, 2: 1}
"""Output index of the positive class of each stage's metrics (paper conventions: stage 1
reliable, stage 2 flipping)."""


def stage_target(label: int, stage: int) -> int | None:
    """Network output index for an authors' label (None: not used by that stage).

    Examples
    --------
    >>> [stage_target(v, 1) for v in (0, 1, 2)], [stage_target(v, 2) for v in (0, 1, 2)]
    ([1, 1, 0], [0, 1, None])
    """
    if stage == 1:
        return 0 if label == UNRELIABLE else 1
    return None if label == UNRELIABLE else int(label)


def binary_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, specificity and confusion matrix of a binary task.

    Parameters
    ----------
    truth, pred : (N,) bool ndarray
        True = positive class.

    Returns
    -------
    dict
        ``confusion`` is ``[[TN, FP], [FN, TP]]`` (rows truth negative/positive, columns
        prediction negative/positive). Undefined ratios are NaN.
    """
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    tp = int(np.sum(truth & pred))
    tn = int(np.sum(~truth & ~pred))
    fp = int(np.sum(~truth & pred))
    fn = int(np.sum(truth & ~pred))

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision == precision and recall == recall and precision + recall > 0
        else (0.0 if tp == 0 and (fp + fn) > 0 else math.nan)
    )
    return {
        "n": int(truth.size),
        "accuracy": ratio(tp + tn, truth.size),
        "precision": precision,
        "recall": recall,
        "specificity": ratio(tn, tn + fp),
        "f1": f1,
        "confusion": [[tn, fp], [fn, tp]],
    }
