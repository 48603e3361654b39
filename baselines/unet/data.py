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

Ignore masks: pixels in ``sample.ignore`` get zero weight in every loss (``valid`` = 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from crbench.dataset import Dataset
from crbench.errors import DatasetError
from crbench.sample import Sample

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


@dataclass
class PatchSampler:
    """Deterministic random patch batches from one split of a crbench dataset.

    Parameters
    ----------
    dataset : Dataset
        Labelled dataset (every sample must have ``truth``).
    split : str
        Split to sample from (``'train'``).
    patch : int
        Patch side in pixels (images smaller than this are padded by reflection).
    batch : int
        Patches per batch.
    seed : int
        Seed of the sampling and augmentation stream.
    augment : bool
        Sky, flux and dihedral augmentation.
    sky_aug, flux_aug : float
        Augmentation ranges (module docstring).
    """

    dataset: Dataset
    split: str = "train"
    patch: int = 128
    batch: int = 8
    seed: int = 0
    augment: bool = True
    sky_aug: float = 3.0
    flux_aug: float = 2.0
    items: list[_Item] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        for sample in self.dataset.iter_samples(self.split):
            if sample.truth is None:
                raise DatasetError(f"dataset {self.dataset.name!r} sample {sample.id!r} has no truth mask; "
                                   "training needs labelled samples")
            ignore = sample.ignore_or_false()
            # normalise as at inference: statistics outside the instrument mask (what a detector sees)
            c, s = image_stats(sample.image, None if sample.dqmask is None else sample.dqmask > 0)
            img = sample.image.astype(np.float32)
            pad_h = max(0, self.patch - img.shape[0])
            pad_w = max(0, self.patch - img.shape[1])
            arrays = [img, sample.truth.astype(np.float32), (~ignore).astype(np.float32),
                      source_weight_map(sample, c, s)]
            if pad_h or pad_w:
                arrays = [np.pad(a, ((0, pad_h), (0, pad_w)), mode="reflect") for a in arrays[:1]] + \
                         [np.pad(a, ((0, pad_h), (0, pad_w)), mode="constant") for a in arrays[1:]]
            self.items.append(_Item(*arrays, center=c, scale=s, sample_id=sample.id))
        if not self.items:
            raise DatasetError(f"dataset {self.dataset.name!r} split {self.split!r} has no samples")
        areas = np.array([it.image.size for it in self.items], dtype=np.float64)
        self._p = areas / areas.sum()

    def next_batch(self) -> dict[str, np.ndarray]:
        """One batch: ``x`` (normalised input), ``y`` (truth), ``valid`` and ``weight``,
        each float32 of shape (batch, 1, patch, patch)."""
        out = {k: np.empty((self.batch, 1, self.patch, self.patch), np.float32)
               for k in ("x", "y", "valid", "weight")}
        rng = self.rng
        for b in range(self.batch):
            it = self.items[int(rng.choice(len(self.items), p=self._p))]
            h, w = it.image.shape
            y0 = int(rng.integers(0, h - self.patch + 1))
            x0 = int(rng.integers(0, w - self.patch + 1))
            sl = (slice(y0, y0 + self.patch), slice(x0, x0 + self.patch))
            img = it.image[sl].astype(np.float32)
            c, s = it.center, it.scale
            k_rot, flip = 0, False
            if self.augment:
                if rng.random() < 0.5:
                    f = float(np.exp(rng.uniform(-np.log(self.flux_aug), np.log(self.flux_aug))))
                    img = img * np.float32(f)
                    c, s = c * f, s * f
                if rng.random() < 0.5:
                    delta = float(rng.uniform(0.0, self.sky_aug)) * max(c, s * s)
                    img = img + np.float32(delta) + rng.normal(0.0, np.sqrt(delta), img.shape).astype(np.float32)
                    c, s = c + delta, float(np.sqrt(s * s + delta))
                k_rot, flip = int(rng.integers(0, 4)), bool(rng.random() < 0.5)
            arrays = [normalize(img, c, s), it.truth[sl], it.valid[sl], it.weight[sl]]
            for key, a in zip(("x", "y", "valid", "weight"), arrays):
                a = np.rot90(a, k_rot)
                if flip:
                    a = a[:, ::-1]
                out[key][b, 0] = a
        return out
