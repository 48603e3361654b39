"""Summary rules of the anchors' own evaluation code, for ``--protocol cosmic-conn``.

Cosmic-CoNN's evaluation (its ``evaluation`` helpers, read for the rules, not copied):

- best Dice: for each threshold ``t`` of ``linspace(0, 1, 51)`` the Dice coefficient of each
  image, ``2 |P & R| / (|P| + |R| + 1)`` with ``P = score > t`` and ``R = truth > t`` (so ``R`` is
  empty at ``t = 1``), is *averaged over images*; the best mean is reported (not pooled counts);
- TPR at FPR ``F``: the step rule ``tpr[(fpr < F).sum()]`` on scikit-learn's ``roc_curve``
  (with its default ``drop_intermediate=True`` and the prepended (0, 0) point);
- precision at recall ``r``: the point of scikit-learn's ``precision_recall_curve`` whose recall
  is nearest ``r`` (first in that curve's order - decreasing recall - on a tie).

Scores enter through the run's bins: ``score > t`` is counted as "bin lower edge > t", exact when
no score lies in the bin that straddles ``t`` (the ``'prob'`` bins are 1e-3 of the distance to 0 or
1 wide).
"""
from __future__ import annotations

import numpy as np

from .curves import ConfusionCurve
from .summary import FPR_POINTS, NOT_REACHED, RECALL_POINTS, fpr_key

#: Dice thresholds of Cosmic-CoNN's evaluation.
COSMIC_CONN_DICE_THRESHOLDS = np.linspace(0, 1, 51)


def cosmic_conn_mean_dice(POS: np.ndarray, NEG: np.ndarray, edges: np.ndarray, w: np.ndarray | None = None,
                          thresholds: np.ndarray = COSMIC_CONN_DICE_THRESHOLDS) -> np.ndarray:
    """Per-threshold Dice averaged over images (weights ``w``), Cosmic-CoNN's rule.

    Parameters
    ----------
    POS, NEG : ndarray (n_images, n_bins)
        Per-image histograms of positive and negative pixels.
    edges : ndarray (n_bins,)
        Lower score edge of each bin.
    w : ndarray (n_images,), optional
        Image weights (bootstrap); ones when None.
    """
    POS = np.atleast_2d(np.asarray(POS, np.float64))
    NEG = np.atleast_2d(np.asarray(NEG, np.float64))
    w = np.ones(len(POS)) if w is None else np.asarray(w, np.float64)
    n_ref = POS.sum(axis=1)
    # counts of bins whose lower edge is > t, per image, from cumulative sums from the top
    cols = np.searchsorted(np.asarray(edges, np.float64), thresholds, side="right")
    top_pos = np.concatenate([np.cumsum(POS[:, ::-1], axis=1)[:, ::-1], np.zeros((len(POS), 1))], axis=1)
    top_neg = np.concatenate([np.cumsum(NEG[:, ::-1], axis=1)[:, ::-1], np.zeros((len(NEG), 1))], axis=1)
    out = np.empty(len(thresholds))
    for i, t in enumerate(thresholds):
        tp = top_pos[:, cols[i]]
        pred = tp + top_neg[:, cols[i]]
        if t >= 1:  # truth > 1 is empty
            tp, ref = np.zeros_like(tp), np.zeros_like(n_ref)
        else:
            ref = n_ref
        dice = 2.0 * tp / (pred + ref + 1.0)
        out[i] = float(w @ dice / w.sum()) if w.sum() else float("nan")
    return out


def _sklearn_roc(curve: ConfusionCurve) -> tuple[np.ndarray, np.ndarray]:
    tps, fps = np.asarray(curve.tp, np.float64), np.asarray(curve.fp, np.float64)
    if len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[keep], fps[keep]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return fps / max(curve.n_neg, 1), tps / max(curve.n_pos, 1)


def step_tpr_at_fpr(curve: ConfusionCurve, fpr: float) -> tuple[float, str]:
    """``tpr[(fpr < F).sum()]`` on the scikit-learn ROC curve, and ``'ok'`` or the reason it is missing."""
    if curve.n_pos == 0 or curve.n_neg == 0:
        return float("nan"), "undefined: a class is empty"
    f, t = _sklearn_roc(curve)
    k = int((f < fpr).sum())
    if k >= len(t):
        return float("nan"), f"{NOT_REACHED}: no ROC point has FPR >= {fpr:g}"
    return float(t[k]), "ok"


def nearest_precision_at_recall(curve: ConfusionCurve, recall: float) -> tuple[float, str]:
    """Precision at the point of scikit-learn's PR curve with recall nearest ``recall``."""
    if curve.n_pos == 0:
        return float("nan"), "undefined: no positives"
    tps = np.asarray(curve.tp, np.float64)
    fps = np.asarray(curve.fp, np.float64)
    last = int(np.searchsorted(tps, tps[-1]))  # first point at full recall
    prec = np.r_[(tps / np.maximum(tps + fps, 1))[last::-1], 1.0]
    rec = np.r_[(tps / tps[-1])[last::-1], 0.0]
    return float(prec[int(np.argmin(np.abs(rec - recall)))]), "ok"


def protocol_summary(protocol: str, curve: ConfusionCurve, POS: np.ndarray, NEG: np.ndarray, edges: np.ndarray,
                     w: np.ndarray | None = None) -> dict[str, float | str]:
    """Summary entries that replace crbench's under ``protocol`` (empty for crbench and deepcr)."""
    if protocol != "cosmic-conn":
        return {}
    out: dict[str, float | str] = {}
    dice = cosmic_conn_mean_dice(POS, NEG, edges, w)
    out["best_dice"] = float(np.nanmax(dice)) if np.isfinite(dice).any() else float("nan")
    for f in FPR_POINTS:
        v, why = step_tpr_at_fpr(curve, f)
        out[fpr_key(f)] = v
        out[f"{fpr_key(f)}_status"] = why
    for r in RECALL_POINTS:
        v, why = nearest_precision_at_recall(curve, r)
        out[f"precision_at_recall_{r}"] = v
        out[f"precision_at_recall_{r}_status"] = why
    return out
