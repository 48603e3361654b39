"""Step 2, sky model and static pattern: the aligned median and the detector's static pattern."""
from __future__ import annotations


import numpy as np


from .._common import stage
from .alignment import shift_image

# -------------------------------------------------------------------------------- sky model, static pattern


def sky_levels(frames: np.ndarray) -> np.ndarray:
    """Per-frame sky level: the median of each frame."""
    return np.median(np.asarray(frames).reshape(len(frames), -1), axis=1)


def aligned_median(frames: np.ndarray, shifts: np.ndarray, *, order: int = 1, progress: bool = False) -> np.ndarray:
    """Median of the sky-subtracted frames aligned onto the reference (NaN where no frame covers)."""
    sky = sky_levels(frames)
    stack = np.stack([shift_image(f - s, sh, order=order) for f, s, sh in
                      stage(zip(frames, sky, shifts), "series model: sky model", progress, total=len(frames))])
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(stack, axis=0)


def static_pattern(frames: np.ndarray, shifts: np.ndarray, sky_model: np.ndarray, *, order: int = 1,
                   progress: bool = False) -> np.ndarray:
    """Static detector pattern: per-pixel median of (frame - sky - sky model moved to the frame).

    Hot pixels and fixed bias structure stay at the same detector pixel while the sky drifts, so they
    survive this median while stars and CRs do not.
    """
    sky = sky_levels(frames)
    model = np.nan_to_num(sky_model, nan=0.0)
    res = np.stack([f - s - np.nan_to_num(shift_image(model, -sh, order=order), nan=0.0)
                    for f, s, sh in stage(zip(frames, sky, shifts), "series model: static pattern", progress,
                                          total=len(frames))])
    return np.median(res, axis=0).astype(np.float32)
