"""Summary numbers from a :class:`~crbench.metrics.curves.ConfusionCurve`.

Definitions (written into every result):

- ``roc_auc``: trapezoidal area under (FPR, TPR) from (0, 0) to (1, 1), as scikit-learn. For a
  sweep detector (``floor_point=True``: the last point, "flag everything", is no setting of the
  detector) the area is dominated by the chord from its loosest setting to (1, 1), and
  ``roc_auc_extrapolated`` is True.
- ``pauc_1e-3``: area under the ROC curve up to FPR 1e-3, McClish-standardised (0.5 = chance, 1 =
  perfect), as scikit-learn's ``roc_auc_score(max_fpr=1e-3)``.
- ``ap``: average precision, sum over thresholds of (R_k - R_{k-1}) * P_k, as scikit-learn
  (no interpolation).
- ``tpr_at_fpr(f)``: TPR at FPR = f by linear interpolation of the ROC curve between operating
  points, as deepCR. *Not reached* (NaN, with a ``<column>_status`` reason) when the strictest
  threshold that flags anything already has FPR > f, or (sweeps) when f lies beyond the loosest
  setting.
- ``precision_at_recall(r)``: the best precision over operating points with recall >= r; not
  reached when no operating point (for sweeps: no setting) has recall >= r.
- ``best_dice``: max over thresholds of 2 TP / (2 TP + FP + FN).
"""
from __future__ import annotations

import numpy as np

from .curves import ConfusionCurve
from .validation import check_unit_target

FPR_POINTS = (1e-4, 5e-4, 1e-3, 5e-3)
RECALL_POINTS = (0.95, 0.99)
#: FPR bound of the partial ROC AUC column.
PAUC_MAX_FPR = 1e-3
#: Prefix of the reason a metric is missing.
NOT_REACHED = "not reached"


def fpr_key(fpr: float) -> str:
    """Column name for TPR at ``fpr``: 5e-4 -> ``'tpr_at_fpr_5e-4'``."""
    mantissa, exp = f"{fpr:.0e}".split("e")
    return f"tpr_at_fpr_{mantissa}e{int(exp)}"


def _pkey(x: float) -> str:
    mantissa, exp = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


def pauc_key(max_fpr: float = PAUC_MAX_FPR) -> str:
    """Column name of the partial AUC: 1e-3 -> ``'pauc_1e-3'``."""
    return f"pauc_{_pkey(max_fpr)}"


def _real_points(curve: ConfusionCurve, floor_point: bool) -> int:
    """Number of leading curve points that are operating points of the detector."""
    n = len(curve.tp)
    return max(n - 1, 0) if floor_point else n


def roc_auc(curve: ConfusionCurve) -> float:
    """Area under the ROC curve (NaN when a class is empty)."""
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan")
    fpr = np.r_[0.0, curve.fpr]
    tpr = np.r_[0.0, curve.tpr]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def partial_roc_auc(curve: ConfusionCurve, max_fpr: float = PAUC_MAX_FPR) -> float:
    """McClish-standardised area under the ROC curve for FPR in ``[0, max_fpr]`` (NaN when a class
    is empty), as scikit-learn's ``roc_auc_score(y, s, max_fpr=max_fpr)``."""
    max_fpr = check_unit_target("max_fpr", max_fpr)
    if max_fpr == 0:
        from .validation import MetricInputError
        raise MetricInputError("max_fpr must be > 0 for a partial AUC")
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan")
    fpr = np.r_[0.0, curve.fpr]
    tpr = np.r_[0.0, curve.tpr]
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    if stop < len(fpr):
        y = tpr[stop - 1] + (tpr[stop] - tpr[stop - 1]) * (max_fpr - fpr[stop - 1]) / (fpr[stop] - fpr[stop - 1])
        fpr = np.r_[fpr[:stop], max_fpr]
        tpr = np.r_[tpr[:stop], y]
    else:
        fpr, tpr = fpr[:stop], tpr[:stop]
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    lo, hi = 0.5 * max_fpr ** 2, max_fpr
    return float(0.5 * (1 + (area - lo) / (hi - lo)))


def ap(curve: ConfusionCurve) -> float:
    """Average precision (NaN when there are no positives)."""
    if curve.n_pos == 0:
        return float("nan")
    recall = np.r_[0.0, curve.tpr]
    return float(np.sum(np.diff(recall) * curve.precision))


def tpr_at_fpr_status(curve: ConfusionCurve, fpr: float, *, floor_point: bool = False) -> tuple[float, str]:
    """TPR at a target FPR and ``'ok'`` or the reason it is missing (``'not reached: ...'``)."""
    fpr = check_unit_target("target FPR", fpr)
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan"), "undefined: a class is empty"
    x = np.r_[0.0, curve.fpr]
    y = np.r_[0.0, curve.tpr]
    n_real = _real_points(curve, floor_point)
    if n_real == 0 or x[1] > fpr:
        strictest = f"{x[1]:.3g}" if len(x) > 1 else "n/a"
        return float("nan"), f"{NOT_REACHED}: the strictest threshold has FPR {strictest} > {fpr:g}"
    if floor_point and x[n_real] < fpr:
        return float("nan"), f"{NOT_REACHED}: the loosest setting has FPR {x[n_real]:.3g} < {fpr:g}"
    # last operating point with FPR <= target (the highest TPR there), then the straight segment to the next
    k = int(np.searchsorted(x, fpr, side="right")) - 1
    if k >= len(x) - 1 or x[k] == fpr:
        return float(y[k]), "ok"
    return float(y[k] + (y[k + 1] - y[k]) * (fpr - x[k]) / (x[k + 1] - x[k])), "ok"


def tpr_at_fpr(curve: ConfusionCurve, fpr: float, *, floor_point: bool = False) -> float:
    """TPR at a target FPR by linear interpolation of the ROC curve (NaN when not reached)."""
    return tpr_at_fpr_status(curve, fpr, floor_point=floor_point)[0]


def precision_at_recall_status(curve: ConfusionCurve, recall: float, *,
                               floor_point: bool = False) -> tuple[float, str]:
    """Best precision among operating points with recall >= ``recall``, and ``'ok'`` or the reason."""
    recall = check_unit_target("target recall", recall)
    if curve.n_pos == 0:
        return float("nan"), "undefined: no positives"
    n_real = _real_points(curve, floor_point)
    tpr = curve.tpr[:n_real]
    ok = tpr >= recall - 1e-12
    if not ok.any():
        best = f"{tpr.max():.3g}" if len(tpr) else "n/a"
        return float("nan"), f"{NOT_REACHED}: the loosest {'setting' if floor_point else 'threshold'} has recall {best}"
    return float(curve.precision[:n_real][ok].max()), "ok"


def precision_at_recall(curve: ConfusionCurve, recall: float, *, floor_point: bool = False) -> float:
    """Best precision among operating points with recall >= ``recall`` (NaN if not reached)."""
    return precision_at_recall_status(curve, recall, floor_point=floor_point)[0]


def best_dice(curve: ConfusionCurve) -> float:
    """Best Dice (F1) coefficient over all thresholds."""
    if curve.n_pos == 0:
        return float("nan")
    denom = curve.tp + curve.fp + curve.n_pos
    return float(np.max(2.0 * curve.tp / np.maximum(denom, 1)))


def summarize(curve: ConfusionCurve, *, floor_point: bool = False) -> dict[str, float | str | bool]:
    """All pixel-level summary numbers, keyed by their result-column names.

    A metric that is not reached is NaN and has a ``<column>_status`` entry with the reason.
    ``floor_point=True`` for sweep detectors (see the module docstring).
    """
    out: dict[str, float | str | bool] = {"roc_auc": roc_auc(curve), "ap": ap(curve)}
    out["roc_auc_extrapolated"] = bool(floor_point)
    out[pauc_key()] = partial_roc_auc(curve, PAUC_MAX_FPR)
    for f in FPR_POINTS:
        v, why = tpr_at_fpr_status(curve, f, floor_point=floor_point)
        out[fpr_key(f)] = v
        if why != "ok":
            out[f"{fpr_key(f)}_status"] = why
    for r in RECALL_POINTS:
        v, why = precision_at_recall_status(curve, r, floor_point=floor_point)
        out[f"precision_at_recall_{r}"] = v
        if why != "ok":
            out[f"precision_at_recall_{r}_status"] = why
    out["best_dice"] = best_dice(curve)
    return out
