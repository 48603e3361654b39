"""Converters for the published CR datasets (layouts in docs/formats.md#deepcr-acs-wfc-dataset,
docs/formats.md#deepcr-2020-pickles and docs/formats.md#cosmic-conn-lco-dataset).

- **deepCR ACS/WFC** (Kwon 2021; Zenodo 4295902, ``deepCR.ACS-WFC.{train,test}.tar``): after
  extraction ``npy_train/`` and ``npy_test/``, then ``<filter>/<proposal>/<visit>/`` holding stamps
  ``<k>_<j>.npy`` of shape (3, 256, 256) = [image (e-), CR mask, ignore mask] (or (2, ...) without
  ignore) and one ``sky.npy`` per visit indexed by the exposure number ``k`` (1-based). The field
  type (EX/GC/GAL) of each ``<proposal>_<visit>`` is kept in ``meta['field_type']``.
  The 2020 pickled format is refused unless ``trusted=True`` (unpickling can run code).
- **Cosmic-CoNN LCO** (Xu 2023; Zenodo 5034763): one FITS per sequence of N aligned frames:
  PRIMARY (``FRMTOTAL``), N x SCI, VALID_MASK, CAT, N x CR, N x IGNORE. The IGNORE bit codes
  (1 boundary, 2 no data, 4 sources, 8 hot/single pixels) are kept: bit 4 becomes ``sources``,
  the bits in ``ignore_bits`` (default all) become ``ignore``, and per-bit pixel counts go to meta.

Archives are unpacked with :func:`crbench.download.safe_extract`. Both converters are registered as
recipes (``deepcr-acswfc``, ``cosmic-conn-lco``) that take the folder or archive the user fetched
from the record as ``crbench datasets build NAME --source PATH`` (Python: ``source=PATH``; or the
``CRBENCH_DEEPCR_SOURCE`` / ``CRBENCH_COSMIC_CONN_SOURCE`` environment variable). A 2020 deepCR
pickle also needs ``--trust-pickle`` (Python: ``trusted=True``).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from crbench.dataset import Dataset, write_dataset
from crbench.errors import DatasetError, FormatError
from crbench.observation import DQ_OTHER, saturation_dqmask
from crbench.recipes import Recipe
from crbench.sample import Sample

from .labelling import instance_table

DEEPCR = "deepcr-acswfc"
COSMIC = "cosmic-conn-lco"
DEEPCR_URLS = [f"https://zenodo.org/record/4295902/files/deepCR.ACS-WFC.{s}.tar?download=1" for s in ("train", "test")]
COSMIC_URL = "https://zenodo.org/record/5034763"

FIELD_TYPES: dict[str, str] = {}
for _t, _keys in {
    "GC": "10595_2 10595_7 9442_1 9442_3 9442_5 10349_30 10005_10 10120_3 10524_7 11340_11",
    "GAL": "10760_2 10760_4 13737_2 13737_3 9490_a3 12513_2 12513_3 10182_pb 10182_pd 10584_13 10342_3 14343_1 "
           "13057_1 10260_7 10260_5",
    "EX": "10631_3 10631_1 10631_4 12103_a3 13498_b1 14164_9 13718_6 9425_2 9425_4 9583_99 9978_5e 15100_2 "
          "15647_13 13389_10 9694_6 10536_13",
}.items():
    for _k in _keys.split():
        FIELD_TYPES[_k] = _t

_STAMP = re.compile(r"^(\d+)_(\d+)\.npy$")
IGNORE_BITS = {1: "boundary", 2: "no_data", 4: "sources", 8: "hot_or_single"}


@contextmanager
def _resolve_source(source: str | os.PathLike, work: Path) -> Iterator[Path]:
    """A folder (or pickle) as is; a tar/zip archive extracted safely into a temporary folder in ``work``.

    The temporary folder is removed when the block ends, whether the conversion succeeded or not:
    the converted dataset holds everything, and nothing half-written is left beside it.
    """
    from crbench.download import safe_extract

    src = Path(source)
    if src.is_dir() or src.suffix in (".pkl", ".pickle") and src.exists():
        yield src
        return
    if not src.exists():
        raise DatasetError(f"{src}: no such file or folder")
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.name.split('.')[0]}-extracted-", dir=work))
    try:
        dest = tmp / "source"
        safe_extract(src, dest)
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ deepCR


def iter_deepcr_stamps(root: Path) -> Iterator[tuple[str, str, str, str, Path]]:
    """(split, filter, proposal, visit, stamp path) for every stamp under ``root`` (sorted)."""
    found = False
    for split_dir, split in (("npy_train", "train"), ("npy_test", "test")):
        base = root / split_dir
        if not base.is_dir():
            continue
        for p in sorted(base.glob("*/*/*/*.npy")):
            if _STAMP.match(p.name):
                found = True
                filt, prop, visit = p.parts[-4], p.parts[-3], p.parts[-2]
                yield split, filt, prop, visit, p
    if not found:
        raise FormatError(f"{root}: no deepCR stamps (expected npy_train/ or npy_test/<filter>/<proposal>/<visit>/<k>_<j>.npy)")


def deepcr_sample(path: Path, filt: str, prop: str, visit: str) -> Sample:
    """One deepCR stamp as a :class:`Sample` (image in e-, truth, ignore, sky from the visit's sky.npy)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise FormatError(f"{path}: not a plain .npy array ({exc}); pickled arrays are refused") from exc
    if arr.ndim != 3 or arr.shape[0] not in (2, 3):
        raise FormatError(f"{path}: expected shape (3, H, W) or (2, H, W), got {arr.shape}")
    stamp = _STAMP.match(path.name)
    if stamp is None:
        raise FormatError(f"{path}: expected a stamp file named K_J.npy")
    k, j = (int(x) for x in stamp.groups())
    sky = None
    sky_path = path.parent / "sky.npy"
    if sky_path.exists():
        s = np.load(sky_path, allow_pickle=False)
        if 1 <= k <= s.size:
            sky = float(np.ravel(s)[k - 1])
    image = np.nan_to_num(arr[0].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    truth = arr[1] > 0.5
    ignore = arr[2] > 0.5 if arr.shape[0] == 3 else np.zeros(truth.shape, bool)
    ignore |= ~np.isfinite(arr[0])
    truth &= ~ignore
    labels, table = instance_table(truth, image - (sky or 0.0))
    key = f"{prop}_{visit}"
    meta = {"gain": 1.0, "read_noise": 5.0, "sky": sky if sky is not None else float(np.median(image)),
            "instrument": "HST ACS/WFC", "pixel_scale": 0.05, "psf_fwhm": 2.0, "filter": filt,
            "proposal": prop, "visit": visit, "exposure": k, "stamp": j,
            "field_type": FIELD_TYPES.get(key, "unknown"), "source_file": str(path.name)}
    return Sample(id=f"{filt}-{prop}-{visit}-{k}_{j}", image=image, truth=truth, ignore=ignore, labels=labels,
                  instances=table, meta=meta)


def convert_deepcr(source: str | os.PathLike, out: str | os.PathLike, *, trusted: bool = False,
                   max_samples: int | None = None, val_fraction: float = 0.1, progress: bool = False) -> Dataset:
    """Convert the deepCR ACS/WFC set (folder or archive) into a crbench dataset.

    Parameters
    ----------
    source : path
        Extracted folder holding ``npy_train/``/``npy_test/``, a ``.tar`` of it, or a 2020 pickle.
    out : path
        Dataset folder to write.
    trusted : bool
        Allow loading a pickle (the 2020 format); refused otherwise.
    max_samples : int, optional
        Stop after this many stamps (a quick look).
    val_fraction : float
        Share of training *visits* moved to ``val`` (whole visits, deterministic by name).
    """
    out = Path(out)
    with _resolve_source(source, out.parent) as src:
        return _convert_deepcr_folder(src, out, max_samples=max_samples, val_fraction=val_fraction,
                                      trusted=trusted, progress=progress)


def _convert_deepcr_folder(src: Path, out: Path, *, max_samples: int | None, val_fraction: float,
                           trusted: bool, progress: bool) -> Dataset:
    if src.suffix in (".pkl", ".pickle"):
        return _convert_deepcr_pickle(src, out, trusted=trusted, progress=progress)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    groups: dict[str, str] = {}
    field_counts: dict[str, int] = {}

    def gen() -> Iterator[Sample]:
        n = 0
        for split, filt, prop, visit, path in iter_deepcr_stamps(src):
            if max_samples is not None and n >= max_samples:
                return
            s = deepcr_sample(path, filt, prop, visit)
            group = f"{filt}/{prop}/{visit}"
            if split == "train" and _hash_fraction(group) < val_fraction:
                split = "val"
            splits[split].append(s.id)
            groups[s.id] = group
            ft = s.meta["field_type"]
            field_counts[ft] = field_counts.get(ft, 0) + 1
            n += 1
            yield s

    samples = list(gen())
    extra = {"kind": "converted", "groups": groups, "field_types": field_counts,
             "source_layout": "deepCR ACS/WFC npy (Zenodo 4295902)"}
    return write_dataset(out, iter(samples), name=DEEPCR, splits=splits, recipe=DEEPCR,
                         parameters={"max_samples": max_samples, "val_fraction": val_fraction}, seed=None,
                         provenance=[{"origin": u, "sha256": None} for u in DEEPCR_URLS], extra=extra,
                         progress=progress)


def _convert_deepcr_pickle(path: Path, out: Path, *, trusted: bool, progress: bool) -> Dataset:
    from crbench.download import load_pickle

    data = load_pickle(path, trusted=trusted)  # raises unless trusted
    if not isinstance(data, dict) or "single" not in data or "crmask" not in data:
        raise FormatError(f"{path}: expected a dict with 'single' and 'crmask' (deepCR 2020 format)")
    imgs = np.asarray(data["single"], np.float32)
    crs = np.asarray(data["crmask"]) > 0.5
    bad = np.asarray(data.get("badmask", np.zeros_like(crs))) > 0.5
    if imgs.ndim == 2:
        imgs, crs, bad = imgs[None], crs[None], bad[None]
    samples, ids = [], []
    for i, (im, cr, bm) in enumerate(zip(imgs, crs, bad)):
        labels, table = instance_table(cr & ~bm, im)
        sid = f"{path.stem}-{i:04d}"
        ids.append(sid)
        samples.append(Sample(id=sid, image=np.nan_to_num(im), truth=cr & ~bm, ignore=bm, labels=labels,
                              instances=table, meta={"gain": float(np.ravel(data.get("gain", [1.0]))[0]),
                                                     "field_type": str(data.get("type", "unknown")),
                                                     "instrument": "HST ACS/WFC"}))
    return write_dataset(out, iter(samples), name=DEEPCR, splits={"train": [], "val": [], "test": ids},
                         recipe=DEEPCR, provenance=[{"origin": str(path), "sha256": None, "trusted_pickle": True}],
                         extra={"kind": "converted", "source_layout": "deepCR 2020 pickle"}, progress=progress)


def _hash_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


# ------------------------------------------------------------------------------------------- Cosmic-CoNN


def cosmic_conn_samples(path: Path, *, ignore_bits: Sequence[int] = (1, 2, 4, 8)) -> list[Sample]:
    """The N frames of one Cosmic-CoNN LCO sequence file as samples (each with the others as exposures)."""
    from astropy.io import fits

    try:
        hdul = fits.open(path)
    except OSError as exc:
        raise FormatError(f"{path}: not a FITS file ({exc})") from exc
    with hdul:
        n = int(hdul[0].header.get("FRMTOTAL", 0))
        if n < 1 or len(hdul) < 1 + 3 * n + 2:
            raise FormatError(f"{path}: expected PRIMARY (FRMTOTAL=N), N SCI, VALID_MASK, CAT, N CR, N IGNORE; "
                              f"got FRMTOTAL={n} and {len(hdul)} HDUs")
        sci = [hdul[1 + j] for j in range(n)]
        cr = [np.asarray(hdul[1 + n + 2 + j].data) for j in range(n)]
        ign = [np.asarray(hdul[1 + 2 * n + 2 + j].data).astype(np.int64) for j in range(n)]
        gains = [float(h.header.get("GAIN", 1.0)) for h in sci]
        images = [np.nan_to_num(np.asarray(h.data, np.float32)) * g for h, g in zip(sci, gains)]
    mask_bits = 0
    for b in ignore_bits:
        if b not in IGNORE_BITS:
            raise DatasetError(f"ignore_bits: {b} is not an IGNORE bit code ({sorted(IGNORE_BITS)})")
        mask_bits |= b
    out = []
    for j in range(n):
        hdr = sci[j].header
        ignore = (ign[j] & mask_bits) != 0
        truth = (cr[j] > 0) & ~ignore
        sources = (ign[j] & 4) != 0
        sky = float(np.median(images[j]))
        labels, table = instance_table(truth, images[j] - sky)
        bits = {name: int(((ign[j] & b) != 0).sum()) for b, name in IGNORE_BITS.items()}
        fname = str(hdr.get("FILENAME", f"{path.stem}-{j}"))
        meta: dict[str, Any] = {
            "gain": gains[j], "read_noise": float(hdr.get("RDNOISE", 0.0)), "sky": sky,
            "exptime": float(hdr.get("EXPTIME", 0.0)),
            "saturation": float(hdr.get("SATURATE", np.inf)) * gains[j],
            "maxlin": float(hdr.get("MAXLIN", np.inf)) * gains[j], "instrument": fname.split("-")[0],
            "source_file": path.name, "frame": j, "ignore_bit_counts": bits, "ignore_bits": list(ignore_bits)}
        others = [images[i] for i in range(n) if i != j]
        # instrument mask: saturated pixels (SATURATE header) and the no-data bit; the other IGNORE
        # bits (alignment boundary, sources, hot-or-single) come from the labelling, not the instrument
        dq = saturation_dqmask(images[j], meta["saturation"])
        dq[(ign[j] & 2) != 0] |= DQ_OTHER
        out.append(Sample(id=f"{path.stem}-{j}", image=images[j], truth=truth, ignore=ignore, labels=labels, dqmask=dq,
                          instances=table, sources=sources, exposures=np.stack(others) if others else None,
                          meta=meta))
    return out


def convert_cosmic_conn(source: str | os.PathLike, out: str | os.PathLike, *,
                        ignore_bits: Sequence[int] = (1, 2, 4, 8), fractions: Sequence[float] = (0.8, 0.1, 0.1),
                        max_files: int | None = None, progress: bool = False) -> Dataset:
    """Convert Cosmic-CoNN LCO sequence files (folder or archive) into a crbench dataset.

    Sequences are split whole (by a hash of the file name) into train/val/test.
    """
    out = Path(out)
    with _resolve_source(source, out.parent) as src:
        return _convert_cosmic_folder(src, out, ignore_bits=ignore_bits, fractions=fractions,
                                      max_files=max_files, progress=progress, source=Path(source))


def _convert_cosmic_folder(src: Path, out: Path, *, ignore_bits: Sequence[int], fractions: Sequence[float],
                           max_files: int | None, progress: bool, source: Path) -> Dataset:
    files = sorted(p for p in src.rglob("*") if p.suffix in (".fits", ".fz") or p.name.endswith(".fits.gz"))
    if not files:
        raise FormatError(f"{source}: no FITS sequence files; expected the Cosmic-CoNN LCO sequence FITS files")
    if max_files is not None:
        files = files[:max_files]
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    groups: dict[str, str] = {}
    samples = []
    for f in files:
        u = _hash_fraction(f.name)
        split = "train" if u < fractions[0] else ("val" if u < fractions[0] + fractions[1] else "test")
        for s in cosmic_conn_samples(f, ignore_bits=ignore_bits):
            splits[split].append(s.id)
            groups[s.id] = f.stem
            samples.append(s)
    extra = {"kind": "converted", "groups": groups, "ignore_bit_codes": {str(k): v for k, v in IGNORE_BITS.items()},
             "ignore_bits_used": list(ignore_bits), "source_layout": "Cosmic-CoNN LCO FITS (Zenodo 5034763)"}
    return write_dataset(out, iter(samples), name=COSMIC, splits=splits, recipe=COSMIC,
                         parameters={"ignore_bits": list(ignore_bits), "max_files": max_files}, seed=None,
                         provenance=[{"origin": COSMIC_URL, "sha256": None}], extra=extra, progress=progress)


# ----------------------------------------------------------------------------------------------- recipes


def _source_option(name: str, options: dict[str, Any], env: str, url: str) -> str:
    source = options.pop("source", None) or os.environ.get(env)
    if not source:
        raise DatasetError(f"recipe {name!r} converts a published set that crbench cannot fetch for you: "
                           f"download it from {url}, then run 'crbench datasets build {name} --source PATH' "
                           f"(or set {env})")
    return str(source)


def _build_deepcr(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    src = _source_option(DEEPCR, options, "CRBENCH_DEEPCR_SOURCE", DEEPCR_URLS[0])
    return convert_deepcr(src, out, trusted=bool(options.get("trusted", False)),
                          max_samples=options.get("max_samples") or options.get("n_images"), progress=progress)


def _build_cosmic(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    src = _source_option(COSMIC, options, "CRBENCH_COSMIC_CONN_SOURCE", COSMIC_URL)
    return convert_cosmic_conn(src, out, ignore_bits=tuple(options.get("ignore_bits", (1, 2, 4, 8))),
                               max_files=options.get("max_files") or options.get("n_images"), progress=progress)


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


RECIPES.append(Recipe(
    name=DEEPCR, description="Converter: deepCR ACS/WFC set (Zenodo 4295902; fetch it yourself, --source PATH)",
    kind="converted", build=_build_deepcr, defaults={}, requires_download=(DEEPCR,)))
RECIPES.append(Recipe(
    name=COSMIC, description="Converter: Cosmic-CoNN LCO set (Zenodo 5034763; fetch it yourself, --source PATH)",
    kind="converted", build=_build_cosmic, defaults={}, requires_download=(COSMIC,)))
