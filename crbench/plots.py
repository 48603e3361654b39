"""Paper-ready plots: ROC (log FPR) and PR curves overlaying detectors, saved as PDF and PNG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .results import Results

#: Okabe-Ito colour-blind-safe palette.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
#: Figure widths in inches for single- and double-column layouts (AAS/A&A-like).
WIDTHS = {"single": 3.5, "double": 7.1}


def _style():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.size": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
        "ytick.labelsize": 7, "lines.linewidth": 1.2, "axes.grid": True, "grid.alpha": 0.3,
        "savefig.bbox": "tight", "savefig.dpi": 300, "pdf.fonttype": 42,
    })
    return plt


def save_figure(fig, stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``stem.pdf`` (vector) and ``stem.png``; return both paths."""
    from .atomic import atomic_path

    stem = Path(stem)
    paths = []
    for ext in ("pdf", "png"):
        p = stem.with_suffix(f".{ext}")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext)
        paths.append(p)
    return paths


def _label(run: dict, multi_dataset: bool) -> str:
    s = run["summary"]
    base = run["detector"] if not multi_dataset else f"{run['detector']} ({run['dataset']})"
    return base


def plot_roc(results: Results, stem: str | os.PathLike, *, width: str = "single",
             fpr_range: Sequence[float] = (1e-5, 1e-1)) -> list[Path]:
    """ROC curves (TPR against log FPR) of every run in ``results``."""
    plt = _style()
    fig, ax = plt.subplots(figsize=(WIDTHS[width], WIDTHS[width] * 0.8))
    multi = len({r["dataset"] for r in results.runs}) > 1
    for i, run in enumerate(results.runs):
        c = run["curve"]
        fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
        keep = fpr > 0
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(fpr[keep], tpr[keep], color=colour,
                label=f"{_label(run, multi)}  AUC={run['summary'].get('roc_auc', float('nan')):.3f}")
        lo, hi = c.get("tpr_lo"), c.get("tpr_hi")
        if lo is not None and hi is not None:
            ax.fill_between(fpr[keep], np.asarray(lo)[keep], np.asarray(hi)[keep], color=colour, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlim(*fpr_range)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate (pixels)")
    ax.set_ylabel("True positive rate (pixels)")
    ax.legend(loc="lower right", frameon=False)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def plot_pr(results: Results, stem: str | os.PathLike, *, width: str = "single") -> list[Path]:
    """Precision-recall curves of every run in ``results``."""
    plt = _style()
    fig, ax = plt.subplots(figsize=(WIDTHS[width], WIDTHS[width] * 0.8))
    multi = len({r["dataset"] for r in results.runs}) > 1
    for i, run in enumerate(results.runs):
        c = run["curve"]
        colour = PALETTE[i % len(PALETTE)]
        ax.plot(c["recall"], c["precision"], color=colour,
                label=f"{_label(run, multi)}  AP={run['summary'].get('ap', float('nan')):.3f}")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall (pixels)")
    ax.set_ylabel("Precision (pixels)")
    ax.legend(loc="lower left", frameon=False)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths
