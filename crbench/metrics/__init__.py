"""Pixel-level metrics: pure functions over score histograms (binned, streaming) or exact sorted scores.

Flow (after torchmetrics): *format* scores into bin indices (:class:`Binning`), *update* per-class
count histograms (:func:`class_histograms`, which simply add up across images and processes),
*compute* a :class:`ConfusionCurve` and the summary numbers from it.
"""
from .binning import Binning
from .curves import ConfusionCurve, class_histograms, curve_from_histograms, exact_curve
from .summary import (
    FPR_POINTS,
    RECALL_POINTS,
    ap,
    best_dice,
    precision_at_recall,
    roc_auc,
    summarize,
    tpr_at_fpr,
)

__all__ = [
    "Binning", "ConfusionCurve", "class_histograms", "curve_from_histograms", "exact_curve",
    "roc_auc", "ap", "tpr_at_fpr", "precision_at_recall", "best_dice", "summarize",
    "FPR_POINTS", "RECALL_POINTS",
]
