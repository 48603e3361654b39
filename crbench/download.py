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
:func:`safe_extract` unpacks tar/zip archives holding only plain files and folders (no links, no
devices, nothing leaving the target folder), and
:func:`load_pickle` refuses to unpickle (which can run code) unless ``trusted=True``.

Why this module is over 400 lines: fetching and unpacking are one trust boundary (everything that
comes from outside passes through here), so the mirror downloader, checksum checks and the archive
member checks stay together; each function is small.
"""
from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from .atomic import atomic_dir
from .errors import DownloadError, RegistryError
from .hashing import file_sha256

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
            got = file_sha256(raw)
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
        raise DownloadError(f"{fname}: could not fetch from {where}: {_short(exc)}") from exc
    except Exception as exc:  # network errors of requests, OSError
        raise DownloadError(
            f"{fname}: source unreachable (host {_host(where)}: {type(exc).__name__}); check the network or set "
            f"{MIRROR_ENV} to a local folder or URL holding a copy") from exc
    finally:
        logger.setLevel(level)
    return Path(path)


def _host(where: str) -> str:
    """The host of a URL (``where`` itself for a mirror folder)."""
    from urllib.parse import urlsplit

    return urlsplit(where).hostname or where


def _short(exc: BaseException, limit: int = 160) -> str:
    """An exception's text on one line, cut to ``limit`` characters (network libraries are verbose)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _zip_kind(info: zipfile.ZipInfo) -> str:
    """``'file'``, ``'dir'``, ``'link'`` or ``'special'`` from a zip member's Unix mode bits."""
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # no type bits at all (zips made off Unix): a file
        return "special"
    return "file"


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "link"
    if member.isdir():
        return "dir"
    if member.isfile():
        return "file"
    return "special"


_REFUSED = {"link": "links (symbolic or hard) are not allowed in an archive",
            "special": "device, fifo and other special members are not allowed in an archive"}


def _check_members(archive: Path, members: list[tuple[str, str, str]]) -> None:
    """Refuse the first member that escapes, is a link, is special or repeats a file (name, kind, target)."""
    seen: set[tuple[str, ...]] = set()
    for name, kind, target in members:
        if _member_escapes(name):
            raise DownloadError(f"{archive}: refusing member {name!r}: its path leaves the target folder; "
                                "nothing was extracted")
        key = tuple(part for part in PurePosixPath(name.replace("\\", "/")).parts if part != ".")
        if kind == "file" and key in seen:
            raise DownloadError(f"{archive}: refusing member {name!r}: it appears twice; nothing was extracted")
        seen.add(key)
        if kind in _REFUSED:
            shown = f"{name!r} -> {target!r}" if target else repr(name)
            raise DownloadError(f"{archive}: refusing member {shown}: {_REFUSED[kind]}; nothing was extracted")


def _write_member(root: Path, name: str, kind: str, read: Any) -> Path | None:
    """Create one checked member under ``root`` (a fresh folder holding only what we made)."""
    target = root.joinpath(*[part for part in PurePosixPath(name.replace("\\", "/")).parts if part != "."])
    if kind == "dir":
        target.mkdir(parents=True, exist_ok=True)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with read() as fin, open(target, "xb") as fout:
        shutil.copyfileobj(fin, fout)
    return target


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a tar or zip archive into ``dest``, refusing anything but plain files and folders.

    Refused (the published sets hold none): absolute paths, ``..`` components, symbolic and hard
    links, and device, fifo or other special members. Members are written by crbench itself (not
    by ``tarfile``'s extraction, whose safety filter older Pythons lack) into a temporary folder
    beside ``dest`` that replaces ``dest`` whole on success, so a refused or unreadable archive
    leaves no partial folder.

    Parameters
    ----------
    archive : path-like
        A tar (optionally compressed) or zip file.
    dest : path-like
        Folder to create (replaced if it exists).

    Returns
    -------
    list of Path
        The extracted regular files, under ``dest``, in archive order.

    Raises
    ------
    DownloadError
        Naming the archive and the offending member, or saying the archive is unreadable.
    """
    from .atomic import atomic_dir

    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / EXTRACTED_MARKER).exists():
        raise DownloadError(f"{dest}: folder is not empty and was not made by crbench's extraction; refusing "
                            f"to replace it with the contents of {archive.name} - remove it or choose another folder")
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_members(archive, [(m.name, _tar_kind(m), m.linkname) for m in members])
                with atomic_dir(dest) as tmp:
                    written = [_write_member(tmp, m.name, _tar_kind(m), lambda m=m: tf.extractfile(m))
                               for m in members]
                    (tmp / EXTRACTED_MARKER).write_text(f"{archive.name}\n", encoding="utf-8")
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_members(archive, [(i.filename, _zip_kind(i), "") for i in infos])
                with atomic_dir(dest) as tmp:
                    written = [_write_member(tmp, i.filename, _zip_kind(i), lambda i=i: zf.open(i))
                               for i in infos]
                    (tmp / EXTRACTED_MARKER).write_text(f"{archive.name}\n", encoding="utf-8")
        else:
            raise DownloadError(f"{archive}: not a tar or zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise DownloadError(f"{archive}: cannot extract into {dest} ({type(exc).__name__}: {exc}); if the "
                            "archive is truncated or corrupt, fetch it again; nothing was extracted") from exc
    return [dest / p.relative_to(tmp) for p in written if p is not None]


def load_pickle(path: str | os.PathLike, *, trusted: bool = False) -> Any:
    """Unpickle ``path`` only when ``trusted=True`` (unpickling can run arbitrary code).

    Raises
    ------
    DownloadError
        When ``trusted`` is False, naming the file and the CLI flag (``--trust-pickle``) to pass.
    """
    if not trusted:
        raise DownloadError(
            f"{path}: refusing to load a pickle (unpickling can execute code); if you trust where this file "
            "came from, pass --trust-pickle to 'crbench datasets build' (Python: trusted=True)")
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 (explicitly trusted by the caller)
