"""One FITS file per sample: named extensions, masks as uint8, headers carrying units and noise.

Layout (extensions present only when the sample has them)::

    PRIMARY    empty data; CRBFMT, SAMPLEID, GAIN, RDNOISE, SKY, EXPTIME, SATURATE, INSTRUME, BUNIT
    SCI        float32 image in electrons (BUNIT = 'electron')
    DQMASK     uint8 instrument data-quality bits (crbench.observation.DQ_*), seen by detectors
    CRMASK     uint8 cosmic-ray truth (1 = CR)
    IGNORE     uint8 pixels excluded from every count
    CRLABEL    int32 CR instance ids (0 = none)
    SOURCES    uint8 source mask
    HALO       uint8 CR pixels above 1 sigma that fail the truth rule (crbench.truth)
    EXPOSURES  float32 (N, H, W) aligned companion exposures
    RAMP       float32 (G, H, W) up-the-ramp groups
    JUMPS      uint8 (G-1, H, W) per-group-difference jump truth (evaluation data)
    CRFREE     float32 image the ramp gives without its CRs (evaluation data)
    INSTANCES  binary table, one row per CR
    META       binary table with one row: the sample's meta as JSON

``astropy.nddata.CCDData.read(path, hdu='SCI', hdu_mask='CRMASK')`` opens it.

Format versions (``CRBFMT`` in the primary header): 1 (no keyword) had no instrument mask, so
the evaluation ``IGNORE`` mask was the only mask; 2 adds ``DQMASK``. Format 1 files still open,
with a one-time :class:`FormatNote` warning per folder: their detectors get no instrument mask.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from .atomic import atomic_path, _json_default
from .errors import FormatError
from .sample import Sample, empty_instance_table

_HEADER_KEYS = {
    "gain": ("GAIN", "gain [e-/ADU] of the original data"),
    "read_noise": ("RDNOISE", "read noise [e-]"),
    "sky": ("SKY", "sky background [e-]"),
    "exptime": ("EXPTIME", "exposure time [s]"),
    "saturation": ("SATURATE", "saturation level [e-]"),
    "instrument": ("INSTRUME", "instrument or preset"),
    "pixel_scale": ("PIXSCALE", "pixel scale [arcsec/px]"),
    "psf_fwhm": ("PSFFWHM", "PSF FWHM [px]"),
}

_MASKS = {"truth": "CRMASK", "ignore": "IGNORE", "sources": "SOURCES", "halo": "HALO"}
_CUBES = {"exposures": "EXPOSURES", "ramp": "RAMP"}

#: Version of the sample file layout written by :func:`write_sample` (``CRBFMT`` header card).
FORMAT_VERSION = 2

#: Folders for which the format-1 note was already given (once per folder and process).
_NOTED_FOLDERS: set[str] = set()


class FormatNote(UserWarning):
    """A sample file of an older format version was opened (shown once per folder)."""


def format_version(header) -> int:
    """The crbench format version of a sample file from its primary header (1 without CRBFMT)."""
    return int(header.get("CRBFMT", 1))


def write_sample(sample: Sample, path: str | os.PathLike) -> None:
    """Write ``sample`` to ``path`` as a crbench FITS file, atomically.

    Parameters
    ----------
    sample : Sample
        A validated sample.
    path : path-like
        Destination ``.fits`` file; replaced whole on success, untouched on failure.
    """
    sample.validate()
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["CRBFMT"] = (FORMAT_VERSION, "crbench sample format version")
    hdr["SAMPLEID"] = (sample.id, "crbench sample id")
    hdr["BUNIT"] = ("electron", "image unit")
    for key, (card, comment) in _HEADER_KEYS.items():
        value = sample.meta.get(key)
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            continue
        if isinstance(value, (int, float, str, bool, np.integer, np.floating)):
            hdr[card] = (value.item() if hasattr(value, "item") else value, comment)
    hdus: list = [primary]
    sci = fits.ImageHDU(np.asarray(sample.image, dtype=np.float32), name="SCI")
    sci.header["BUNIT"] = "electron"
    for key, (card, comment) in _HEADER_KEYS.items():
        if card in hdr:
            sci.header[card] = (hdr[card], comment)
    hdus.append(sci)
    if sample.dqmask is not None:
        dq = fits.ImageHDU(np.asarray(sample.dqmask, dtype=np.uint8), name="DQMASK")
        dq.header["COMMENT"] = "instrument data-quality bits: 1 saturated, 2 dead/bad column, 4 hot, 8 other"
        hdus.append(dq)
    for attr, name in _MASKS.items():
        arr = getattr(sample, attr)
        if arr is not None:
            hdus.append(fits.ImageHDU(np.asarray(arr, dtype=np.uint8), name=name))
    if sample.labels is not None:
        hdus.append(fits.ImageHDU(np.asarray(sample.labels, dtype=np.int32), name="CRLABEL"))
    for attr, name in _CUBES.items():
        arr = getattr(sample, attr)
        if arr is not None:
            hdus.append(fits.ImageHDU(np.asarray(arr, dtype=np.float32), name=name))
    if sample.jumps is not None:
        hdus.append(fits.ImageHDU(np.asarray(sample.jumps, dtype=np.uint8), name="JUMPS"))
    if sample.rate_clean is not None:
        hdus.append(fits.ImageHDU(np.asarray(sample.rate_clean, dtype=np.float32), name="CRFREE"))
    hdus.append(_instances_hdu(sample.instances))
    meta_json = json.dumps(sample.meta, sort_keys=True, default=_json_default)
    hdus.append(
        fits.BinTableHDU.from_columns(
            [fits.Column(name="json", format=f"{max(len(meta_json), 1)}A", array=np.array([meta_json]))],
            name="META",
        )
    )
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, output_verify="exception")


def _instances_hdu(table: pd.DataFrame) -> fits.BinTableHDU:
    table = table if table is not None and len(table.columns) else empty_instance_table()
    n = len(table)
    strlen = lambda col: max([1] + [len(str(v)) for v in table[col]])  # noqa: E731
    cols = [
        fits.Column(name="id", format="J", array=np.asarray(table["id"], dtype=np.int32)),
        fits.Column(name="morphology", format=f"{strlen('morphology')}A",
                    array=np.asarray(table["morphology"].astype(str) if n else [], dtype=str)),
        fits.Column(name="generator", format=f"{strlen('generator')}A",
                    array=np.asarray(table["generator"].astype(str) if n else [], dtype=str)),
        fits.Column(name="pixels", format="K", array=np.asarray(table["pixels"], dtype=np.int64)),
        fits.Column(name="charge", format="D", array=np.asarray(table["charge"], dtype=np.float64)),
        fits.Column(name="saturated", format="L", array=np.asarray(table["saturated"], dtype=bool)),
    ]
    extra = [c for c in table.columns if c not in {"id", "morphology", "generator", "pixels", "charge", "saturated"}]
    for c in extra:
        values = np.asarray(table[c])
        if np.issubdtype(values.dtype, np.number):
            cols.append(fits.Column(name=c, format="D", array=values.astype(np.float64)))
    return fits.BinTableHDU.from_columns(cols, name="INSTANCES")


def read_sample(path: str | os.PathLike, *, load_companions: bool = True) -> Sample:
    """Read a crbench FITS file written by :func:`write_sample`.

    Parameters
    ----------
    path : path-like
        The sample file.
    load_companions : bool
        Read ``EXPOSURES`` and ``RAMP`` too (they can be large).

    Raises
    ------
    FormatError
        If the file is missing, truncated or corrupt, or lacks the ``SCI`` extension, naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: sample file not found")
    try:
        with warnings.catch_warnings():
            # astropy only warns on truncated files and pads them; a truncated sample is an error here
            warnings.simplefilter("error", AstropyUserWarning)
            return _read_sample(path, load_companions)
    except FormatError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, AstropyUserWarning) as exc:
        raise FormatError(f"{path}: cannot read FITS file ({type(exc).__name__}: {exc}); "
                          "the file is truncated or corrupt, rebuild or re-download it") from exc


def _read_sample(path: Path, load_companions: bool) -> Sample:
    with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
        names = [h.name for h in hdul]
        if "SCI" not in names:
            raise FormatError(f"{path}: missing SCI extension (found {names}); not a crbench sample file")
        hdr = hdul[0].header
        version = format_version(hdr)
        if version > FORMAT_VERSION:
            raise FormatError(f"{path}: sample format version {version} (CRBFMT) is newer than this crbench "
                              f"reads ({FORMAT_VERSION}); upgrade crbench")
        if version < 2:
            _note_old_format(path, version)
        sample_id = str(hdr.get("SAMPLEID", path.stem))
        if sample_id != path.stem:
            raise FormatError(f"{path}: header SAMPLEID is {sample_id!r} but the file name says {path.stem!r}; "
                              "a sample file must be named <SAMPLEID>.fits (rebuild the dataset or rename the file)")
        image = _read_array(hdul, "SCI", path, np.float32)
        sample = Sample(id=sample_id, image=image)
        if "DQMASK" in names:
            sample.dqmask = _read_array(hdul, "DQMASK", path, np.uint8)
        for attr, name in _MASKS.items():
            if name in names:
                setattr(sample, attr, _read_array(hdul, name, path, np.uint8).astype(bool))
        if "CRLABEL" in names:
            sample.labels = _read_array(hdul, "CRLABEL", path, np.int32)
        if load_companions:
            for attr, name in _CUBES.items():
                if name in names:
                    setattr(sample, attr, _read_array(hdul, name, path, np.float32))
        if "JUMPS" in names:
            sample.jumps = _read_array(hdul, "JUMPS", path, np.uint8).astype(bool)
        if "CRFREE" in names:
            sample.rate_clean = _read_array(hdul, "CRFREE", path, np.float32)
        if "INSTANCES" in names:
            sample.instances = _read_instances(hdul["INSTANCES"])
        meta = {}
        if "META" in names:
            meta = _read_meta(hdul, path)
        for key, (card, _) in _HEADER_KEYS.items():
            if key not in meta and card in hdr:
                meta[key] = hdr[card]
        sample.meta = meta
    return sample.validate()


def _read_meta(hdul: fits.HDUList, path: Path) -> dict:
    """The sample's meta: the JSON object in the ``META`` extension, one FormatError naming ``path`` if not."""
    try:
        meta = json.loads(str(hdul["META"].data["json"][0]))
    except RecursionError:
        raise FormatError(f"{path}: META extension holds JSON nested too deeply; "
                          "expected a flat JSON object of sample metadata") from None
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: META extension holds a JSON {type(meta).__name__}; "
                          "expected a JSON object of sample metadata")
    return meta


def _note_old_format(path: Path, version: int) -> None:
    folder = str(path.resolve().parent)
    if folder in _NOTED_FOLDERS:
        return
    _NOTED_FOLDERS.add(folder)
    warnings.warn(f"{folder}: format {version} dataset: no instrument mask; detectors get none "
                  "(rebuild it for a DQMASK)", FormatNote, stacklevel=4)


def _read_array(hdul: fits.HDUList, name: str, path: Path, dtype) -> np.ndarray:
    data = hdul[name].data
    if data is None:
        raise FormatError(f"{path}: extension {name} has no data")
    expected = hdul[name].header.get("NAXIS1", 0) * hdul[name].header.get("NAXIS2", 0)
    if data.size == 0 or (expected and data.shape[-1] * data.shape[-2] != expected):
        raise FormatError(f"{path}: extension {name} is truncated")
    return np.array(data, dtype=dtype)


def _read_instances(hdu: fits.BinTableHDU) -> pd.DataFrame:
    data = hdu.data
    if data is None or len(data) == 0:
        return empty_instance_table()
    out = {}
    for col in hdu.columns.names:
        values = np.asarray(data[col])
        if values.dtype.kind in "SU":
            values = values.astype(str)
        elif values.dtype.byteorder not in ("=", "|"):
            values = values.astype(values.dtype.newbyteorder("="))
        out[col] = values
    table = pd.DataFrame(out)
    table["id"] = table["id"].astype("int32")
    table["saturated"] = table["saturated"].astype(bool)
    return table
