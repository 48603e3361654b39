"""Which sources a multi-exposure comparison can label CRs on.

A CR that lands on a star is only visible as a positive deviation from the companions' median when
that median is a good model of the star in this frame: the source must be stable (its companions
agree with each other within the noise) and the frames well aligned. Sources where the companions
scatter more than the noise model allows (variable seeing, guiding jumps, saturation wings,
misregistration) stay ambiguous; CR candidates touching them go to the ignore mask.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)


def companion_scatter_ratio(aligned: np.ndarray, median: np.ndarray, *, read_noise: float, sky: float) -> np.ndarray:
    """Robust scatter of the aligned companions per pixel, in units of one frame's expected noise.

    Parameters
    ----------
    aligned : ndarray (K, H, W)
        Companions aligned onto the frame (sky-subtracted e-, NaN outside).
    median : ndarray (H, W)
        Their median.
    read_noise, sky : float
        Noise model of the frame (e-).

    Returns
    -------
    ndarray (H, W)
        1.4826 x MAD of the companions / sqrt(rn^2 + max(median + sky, 0)); NaN with fewer than 3 companions.
    """
    comp = np.asarray(aligned, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mad = 1.4826 * np.nanmedian(np.abs(comp - median[None]), axis=0)
    n_cov = np.sum(np.isfinite(comp), axis=0)
    sigma = np.sqrt(read_noise ** 2 + np.maximum(median + sky, 0.0))
    ratio = mad / np.maximum(sigma, 1e-6)
    return np.where(n_cov >= 3, ratio, np.nan).astype(np.float32)


def unreliable_sources(sources: np.ndarray, ratio: np.ndarray, *, max_ratio: float = 1.5) -> np.ndarray:
    """Source pixels whose component is not stable enough to label CRs on.

    A source component (8-connected) is stable when the median of ``ratio`` over its pixels is at
    most ``max_ratio`` and every pixel has a finite ratio; the others are returned.
    """
    src = np.asarray(sources, bool)
    lab, n = ndimage.label(src, EIGHT)
    if n == 0:
        return np.zeros_like(src)
    idx = np.arange(1, n + 1)
    r = np.where(np.isfinite(ratio), ratio, np.inf)
    # median over a component: labelled_comprehension keeps this vectorised per component
    med = ndimage.labeled_comprehension(r, lab, idx, np.median, float, np.inf)
    bad = ~(med <= max_ratio)
    return np.isin(lab, idx[bad]) & src
