"""Checks the leaderboard runs on a submission before it is parsed, validated and accepted.

- :func:`read_submission`: refuses files larger than :data:`MAX_SUBMISSION_BYTES`, JSON nested
  deeper than :data:`MAX_DEPTH` and curves with more than :data:`MAX_CURVE_POINTS` points, each
  with one line, before the (slow) schema validation.
- :func:`name_problems`: identifiers shown on the leaderboard pages must match
  :data:`SAFE_NAME` (no markup, no whitespace); free text (``trained_on``) is escaped where shown.
- :func:`summary_problems`: the summary numbers a curve determines (ROC AUC, AP, TPR at a
  target FPR, precision at a recall, best Dice) must agree with the submitted curve.

The curve in a results file keeps a subset of the points of the full confusion curve the summary
was computed from. Between two kept points the full curve's counts lie between the counts at
those points (they are cumulative), so every metric has an interval it must fall in, computed
from the kept points alone; a summary number outside it (beyond :data:`TOLERANCE`) cannot come
from that curve.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CRBenchError

#: Largest results file the leaderboard reads (bytes).
MAX_SUBMISSION_BYTES = 20 * 1024 * 1024
#: Deepest JSON nesting accepted (a results file needs about 8 levels).
MAX_DEPTH = 64
#: Most points per curve (crbench writes at most 2000).
MAX_CURVE_POINTS = 20000
#: Identifiers shown on the pages: detector, dataset, split, dataset version.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
#: Absolute slack when comparing a summary number with the interval its curve allows (rounding).
TOLERANCE = 1e-6

_TPR_KEY = re.compile(r"tpr_at_fpr_([0-9.]+e-?[0-9]+)")
_PREC_KEY = re.compile(r"precision_at_recall_([0-9.]+)")


class SubmissionError(CRBenchError, ValueError):
    """A results file was refused by the leaderboard (the message names the file and the reason)."""


def _depth_exceeds(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def read_submission(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a results file offered to the leaderboard, within the size limits.

    Parameters
    ----------
    path : path
        ``results.json``.

    Returns
    -------
    dict
        The parsed, schema-valid results object.

    Raises
    ------
    SubmissionError
        If the file is over :data:`MAX_SUBMISSION_BYTES`, nested deeper than :data:`MAX_DEPTH`
        or has a curve of more than :data:`MAX_CURVE_POINTS` points.
    FormatError
        If the file is missing, not JSON or not a valid results file.
    """
    from .errors import FormatError
    from .results import read_results_json
    from .schema import validate_results

    p = Path(path)
    if not p.is_file():
        return read_results_json(p)  # the usual "not found" error
    size = p.stat().st_size
    if size > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{p}: submission refused: the file has {size} bytes; the leaderboard reads "
                              f"results files of at most {MAX_SUBMISSION_BYTES} bytes "
                              f"({MAX_SUBMISSION_BYTES / 2**20:.0f} MiB)")
    with open(p, "rb") as fh:
        raw = fh.read(MAX_SUBMISSION_BYTES + 1)
    if len(raw) > MAX_SUBMISSION_BYTES:  # grew since stat
        raise SubmissionError(f"{p}: submission refused: the file is larger than "
                              f"{MAX_SUBMISSION_BYTES // 2**20} MiB")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise SubmissionError(f"{p}: submission refused: JSON nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{p}: not valid JSON ({exc})") from exc
    if _depth_exceeds(obj, MAX_DEPTH):
        raise SubmissionError(f"{p}: submission refused: JSON nested deeper than {MAX_DEPTH} levels")
    for i, run in enumerate(obj.get("runs") or [] if isinstance(obj, dict) else []):
        curve = run.get("curve") if isinstance(run, dict) else None
        if isinstance(curve, dict):
            for k, v in curve.items():
                if isinstance(v, list) and len(v) > MAX_CURVE_POINTS:
                    raise SubmissionError(f"{p}: $.runs[{i}].curve.{k}: {len(v)} points; leaderboard curves have "
                                          f"at most {MAX_CURVE_POINTS} (crbench writes 2000)")
    validate_results(obj, p)
    return obj


def name_problems(run: dict[str, Any], where: str) -> list[str]:
    """Identifiers of a run that the pages would show but that do not match the safe patterns.

    Parameters
    ----------
    run : dict
        One entry of ``runs``.
    where : str
        Prefix for each message (``FILE: $.runs[i]``).
    """
    out = []
    ds = run.get("provenance", {}).get("dataset", {})
    checks = [("detector", run.get("detector")), ("dataset", run.get("dataset")), ("split", run.get("split")),
              ("provenance.dataset.version", ds.get("version"))]
    for key, value in checks:
        if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
            out.append(f"{where}.{key}: {str(value)[:80]!r} is not a leaderboard name; use 1-64 characters "
                       f"matching {SAFE_NAME.pattern} (letters, digits, '.', '_', '+', '-')")
    return out


# ------------------------------------------------------------------------------ summary vs curve

def _bounds_tpr_at_fpr(x: np.ndarray, y: np.ndarray, target: float) -> tuple[float, float]:
    xs, ys = np.r_[0.0, x], np.r_[0.0, y]
    k = int(np.searchsorted(xs, target, side="right")) - 1
    if k >= len(xs) - 1:
        return float(ys[-1]), float(ys[-1])
    return float(min(ys[k], ys[k + 1])), float(max(ys[k], ys[k + 1]))


def _prec(tp: np.ndarray, fp: np.ndarray, empty: float) -> np.ndarray:
    pred = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pred > 0, tp / np.where(pred > 0, pred, 1.0), empty)


def curve_bounds(curve: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Interval each curve-determined summary metric must lie in, given the kept curve points.

    Parameters
    ----------
    curve : dict
        ``fpr``, ``tpr`` (cumulative, thresholds decreasing), ``n_pos``, ``n_neg``.

    Returns
    -------
    dict
        ``{metric: (low, high)}`` for ``roc_auc``, ``ap``, ``best_dice``, ``tpr_at_fpr_<f>`` and
        ``precision_at_recall_<r>`` (the last two as functions, see :func:`summary_problems`);
        empty when a class is empty (the metrics are then undefined).
    """
    n_pos, n_neg = int(curve["n_pos"]), int(curve["n_neg"])
    x = np.asarray([np.nan if v is None else v for v in curve["fpr"]], dtype=float)
    y = np.asarray([np.nan if v is None else v for v in curve["tpr"]], dtype=float)
    if n_pos == 0 or n_neg == 0 or len(x) == 0:
        return {}
    tp, fp = y * n_pos, x * n_neg
    # between kept points a and b the full curve's counts lie in [count_a, count_b]
    tp_a, tp_b, fp_a, fp_b = tp[:-1], tp[1:], fp[:-1], fp[1:]
    dx, dy = np.diff(x), np.diff(y)
    out: dict[str, tuple[float, float]] = {}
    first_auc = x[0] * y[0] / 2.0
    out["roc_auc"] = (float(first_auc + np.sum(dx * y[:-1])), float(first_auc + np.sum(dx * y[1:])))
    first_ap = y[0] * _prec(tp[:1], fp[:1], 1.0)[0]
    p_lo = _prec(tp_a, fp_b, 0.0)
    p_hi = _prec(tp_b, fp_a, 1.0)
    out["ap"] = (float(first_ap + np.sum(dy * p_lo)), float(first_ap + np.sum(dy * p_hi)))
    dice = 2.0 * tp / np.maximum(tp + fp + n_pos, 1)
    dice_hi = 2.0 * tp_b / np.maximum(tp_b + fp_a + n_pos, 1)
    out["best_dice"] = (float(dice.max()), float(max(dice.max(), dice_hi.max() if len(dice_hi) else 0.0)))
    return out


def summary_problems(run: dict[str, Any], where: str) -> list[str]:
    """Summary numbers of a run that its submitted curve cannot produce.

    ``null`` and NaN mean "not defined / not reached" and are not compared, except ``roc_auc``
    and ``ap``, which every curve with both classes defines.

    Parameters
    ----------
    run : dict
        One entry of ``runs`` (its ``curve`` as submitted, before thinning).
    where : str
        Prefix for each message (``FILE: $.runs[i]``).
    """
    curve, summary = run["curve"], run["summary"]
    if not isinstance(curve.get("n_pos"), int) or not isinstance(curve.get("n_neg"), int):
        return [f"{where}.curve: 'n_pos' and 'n_neg' (class totals) are required to check the summary"]
    x = np.asarray([np.nan if v is None else v for v in curve["fpr"]], dtype=float)
    y = np.asarray([np.nan if v is None else v for v in curve["tpr"]], dtype=float)
    out = []
    if len(x) and (not np.all(np.isfinite(x)) or not np.all(np.isfinite(y))):
        return [f"{where}.curve: fpr and tpr must be finite numbers"]
    if np.any(np.diff(x) < -TOLERANCE) or np.any(np.diff(y) < -TOLERANCE):
        return [f"{where}.curve: fpr and tpr must not decrease (points at decreasing thresholds)"]
    rec = curve.get("recall")
    if isinstance(rec, list) and len(rec) == len(y) and len(y):
        r = np.asarray([np.nan if v is None else v for v in rec], dtype=float)
        if not np.allclose(r, y, atol=TOLERANCE, rtol=0, equal_nan=False):
            out.append(f"{where}.curve.recall: differs from curve.tpr (pixel recall is the TPR)")
    n_pos, n_neg = curve["n_pos"], curve["n_neg"]
    prec = curve.get("precision")
    if isinstance(prec, list) and len(prec) == len(y) and len(y):
        p = np.asarray([np.nan if v is None else v for v in prec], dtype=float)
        want = _prec(y * n_pos, x * n_neg, 1.0)
        bad = np.nonzero(~(np.abs(p - want) <= 1e-4))[0]
        if len(bad):
            j = int(bad[0])
            out.append(f"{where}.curve.precision[{j}]: {float(p[j])!r} but tpr, fpr, n_pos and n_neg give "
                       f"{want[j]:.6g}")
    bounds = curve_bounds(curve)
    checks: list[tuple[str, tuple[float, float] | None]] = []
    for key in ("roc_auc", "ap", "best_dice"):
        checks.append((key, bounds.get(key)))
    for key in summary:
        m = _TPR_KEY.fullmatch(key)
        if m:
            checks.append((key, _bounds_tpr_at_fpr(x, y, float(m.group(1))) if bounds else None))
        m = _PREC_KEY.fullmatch(key)
        if m:
            checks.append((key, _bounds_prec_at_recall(x, y, n_pos, n_neg, float(m.group(1))) if bounds else None))
    for key, b in checks:
        if key not in summary:
            continue
        v = summary[key]
        undefined = v is None or (isinstance(v, float) and math.isnan(v))
        if undefined:
            if b is not None and key in ("roc_auc", "ap"):
                out.append(f"{where}.summary.{key}: {v!r} but the curve gives {_interval(b)}")
            continue
        if b is None:
            out.append(f"{where}.summary.{key}: {v!r} but the curve (n_pos={n_pos}, n_neg={n_neg}) leaves it "
                       "undefined")
        elif not (b[0] - TOLERANCE <= v <= b[1] + TOLERANCE):
            out.append(f"{where}.summary.{key}: {v!r} does not match the submitted curve, which gives "
                       f"{_interval(b)}")
    return out


def _bounds_prec_at_recall(x: np.ndarray, y: np.ndarray, n_pos: int, n_neg: int,
                           recall: float) -> tuple[float, float] | None:
    tp, fp = y * n_pos, x * n_neg
    prec = _prec(tp, fp, 1.0)
    ok = y >= recall - 1e-12
    if not ok.any():
        return None
    lo = float(prec[ok].max())
    # full-curve points between kept a and b with recall >= r exist only where y_b >= r
    seg = ok[1:]
    hi_seg = _prec(tp[1:], fp[:-1], 1.0)[seg]
    hi = max(lo, float(hi_seg.max())) if len(hi_seg) else lo
    return lo, hi


def _interval(b: tuple[float, float]) -> str:
    return f"{b[0]:.6g}" if abs(b[1] - b[0]) < 1e-12 else f"a value in [{b[0]:.6g}, {b[1]:.6g}]"
