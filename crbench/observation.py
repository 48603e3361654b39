"""What a telescope delivers: the only view of a sample a detector gets.

A :class:`~crbench.sample.Sample` also carries what the benchmark knows (truth, ignore, labels,
instances, sources): those are answers, and a detector must never see them. The harness hands
every detector an :class:`Observation` built by :meth:`Sample.observation`; it has no attribute
for any evaluation field, its arrays are read-only copies (a detector cannot alter the sample)
and its ``meta`` is a read-only mapping filtered to an allow-list of instrument keys.

The instrument mask ``dqmask`` is a uint8 bit field known without the truth (calibration and the
readout itself), with the bits :data:`DQ_SATURATED`, :data:`DQ_DEAD`, :data:`DQ_HOT` and
:data:`DQ_OTHER`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, overload

import numpy as np
from numpy.typing import DTypeLike

#: Pixel at or above the saturation level in the image (read out at full well or bleeding).
DQ_SATURATED = 1
#: Dead pixel or bad column (known from calibration).
DQ_DEAD = 2
#: Hot pixel (known from darks).
DQ_HOT = 4
#: Any other instrument defect known before the CR search.
DQ_OTHER = 8
#: Every defined bit.
DQ_ALL = DQ_SATURATED | DQ_DEAD | DQ_HOT | DQ_OTHER

#: Meta keys a detector may read: instrument and exposure properties, never evaluation data.
OBSERVATION_META_KEYS = frozenset({
    "gain", "read_noise", "sky", "dark", "bias", "exptime", "saturation", "instrument", "detector",
    "telescope", "filter", "pixel_scale", "psf_fwhm", "ramp_groups", "group_time", "n_exposures",
    "date_obs", "airmass", "field_type", "nframes", "groupgap", "frame_time", "readout_pattern",
})


@overload
def _readonly_copy(arr: np.ndarray, dtype: DTypeLike | None = None) -> np.ndarray: ...
@overload
def _readonly_copy(arr: None, dtype: DTypeLike | None = None) -> None: ...
def _readonly_copy(arr: np.ndarray | None, dtype: DTypeLike | None = None) -> np.ndarray | None:
    if arr is None:
        return None
    out = np.array(arr, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


def observation_meta(meta: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The allow-listed instrument keys of ``meta`` as a read-only mapping of copied values."""
    kept = {k: copy.deepcopy(v) for k, v in (meta or {}).items() if k in OBSERVATION_META_KEYS}
    return MappingProxyType(kept)


class ImageMeta:
    """Read-only views of an image's shape and instrument meta, shared by :class:`Observation` and
    :class:`crbench.sample.Sample` (both have ``image`` and ``meta``)."""

    __slots__ = ()
    image: np.ndarray
    meta: Mapping[str, Any]

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return tuple(self.image.shape)  # type: ignore[return-value]

    @property
    def gain(self) -> float:
        """Gain in e-/ADU (1 when unknown)."""
        return float(self.meta.get("gain", 1.0))

    @property
    def read_noise(self) -> float:
        """Read noise in e- (0 when unknown)."""
        return float(self.meta.get("read_noise", 0.0))

    @property
    def sky(self) -> float:
        """Sky background in e- (0 when unknown)."""
        return float(self.meta.get("sky", 0.0))

    @property
    def saturation(self) -> float:
        """Saturation level in e- (inf when unknown)."""
        return float(self.meta.get("saturation", np.inf))

    def _optional(self, key: str, kind: type) -> Any:
        value = self.meta.get(key)
        return None if value is None else kind(value)

    @property
    def exptime(self) -> float | None:
        """Exposure time in s, or None."""
        return self._optional("exptime", float)

    @property
    def instrument(self) -> str | None:
        """Instrument or simulation preset name, or None."""
        return self._optional("instrument", str)

    @property
    def pixel_scale(self) -> float | None:
        """Pixel scale in arcsec/px, or None."""
        return self._optional("pixel_scale", float)

    @property
    def psf_fwhm(self) -> float | None:
        """PSF FWHM in px, or None."""
        return self._optional("psf_fwhm", float)


@dataclass(frozen=True, slots=True)
class Observation(ImageMeta):
    """One exposure as a telescope delivers it.

    Parameters
    ----------
    id : str
        Sample identifier (for error messages and per-sample prediction files).
    image : ndarray, shape (H, W), float32, read-only
        Image in electrons, background included.
    exposures : ndarray, shape (N, H, W), float32, read-only, or None
        Aligned companion exposures of the same field.
    ramp : ndarray, shape (G, H, W), float32, read-only, or None
        Up-the-ramp group images.
    dqmask : ndarray of uint8, shape (H, W), read-only, or None
        Instrument data-quality bits (``DQ_*``); None when the dataset has no instrument mask
        (format 1 datasets).
    meta : mapping
        Read-only instrument keys (:data:`OBSERVATION_META_KEYS`): ``gain`` (e-/ADU),
        ``read_noise`` (e-), ``sky`` (e-), ``saturation`` (e-), ``exptime`` (s), ``instrument``,
        ``pixel_scale`` (arcsec/px), ``psf_fwhm`` (px), ...
    """

    id: str
    image: np.ndarray
    exposures: np.ndarray | None = None
    ramp: np.ndarray | None = None
    dqmask: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, id: str, image: np.ndarray, *, exposures: np.ndarray | None = None,
              ramp: np.ndarray | None = None, dqmask: np.ndarray | None = None,
              meta: Mapping[str, Any] | None = None) -> "Observation":
        """Build an observation from arrays, copying them read-only and filtering ``meta``.

        Use this (or :meth:`Sample.observation`) rather than the bare constructor.
        """
        return cls(id=str(id), image=_readonly_copy(image, np.float32),
                   exposures=_readonly_copy(exposures, np.float32), ramp=_readonly_copy(ramp, np.float32),
                   dqmask=_readonly_copy(dqmask, np.uint8), meta=observation_meta(meta))

    def __reduce__(self):
        # the read-only meta mapping does not pickle; rebuild from plain values (process pools, dask)
        return (_rebuild, (self.id, self.image, self.exposures, self.ramp, self.dqmask, dict(self.meta)))

    def bad_pixels(self, bits: int = DQ_ALL) -> np.ndarray | None:
        """Bool mask of pixels with any of ``bits`` set in :attr:`dqmask`; None without a mask."""
        if self.dqmask is None:
            return None
        return (self.dqmask & np.uint8(bits)) > 0


def _rebuild(id, image, exposures, ramp, dqmask, meta) -> Observation:
    return Observation.build(id, image, exposures=exposures, ramp=ramp, dqmask=dqmask, meta=meta)


def saturation_dqmask(image: np.ndarray, saturation: float, *, tolerance: float = 0.0) -> np.ndarray:
    """Instrument mask flagging :data:`DQ_SATURATED` where ``image >= saturation - tolerance``.

    Derived from the read-out values alone (what the instrument knows), so it includes pixels
    saturated by a CR. All zero when ``saturation`` is not finite.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Image in electrons.
    saturation : float
        Saturation level in electrons.
    tolerance : float
        Margin below ``saturation`` still counted as saturated (e.g. one ADU after quantisation).

    Returns
    -------
    ndarray of uint8, shape (H, W)
    """
    out = np.zeros(np.shape(image), dtype=np.uint8)
    if np.isfinite(saturation):
        out[np.asarray(image) >= float(saturation) - float(tolerance)] = DQ_SATURATED
    return out
