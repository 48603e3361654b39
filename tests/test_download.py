"""Verified downloads against the shared mirror, corrupted mirrors, unsafe archives and pickles."""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from crbench import download as dl
from crbench.errors import DownloadError, RegistryError

from _mirror import MIRROR, require_mirror

needs_mirror = pytest.mark.usefixtures("_mirror_or_skip")


@pytest.fixture
def _mirror_or_skip():
    """Skip locally / fail in CI when the real-data mirror is absent (see _mirror.py)."""
    require_mirror()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CRBENCH_MIRROR", raising=False)
    return tmp_path / "data"


def _sums() -> dict[str, str]:
    out = {}
    for line in (MIRROR / "SHA256SUMS").read_text().splitlines():
        h, p = line.split(None, 1)
        out[p.strip().removeprefix("./")] = h
    return out


def test_registry_lists_every_mirror_file_with_origin_and_licence():
    reg = dl.load_registry()
    entries = [f for g in reg["groups"].values() for f in g["files"]]
    assert len(entries) == 158
    for f in entries:
        assert f["origin_url"].startswith("https://raw.githubusercontent.com/")
        assert f["commit"] in f["origin_url"] and len(f["commit"]) == 40
        assert len(f["sha256"]) == 64 and f["size"] > 0 and f["licence"]
    micro = reg["groups"]["microobs-hatp32"]["files"]
    assert len(micro) == 142 and all(f["mirror_gzipped"] for f in micro)
    b27 = next(f for f in reg["groups"]["kast-blue"]["files"] if f["file"] == "b27.fits.gz")
    assert not b27["mirror_gzipped"] and b27["sha256"] == b27["mirror_sha256"]  # origin is gzipped too
    assert set(dl.available_downloads()) >= {"microobs-hatp32", "m13-negatives", "kast-blue", "deepcr-acswfc"}


@needs_mirror
def test_registry_mirror_hashes_match_sha256sums():
    sums = _sums()
    for g in dl.load_registry()["groups"].values():
        for f in g["files"]:
            assert sums[f["mirror_path"]] == f["mirror_sha256"]


@needs_mirror
def test_download_from_local_mirror_verifies_and_gunzips(cache, monkeypatch):
    monkeypatch.setenv("CRBENCH_MIRROR", str(MIRROR))
    folder = dl.download("m13-negatives", progress=False)
    assert folder == cache / "downloads" / "m13-negatives"
    files = sorted(folder.glob("*.fits"))
    assert [p.name for p in files] == [f"M13_blue_000{i}.fits" for i in range(1, 6)]
    entry = dl.group_files("m13-negatives")[0]
    raw = gzip.decompress((MIRROR / entry["mirror_path"]).read_bytes())
    assert files[0].read_bytes() == raw
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
    assert dl.is_downloaded("m13-negatives")
    # a second call fetches from the cache (the mirror is not needed any more)
    monkeypatch.setenv("CRBENCH_MIRROR", str(cache / "nowhere"))
    assert dl.download("m13-negatives", progress=False) == folder


@needs_mirror
def test_recipe_name_downloads_its_sources(cache, monkeypatch):
    monkeypatch.setenv("CRBENCH_MIRROR", str(MIRROR))
    folder = dl.download("kast-biases", progress=False)
    assert folder.name == "kast-blue" and (folder / "b21.fits.gz").exists()


@needs_mirror
def test_corrupted_mirror_file_fails_with_checksum_message(cache, tmp_path, monkeypatch):
    bad = tmp_path / "mirror"
    shutil.copytree(MIRROR / "saao_ccdproc", bad / "saao_ccdproc")
    shutil.copytree(MIRROR / "m13_negatives", bad / "m13_negatives")
    target = bad / "saao_ccdproc" / "a8280271.fits"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[5000] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setenv("CRBENCH_MIRROR", str(bad))
    with pytest.raises(DownloadError, match=r"a8280271\.fits: checksum mismatch") as exc:
        dl.download("saao-ccdproc", progress=False)
    assert "replace it from https://raw.githubusercontent.com/astropy/ccdproc/" in str(exc.value)
    assert not (cache / "downloads" / "saao-ccdproc" / "a8280271.fits").exists()
    # a gzipped mirror file whose gzip is intact but content differs: caught by the origin sha256 too
    gz = bad / "m13_negatives" / "M13_blue_0001.fits.gz"
    gz.chmod(0o644)
    gz.write_bytes(gzip.compress(b"not the original bytes"))
    entry = dl.group_files("m13-negatives")[0]
    forged = dict(entry, mirror_sha256=hashlib.sha256(gz.read_bytes()).hexdigest())
    with pytest.raises(DownloadError, match="M13_blue_0001.fits: checksum mismatch"):
        dl.fetch_file(forged, cache / "x", progress=False, mirror=str(bad))


def test_missing_mirror_file_and_unknown_names(cache, tmp_path):
    entry = dl.group_files("hsc-cutout")[0]
    with pytest.raises(DownloadError, match=r"hsc_crs\.fits: not found in mirror"):
        dl.fetch_file(entry, cache, progress=False, mirror=str(tmp_path / "empty"))
    with pytest.raises(RegistryError, match="unknown download 'nope'"):
        dl.download("nope", progress=False)
    with pytest.raises(DownloadError, match="zenodo.org/record/4295902"):
        dl.download("deepcr-acswfc", progress=False)


def test_unreachable_origin_gives_one_clear_error(cache):
    entry = dict(dl.group_files("hsc-cutout")[0], origin_url="http://127.0.0.1:9/hsc_crs.fits")
    with pytest.raises(DownloadError, match=r"hsc_crs\.fits: source unreachable.*CRBENCH_MIRROR"):
        dl.fetch_file(entry, cache, progress=False, mirror="")


def _tar_with(tmp_path: Path, name: str, *, symlink_to: str | None = None) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("npy_test/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(name)
        if symlink_to is not None:
            info.type = tarfile.SYMTYPE
            info.linkname = symlink_to
            tf.addfile(info)
        else:
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("name,link", [("../escape.txt", None), ("/tmp/abs-escape.txt", None),
                                       ("npy_test/../../escape.txt", None), ("npy_test/link", "../../etc/passwd"),
                                       ("npy_test/link2", "/etc/passwd")])
def test_safe_extract_refuses_escaping_members(tmp_path, name, link):
    arc = _tar_with(tmp_path, name, symlink_to=link)
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match="refusing"):
        dl.safe_extract(arc, dest)
    assert not (tmp_path / "escape.txt").exists()
    assert not (dest / "npy_test" / "ok.txt").exists()  # nothing extracted at all


def test_safe_extract_accepts_a_clean_archive(tmp_path):
    arc = _tar_with(tmp_path, "npy_test/inner/more.txt")
    files = dl.safe_extract(arc, tmp_path / "out")
    assert (tmp_path / "out" / "npy_test" / "ok.txt").read_bytes() == b"ok"
    assert files == [tmp_path / "out" / "npy_test" / "ok.txt", tmp_path / "out" / "npy_test" / "inner" / "more.txt"]
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../zip-escape.txt", "x")
    with pytest.raises(DownloadError, match="refusing member '../zip-escape.txt'"):
        dl.safe_extract(z, tmp_path / "zout")


def test_pickle_refused_unless_trusted(tmp_path):
    p = tmp_path / "field.pkl"
    p.write_bytes(pickle.dumps({"single": [1, 2]}))
    with pytest.raises(DownloadError, match="refusing to load a pickle.*trusted=True"):
        dl.load_pickle(p)
    assert dl.load_pickle(p, trusted=True) == {"single": [1, 2]}
