"""Completeness of multi-exposure labels, measured by injecting the series' own real CR footprints.

Confident footprints (:func:`data_recipes.real.footprints.extract_footprints`) are pasted with their
measured charge into other frames of the raw series at the observed rate (the mean number of
labelled CRs per frame), anywhere except on already labelled CRs, and the labelling reruns. Each
injected CR is

- **ignored** when fewer than half of its pixels are outside the ignore mask (border, ambiguous
  sources, vetoed pixels, saturation),
- **detected** when at least half of its valid pixels are labelled, else **missed**;

completeness = detected / (detected + missed), reported per CR-charge bin, off and on sources, with
Wilson 95 % intervals; the ignored share is reported separately. The library holds CRs that passed
the labelling once, so its charge distribution is that of labelled CRs (faint CRs are
under-represented: read the per-bin numbers, not only the total).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from crbench.metrics.wilson import wilson_interval

from ._common import stage
from .labelling import EIGHT, LabelParams, SeriesLabels, SeriesModel, label_series

#: CR charge bin edges (e-)
CHARGE_BINS: tuple[float, ...] = (0.0, 500.0, 1000.0, 2000.0, 5000.0, np.inf)


def _completeness(det: int, missed: int) -> dict[str, Any]:
    n = det + missed
    return {"n": n, "detected": det, "completeness": det / n if n else None,
            "interval": list(wilson_interval(det, n)) if n else None}


def measure_completeness(frames_adu: np.ndarray, clean: SeriesLabels, *, model: SeriesModel, params: LabelParams,
                         blocks: Sequence[Sequence[int]] | None, seed: int = 0, per_frame: int | None = None,
                         charge_bins: Sequence[float] = CHARGE_BINS, progress: bool = False) -> dict[str, Any]:
    """Inject real footprints, relabel, and report completeness vs charge (module docstring).

    Parameters
    ----------
    frames_adu : ndarray (N, H, W)
        The raw series (ADU).
    clean : SeriesLabels
        The labelling without injection (footprint library, rate, forbidden places).
    model : SeriesModel
        Its series model (alignment, noise).
    params, blocks
        As for :func:`label_series`.
    seed : int
        Random seed of the placement.
    per_frame : int, optional
        CRs injected per frame (default: the mean number labelled per frame, at least 1).
    charge_bins : sequence of float
        Bin edges of the CR charge (e-).
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        Overall, per-charge-bin and on/off-source completeness with intervals, ignored share, method.
    """
    from .footprints import extract_footprints, inject_footprints

    rng = np.random.default_rng(seed)
    raw = np.asarray(frames_adu, np.float32)
    g = model.noise.gain
    good = [f for f in clean.frames if not f.rejected]
    library = extract_footprints(good)
    rate = float(np.mean([len(f.instances) for f in good])) if good else 0.0
    n_inj = int(per_frame) if per_frame is not None else max(1, int(round(rate)))
    out: dict[str, Any] = {
        "method": "real CR footprints of this series (charge as measured) pasted into other raw frames at the "
                  "observed rate, full labelling rerun; ignored = < 50% of pixels valid; detected = >= 50% of "
                  "valid pixels labelled; completeness = detected / (detected + missed), Wilson 95%",
        "library_size": len(library), "per_frame": n_inj, "observed_crs_per_frame": rate, "seed": int(seed)}
    if not library:
        return out
    injected = np.zeros_like(raw)
    placed = {}
    for f in stage(good, "label quality: injecting real footprints", progress):
        forbidden = ndimage.binary_dilation(f.truth, EIGHT)
        img, lab, table = inject_footprints(rng, np.zeros(raw.shape[1:], np.float32), forbidden, library, n_inj,
                                            exclude_frame=f.index)
        injected[f.index] = img / g
        placed[f.index] = (lab, table)
    # the same stored-exposure count as the clean run, so that each frame has the same labelling companions
    n_exp = max((len(f.companions) for f in clean.frames), default=0)
    inj = label_series(raw, params=params, blocks=blocks, model=model, injected=injected, n_exposures=n_exp,
                       progress=progress, stage_name="label quality: relabelling")
    by = {f.index: f for f in inj.frames}
    edges = np.asarray(charge_bins, float)
    nb = len(edges) - 1
    counts = {k: np.zeros((nb, 3), int) for k in ("all", "off_sources", "on_sources")}  # det, missed, ignored
    pix_tot = pix_lab = 0
    for i, (lab, table) in placed.items():
        f = by[i]
        if not len(table):
            continue
        ids = table["id"].to_numpy()
        m = lab > 0
        valid = ~f.ignore
        n_pix = ndimage.sum(m, lab, ids)
        n_valid = ndimage.sum(m & valid, lab, ids)
        n_hit = ndimage.sum(m & valid & f.truth, lab, ids)
        on_src = ndimage.maximum(f.sources, lab, ids).astype(bool)
        pix_tot += int((m & valid).sum())
        pix_lab += int((m & valid & f.truth).sum())
        b = np.clip(np.searchsorted(edges, table["charge"].to_numpy(), side="right") - 1, 0, nb - 1)
        for k in range(len(ids)):
            status = 2 if n_valid[k] < 0.5 * n_pix[k] else (0 if n_hit[k] >= 0.5 * n_valid[k] else 1)
            for key in ("all", "on_sources" if on_src[k] else "off_sources"):
                counts[key][b[k], status] += 1
    for key, c in counts.items():
        tot = c.sum(0)
        n_all = int(tot.sum())
        out[key] = {**_completeness(int(tot[0]), int(tot[1])), "n_injected": n_all,
                    "ignored_share": tot[2] / n_all if n_all else None,
                    "ignored_interval": list(wilson_interval(int(tot[2]), n_all)) if n_all else None,
                    "by_charge": [{"charge_e": [float(edges[j]), float(edges[j + 1])], "n_injected": int(c[j].sum()),
                                   "ignored": int(c[j, 2]), **_completeness(int(c[j, 0]), int(c[j, 1]))}
                                  for j in range(nb)]}
    out["pixel_completeness"] = pix_lab / pix_tot if pix_tot else None
    return out
