"""Data safety: nothing crbench writes destroys, escapes, silently mislabels, goes stale, runs
pickled code, or lingers after a kill."""
from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_sample

from crbench.cache import RecordCache
from crbench.cli import main as cli_main
from crbench.dataset import (
    CARD_NAME,
    Dataset,
    content_hash,
    file_stat,
    update_card,
    verify_dataset,
    write_dataset,
)
from crbench.detectors.base import Detector
from crbench.errors import CRBenchError, DatasetError, FormatError
from crbench.fitsio import write_sample
from crbench.harness import evaluate
from crbench.recipes import build_dataset
from crbench.results import Results

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    return env


def _toy(root: Path, n: int = 4, *, name: str = "toy", labelled: bool = True) -> Dataset:
    samples = [make_sample(f"s{i}", shape=(32, 32), seed=i, n_exposures=0, n_crs=3) for i in range(n)]
    if not labelled:
        for s in samples:
            s.truth = s.labels = None
    return write_dataset(root, samples, name=name, splits={"train": [], "val": [], "test": [s.id for s in samples]},
                         statistics=False)


CALLS: list[str] = []


class Excess(Detector):
    """Image excess over the sky; logs its calls."""

    name = "excess"
    version = "1"

    def score(self, sample):
        CALLS.append(sample.id)
        return (sample.image - sample.sky).astype(np.float32)


def _eval(ds, **kw):
    kw.setdefault("split", "all")
    return evaluate(Excess(), ds, progress=False, operating_split=None, per_cr=False, sources=False, **kw)


# ------------------------------------------------------------------ build never destroys folders
def test_build_refuses_non_empty_folder_that_is_not_a_dataset(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(DatasetError, match="not a crbench dataset"):
        build_dataset("sim-basic", home, progress=False, n_images=4, shape=(48, 48))
    assert (home / "thesis.tex").read_text() == "years of work"
    # the CLI says so in one line and leaves the folder alone too
    assert cli_main(["datasets", "build", "sim-basic", "--out", str(home), "--n-images", "4", "--shape", "48x48",
                     "--no-progress", "--overwrite"]) != 0
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


def test_write_dataset_refuses_non_dataset_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a crbench dataset"):
        _toy(tmp_path)
    assert (tmp_path / "keep.txt").exists()


def test_existing_dataset_is_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "ds"
    first = build_dataset("sim-basic", out, progress=False, n_images=4, shape=(48, 48), seed=1)
    with pytest.raises(DatasetError, match="--overwrite"):
        build_dataset("sim-basic", out, progress=False, n_images=4, shape=(48, 48), seed=2)
    assert Dataset.open(out).content_hash == first.content_hash
    with pytest.raises(DatasetError, match="overwrite"):
        _toy(out)
    assert cli_main(["datasets", "build", "sim-basic", "--out", str(out), "--n-images", "4", "--shape", "48x48",
                     "--seed", "2", "--no-progress"]) != 0
    assert Dataset.open(out).content_hash == first.content_hash
    assert cli_main(["datasets", "build", "sim-basic", "--out", str(out), "--n-images", "4", "--shape", "48x48",
                     "--seed", "2", "--no-progress", "--overwrite"]) == 0
    assert Dataset.open(out).content_hash != first.content_hash
    again = write_dataset(out, [make_sample("a", shape=(32, 32), n_exposures=0)], name="t", splits={"test": ["a"]},
                          statistics=False, overwrite=True)
    assert again.ids() == ["a"]


# -------------------------------------------------------------------------- ids stay inside
@pytest.mark.parametrize("bad", ["../../escaped", "/tmp/abs", "a/b", "..", ".hidden", ""])
def test_unsafe_sample_id_is_refused_on_write(tmp_path, bad):
    s = make_sample("s0", shape=(32, 32), n_exposures=0)
    s.id = bad
    root = tmp_path / "a" / "b" / "ds"
    with pytest.raises(DatasetError, match="sample id"):
        write_dataset(root, [s], name="x", splits={"test": [bad]}, statistics=False)
    assert not (tmp_path / "a" / "escaped.fits").exists() and not (tmp_path / "escaped.fits").exists()
    assert not root.exists()


@pytest.mark.parametrize("bad", ["../outside", "/etc/passwd", "x/../../y"])
def test_card_naming_a_path_outside_is_refused_on_open(tmp_path, bad):
    ds = _toy(tmp_path / "ds", n=2)
    card = json.loads((ds.root / CARD_NAME).read_text())
    card["splits"]["test"].append(bad)
    (ds.root / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="sample id"):
        Dataset.open(ds.root)


# ---------------------------------------------------------------------- unlabelled samples
def test_unlabelled_sample_in_labelled_dataset_is_an_error_when_scoring(tmp_path):
    ds = _toy(tmp_path / "ds", n=3)
    unl = ds.load("s2")
    unl.truth = unl.labels = None
    write_sample(unl, ds.sample_path("s2"))
    # a dataset as an older crbench (or a hand edit) could leave it: card consistent with the files
    update_card(ds, files={sid: file_stat(ds.sample_path(sid)) for sid in ds.ids()},
                content_hash=content_hash(ds.sample_path(sid) for sid in ds.ids()))
    ds = Dataset.open(ds.root)
    with pytest.raises(DatasetError, match=r"s2\.fits.*CRMASK"):
        _eval(ds)
    with pytest.raises(DatasetError, match=r"s2\.fits.*CRMASK"):
        _eval(ds, workers=2)


def test_mixed_labelled_and_unlabelled_samples_are_refused_on_write(tmp_path):
    a = make_sample("a", shape=(32, 32), n_exposures=0)
    b = make_sample("b", shape=(32, 32), n_exposures=0)
    b.truth = b.labels = None
    with pytest.raises(DatasetError, match="'b' has no truth mask"):
        write_dataset(tmp_path / "ds", [a, b], name="x", splits={"test": ["a", "b"]}, statistics=False)


def test_unlabelled_and_negative_control_datasets_still_score(tmp_path):
    unl = _toy(tmp_path / "unl", labelled=False)
    assert unl.card["labelled"] is False and not unl.labelled
    res = _eval(unl)
    assert res.table.loc[0, "n_images"] == 4
    # a negative control is labelled: an all-zero CRMASK
    neg = [make_sample(f"n{i}", shape=(32, 32), seed=i, n_exposures=0, n_crs=0) for i in range(2)]
    for s in neg:
        s.truth = np.zeros(s.shape, bool)
        s.labels = np.zeros(s.shape, np.int32)
    nds = write_dataset(tmp_path / "neg", neg, name="neg", splits={"test": ["n0", "n1"]}, statistics=False)
    assert nds.labelled
    assert _eval(nds).table.loc[0, "n_images"] == 2


# ------------------------------------------------------------------------ content hash checks
def test_edited_sample_is_caught_on_open_and_verify_restores_after_copy(tmp_path, capsys):
    ds = _toy(tmp_path / "ds")
    assert verify_dataset(ds) == ds.content_hash
    p = ds.sample_path("s1")
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # e.g. copied without -p
    with pytest.raises(DatasetError, match="datasets verify"):
        Dataset.open(ds.root)
    with pytest.raises(DatasetError, match="datasets verify"):
        _eval(ds)
    assert cli_main(["datasets", "verify", str(ds.root)]) == 0  # content intact: refreshes the record
    assert "matches" in capsys.readouterr().out
    Dataset.open(ds.root)


def test_verify_catches_changed_content_with_same_size_and_time(tmp_path):
    ds = _toy(tmp_path / "ds")
    p = ds.sample_path("s2")
    st = os.stat(p)
    data = bytearray(p.read_bytes())
    data[-100] ^= 0xFF  # inside the last HDU's data or padding
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    Dataset.open(ds.root)  # the cheap check cannot see it...
    with pytest.raises(DatasetError, match="content hash"):
        verify_dataset(ds)  # ...the full one does
    assert cli_main(["datasets", "verify", str(ds.root)]) != 0


class Rebuilder(Excess):
    """Touches another sample file while scoring the first one (a rebuild during the run)."""

    name = "rebuilder"
    target: str = ""

    def score(self, sample):
        if self.target:
            p = Path(self.target)
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
            self.target = ""
        return super().score(sample)


def test_dataset_changed_during_evaluate_is_an_error(tmp_path):
    ds = _toy(tmp_path / "ds")
    det = Rebuilder()
    det.target = str(ds.sample_path("s3"))
    with pytest.raises(DatasetError, match="changed since the dataset was built"):
        evaluate(det, ds, split="all", progress=False, operating_split=None, out=tmp_path / "res")
    assert not (tmp_path / "res" / "results.json").exists()


def test_changed_sample_is_never_served_from_the_cache(tmp_path):
    ds = _toy(tmp_path / "ds")
    cache = tmp_path / "cache"
    CALLS.clear()
    _eval(ds, cache=cache)
    assert CALLS == ds.ids()
    # s1 edited in place, card's file record updated by hand (content hash left as it was)
    s1 = ds.load("s1")
    s1.image = s1.image + 50.0
    write_sample(s1, ds.sample_path("s1"))
    update_card(ds, files={sid: file_stat(ds.sample_path(sid)) for sid in ds.ids()})
    CALLS.clear()
    _eval(Dataset.open(ds.root), cache=cache)
    assert CALLS == ["s1"]


# --------------------------------------------------------------------- leftovers after a kill
def test_killed_dataset_write_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    root = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from crbench.atomic import atomic_dir
        with atomic_dir({str(root)!r}) as tmp:
            (Path(tmp) / "half").write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = list(tmp_path.glob(".ds.*.tmp"))
    assert len(left) == 1 and not root.exists()
    live = tmp_path / f".ds.{os.getpid()}.abcdefgh.tmp"  # a live writer's temporary is kept
    live.mkdir()
    _toy(root)
    assert not left[0].exists()
    assert live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ds", live.name])


def test_killed_extraction_leaves_no_half_folder(tmp_path):
    from crbench.download import safe_extract

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.txt").write_text(str(i))
    arc = tmp_path / "data.tar"
    with tarfile.open(arc, "w") as tf:
        for i in range(3):
            tf.add(src / f"f{i}.txt", arcname=f"f{i}.txt")
    dest = tmp_path / "data-extracted"
    script = textwrap.dedent(f"""
        import os, signal
        import crbench.download as d
        orig = d._write_member
        n = [0]
        def write_member(*a, **k):
            out = orig(*a, **k)
            n[0] += 1
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        d._write_member = write_member
        d.safe_extract({str(arc)!r}, {str(dest)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not dest.exists()  # nothing half-extracted under the final name
    files = safe_extract(arc, dest)
    assert sorted(p.name for p in files) == ["f0.txt", "f1.txt", "f2.txt"]
    assert not list(tmp_path.glob(".data-extracted.*"))
    # a folder crbench did not extract into is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep").write_text("x")
    with pytest.raises(CRBenchError, match="not empty"):
        safe_extract(arc, tmp_path / "mine")
    assert (tmp_path / "mine" / "keep").exists()


_REAL: list[Results] = []


def _results(tag: str) -> Results:
    """A valid Results object (one real run on a toy dataset) with the detector named ``tag``."""
    import copy
    import tempfile

    if not _REAL:
        with tempfile.TemporaryDirectory() as d:
            _REAL.append(_eval(_toy(Path(d) / "ds", n=2)))
    res = copy.deepcopy(_REAL[0])
    for r in res.runs:
        r["detector"] = r["summary"]["detector"] = tag
    return res


def test_result_pair_is_never_mismatched_after_a_failed_save(tmp_path, monkeypatch):
    out = tmp_path / "res"
    _results("old").save(out)
    real_replace = os.replace

    def failing(src, dst, *a, **k):
        if Path(dst).name == "results.json" and "old" not in Path(src).name:
            raise OSError("disk full (simulated)")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="simulated"):
        _results("new").save(out, overwrite=True)
    monkeypatch.setattr(os, "replace", real_replace)
    csv = pd.read_csv(out / "results.csv")
    try:
        loaded = Results.load(out)
    except FormatError:
        loaded = None  # an incomplete save is reported, never read as the other run's pair
    if loaded is not None:
        assert loaded.table["detector"].tolist() == csv["detector"].tolist()
    _results("new").save(out, overwrite=True)
    assert Results.load(out).table["detector"].tolist() == ["new"]
    assert not list(out.glob(".results.*"))


def test_results_json_detects_a_foreign_table(tmp_path):
    out = tmp_path / "res"
    _results("a").save(out)
    _results("b").table.to_csv(out / "results.csv", index=False)
    with pytest.raises(FormatError, match="results.csv"):
        Results.load(out)


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_their_parent(tmp_path):
    """``evaluate(workers=2)`` killed from outside: its worker processes end too."""
    ds = _toy(tmp_path / "ds", n=4)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "sleeper.py").write_text(textwrap.dedent(f"""
        import os, time
        from crbench.detectors.base import Detector

        class Sleeper(Detector):
            name = "sleeper"
            version = "1"
            def score(self, sample):
                open(os.path.join({str(pid_dir)!r}, str(os.getpid())), "w").close()
                time.sleep(600)
    """))
    script = textwrap.dedent(f"""
        import os, signal, threading, time
        from sleeper import Sleeper
        from crbench.harness import evaluate

        def killer():
            while len(os.listdir({str(pid_dir)!r})) < 2:
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGKILL)

        if __name__ == "__main__":
            threading.Thread(target=killer, daemon=True).start()
            evaluate(Sleeper(), {str(ds.root)!r}, split="all", progress=False, workers=2, cache=None,
                     operating_split=None)
    """)
    (mod / "main.py").write_text(script)
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(mod), env["PYTHONPATH"]])
    # no pipes: the workers would inherit them and keep run() waiting for their end
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.run([sys.executable, str(mod / "main.py")], env=env, stdout=subprocess.DEVNULL,
                              stderr=err, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr").read_text()
    pids = [int(p.name) for p in pid_dir.iterdir()]
    assert len(pids) == 2
    try:
        deadline = time.monotonic() + 60
        while _pids_alive(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pids_alive(pids) == []
    finally:
        for pid in _pids_alive(pids):  # the old code's orphans: end the ones this test started
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------- permissions
def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        ds = _toy(tmp_path / "ds", n=2)
        _results("a").save(tmp_path / "res")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(ds.root) == 0o755
    assert mode(ds.root / CARD_NAME) == 0o644
    assert mode(ds.sample_path("s0")) == 0o644
    assert mode(tmp_path / "res" / "results.csv") == 0o644
    assert mode(tmp_path / "res" / "results.json") == 0o644


# ----------------------------------------------------------------- evaluate keeps old results
def test_evaluate_refuses_existing_results_before_computing(tmp_path):
    ds = _toy(tmp_path / "ds", n=2)
    out = tmp_path / "results"
    _eval(ds, out=out)
    before = (out / "results.json").read_bytes()
    CALLS.clear()
    with pytest.raises(FormatError, match="--overwrite"):
        _eval(ds, out=out)
    assert CALLS == []  # refused up front, nothing computed
    assert (out / "results.json").read_bytes() == before
    args = ["evaluate", "--dataset", str(ds.root), "--detector", "test_safety:Excess", "--split", "all",
            "--out", str(out), "--no-progress", "--no-cache", "--bootstrap", "0", "--no-per-cr", "--no-sources",
            "--operating-split", "none"]
    assert cli_main(args) != 0
    assert (out / "results.json").read_bytes() == before
    assert cli_main(args + ["--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["meta"]["created"]


# ----------------------------------------------------------------------- cache without pickles
class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_pickle_in_the_cache_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    cache = RecordCache(tmp_path / "cache", "0" * 64, "det", "key")
    p = cache.path("s0")
    p.parent.mkdir(parents=True)
    for blob in (zlib.compress(pickle.dumps(_Evil(str(marker)))), pickle.dumps(_Evil(str(marker)))):
        p.write_bytes(blob)
        assert cache.get("s0") is None
        assert not marker.exists()
    # an .npz whose arrays are pickled objects is refused too
    with open(p, "wb") as fh:
        np.savez(fh, header=np.array([_Evil(str(marker))], dtype=object))
    assert cache.get("s0") is None
    assert not marker.exists()


def test_records_round_trip_exactly(tmp_path):
    from crbench.conventions import resolve_conventions
    from crbench.harness import Binning, RecordSpec, compute_record

    s = make_sample("s0", shape=(48, 48), seed=3, n_exposures=0, n_crs=5)
    s.sources = np.zeros(s.shape, bool)
    s.sources[20:26, 20:26] = True
    score = (s.image - s.sky).astype(np.float32)
    binning = Binning.for_range((float(score.min()), float(score.max())), 256)
    spec = RecordSpec(binning, resolve_conventions(None), per_cr=True, sources=True,
                      thresholds=(("dice", 100), ("fpr", 120)))
    rec = compute_record(score, s, spec, seconds=0.25)
    rec.extra = {"note": "x", "n": 3, "nested": {"a": [1.5, 2.5]}}
    assert rec.instances is not None and len(rec.instances) and rec.sources is not None
    assert rec.morph_pos and rec.charge_hist is not None and rec.neg_src is not None and rec.fp_components
    cache = RecordCache(tmp_path, "f" * 64, "det", "key", {"s0": "abc"})
    cache.put(rec)
    back = cache.get("s0")
    assert back is not None
    for name in ("sample_id", "seconds", "n_pixels", "extra", "fp_components"):
        assert getattr(back, name) == getattr(rec, name), name
    for name in ("pos", "neg", "neg_src"):
        a, b = getattr(rec, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert list(back.morph_pos) == list(rec.morph_pos)
    for m, (idx, cnt) in rec.morph_pos.items():
        assert back.morph_pos[m][0].dtype == idx.dtype and np.array_equal(back.morph_pos[m][0], idx)
        assert back.morph_pos[m][1].dtype == cnt.dtype and np.array_equal(back.morph_pos[m][1], cnt)
    for a, b in zip(rec.charge_hist, back.charge_hist):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    pd.testing.assert_frame_equal(back.instances, rec.instances, check_exact=True)
    pd.testing.assert_frame_equal(back.sources, rec.sources, check_exact=True)
    # a record from another sample file (other fingerprint) is not served
    assert RecordCache(tmp_path, "f" * 64, "det", "key", {"s0": "other"}).get("s0") is None
