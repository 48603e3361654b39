"""Summary numbers from a :class:`~crbench.metrics.curves.ConfusionCurve`.

Definitions (written into every result):

- ``roc_auc``: trapezoidal area under (FPR, TPR) from (0, 0) to (1, 1), as scikit-learn.
- ``ap``: average precision, sum over thresholds of (R_k - R_{k-1}) * P_k, as scikit-learn
  (no interpolation).
- ``tpr_at_fpr(f)``: TPR at FPR = f by linear interpolation of the ROC upper envelope, as deepCR.
- ``precision_at_recall(r)``: the best precision over operating points with recall >= r.
- ``best_dice``: max over thresholds of 2 TP / (2 TP + FP + FN).
"""
from __future__ import annotations

import numpy as np

from .curves import ConfusionCurve

FPR_POINTS = (1e-4, 5e-4, 1e-3, 5e-3)
RECALL_POINTS = (0.95, 0.99)


def fpr_key(fpr: float) -> str:
    """Column name for TPR at ``fpr``: 5e-4 -> ``'tpr_at_fpr_5e-4'``."""
    mantissa, exp = f"{fpr:.0e}".split("e")
    return f"tpr_at_fpr_{mantissa}e{int(exp)}"


def roc_auc(curve: ConfusionCurve) -> float:
    """Area under the ROC curve (NaN when a class is empty)."""
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan")
    fpr = np.r_[0.0, curve.fpr]
    tpr = np.r_[0.0, curve.tpr]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def ap(curve: ConfusionCurve) -> float:
    """Average precision (NaN when there are no positives)."""
    if curve.n_pos == 0:
        return float("nan")
    recall = np.r_[0.0, curve.tpr]
    return float(np.sum(np.diff(recall) * curve.precision))


def tpr_at_fpr(curve: ConfusionCurve, fpr: float) -> float:
    """TPR at a target FPR by linear interpolation of the ROC curve."""
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan")
    x = np.r_[0.0, curve.fpr]
    y = np.r_[0.0, curve.tpr]
    # last operating point with FPR <= target (the highest TPR there), then the straight segment to the next
    k = int(np.searchsorted(x, fpr, side="right")) - 1
    if k >= len(x) - 1 or x[k] == fpr:
        return float(y[k])
    return float(y[k] + (y[k + 1] - y[k]) * (fpr - x[k]) / (x[k + 1] - x[k]))


def precision_at_recall(curve: ConfusionCurve, recall: float) -> float:
    """Best precision among operating points with recall >= ``recall`` (NaN if no positives)."""
    if curve.n_pos == 0:
        return float("nan")
    ok = curve.tpr >= recall - 1e-12
    if not ok.any():
        return float("nan")
    return float(curve.precision[ok].max())


def best_dice(curve: ConfusionCurve) -> float:
    """Best Dice (F1) coefficient over all thresholds."""
    if curve.n_pos == 0:
        return float("nan")
    denom = curve.tp + curve.fp + curve.n_pos
    return float(np.max(2.0 * curve.tp / np.maximum(denom, 1)))


def summarize(curve: ConfusionCurve) -> dict[str, float]:
    """All pixel-level summary numbers, keyed by their result-column names."""
    out = {"roc_auc": roc_auc(curve), "ap": ap(curve)}
    for f in FPR_POINTS:
        out[fpr_key(f)] = tpr_at_fpr(curve, f)
    for r in RECALL_POINTS:
        out[f"precision_at_recall_{r}"] = precision_at_recall(curve, r)
    out["best_dice"] = best_dice(curve)
    return out
