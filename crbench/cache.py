"""Per-sample result cache for resumable evaluations.

A record (:class:`crbench.evaluation.records.SampleRecord`) is stored under::

    ROOT/<dataset content hash[:16]>/<detector name>-<evaluation key>/<sample id>.<file fingerprint>.npz

where the evaluation key hashes the detector's class, name, version and parameters together with
everything else that changes a record (score binning, conventions, the fixed operating thresholds,
the record format version), and the file fingerprint (:func:`crbench.dataset.sample_fingerprint`:
the sample file's name, size and modification time) ties each record to the sample file it was
computed from, so an edited or rebuilt sample is never served from a stale record. Each file is
written atomically as it completes, so an interrupted run keeps every finished sample and a rerun
computes only the rest. Failed samples are not cached (a rerun retries them).

Records are plain data: a NumPy ``.npz`` archive read with ``allow_pickle=False`` whose JSON header
(stored as bytes) describes the scalars, dicts and table columns. Nothing in the cache is ever
unpickled, so whoever can write the cache folder cannot make crbench run code; a file that is not a
valid record (an old pickle, a truncated write) counts as missing and is recomputed.

``ROOT`` is ``<data dir>/cache/records`` unless given (``crbench evaluate --cache DIR``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .evaluation.records import SampleRecord

#: Bump when the record layout changes (invalidates every cached record).
RECORD_FORMAT = "3"

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAGIC = "crbench-record"


def default_cache_dir() -> Path:
    """``<crbench data dir>/cache/records``."""
    from .recipes import data_dir

    return data_dir() / "cache" / "records"


def evaluation_key(detector: Any, **settings: Any) -> str:
    """Hash of the detector identity (class, name, version, parameters) and evaluation settings."""
    ident = {
        "class": f"{type(detector).__module__}:{type(detector).__qualname__}",
        "name": detector.name,
        "version": str(detector.version),
        "params": detector.params(),
        "settings": settings,
        "format": RECORD_FORMAT,
    }
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------------ encoding
def _frame_to_arrays(df: pd.DataFrame, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    cols = []
    for i, c in enumerate(df.columns):
        s = df[c]
        name = f"{key}.{i}"
        text = s.dtype == object or pd.api.types.is_string_dtype(s.dtype)
        if text:  # object or pandas string columns: stored as a NumPy unicode array
            vals = s.tolist()
            if not all(isinstance(v, str) for v in vals):
                raise TypeError(f"column {c!r} holds values that are not strings")
            arrays[name] = np.array(vals, dtype=str) if vals else np.zeros(0, dtype="<U1")
        else:
            arrays[name] = s.to_numpy()
            if arrays[name].dtype == object:
                raise TypeError(f"column {c!r} has dtype {s.dtype}")
        cols.append({"name": str(c), "dtype": str(s.dtype), "text": bool(text)})
    meta: dict[str, Any] = {"columns": cols}
    if not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1):
        arrays[f"{key}.index"] = df.index.to_numpy()
        meta["index"] = True
    return meta


def _frame_from_arrays(meta: dict[str, Any], key: str, z: Mapping[str, np.ndarray]) -> pd.DataFrame:
    data = {}
    for i, c in enumerate(meta["columns"]):
        arr = z[f"{key}.{i}"]
        if c.get("text"):
            data[c["name"]] = pd.Series(arr.tolist(), dtype=c["dtype"])
        else:
            data[c["name"]] = pd.Series(arr, dtype=arr.dtype)
    df = pd.DataFrame(data, columns=[c["name"] for c in meta["columns"]])
    if meta.get("index"):
        df.index = z[f"{key}.index"]
    return df


def encode_record(record: SampleRecord) -> bytes:
    """A :class:`~crbench.evaluation.records.SampleRecord` as ``.npz`` bytes (no pickles).

    Raises
    ------
    TypeError
        When a field holds something that is not plain data (then the record is not cached).
    """
    arrays: dict[str, np.ndarray] = {}
    head: dict[str, Any] = {
        "magic": _MAGIC, "format": RECORD_FORMAT, "sample_id": record.sample_id,
        "seconds": float(record.seconds), "n_pixels": int(record.n_pixels), "error": None,
        "extra": record.extra, "fp_components": {str(k): int(v) for k, v in record.fp_components.items()},
        "morph_pos": list(record.morph_pos), "frames": {},
    }
    for name in ("pos", "neg", "neg_src"):
        val = getattr(record, name)
        head[name] = val is not None
        if val is not None:
            arrays[name] = np.asarray(val)
    for i, (idx, cnt) in enumerate(record.morph_pos.values()):
        arrays[f"morph.{i}.idx"], arrays[f"morph.{i}.cnt"] = np.asarray(idx), np.asarray(cnt)
    head["charge_hist"] = record.charge_hist is not None
    if record.charge_hist is not None:
        arrays["charge.0"], arrays["charge.1"] = (np.asarray(a) for a in record.charge_hist)
    for name in ("instances", "sources"):
        df = getattr(record, name)
        if df is not None:
            head["frames"][name] = _frame_to_arrays(df, name, arrays)
    for k, a in arrays.items():
        if a.dtype == object:
            raise TypeError(f"record field {k} is an object array")
    arrays["header"] = np.frombuffer(json.dumps(head, allow_nan=True).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    members: dict[str, Any] = arrays  # numpy's stubs type **kwds like its keyword allow_pickle (bool)
    np.savez_compressed(buf, **members)
    return buf.getvalue()


def decode_record(blob: bytes) -> SampleRecord:
    """Rebuild a record from :func:`encode_record` bytes (``allow_pickle=False``).

    Raises
    ------
    ValueError
        When the bytes are not a record of the current format (pickles included).
    """
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        z = {k: npz[k] for k in npz.files}
    head = json.loads(bytes(z.pop("header")).decode())
    if head.get("magic") != _MAGIC or head.get("format") != RECORD_FORMAT:
        raise ValueError("not a crbench record of the current format")
    if head.get("error") is not None or not (head["pos"] and head["neg"]):
        raise ValueError("not a successful record (failures are never cached)")
    rec = SampleRecord(head["sample_id"], z["pos"], z["neg"], seconds=head["seconds"], n_pixels=head["n_pixels"],
                       extra=head["extra"], fp_components=head["fp_components"])
    if head["neg_src"]:
        rec.neg_src = z["neg_src"]
    rec.morph_pos = {m: (z[f"morph.{i}.idx"], z[f"morph.{i}.cnt"]) for i, m in enumerate(head["morph_pos"])}
    if head["charge_hist"]:
        rec.charge_hist = (z["charge.0"], z["charge.1"])
    for name, meta in head["frames"].items():
        setattr(rec, name, _frame_from_arrays(meta, name, z))
    return rec


# --------------------------------------------------------------------------------------- store
class RecordCache:
    """Atomic per-sample record store for one (dataset, detector, evaluation settings).

    Parameters
    ----------
    root : path
        Cache root folder.
    dataset_hash : str
        The dataset's content hash.
    detector_name : str
        Detector name (for a readable folder name).
    key : str
        :func:`evaluation_key` of the detector and settings.
    fingerprints : mapping, optional
        Sample id -> :func:`crbench.dataset.sample_fingerprint` of its file. A record is stored
        and found under its sample's fingerprint, so it is only served for the same file content.
    """

    def __init__(self, root: str | os.PathLike, dataset_hash: str, detector_name: str, key: str,
                 fingerprints: Mapping[str, str] | None = None) -> None:
        self.folder = Path(root) / dataset_hash[:16] / f"{_SAFE.sub('_', detector_name)}-{key}"
        self.fingerprints = dict(fingerprints or {})

    def path(self, sample_id: str) -> Path:
        fp = self.fingerprints.get(sample_id, "nofile")
        return self.folder / f"{_SAFE.sub('_', sample_id)}.{fp}.npz"

    def get(self, sample_id: str) -> SampleRecord | None:
        """The cached record of ``sample_id`` or None (a corrupt or foreign file counts as missing)."""
        p = self.path(sample_id)
        if not p.is_file():
            return None
        try:
            rec = decode_record(p.read_bytes())
        except Exception:  # truncated, another format, a pickle: recompute, never unpickle
            return None
        return rec if rec.sample_id == sample_id else None

    def put(self, record: SampleRecord) -> None:
        """Store a successful record atomically (records holding anything but plain data are not
        stored)."""
        try:
            blob = encode_record(record)
        except (TypeError, ValueError):
            return
        with atomic_path(self.path(record.sample_id)) as tmp:
            tmp.write_bytes(blob)

    def __contains__(self, sample_id: str) -> bool:
        return self.path(sample_id).exists()
