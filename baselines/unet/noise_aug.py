"""Noise-regime augmentation (``--noise-aug``): move a training patch to another detector's noise.

Per patch, :func:`draw_noise_regime` draws a target read noise log-uniform in
:data:`READ_NOISE_RANGE` e-, a gain log-uniform in :data:`GAIN_RANGE` e-/ADU and an extra sky
log-uniform in :data:`EXTRA_SKY_RANGE` e-; :func:`apply_noise_regime` then

1. adds the extra sky with its Poisson noise (``rng.poisson(extra)`` electrons per pixel);
2. adds Gaussian noise of variance ``target^2 - own^2`` when the target read noise exceeds the
   sample's own (a patch is never made less noisy);
3. quantises to the gain's ADU step (``round(image / gain) * gain``);

and returns the patch's new gain, read noise and Poisson background, which the normaliser is
handed (:func:`baselines.unet.data.normalize_noise_model`).

Known limitation: the truth mask is unchanged. A faint CR pixel drowned by the added noise
(below the new noise level) stays positive in the truth, so the net is asked to find hits that
the new regime hides; such pixels are few (CR tails) but they make the loss slightly pessimistic
at high read noise / sky. They are not down-weighted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Target read noise range, e-.
READ_NOISE_RANGE = (2.0, 100.0)
#: Gain range, e-/ADU.
GAIN_RANGE = (0.5, 20.0)
#: Extra sky range, e-.
EXTRA_SKY_RANGE = (1.0, 10000.0)


@dataclass(frozen=True)
class NoiseRegime:
    """One drawn regime: target ``read_noise`` (e-), ``gain`` (e-/ADU), ``extra_sky`` (e-)."""

    read_noise: float
    gain: float
    extra_sky: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict (for logs and sidecars)."""
        return asdict(self)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)


def draw_noise_regime(rng: np.random.Generator, *, read_noise_range: tuple[float, float] = READ_NOISE_RANGE,
                      gain_range: tuple[float, float] = GAIN_RANGE,
                      extra_sky_range: tuple[float, float] = EXTRA_SKY_RANGE) -> NoiseRegime:
    """Draw read noise, gain and extra sky, each log-uniform in its range (in that order)."""
    return NoiseRegime(read_noise=_log_uniform(rng, *read_noise_range), gain=_log_uniform(rng, *gain_range),
                       extra_sky=_log_uniform(rng, *extra_sky_range))


def apply_noise_regime(image: np.ndarray, regime: NoiseRegime, rng: np.random.Generator, *,
                       read_noise: float, sky: float) -> tuple[np.ndarray, dict[str, float]]:
    """Move a patch in electrons to ``regime`` (module docstring); the truth is not touched.

    Parameters
    ----------
    image : ndarray
        Patch in electrons, background included.
    regime : NoiseRegime
        Drawn target.
    rng : numpy Generator
        Noise stream.
    read_noise : float
        The patch's own read noise, e-.
    sky : float
        The patch's own Poisson background, e- (NaN when unknown: stays NaN).

    Returns
    -------
    (patch, meta) : float32 array and ``{"gain", "read_noise", "sky", "added_sky"}`` of the new patch.
    """
    img = np.asarray(image, dtype=np.float64)
    extra = float(regime.extra_sky)
    img = img + rng.poisson(extra, img.shape)
    new_rn = float(read_noise)
    if regime.read_noise > new_rn:
        img = img + rng.normal(0.0, np.sqrt(regime.read_noise ** 2 - new_rn ** 2), img.shape)
        new_rn = float(regime.read_noise)
    g = float(regime.gain)
    img = np.round(img / g) * g
    return img.astype(np.float32), {"gain": g, "read_noise": new_rn, "sky": float(sky) + extra, "added_sky": extra}
