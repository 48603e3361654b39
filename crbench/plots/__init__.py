"""Paper-ready plots, each saved as vector PDF and PNG at single- or double-column width.

One module per figure family, all re-exported here (``from crbench import plots``; ``plots.plot_roc``):

- :mod:`~crbench.plots.style`: palette (Okabe-Ito, colour-blind safe), widths, :func:`save_figure`;
- :mod:`~crbench.plots.curves`: ROC (log FPR) and PR curves with 95% bands;
- :mod:`~crbench.plots.morphology`: per-morphology recall bars with intervals;
- :mod:`~crbench.plots.gallery`: cutouts of image, truth and each detector's mask at its operating
  point, drawn from score maps given to it (plots never run detectors);
- :mod:`~crbench.plots.dataset_stats`: the class-imbalance histograms of a dataset;
- :mod:`~crbench.plots.sim_to_real`: the sim-to-real gap.

Fonts are 7-8 pt at print size.
"""
from __future__ import annotations

from .curves import plot_pr, plot_roc
from .dataset_stats import plot_class_imbalance
from .gallery import gallery_samples, operating_threshold, plot_cutout_gallery, select_cutouts
from .morphology import morphology_rows, plot_morphology_recall
from .sim_to_real import plot_sim_to_real_gap
from .style import LINESTYLES, MASK_COLOURS, PALETTE, WIDTHS, runs_by_dataset, save_figure

__all__ = ["LINESTYLES", "MASK_COLOURS", "PALETTE", "WIDTHS", "gallery_samples", "morphology_rows",
           "operating_threshold", "plot_class_imbalance", "plot_cutout_gallery", "plot_morphology_recall",
           "plot_pr", "plot_roc", "plot_sim_to_real_gap", "runs_by_dataset", "save_figure", "select_cutouts"]
