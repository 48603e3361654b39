"""ROC (log FPR) and precision-recall curves overlaying detectors, with 95% bands."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..results import Results
from .style import _band, _detector_styles, _figsize, _finite_or_nan, _label, _legend, _sci, _style, save_figure

def plot_roc(results: Results, stem: str | os.PathLike, *, width: str = "single",
             fpr_range: Sequence[float] | None = (1e-5, 1e-1), mark_fpr: float | None = 5e-4) -> list[Path]:
    """ROC curves (pixel TPR against log pixel FPR) of every run, with 95% bands when present.

    Parameters
    ----------
    results : Results
        Runs to overlay (labelled by detector, and by dataset when there are several).
    stem : path
        Output path without suffix; ``.pdf`` (vector) and ``.png`` are written.
    width : {'single', 'double'}
        Single (3.5 in) or double (7.1 in) column width.
    fpr_range : (lo, hi) or None
        FPR axis limits; ``None`` starts at the decade below the smallest FPR and ends at 0.1.
    mark_fpr : float or None
        Draw a dotted vertical line at this FPR (the leaderboard's operating point).
    """
    plt = _style()
    fig, ax = plt.subplots(figsize=_figsize(width, 0.8))
    multi = len({r["dataset"] for r in results.runs}) > 1
    styles = _detector_styles([_label(r, multi) for r in results.runs])
    min_fpr = 1.0
    banded = False
    for run in results.runs:
        c = run["curve"]
        fpr = np.asarray(c["fpr"], dtype=float)
        tpr = np.asarray(c["tpr"], dtype=float)
        keep = (fpr > 0) & np.isfinite(fpr) & np.isfinite(tpr)
        if keep.any():
            min_fpr = min(min_fpr, float(fpr[keep].min()))
        colour, ls = styles[_label(run, multi)]
        auc = _finite_or_nan(run["summary"].get("roc_auc"))
        extra = " (extrapolated)" if run["summary"].get("roc_auc_extrapolated") else ""
        ax.plot(fpr[keep], tpr[keep], color=colour, ls=ls, label=f"{_label(run, multi)}  AUC={auc:.3f}{extra}")
        banded = _band(ax, fpr[keep], c.get("tpr_lo"), c.get("tpr_hi"), keep, colour) or banded
    ax.set_xscale("log")
    if fpr_range is None:
        fpr_range = (min(1e-3, 10 ** np.floor(np.log10(max(min_fpr, 1e-8)))), 1e-1)
    ax.set_xlim(*fpr_range)
    if mark_fpr is not None and fpr_range[0] < mark_fpr < fpr_range[1]:
        ax.axvline(mark_fpr, color="#777777", lw=0.8, ls=":", zorder=0)
        ax.text(mark_fpr * 1.12, 0.3, f"FPR {_sci(mark_fpr)}", color="#555555", fontsize=6, ha="left",
                va="bottom", rotation=90)
    return _finish(fig, ax, stem, "False positive rate (pixels)", "True positive rate (pixels)", banded, "lower right")


def plot_pr(results: Results, stem: str | os.PathLike, *, width: str = "single") -> list[Path]:
    """Precision-recall curves (pixel level) of every run, with 95% bands when present."""
    plt = _style()
    fig, ax = plt.subplots(figsize=_figsize(width, 0.8))
    multi = len({r["dataset"] for r in results.runs}) > 1
    styles = _detector_styles([_label(r, multi) for r in results.runs])
    banded = False
    for run in results.runs:
        c = run["curve"]
        rec = np.asarray(c["recall"], dtype=float)
        prec = np.asarray(c["precision"], dtype=float)
        keep = np.isfinite(rec) & np.isfinite(prec)
        colour, ls = styles[_label(run, multi)]
        ap = _finite_or_nan(run["summary"].get("ap"))
        # steps: precision P_k holds on (R_(k-1), R_k], the interpolation AP sums (no optimistic lines)
        ax.plot(rec[keep], prec[keep], color=colour, ls=ls, drawstyle="steps-pre",
                label=f"{_label(run, multi)}  AP={ap:.3f}")
        banded = _band(ax, rec[keep], c.get("precision_lo"), c.get("precision_hi"), keep, colour,
                       step="pre") or banded
    frac = [_finite_or_nan(r["summary"].get("cr_pixel_fraction")) for r in results.runs]
    frac = [f for f in frac if np.isfinite(f)]
    if frac and not multi:
        ax.axhline(frac[0], color="#777777", lw=0.8, ls=":", label=f"chance ({frac[0]:.2%} CR pixels)")
    ax.set_xlim(0, 1.0)
    return _finish(fig, ax, stem, "Recall (pixels)", "Precision (pixels)", banded, "lower left")


def _finish(fig, ax, stem: str | os.PathLike, xlabel: str, ylabel: str, banded: bool, loc: str) -> list[Path]:
    """Rate axis 0-1, labels, legend; save as PDF + PNG and close."""
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend(ax, banded, loc)
    paths = save_figure(fig, stem)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths

