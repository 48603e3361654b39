"""Label quality of the multi-exposure pipeline, measured independently of the labels themselves.

- **purity** (:mod:`data_recipes.real.purity`): the rule on negative deviations, recurrence of
  labelled pixels across frames against chance, and agreement between labellings from held-back
  halves of the companions;
- **completeness** (:mod:`data_recipes.real.completeness`): the series' own real CR footprints
  injected at the observed rate, per CR-charge bin, with the ignored share apart from the missed.

Each number comes with a 95 % interval, overall and separately for CRs on sources (labelled where
the companions are stable, :mod:`data_recipes.real.stable_sources`). Headline keys
(``pixel_purity``, ``instance_completeness``, ...) repeat the main estimate of each.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .completeness import measure_completeness
from crbench.label_quality import format_quality  # noqa: F401  (re-exported: the text of a result)

from .labelling import LabelParams, SeriesLabels, SeriesModel
from .purity import held_back_agreement, negative_deviation_purity, recurrence_purity


def measure_label_quality(frames_adu: np.ndarray, clean: SeriesLabels, *, model: SeriesModel,
                          params: LabelParams, blocks: Sequence[Sequence[int]] | None, exptime: float | None = None,
                          seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Independent purity estimates and completeness vs charge of a labelled series.

    Parameters
    ----------
    frames_adu : ndarray (N, H, W)
        The raw series (ADU).
    clean : SeriesLabels
        Its labelling.
    model : SeriesModel
        The series model used for ``clean``.
    params, blocks
        As for :func:`~data_recipes.real.labelling.label_series`.
    exptime : float, optional
        Exposure time (s), recorded.
    seed : int
        Random seed (footprint placement, bootstraps).
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        ``purity`` (three estimates), ``completeness`` (by charge, on/off sources) and headline keys.
    """
    neg = negative_deviation_purity(frames_adu, clean, model, progress=progress)
    rec = recurrence_purity(clean)
    held = held_back_agreement(frames_adu, clean, model, seed=seed, progress=progress)
    comp = measure_completeness(frames_adu, clean, model=model, params=params, blocks=blocks, seed=seed,
                                progress=progress)
    allc = comp.get("all", {})
    return {
        "method": "independent estimates: purity from negative deviations, recurrence and held-back companions; "
                  "completeness from the series' own real CR footprints injected at the observed rate",
        "exptime": None if exptime is None else float(exptime),
        "seed": int(seed),
        "n_frames": neg["n_frames"],
        "purity": {"negative_deviations": neg, "recurrence": rec, "held_back": held},
        "completeness": comp,
        "n_injected_crs": allc.get("n_injected", 0),
        "instance_completeness": allc.get("completeness"),
        "instance_completeness_interval": allc.get("interval"),
        "pixel_completeness": comp.get("pixel_completeness"),
        "ignored_fraction": allc.get("ignored_share"),
        "pixel_purity": neg["all"]["pixel_purity"],
        "pixel_purity_interval": neg["all"]["pixel_purity_interval"],
    }


