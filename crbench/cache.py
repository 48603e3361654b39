"""Per-sample result cache for resumable evaluations.

A record (:class:`crbench.harness.SampleRecord`) is stored under::

    ROOT/<dataset content hash[:16]>/<detector name>-<evaluation key>/<sample id>.rec

where the evaluation key hashes the detector's class, name, version and parameters together with
everything else that changes a record (score binning, conventions, the fixed operating thresholds,
the record format version). Each file is written atomically as it completes, so an interrupted run
keeps every finished sample and a rerun computes only the rest; any change of a detector parameter
or version changes the key, so stale records are never read. Failed samples are not cached (a rerun
retries them).

``ROOT`` is ``<data dir>/cache/records`` unless given (``crbench evaluate --cache DIR``).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import zlib
from pathlib import Path
from typing import Any

from .atomic import atomic_path

#: Bump when the record layout changes (invalidates every cached record).
RECORD_FORMAT = "2"

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


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
    """

    def __init__(self, root: str | os.PathLike, dataset_hash: str, detector_name: str, key: str) -> None:
        self.folder = Path(root) / dataset_hash[:16] / f"{_SAFE.sub('_', detector_name)}-{key}"

    def path(self, sample_id: str) -> Path:
        return self.folder / f"{_SAFE.sub('_', sample_id)}.rec"

    def get(self, sample_id: str):
        """The cached record of ``sample_id`` or None (a corrupt file counts as missing)."""
        p = self.path(sample_id)
        if not p.exists():
            return None
        try:
            rec = pickle.loads(zlib.decompress(p.read_bytes()))
        except Exception:  # truncated or from another format: recompute
            return None
        return rec if getattr(rec, "sample_id", None) == sample_id else None

    def put(self, record) -> None:
        """Store a successful record atomically (failed records are not stored)."""
        if record.error is not None:
            return
        blob = zlib.compress(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), 1)
        with atomic_path(self.path(record.sample_id)) as tmp:
            tmp.write_bytes(blob)

    def __contains__(self, sample_id: str) -> bool:
        return self.path(sample_id).exists()
