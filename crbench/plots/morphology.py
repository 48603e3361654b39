"""Per-morphology recall bars with their intervals."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..results import Results
from .style import _detector_styles, _figsize, _finite_or_nan, _style, save_figure

# ----------------------------------------------------------------------- per-morphology recall

def morphology_rows(results: Results) -> list[dict]:
    """Every ``by_morphology`` row of every run, with ``detector`` and ``dataset`` filled in."""
    rows = []
    for run in results.runs:
        for row in run.get("by_morphology") or []:
            r = dict(row)
            r.setdefault("detector", run["detector"])
            r.setdefault("dataset", run["dataset"])
            rows.append(r)
    return rows


def plot_morphology_recall(results: Results, stem: str | os.PathLike, *, metric: str = "recall_half",
                           width: str = "single") -> list[Path]:
    """Grouped bars of per-CR recall by morphology, one bar per detector, with 95% intervals.

    Parameters
    ----------
    results : Results
        Runs carrying ``by_morphology`` rows (``morphology``, ``n_crs``, ``<metric>``, optionally
        ``<metric>_lo`` and ``<metric>_hi``). Runs of several datasets are labelled by dataset.
    stem : path
        Output path without suffix (``.pdf`` and ``.png`` are written).
    metric : str
        Row column to plot: ``recall_any``, ``recall_half``, ``recall_charge90`` or
        ``pixel_tpr_at_fpr_5e-4``.
    width : {'single', 'double'}
        Column width.

    Raises
    ------
    ValueError
        If no run has per-morphology rows with ``metric``.
    """
    from ..sample import MORPHOLOGIES

    rows = [r for r in morphology_rows(results) if metric in r]
    if not rows:
        raise ValueError(f"no run has per-morphology rows with {metric!r}; score with a crbench whose harness "
                         "writes by_morphology results")
    multi = len({r["dataset"] for r in rows}) > 1
    labels = []
    for r in rows:
        lab = f"{r['detector']} ({r['dataset']})" if multi else r["detector"]
        r["_label"] = lab
        if lab not in labels:
            labels.append(lab)
    morphs = [m for m in MORPHOLOGIES if any(r["morphology"] == m and (r.get("n_crs") or 0) > 0 for r in rows)]
    morphs += sorted({r["morphology"] for r in rows if (r.get("n_crs") or 0) > 0} - set(morphs))
    if not morphs:
        raise ValueError("the per-morphology rows count no CRs")
    plt = _style()
    fig, ax = plt.subplots(figsize=_figsize(width, 0.62))
    n = len(labels)
    bar_w = 0.8 / n
    styles = _detector_styles(labels)
    n_crs: dict[str, int] = {}
    for j, lab in enumerate(labels):
        xs: list[float] = []
        ys: list[float] = []
        err: list[list[float]] = [[], []]
        for i, m in enumerate(morphs):
            row = next((x for x in rows if x["_label"] == lab and x["morphology"] == m), None)
            if row is None:
                continue
            v = _finite_or_nan(row.get(metric))
            n_crs.setdefault(m, int(row.get("n_crs") or 0))
            xs.append(i - 0.4 + bar_w * (j + 0.5))
            ys.append(v if np.isfinite(v) else 0.0)
            if not np.isfinite(v):  # operating point not reached: say so instead of a zero-height bar
                ax.text(xs[-1], 0.02, "not reached", rotation=90, fontsize=5, ha="center", va="bottom",
                        color="#555555")
            lo, hi = _finite_or_nan(row.get(f"{metric}_lo")), _finite_or_nan(row.get(f"{metric}_hi"))
            err[0].append(max(0.0, v - lo) if np.isfinite(lo) and np.isfinite(v) else 0.0)
            err[1].append(max(0.0, hi - v) if np.isfinite(hi) and np.isfinite(v) else 0.0)
        has_err = any(e > 0 for e in err[0] + err[1])
        ax.bar(xs, ys, width=bar_w * 0.92, color=styles[lab][0], label=lab,
               hatch="////" if styles[lab][1] != "-" else None, edgecolor="white", linewidth=0,
               yerr=np.array(err) if has_err else None, error_kw={"elinewidth": 0.8, "capsize": 1.5,
                                                                  "ecolor": "#333333"})
    ax.set_xticks(range(len(morphs)))
    ax.set_xticklabels([f"{m}\n(n={n_crs.get(m, 0)})" for m in morphs])
    ax.set_xlim(-0.5, len(morphs) - 0.5)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="x", visible=False)
    pretty = {"recall_any": "any pixel flagged", "recall_half": "\u2265 half its pixels flagged",
              "recall_charge90": "\u2265 90% of its charge flagged"}
    ax.set_ylabel(f"CR recall at operating point\n({pretty[metric]})" if metric in pretty
                  else ("Pixel TPR at FPR 5e-4" if metric == "pixel_tpr_at_fpr_5e-4" else metric))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=min(n, 3), frameon=False)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths

