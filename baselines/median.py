"""``median``: multi-exposure comparison against the median of the other aligned exposures.

Score = (image - median of the others) / sigma, with the CCD noise model of the Cosmic-CoNN
labelling pipeline (docs/anchors.md#cosmic-conn-labelling): per-pixel variance rn^2 + expected counts for the frame itself,
plus the median's own variance (about pi/2 x the single-frame variance / n for a median of n), plus
an optional alignment term ``deriv_scale x |local gradient of the median|`` (as astrodrizzle's
``driz_cr``) that protects star cores when exposures are not perfectly aligned.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from crbench.detectors.base import Detector
from crbench.errors import DetectorError
from crbench.observation import Observation


class MedianDetector(Detector):
    """Noise-model significance of the deviation from the median of the other exposures.

    Parameters
    ----------
    deriv_scale : float
        Weight of the local-gradient term in sigma (0 disables it).
    """

    name = "median"
    version = "1"
    requires = ("image", "exposures")
    score_range = None

    def __init__(self, deriv_scale: float = 0.1) -> None:
        if deriv_scale < 0:
            raise ValueError(f"median: deriv_scale must be >= 0, got {deriv_scale}")
        super().__init__(deriv_scale=float(deriv_scale))

    def score(self, obs: Observation) -> np.ndarray:
        if obs.exposures is None or obs.exposures.shape[0] < 1:
            raise DetectorError(
                f"detector 'median' needs at least 2 aligned exposures but sample {obs.id!r} has no "
                "companion exposures; use a multi-exposure dataset or a single-image detector")
        others = np.asarray(obs.exposures, dtype=np.float32)
        n = others.shape[0]
        med = np.median(others, axis=0) if n > 1 else others[0]
        rn2 = np.float32(obs.read_noise ** 2)
        expected = np.maximum(med, 0)
        var_single = rn2 + expected
        var_med = var_single * (np.float32(np.pi / 2) / n if n > 2 else np.float32(1.0 / n))
        var = var_single + var_med
        k = self._params["deriv_scale"]
        if k > 0:
            grad = np.maximum(
                np.abs(ndimage.maximum_filter(med, size=3) - med),
                np.abs(med - ndimage.minimum_filter(med, size=3)),
            )
            var = var + (np.float32(k) * grad) ** 2
        score = (np.asarray(obs.image, dtype=np.float32) - med) / np.sqrt(np.maximum(var, 1e-6))
        return score.astype(np.float32)
