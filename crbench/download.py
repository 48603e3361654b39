"""Verified downloads of the real source files, with pooch underneath.

The registry (``crbench/registry/real.json``) lists every real source file with its public origin
(the raw GitHub URL at a fixed commit), sha256, size and licence. :func:`download` fetches a group
of files (e.g. ``'microobs-hatp32'``) into ``crbench.recipes.data_dir() / 'downloads' / NAME`` and
checks every byte against the registry.

Mirrors
-------
Set ``CRBENCH_MIRROR`` to a local folder or a base URL holding a copy of the files laid out as the
registry's ``mirror_path`` entries (the layout of the project's shared data folder). Where the
registry says ``mirror_gzipped``, the mirror stores a gzip of the origin bytes: crbench checks the
gzip's sha256, gunzips it and checks the origin sha256 again, so the cache always holds exactly
what the origin serves.

Safety helpers
--------------
:func:`safe_extract` unpacks tar/zip archives refusing members that escape the target folder, and
:func:`load_pickle` refuses to unpickle (which can run code) unless ``trusted=True``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from .atomic import atomic_dir
from .errors import DownloadError, RegistryError

MIRROR_ENV = "CRBENCH_MIRROR"
_REGISTRY_FILE = "real.json"


@lru_cache(maxsize=1)
def load_registry() -> dict[str, Any]:
    """The parsed download registry (``crbench/registry/real.json``)."""
    text = resources.files("crbench").joinpath("registry", _REGISTRY_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def available_downloads() -> dict[str, dict[str, Any]]:
    """Download groups by name: description, licence, number of files and total size (bytes).

    Published sets that cannot be fetched with pinned checksums are listed with ``verified=False``.
    """
    reg = load_registry()
    out: dict[str, dict[str, Any]] = {}
    for name, g in reg["groups"].items():
        out[name] = {"description": g["description"], "licence": g["licence"], "n_files": len(g["files"]),
                     "size": g["size"], "verified": True}
    for name, g in reg.get("published", {}).items():
        out[name] = {"description": g["description"], "licence": g["licence"], "n_files": len(g["files"]),
                     "size": None, "verified": False, "record": g.get("record")}
    return dict(sorted(out.items()))


def group_files(name: str) -> list[dict[str, Any]]:
    """Registry entries of the files of download group ``name``."""
    reg = load_registry()
    if name not in reg["groups"]:
        known = ", ".join(sorted(reg["groups"]))
        if name in reg.get("published", {}):
            rec = reg["published"][name]
            raise DownloadError(
                f"download {name!r} is a published set ({rec.get('record')}) of tens of GB without pinned "
                "checksums; fetch it yourself from that record and convert it with "
                "data_recipes.real.converters")
        raise RegistryError(f"unknown download {name!r}; known: {known}")
    return list(reg["groups"][name]["files"])


def downloads_dir(name: str) -> Path:
    """Cache folder of download group ``name``."""
    from .recipes import data_dir

    return data_dir() / "downloads" / name


def provenance(name: str) -> list[dict[str, Any]]:
    """Provenance records (origin URL, sha256, size, licence) of every file of group ``name``."""
    return [{"file": f["file"], "origin": f["origin_url"], "sha256": f["sha256"], "size": f["size"],
             "licence": f["licence"]} for f in group_files(name)]


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class MirrorDownloader:
    """A pooch downloader that takes a registry file from a mirror (local folder or base URL).

    pooch has no ``file://`` support, so a local mirror is copied here (with a tqdm progress bar).
    The mirror copy is checked against ``mirror_sha256`` and gunzipped when ``mirror_gzipped``;
    pooch then checks the result against the origin sha256.

    Parameters
    ----------
    mirror : str
        Local folder or ``http(s)://`` base URL.
    entry : dict
        The file's registry entry.
    progress : bool
        Show a progress bar.
    """

    def __init__(self, mirror: str, entry: dict[str, Any], *, progress: bool = True) -> None:
        self.mirror = mirror
        self.entry = entry
        self.progress = progress

    @property
    def is_url(self) -> bool:
        return self.mirror.startswith(("http://", "https://", "ftp://"))

    def source(self) -> str:
        rel = self.entry["mirror_path"]
        if self.is_url:
            return self.mirror.rstrip("/") + "/" + rel
        return str(Path(self.mirror) / rel)

    def __call__(self, url: str, output_file: Any, pooch_obj: Any, check_only: bool = False) -> bool | None:
        src = self.source()
        if check_only:
            return Path(src).exists() if not self.is_url else True
        with tempfile.TemporaryDirectory(prefix="crbench-dl-") as tmpd:
            raw = Path(tmpd) / Path(self.entry["mirror_path"]).name
            if self.is_url:
                import pooch

                pooch.HTTPDownloader(progressbar=self.progress)(src, str(raw), None)
            else:
                if not Path(src).is_file():
                    raise DownloadError(
                        f"{self.entry['file']}: not found in mirror {self.mirror} (expected {src}); "
                        f"point {MIRROR_ENV} at a folder holding the registry's mirror layout, or unset it to "
                        f"fetch from {self.entry['origin_url']}")
                _copy_with_progress(Path(src), raw, progress=self.progress)
            got = sha256_of(raw)
            if got != self.entry["mirror_sha256"]:
                raise DownloadError(
                    f"{self.entry['file']}: checksum mismatch for mirror copy {src} (sha256 {got}, expected "
                    f"{self.entry['mirror_sha256']}); the mirror file is corrupt or modified: replace it from "
                    f"{self.entry['origin_url']}")
            if self.entry.get("mirror_gzipped"):
                try:
                    with gzip.open(raw, "rb") as fin:
                        _write_stream(fin, output_file)
                except (OSError, EOFError) as exc:
                    raise DownloadError(f"{self.entry['file']}: mirror copy {src} is not valid gzip ({exc})") from exc
            else:
                with open(raw, "rb") as fin:
                    _write_stream(fin, output_file)
        return None


def _write_stream(fin: Any, output_file: Any) -> None:
    if isinstance(output_file, (str, os.PathLike)):
        with open(output_file, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    else:
        shutil.copyfileobj(fin, output_file)


def _copy_with_progress(src: Path, dst: Path, *, progress: bool) -> None:
    size = src.stat().st_size
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc=src.name, leave=False)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in iter(lambda: fin.read(1 << 20), b""):
            fout.write(block)
            if bar is not None:
                bar.update(len(block))
    if bar is not None:
        bar.close()


def fetch_file(entry: dict[str, Any], folder: Path, *, progress: bool = True,
               mirror: str | None = None) -> Path:
    """Fetch one registry file into ``folder`` (from the mirror if set, else its origin) and verify it.

    Raises
    ------
    DownloadError
        On a checksum mismatch or an unreachable source, naming the file and what to do.
    """
    import pooch

    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    fname = entry["file"]
    if mirror:
        downloader: Any = MirrorDownloader(mirror, entry, progress=progress)
        where = f"mirror {mirror}"
    else:
        downloader = pooch.HTTPDownloader(progressbar=progress)
        where = entry["origin_url"]
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        path = pooch.retrieve(url=entry["origin_url"], known_hash=f"sha256:{entry['sha256']}", fname=fname,
                              path=folder, downloader=downloader, progressbar=progress)
    except DownloadError:
        raise
    except ValueError as exc:
        if "hash" in str(exc).lower():
            raise DownloadError(
                f"{fname}: checksum mismatch after fetching from {where} (expected sha256 {entry['sha256']}); "
                f"the source changed or is corrupt: delete {folder / fname} and retry, or fetch it from "
                f"{entry['origin_url']}") from exc
        raise DownloadError(f"{fname}: could not fetch from {where}: {exc}") from exc
    except Exception as exc:  # network errors of requests, OSError
        raise DownloadError(
            f"{fname}: source unreachable ({where}: {type(exc).__name__}: {exc}); check the network or set "
            f"{MIRROR_ENV} to a local folder or URL holding a copy") from exc
    finally:
        logger.setLevel(level)
    return Path(path)


def download(name: str, *, progress: bool = True, mirror: str | None = None) -> Path:
    """Fetch every file of download group ``name`` and return the folder holding them.

    Parameters
    ----------
    name : str
        A group of :func:`available_downloads`, e.g. ``'microobs-hatp32'``, or a recipe name
        (its ``requires_download`` groups are fetched; the first one's folder is returned).
    progress : bool
        Show progress bars.
    mirror : str, optional
        Local folder or base URL; default ``$CRBENCH_MIRROR``, else the public origins.

    Returns
    -------
    Path
        ``data_dir()/downloads/NAME`` holding the verified files under their origin names.

    Raises
    ------
    DownloadError
        A file failed its checksum or could not be fetched.
    RegistryError
        ``name`` is not a known download.
    """
    reg = load_registry()
    if name not in reg["groups"] and name not in reg.get("published", {}):
        # a recipe name: fetch what the recipe reads
        from .recipes import available_recipes

        recipe = available_recipes().get(name)
        if recipe is not None and recipe.requires_download:
            paths = [download(d, progress=progress, mirror=mirror) for d in recipe.requires_download]
            return paths[0]
    files = group_files(name)
    folder = downloads_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    it: Any = files
    if progress and len(files) > 1:
        from tqdm.auto import tqdm

        it = tqdm(files, desc=f"download {name}", unit="file")
    for entry in it:
        fetch_file(entry, folder, progress=progress and len(files) == 1, mirror=mirror)
    return folder


def is_downloaded(name: str) -> bool:
    """Whether every file of group ``name`` is in the cache with the right size (no hashing)."""
    folder = downloads_dir(name)
    return all((folder / f["file"]).is_file() and (folder / f["file"]).stat().st_size == f["size"]
               for f in group_files(name))


# ----------------------------------------------------------------------------------------- safety


#: File :func:`safe_extract` leaves in its folder; only such a folder (or an empty one) is replaced.
EXTRACTED_MARKER = ".crbench-extracted"


def _member_escapes(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a tar or zip archive into ``dest`` (replacing it whole), refusing any member that
    would escape it.

    Refused: absolute paths, ``..`` components, links whose target leaves ``dest``, and device
    files. Nothing is extracted when any member is refused.

    Returns
    -------
    list of Path
        The extracted regular files.

    Raises
    ------
    DownloadError
        Naming the archive and the offending member.
    """
    archive = Path(archive)
    final = Path(dest)
    if final.is_dir() and any(final.iterdir()) and not (final / EXTRACTED_MARKER).exists():
        raise DownloadError(f"{final}: folder is not empty and was not made by crbench's extraction; refusing "
                            f"to replace it with the contents of {archive.name} - remove it or choose another folder")
    # Extract into a temporary sibling that replaces ``dest`` whole at the end: a killed extraction
    # leaves only a ``.NAME.<pid>.*.tmp`` folder, which the next extraction of that name removes.
    with atomic_dir(final) as tmp:
        files = _extract_into(archive, tmp, final)
        (tmp / EXTRACTED_MARKER).write_text(f"{archive.name}\n", encoding="utf-8")
    return [final / p.relative_to(tmp) for p in files]


def _extract_into(archive: Path, dest: Path, shown: Path) -> list[Path]:
    """Extract ``archive`` into the (empty) folder ``dest``; errors name ``shown``."""
    root = dest.resolve()

    def inside(target: Path) -> bool:
        try:
            target.resolve().relative_to(root)
            return True
        except ValueError:
            return False

    out: list[Path] = []
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                if _member_escapes(m.name) or not inside(dest / m.name):
                    raise DownloadError(f"{archive}: refusing member {m.name!r} that escapes {shown}")
                if m.issym() or m.islnk():
                    base = (dest / m.name).parent if m.issym() else dest
                    if PurePosixPath(m.linkname).is_absolute() or not inside(base / m.linkname):
                        raise DownloadError(
                            f"{archive}: refusing link {m.name!r} -> {m.linkname!r} that points outside {shown}")
                elif not (m.isfile() or m.isdir()):
                    raise DownloadError(f"{archive}: refusing special member {m.name!r} (device or fifo)")
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            for m in members:
                tf.extract(m, dest, set_attrs=False, **extra)
                if m.isfile():
                    out.append(dest / m.name)
        return out
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for n in zf.namelist():
                if _member_escapes(n) or not inside(dest / n):
                    raise DownloadError(f"{archive}: refusing member {n!r} that escapes {shown}")
            zf.extractall(dest)
            out = [dest / n for n in zf.namelist() if not n.endswith("/")]
        return out
    raise DownloadError(f"{archive}: not a tar or zip archive")


def load_pickle(path: str | os.PathLike, *, trusted: bool = False) -> Any:
    """Unpickle ``path`` only when ``trusted=True`` (unpickling can run arbitrary code).

    Raises
    ------
    DownloadError
        When ``trusted`` is False, naming the file and the flag to pass.
    """
    if not trusted:
        raise DownloadError(
            f"{path}: refusing to load a pickle (loading a pickle can execute code); if you trust where "
            "this file came from, pass trusted=True (CLI: --trust-pickle)")
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 (explicitly trusted by the caller)
