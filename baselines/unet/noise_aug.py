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

By default the truth mask is unchanged: a faint CR pixel drowned by the added noise stays
positive, so the net is asked to find hits that the new regime hides (at an added sky of 10^4 e-
that is most of a CR's wings). With ``truth_at_noise`` (``--truth-at-noise``)
:func:`truth_at_regime` applies the common truth rule (:mod:`crbench.truth`, seed 5 sigma, growth
into 2.5 sigma, halo above 1 sigma) again at the patch's new noise, as the evaluation does at an
image's own noise: each CR pixel's charge is estimated as the patch minus its 5x5 median before
the regime (at least the rule's growth threshold times the patch's own noise, which every truth
pixel passed), its noise as ``sqrt(read_noise^2 + sky + source + gain^2/12)`` after it (``source``:
the 5x5 median above the background level); truth pixels that fail the rule become halo (left
out of the loss) or, under 1 sigma, negatives. The truth only shrinks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from crbench.truth import DEFAULT_RULE, TruthRule, apply_truth_rule

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


def smooth_background(image: np.ndarray) -> np.ndarray:
    """The 5x5 median of a patch (e-, float64): its sky and sources without CRs. A CR pixel's charge
    is estimated as the patch minus it (the stars-under-CRs augmentation, :func:`truth_at_regime`)."""
    return ndimage.median_filter(np.asarray(image, dtype=np.float64), size=5, mode="reflect")


def truth_at_regime(image_before: np.ndarray, truth: np.ndarray, *, level: float,
                    before: tuple[float, float, float], read_noise: float, sky: float, gain: float,
                    rule: TruthRule = DEFAULT_RULE) -> tuple[np.ndarray, np.ndarray]:
    """Truth and halo of a patch after a noise regime, by the common truth rule (module docstring).

    Parameters
    ----------
    image_before : ndarray (H, W)
        The patch in e- before the regime (CR charge estimated as it minus its 5x5 median).
    truth : ndarray of bool (H, W)
        The patch's truth at its own noise (the CR pixels considered).
    level : float
        Background level of ``image_before`` (e-; charge above it is source charge).
    before : (read_noise, sky, gain)
        The patch's own read noise (e-), Poisson background (e-) and gain before the regime. A truth
        pixel passed the rule's growth threshold at that noise, so its charge estimate is raised to at
        least ``grow_nsigma`` times it (the estimate is as noisy as the patch; without the floor a
        patch whose noise barely changes would lose truth to estimation noise).
    read_noise, sky, gain : float
        The patch's read noise (e-), Poisson background (e-) and gain (e-/ADU) after the regime.
    rule : TruthRule
        The truth rule (default the common one).

    Returns
    -------
    (truth, halo) : bool arrays
        ``truth`` a subset of the input truth; ``halo`` the input truth pixels that fail the rule but are
        above its halo threshold.
    """
    img = np.asarray(image_before, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    if truth.shape != img.shape:
        raise ValueError(f"truth_at_regime: truth shape {truth.shape} != image shape {img.shape}")
    if not truth.any():
        return truth.copy(), np.zeros_like(truth)
    smooth = smooth_background(img)
    source = np.clip(smooth - float(level), 0.0, None)

    def noise(rn: float, sky_e: float, g: float) -> np.ndarray:
        bg = max(float(sky_e), 0.0) if np.isfinite(sky_e) else 0.0
        return np.sqrt(float(rn) ** 2 + bg + source + float(g) ** 2 / 12.0)

    # the rule keeps pixels strictly above grow_nsigma: the floor sits just over it
    charge = np.maximum(img - smooth, rule.grow_nsigma * (1.0 + 1e-9) * noise(*before))
    significance = charge / noise(read_noise, sky, gain)
    new_truth, halo = apply_truth_rule(significance, truth, rule)
    new_truth &= truth
    return new_truth, halo & truth & ~new_truth
