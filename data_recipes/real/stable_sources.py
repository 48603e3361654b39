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
    """Source pixels where the comparison is not reliable enough to label CRs on.

    The scatter ratio is averaged over 3x3 pixels (one pixel's MAD of a few companions is noisy);
    source pixels within one pixel of a place where that average exceeds ``max_ratio``, or where
    fewer than 3 companions cover, are returned. The rest of the sources is stable.
    """
    src = np.asarray(sources, bool)
    if not src.any():
        return np.zeros_like(src)
    finite = np.isfinite(ratio)
    r = np.where(finite, ratio, 10.0 * max_ratio).astype(np.float32)
    smooth = ndimage.uniform_filter(r, size=3, mode="nearest")
    bad = ndimage.binary_dilation((smooth > max_ratio) | ~finite, EIGHT)
    return src & bad
