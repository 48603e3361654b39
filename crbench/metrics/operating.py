"""Thresholds and operating points: the one implementation the harness, plots and leaderboard use.

Conventions:

- a bin threshold ``t`` flags the bins ``>= t``; ``t = n_bins`` flags nothing, which is how a rule
  that cannot be met is represented (:func:`reached` is False and the score threshold is NaN,
  reported as *not reached*, never ``inf``);
- a score threshold ``s`` flags ``score >= s`` (float32 scores; see
  :meth:`crbench.metrics.binning.Binning.lower_edges`);
- operating-point strings are ``'dice'`` or ``'fpr:<target>'``; targets are compared as numbers
  and written in one canonical form (``'fpr:5e-4'`` for ``'fpr:0.0005'``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .validation import MetricInputError, check_unit_target

#: Rules an operating point can name.
RULES = ("fpr", "dice")


def _fmt_target(x: float) -> str:
    return np.format_float_scientific(float(x), trim="-", exp_digits=1).replace("e+", "e")


def parse_operating_point(text: str) -> tuple[str, float | None]:
    """``'fpr:5e-4'`` or ``'fpr:0.0005'`` -> ``('fpr', 0.0005)``; ``'dice'`` -> ``('dice', None)``.

    Raises
    ------
    MetricInputError
        For anything else, or an FPR target outside ``[0, 1]``.
    """
    t = str(text).strip().lower()
    if t == "dice":
        return "dice", None
    if t.startswith("fpr:"):
        try:
            f = float(t[4:])
        except ValueError:
            f = float("nan")
        if 0.0 <= f <= 1.0:
            return "fpr", f
    raise MetricInputError(f"operating point {text!r} is not 'dice' or 'fpr:<target in [0, 1]>' (e.g. 'fpr:5e-4')")


def canonical_operating_point(text: str) -> str:
    """The canonical spelling: ``'fpr:0.0005'`` -> ``'fpr:5e-4'``, ``'DICE'`` -> ``'dice'``."""
    rule, target = parse_operating_point(text)
    return "dice" if rule == "dice" or target is None else f"fpr:{_fmt_target(target)}"


def same_operating_point(a: str, b: str) -> bool:
    """Whether two operating-point strings name the same rule and (numerically) the same target."""
    try:
        ra, ta = parse_operating_point(a)
        rb, tb = parse_operating_point(b)
    except MetricInputError:
        return False
    return ra == rb and (ta == tb or (ta is not None and tb is not None
                                      and bool(np.isclose(ta, tb, rtol=1e-12, atol=0))))


def cum_from_top(h: np.ndarray) -> np.ndarray:
    """``out[t] = sum(h[t:])`` for ``t`` in ``0 .. n`` (length ``n + 1``)."""
    h = np.asarray(h, dtype=np.float64)
    return np.r_[np.cumsum(h[::-1])[::-1], 0.0]


def choose_threshold(pos: np.ndarray, neg: np.ndarray, rule: str, target_fpr: float | None = None) -> int:
    """Bin threshold (flag bins ``>= t``) of an operating rule on pooled per-class histograms.

    Parameters
    ----------
    pos, neg : ndarray (n_bins,)
        Histograms of positive and negative pixels.
    rule : {'fpr', 'dice'}
        ``'fpr'``: the loosest threshold whose FPR does not exceed ``target_fpr`` (``n_bins`` -
        nothing flagged, *not reached* - when even the strictest non-empty bin exceeds it, or when
        there are no negatives and no positives); ``'dice'``: the threshold of the best Dice
        coefficient (the strictest among ties; ``n_bins`` when there are no positives).
    target_fpr : float
        Required for ``'fpr'``, in ``[0, 1]``.

    Returns
    -------
    int
        In ``0 .. n_bins``.
    """
    pos = np.asarray(pos)
    neg = np.asarray(neg)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise MetricInputError(f"pos and neg histograms must be 1-d of equal length, got {pos.shape} and {neg.shape}")
    tp, fp = cum_from_top(pos), cum_from_top(neg)
    n_pos, n_neg = tp[0], fp[0]
    if rule == "fpr":
        if target_fpr is None:
            raise MetricInputError("operating rule 'fpr' needs a target FPR in [0, 1]")
        target = check_unit_target("target FPR", target_fpr)
        if n_neg == 0:
            return 0 if n_pos else len(pos)
        ok = np.nonzero(fp <= target * n_neg * (1 + 1e-12))[0]
        return int(ok[0])
    if rule == "dice":
        if n_pos == 0:
            return len(pos)
        dice = 2 * tp / np.maximum(tp + fp + n_pos, 1)
        return int(np.nonzero(dice == dice.max())[0][-1])
    raise MetricInputError(f"unknown operating-point rule {rule!r}; use 'fpr:<target>' or 'dice'")


def reached(t: int, pos: np.ndarray, neg: np.ndarray) -> bool:
    """Whether bin threshold ``t`` flags anything (a threshold past every non-empty bin does not)."""
    total = np.asarray(pos, np.float64)[t:].sum() + np.asarray(neg, np.float64)[t:].sum()
    return bool(t < len(pos) and total > 0)


def threshold_value(edges: np.ndarray, t: int) -> float:
    """Score threshold of bin threshold ``t`` (NaN - not reached - for ``t = n_bins``)."""
    return float(edges[t]) if 0 <= t < len(edges) else float("nan")


def rates_at(pos: np.ndarray, neg: np.ndarray, t: int) -> dict[str, float]:
    """FPR, TPR, precision and Dice when flagging bins ``>= t`` (NaN where undefined)."""
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    tp, fp = float(pos[t:].sum()), float(neg[t:].sum())
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    return {
        "fpr": fp / n_neg if n_neg else float("nan"),
        "tpr": tp / n_pos if n_pos else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "dice": 2 * tp / (tp + fp + n_pos) if (tp + fp + n_pos) else float("nan"),
    }


def score_threshold(scores: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                    valids: Sequence[np.ndarray | None], fpr: float) -> float:
    """Exact score threshold ``s`` (flag ``score >= s``, float32 scores) with pixel FPR at most ``fpr``.

    The loosest such threshold over the pooled negatives of the given images; NaN (not reached)
    when even flagging only the highest negative score exceeds ``fpr``.
    """
    fpr = check_unit_target("target FPR", fpr)
    neg = []
    for s, t, v in zip(scores, truths, valids):
        m = ~np.asarray(t, bool) if v is None else (~np.asarray(t, bool) & v)
        neg.append(np.asarray(s, dtype=np.float32)[m])
    neg_all = np.sort(np.concatenate(neg))[::-1] if neg else np.zeros(0, np.float32)
    if not len(neg_all):
        return float(min(float(np.min(s)) for s in scores))
    allowed = int(np.floor(fpr * len(neg_all) * (1 + 1e-12)))
    if allowed >= len(neg_all):
        return float(neg_all[-1])
    # flag >= s with s just above the (allowed + 1)-th highest negative score
    s = np.nextafter(neg_all[allowed], np.float32(np.inf))
    top = max(float(np.max(x)) for x in scores)
    return float(s) if s <= top else float("nan")
