"""Source and border masks (pixels never labelled as CR)."""
from __future__ import annotations


import numpy as np
from scipy import ndimage

from .params import EIGHT, LabelParams, NoiseModel



# ---------------------------------------------------------------------------------------------- masks


def sources_mask(sky_model_e: np.ndarray, noise: NoiseModel, sky_e: float, params: LabelParams) -> np.ndarray:
    """Stars and galaxies on the aligned sky model.

    Pixels of the model minus its large-scale background (a 36 px median) brighter than
    ``source_snr`` times the noise of one frame (where a star residual can pass for a CR), in
    components of at least ``source_min_pixels``, grown by ``source_grow`` pixels.
    """
    m = np.asarray(sky_model_e, np.float32)
    finite = np.isfinite(m)
    fill = float(np.median(m[finite])) if finite.any() else 0.0
    m = np.where(finite, m, fill)
    small = m[::4, ::4]
    bkg_small = ndimage.median_filter(small, size=9, mode="nearest")
    bkg = ndimage.zoom(bkg_small, (m.shape[0] / small.shape[0], m.shape[1] / small.shape[1]), order=1)
    bkg = bkg[: m.shape[0], : m.shape[1]]
    if bkg.shape != m.shape:
        bkg = np.pad(bkg, ((0, m.shape[0] - bkg.shape[0]), (0, m.shape[1] - bkg.shape[1])), mode="edge")
    sig = float(np.sqrt(noise.read_noise ** 2 + max(sky_e, 0.0)))
    det = ((m - bkg) > params.source_snr * sig) & finite
    lab, nlab = ndimage.label(det, EIGHT)
    if nlab:
        sizes = ndimage.sum(det, lab, index=np.arange(1, nlab + 1))
        det = np.isin(lab, np.flatnonzero(sizes >= params.source_min_pixels) + 1)
    if params.source_grow > 0:
        det = ndimage.binary_dilation(det, EIGHT, iterations=params.source_grow)
    return det


def border_mask(shape: tuple[int, int], border: int) -> np.ndarray:
    """True within ``border`` pixels of the frame edge."""
    m = np.zeros(shape, bool)
    if border > 0:
        m[:border, :] = m[-border:, :] = True
        m[:, :border] = m[:, -border:] = True
    return m
