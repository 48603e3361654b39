"""Cutout gallery: image, truth and each detector's mask at its operating point (TP/FP/FN coloured).

The gallery draws score maps it is given; it never runs a detector (``crbench plot`` computes them
with :func:`crbench.harness.run_detector`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import UsageError
from ..metrics.operating import score_threshold
from ..results import Results
from .style import MASK_COLOURS, _figsize, _sci, _style, save_figure

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


def gallery_samples(dataset, split: str = "test", max_samples: int = 3, *,
                    load_companions: bool = False) -> list:
    """The labelled samples a gallery shows: up to ``max_samples`` of ``split``, most tracks first.

    Parameters
    ----------
    dataset : Dataset, folder or recipe name
        A built dataset with truth.
    split : str
        Split to draw samples from.
    max_samples : int
        Most samples returned.
    load_companions : bool
        Load the companion exposures too (for detectors that need them).

    Returns
    -------
    list of Sample

    Raises
    ------
    UsageError
        If the split has no labelled sample.
    """
    from ..dataset import Dataset

    if not isinstance(dataset, Dataset):
        from ..recipes import resolve_dataset

        dataset = resolve_dataset(dataset, build_missing=False)
    ids = dataset.ids(split)
    inst = dataset.instances()
    if len(inst) and "morphology" in inst.columns:
        tracks = inst[inst["morphology"].isin(["track", "worm"])].groupby("sample_id").size()
        ids = sorted(ids, key=lambda s: -int(tracks.get(s, 0)))
    samples = [dataset.load(s, load_companions=load_companions) for s in ids[:max_samples]]
    samples = [s for s in samples if s.truth is not None]
    if not samples:
        raise UsageError(f"dataset {dataset.name!r} split {split!r} has no labelled samples for a gallery")
    return samples


def plot_cutout_gallery(samples: Sequence, scores: Mapping[str, Sequence[np.ndarray]],
                        out: str | os.PathLike = "gallery", *, dataset_name: str, split: str = "test",
                        results: Results | None = None, fpr: float = 5e-4, n_cutouts: int = 4,
                        size: int = 32, width: str = "double") -> list[Path]:
    """Gallery of informative cutouts: image, truth, and each detector's mask at its operating point.

    The gallery draws the score maps it is given (one per sample and detector, e.g. from
    :func:`crbench.harness.run_detector`); it runs no detector. Each detector's mask is its
    operating point: the run's ``op_threshold`` when ``results`` has the detector on this dataset
    (chosen by the harness, e.g. on the validation split), else the threshold giving pixel FPR
    ``fpr`` on the curve in ``results``, else on the samples shown. Cutouts are chosen to be
    informative: tracks a detector misses, flagged star cores, other false positives, then a track
    all detectors find. Masks show true positives, false positives and false negatives in
    colour-blind-safe colours; stars are light grey.

    Parameters
    ----------
    samples : sequence of Sample
        Labelled samples (:func:`gallery_samples` picks them).
    scores : mapping of str to sequence of ndarray
        Detector name -> its score map of each sample, in the order of ``samples``.
    out : path
        Output stem; ``.pdf`` and ``.png`` are written.
    dataset_name, split : str
        The samples' dataset and split (to find the runs in ``results``; shown in the title).
    results : Results, optional
        Results with the detectors' curves (for their operating thresholds).
    fpr : float
        Operating point: pixel false-positive rate.
    n_cutouts, size : int
        Rows in the gallery, cutout side in pixels.
    width : {'single', 'double'}
        Column width.

    Returns
    -------
    list of Path

    Raises
    ------
    UsageError
        If there is no sample or no detector, a sample has no truth, or a detector's score maps do
        not match the samples in number or shape.
    """
    samples = list(samples)
    if not samples or not scores:
        raise UsageError("plot_cutout_gallery needs at least one sample and one detector's score maps")
    for s in samples:
        if s.truth is None:
            raise UsageError(f"plot_cutout_gallery: sample {s.id!r} has no truth mask")
    for name, maps in scores.items():
        if len(maps) != len(samples) or any(np.shape(m) != s.shape for m, s in zip(maps, samples)):
            raise UsageError(f"plot_cutout_gallery: detector {name!r} gives {len(maps)} score map(s) of shapes "
                             f"{[np.shape(m) for m in maps]}; expected one per sample, shapes "
                             f"{[s.shape for s in samples]}")
    names = list(scores)
    thresholds = {}
    rules = set()
    for name in names:
        t = _threshold_from_results(results, name, dataset_name, fpr)
        run = next((r for r in (results.runs if results is not None else [])
                    if r["detector"] == name and r["dataset"] == dataset_name), None)
        if run is not None and "op_threshold" in run["summary"]:
            rules.add(f"{run['summary'].get('op_rule', '?')} chosen on {run['summary'].get('op_chosen_on', '?')}")
        else:
            rules.add(f"fpr:{_sci(fpr)}")
        if t is None:
            t = operating_threshold(scores[name], [s.truth for s in samples],
                                    [~s.ignore_or_false() for s in samples], fpr)
        thresholds[name] = t
        if not np.isfinite(t):
            rules.add("not reached")
    cands = []
    for i, s in enumerate(samples):
        masks = {n: (scores[n][i] >= thresholds[n]) & ~s.ignore_or_false() for n in names}
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
    ncols = 2 + len(names)
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
        for name in names:
            m = (scores[name][c["sample"]] >= thresholds[name])[sl] & ~s.ignore_or_false()[sl]
            panels.append((name, _mask_panel(truth, m, src), None))
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
        who = f"\n({c['detector']})" if c.get("detector") and len(names) > 1 else ""
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
    fig.suptitle(f"{dataset_name}/{split}: masks at the operating point ({rule}); {size}\u00d7{size} px cutouts",
                 fontsize=7, y=1 - 0.04 / fig_h, va="top")
    paths = save_figure(fig, out)
    plt.close(fig)
    return paths
