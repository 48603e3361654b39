"""Steps 4-6, labelling: SNR map, seeds and growth, halo, component split, hot-pixel veto, outlying
frames, and the instance table and morphology of the labelled CRs."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from crbench.truth import apply_truth_rule, present_from_seeds

from .params import EIGHT, LabelParams


# ---------------------------------------------------------------------------------------------- labelling


def snr_map(frame: np.ndarray, companions: np.ndarray, *, read_noise: float, sky: float,
            static_var: np.ndarray | float = 0.0, deriv_scale: float = 0.2,
            min_companions: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SNR of each pixel against the median of aligned companions (all in sky-subtracted e-).

    Returns
    -------
    snr, median, valid
        ``valid`` is where at least ``min_companions`` companions cover the pixel.
    """
    import warnings

    comp = np.asarray(companions, np.float32)
    n_cov = np.sum(np.isfinite(comp), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(comp, axis=0)
    valid = n_cov >= min_companions
    med = np.where(np.isfinite(med), med, 0.0).astype(np.float32)
    expected = np.maximum(med + sky, 0.0)
    var_f = read_noise ** 2 + expected + static_var
    nc = np.maximum(n_cov, 1)
    var_m = (read_noise ** 2 + expected) * np.where(nc > 2, np.pi / 2, 1.0) / nc
    var = var_f + var_m
    if deriv_scale > 0:
        grad = np.maximum(np.abs(ndimage.maximum_filter(med, 3) - med), np.abs(med - ndimage.minimum_filter(med, 3)))
        var = var + (deriv_scale * grad) ** 2
    snr = (np.asarray(frame, np.float32) - med) / np.sqrt(np.maximum(var, 1e-6))
    snr = np.where(valid, snr, 0.0).astype(np.float32)
    return snr, med, valid


def seeds_and_growth(snr: np.ndarray, params: LabelParams) -> tuple[np.ndarray, np.ndarray]:
    """Seeds (SNR > seed_snr) and the truth rule's growth (:func:`crbench.truth.apply_truth_rule`)."""
    rule = params.truth_rule
    seeds = np.nan_to_num(snr, nan=0.0) > rule.seed_nsigma
    grown, _ = apply_truth_rule(snr, None, rule)
    return seeds, grown


def halo_mask(snr: np.ndarray, params: LabelParams) -> np.ndarray:
    """Pixels above the rule's halo level connected to a seed that fail the rule (before any veto)."""
    rule = params.truth_rule
    return apply_truth_rule(snr, present_from_seeds(snr, rule), rule)[1]


def split_components(grown: np.ndarray, *, sources: np.ndarray | None, veto: np.ndarray | None,
                     min_pixels: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Keep confident CR components; send ambiguous ones to ignore.

    A component is ambiguous when it touches ``sources`` or ``veto`` or has fewer than ``min_pixels``.

    Returns
    -------
    cr, ambiguous, counts
    """
    lab, n = ndimage.label(grown, EIGHT)
    counts = {"components": int(n), "on_sources": 0, "on_veto": 0, "too_small": 0}
    if n == 0:
        return np.zeros_like(grown), np.zeros_like(grown), counts
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum(grown, lab, idx)
    bad = np.zeros(n, bool)
    if sources is not None:
        on_src = ndimage.maximum(sources, lab, idx).astype(bool)
        counts["on_sources"] = int(on_src.sum())
        bad |= on_src
    if veto is not None:
        on_veto = ndimage.maximum(veto, lab, idx).astype(bool)
        counts["on_veto"] = int((on_veto & ~bad).sum())
        bad |= on_veto
    small = sizes < min_pixels
    counts["too_small"] = int((small & ~bad).sum())
    bad |= small
    bad_ids = idx[bad]
    ambiguous = np.isin(lab, bad_ids) & grown
    cr = grown & ~ambiguous
    return cr, ambiguous, counts


def hot_pixel_veto(seed_stack: np.ndarray, static_e: np.ndarray, static_sigma: np.ndarray | float,
                   params: LabelParams) -> np.ndarray:
    """Detector pixels that are not CRs: seeded in several frames, or strongly hot in the static pattern.

    Parameters
    ----------
    seed_stack : ndarray of bool, shape (N, H, W)
        Seed masks of every frame in detector coordinates.
    static_e : ndarray
        Static pattern in electrons.
    static_sigma : ndarray or float
        Noise of one frame per pixel (e-), to scale the static pattern.
    """
    n = seed_stack.shape[0]
    count = seed_stack.sum(axis=0)
    min_frames = max(params.hot_min_frames, int(np.ceil(params.hot_min_fraction * n)))
    flicker = count >= min_frames
    hot = np.abs(static_e) > params.hot_static_snr * static_sigma
    return flicker | hot


def outlying_frames(cr_fraction: np.ndarray, cr_pixels: np.ndarray | None = None) -> np.ndarray:
    """Cosmic-CoNN's rule: reject frames whose CR share exceeds min(2 x mean, mean + 2 sd).

    With ``cr_pixels`` given, a frame must also exceed the mean count by 5 Poisson sigma (+ 5 px),
    so that frames with a handful of CR pixels are not rejected for counting noise alone.
    """
    f = np.asarray(cr_fraction, float)
    if f.size < 3 or f.mean() == 0:
        return np.zeros(f.shape, bool)
    thr = min(2 * f.mean(), f.mean() + 2 * f.std())
    out = f > thr
    if cr_pixels is not None:
        c = np.asarray(cr_pixels, float)
        out &= c > c.mean() + 5 * np.sqrt(max(c.mean(), 1.0)) + 5
    return out


def instance_table(cr: np.ndarray, deviation: np.ndarray, saturated: np.ndarray | None = None,
                   generator: str = "real") -> tuple[np.ndarray, pd.DataFrame]:
    """Instance ids (8-connected components) and the per-instance table of a CR mask.

    ``deviation`` is the CR charge estimate per pixel (e-): frame minus the companions' median.
    Morphology comes from :func:`classify_morphology`.
    """
    from crbench.sample import empty_instance_table

    lab, n = ndimage.label(cr, EIGHT)
    lab = lab.astype(np.int32)
    if n == 0:
        return lab, empty_instance_table()
    idx = np.arange(1, n + 1)
    pixels = ndimage.sum(cr, lab, idx).astype(np.int64)
    charge = ndimage.sum(np.maximum(deviation, 0), lab, idx)
    sat = (ndimage.maximum(saturated, lab, idx).astype(bool) if saturated is not None
           else np.zeros(n, bool))
    morph = classify_morphology(lab, n, sat)
    table = pd.DataFrame({"id": idx.astype("int32"), "morphology": morph, "generator": generator,
                          "pixels": pixels, "charge": charge.astype(float), "saturated": sat})
    return lab, table


def classify_morphology(labels: np.ndarray, n: int, saturated: np.ndarray | None = None) -> list[str]:
    """Geometric class of each instance (docs/physics.md#morphology-rules), with :func:`crbench.morphology.classify_instances`."""
    from crbench.morphology import classify_instances  # here, not at import: it loads scikit-image

    sat_map = None
    if saturated is not None and np.any(saturated):
        sat_map = np.isin(labels, np.flatnonzero(saturated) + 1)
    out = classify_instances(labels, sat_map)
    return [str(out.get(i, "spot")) for i in range(1, n + 1)]
