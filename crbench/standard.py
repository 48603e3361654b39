"""Standard datasets: pinned content hashes, verification, export as an archive, verified download.

A *standard* build is a simulated recipe built at its standard size (``size='standard'``, the
default; card fields ``size`` and ``standard``). Its content hash is pinned in
``crbench/registry/standard.json`` together with the library versions of the machine that pinned
it, so any machine can check that its own build is the standard one (simulated builds are
bit-identical across CPUs: :mod:`crbench.portable`).

``crbench datasets export NAME --out DIR`` writes one reproducible archive of a dataset folder
(sorted members, zero mtimes and owners, gzip without a timestamp), its ``.sha256`` file and the
registry line to paste under ``sets``. ``crbench datasets download NAME`` fetches a published
archive through pooch from ``$CRBENCH_MIRROR`` (a folder or base URL) or the registry's
``url``, checks its sha256, extracts it safely and checks the content hash; when no archive is
published it builds the set locally and checks the build against the pinned hash.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import DatasetError, DownloadError, RegistryError

#: Environment variable naming another standard registry file (tests, private mirrors).
REGISTRY_ENV = "CRBENCH_STANDARD_REGISTRY"
#: Card fields left out of an exported archive: they describe one machine's build (file times, wall
#: time), not the content, and would make archives of identical content differ.
MACHINE_FIELDS = ("files", "build_seconds")
#: Libraries whose versions are pinned with a standard hash.
PINNED_LIBRARIES = ("crbench", "numpy", "scipy", "astropy", "pandas")


@dataclass(frozen=True)
class StandardCheck:
    """Outcome of comparing a dataset with its pinned standard hash.

    Attributes
    ----------
    status : str
        ``'match'``, ``'mismatch'``, ``'unpinned'`` (a standard build with no pin yet),
        ``'not-standard'`` (a small or custom build, or a recipe without standard sizes) or
        ``'previous'`` (the build of a superseded standard version).
    message : str
        One line for the user.
    """

    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("match", "unpinned", "not-standard")


def library_versions() -> dict[str, str]:
    """Versions of :data:`PINNED_LIBRARIES` installed here."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib in PINNED_LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[lib] = "absent"
    return out


def _registry_text(path: str | os.PathLike | None) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    env = os.environ.get(REGISTRY_ENV)
    if env:
        return Path(env).read_text(encoding="utf-8")
    return resources.files("crbench").joinpath("registry", "standard.json").read_text(encoding="utf-8")


@lru_cache(maxsize=8)
def _parse(text: str) -> dict[str, Any]:
    obj = json.loads(text)
    if not isinstance(obj, dict) or not isinstance(obj.get("sets"), dict):
        raise DatasetError("standard registry: expected a JSON object with a 'sets' object")
    return obj


def load_standard_registry(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The standard registry (``crbench/registry/standard.json``, or ``$CRBENCH_STANDARD_REGISTRY``)."""
    return _parse(_registry_text(path))


def pinned(name: str, registry: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The registry entry of standard set ``name``, or None when it has none."""
    return load_standard_registry(registry)["sets"].get(name)


def previous_pins(name: str, registry: str | os.PathLike | None = None) -> dict[str, str]:
    """``{standard version: content hash}`` of the superseded standard builds of ``name`` (empty if none).

    When a set moves to a new standard version, ``leaderboard/pin_standard.py`` keeps the old pin under
    ``previous``: the leaderboard accepts only the current build, but what was trained on an older one
    (weight sidecars record their training builds) still names a pinned, rebuildable build.
    """
    return _previous(name, pinned(name, registry) or {})


def pinned_version_of(name: str, content_hash: str,
                      registry: str | os.PathLike | None = None) -> tuple[str, str] | None:
    """Which pin of ``name`` a build's ``content_hash`` is, reading the registry once:
    ``('current', version)``, ``('previous', version)`` for a superseded standard, or None (no pin names it)."""
    return _pin_naming(name, pinned(name, registry) or {}, content_hash)


def _pin_naming(name: str, entry: dict[str, Any], content_hash: str) -> tuple[str, str] | None:
    """:func:`pinned_version_of` on a registry ``entry`` already read."""
    if entry.get("content_hash") == content_hash:
        return "current", str(entry.get("standard", "?"))
    for version, old_hash in _previous(name, entry).items():
        if old_hash == content_hash:
            return "previous", version
    return None


def _previous(name: str, entry: dict[str, Any]) -> dict[str, str]:
    prev = entry.get("previous") or {}
    if not isinstance(prev, dict):
        raise DatasetError(f"standard registry: 'previous' of {name!r} must be an object of version -> pin")
    return {str(v): str(p.get("content_hash")) for v, p in prev.items() if isinstance(p, dict)}


def check_standard(dataset: Any, registry: str | os.PathLike | None = None) -> StandardCheck:
    """Compare ``dataset`` (a :class:`~crbench.dataset.Dataset`) with its pinned standard hash.

    The message of a mismatch names both hashes and every pinned library whose version differs here.
    A build of a superseded standard version (:func:`previous_pins`) is ``'previous'``: named, and not
    accepted where the current standard is required.
    """
    card = dataset.card
    pin = pinned(dataset.name, registry)       # the registry is read once per check
    which = _pin_naming(dataset.name, pin or {}, dataset.content_hash)
    if which is not None and which[0] == "previous":
        return StandardCheck("previous", f"{dataset.name}: matches the superseded standard {which[1]} "
                                         f"({dataset.content_hash[:12]}); the current standard is "
                                         f"{(pin or {}).get('standard')}, which the leaderboard requires")
    if card.get("size") != "standard":
        return StandardCheck("not-standard", f"{dataset.name}: a {card.get('size', 'non-standard')} build, not "
                                             "the standard size; it never enters the leaderboard")
    if pin is None:
        return StandardCheck("unpinned", f"{dataset.name}: standard {card.get('standard')} build "
                                         f"{dataset.content_hash[:12]} has no pinned hash yet")
    if pin.get("content_hash") == dataset.content_hash:
        return StandardCheck("match", f"{dataset.name}: matches standard {pin.get('standard', 'v1')} "
                                      f"({dataset.content_hash[:12]})")
    here = library_versions()
    differ = [f"{k} {v} (pinned {pin.get('versions', {}).get(k)})" for k, v in here.items()
              if pin.get("versions", {}).get(k) not in (None, v)]
    why = ("library versions that differ: " + ", ".join(differ)) if differ else \
        "the pinned library versions are the same here, so the recipe code or its inputs differ"
    return StandardCheck("mismatch", f"{dataset.name}: build {dataset.content_hash[:12]} does not match the "
                                     f"standard hash {str(pin.get('content_hash'))[:12]}; {why}")


# -------------------------------------------------------------------------------------- export
def _tar_info(name: str, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if size is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info


#: gzip level of exported archives: gzip's own default. Level 9 (Python's default) took 14.7 s for one
#: 22 MB sim-decam frame against 1.9 s at 6, for an archive 10% smaller (measured 2026-12-05).
ARCHIVE_GZIP_LEVEL = 6


def export_dataset(dataset: Any, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``dataset`` as one reproducible ``NAME.tar.gz`` in ``out_dir`` with its sha256.

    The same folder content gives the same archive bytes on every machine (sorted members, zero
    mtimes and owners, no gzip timestamp). Written to a temporary name and renamed.

    Returns
    -------
    dict
        The registry entry: ``content_hash``, ``standard``, ``n_samples``, ``versions`` and
        ``archive`` (``file``, ``sha256``, ``size``, ``url`` = None).
    """
    from .atomic import atomic_path
    from .hashing import file_sha256

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"--out {out_dir}: exists and is not a folder")
    root = Path(dataset.root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    archive = out_dir / f"{dataset.name}.tar.gz"
    with atomic_path(archive) as tmp:
        with open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=ARCHIVE_GZIP_LEVEL) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.addfile(_tar_info(dataset.name, None))
            dirs_done: set[str] = set()
            for p in files:
                rel = p.relative_to(root).as_posix()
                parts = rel.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d not in dirs_done:
                        tf.addfile(_tar_info(f"{dataset.name}/{d}", None))
                        dirs_done.add(d)
                if rel == "dataset.json":  # without what depends on the machine and the moment of the build
                    card = {k: v for k, v in dataset.card.items() if k not in MACHINE_FIELDS}
                    blob = (json.dumps(card, indent=2) + "\n").encode()
                    tf.addfile(_tar_info(f"{dataset.name}/{rel}", len(blob)), io.BytesIO(blob))
                    continue
                with open(p, "rb") as fh:
                    tf.addfile(_tar_info(f"{dataset.name}/{rel}", p.stat().st_size), fh)
    sha = file_sha256(archive)
    from .atomic import write_text

    write_text(archive.with_name(archive.name + ".sha256"), f"{sha}  {archive.name}\n")
    entry = {"standard": dataset.card.get("standard"), "content_hash": dataset.content_hash,
             "n_samples": len(dataset), "versions": library_versions(),
             "archive": {"file": archive.name, "sha256": sha, "size": archive.stat().st_size, "url": None}}
    write_text(out_dir / f"{dataset.name}.registry.json", json.dumps({dataset.name: entry}, indent=1) + "\n")
    return entry


# ------------------------------------------------------------------------------------ download
def download_standard(name: str, *, mirror: str | None = None, registry: str | os.PathLike | None = None,
                      out: str | os.PathLike | None = None, progress: bool = True,
                      overwrite: bool = False) -> Any:
    """Fetch and verify standard set ``name``; build it locally when no archive is published.

    Parameters
    ----------
    name : str
        A standard set of the registry.
    mirror : str, optional
        Local folder or base URL holding ``<archive file>``; default ``$CRBENCH_MIRROR``, else the
        registry's ``url``.
    registry : path, optional
        Another registry file (default: the packaged one or ``$CRBENCH_STANDARD_REGISTRY``).
    out : path, optional
        Destination dataset folder (default: the data dir's ``datasets/NAME``).

    Returns
    -------
    Dataset
        The verified dataset.

    Raises
    ------
    DownloadError
        On a checksum mismatch, an unreachable source or an unsafe archive.
    DatasetError
        When the downloaded or built content does not match the pinned content hash.
    """
    import shutil
    import tempfile

    from .dataset import Dataset
    from .download import MIRROR_ENV, fetch_file, safe_extract
    from .recipes import build_dataset, default_dataset_path

    pin = pinned(name, registry)
    if pin is None:
        known = ", ".join(sorted(load_standard_registry(registry)["sets"])) or "none"
        raise RegistryError(f"{name!r} is not a standard dataset with a pinned hash; standard sets: {known}")
    dest = Path(out) if out is not None else default_dataset_path(name)
    if (dest / "dataset.json").exists() and not overwrite:
        ds = Dataset.open(dest)
        if ds.content_hash == pin["content_hash"]:
            return ds
        raise DatasetError(f"{dest}: holds another build of {name} ({ds.content_hash[:12]}); pass --overwrite "
                           "to replace it with the standard one")
    arch = pin.get("archive") or {}
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if arch.get("sha256") and (mirror or arch.get("url")):
        entry = {"file": arch["file"], "sha256": arch["sha256"], "size": arch.get("size"),
                 "origin_url": arch.get("url") or f"https://unpublished.invalid/{arch['file']}",
                 "mirror_path": arch["file"], "mirror_sha256": arch["sha256"], "mirror_gzipped": False}
        from .recipes import data_dir

        folder = data_dir() / "downloads" / "standard"
        folder.mkdir(parents=True, exist_ok=True)
        path = fetch_file(entry, folder, progress=progress, mirror=mirror)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{name}.", suffix=".extract", dir=dest.parent) as tmpd:
            safe_extract(path, tmpd)
            got = Path(tmpd) / name
            if not (got / "dataset.json").exists():
                raise DownloadError(f"{path}: archive does not hold a dataset folder {name}/")
            ds = Dataset.open(got, check_files=False)  # extraction gave the files new mtimes
            from .dataset import SAMPLES_DIR, content_hash

            actual = content_hash((got / SAMPLES_DIR).glob("*.fits"))
            if actual != pin["content_hash"]:
                raise DatasetError(f"{path}: sample files hash to {actual[:12]}, not the pinned {name} hash "
                                   f"{pin['content_hash'][:12]}; the archive is not the standard build")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(got, dest)
        from .dataset import verify_dataset

        ds = Dataset.open(dest, check_files=False)
        verify_dataset(ds, refresh=True)  # records the new sizes and mtimes in the card
        return Dataset.open(dest)
    if dest.exists() and overwrite:
        shutil.rmtree(dest)
    ds = build_dataset(name, dest, progress=progress, size="standard")
    check = check_standard(ds, registry)
    if check.status != "match":
        raise DatasetError(check.message)
    return ds
