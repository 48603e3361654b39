"""Detector defects and scene confusers of the simulated ACS frames (data_recipes/sim/confusers.py)."""
from __future__ import annotations

import numpy as np
import pytest

from baselines.lacosmic import LACosmicDetector
from baselines.median import MedianDetector
from crbench.errors import CRBenchError
from crbench.observation import DQ_HOT, DQ_OTHER
from crbench.recipes import build_dataset
from data_recipes.sim import scenes
from data_recipes.sim.confusers import DefectModel, draw_defects
from data_recipes.sim.presets import get_preset


def test_draw_defects_rates_flags_and_determinism():
    model = DefectModel(hot_fraction=0.01, warm_fraction=0.003, columns_per_mpix=4.0)
    d = draw_defects(np.random.default_rng(0), (512, 512), model, exptime=1000.0)
    n = 512 * 512
    hot = (d.dq & DQ_HOT) != 0
    assert abs(hot.sum() / n - 0.01) < 0.002
    # hot pixels carry >= 0.08 e-/s x 1000 s; warm pixels 10-80 e- and are never flagged
    assert d.dark[hot].min() >= 80.0 - 1e-9
    warm = (d.dark > 0) & (d.dq == 0)
    assert abs(warm.sum() / n - 0.003) < 0.001
    assert 10.0 - 1e-9 <= d.dark[warm].min() and d.dark[warm].max() <= 80.0 + 1e-9
    assert ((d.dq & DQ_OTHER) != 0).any()  # bad columns
    again = draw_defects(np.random.default_rng(0), (512, 512), model, exptime=1000.0)
    assert np.array_equal(d.dark, again.dark) and np.array_equal(d.dq, again.dq)


@pytest.mark.parametrize("kwargs, match", [
    ({"hot_fraction": -0.1}, "hot_fraction"),
    ({"warm_fraction": 0.7}, "warm_fraction"),
    ({"warm_rate": (0.08, 0.01)}, "warm_rate"),
    ({"columns_per_mpix": -1.0}, "columns_per_mpix"),
])
def test_bad_defect_model_is_refused(kwargs, match):
    with pytest.raises(CRBenchError, match=match):
        DefectModel(**kwargs)


def _hst_with(defects: DefectModel):
    return get_preset("hst-acs-wfc").with_(defects=defects)


def test_defects_reach_the_instrument_mask_ignore_and_every_exposure():
    # strong, sparse warm pixels: 1 e-/s x 1000 s = 1000 e- over a ~11 e- background sigma
    p = _hst_with(DefectModel(hot_fraction=0.005, warm_fraction=0.002, warm_rate=(1.0, 1.0)))
    s = scenes.simulate_sample(np.random.default_rng(3), "d", p, field="ex", shape=(256, 256), exptime=1000.0,
                               n_exposures=3)
    hot = (s.dqmask & DQ_HOT) != 0
    assert hot.sum() > 100
    assert s.ignore[hot].all(), "flagged hot pixels are ignored by evaluation"
    # warm pixels: recover them as pixels bright in every exposure, unflagged, not truth
    frames = np.concatenate([s.image[None], s.exposures])
    sky = np.median(frames)
    bright_everywhere = (frames > sky + 500).all(axis=0) & ~s.sources & (s.dqmask == 0)
    assert 0.001 * 256 * 256 < bright_everywhere.sum() < 0.004 * 256 * 256
    assert not s.truth[bright_everywhere].any()


def test_warm_pixels_confuse_lacosmic_not_the_median_comparison():
    p = _hst_with(DefectModel(warm_fraction=0.002, warm_rate=(0.2, 0.2)))  # 200 e-: ~18 sigma
    s = scenes.simulate_sample(np.random.default_rng(5), "w", p, field="ex", shape=(256, 256), exptime=1000.0,
                               n_exposures=3)
    frames = np.concatenate([s.image[None], s.exposures])
    warm = (frames > np.median(frames) + 100).all(axis=0) & ~s.sources & ~s.truth & ~s.ignore
    assert warm.sum() > 50
    obs = s.observation()
    la = LACosmicDetector().score(obs)
    med = MedianDetector().score(obs)
    la_flag = la[warm] > 0  # flagged at some sigclip step
    assert la_flag.mean() > 0.5
    # the median comparison's score at warm pixels is no higher than at ordinary background pixels
    background = ~(s.sources | s.truth | s.ignore | warm)
    assert np.median(med[warm]) < np.quantile(med[background], 0.99)


def test_gal_fields_carry_compact_knots_and_gc_fields_their_crowding():
    p = get_preset("hst-acs-wfc")
    gal = scenes.make_scene(np.random.default_rng(1), (256, 256), p, "gal", 1000.0)
    n_knots = int((gal.table.kind == "knot").sum())
    assert n_knots > 100  # point-like knots rendered with the PSF
    gc = scenes.make_scene(np.random.default_rng(1), (256, 256), p, "gc", 1000.0)
    assert (gc.table.kind == "star").sum() < 2 * scenes.GC_STARS_PER_AREA


def test_cards_record_the_confusers(tmp_path):
    gal = build_dataset("sim-hst-acs-gal", tmp_path / "gal", progress=False, size="small", n_images=3,
                        shape=(64, 64), confusers="v2")   # v2's crowding (v3's: tests/test_confusers_v3.py)
    conf = gal.card["confusers"]
    assert conf["detector_defects"]["hot_fraction"] == get_preset("hst-acs-wfc").defects.hot_fraction
    assert conf["gal_knots_per_256x256"] == scenes.GAL_KNOTS_PER_AREA
    decam = build_dataset("sim-decam", tmp_path / "decam", progress=False, size="small", n_images=3,
                          shape=(64, 64))
    assert decam.card["confusers"]["detector_defects"] is None
