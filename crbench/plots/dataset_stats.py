"""Dataset statistics figures: the class-imbalance histograms (the one implementation; ``crbench
datasets info --plot`` and ``crbench plot`` both draw it)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .style import PALETTE, _figsize, _style, save_figure

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
    from ..dataset import Dataset

    if not isinstance(dataset, Dataset):
        from ..recipes import resolve_dataset

        dataset = resolve_dataset(dataset, build_missing=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        from ..dataset_info import dataset_statistics
    except ImportError:  # pragma: no cover - dataset_info ships with crbench
        stats = dataset.card.get("statistics") or {}
    else:
        stats = dataset_statistics(dataset)
    return _class_imbalance_figure(dataset, stats, out / f"class_imbalance_{dataset.name}", width)


def _class_imbalance_figure(dataset, stats: dict, stem: Path, width: str) -> list[Path]:
    from ..sample import MORPHOLOGIES

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

