"""Standard datasets: sizes, pinned hashes, reproducible export and verified download from a local mirror."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crbench.dataset import Dataset
from crbench.errors import DatasetError, DownloadError, RegistryError
from crbench.recipes import build_dataset
from crbench.standard import check_standard, download_standard, export_dataset, pinned, previous_pins
from data_recipes.sim_recipes import STANDARD, split_ids, standard_version

SMALL = {"n_images": 3, "shape": (64, 64)}


@pytest.fixture(scope="module")
def small_hst(tmp_path_factory):
    return build_dataset("sim-hst-acs-ex", tmp_path_factory.mktemp("s") / "sim-hst-acs-ex", progress=False,
                         size="small", **SMALL)


def _registry(tmp_path: Path, name: str, entry: dict) -> Path:
    path = tmp_path / "standard.json"
    path.write_text(json.dumps({"schema": 1, "sets": {name: entry}}))
    return path


def test_split_counts_are_exact_and_checked():
    ids = [f"x{i}" for i in range(10)]
    s = split_ids(ids, counts=(5, 2, 3))
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (5, 2, 3)
    assert s["train"] + s["val"] + s["test"] == ids
    with pytest.raises(DatasetError, match="do not add up"):
        split_ids(ids, counts=(5, 2, 2))


def test_standard_profiles_meet_the_size_floor():
    for name, prof in STANDARD.items():
        h, w = prof["shape"]
        n_train, n_val, n_test = prof["split_counts"]
        assert n_test * h * w >= 16e6, name
        assert n_val * h * w >= 4e6, name


def test_every_standard_profile_is_pinned_at_its_version_and_size():
    # a profile whose sizes moved (a new standard version) must be re-pinned with them: the packaged pin
    # names the version the recipe records and holds as many samples as the profile's splits
    packaged = Path(__file__).resolve().parents[1] / "crbench" / "registry" / "standard.json"
    for name, prof in STANDARD.items():
        pin = pinned(name, packaged)
        assert pin is not None, name
        assert pin["standard"] == standard_version(name), name
        assert pin["n_samples"] == sum(prof["split_counts"]), name
        assert pin["standard"] not in previous_pins(name, packaged), name


def test_growing_a_standard_test_split_keeps_train_val_and_the_old_test_fields(tmp_path, monkeypatch):
    # what sim-decam and sim-jwst-nircam v3 did: more test fields appended; every earlier sample is the same
    # draw, so nets trained on the old build (whose pin stays under 'previous') saw exactly these frames
    from data_recipes import sim_recipes

    tiny = dict(sim_recipes.STANDARD["sim-decam"], shape=(48, 48))
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-decam", {**tiny, "split_counts": (2, 1, 1)})
    before = build_dataset("sim-decam", tmp_path / "before", progress=False)
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-decam", {**tiny, "split_counts": (2, 1, 3)})
    after = build_dataset("sim-decam", tmp_path / "after", progress=False)
    assert after.content_hash != before.content_hash
    for split in ("train", "val"):
        assert after.ids(split) == before.ids(split)
    assert after.ids("test")[:1] == before.ids("test") and len(after.ids("test")) == 3
    for sid in before.ids():
        a, b = before.load(sid), after.load(sid)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.truth, b.truth), sid
    old = before.instances()
    assert old.equals(after.instances().loc[lambda t: t["sample_id"].isin(before.ids())].reset_index(drop=True))
    # the old standard's frames stay buildable: a custom build of its sample count has its content hash
    again = build_dataset("sim-decam", tmp_path / "again", progress=False, n_images=4)
    assert again.card["size"] == "custom" and again.content_hash == before.content_hash


def test_a_long_exposure_block_changes_only_the_samples_from_its_first_index(tmp_path, monkeypatch):
    # what sim-ground-small v4 did: test fields of a longer exposure appended after the earlier samples
    from data_recipes import sim_recipes

    tiny = {k: v for k, v in sim_recipes.STANDARD["sim-ground-small"].items() if k != "long_exposure"}
    tiny["shape"] = (40, 52)
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-ground-small", {**tiny, "split_counts": (2, 1, 1)})
    before = build_dataset("sim-ground-small", tmp_path / "before", progress=False)
    assert "long_exposure" not in before.card["parameters"]
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-ground-small",
                        {**tiny, "split_counts": (2, 1, 3), "long_exposure": (4, 6000.0)})
    after = build_dataset("sim-ground-small", tmp_path / "after", progress=False)
    assert after.card["size"] == "standard"
    assert after.card["parameters"]["long_exposure"] == {"from_sample": 4, "exposure_time": 6000.0}
    t = tiny["exposure_time"]
    assert [after.load(sid).meta["exptime"] for sid in after.ids()] == [t] * 4 + [6000.0] * 2
    long_sky = after.load(after.ids()[-1]).meta["sky"]
    assert long_sky == pytest.approx(after.load(after.ids()[0]).meta["sky"] * 6000.0 / t)
    for sid in before.ids():
        a, b = before.load(sid), after.load(sid)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.truth, b.truth), sid
    # the earlier samples alone rebuild the earlier content; an exposure time asked for (even the profile's
    # own) is every sample's, in a custom build
    again = build_dataset("sim-ground-small", tmp_path / "again", progress=False, n_images=4)
    assert again.card["size"] == "custom" and again.content_hash == before.content_hash
    other = build_dataset("sim-ground-small", tmp_path / "other", progress=False, exposure_time=t)
    assert other.card["size"] == "custom" and "long_exposure" not in other.card["parameters"]
    assert [other.load(sid).meta["exptime"] for sid in other.ids()] == [t] * 6


def test_small_and_custom_builds_are_not_standard(small_hst, tmp_path):
    assert small_hst.card["size"] == "small" and small_hst.card["standard"] is None
    assert check_standard(small_hst).status == "not-standard"
    custom = build_dataset("sim-hst-acs-ex", tmp_path / "c", progress=False, n_images=3, shape=(48, 48))
    assert custom.card["size"] == "custom"
    with pytest.raises(DatasetError, match="size"):
        build_dataset("sim-hst-acs-ex", tmp_path / "d", progress=False, size="huge")


def test_check_standard_names_the_libraries_that_differ(small_hst, tmp_path, monkeypatch):
    card = dict(small_hst.card, size="standard", standard="v1")
    ds = Dataset(root=small_hst.root, card=card)
    reg = _registry(tmp_path, ds.name, {"content_hash": ds.content_hash, "versions": {}})
    assert check_standard(ds, reg).status == "match"
    reg = _registry(tmp_path, ds.name, {"content_hash": "0" * 64, "versions": {"numpy": "0.0.1"}})
    chk = check_standard(ds, reg)
    assert chk.status == "mismatch" and not chk.ok
    assert "numpy" in chk.message and "0.0.1" in chk.message and "000000000000" in chk.message


def test_export_is_reproducible(small_hst, tmp_path):
    a = export_dataset(small_hst, tmp_path / "a")
    b = export_dataset(small_hst, tmp_path / "b")
    assert a["archive"]["sha256"] == b["archive"]["sha256"]
    assert (tmp_path / "a" / "sim-hst-acs-ex.tar.gz").read_bytes() == (tmp_path / "b" / "sim-hst-acs-ex.tar.gz").read_bytes()
    line = (tmp_path / "a" / "sim-hst-acs-ex.tar.gz.sha256").read_text()
    assert line.split()[0] == a["archive"]["sha256"]
    reg = json.loads((tmp_path / "a" / "sim-hst-acs-ex.registry.json").read_text())
    assert reg["sim-hst-acs-ex"]["content_hash"] == small_hst.content_hash


def test_exports_of_two_builds_of_the_same_content_are_identical(small_hst, tmp_path):
    again = build_dataset("sim-hst-acs-ex", tmp_path / "again" / "sim-hst-acs-ex", progress=False, size="small",
                          **SMALL)
    assert again.content_hash == small_hst.content_hash
    assert export_dataset(again, tmp_path / "a")["archive"]["sha256"] == \
        export_dataset(small_hst, tmp_path / "b")["archive"]["sha256"]


def test_download_from_a_local_mirror_made_by_export(small_hst, tmp_path):
    mirror = tmp_path / "mirror"
    entry = export_dataset(small_hst, mirror)
    reg = _registry(tmp_path, "sim-hst-acs-ex", entry)
    ds = download_standard("sim-hst-acs-ex", mirror=str(mirror), registry=reg, out=tmp_path / "got",
                           progress=False)
    assert ds.content_hash == small_hst.content_hash and len(ds) == len(small_hst)
    assert ds.load(ds.ids("test")[0]).image.shape == (64, 64)


def test_download_refuses_a_corrupt_archive(small_hst, tmp_path):
    mirror = tmp_path / "mirror"
    entry = export_dataset(small_hst, mirror)
    arch = mirror / entry["archive"]["file"]
    data = bytearray(arch.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arch.write_bytes(bytes(data))
    reg = _registry(tmp_path, "sim-hst-acs-ex", entry)
    with pytest.raises(DownloadError, match="checksum"):
        download_standard("sim-hst-acs-ex", mirror=str(mirror), registry=reg, out=tmp_path / "got", progress=False)
    assert not (tmp_path / "got").exists()


def test_download_refuses_an_archive_of_other_content(small_hst, tmp_path):
    mirror = tmp_path / "mirror"
    entry = export_dataset(small_hst, mirror)
    entry = dict(entry, content_hash="f" * 64)
    reg = _registry(tmp_path, "sim-hst-acs-ex", entry)
    with pytest.raises(DatasetError, match="pinned"):
        download_standard("sim-hst-acs-ex", mirror=str(mirror), registry=reg, out=tmp_path / "got", progress=False)
    assert not (tmp_path / "got").exists()


def test_download_of_an_unknown_set_is_a_clear_error(tmp_path):
    reg = _registry(tmp_path, "sim-hst-acs-ex", {"content_hash": "0" * 64})
    with pytest.raises(RegistryError, match="not a standard dataset"):
        download_standard("sim-nope", registry=reg, out=tmp_path / "x", progress=False)


def test_cli_export_and_build_size(tmp_path, capsys):
    from crbench.cli import main

    out = tmp_path / "ds"
    assert main(["datasets", "build", "sim-hst-acs-ex", "--size", "small", "--n-images", "3", "--shape", "48x48",
                 "--out", str(out), "--no-progress"]) == 0
    assert "not the standard size" in capsys.readouterr().out
    assert main(["datasets", "export", str(out), "--out", str(tmp_path / "arch")]) == 0
    assert (tmp_path / "arch" / "sim-hst-acs-ex.tar.gz").exists()


def test_pin_standard_pins_refuses_and_keeps(tmp_path, monkeypatch):
    """leaderboard/pin_standard.py: pins a standard build's hash, keeps an unmoved one, refuses the rest."""
    import importlib.util

    from crbench.dataset import update_card
    from crbench.errors import CRBenchError
    from crbench.recipes import data_dir

    spec = importlib.util.spec_from_file_location("pin_standard", Path(__file__).resolve().parents[1]
                                                  / "leaderboard" / "pin_standard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = data_dir() / "datasets" / "sim-hst-acs-ex"
    built = build_dataset("sim-hst-acs-ex", root, progress=False, size="small", **SMALL)
    reg = _registry(tmp_path, "sim-decam", {"content_hash": "1" * 64, "standard": "v1"})
    with pytest.raises(CRBenchError, match="not a standard build"):
        mod.pin(["sim-hst-acs-ex"], reg)
    ds = update_card(built, size="standard", standard="v2")
    assert mod.pin(["sim-hst-acs-ex"], reg) == {"sim-hst-acs-ex": "new"}
    sets = json.loads(reg.read_text())["sets"]
    assert sets["sim-hst-acs-ex"]["content_hash"] == ds.content_hash
    assert sets["sim-hst-acs-ex"]["standard"] == "v2"
    assert sets["sim-decam"]["content_hash"] == "1" * 64  # other sets untouched
    assert mod.pin(["sim-hst-acs-ex"], reg) == {"sim-hst-acs-ex": "kept"}
    assert "previous" not in json.loads(reg.read_text())["sets"]["sim-hst-acs-ex"]
    # a new standard version: the old pin is kept as previous, and a build of it is named as such
    v2_hash = ds.content_hash
    rebuilt = build_dataset("sim-hst-acs-ex", tmp_path / "v3", progress=False, size="small", seed=7, **SMALL)
    v3 = update_card(rebuilt, size="standard", standard="v3")
    shutil.rmtree(root)
    shutil.copytree(v3.root, root)
    said = mod.pin(["sim-hst-acs-ex"], reg)["sim-hst-acs-ex"]
    assert said.startswith("moved") and "standard v2 kept as previous" in said
    entry = json.loads(reg.read_text())["sets"]["sim-hst-acs-ex"]
    assert entry["standard"] == "v3" and entry["content_hash"] == v3.content_hash
    assert entry["previous"]["v2"]["content_hash"] == v2_hash
    assert previous_pins("sim-hst-acs-ex", reg) == {"v2": v2_hash}
    check = check_standard(ds, reg)
    assert check.status == "previous" and not check.ok and "superseded standard v2" in check.message
    assert check_standard(Dataset.open(root), reg).status == "match"
    # a sample edited after the build: the hash no longer matches the card, nothing is pinned
    sample = sorted((root / "samples").iterdir())[0]
    data = bytearray(sample.read_bytes())
    data[-10] ^= 0xFF
    sample.write_bytes(bytes(data))
    before = reg.read_text()
    with pytest.raises(CRBenchError):
        mod.pin(["sim-hst-acs-ex"], reg)
    assert reg.read_text() == before
