"""Confusion counts per threshold, from binned histograms or from exact sorted scores."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .binning import Binning
from .validation import MetricInputError, check_binary


@dataclass(frozen=True)
class ConfusionCurve:
    """Cumulative confusion counts at decreasing thresholds.

    ``tp[k]`` and ``fp[k]`` count pixels with score >= ``thresholds[k]``; thresholds decrease,
    so counts increase. ``n_pos`` and ``n_neg`` are the class totals.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def tpr(self) -> np.ndarray:
        return self.tp / self.n_pos if self.n_pos else np.zeros_like(self.tp, dtype=float)

    recall = tpr

    @property
    def fpr(self) -> np.ndarray:
        return self.fp / self.n_neg if self.n_neg else np.zeros_like(self.fp, dtype=float)

    @property
    def precision(self) -> np.ndarray:
        pred = self.tp + self.fp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pred > 0, self.tp / np.maximum(pred, 1), 1.0)

    def downsample(self, max_points: int = 2000) -> "ConfusionCurve":
        """Keep at most ``max_points`` points, evenly in log FPR and recall, ends kept (for storage)."""
        n = len(self.thresholds)
        if n <= max_points:
            return self
        fpr = np.maximum(self.fpr, 1e-12)
        keys = np.concatenate([
            np.searchsorted(np.log10(fpr), np.linspace(np.log10(fpr[0]), 0, max_points // 2)),
            np.searchsorted(self.tpr, np.linspace(0, 1, max_points // 2)),
            [0, n - 1],
        ])
        keep = np.unique(np.clip(keys, 0, n - 1))
        return ConfusionCurve(self.thresholds[keep], self.tp[keep], self.fp[keep], self.n_pos, self.n_neg)


def class_histograms(scores: np.ndarray, truth: np.ndarray, binning: Binning,
                     valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of scores for CR (positive) and non-CR (negative) pixels.

    Parameters
    ----------
    scores : ndarray
        Score map.
    truth : ndarray of bool
        CR mask, same shape.
    binning : Binning
        The run's fixed bins.
    valid : ndarray of bool, optional
        Pixels to count (ignore pixels excluded); all when None.

    Returns
    -------
    pos, neg : ndarray of int64, shape (n_bins,)
    """
    scores = np.asarray(scores)
    if scores.shape != np.shape(truth):
        raise MetricInputError(f"scores shape {scores.shape} differs from truth shape {np.shape(truth)}")
    truth = check_binary("truth", truth)
    if valid is not None:
        if np.shape(valid) != scores.shape:
            raise MetricInputError(f"valid mask shape {np.shape(valid)} differs from scores shape {scores.shape}")
        valid = check_binary("valid", valid)
    idx = binning.index(scores)
    n = binning.n_bins
    key = idx + n * truth.astype(np.int32)
    if valid is not None:
        key = key[valid]
    counts = np.bincount(key.ravel(), minlength=2 * n)
    return counts[n:].astype(np.int64), counts[:n].astype(np.int64)


def curve_from_histograms(pos: np.ndarray, neg: np.ndarray, binning: Binning) -> ConfusionCurve:
    """Cumulative counts from per-class histograms; empty bins are dropped (no new operating point)."""
    pos = np.asarray(pos, dtype=np.int64)
    neg = np.asarray(neg, dtype=np.int64)
    keep = (pos + neg) > 0
    edges = binning.lower_edges()[keep][::-1]
    tp = np.cumsum(pos[keep][::-1])
    fp = np.cumsum(neg[keep][::-1])
    return ConfusionCurve(edges, tp, fp, int(pos.sum()), int(neg.sum()))


def exact_curve(scores: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> ConfusionCurve:
    """Exact cumulative counts at every distinct score (the scikit-learn definition).

    For small inputs: sorts all scores (O(n log n) time, several copies of n in memory).
    """
    if np.shape(scores) != np.shape(truth):
        raise MetricInputError(f"scores shape {np.shape(scores)} differs from truth shape {np.shape(truth)}")
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = check_binary("truth", truth).ravel()
    if valid is not None:
        v = np.asarray(valid, dtype=bool).ravel()
        s, y = s[v], y[v]
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    distinct = np.nonzero(np.diff(s))[0]
    ends = np.r_[distinct, y.size - 1] if y.size else np.array([], dtype=int)
    tp = np.cumsum(y)[ends] if y.size else np.array([], dtype=np.int64)
    fp = (ends + 1) - tp
    return ConfusionCurve(s[ends], tp.astype(np.int64), fp.astype(np.int64), int(y.sum()), int((~y).sum()))
