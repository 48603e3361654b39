"""Training data: input normalisation, patch sampling, augmentation and loss weight maps.

Input normalisation (used identically in training and inference)
----------------------------------------------------------------
Images are in electrons with the sky included. Each image is reduced to

    x = asinh((image - c) / (s * SOFTENING))

where ``c`` is the median and ``s`` the robust noise (1.4826 x median absolute deviation) of
the image's pixels outside the instrument mask (``dqmask``, what a detector sees; never the
evaluation ignore mask), computed once per *whole image* (never per tile, so tiled
inference has no seams). The net therefore sees noise in units of the image's own sigma,
linear up to ~``SOFTENING`` sigma and logarithmic above, and is invariant to the sky level, the
gain and the exposure time. (deepCR's packaged nets differ: the ACS-WFC net takes raw electrons
and its trainer standardises batches by mean/std, which inference then does not do.)

Augmentation
------------
* **sky**: with probability 0.5 add ``delta = u * max(c, s**2)`` electrons, ``u ~ U(0, sky_aug)``,
  together with Gaussian noise of variance ``delta`` (the Poisson noise of that extra sky), which
  lowers the signal-to-noise of every CR and star (a constant offset alone would be removed by the
  normalisation and teach nothing);
* **flux**: with probability 0.5 multiply the image by ``f``, log-uniform in
  ``[1/flux_aug, flux_aug]`` (gain / exposure-time change; moves the Poisson-to-read-noise
  balance once sky noise is added);
* the 8 flips/rotations of the square.

The normalisation constants follow the augmentation analytically (``c -> f c + delta``,
``s -> sqrt(f^2 s^2 + delta)``) so training sees what inference on such an image would.

Noise-model normalisation (``normalization='noise-model'``)
--------------------------------------------------------
:func:`normalize_noise_model` divides by the noise the detector's model predicts for the
background, ``sqrt(read_noise^2 + sky + gain^2/12)`` (gain, read noise and sky from the image's
meta, :func:`noise_meta`), instead of the image's measured MAD, so a CR of a given significance
gives the same input in every noise regime. A net records which normalisation it was trained
with in its weight file (:func:`normalization_record`); weight files without the record, or with
the legacy method string, use ``image-stats``. Several datasets, the noise-regime augmentation
and this normalisation are options of :class:`PatchSampler` (see :mod:`.noise_aug`).

Ignore masks: pixels in ``sample.ignore`` get zero weight in every loss (``valid`` = 0).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from crbench.dataset import Dataset
from crbench.errors import DatasetError
from crbench.sample import Sample

from .noise_aug import apply_noise_regime, draw_noise_regime, truth_at_regime
from .star_aug import draw_stars, draw_stars_on_crs

#: asinh softening, in units of the image's robust noise.
SOFTENING = 5.0


def image_stats(image: np.ndarray, ignore: np.ndarray | None = None) -> tuple[float, float]:
    """Median and robust noise (1.4826 MAD) of an image's valid pixels (``ignore`` False).

    Computed on every second row and column (a fixed, deterministic subsample) for speed.

    Returns
    -------
    (center, scale) : tuple of float
        ``scale`` is floored at a small positive number so a noiseless image still normalises.
    """
    sub = np.asarray(image[::2, ::2], dtype=np.float64)
    if ignore is not None:
        valid = ~np.asarray(ignore[::2, ::2], dtype=bool)
        sub = sub[valid] if valid.any() else sub.ravel()
    else:
        sub = sub.ravel()
    sub = sub[np.isfinite(sub)]
    if sub.size == 0:
        return 0.0, 1.0
    center = float(np.median(sub))
    scale = 1.4826 * float(np.median(np.abs(sub - center)))
    if not scale > 0:
        scale = float(np.std(sub)) or 1.0
    return center, max(scale, 1e-6)


def normalize(image: np.ndarray, center: float, scale: float) -> np.ndarray:
    """Map an image in electrons to the net's input scale (see module docstring); float32."""
    z = (np.asarray(image, dtype=np.float32) - np.float32(center)) / np.float32(scale * SOFTENING)
    return np.arcsinh(z).astype(np.float32, copy=False)


def normalize_sample_image(image: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """:func:`normalize` with the image's own :func:`image_stats`."""
    c, s = image_stats(image, ignore)
    return normalize(np.nan_to_num(image, nan=c, posinf=c, neginf=c), c, s)


#: Normalisation methods a net can be trained with (the weight file's ``normalization["method"]``).
NORMALIZATIONS = ("image-stats", "noise-model", "noise-vst")
#: The normalisations that read the noise model (gain, read noise, sky) from each image's meta.
NOISE_MODEL_NORMALIZATIONS = ("noise-model", "noise-vst")
#: The ``normalization["method"]`` string of weight files written before the noise-model option;
#: it means ``image-stats``.
LEGACY_IMAGE_STATS_METHOD = "asinh((image - median) / (1.4826 MAD * softening))"


def normalization_record(method: str) -> dict[str, Any]:
    """The ``normalization`` record a weight file stores for ``method`` (one of :data:`NORMALIZATIONS`).

    ``image-stats`` keeps the record of the weight files written before the noise-model option
    (so retraining a shipped net reproduces its file byte for byte).
    """
    if method == "image-stats":
        return {"method": LEGACY_IMAGE_STATS_METHOD, "softening": SOFTENING}
    if method == "noise-model":
        return {"method": "noise-model",
                "formula": "asinh((image - median) / (sqrt(read_noise^2 + max(sky, 0) + gain^2/12) * softening))",
                "softening": SOFTENING}
    if method == "noise-vst":
        return {"method": "noise-vst",
                "formula": "s = image - median, sigma = sqrt(read_noise^2 + max(sky, 0) + gain^2/12); "
                           "(2 (sqrt(sigma^2 + s) - sigma) if s > 0 else s / sigma) / softening",
                "softening": SOFTENING}
    raise DatasetError(f"unknown normalisation {method!r}; expected one of {', '.join(NORMALIZATIONS)}")


def normalization_method(record: Mapping[str, Any] | None) -> str:
    """Which of :data:`NORMALIZATIONS` a weight file's ``normalization`` record asks for.

    No record, the legacy method string or ``'image-stats'`` mean ``image-stats``;
    ``'noise-model'`` means ``noise-model``; anything else raises :class:`DatasetError`.
    """
    method = (record or {}).get("method") if isinstance(record, Mapping) else None
    if method in (None, LEGACY_IMAGE_STATS_METHOD, "image-stats"):
        return "image-stats"
    if method in NOISE_MODEL_NORMALIZATIONS:
        return str(method)
    raise DatasetError(f"unknown normalisation method {method!r}; this crbench knows "
                       f"{', '.join(NORMALIZATIONS)} (and the legacy {LEGACY_IMAGE_STATS_METHOD!r})")


def noise_meta(meta: Mapping[str, Any] | None) -> tuple[float, float, float]:
    """``(gain, read_noise, sky)`` for :func:`normalize_noise_model` from an image's meta.

    ``gain`` defaults to 1 e-/ADU and ``read_noise`` to 0 e- when absent or not finite. ``sky`` is
    the Poisson background in electrons: the meta ``sky`` plus the meta ``dark`` (the dark current
    is Poisson noise too, and the simulated presets record it apart from the sky); NaN when the
    meta has no finite ``sky`` (the normaliser then uses the image's median).
    """
    meta = meta or {}

    def num(key: str, default: float) -> float:
        try:
            v = float(meta.get(key, default))
        except (TypeError, ValueError):
            return default
        return v if np.isfinite(v) else default

    gain = num("gain", 1.0)
    gain = gain if gain > 0 else 1.0
    read_noise = max(num("read_noise", 0.0), 0.0)
    sky = num("sky", float("nan"))
    if np.isfinite(sky):
        sky += max(num("dark", 0.0), 0.0)
    return gain, read_noise, sky


def noise_model_sigma(*, gain: float, read_noise: float, sky: float) -> float:
    """Per-pixel noise (e-) of a background ``sky`` e-: ``sqrt(read_noise^2 + max(sky, 0) + gain^2/12)``."""
    var = float(read_noise) ** 2 + max(float(sky), 0.0) + float(gain) ** 2 / 12.0
    return float(np.sqrt(max(var, 1e-12)))


def noise_model_center(image: np.ndarray, bad: np.ndarray | None = None, *, step: float = 1.0) -> float:
    """Background level of an image: the median of its good pixels, interpolated within the
    quantisation step.

    On a frame quantised to ``step`` e- (the gain) the plain median is a grid value, up to
    ``step / 2`` from the true level (a third of sigma for a 39 e-/ADU camera with 58 e- noise).
    The grouped-data median fixes that: with ``m`` the median, ``n_below`` the pixels under
    ``m - step/2`` and ``n_at`` those within ``step/2`` of ``m``, the level is
    ``m - step/2 + step * (N/2 - n_below) / n_at``. On unquantised data it stays within
    ``step/2`` of the median.
    """
    sub = np.asarray(image, dtype=np.float64)
    if bad is not None:
        good = ~np.asarray(bad, dtype=bool)
        sub = sub[good] if good.any() else sub.ravel()
    sub = sub[np.isfinite(sub)].ravel()
    if sub.size == 0:
        return 0.0
    m = float(np.median(sub))
    half = 0.5 * float(step)
    if not half > 0:
        return m
    n_below = int(np.count_nonzero(sub < m - half))
    n_at = int(np.count_nonzero(np.abs(sub - m) <= half))
    if n_at == 0:
        return m
    return m - half + float(step) * (0.5 * sub.size - n_below) / n_at


def _background_and_sigma(image: np.ndarray, *, gain: float, read_noise: float, sky: float,
                          bad: np.ndarray | None, center: float | None) -> tuple[float, float]:
    """The level a noise-model input subtracts (default :func:`noise_model_center`) and the
    background noise it divides by (:func:`noise_model_sigma`; a non-finite ``sky`` means the level)."""
    if center is None:
        center = noise_model_center(image, bad, step=gain)
    if sky is None or not np.isfinite(sky):
        sky = center
    return center, noise_model_sigma(gain=gain, read_noise=read_noise, sky=sky)


def normalize_noise_model(image: np.ndarray, *, gain: float, read_noise: float, sky: float,
                          bad: np.ndarray | None = None, center: float | None = None,
                          softening: float = SOFTENING) -> np.ndarray:
    """Significance input: ``asinh((image - background) / (sigma * softening))``, float32.

    ``sigma = sqrt(read_noise^2 + max(sky_var, 0) + gain^2/12)`` is the noise of the background from
    the detector's noise model (read noise, Poisson noise of the background, quantisation to the
    gain's ADU step), so the net sees each pixel's significance above the background whatever
    the gain, read noise, sky level or exposure time; the asinh compression is that of
    :func:`normalize`.

    Parameters
    ----------
    image : ndarray (H, W)
        Image in electrons, background included.
    gain : float
        e-/ADU (sets the quantisation noise ``gain^2/12``).
    read_noise : float
        Read noise in e-.
    sky : float
        Poisson background level in e- (sky plus dark current, see :func:`noise_meta`); when not
        finite, the median of the good pixels is used.
    bad : ndarray of bool, optional
        Pixels left out of the median (instrument mask).
    center : float, optional
        Level subtracted; default :func:`noise_model_center` of the good pixels with the gain as
        quantisation step (whole image, so tiled inference has no seams). This robust image level
        rather than the meta ``sky`` is subtracted because the meta level may leave out dark
        current or bias residuals (``sim-ground-small``: sky 1680 e-, dark 300 e-, a 5-sigma
        offset); the meta ``sky`` sets the Poisson variance.
    softening : float
        asinh softening in units of ``sigma``.

    Returns
    -------
    ndarray of float32, shape of ``image``.
    """
    center, sigma = _background_and_sigma(image, gain=gain, read_noise=read_noise, sky=sky, bad=bad,
                                          center=center)
    img = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=center, posinf=center, neginf=center)
    z = (img - np.float32(center)) / np.float32(sigma * softening)
    return np.arcsinh(z).astype(np.float32, copy=False)


def normalize_noise_vst(image: np.ndarray, *, gain: float, read_noise: float, sky: float,
                        bad: np.ndarray | None = None, center: float | None = None,
                        softening: float = SOFTENING) -> np.ndarray:
    """Variance-stabilised significance input (``normalization='noise-vst'``), float32.

    With ``s = image - background`` and ``sigma`` the background noise of :func:`normalize_noise_model`,
    the input is ``2 (sqrt(sigma^2 + s) - sigma) / softening`` above the background and
    ``s / (sigma softening)`` below it: the Anscombe-type transform of Poisson plus Gaussian noise,
    whose noise is one unit (before the softening) at every brightness, continuous with slope
    ``1 / sigma`` at the background, so faint pixels get the same input as with ``noise-model``.

    Why: the asinh compression of ``noise-model`` divides a bump of ``q`` e- on a source of ``S`` e-
    by roughly ``S / sigma``, so a CR on a star many sigma above the background is a tiny wiggle in
    the input, while the same CR on the sky is a large step; this transform divides it by the local
    photon noise ``sqrt(sigma^2 + S)`` instead, which is what sets whether the CR can be seen. Stars
    grow like the square root of their charge (a saturated star of 1.5e5 e- is ~150 units), not
    like its logarithm. Parameters as :func:`normalize_noise_model`.
    """
    center, sigma = _background_and_sigma(image, gain=gain, read_noise=read_noise, sky=sky, bad=bad,
                                          center=center)
    img = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=center, posinf=center, neginf=center)
    s = img - float(center)
    pos = np.clip(s, 0.0, None)
    out = np.where(s > 0, 2.0 * (np.sqrt(sigma * sigma + pos) - sigma), s / sigma) / float(softening)
    return out.astype(np.float32)


def normalize_observation(method: str, image: np.ndarray, meta: Mapping[str, Any] | None,
                          bad: np.ndarray | None = None) -> np.ndarray:
    """Normalise a whole image by ``method`` (:data:`NORMALIZATIONS`), as the detector does.

    ``image-stats`` is exactly :func:`normalize_sample_image`; ``noise-model`` is
    :func:`normalize_noise_model` with :func:`noise_meta` of ``meta``.
    """
    if method == "image-stats":
        return normalize_sample_image(image, bad)
    if method == "noise-model":
        gain, read_noise, sky = noise_meta(meta)
        return normalize_noise_model(image, gain=gain, read_noise=read_noise, sky=sky, bad=bad)
    if method == "noise-vst":
        gain, read_noise, sky = noise_meta(meta)
        return normalize_noise_vst(image, gain=gain, read_noise=read_noise, sky=sky, bad=bad)
    raise DatasetError(f"unknown normalisation {method!r}; expected one of {', '.join(NORMALIZATIONS)}")


def median_frame(sample: Sample) -> np.ndarray:
    """A CR-free estimate of the scene: the median of the image and its companion exposures,
    or a 5x5 median filter of the image when there are fewer than two companions."""
    if sample.exposures is not None and sample.exposures.shape[0] >= 2:
        return np.median(np.concatenate([sample.image[None], sample.exposures]), axis=0).astype(np.float32)
    return ndimage.median_filter(sample.image, size=5, mode="reflect").astype(np.float32)


def source_weight_map(sample: Sample, center: float, scale: float) -> np.ndarray:
    """Cosmic-CoNN-style weight of negative pixels from the median frame, in [0, 1].

    The median frame minus ``center`` is clipped to ``[scale, 5 scale]``, shifted to start at 0,
    smoothed by a Gaussian (sigma 2 px) and divided by its maximum: bright-source pixels weigh 1,
    empty sky 0. The loss floors it at a ramped ``alpha`` (see :mod:`.losses`).
    """
    m = median_frame(sample) - center
    w = np.clip(m, scale, 5 * scale) - scale
    w = ndimage.gaussian_filter(w, 2.0, mode="reflect")
    peak = float(w.max())
    if peak > 0:
        w /= peak
    return w.astype(np.float32)


@dataclass
class _Item:
    image: np.ndarray
    truth: np.ndarray
    valid: np.ndarray
    weight: np.ndarray
    center: float
    scale: float
    sample_id: str
    group: int = 0
    gain: float = 1.0
    read_noise: float = 0.0
    sky: float = float("nan")
    level: float = float("nan")


@dataclass
class PatchSampler:
    """Deterministic random patch batches from one split of one or several crbench datasets.

    Parameters
    ----------
    dataset : Dataset or sequence of Dataset
        Labelled dataset(s) (every sample must have ``truth``). With several, each patch first
        draws a dataset with equal probability (``1/len(datasets)``, whatever their sizes), then
        a sample of that dataset with probability proportional to its area; with one, the draw
        is exactly that of a single-dataset sampler.
    split : str
        Split to sample from (``'train'``).
    patch : int
        Patch side in pixels (images smaller than this are padded by reflection).
    batch : int
        Patches per batch.
    seed : int
        Seed of the sampling and augmentation stream.
    augment : bool
        Dihedral augmentation, plus the sky and flux augmentation (module docstring) unless
        ``noise_aug`` replaces them; with ``normalization='noise-model'`` the flux augmentation
        is off (scaling electrons breaks the Poisson noise model) and the sky augmentation raises
        the sky handed to the normaliser.
    sky_aug, flux_aug : float
        Augmentation ranges (module docstring).
    normalization : str
        ``'image-stats'`` (:func:`normalize`, the default) or ``'noise-model'``
        (:func:`normalize_noise_model` with each sample's meta gain, read noise and sky).
    noise_aug : bool
        Move every patch to a random noise regime (:mod:`.noise_aug`); the normaliser gets the
        patch's new gain, read noise and sky. :attr:`last_regimes` holds the last batch's regimes.
    star_aug : float
        Probability (0-1) that a patch gets undersampled stars at high significance as hard negatives
        (:mod:`.star_aug`), drawn after the noise regime (their brightness is set in sigma of the
        patch's final noise) and added before it. 0 (default) leaves the random stream untouched.
    truth_at_noise : bool
        With ``noise_aug``: apply the common truth rule again at each patch's new noise
        (:func:`.noise_aug.truth_at_regime`); CR pixels that fail it become halo (``valid`` = 0) or
        negatives. Draws nothing from the random stream.
    cr_star_aug : float
        Probability (0-1) that a patch with CR pixels gets stars centred on them
        (:func:`.star_aug.draw_stars_on_crs`; brightness in sigma of the patch's final noise, added
        before the noise regime; CR pixels the star's noise drowns leave the loss). 0 (default)
        leaves the random stream untouched.
    """

    dataset: Dataset | Sequence[Dataset]
    split: str = "train"
    patch: int = 128
    batch: int = 8
    seed: int = 0
    augment: bool = True
    sky_aug: float = 3.0
    flux_aug: float = 2.0
    normalization: str = "image-stats"
    noise_aug: bool = False
    star_aug: float = 0.0
    cr_star_aug: float = 0.0
    truth_at_noise: bool = False
    items: list[_Item] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise DatasetError(f"unknown normalisation {self.normalization!r}; expected one of "
                               f"{', '.join(NORMALIZATIONS)}")
        if not (np.isfinite(self.star_aug) and 0.0 <= self.star_aug <= 1.0):
            raise DatasetError(f"star_aug: expected a probability in [0, 1], got {self.star_aug!r}")
        if self.truth_at_noise and not self.noise_aug:
            raise DatasetError("truth_at_noise re-applies the truth rule after the noise-regime augmentation; "
                               "it needs noise_aug=True")
        if not (np.isfinite(self.cr_star_aug) and 0.0 <= self.cr_star_aug <= 1.0):
            raise DatasetError(f"cr_star_aug: expected a probability in [0, 1], got {self.cr_star_aug!r}")
        self.rng = np.random.default_rng(self.seed)
        self.datasets = [self.dataset] if isinstance(self.dataset, Dataset) else list(self.dataset)
        if not self.datasets:
            raise DatasetError("patch sampler: no dataset given")
        self.last_regimes: list[dict[str, Any]] = []
        self._groups: list[list[int]] = []
        self._p: list[np.ndarray] = []
        for g, dataset in enumerate(self.datasets):
            first = len(self.items)
            for sample in dataset.iter_samples(self.split):
                self.items.append(self._item(dataset, sample, g))
            if len(self.items) == first:
                raise DatasetError(f"dataset {dataset.name!r} split {self.split!r} has no samples")
            idx = list(range(first, len(self.items)))
            areas = np.array([self.items[i].image.size for i in idx], dtype=np.float64)
            self._groups.append(idx)
            self._p.append(areas / areas.sum())

    def _item(self, dataset: Dataset, sample: Sample, group: int) -> _Item:
        if sample.truth is None:
            raise DatasetError(f"dataset {dataset.name!r} sample {sample.id!r} has no truth mask; "
                               "training needs labelled samples")
        ignore = sample.ignore_or_false()
        # normalise as at inference: statistics outside the instrument mask (what a detector sees)
        c, s = image_stats(sample.image, None if sample.dqmask is None else sample.dqmask > 0)
        gain, read_noise, sky = noise_meta(sample.meta)
        bad = None if sample.dqmask is None else sample.dqmask > 0
        level = (noise_model_center(sample.image, bad, step=gain)
                 if self.normalization in NOISE_MODEL_NORMALIZATIONS else c)
        img = sample.image.astype(np.float32)
        pad_h = max(0, self.patch - img.shape[0])
        pad_w = max(0, self.patch - img.shape[1])
        arrays = [img, sample.truth.astype(np.float32), (~ignore).astype(np.float32),
                  source_weight_map(sample, c, s)]
        if pad_h or pad_w:
            arrays = [np.pad(a, ((0, pad_h), (0, pad_w)), mode="reflect") for a in arrays[:1]] + \
                     [np.pad(a, ((0, pad_h), (0, pad_w)), mode="constant") for a in arrays[1:]]
        image, truth, valid, weight = arrays
        return _Item(image, truth, valid, weight, center=c, scale=s, sample_id=sample.id, group=group, gain=gain,
                     read_noise=read_noise, sky=sky, level=level)

    def dataset_names(self) -> list[str]:
        """Names of the sampled datasets, in order."""
        return [d.name for d in self.datasets]

    def draw_item(self) -> _Item:
        """One sample: a dataset uniformly (only when there are several), then a sample by area."""
        rng = self.rng
        g = int(rng.integers(0, len(self._groups))) if len(self._groups) > 1 else 0
        idx = self._groups[g]
        return self.items[idx[int(rng.choice(len(idx), p=self._p[g]))]]

    @staticmethod
    def _final_sigma(regime: Any, *, read_noise: float, sky: float) -> float:
        """Background noise (e-) the patch will have after ``regime`` (its own noise when None)."""
        rn = float(read_noise)
        bg = max(float(sky), 0.0) if np.isfinite(sky) else 0.0
        quant = 0.0
        if regime is not None:
            rn = max(rn, float(regime.read_noise))
            bg += float(regime.extra_sky)
            quant = float(regime.gain) ** 2 / 12.0
        return max(float(np.sqrt(rn * rn + bg + quant)), 1e-3)

    @classmethod
    def _add_stars(cls, rng: np.random.Generator, img: np.ndarray, weight: np.ndarray, regime: Any,
                   *, read_noise: float, sky: float) -> tuple[np.ndarray, np.ndarray]:
        """``img`` plus drawn stars (:func:`.star_aug.draw_stars`) whose significance is set by the
        noise the patch will have after ``regime`` (its own noise when None); weights by maximum."""
        sigma = cls._final_sigma(regime, read_noise=read_noise, sky=sky)
        charge, star_w = draw_stars(rng, img.shape, sigma)
        return (img + charge).astype(np.float32), np.maximum(weight, star_w).astype(np.float32)

    @classmethod
    def _add_stars_on_crs(cls, rng: np.random.Generator, img: np.ndarray, weight: np.ndarray,
                          truth: np.ndarray, valid: np.ndarray, regime: Any, *, read_noise: float,
                          sky: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``img`` plus stars centred on its CR pixels (:func:`.star_aug.draw_stars_on_crs`), weights
        by maximum, ``valid`` without the drowned CR pixels; unchanged when the patch has no CR."""
        sigma = cls._final_sigma(regime, read_noise=read_noise, sky=sky)
        drawn = draw_stars_on_crs(rng, img, truth > 0, sigma)
        if drawn is None:
            return img, weight, valid
        charge, star_w, drowned = drawn
        return ((img + charge).astype(np.float32), np.maximum(weight, star_w).astype(np.float32),
                np.where(drowned, np.float32(0.0), valid).astype(np.float32))

    def next_batch(self) -> dict[str, np.ndarray]:
        """One batch: ``x`` (normalised input), ``y`` (truth), ``valid`` and ``weight``,
        each float32 of shape (batch, 1, patch, patch)."""
        out = {k: np.empty((self.batch, 1, self.patch, self.patch), np.float32)
               for k in ("x", "y", "valid", "weight")}
        rng = self.rng
        self.last_regimes = []
        noise_model = self.normalization in NOISE_MODEL_NORMALIZATIONS
        for b in range(self.batch):
            it = self.draw_item()
            h, w = it.image.shape
            y0 = int(rng.integers(0, h - self.patch + 1))
            x0 = int(rng.integers(0, w - self.patch + 1))
            sl = (slice(y0, y0 + self.patch), slice(x0, x0 + self.patch))
            img = it.image[sl].astype(np.float32)
            c, s = it.center, it.scale
            level = it.level  # noise-model background (whole image, as at inference)
            gain, read_noise = it.gain, it.read_noise
            sky = it.sky if np.isfinite(it.sky) else level
            k_rot, flip = 0, False
            weight = it.weight[sl]
            valid = it.valid[sl]
            regime = draw_noise_regime(rng) if self.noise_aug else None
            if self.star_aug > 0 and rng.random() < self.star_aug:
                img, weight = self._add_stars(rng, img, weight, regime, read_noise=read_noise, sky=sky)
            if self.cr_star_aug > 0 and rng.random() < self.cr_star_aug:
                img, weight, valid = self._add_stars_on_crs(rng, img, weight, it.truth[sl], valid, regime,
                                                            read_noise=read_noise, sky=sky)
            truth = it.truth[sl]
            if regime is not None:
                before, level_before = img, level
                img, new = apply_noise_regime(img, regime, rng, read_noise=read_noise, sky=sky)
                if self.truth_at_noise:
                    kept, halo = truth_at_regime(before, truth > 0, level=level_before,
                                                 before=(read_noise, sky, gain), read_noise=new["read_noise"],
                                                 sky=new["sky"], gain=new["gain"])
                    truth = kept.astype(np.float32)
                    valid = np.where(halo, np.float32(0.0), valid).astype(np.float32)
                added_rn2 = new["read_noise"] ** 2 - read_noise ** 2
                c = c + new["added_sky"]
                s = float(np.sqrt(s * s + new["added_sky"] + added_rn2 + new["gain"] ** 2 / 12.0))
                gain, read_noise, sky = new["gain"], new["read_noise"], new["sky"]
                if noise_model:
                    # the re-quantised patch's level, as inference would measure it (a coarse new
                    # ADU step moves it off level + added sky)
                    level = noise_model_center(img, step=gain)
                self.last_regimes.append({**regime.to_dict(), "sample_id": it.sample_id,
                                          "dataset": self.datasets[it.group].name})
            if self.augment:
                if not self.noise_aug:
                    if not noise_model and rng.random() < 0.5:
                        f = float(np.exp(rng.uniform(-np.log(self.flux_aug), np.log(self.flux_aug))))
                        img = img * np.float32(f)
                        c, s = c * f, s * f
                    if rng.random() < 0.5:
                        delta = float(rng.uniform(0.0, self.sky_aug)) * max(c, s * s)
                        img = img + np.float32(delta) + rng.normal(0.0, np.sqrt(delta), img.shape).astype(np.float32)
                        c, s = c + delta, float(np.sqrt(s * s + delta))
                        sky, level = sky + delta, level + delta
                k_rot, flip = int(rng.integers(0, 4)), bool(rng.random() < 0.5)
            if self.normalization == "noise-vst":
                x = normalize_noise_vst(img, gain=gain, read_noise=read_noise, sky=sky, center=level)
            elif noise_model:
                x = normalize_noise_model(img, gain=gain, read_noise=read_noise, sky=sky, center=level)
            else:
                x = normalize(img, c, s)
            arrays = [x, truth, valid, weight]
            for key, a in zip(("x", "y", "valid", "weight"), arrays):
                a = np.rot90(a, k_rot)
                if flip:
                    a = a[:, ::-1]
                out[key][b, 0] = a
        return out
