"""Small builds of the real-data recipes from the shared mirror (the full builds are marked slow)."""
from __future__ import annotations


import numpy as np
import pytest

from crbench.download import group_files
from crbench.errors import DatasetError
from crbench.recipes import build_dataset, get_recipe

from _mirror import MIRROR, require_mirror


@pytest.fixture(scope="module", autouse=True)
def _needs_mirror():
    """Every test here reads the mirror: skip locally / fail in CI when it is absent (see _mirror.py)."""
    require_mirror()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("real")
    mp.setenv("CRBENCH_DATA_DIR", str(root / "data"))
    mp.setenv("CRBENCH_MIRROR", str(MIRROR))
    yield root
    mp.undo()


def _check_provenance(ds, group):
    reg = {f["origin_url"]: f["sha256"] for f in group_files(group)}
    assert ds.card["provenance"]
    for p in ds.card["provenance"]:
        assert reg[p["origin"]] == p["sha256"]


def test_recipes_registered():
    for name in ("microobs-hatp32", "microobs-hatp32-sim", "microobs-hatp32-footprints", "m13-negatives",
                 "kast-biases", "kast-science", "deepcr-acswfc", "cosmic-conn-lco"):
        assert get_recipe(name).requires_download


def test_kast_biases_negative_control(env):
    ds = build_dataset("kast-biases", env / "kb", progress=False)
    assert ds.ids("test") == ["kast-b21", "kast-b22", "kast-b23"]
    for s in ds.iter_samples("test"):
        assert s.image.shape == (350, 2048) and not s.truth.any() and len(s.instances) == 0
        assert s.exposures.shape == (2, 350, 2048)
        assert abs(float(np.median(s.image))) < 5.0          # overscan removed, in e-
        assert 3.0 < float(np.std(s.image[10:-10, 10:-10])) < 8.0   # ~ read noise 3.7 e- (+ pattern)
    assert ds.card["kind"] == "real-negative-control"
    _check_provenance(ds, "kast-blue")


def test_kast_science_lower_confidence_labels(env):
    ds = build_dataset("kast-science", env / "ks", progress=False)
    b27, b24 = ds.load("kast-b27"), ds.load("kast-b24")
    assert 15 <= len(b27.instances) <= 80            # MANIFEST: ~46 hits by eye/astroscrappy
    assert len(b24.instances) < len(b27.instances)   # 30 s vs 1200 s
    assert not (b27.truth & b27.ignore).any()
    assert b27.meta["label_confidence"].startswith("lower") and ds.card["label_confidence"] == "lower"
    assert ds.card["truth_rule"]["name"] == "seed5-grow2.5-max5"
    # CR pixels stand well above their neighbourhood
    assert np.median(b27.image[b27.truth]) > np.median(b27.image) + 30


def test_microobs_small_build(env):
    ds = build_dataset("microobs-hatp32", env / "mo", progress=False, n_images=9, label_quality=False)
    ids = [i for s in ("train", "val", "test") for i in ds.ids(s)]
    assert ids == sorted(ids)                           # time order, blocks in order
    assert len(ids) + len(ds.card["dropped_frames"]) + len(ds.card["rejected_frames"]) == 9
    s = ds.load(ds.ids("train")[0])
    assert s.image.shape == (500, 650) and s.exposures.shape == (2, 500, 650)
    assert not (s.truth & s.ignore).any()
    assert s.meta["gain"] > 0 and s.meta["read_noise"] > 0 and s.meta["exptime"] == 60.0
    lab = ds.card["labelling"]
    assert lab["params"]["seed_snr"] == 5.0 and lab["noise"]["gain_source"]
    # the library's one truth rule, recorded; the halo travels in the HALO extension
    assert ds.card["truth_rule"]["name"] == "seed5-grow2.5" and ds.card["truth_rule"]["connectivity"] == 8
    assert s.halo is not None and not (s.halo & (s.truth | s.ignore)).any()
    assert "statistics" in ds.card and ds.card["statistics"]["n_images"] == len(ids)
    _check_provenance(ds, "microobs-hatp32")
    with pytest.raises(DatasetError, match="does not take option"):
        build_dataset("microobs-hatp32", env / "mo2", progress=False, shape=(64, 64))


@pytest.mark.slow
def test_microobs_label_quality_and_twins(env):
    ds = build_dataset("microobs-hatp32", env / "mo", progress=False, n_images=14, overwrite=True)
    q = ds.card["label_quality"]
    assert ds.card["circular"] is False and "disjoint" in ds.card["exposures_rule"]
    from crbench.dataset_info import describe

    text = describe(ds)          # what 'crbench datasets info' prints
    assert "negative deviations" in text and "charge (e-)" in text and "disjoint" in text
    neg = q["purity"]["negative_deviations"]
    for key in ("all", "off_sources", "on_sources"):
        lo, hi = neg[key]["component_purity_interval"] or (0, 1)
        assert 0 <= lo <= (neg[key]["component_purity"] if neg[key]["component_purity"] is not None else lo) <= hi <= 1
    assert q["purity"]["recurrence"]["pixel_purity_interval"] is not None
    assert q["purity"]["held_back"]["component_agreement"] is not None
    comp = q["completeness"]
    assert comp["per_frame"] <= 2 * comp["observed_crs_per_frame"] + 1      # a realistic rate, not 50x
    bins = comp["all"]["by_charge"]
    assert sum(b["n_injected"] for b in bins) == comp["all"]["n_injected"] > 0
    assert all(b["interval"] is None or b["interval"][0] <= b["completeness"] <= b["interval"][1] for b in bins)
    twin = build_dataset("microobs-hatp32-sim", env / "sim", progress=False, n_images=14)
    assert twin.splits == ds.splits
    t = twin.load(twin.ids("test")[0])
    r = ds.load(ds.ids("test")[0])
    assert abs(float(np.median(t.image)) - float(np.median(r.image))) < 3 * r.meta["read_noise"]
    assert t.exposures.shape == r.exposures.shape
    fp = build_dataset("microobs-hatp32-footprints", env / "fp", progress=False, n_images=14)
    f = fp.load(fp.ids("train")[0])
    assert f.truth.any() and (f.instances["generator"].str.startswith("real-footprint")).all()
    assert "on_sources" not in fp.card["parameters"]
    # footprints pasted on stars: truth by the common rule at the star's noise, on source pixels only
    on = build_dataset("microobs-hatp32-footprints", env / "fp-on", progress=False, n_images=14, on_sources=0.5)
    assert on.card["parameters"]["on_sources"] == 0.5 and "local noise" in on.card["on_sources_rule"]
    n_on = 0
    for sid in on.ids("train"):
        s = on.load(sid)
        tab = s.instances
        for cid in tab.loc[tab["generator"].str.endswith(":on-source"), "id"]:
            pix = s.labels == cid
            assert pix.any() and s.sources[pix].all() and not s.ignore[pix].any()
            n_on += 1
    assert n_on > 0
    with pytest.raises(DatasetError, match="on_sources"):
        build_dataset("microobs-hatp32-footprints", env / "fp-bad", progress=False, n_images=14, on_sources=1.5)


@pytest.mark.slow
def test_m13_negative_control(env):
    ds = build_dataset("m13-negatives", env / "m13", progress=False)
    assert len(ds.ids("test")) == 5
    s = ds.load("m13-0003")
    assert s.image.shape == (1040, 1392) and not s.truth.any() and s.exposures.shape == (4, 1040, 1392)
    assert s.ignore.mean() < 0.01
