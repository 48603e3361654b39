"""Pixel-level metrics: pure functions over score histograms (binned, streaming) or exact sorted scores.

Flow (after torchmetrics): *format* scores into bin indices (:class:`Binning`), *update* per-class
count histograms (:func:`class_histograms`, which simply add up across images and processes),
*compute* a :class:`ConfusionCurve` and the summary numbers from it.
"""
from .binning import Binning
from .curves import ConfusionCurve, class_histograms, curve_from_histograms, exact_curve
from .operating import (canonical_operating_point, choose_threshold, parse_operating_point, rates_at,
                        same_operating_point, score_threshold, threshold_value)
from .summary import (
    FPR_POINTS,
    NOT_REACHED,
    PAUC_MAX_FPR,
    RECALL_POINTS,
    ap,
    best_dice,
    partial_roc_auc,
    precision_at_recall,
    roc_auc,
    summarize,
    tpr_at_fpr,
)
from .validation import MetricInputError
from .wilson import wilson_interval

__all__ = [
    "Binning", "ConfusionCurve", "class_histograms", "curve_from_histograms", "exact_curve",
    "roc_auc", "ap", "tpr_at_fpr", "precision_at_recall", "best_dice", "summarize",
    "FPR_POINTS", "RECALL_POINTS", "PAUC_MAX_FPR", "NOT_REACHED", "partial_roc_auc",
    "choose_threshold", "parse_operating_point", "canonical_operating_point", "same_operating_point",
    "rates_at", "score_threshold", "threshold_value", "MetricInputError", "wilson_interval",
]
