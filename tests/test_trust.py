"""Nothing runs code it should not: archives hold only plain files, pickles need an explicit flag,
and deepCR's weights are never unpickled by an old torch."""
from __future__ import annotations

import io
import pickle
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from crbench import download as dl
from crbench.cli import main
from crbench.errors import DetectorError, DownloadError

from test_converters import _deepcr_tree

ROOT = Path(__file__).resolve().parents[1]


def _add(tf: tarfile.TarFile, name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "",
         data: bytes = b"ok") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


def _tar(path: Path, members: list[tuple]) -> Path:
    with tarfile.open(path, "w") as tf:
        for m in members:
            _add(tf, m[0], **m[1])
    return path


def _leftovers(folder: Path, dest: Path) -> list[str]:
    """Temporary folders a refused extraction left beside ``dest``."""
    return [p.name for p in folder.iterdir() if p.name.startswith(f".{dest.name}.")]


@pytest.mark.parametrize("data_filter", [True, False], ids=["with-data-filter", "without-data-filter"])
def test_staged_symlink_chain_is_refused_whatever_the_python(tmp_path, monkeypatch, data_filter):
    """``a -> .``, ``p -> a/../X``, then ``p/f``: each name looks inside, but the chain writes to ../X."""
    if not data_filter:  # Python 3.10.0-3.10.11 and 3.11.0-3.11.3 lack tarfile's data filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    arc = _tar(tmp_path / "chain.tar", [("a", {"kind": tarfile.SYMTYPE, "link": "."}),
                                        ("p", {"kind": tarfile.SYMTYPE, "link": "a/../X"}),
                                        ("p/f", {"data": b"pwned"})])
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "out"
    with pytest.raises(DownloadError, match=r"chain\.tar: refusing member 'a' -> '\.': links"):
        dl.safe_extract(arc, dest)
    assert not (work / "X").exists() and not (tmp_path / "X").exists()
    assert not dest.exists() and _leftovers(work, dest) == []


@pytest.mark.parametrize("name,kwargs,shown", [
    ("npy_test/inner", {"kind": tarfile.SYMTYPE, "link": "ok.txt"}, "'npy_test/inner' -> 'ok.txt'"),
    ("npy_test/hard", {"kind": tarfile.LNKTYPE, "link": "npy_test/ok.txt"}, "'npy_test/hard' -> 'npy_test/ok.txt'"),
    ("npy_test/fifo", {"kind": tarfile.FIFOTYPE}, "'npy_test/fifo'"),
    ("npy_test/dev", {"kind": tarfile.CHRTYPE}, "'npy_test/dev'"),
])
def test_tar_links_and_special_members_are_refused_leaving_nothing(tmp_path, name, kwargs, shown):
    arc = _tar(tmp_path / "set.tar", [("npy_test/ok.txt", {}), (name, kwargs)])
    dest = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        dl.safe_extract(arc, dest)
    msg = str(err.value)
    assert msg.startswith(f"{arc}: refusing member {shown}") and "\n" not in msg
    assert not dest.exists() and _leftovers(tmp_path, dest) == []


def test_zip_symlink_member_is_refused(tmp_path):
    arc = tmp_path / "set.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("npy_test/ok.txt", "ok")
        link = zipfile.ZipInfo("npy_test/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../etc/passwd")
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=r"set\.zip: refusing member 'npy_test/link': links"):
        dl.safe_extract(arc, dest)
    assert not dest.exists()


def test_truncated_archive_is_one_error_and_no_partial_folder(tmp_path):
    arc = _tar(tmp_path / "cut.tar", [("npy_test/a.txt", {"data": b"a" * 600}),
                                      ("npy_test/b.txt", {"data": b"b" * 5000})])
    arc.write_bytes(arc.read_bytes()[:512 * 4 + 100])  # ends inside b.txt's data
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=r"cut\.tar: cannot extract .*nothing was extracted"):
        dl.safe_extract(arc, dest)
    assert not dest.exists() and _leftovers(tmp_path, dest) == []


def test_clean_archives_extract_whole_and_replace_the_folder(tmp_path):
    arc = _tar(tmp_path / "ok.tar", [("npy_test/", {"kind": tarfile.DIRTYPE}), ("npy_test/x/ok.txt", {})])
    dest = tmp_path / "out"
    dl.safe_extract(arc, dest)
    (dest / "stale.txt").write_text("old")  # a folder crbench extracted earlier is replaced whole
    assert dl.safe_extract(arc, dest) == [dest / "npy_test" / "x" / "ok.txt"]
    assert (dest / "npy_test" / "x" / "ok.txt").read_bytes() == b"ok" and not (dest / "stale.txt").exists()
    mine = tmp_path / "mine"  # a user's own non-empty folder is never replaced
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(dl.DownloadError, match="not made by crbench"):
        dl.safe_extract(arc, mine)
    assert (mine / "keep.txt").read_text() == "mine"
    z = tmp_path / "ok.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("npy_test/ok.txt", "zz")
    assert dl.safe_extract(z, tmp_path / "zout") == [tmp_path / "zout" / "npy_test" / "ok.txt"]


# ------------------------------------------------------------------------------------------ torch bound


def test_deep_extra_requires_a_torch_whose_load_is_weights_only():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    from packaging.requirements import Requirement
    from packaging.version import Version

    deep = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["deep"]
    torch_req = next(Requirement(r) for r in deep if Requirement(r).name == "torch")
    assert not torch_req.specifier.contains(Version("2.5.1"))
    assert torch_req.specifier.contains(Version("2.6.0"))


def test_deepcr_refuses_torch_older_than_2_6_at_load_time(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepCR")
    from baselines.deepcr_detector import DeepCRDetector

    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(DetectorError, match=r"needs torch >= 2\.6 \(found 2\.5\.1\+cpu\).*unpickling"):
        DeepCRDetector()


# ------------------------------------------------------------------------ --source and --trust-pickle


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crbench: error: ")
    return lines[0]


def test_converter_source_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CRBENCH_DEEPCR_SOURCE", raising=False)
    _deepcr_tree(tmp_path / "src")
    out = tmp_path / "ds"
    rc = main(["datasets", "build", "deepcr-acswfc", "--source", str(tmp_path / "src"), "--out", str(out),
               "--no-progress"])
    assert rc == 0
    assert "built deepcr-acswfc (10 samples)" in capsys.readouterr().out
    from crbench.dataset import Dataset

    ds = Dataset.open(out)
    assert ds.load("F606W-10595-7-2_1").meta["field_type"] == "GC"
    # without a source, the error says how to give one on the command line
    assert main(["datasets", "build", "deepcr-acswfc", "--out", str(tmp_path / "none"), "--no-progress"]) == 1
    assert "crbench datasets build deepcr-acswfc --source PATH" in _one_error_line(capsys.readouterr().err)


def test_pickle_source_needs_trust_pickle_on_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CRBENCH_DEEPCR_SOURCE", raising=False)
    pkl = tmp_path / "field.pkl"
    img = np.zeros((2, 32, 32), np.float32)
    cr = np.zeros((2, 32, 32), bool)
    cr[1, 4, 4] = True
    pkl.write_bytes(pickle.dumps({"single": img, "crmask": cr, "badmask": np.zeros_like(cr), "gain": [1.0]}))
    args = ["datasets", "build", "deepcr-acswfc", "--source", str(pkl), "--out", str(tmp_path / "ds"), "--no-progress"]
    assert main(args) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "field.pkl: refusing to load a pickle" in line and "--trust-pickle" in line
    assert not (tmp_path / "ds").exists()
    assert main(args + ["--trust-pickle"]) == 0
    from crbench.dataset import Dataset

    ds = Dataset.open(tmp_path / "ds")
    assert len(ds) == 2 and ds.load(ds.ids()[1]).truth.sum() == 1


def test_unsafe_source_archive_is_one_line_on_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CRBENCH_DEEPCR_SOURCE", raising=False)
    arc = _tar(tmp_path / "deepCR.ACS-WFC.test.tar", [("npy_test/ok.txt", {}),
                                                      ("npy_test/l", {"kind": tarfile.SYMTYPE, "link": "/etc"})])
    rc = main(["datasets", "build", "deepcr-acswfc", "--source", str(arc), "--out", str(tmp_path / "ds"),
               "--no-progress"])
    assert rc == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "deepCR.ACS-WFC.test.tar: refusing member 'npy_test/l' -> '/etc'" in line


def test_source_flag_on_a_simulated_recipe_is_a_usage_error(tmp_path, capsys):
    rc = main(["datasets", "build", "sim-basic", "--source", str(tmp_path), "--out", str(tmp_path / "ds")])
    assert rc == 1
    assert "recipe 'sim-basic' is simulated" in _one_error_line(capsys.readouterr().err)
