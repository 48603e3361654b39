"""Atomic file writes: write to a temporary file in the same folder, then rename.

Nothing half-written is ever left under the final name. Temporaries are named
``.<name>.<pid>.<random>.tmp`` so that the next write of the same name can remove the ones a killed
process left behind (their owning process is gone). Final files and folders get the permissions
the process umask allows (``0o666 & ~umask`` / ``0o777 & ~umask``), like a plain ``open`` or
``mkdir`` would, not the private ``0o600``/``0o700`` of :mod:`tempfile`.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible, so it is never changed, even briefly)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _tmp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def clean_stale_temporaries(parent: str | os.PathLike, name: str) -> list[Path]:
    """Remove the ``.<name>.*.tmp`` / ``.<name>.*.old`` leftovers of killed writers in ``parent``.

    A temporary is stale when the process id in its name is not running (or its name carries no
    process id: the pre-pid naming). Temporaries of live processes, this one included, are kept.

    Returns
    -------
    list of Path
        What was removed.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    # .NAME.<pid>.<8 random>.tmp, or the older .NAME.<8 random>.tmp (no pid)
    pat = re.compile(r"^\." + re.escape(name) + r"\.(?:(\d+)\.[a-z0-9_]{8}|[a-z0-9_]{8})\.(?:tmp|old)$")
    removed = []
    for p in parent.iterdir():
        m = pat.match(p.name)
        if not m:
            continue
        if m.group(1) is not None and _pid_alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On error the temporary file is removed and ``path`` is left untouched. The final file gets
    ``0o666 & ~umask`` permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


@contextlib.contextmanager
def temporary_dir(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A fresh ``.<name>.<pid>.*.tmp`` folder in ``parent`` (stale ones cleaned first), removed on
    exit unless the caller moved it away."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(parent, name)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(name), suffix=".tmp", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    Callers decide whether an existing ``path`` may be replaced (see
    :func:`crbench.dataset.write_dataset`); this function replaces it. The temporary folders of
    killed earlier runs for the same name are removed first. The new folder gets
    ``0o777 & ~umask`` permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
