"""Shared figure style: Okabe-Ito palette, column widths, saving as PDF + PNG, labels and bands."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..results import Results

#: Okabe-Ito colour-blind-safe palette.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
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
    """Save ``fig`` as ``stem.pdf`` (vector) and ``stem.png``; return both paths.

    The PDF carries no creation date, so the same figure gives the same bytes (a regenerated figure
    whose content did not move shows no change in version control)."""
    from ..atomic import atomic_path

    stem = Path(stem)
    paths = []
    for ext in ("pdf", "png"):
        p = stem.with_suffix(f".{ext}")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(p)
    return paths


def _label(run: dict, multi_dataset: bool) -> str:
    return run["detector"] if not multi_dataset else f"{run['detector']} ({run['dataset']})"


def _band(ax, x, lo, hi, keep, colour, step: str | None = None) -> bool:
    """Shade a 95% band; return whether one was drawn."""
    if lo is None or hi is None or len(lo) != len(keep):
        return False
    lo_a = np.asarray([np.nan if v is None else v for v in lo], dtype=float)[keep]
    hi_a = np.asarray([np.nan if v is None else v for v in hi], dtype=float)[keep]
    ok = np.isfinite(lo_a) & np.isfinite(hi_a)
    if ok.sum() > 1:
        ax.fill_between(np.asarray(x)[ok], lo_a[ok], hi_a[ok], color=colour, alpha=0.2, lw=0, step=step)
        return True
    return False


def _legend(ax, banded: bool, loc: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if banded:
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="#888888", alpha=0.35, lw=0))
        labels.append("95% bootstrap interval")
    if len(handles) > 5:  # many curves: the legend goes under the axes instead of over the data
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False,
                  columnspacing=1.2, handlelength=1.8)
    else:
        ax.legend(handles, labels, loc=loc, frameon=True, framealpha=0.85, edgecolor="none")


#: Linestyles used once the palette repeats (more than 8 curves).
LINESTYLES = ["-", "--", ":", "-."]
#: Mask colours of the cutout gallery (Okabe-Ito): true positive, false positive, false negative.
MASK_COLOURS = {"TP": "#0072B2", "FP": "#D55E00", "FN": "#009E73"}


def _figsize(width: str, aspect: float) -> tuple[float, float]:
    if width not in WIDTHS:
        raise ValueError(f"width must be one of {sorted(WIDTHS)}, got {width!r}")
    return WIDTHS[width], WIDTHS[width] * aspect


def _sci(x: float) -> str:
    """``5e-4`` style (no zero padding) for axis labels and titles."""
    mant, exp = f"{x:.0e}".split("e")
    return f"{mant}e{int(exp)}"


def _finite_or_nan(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _detector_styles(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Stable (colour, linestyle) per detector name, in first-seen order."""
    out: dict[str, tuple[str, str]] = {}
    for name in names:
        if name not in out:
            i = len(out)
            ls = LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)]
            if ls == "-" and i % len(PALETTE) >= 4:  # palette colours 5-8 echo 1-4 under CVD: dash them
                ls = "--"
            out[name] = (PALETTE[i % len(PALETTE)], ls)
    return out


def runs_by_dataset(results: Results) -> dict[str, Results]:
    groups: dict[str, Results] = {}
    for run in results.runs:
        groups.setdefault(run["dataset"], Results(meta=results.meta)).runs.append(run)
    return groups

