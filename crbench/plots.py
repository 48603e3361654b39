"""Paper-ready plots, each saved as vector PDF and PNG at single- or double-column width.

ROC (log FPR) and PR curves overlaying detectors with 95% bands, per-morphology recall bars with
intervals, class-imbalance histograms, a cutout gallery (image, truth, each detector's mask at its
operating point with TP/FP/FN coloured) and the sim-to-real gap. Colours are the Okabe-Ito
colour-blind-safe palette; fonts are 7-8 pt at print size.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UsageError
from .metrics.operating import score_threshold
from .results import Results

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
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate (pixels)")
    ax.set_ylabel("True positive rate (pixels)")
    _legend(ax, banded, "lower right")
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


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
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall (pixels)")
    ax.set_ylabel("Precision (pixels)")
    _legend(ax, banded, "lower left")
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------- shared helpers

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
    from .sample import MORPHOLOGIES

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


# ------------------------------------------------------------------------- class imbalance

def plot_class_imbalance(dataset, out_dir: str | os.PathLike, *, width: str = "double") -> list[Path]:
    """The dataset's class-imbalance histograms, paper style, as ``class_imbalance_<name>.{pdf,png}``.

    Left: the per-image CR pixel fraction; right: CR sizes per morphology (log-log). Statistics
    come from :func:`crbench.dataset_info.dataset_statistics` (the card's, recomputed from the
    samples when the card has none); ``crbench datasets info --plot`` draws quick-look versions.

    Parameters
    ----------
    dataset : Dataset, folder or recipe name
        A built dataset.
    out_dir : path
        Folder for the PDF and PNG files.
    width : {'single', 'double'}
        Column width.
    """
    from .dataset import Dataset

    if not isinstance(dataset, Dataset):
        from .recipes import resolve_dataset

        dataset = resolve_dataset(dataset, build_missing=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        from .dataset_info import dataset_statistics
    except ImportError:  # pragma: no cover - dataset_info ships with crbench
        stats = dataset.card.get("statistics") or {}
    else:
        stats = dataset_statistics(dataset)
    return _class_imbalance_figure(dataset, stats, out / f"class_imbalance_{dataset.name}", width)


def _class_imbalance_figure(dataset, stats: dict, stem: Path, width: str) -> list[Path]:
    from .sample import MORPHOLOGIES

    frac = np.asarray(stats.get("per_image_cr_pixel_fraction") or [], dtype=float)
    inst = dataset.instances()
    plt = _style()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=_figsize(width, 0.36))
    pos = frac[frac > 0]
    if len(pos):
        from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

        n_bins = max(6, min(30, len(pos) // 2 + 2))
        wide = pos.max() / pos.min() > 20
        if wide:
            bins = np.logspace(np.log10(pos.min()) - 0.05, np.log10(pos.max()) + 0.05, n_bins) * 100
        else:
            span = pos.max() - pos.min()
            pad = 0.05 * span if span > 0 else 0.05 * pos.max()
            bins = np.linspace(pos.min() - pad, pos.max() + pad, max(6, min(25, int(np.sqrt(len(pos)) * 2)))) * 100
        a1.hist(pos * 100, bins=bins, color=PALETTE[0])
        if wide:
            a1.set_xscale("log")
            a1.xaxis.set_minor_formatter(NullFormatter())
        a1.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
        a1.yaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_xlabel("CR pixel fraction per image")
    a1.set_ylabel("Images")
    a1.set_title(f"{dataset.name}: {len(frac)} images, pooled {stats.get('cr_pixel_fraction', {}).get('pooled', float('nan')):.2%} CR pixels",
                 fontsize=7)
    if len(inst):
        sizes = inst["pixels"].to_numpy(dtype=float)
        bins = np.unique(np.round(np.logspace(0, np.log10(max(2.0, sizes.max())) + 0.05, 25))) + 0.5
        bins = np.r_[0.5, bins]
        for i, m in enumerate(MORPHOLOGIES):
            sel = inst["morphology"] == m
            if sel.any():
                a2.hist(inst.loc[sel, "pixels"], bins=bins, histtype="step", lw=1.2, color=PALETTE[i],
                        label=f"{m} (n={int(sel.sum())})")
        a2.set_xscale("log")
        a2.set_yscale("log")
        from matplotlib.ticker import FuncFormatter

        a2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a2.set_xlim(left=0.8)
        a2.legend(frameon=False)
        a2.set_title(f"{len(inst)} CRs by morphology", fontsize=7)
    a2.set_xlabel("CR size (pixels)")
    a2.set_ylabel("CRs")
    fig.tight_layout()
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------------------ sim-to-real gap

def plot_sim_to_real_gap(real: Results, sim: Results, stem: str | os.PathLike, *,
                         metric: str = "tpr_at_fpr_5e-4", width: str = "single") -> list[Path]:
    """Dumbbell chart: each detector's score on real data against its score on the simulated twin.

    Detectors are matched by name; 95% intervals (``<metric>_lo``/``_hi`` summary columns) are drawn
    when present. Detectors are sorted by the gap (real minus simulated).

    Raises
    ------
    ValueError
        If no detector appears in both results.
    """
    def table(res: Results) -> dict[str, dict]:
        return {r["detector"]: r["summary"] for r in res.runs}

    t_real, t_sim = table(real), table(sim)
    names = [n for n in t_sim if n in t_real]
    if not names:
        raise UsageError(f"no detector is in both results (real: {sorted(t_real)}, simulated: {sorted(t_sim)})")
    real_ds = real.runs[0]["dataset"]
    sim_ds = sim.runs[0]["dataset"]
    vals = {n: (_finite_or_nan(t_sim[n].get(metric)), _finite_or_nan(t_real[n].get(metric))) for n in names}
    names.sort(key=lambda n: (vals[n][1] - vals[n][0]) if np.isfinite(vals[n][1] - vals[n][0]) else -np.inf)
    plt = _style()
    fig, ax = plt.subplots(figsize=_figsize(width, 0.25 + 0.13 * len(names)))
    for i, n in enumerate(names):
        s, r = vals[n]
        ax.plot([s, r], [i, i], color="#999999", lw=1.0, zorder=1)
        for summ, v, kw in ((t_sim[n], s, {"marker": "o", "mfc": "white", "mec": PALETTE[0]}),
                            (t_real[n], r, {"marker": "o", "mfc": PALETTE[1], "mec": PALETTE[1]})):
            lo, hi = _finite_or_nan(summ.get(f"{metric}_lo")), _finite_or_nan(summ.get(f"{metric}_hi"))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [i, i], color=kw["mec"], lw=2.5, alpha=0.35, zorder=2, solid_capstyle="butt")
            ax.plot([v], [i], ls="none", ms=5, zorder=3, **kw)
        if np.isfinite(s) and np.isfinite(r):
            right = max([s, r] + [v for v in (_finite_or_nan(t_sim[n].get(f"{metric}_hi")),
                                             _finite_or_nan(t_real[n].get(f"{metric}_hi"))) if np.isfinite(v)])
            ax.annotate(f"{r - s:+.3f}", (right, i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=6.5, color="#333333")
    ax.plot([], [], "o", mfc="white", mec=PALETTE[0], label=f"simulated twin ({sim_ds})")
    ax.plot([], [], "o", mfc=PALETTE[1], mec=PALETTE[1], label=f"real ({real_ds})")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    finite = [v for pair in vals.values() for v in pair if np.isfinite(v)]
    lo = min(finite) if finite else 0.0
    ax.set_xlim(max(0.0, lo - 0.1), 1.08)
    ax.grid(axis="y", visible=False)
    pretty = {"tpr_at_fpr_5e-4": "TPR at pixel FPR 5e-4", "tpr_at_fpr_1e-4": "TPR at pixel FPR 1e-4",
              "ap": "Average precision", "roc_auc": "ROC AUC", "best_dice": "Best Dice"}
    ax.set_xlabel(f"{pretty.get(metric, metric)}  (numbers: real \u2212 simulated)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


# -------------------------------------------------------------------------------- cutout gallery

def operating_threshold(scores: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                        valids: Sequence[np.ndarray | None], fpr: float) -> float:
    """The loosest threshold ``t`` with pixel FPR of ``score >= t`` at most ``fpr`` over the given images
    (:func:`crbench.metrics.operating.score_threshold`; NaN when not reached)."""
    return score_threshold(scores, truths, valids, fpr)


def _threshold_from_results(results: Results | None, detector: str, dataset: str, fpr: float) -> float | None:
    """``t`` such that ``score >= t`` is the run's operating point (its recorded ``op_threshold``, else
    the curve's threshold at ``fpr``); NaN when the run's operating point was not reached; None when
    ``results`` has no run of the detector on the dataset."""
    if results is None:
        return None
    for run in results.runs:
        if run["detector"] == detector and run["dataset"] == dataset:
            if "op_threshold" in run["summary"]:
                op = run["summary"].get("op_threshold")
                if isinstance(op, (int, float)) and not isinstance(op, bool) and np.isfinite(op):
                    return float(op)
                return float("nan")  # not reached (older results recorded it as inf)
            c = run["curve"]
            f = np.asarray(c["fpr"], dtype=float)
            th = np.asarray(c["thresholds"], dtype=float)
            ok = np.nonzero(f <= fpr)[0]
            return float(th[ok[-1]]) if len(ok) else float("nan")
    return None


def select_cutouts(truth: np.ndarray, labels: np.ndarray | None, instances, sources: np.ndarray | None,
                   masks: dict[str, np.ndarray], size: int) -> list[dict]:
    """Rank informative cutout centres in one image (pure function).

    Candidates, most informative first: CR tracks/worms that a detector misses (less than half
    their pixels flagged; longest first), false positives on stars (flagged source pixels),
    other false-positive clusters, and a track every detector finds (for contrast).

    Returns
    -------
    list of dict
        ``kind``, ``y``, ``x``, ``weight`` and ``detector`` (the detector concerned).
    """
    from scipy import ndimage

    cands: list[dict] = []
    h, w = truth.shape
    if labels is not None and instances is not None and len(instances):
        for _, inst in instances.iterrows():
            m = labels == int(inst["id"])
            if not m.any():
                continue
            ys, xs = np.nonzero(m)
            cy, cx = int(np.median(ys)), int(np.median(xs))
            elongated = str(inst["morphology"]) in ("track", "worm")
            found = {d: float(mask[m].mean()) for d, mask in masks.items()}
            for d, f in found.items():
                if f < 0.5 and elongated:
                    cands.append({"kind": "missed track", "y": cy, "x": cx, "weight": 3.0 + m.sum() / 100.0,
                                  "detector": d})
            if elongated and found and min(found.values()) >= 0.9:
                cands.append({"kind": "detected track", "y": cy, "x": cx, "weight": 0.5 + m.sum() / 1000.0,
                              "detector": None})
    for d, mask in masks.items():
        fp = mask & ~truth
        if not fp.any():
            continue
        lab, n = ndimage.label(fp, structure=np.ones((3, 3)))
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        sizes = ndimage.sum(fp, lab, idx)
        on_src = ndimage.sum(sources, lab, idx) if sources is not None else np.zeros(n)
        centres = ndimage.center_of_mass(fp, lab, idx)
        for k in np.argsort(-sizes)[:20]:
            cy, cx = (int(round(c)) for c in centres[k])
            if on_src[k] > 0:
                cands.append({"kind": "flagged star", "y": cy, "x": cx, "weight": 2.0 + sizes[k] / 100.0,
                              "detector": d})
            else:
                cands.append({"kind": "false positive", "y": cy, "x": cx, "weight": 1.0 + sizes[k] / 100.0,
                              "detector": d})
    for c in cands:
        c["y"] = int(np.clip(c["y"], size // 2, max(size // 2, h - size + size // 2)))
        c["x"] = int(np.clip(c["x"], size // 2, max(size // 2, w - size + size // 2)))
    cands.sort(key=lambda c: -c["weight"])
    return cands


def _pick(cands: list[dict], n: int, size: int) -> list[dict]:
    """Round-robin over kinds (in priority order), skipping overlapping cutouts of one image."""
    order = ["missed track", "flagged star", "false positive", "detected track"]
    by_kind = {k: [c for c in cands if c["kind"] == k] for k in order}
    chosen: list[dict] = []
    while len(chosen) < n and any(by_kind.values()):
        for k in order:
            while by_kind[k]:
                c = by_kind[k].pop(0)
                if all(c["sample"] != o["sample"] or abs(c["y"] - o["y"]) > size // 2
                       or abs(c["x"] - o["x"]) > size // 2 for o in chosen):
                    chosen.append(c)
                    break
            if len(chosen) >= n:
                break
    return chosen


def _stretch(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1.0, 99.7])
    if not hi > lo:
        hi = lo + 1.0
    x = np.clip((img - lo) / (hi - lo), 0, 1)
    return np.arcsinh(10 * x) / np.arcsinh(10)


def _rgb(hexcolour: str) -> np.ndarray:
    hexcolour = hexcolour.lstrip("#")
    return np.array([int(hexcolour[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])


def _mask_panel(truth: np.ndarray, mask: np.ndarray | None, sources: np.ndarray | None) -> np.ndarray:
    rgb = np.ones(truth.shape + (3,))
    if sources is not None:
        rgb[sources] = 0.85
    if mask is None:  # truth panel
        rgb[truth] = 0.0
        return rgb
    rgb[truth & mask] = _rgb(MASK_COLOURS["TP"])
    rgb[~truth & mask] = _rgb(MASK_COLOURS["FP"])
    rgb[truth & ~mask] = _rgb(MASK_COLOURS["FN"])
    return rgb


def plot_cutout_gallery(dataset, detectors, split: str = "test", out: str | os.PathLike = "gallery", *,
                        results: Results | None = None, fpr: float = 5e-4, n_cutouts: int = 4,
                        size: int = 32, max_samples: int = 3, width: str = "double") -> list[Path]:
    """Gallery of informative cutouts: image, truth, and each detector's mask at its operating point.

    Detectors are rerun on a few samples of ``split`` (those with the most tracks first). Each
    detector's mask is its operating point: the run's ``op_threshold`` when ``results`` has the
    detector on this dataset (chosen by the harness, e.g. on the validation split), else the
    threshold giving pixel FPR ``fpr`` on the curve in ``results``, else on the samples shown. Cutouts are chosen to be informative: tracks a detector misses, flagged star
    cores, other false positives, then a track all detectors find. Masks show true positives,
    false positives and false negatives in colour-blind-safe colours; stars are light grey.

    Parameters
    ----------
    dataset : Dataset, folder or recipe name
        A built dataset with truth.
    detectors : sequence of Detector or specs
        Detectors to show (names, ``module:Class`` specs or instances).
    split : str
        Split to draw samples from.
    out : path
        Output stem; ``.pdf`` and ``.png`` are written.
    results : Results, optional
        Results with the detectors' curves (for their operating thresholds).
    fpr : float
        Operating point: pixel false-positive rate.
    n_cutouts, size, max_samples : int
        Rows in the gallery, cutout side in pixels, samples rerun.
    width : {'single', 'double'}
        Column width.

    Returns
    -------
    list of Path
    """
    from .dataset import Dataset
    from .detectors.registry import get_detector
    from .harness import run_detector

    if not isinstance(dataset, Dataset):
        from .recipes import resolve_dataset

        dataset = resolve_dataset(dataset, build_missing=False)
    if isinstance(detectors, (str,)) or hasattr(detectors, "score"):
        detectors = [detectors]
    dets = [get_detector(d) for d in detectors]
    if not dets:
        raise ValueError("plot_cutout_gallery needs at least one detector")
    ids = dataset.ids(split)
    inst = dataset.instances()
    if len(inst) and "morphology" in inst.columns:
        tracks = inst[inst["morphology"].isin(["track", "worm"])].groupby("sample_id").size()
        ids = sorted(ids, key=lambda s: -int(tracks.get(s, 0)))
    samples = [dataset.load(s, load_companions=any(r != "image" for d in dets for r in d.requires))
               for s in ids[:max_samples]]
    samples = [s for s in samples if s.truth is not None]
    if not samples:
        raise UsageError(f"dataset {dataset.name!r} split {split!r} has no labelled samples for a gallery")
    scores = {d.name: [run_detector(d, s)[0] for s in samples] for d in dets}
    thresholds = {}
    rules = set()
    for d in dets:
        t = _threshold_from_results(results, d.name, dataset.name, fpr)
        run = next((r for r in (results.runs if results is not None else [])
                    if r["detector"] == d.name and r["dataset"] == dataset.name), None)
        if run is not None and "op_threshold" in run["summary"]:
            rules.add(f"{run['summary'].get('op_rule', '?')} chosen on {run['summary'].get('op_chosen_on', '?')}")
        else:
            rules.add(f"fpr:{_sci(fpr)}")
        if t is None:
            t = operating_threshold(scores[d.name], [s.truth for s in samples],
                                    [~s.ignore_or_false() for s in samples], fpr)
        thresholds[d.name] = t
        if not np.isfinite(t):
            rules.add("not reached")
    cands = []
    for i, s in enumerate(samples):
        masks = {d.name: (scores[d.name][i] >= thresholds[d.name]) & ~s.ignore_or_false() for d in dets}
        for c in select_cutouts(s.truth & ~s.ignore_or_false(), s.labels, s.instances, s.sources, masks, size):
            c["sample"] = i
            cands.append(c)
    chosen = _pick(sorted(cands, key=lambda c: -c["weight"]), n_cutouts, size)
    if not chosen:  # nothing remarkable: show the brightest CR
        s = samples[0]
        ys, xs = np.nonzero(s.truth) if s.truth.any() else (np.array([size // 2]), np.array([size // 2]))
        k = int(np.argmax(s.image[ys, xs]))
        chosen = [{"kind": "CR", "y": int(ys[k]), "x": int(xs[k]), "sample": 0, "detector": None}]
    plt = _style()
    ncols = 2 + len(dets)
    fig_w = _figsize(width, 1.0)[0]
    legend_cols = 5 if width == "double" else 3
    left_in, top_in, gap = 0.78, 0.46, 0.04
    bottom_in = 0.12 + 0.14 * int(np.ceil(5 / legend_cols))
    panel = (fig_w - left_in - 0.05) / (ncols + gap * (ncols - 1))
    rows_h = panel * (len(chosen) + gap * (len(chosen) - 1))
    fig_h = rows_h + top_in + bottom_in
    fig, axes = plt.subplots(len(chosen), ncols, figsize=(fig_w, fig_h), squeeze=False,
                             gridspec_kw={"wspace": gap, "hspace": gap})
    fig.subplots_adjust(left=left_in / fig_w, right=1 - 0.05 / fig_w, top=1 - top_in / fig_h,
                        bottom=bottom_in / fig_h)
    for r, c in enumerate(chosen):
        s = samples[c["sample"]]
        h, w = s.shape
        y0 = int(np.clip(c["y"] - size // 2, 0, max(0, h - size)))
        x0 = int(np.clip(c["x"] - size // 2, 0, max(0, w - size)))
        sl = (slice(y0, y0 + size), slice(x0, x0 + size))
        truth = (s.truth & ~s.ignore_or_false())[sl]
        src = s.sources[sl] if s.sources is not None else None
        panels = [("Image", _stretch(s.image[sl]), "gray"), ("Truth", _mask_panel(truth, None, src), None)]
        for d in dets:
            m = (scores[d.name][c["sample"]] >= thresholds[d.name])[sl] & ~s.ignore_or_false()[sl]
            panels.append((d.name, _mask_panel(truth, m, src), None))
        for k, (title, img, cmap) in enumerate(panels):
            ax = axes[r, k]
            ax.imshow(img, cmap=cmap, interpolation="nearest", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                if len(title) > 11 and "-" in title and ncols > 5:
                    title = title.replace("-", "-\n", 1)
                ax.set_title(title, fontsize=7 if ncols <= 5 else 6)
        who = f"\n({c['detector']})" if c.get("detector") and len(dets) > 1 else ""
        axes[r, 0].set_ylabel(f"{c['kind']}{who}\n{s.id}", fontsize=6 if ncols <= 5 else 5.5, rotation=0,
                              ha="right", va="center", labelpad=4)
    from matplotlib.patches import Patch

    handles = [Patch(color=MASK_COLOURS["TP"], label="true positive"),
               Patch(color=MASK_COLOURS["FP"], label="false positive"),
               Patch(color=MASK_COLOURS["FN"], label="false negative (missed)"),
               Patch(facecolor="black", label="CR (truth)"),
               Patch(facecolor="#d9d9d9", edgecolor="#999999", lw=0.5, label="star")]
    fig.legend(handles=handles, loc="lower center", ncol=legend_cols, frameon=False,
               fontsize=6, bbox_to_anchor=(0.5, 0.0), handlelength=1.0, columnspacing=1.0)
    rule = rules.pop() if len(rules) == 1 else "per detector"
    rule = rule.replace("fpr:", "pixel FPR ").replace("0.0005", "5e-4").replace("0.0001", "1e-4")
    fig.suptitle(f"{dataset.name}/{split}: masks at the operating point ({rule}); {size}\u00d7{size} px cutouts",
                 fontsize=7, y=1 - 0.04 / fig_h, va="top")
    paths = save_figure(fig, out)
    plt.close(fig)
    return paths
