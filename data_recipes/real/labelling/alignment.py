"""Step 1, alignment: sub-pixel shifts of a drifting series and shifting images and masks by them."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from crbench.errors import DatasetError

from .._common import stage

# ---------------------------------------------------------------------------------------------- alignment


#: Decimals the correlation window is rounded to: numpy's SIMD kernels (AVX2, AVX-512) compute its cosine
#: and power with last-bit differences, which rounding removes (a value on a rounding boundary is unlikely).
WINDOW_DECIMALS = 9


def correlation_window(shape: tuple[int, int]) -> np.ndarray:
    """The float64 edge taper (Hann window to the 1/4 power) multiplied into frames before correlating,
    rounded to :data:`WINDOW_DECIMALS` so that it is the same on every CPU."""
    h, w = shape
    return np.round(np.outer(np.hanning(h), np.hanning(w)) ** 0.25, WINDOW_DECIMALS)


def _prep_for_correlation(frame: np.ndarray, static: np.ndarray | None) -> np.ndarray:
    # float64 throughout: in float32 the correlation peak's sub-pixel position rounded to the adjacent
    # 1/upsample step on some frames depending on the CPU's SIMD kernels (2 of 142 HAT-P-32 frames, 0.05 px)
    f = np.asarray(frame, np.float64)
    if static is not None:
        f = f - static
    f = ndimage.median_filter(f, size=3)
    f = f - np.median(f)
    hi = np.percentile(f, 99.9)
    f = np.clip(f, 0, hi if hi > 0 else None)
    # taper the edges so that the frame border does not dominate the correlation
    return f * correlation_window(f.shape)


def register_series(frames: np.ndarray, *, reference: int | None = None, static: np.ndarray | None = None,
                    upsample: int = 20, progress: bool = False) -> np.ndarray:
    """Shifts that align every frame onto a reference frame.

    Parameters
    ----------
    frames : ndarray, shape (N, H, W)
        The series (any linear units).
    reference : int, optional
        Index of the reference frame (default: the middle one).
    static : ndarray, shape (H, W), optional
        Static detector pattern to subtract before correlating. Default: none; the 3x3 median
        filter applied before correlating already removes single hot pixels and CRs (a per-pixel
        median of drifting frames would keep smeared stars and bias the shifts).
    upsample : int
        Sub-pixel precision 1/upsample.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray, shape (N, 2)
        ``shifts[j] = (dy, dx)``: ``scipy.ndimage.shift(frames[j], shifts[j])`` lies on the reference.
    """
    from skimage.registration import phase_cross_correlation

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise DatasetError(f"register_series needs an (N, H, W) stack, got shape {frames.shape}")
    n = frames.shape[0]
    ref = n // 2 if reference is None else int(reference)
    ref_img = _prep_for_correlation(frames[ref], static)
    shifts = np.zeros((n, 2))
    for j in stage(range(n), "series model: aligning", progress):
        if j == ref:
            continue
        mov = _prep_for_correlation(frames[j], static)
        s, _, _ = phase_cross_correlation(ref_img, mov, upsample_factor=upsample, normalization=None)
        shifts[j] = s
    # stored at float32 precision, as the shifts of the float32 correlation were (the builds pinned with those)
    return shifts.astype(np.float32).astype(np.float64)


def shift_image(img: np.ndarray, shift: Sequence[float] | np.ndarray, *, order: int = 1) -> np.ndarray:
    """``img`` moved by ``shift`` (dy, dx); pixels coming from outside are NaN."""
    img = np.asarray(img, np.float32)
    if np.allclose(shift, 0):
        return img.copy()
    out = ndimage.shift(img, shift, order=order, mode="constant", cval=np.nan, prefilter=False)
    # bilinear shift: a pixel is valid only if all its source pixels were inside the frame
    cover = ndimage.shift(np.ones(img.shape, np.float32), shift, order=1, mode="constant", cval=0.0)
    out[cover < 0.999] = np.nan
    return out


def shift_mask(mask: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """A boolean mask moved by ``shift`` (nearest pixel, conservative: any overlap keeps it True)."""
    m = ndimage.shift(mask.astype(np.float32), shift, order=1, mode="constant", cval=0.0)
    return m > 0.01
