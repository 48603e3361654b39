"""Text summary and statistics plots of a dataset (``crbench datasets info NAME [--plot DIR]``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .dataset import Dataset
from .sample import MORPHOLOGIES


def dataset_statistics(dataset: Dataset) -> dict[str, Any]:
    """The card's class-imbalance statistics, computed from the samples when the card has none."""
    stats = dataset.card.get("statistics")
    if stats and stats.get("n_images"):
        return stats
    from .stats import class_imbalance_statistics, sample_statistics

    return class_imbalance_statistics(sample_statistics(s) for s in dataset.iter_samples(load_companions=False))


def _pct(x: Any, digits: int = 3) -> str:
    try:
        return f"{100.0 * float(x):.{digits}f}%"
    except (TypeError, ValueError):
        return "n/a"


def describe(dataset: Dataset) -> str:
    """Multi-line text: identity, splits, provenance, hash and class-imbalance statistics.

    Shows the CR pixel fraction (mean, median, min, max over images, and pooled), CRs per
    megapixel, count and pixel share per morphology (with size quantiles), generator versus
    morphology counts when the instances carry a generator, the share of CR pixels on sources
    and the ignore fraction.
    """
    card = dataset.card
    st = dataset_statistics(dataset)
    lines = [f"{dataset.name}  (version {card.get('version', '?')}, recipe {card.get('recipe', '?')})",
             f"  folder:       {dataset.root}",
             f"  content hash: {card.get('content_hash', '?')}",
             f"  samples:      {card.get('n_samples', len(dataset))}  ("
             + ", ".join(f"{k} {len(v)}" for k, v in dataset.splits.items()) + ")"]
    if card.get("seed") is not None:
        lines.append(f"  seed:         {card['seed']}")
    params = card.get("parameters") or {}
    if params:
        lines.append("  parameters:   " + ", ".join(f"{k}={v}" for k, v in params.items()))
    for p in card.get("provenance") or []:
        origin = p.get("origin") or p.get("url") or p.get("repository") or str(p)
        sha = p.get("sha256")
        lines.append(f"  provenance:   {origin}" + (f" (sha256 {str(sha)[:16]})" if sha else ""))
    td = card.get("truth_definition")
    if isinstance(td, dict) and td.get("truth"):
        lines.append(f"  truth:        {td['truth']}")
    lines.append("")
    lines.append("Class imbalance")
    if not st or not st.get("n_images"):
        lines.append("  (no samples)")
        return "\n".join(lines)
    f = st.get("cr_pixel_fraction", {})
    lines.append(f"  images: {st['n_images']} ({st.get('n_labelled', st['n_images'])} labelled)")
    lines.append(f"  CR pixel fraction per image: mean {_pct(f.get('mean'))}  median {_pct(f.get('median'))}  "
                 f"min {_pct(f.get('min'))}  max {_pct(f.get('max'))}  (pooled {_pct(f.get('pooled'))})")
    lines.append(f"  CRs: {st.get('n_crs', 0)}  ({float(st.get('crs_per_megapixel', 0.0)):.1f} per megapixel)"
                 + (f"; {st['n_saturated_crs']} saturated" if st.get("n_saturated_crs") else ""))
    lines.append(f"  {'morphology':10s} {'count':>7s} {'count %':>8s} {'pixel %':>8s}   size p5/p50/p95 (px)")
    quant = st.get("cr_size_quantiles", {}) or {}
    for m in MORPHOLOGIES:
        row = (st.get("morphology") or {}).get(m, {})
        q = quant.get(m)
        qs = f"{q['5']:.0f}/{q['50']:.0f}/{q['95']:.0f}" if q else "-"
        lines.append(f"  {m:10s} {int(row.get('count', 0)):7d} {_pct(row.get('count_share', 0), 1):>8s} "
                     f"{_pct(row.get('pixel_share', 0), 1):>8s}   {qs}")
    gm = st.get("generator_morphology") or {}
    if gm and set(gm) != {"unknown"}:
        lines.append("  generator -> morphology:")
        for g in sorted(gm):
            counts = gm[g]
            total = sum(counts.values())
            lines.append(f"    {g:9s} {total:6d}: " + ", ".join(
                f"{m} {counts.get(m, 0)} ({100.0 * counts.get(m, 0) / total:.0f}%)" for m in MORPHOLOGIES
                if counts.get(m, 0)))
    lines.append(f"  CR pixels on sources: {_pct(st.get('cr_pixels_on_sources_share', 0.0), 2)}")
    lines.append(f"  ignore fraction:      {_pct(st.get('ignore_fraction', 0.0), 3)}")
    return "\n".join(lines)


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    from .atomic import atomic_path

    paths = []
    for ext in ("pdf", "png"):
        path = out_dir / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_statistics(dataset: Dataset, out_dir: str | os.PathLike) -> list[Path]:
    """Histograms of the per-image CR pixel fraction and of CR sizes by morphology.

    Writes ``<name>_cr_fraction.{pdf,png}`` and ``<name>_cr_sizes.{pdf,png}`` into ``out_dir``
    (created if needed) and returns the four paths.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = dataset_statistics(dataset)
    frac = np.asarray(st.get("per_image_cr_pixel_fraction", []), dtype=float) * 100.0
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(5, 3.5))
    if frac.size:
        ax.hist(frac, bins=max(5, min(40, frac.size)), color="tab:blue", alpha=0.8)
        ax.axvline(np.median(frac), color="k", ls="--", lw=1, label=f"median {np.median(frac):.3f}%")
        ax.legend(frameon=False)
    ax.set_xlabel("CR pixel fraction per image (%)")
    ax.set_ylabel("images")
    ax.set_title(f"{dataset.name}: CR pixel fraction ({frac.size} images)")
    paths += _save(fig, out, f"{dataset.name}_cr_fraction")
    plt.close(fig)

    inst = dataset.instances()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(inst):
        sizes = pd.to_numeric(inst["pixels"], errors="coerce").fillna(0).to_numpy()
        hi = max(2.0, float(sizes.max()))
        bins = np.unique(np.round(np.geomspace(1, hi + 1, 30)))
        for m in MORPHOLOGIES:
            sel = (inst["morphology"].astype(str) == m).to_numpy()
            if sel.any():
                ax.hist(sizes[sel], bins=bins, histtype="step", lw=1.5, label=f"{m} ({int(sel.sum())})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(frameon=False)
    ax.set_xlabel("CR size (pixels)")
    ax.set_ylabel("CRs")
    ax.set_title(f"{dataset.name}: CR sizes by morphology")
    paths += _save(fig, out, f"{dataset.name}_cr_sizes")
    plt.close(fig)
    return paths
