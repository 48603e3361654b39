"""The in-memory data model: one :class:`Sample` per image.

Units: every image is in electrons (e-), background included. ``gain`` (e-/ADU), ``read_noise``
(e-) and ``sky`` (e-, scalar) travel in ``meta``.

A sample holds both what a telescope delivers (image, exposures, ramp, instrument mask ``dqmask``,
instrument meta) and what the benchmark knows (truth, ignore, labels, instances, sources).
Detectors only ever get the former, as the :class:`~crbench.observation.Observation` that
:meth:`Sample.observation` builds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import SampleError
from .observation import ImageMeta, Observation

#: Columns of the per-instance (per-CR) table.
INSTANCE_COLUMNS = ("id", "morphology", "generator", "pixels", "charge", "saturated")

#: Morphology classes, in report order.
MORPHOLOGIES = ("spot", "track", "worm", "blob")


def empty_instance_table() -> pd.DataFrame:
    """Return an empty per-instance table with the standard columns and dtypes."""
    return pd.DataFrame(
        {
            "id": pd.Series([], dtype="int32"),
            "morphology": pd.Series([], dtype="object"),
            "generator": pd.Series([], dtype="object"),
            "pixels": pd.Series([], dtype="int64"),
            "charge": pd.Series([], dtype="float64"),
            "saturated": pd.Series([], dtype="bool"),
        }
    )


@dataclass
class Sample(ImageMeta):
    """One image with its truth and companions.

    Parameters
    ----------
    id : str
        Sample identifier, unique within its dataset (also the FITS file stem).
    image : ndarray, shape (H, W), float32
        Image in electrons, background included.
    truth : ndarray of bool, shape (H, W), or None
        Cosmic-ray mask; None when the sample is unlabelled.
    ignore : ndarray of bool, shape (H, W), or None
        Pixels excluded from every count (saturated, bad, border, unresolved label).
    labels : ndarray of int32, shape (H, W), or None
        CR instance ids, 0 = no CR. Every truth pixel carries a non-zero id.
    instances : DataFrame
        Per-instance table with columns :data:`INSTANCE_COLUMNS`.
    sources : ndarray of bool, shape (H, W), or None
        Stars and galaxies (for false positives on sources).
    halo : ndarray of bool, shape (H, W), or None
        CR pixels above 1 sigma that fail the truth rule (:mod:`crbench.truth`); disjoint from
        ``truth``. Evaluation ignores them by default (convention ``halo``).
    exposures : ndarray, shape (N, H, W), float32, or None
        Aligned companion exposures of the same field (not including ``image``).
    ramp : ndarray, shape (G, H, W), float32, or None
        Up-the-ramp group images, for IR detectors.
    meta : dict
        ``gain``, ``read_noise``, ``sky``, ``exptime``, ``saturation``, ``instrument``,
        ``pixel_scale``, ``psf_fwhm`` and provenance; free-form beyond those. Only the instrument
        keys (:data:`crbench.observation.OBSERVATION_META_KEYS`) reach detectors.
    jumps : ndarray of bool, shape (G-1, H, W), or None
        Up-the-ramp truth (evaluation data): ``jumps[k]`` marks the pixels whose CR jump between
        groups ``k`` and ``k + 1`` passes the truth rule. Needs ``ramp``.
    rate_clean : ndarray, shape (H, W), float32, or None
        Evaluation data of ramp samples: the image the ramp would give without its CRs (same
        noise; e-), the reference for the CR charge that leaks into the image.
    dqmask : ndarray of uint8, shape (H, W), or None
        Instrument data-quality bits (:data:`crbench.observation.DQ_SATURATED`, ``DQ_DEAD``,
        ``DQ_HOT``, ``DQ_OTHER``) known without the truth; detectors see it. Never CR truth or
        label-derived pixels (those belong in ``ignore``). None when unknown.
    """

    id: str
    image: np.ndarray
    truth: np.ndarray | None = None
    ignore: np.ndarray | None = None
    labels: np.ndarray | None = None
    instances: pd.DataFrame = field(default_factory=empty_instance_table)
    sources: np.ndarray | None = None
    exposures: np.ndarray | None = None
    ramp: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    halo: np.ndarray | None = None
    dqmask: np.ndarray | None = None
    jumps: np.ndarray | None = None
    rate_clean: np.ndarray | None = None

    def observation(self) -> Observation:
        """What a detector may see: image, companions, instrument mask and instrument meta.

        The arrays are read-only copies, so a detector can neither read the evaluation fields
        nor alter this sample.
        """
        return Observation.build(self.id, self.image, exposures=self.exposures, ramp=self.ramp,
                                 dqmask=self.dqmask, meta=self.meta)

    def ignore_or_false(self) -> np.ndarray:
        """The ignore mask, or an all-False mask when there is none."""
        if self.ignore is None:
            return np.zeros(self.shape, dtype=bool)
        return self.ignore

    def validate(self) -> "Sample":
        """Check shapes, dtypes and finiteness; raise :class:`SampleError` naming the sample.

        Returns the sample itself so calls can be chained.
        """
        validate_sample(self)
        return self


def _fail(sample_id: str, what: str) -> None:
    raise SampleError(f"sample {sample_id!r}: {what}")


def validate_sample(sample: Sample) -> None:
    """Validate a :class:`Sample` in place.

    Raises
    ------
    SampleError
        If the image is not a finite 2-D float array, if any mask or companion array has a
        shape other than the image's, or if labels and truth disagree.
    """
    sid = sample.id
    img = sample.image
    if not isinstance(img, np.ndarray) or img.ndim != 2:
        _fail(sid, f"image must be a 2-D array, got {getattr(img, 'shape', type(img).__name__)}")
    if not np.issubdtype(img.dtype, np.floating) and not np.issubdtype(img.dtype, np.integer):
        _fail(sid, f"image must be numeric, got dtype {img.dtype}")
    n_bad = int(np.count_nonzero(~np.isfinite(img)))
    if n_bad:
        _fail(sid, f"image has {n_bad} NaN or inf pixels; mask them in IGNORE and fill them first")
    shape = img.shape
    for name in ("truth", "ignore", "labels", "sources", "halo"):
        arr = getattr(sample, name)
        if arr is None:
            continue
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            _fail(sid, f"{name} has shape {getattr(arr, 'shape', None)} but image has shape {shape}")
    if sample.truth is not None and sample.truth.dtype != bool:
        _fail(sid, f"truth must be a bool mask, got dtype {sample.truth.dtype}")
    if sample.ignore is not None and sample.ignore.dtype != bool:
        _fail(sid, f"ignore must be a bool mask, got dtype {sample.ignore.dtype}")
    if sample.halo is not None:
        if sample.halo.dtype != bool:
            _fail(sid, f"halo must be a bool mask, got dtype {sample.halo.dtype}")
        if sample.truth is not None and np.any(sample.halo & sample.truth):
            _fail(sid, "halo and truth overlap: a halo pixel is a CR pixel that failed the truth rule")
    if sample.dqmask is not None:
        dq = sample.dqmask
        if not isinstance(dq, np.ndarray) or dq.shape != shape:
            _fail(sid, f"dqmask has shape {getattr(dq, 'shape', None)} but image has shape {shape}")
        if dq.dtype != np.uint8:
            _fail(sid, f"dqmask must be a uint8 bit field (crbench.observation.DQ_*), got dtype {dq.dtype}")
    if sample.labels is not None:
        if not np.issubdtype(sample.labels.dtype, np.integer):
            _fail(sid, f"labels must be an integer array, got dtype {sample.labels.dtype}")
        if sample.truth is not None and np.any((sample.labels > 0) != sample.truth):
            _fail(sid, "labels and truth disagree: every truth pixel needs a non-zero label and vice versa")
    _validate_ramp_truth(sample)
    for name in ("exposures", "ramp"):
        arr = getattr(sample, name)
        if arr is None:
            continue
        if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[1:] != shape:
            _fail(sid, f"{name} must have shape (N, {shape[0]}, {shape[1]}), got {getattr(arr, 'shape', None)}")
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        if n_bad:
            _fail(sid, f"{name} has {n_bad} NaN or inf pixels")


def _validate_ramp_truth(sample: Sample) -> None:
    sid, shape = sample.id, sample.image.shape
    if sample.rate_clean is not None and (not isinstance(sample.rate_clean, np.ndarray)
                                          or sample.rate_clean.shape != shape):
        _fail(sid, f"rate_clean has shape {getattr(sample.rate_clean, 'shape', None)} but image has shape {shape}")
    if sample.jumps is None:
        return
    j = sample.jumps
    if not isinstance(j, np.ndarray) or j.dtype != bool or j.ndim != 3 or j.shape[1:] != shape:
        _fail(sid, f"jumps must be a bool array of shape (G-1, {shape[0]}, {shape[1]}), got "
                   f"{getattr(j, 'dtype', None)} {getattr(j, 'shape', None)}")
    if sample.ramp is not None and j.shape[0] != sample.ramp.shape[0] - 1:
        _fail(sid, f"jumps has {j.shape[0]} group differences but the ramp has {sample.ramp.shape[0]} groups "
                   f"(expected {sample.ramp.shape[0] - 1})")
