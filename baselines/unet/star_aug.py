"""Star augmentation (``--star-aug P``): undersampled stars at high significance as hard negatives.

Why: a single-frame detector separates CRs from stars by their sharpness. Stars whose core is
barely resolved (PSF FWHM 1-2 px) and many sigma above the noise look like CR hits, and training
data with such stars only at their native brightness does not teach that difference. In the
noise-regime grid (``benchmarks/noise_regimes.py``) the real backgrounds are scaled to a sky of
10,000 e-, so faint undersampled stars of the MicroObservatory field (FWHM ~1.6 px) peak at 20-47
sigma and were the top false positives of every single-frame net. Scaling a patch's existing
structure does not reproduce that (a smoothed copy of a 1.6-px core is a blob, not a sharp core);
this module adds stars drawn from a model instead.

With probability ``P`` per training patch, :func:`draw_stars` adds ``Poisson(STARS_PER_PATCH)``
stars (at least one), each an elliptical Gaussian integrated over the pixels (the exact pixel
response of an undersampled PSF, not a point sample) with

- FWHM log-uniform in :data:`FWHM_RANGE` px along each axis (an axis ratio up to 1.5 follows),
- a sub-pixel centre uniform over the patch,
- a peak pixel of ``k`` sigma of the patch's final noise, ``k`` log-uniform in
  :data:`PEAK_SIGMA_RANGE` (so the stars are equally hard in every noise regime),

and its photon (Poisson) noise. The truth is unchanged (stars are not CRs; a CR under a star
stays a CR). The star pixels get loss weight like the sources of the Cosmic-CoNN weight map
(:func:`baselines.unet.data.source_weight_map`): the added star image clipped to ``[1, 5]`` sigma,
smoothed by a Gaussian of 2 px and scaled to peak 1, combined with the patch's map by maximum.

Stars under CRs (``--cr-star-aug P``)
-------------------------------------
The star augmentation above adds hard negatives. The noise-regime diagnosis found the opposite
failure: at sky 10,000 e- the generalist's loss against the median comparison sits in the **CRs
that land on bright stars** (leaving the CR pixels inside bright-star regions out of the score lifts
its AP by 0.07-0.12; leaving the star pixels without CRs out lifts it by 0.02-0.03), which a net sees
as one more star when its training data seldom puts a CR on a star many sigma above the noise.
:func:`draw_stars_on_crs` draws the same stars (count ``Poisson(CR_STARS_PER_PATCH)``, at least
one; same FWHM and peak ranges) but centres each on a truth pixel of the patch (uniform over the
truth pixels, plus a sub-pixel offset uniform in +-1 px), so the CR's charge sits on the star's
profile. The truth is unchanged, except that CR pixels now drowned by the star's photon noise are
taken out of the loss (``valid`` = 0): those whose charge, estimated as the pixel minus the 5x5
median of the patch before the star, is below the pixel's noise with the star (the common truth
rule's one sigma of the image without the CR).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.special import erf

from .noise_aug import smooth_background

#: Stars per augmented patch (Poisson mean; at least one is drawn).
STARS_PER_PATCH = 4.0
#: Stars per patch of the stars-under-CRs augmentation (Poisson mean; at least one is drawn).
CR_STARS_PER_PATCH = 2.0
#: FWHM range of each axis, px.
FWHM_RANGE = (1.0, 3.0)
#: Peak-pixel significance range, in sigma of the patch's final noise.
PEAK_SIGMA_RANGE = (5.0, 300.0)
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def pixel_integrated_gaussian(centre: float, sigma: float, n: int) -> np.ndarray:
    """Fraction of a unit 1-D Gaussian (``centre``, ``sigma`` in px) falling in each of pixels ``0..n-1``.

    Pixel ``i`` spans ``[i - 0.5, i + 0.5]``.
    """
    edges = (np.arange(n + 1, dtype=np.float64) - 0.5 - float(centre)) / (float(sigma) * np.sqrt(2.0))
    return 0.5 * np.diff(erf(edges))


def star_image(shape: tuple[int, int], y: float, x: float, fwhm_y: float, fwhm_x: float,
               peak: float) -> np.ndarray:
    """Noise-free pixel-integrated elliptical Gaussian star whose brightest pixel is ``peak`` e-.

    Parameters
    ----------
    shape : (int, int)
        Patch shape.
    y, x : float
        Centre (px; pixel ``i`` is centred on ``i``).
    fwhm_y, fwhm_x : float
        FWHM along each axis (px, > 0).
    peak : float
        Value of the brightest pixel (e-, >= 0).
    """
    if not (fwhm_y > 0 and fwhm_x > 0 and peak >= 0):
        raise ValueError(f"star_image: expected fwhm > 0 and peak >= 0, got fwhm ({fwhm_y}, {fwhm_x}), peak {peak}")
    py = pixel_integrated_gaussian(y, fwhm_y * _FWHM_TO_SIGMA, shape[0])
    px = pixel_integrated_gaussian(x, fwhm_x * _FWHM_TO_SIGMA, shape[1])
    img = np.outer(py, px)
    top = float(img.max())
    return img * (float(peak) / top) if top > 0 else img


def draw_stars(rng: np.random.Generator, shape: tuple[int, int], noise_sigma: float, *,
               stars_per_patch: float = STARS_PER_PATCH, fwhm_range: tuple[float, float] = FWHM_RANGE,
               peak_sigma_range: tuple[float, float] = PEAK_SIGMA_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Draw the stars of one patch (module docstring): their charge with photon noise, and their weight.

    Parameters
    ----------
    rng : numpy Generator
        Stream (positions, shapes, brightness, photon noise, in that order per star).
    shape : (int, int)
        Patch shape.
    noise_sigma : float
        The patch's final noise sigma (e-) that sets each star's peak significance (> 0).

    Returns
    -------
    (charge, weight) : float64 arrays of ``shape``
        The stars' charge in e- (Poisson noise included, >= 0) and their loss weight in [0, 1].
    """
    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise ValueError(f"draw_stars: noise_sigma must be finite and > 0, got {noise_sigma!r}")

    def anywhere() -> tuple[float, float]:
        return float(rng.uniform(-0.5, shape[0] - 0.5)), float(rng.uniform(-0.5, shape[1] - 0.5))

    model = _star_model(rng, shape, anywhere, noise_sigma, stars_per_patch, fwhm_range, peak_sigma_range)
    charge = rng.poisson(model).astype(np.float64)
    return charge, _star_weight(model, noise_sigma)


def _star_model(rng: np.random.Generator, shape: tuple[int, int], centre: Callable[[], tuple[float, float]],
                noise_sigma: float, stars_per_patch: float, fwhm_range: tuple[float, float],
                peak_sigma_range: tuple[float, float]) -> np.ndarray:
    """Noise-free sum of ``max(1, Poisson(stars_per_patch))`` stars; per star the stream gives
    ``centre()``, the two FWHMs (axis ratio at most 1.5) and the peak in sigma, in that order."""
    n = max(1, int(rng.poisson(stars_per_patch)))
    model = np.zeros(shape, np.float64)
    for _ in range(n):
        y, x = centre()
        fy, fx = _log_uniform(rng, *fwhm_range), _log_uniform(rng, *fwhm_range)
        if max(fy, fx) > 1.5 * min(fy, fx):  # axis ratio at most 1.5
            fy = fx = float(np.sqrt(fy * fx))
        k = _log_uniform(rng, *peak_sigma_range)
        model += star_image(shape, y, x, fy, fx, k * noise_sigma)
    return model


def _star_weight(model: np.ndarray, noise_sigma: float) -> np.ndarray:
    """Loss weight of added stars: the model clipped to [1, 5] sigma, smoothed by 2 px, peak 1."""
    w = np.clip(model / noise_sigma, 1.0, 5.0) - 1.0
    w = ndimage.gaussian_filter(w, 2.0, mode="reflect")
    top = float(w.max())
    if top > 0:
        w /= top
    return w


def draw_stars_on_crs(rng: np.random.Generator, image: np.ndarray, truth: np.ndarray, noise_sigma: float, *,
                      stars_per_patch: float = CR_STARS_PER_PATCH, fwhm_range: tuple[float, float] = FWHM_RANGE,
                      peak_sigma_range: tuple[float, float] = PEAK_SIGMA_RANGE
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Stars centred on the patch's CR pixels (module docstring, "Stars under CRs").

    Parameters
    ----------
    rng : numpy Generator
        Stream (count, then per star: truth pixel, offset, shapes, brightness; then photon noise).
    image : ndarray (H, W)
        The patch in e- before the stars (to estimate each CR pixel's charge).
    truth : ndarray of bool (H, W)
        The patch's CR truth.
    noise_sigma : float
        The patch's final noise sigma (e-) that sets each star's peak significance (> 0).

    Returns
    -------
    (charge, weight, drowned) or None
        ``charge`` the stars' charge in e- (Poisson noise included), ``weight`` their loss weight in
        [0, 1] (as :func:`draw_stars`), ``drowned`` the truth pixels whose estimated CR charge is below
        the pixel's noise with the star; None (and nothing drawn) when the patch has no truth pixel.
    """
    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise ValueError(f"draw_stars_on_crs: noise_sigma must be finite and > 0, got {noise_sigma!r}")
    truth = np.asarray(truth, dtype=bool)
    if truth.shape != np.shape(image):
        raise ValueError(f"draw_stars_on_crs: truth shape {truth.shape} != image shape {np.shape(image)}")
    ys, xs = np.nonzero(truth)
    if ys.size == 0:
        return None

    def on_a_cr_pixel() -> tuple[float, float]:
        k = int(rng.integers(0, ys.size))
        return float(ys[k]) + float(rng.uniform(-1.0, 1.0)), float(xs[k]) + float(rng.uniform(-1.0, 1.0))

    model = _star_model(rng, truth.shape, on_a_cr_pixel, noise_sigma, stars_per_patch, fwhm_range,
                        peak_sigma_range)
    charge = rng.poisson(model).astype(np.float64)
    img = np.asarray(image, dtype=np.float64)
    drowned = truth & (img - smooth_background(img) < np.sqrt(float(noise_sigma) ** 2 + model))
    return charge, _star_weight(model, noise_sigma), drowned
