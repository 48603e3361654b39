"""JWST up-the-ramp: per-group truth, stcal-jump, slope bias, JUMPS round trip (issue 19)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stcal")

from crbench.fitsio import read_sample, write_sample  # noqa: E402
from crbench.metrics.ramps import fit_image, jump_rates, leaked_charge  # noqa: E402
from crbench.observation import Observation  # noqa: E402
from crbench.sample import Sample  # noqa: E402
from data_recipes.sim.physics import TRUTH_RULE, CRLayer  # noqa: E402
from data_recipes.sim.presets import get_preset  # noqa: E402
from data_recipes.sim.ramps import Readout, simulate_ramp  # noqa: E402

H = W = 32
PRESET = get_preset("jwst-nircam")


def _one_cr_layer(charge: float, time_frac: float, y: int = 10, x: int = 12) -> CRLayer:
    q = np.zeros((H, W))
    q[y, x] = charge
    labels = (q > 0).astype(np.int32)
    inst = pd.DataFrame({"id": np.array([1], np.int32), "morphology": ["spot"], "generator": ["muon"],
                         "pixels": [1], "charge": [charge], "saturated": [False], "time": [time_frac]})
    return CRLayer(charge=q, labels=labels, instances=inst, saturated=np.zeros((H, W), bool))


def _ramp(charge: float, group_after: int, readout: Readout, seed: int = 0):
    """A CR arriving between the last read of group ``group_after - 1`` and group ``group_after``."""
    reads = readout.read_times()
    t = 0.5 * (reads[group_after - 1, -1] + reads[group_after, 0])
    cr = _one_cr_layer(charge, t / readout.total_time)
    rng = np.random.default_rng(seed)
    return simulate_ramp(rng, np.full((H, W), 0.2), PRESET, cr, readout, TRUTH_RULE,
                         onef_sigma=0.0, refpix_sigma=0.0, nonlin=0.0)


def test_one_jump_gives_exactly_that_pixel_and_group():
    ro = Readout("RAPID", 6)
    sim = _ramp(2000.0, 3, ro)
    expected = np.zeros((5, H, W), bool)
    expected[2, 10, 12] = True  # difference between groups 2 and 3
    np.testing.assert_array_equal(sim.jumps, expected)
    assert sim.truth.sum() == 1 and sim.truth[10, 12]
    # the CR contributes its full charge to every group from group 3 on, nothing before
    np.testing.assert_allclose(sim.cr_groups[:, 10, 12], [0, 0, 0, 2000, 2000, 2000])


def test_jump_inside_a_group_is_shared_between_two_differences():
    # MEDIUM8 averages 8 frames: a CR in the middle of group 2 adds half its charge to group 2's mean
    ro = Readout("MEDIUM8", 5)
    reads = ro.read_times()
    t = 0.5 * (reads[2, 3] + reads[2, 4])
    cr = _one_cr_layer(4000.0, t / ro.total_time)
    sim = simulate_ramp(np.random.default_rng(1), np.full((H, W), 0.2), PRESET, cr, ro, TRUTH_RULE,
                        onef_sigma=0.0, refpix_sigma=0.0, nonlin=0.0)
    np.testing.assert_allclose(sim.cr_groups[:, 10, 12], [0, 0, 2000, 4000, 4000])
    assert sim.jumps[:, 10, 12].tolist() == [False, True, True, False]


def test_cr_before_first_read_is_no_truth():
    ro = Readout("RAPID", 6)
    cr = _one_cr_layer(5000.0, 0.1 * ro.frame_time / ro.total_time)
    sim = simulate_ramp(np.random.default_rng(2), np.full((H, W), 0.2), PRESET, cr, ro, TRUTH_RULE,
                        onef_sigma=0.0, refpix_sigma=0.0, nonlin=0.0)
    assert not sim.jumps.any() and not sim.truth.any()
    assert sim.before_first_read.tolist() == [1]


def _obs(groups: np.ndarray, readout: Readout) -> Observation:
    meta = {"read_noise": PRESET.read_noise, "gain": 1.0, "saturation": 1e9, **readout.meta()}
    return Observation.build("s", groups[-1], ramp=groups, meta=meta)


def test_stcal_jump_finds_the_injected_jump():
    from baselines.stcal_jump import StcalJumpDetector

    ro = Readout("RAPID", 8)
    sim = _ramp(1500.0, 4, ro, seed=3)
    det = StcalJumpDetector()
    obs = _obs(sim.groups, ro)
    flags = det.jump_flags(obs)
    assert flags[4, 10, 12]
    assert not flags[:, 10, 12][np.arange(8) != 4].any()
    score = det.score(obs)
    assert score[10, 12] > 20 and np.unravel_index(np.argmax(score), score.shape) == (10, 12)
    rates = jump_rates(sim.jumps, flags)
    assert rates["tp"] == 1 and rates["positives"] == 1


def test_slope_bias_no_flags_leaks_and_true_flags_do_not():
    ro = Readout("RAPID", 8)
    q = 3000.0
    sim = _ramp(q, 4, ro, seed=4)
    clean = sim.groups - sim.cr_groups.astype(np.float32)
    meta = {"read_noise": PRESET.read_noise, "gain": 1.0, "saturation": 1e9, "exptime": ro.effective_time,
            **ro.meta()}
    s = Sample(id="s", image=sim.groups[-1], ramp=sim.groups, labels=sim.truth.astype(np.int32),
               truth=sim.truth, meta=meta,
               instances=pd.DataFrame({"id": np.array([1], np.int32), "morphology": ["spot"],
                                       "generator": ["muon"], "pixels": [1], "charge": [q], "saturated": [False]}))
    s.rate_clean = fit_image(Sample(id="c", image=clean[-1], ramp=clean, meta=meta), None).astype(np.float32)
    none = leaked_charge(s, fit_image(s, None))["leaked"].iloc[0]
    flags = np.concatenate([np.zeros((1, H, W), bool), sim.jumps])
    truth = leaked_charge(s, fit_image(s, flags))["leaked"].iloc[0]
    # without flags the slope absorbs most of the jump; with the true jump flagged almost nothing
    assert none > 0.5 * q
    assert abs(truth) < 0.05 * q


def test_jumps_and_crfree_round_trip(tmp_path):
    ro = Readout("RAPID", 5)
    sim = _ramp(2000.0, 2, ro)
    s = Sample(id="r1", image=sim.groups[-1], ramp=sim.groups, jumps=sim.jumps,
               rate_clean=np.full((H, W), 3.5, np.float32), meta={"gain": 1.0})
    write_sample(s, tmp_path / "r1.fits")
    back = read_sample(tmp_path / "r1.fits")
    assert back.jumps.dtype == bool
    np.testing.assert_array_equal(back.jumps, sim.jumps)
    np.testing.assert_array_equal(back.rate_clean, s.rate_clean)
    assert not hasattr(back.observation(), "jumps")


def test_jumps_shape_must_match_ramp():
    from crbench.errors import SampleError

    ramp = np.zeros((5, H, W), np.float32)
    with pytest.raises(SampleError, match="jumps has 3 group differences"):
        Sample(id="bad", image=ramp[-1], ramp=ramp, jumps=np.zeros((3, H, W), bool)).validate()


def test_stcal_jump_is_registered_in_pyproject_and_records_stcal_version():
    import tomllib
    from pathlib import Path

    from crbench.detectors.registry import load_detector_class

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["crbench.detectors"]["stcal-jump"]
    assert any(dep.startswith("stcal") for dep in project["optional-dependencies"]["jwst"])
    cls = load_detector_class(target)
    det = cls()
    assert cls.requires == ("ramp",)
    assert det.params()["stcal_version"] == __import__("stcal").__version__


def test_snowball_halo_grows_in_later_groups_and_core_is_a_step():
    from data_recipes.sim.ramps import cr_arrival, cr_fraction

    ro = Readout("RAPID", 10)
    q = np.zeros((H, W))
    q[10, 10], q[10, 13] = 60000.0, 500.0  # saturated core pixel, halo pixel
    labels = (q > 0).astype(np.int32)
    sat = np.zeros((H, W), bool)
    sat[10, 10] = True
    inst = pd.DataFrame({"id": np.array([1], np.int32), "morphology": ["blob"], "generator": ["snowball"],
                         "pixels": [2], "charge": [q.sum()], "saturated": [True], "time": [0.25]})
    cr = CRLayer(charge=q, labels=labels, instances=inst, saturated=sat)
    t0, dur = cr_arrival(cr, ro, np.random.default_rng(5))
    assert dur[10, 10] == 0 and dur[10, 13] >= ro.group_time
    fr = np.array([cr_fraction(t, t0, dur)[10] for t in ro.read_times()[:, 0]])
    core, halo = fr[:, 10], fr[:, 13]
    k = int(np.argmax(core > 0))
    assert core[k] == 1.0                       # the core arrives at once
    assert 0 < halo[k] < 1 and halo[k + 1] > halo[k]  # the halo is still growing a group later


def test_small_build_has_per_group_truth_and_rate_image(tmp_path):
    from crbench.dataset import Dataset
    from crbench.metrics.ramps import fit_image
    from crbench.recipes import build_dataset

    ds = build_dataset("sim-jwst-nircam-ramps", tmp_path / "d", progress=False, size="small", n_images=2,
                       shape=(32, 32))
    ds = Dataset.open(tmp_path / "d")
    assert "crs_before_first_read" in ds.card["truth_rule"]
    s = ds.load(ds.ids()[0])
    assert s.jumps.shape == (s.ramp.shape[0] - 1, 32, 32)
    np.testing.assert_array_equal(s.truth, s.jumps.any(axis=0))
    # SCI is the stcal rate without jump flags x exptime, not the last group
    np.testing.assert_allclose(s.image, fit_image(s, None), rtol=1e-5, atol=1e-2)
    assert not np.allclose(s.image, s.ramp[-1])
    obs = s.observation()
    assert not hasattr(obs, "jumps") and not hasattr(obs, "rate_clean")
