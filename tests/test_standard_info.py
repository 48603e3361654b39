"""``crbench datasets info`` on standard sets (Mpix per split, standard-hash line), the build time in
the card, the README table script and LACosmic's loose-step iterations."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crbench.atomic import write_json
from crbench.cli import main
from crbench.dataset import Dataset
from crbench.errors import UsageError
from crbench.fitsio import read_sample
from crbench.recipes import build_dataset

ROOT = Path(__file__).resolve().parents[1]
MORPH = ("spot", "track", "worm", "blob")


@pytest.fixture(scope="module")
def small_hst(tmp_path_factory):
    """A 3-image 64x64 build of sim-hst-acs-ex (one image per split)."""
    return build_dataset("sim-hst-acs-ex", tmp_path_factory.mktemp("si") / "sim-hst-acs-ex", progress=False,
                         size="small", n_images=3, shape=(64, 64))


def _copy_with_card(ds: Dataset, dst: Path, **fields) -> Path:
    shutil.copytree(ds.root, dst)  # keeps modification times, so the copy opens without complaint
    card = json.loads((dst / "dataset.json").read_text())
    card.update(fields)
    for k in [k for k, v in fields.items() if v is None]:
        card.pop(k)
    write_json(dst / "dataset.json", card)
    return dst


def _expected_mpix(ds: Dataset) -> dict[str, float]:
    """Megapixels per split, from the image arrays themselves."""
    size = {sid: read_sample(ds.sample_path(sid), load_companions=False).image.size for sid in ds.ids()}
    out = {split: sum(size[i] for i in ids) / 1e6 for split, ids in ds.splits.items()}
    out["all"] = sum(size.values()) / 1e6
    return out


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------ datasets info
def test_info_shows_megapixels_per_split(basic_dataset, capsys):
    assert main(["datasets", "info", str(basic_dataset.root)]) == 0
    head = capsys.readouterr().out.split("Class imbalance")[0]
    lines = head.splitlines()
    cols = lines[1].split()
    assert cols[0] == "split" and "Mpix" in cols, lines[1]
    k = cols.index("Mpix")
    want = _expected_mpix(basic_dataset)
    for split, mpix in want.items():
        row = next(line.split() for line in lines if line.split()[:1] == [split])
        assert float(row[k]) == pytest.approx(mpix, rel=5e-3), (split, row)


def test_info_says_whether_the_copy_is_the_standard_build(small_hst, tmp_path, monkeypatch, capsys):
    def standard_line(path) -> str:
        assert main(["datasets", "info", str(path)]) == 0
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if line.strip().startswith("standard:")]
        assert len(lines) == 1, out
        return lines[0]

    # a small build is never the standard one; nor is a set without standard sizes
    assert "not-standard" in standard_line(small_hst.root) and "small" in standard_line(small_hst.root)
    assert "no standard size" in standard_line(_copy_with_card(small_hst, tmp_path / "real", size=None))
    std = _copy_with_card(small_hst, tmp_path / "std", size="standard", standard="v1")
    reg = tmp_path / "standard.json"
    monkeypatch.setenv("CRBENCH_STANDARD_REGISTRY", str(reg))
    reg.write_text(json.dumps({"schema": 1, "sets": {}}))
    assert "unpinned" in standard_line(std)
    reg.write_text(json.dumps({"schema": 1, "sets": {small_hst.name: {"content_hash": small_hst.content_hash,
                                                                       "versions": {}}}}))
    line = standard_line(std)
    assert "match" in line and "MISMATCH" not in line and "not-standard" not in line
    reg.write_text(json.dumps({"schema": 1, "sets": {small_hst.name: {"content_hash": "f" * 64,
                                                                       "versions": {"numpy": "0.0.1"}}}}))
    line = standard_line(std)
    assert "MISMATCH" in line and "ffffffffffff" in line and "numpy" in line


# ------------------------------------------------------------------------------- build time
def test_build_records_its_wall_time_in_the_card(tmp_path):
    ds = build_dataset("sim-basic", tmp_path / "b", progress=False, n_images=3, shape=(48, 48))
    on_disk = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert isinstance(on_disk.get("build_seconds"), float) and on_disk["build_seconds"] > 0
    assert ds.card["build_seconds"] == on_disk["build_seconds"]
    from crbench.dataset import verify_dataset

    assert verify_dataset(Dataset.open(tmp_path / "b")) == ds.content_hash  # the card edit keeps the hash


# ------------------------------------------------------------------------- README table script
def test_standard_sets_table_counts_a_small_build(small_hst, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    shutil.copytree(small_hst.root, data / "datasets" / "sim-hst-acs-ex")
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    mod = _load_script("standard_sets")
    out = tmp_path / "tab"
    assert mod.main(["sim-hst-acs-ex", "sim-decam", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "standard_sets.csv", keep_default_na=False)
    inst = pd.read_csv(small_hst.root / "instances.csv")
    want_mpix = _expected_mpix(small_hst)
    rows = table[table["dataset"] == "sim-hst-acs-ex"].set_index("split")
    assert list(rows.index) == list(small_hst.splits) + ["all"]
    for split in rows.index:
        ids = small_hst.ids(split)
        sel = inst[inst["sample_id"].isin(ids)]
        r = rows.loc[split]
        assert int(r["images"]) == len(ids) and int(r["crs"]) == len(sel)
        for m in MORPH:
            assert int(r[m]) == int((sel["morphology"] == m).sum()), (split, m)
        assert float(r["mpix"]) == pytest.approx(want_mpix[split], rel=1e-3)
        assert float(r["build_seconds"]) == small_hst.card["build_seconds"] and r["build_time_from"] == "card"
        files = sum(p.stat().st_size for p in (data / "datasets" / "sim-hst-acs-ex").rglob("*") if p.is_file())
        assert int(r["disk_bytes"]) >= files * 0.99
    decam = table[table["dataset"] == "sim-decam"]
    assert len(decam) == 1 and decam["status"].iloc[0] == "not built in this run"
    md = (out / "standard_sets.md").read_text()
    assert md == printed.split("wrote ")[0]
    assert re.search(r"^\| `sim-decam` \| not built in this run \|", md, re.M)
    assert re.search(r"^\|\s*\| all \| 3 \|", md, re.M)


def test_standard_sets_takes_the_build_time_from_a_log_when_the_card_has_none(small_hst, tmp_path, monkeypatch):
    data = tmp_path / "data"
    _copy_with_card(small_hst, data / "datasets" / "sim-hst-acs-ex", build_seconds=None)
    log = tmp_path / "build.log"
    log.write_text("CR pixel fraction (mean over images): 1.3%\nsim-hst-acs-ex 86.96 s 486736 KB\n"
                   "778\t/work/data/datasets/sim-hst-acs-ex\n")
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    mod = _load_script("standard_sets")
    out = tmp_path / "tab"
    assert mod.main(["sim-hst-acs-ex", "--out", str(out), "--build-log", str(log)]) == 0
    table = pd.read_csv(out / "standard_sets.csv")
    assert set(table["build_seconds"]) == {86.96} and set(table["build_time_from"]) == {"build log"}
    assert mod.main(["sim-hst-acs-ex", "--out", str(out)]) == 0
    table = pd.read_csv(out / "standard_sets.csv", keep_default_na=False)
    assert set(table["build_time_from"]) == {"not recorded"}
    assert mod.main(["sim-basic", "--out", str(out)]) == 2  # not a standard set: one line, no traceback


# ------------------------------------------------------------------- LACosmic loose iterations
def test_lacosmic_loose_steps_run_fewer_iterations(sample, monkeypatch):
    pytest.importorskip("astroscrappy")
    import astroscrappy

    from baselines.lacosmic import LACosmicDetector

    calls = []

    def fake(data, **kw):
        calls.append((kw["sigclip"], kw["niter"]))
        return np.zeros(data.shape, bool), data

    monkeypatch.setattr(astroscrappy, "detect_cosmics", fake)
    det = LACosmicDetector(sigclip=[3.0, 5.0, 8.0, 20.0], loose_niter=1, loose_below=6.0)
    det.score(sample.observation())
    assert calls == [(3.0, 1), (5.0, 1), (8.0, 4), (20.0, 4)]
    calls.clear()
    LACosmicDetector(sigclip=[3.0, 20.0]).score(sample.observation())
    assert calls == [(3.0, 4), (20.0, 4)]


def test_lacosmic_default_parameters_are_unchanged_and_bad_loose_settings_are_refused():
    from baselines.lacosmic import LACosmicDetector

    assert set(LACosmicDetector().params()) == {"sigclip", "sigfrac", "objlim", "niter", "sepmed", "fsmode"}
    assert LACosmicDetector(loose_niter=2, loose_below=6).params_hash() != LACosmicDetector().params_hash()
    for kw, needle in [({"loose_niter": 2}, "go together"), ({"loose_below": 6.0}, "go together"),
                       ({"loose_niter": 0, "loose_below": 6.0}, "loose_niter"),
                       ({"loose_niter": 5, "loose_below": 6.0}, "niter=4"),
                       ({"loose_niter": 2, "loose_below": -1.0}, "loose_below")]:
        with pytest.raises(UsageError, match=needle):
            LACosmicDetector(**kw)


# --------------------------------------------------------------------------- timing script
@pytest.mark.slow
def test_standard_eval_times_a_subset_and_prints_the_speedup_last(small_hst, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    shutil.copytree(small_hst.root, data / "datasets" / "sim-hst-acs-ex")
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    before = (data / "datasets" / "sim-hst-acs-ex" / "dataset.json").read_bytes()
    mod = _load_script("standard_eval")
    assert mod.main(["--detectors", "median", "--images", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "first 1 of the 1 test images" in lines[0]
    assert re.fullmatch(r"speedup: \d+\.\d\d", lines[-1])
    assert any(re.match(r"serial\s+median\s+[\d.]+ s", line) for line in lines)
    assert any(re.match(r"--workers 2\s+median\s+[\d.]+ s", line) for line in lines)
    assert (data / "datasets" / "sim-hst-acs-ex" / "dataset.json").read_bytes() == before
    assert mod.main(["--dataset", str(tmp_path / "nowhere")]) == 1
