"""Weight files: save and load (``torch.load(weights_only=True)``) with clear errors.

A weight file is a ``torch.save`` of a plain dict (tensors, strings, numbers only)::

    {"format": "crbench-unet-weights", "format_version": 1, "arch": "attention-unet",
     "config": {UNetConfig fields}, "normalization": {...}, "state_dict": {...}}

Beside it, ``NAME.json`` (the sidecar) records the command that produced it, its sha256, the
training data and the training log (:mod:`.train`).
"""
from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from crbench.atomic import atomic_path
from crbench.errors import DetectorError
from crbench.hashing import file_sha256

from .data import normalization_record
from .models import ARCHITECTURES, UNet, UNetConfig

FORMAT = "crbench-unet-weights"
FORMAT_VERSION = 1

#: Folder of the shipped weights.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def sidecar_path(weights: str | Path) -> Path:
    """The JSON sidecar beside a weight file."""
    return Path(weights).with_suffix(".json")


def save_weights(path: str | Path, model: UNet, arch: str, extra: dict[str, Any] | None = None,
                 normalization: str = "image-stats") -> str:
    """Write ``model``'s weights atomically; return the file's sha256.

    ``normalization`` (``'image-stats'`` or ``'noise-model'``) is stored as the file's
    ``normalization`` record (:func:`~baselines.unet.data.normalization_record`), which the
    detector reads to normalise inputs as in training.
    """
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "config": model.config.to_dict(),
        "normalization": normalization_record(normalization),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if extra:
        blob["extra"] = extra
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file object (not a path) keeps torch's archive folder name fixed ("archive"), so the
        # bytes do not depend on the temporary file's random name: same weights, same sha256.
        torch.save(blob, fh)
    return file_sha256(path)


def read_sidecar(weights: str | Path) -> dict[str, Any] | None:
    """The sidecar of a weight file, or None when there is none or it is unreadable."""
    p = sidecar_path(weights)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def load_weights(path: str | Path, expect_arch: str | None = None, *, check_sidecar: bool = True) -> tuple[UNet, dict]:
    """Load a weight file into a fresh :class:`UNet` in eval mode.

    Parameters
    ----------
    path : path
        The ``.pt`` file.
    expect_arch : str, optional
        Architecture the caller needs; a file holding another raises.
    check_sidecar : bool
        When a sidecar with a ``sha256`` sits beside the file, require the file to match it.

    Returns
    -------
    (model, blob) : the net and the file's dict (without ``state_dict``).

    Raises
    ------
    DetectorError
        Naming the file, if it is missing, corrupt, not a crbench weight file, holds another
        architecture, or its tensors do not fit the architecture it declares.
    """
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"weights file {path} does not exist; train it with 'crbench train' or pass weights=PATH")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError,
            AttributeError, TypeError) as exc:
        raise DetectorError(f"weights file {path} is corrupt or not a torch weight file "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DetectorError(f"weights file {path} is not a crbench U-Net weight file "
                            f"(expected a dict with format={FORMAT!r})")
    if int(blob.get("format_version", -1)) > FORMAT_VERSION:
        raise DetectorError(f"weights file {path} has format_version {blob.get('format_version')}; "
                            f"this crbench reads up to {FORMAT_VERSION}")
    arch = blob.get("arch")
    if arch not in ARCHITECTURES:
        raise DetectorError(f"weights file {path} declares unknown architecture {arch!r}; "
                            f"known: {', '.join(ARCHITECTURES)}")
    if expect_arch is not None and arch != expect_arch:
        raise DetectorError(f"weights file {path} holds a {arch!r} net but this detector needs {expect_arch!r}")
    if check_sidecar:
        side = read_sidecar(path)
        if side and side.get("sha256"):
            actual = file_sha256(path)
            if actual != side["sha256"]:
                raise DetectorError(f"weights file {path} has sha256 {actual[:16]}... but its sidecar "
                                    f"{sidecar_path(path).name} records {str(side['sha256'])[:16]}...; "
                                    "the file was modified or corrupted")
    try:
        config = UNetConfig(**blob["config"])
        model = UNet(config)
        model.load_state_dict(blob["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DetectorError(f"weights file {path} does not fit the {arch!r} architecture it declares "
                            f"({first})") from exc
    model.eval()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return model, meta
