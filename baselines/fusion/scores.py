"""The fusion rule: the net's logit plus a weighted, clipped median-comparison significance.

Both inputs are evidence for a CR at a pixel: the net's logit (from the single frame) and the
significance of the pixel's excess over the median of the companion exposures (from the other
exposures of the same pointing). A weighted sum of the two is a naive-Bayes log-odds with a linear
likelihood ratio for the significance; the clip keeps a single misaligned star residual or a pixel
far below the median from outvoting the net. Only the ranking matters for the curves, so the net's
logit keeps unit weight and one number (the weight of the significance) is fitted.
"""
from __future__ import annotations

import numpy as np

#: Default clip of the median-comparison significance (sigma): below -10 a pixel says nothing more
#: about CRs; above 30 it is certain either way (a CR or an unmatched star residual).
Z_MIN = -10.0
Z_MAX = 30.0


def fuse_scores(logits: np.ndarray, significance: np.ndarray, weight: float, *, z_min: float = Z_MIN,
                z_max: float = Z_MAX) -> np.ndarray:
    """Fused CR score ``logits + weight * clip(significance, z_min, z_max)``, float32.

    Parameters
    ----------
    logits : ndarray
        The single-frame net's logit per pixel.
    significance : ndarray
        The median comparison's significance per pixel (sigma), same shape.
    weight : float
        Weight of the significance, >= 0 (0: the net alone).
    z_min, z_max : float
        Clip of the significance, ``z_min < z_max``.

    Returns
    -------
    ndarray
        float32 score of the same shape, higher = more CR-like.

    Raises
    ------
    ValueError
        If the shapes differ, ``weight`` is negative or not finite, or the clip is empty.
    """
    lg = np.asarray(logits, dtype=np.float32)
    z = np.asarray(significance, dtype=np.float32)
    if lg.shape != z.shape:
        raise ValueError(f"fuse_scores: logits shape {lg.shape} differs from significance shape {z.shape}")
    if not (np.isfinite(weight) and weight >= 0):
        raise ValueError(f"fuse_scores: weight must be a finite number >= 0, got {weight!r}")
    if not z_min < z_max:
        raise ValueError(f"fuse_scores: expected z_min < z_max, got {z_min!r} and {z_max!r}")
    return (lg + np.float32(weight) * np.clip(z, np.float32(z_min), np.float32(z_max))).astype(np.float32)
