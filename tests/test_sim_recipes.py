"""Tiny builds of the six simulated recipes: content, splits, determinism, options, baselines."""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from data_recipes.sim_recipes import STANDARD

from crbench.errors import DatasetError
from crbench.recipes import available_recipes, build_dataset
from crbench.sample import MORPHOLOGIES

SIM_RECIPES = ["sim-hst-acs-ex", "sim-hst-acs-gc", "sim-hst-acs-gal", "sim-decam", "sim-ground-small",
               "sim-jwst-nircam"]
TINY = {"n_images": 3, "shape": (64, 64), "exposures": 2}
META_KEYS = {"gain", "read_noise", "sky", "exptime", "saturation", "instrument", "pixel_scale", "psf_fwhm"}


@pytest.fixture(scope="module")
def tiny_builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim-tiny")
    # more CRs for the sparse ground recipes so every tiny build has positives
    out = {}
    for name in SIM_RECIPES:
        opts = dict(TINY)
        if name in ("sim-decam", "sim-ground-small"):
            opts["cr_rate_scale"] = 40.0
        out[name] = build_dataset(name, root / name, progress=False, **opts)
    return out


def test_registered_with_defaults():
    recipes = available_recipes()
    for name in SIM_RECIPES:
        r = recipes[name]
        assert r.kind == "simulated" and not r.requires_download
        assert r.defaults == {"seed": 1, "size": "standard"}
        assert {"shape", "exposures", "exposure_time", "split_counts"} <= set(STANDARD[name])
    assert STANDARD["sim-ground-small"]["shape"] == (500, 650)
    assert STANDARD["sim-hst-acs-ex"]["exposure_time"] == 1000.0


@pytest.mark.parametrize("name", SIM_RECIPES)
def test_tiny_build_content(tiny_builds, name):
    ds = tiny_builds[name]
    assert len(ds) == 3 and all(len(ds.ids(s)) == 1 for s in ("train", "val", "test"))
    stats = ds.card["statistics"]
    assert stats["n_images"] == 3 and set(stats["morphology"]) == set(MORPHOLOGIES)
    assert "truth_definition" in ds.card
    n_cr = 0
    for s in ds.iter_samples():
        assert s.shape == (64, 64) and s.exposures.shape == (1, 64, 64)
        assert META_KEYS <= set(s.meta)
        assert s.sources is not None and s.ignore is not None
        assert np.array_equal(s.truth, s.labels > 0)
        inst = s.instances
        assert set(inst.morphology) <= set(MORPHOLOGIES)
        assert set(inst.generator) <= {"muon", "electron", "alpha", "snowball"}
        assert inst["pixels"].sum() == s.truth.sum()
        assert set(inst["id"]) == set(np.unique(s.labels[s.labels > 0]))
        n_cr += len(inst)
        if name == "sim-jwst-nircam":
            assert s.ramp is not None and s.ramp.shape == (8, 64, 64)
            assert np.all(np.diff(s.ramp.mean(axis=(1, 2))) > 0)  # the ramp rises
        else:
            assert s.ramp is None
    assert n_cr > 0


def test_same_seed_same_hash(tmp_path):
    a = build_dataset("sim-jwst-nircam", tmp_path / "a", progress=False, seed=7, **TINY)
    b = build_dataset("sim-jwst-nircam", tmp_path / "b", progress=False, seed=7, **TINY)
    c = build_dataset("sim-jwst-nircam", tmp_path / "c", progress=False, seed=8, **TINY)
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash


@pytest.mark.parametrize("opts, match", [
    ({"n_images": 0}, "n_images"),
    ({"shape": (8, 8)}, "shape"),
    ({"exposures": 0}, "exposures"),
    ({"exposure_time": -5}, "exposure_time"),
    ({"colour": "red"}, "unknown option"),
])
def test_bad_options(tmp_path, opts, match):
    with pytest.raises(DatasetError, match=match):
        build_dataset("sim-decam", tmp_path / "x", progress=False, **opts)


def _score_all(tiny_builds, lacosmic_params):
    from crbench import evaluate
    from crbench.detectors.registry import get_detector

    for name, ds in tiny_builds.items():
        dets = [get_detector("lacosmic", **lacosmic_params), get_detector("median")]
        res = evaluate(dets, ds, split="all", progress=False, on_error="raise")
        table = res.table
        assert len(table) == 2 and set(table.detector) == {"lacosmic", "median"}, name
        assert table.roc_auc.notna().all(), name
        assert (table.n_images == 3).all(), name


@pytest.mark.skipif(importlib.util.find_spec("baselines.lacosmic") is None, reason="baselines not present")
def test_baselines_score_every_recipe(tiny_builds):
    """LACosmic (one sigclip, two iterations, to stay fast) and median score every recipe."""
    _score_all(tiny_builds, {"sigclip": [6.0], "niter": 2})


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("baselines.lacosmic") is None, reason="baselines not present")
def test_baselines_default_sweep_score_every_recipe(tiny_builds):
    _score_all(tiny_builds, {})


def test_statistics_describe_and_plots(tiny_builds, tmp_path):
    from crbench.dataset_info import describe
    from crbench.plots import plot_class_imbalance

    ds = tiny_builds["sim-decam"]
    st = ds.card["statistics"]
    # generator x morphology counts add up to the CR count
    assert sum(sum(c.values()) for c in st["generator_morphology"].values()) == st["n_crs"] > 0
    text = describe(ds)
    assert re.search(r"^\s*train\s+1\s", text, re.M), text  # images per split lead the text
    for needle in ("content hash", "CR pixel fraction per image", "per megapixel", "track",
                   "generator -> morphology", "CR pixels on sources", "ignore fraction", "provenance"):
        assert needle in text, needle
    frac = st["cr_pixel_fraction"]
    assert f"mean {100 * frac['mean']:.3f}%" in text
    paths = plot_class_imbalance(ds, tmp_path / "plots")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_describe_computes_missing_statistics(tiny_builds, tmp_path):
    import shutil

    from crbench.atomic import write_json
    from crbench.dataset import Dataset
    from crbench.dataset_info import describe

    src = tiny_builds["sim-hst-acs-ex"]
    dst = tmp_path / "copy"
    shutil.copytree(src.root, dst)
    card = dict(src.card)
    stats = card.pop("statistics")
    write_json(dst / "dataset.json", card)
    text = describe(Dataset.open(dst))
    assert f"CRs: {stats['n_crs']} " in text
