"""``attention-unet-mixture-median`` (issue 18): the generalist net fused with the median comparison of
companion exposures -- the rule, the shipped fit and the detector's behaviour on CRs that sit on stars."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.fusion.detector import SIDECAR, MixtureMedianDetector, read_fit  # noqa: E402
from baselines.fusion.fit import Pixels, best_weight, exact_ap, main as fit_main, weight_table  # noqa: E402
from baselines.fusion.scores import fuse_scores  # noqa: E402
from baselines.unet.detector import AttentionUNetMixtureDetector  # noqa: E402
from baselines.unet.weights import WEIGHTS_DIR, file_sha256  # noqa: E402
from crbench.errors import DetectorError, UsageError  # noqa: E402
from crbench.metrics import ap, exact_curve  # noqa: E402
from crbench.sample import Sample  # noqa: E402

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def test_fuse_scores_is_the_logit_plus_the_weighted_clipped_significance():
    rng = np.random.default_rng(0)
    lg = rng.normal(0, 5, (20, 30)).astype(np.float32)
    z = rng.normal(0, 40, (20, 30)).astype(np.float32)
    np.testing.assert_array_equal(fuse_scores(lg, z, 0.0), lg)
    out = fuse_scores(lg, z, 0.5, z_min=-3.0, z_max=7.0)
    assert out.dtype == np.float32 and out.shape == lg.shape
    np.testing.assert_allclose(out, lg + 0.5 * np.minimum(np.maximum(z, -3.0), 7.0), rtol=1e-6, atol=1e-5)
    # beyond the clip the significance adds nothing more
    assert fuse_scores(np.zeros(2), np.array([7.0, 1e6]), 1.0, z_min=-3.0, z_max=7.0).tolist() == [7.0, 7.0]


@pytest.mark.parametrize("kwargs, match", [
    ({"weight": -1.0}, "weight"), ({"weight": float("nan")}, "weight"),
    ({"weight": 1.0, "z_min": 5.0, "z_max": 5.0}, "z_min < z_max")])
def test_fuse_scores_refuses_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fuse_scores(np.zeros((3, 3)), np.zeros((3, 3)), **kwargs)
    with pytest.raises(ValueError, match="shape"):
        fuse_scores(np.zeros((3, 3)), np.zeros((3, 4)), 1.0)


def test_exact_ap_agrees_with_scikit_learn_on_ties_and_random_scores():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.random(5000) < 0.02
    for s in (rng.normal(size=5000) + 2 * y, np.round(rng.normal(size=5000) + y, 1)):
        assert exact_ap(s, y) == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)


def _pixels(name, informative_logits, informative_z, seed):
    rng = np.random.default_rng(seed)
    y = rng.random(20000) < 0.01
    lg = rng.normal(size=y.size) + (3.0 * y if informative_logits else 0.0)
    z = rng.normal(size=y.size) + (6.0 * y if informative_z else 0.0)
    return Pixels(name, "0" * 64, 1, lg.astype(np.float32), z.astype(np.float32), y)


def test_the_fit_weighs_the_significance_only_where_it_carries_information():
    weights = (0.0, 0.25, 1.0, 4.0)
    useless = weight_table([_pixels("a", True, False, 1), _pixels("b", True, False, 2)], weights, -10.0, 30.0)
    assert best_weight(useless) == 0.0
    useful = weight_table([_pixels("a", True, True, 1), _pixels("b", True, True, 2)], weights, -10.0, 30.0)
    assert best_weight(useful) > 0.0
    assert useful[-1]["weight"] == "median alone"
    # both sources together beat either alone
    best = max(r["mean_ap"] for r in useful[:-1])
    assert best > useful[0]["mean_ap"] and best > useful[-1]["mean_ap"]


def test_the_fit_never_reads_a_test_split(tmp_path):
    with pytest.raises(UsageError, match="never on a test split"):
        fit_main(["--split", "test", "--out", str(tmp_path / "x.json")])
    with pytest.raises(UsageError, match="--weights"):
        fit_main(["--weights", "1,-2", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_shipped_fit_is_the_best_row_of_its_own_table_on_validation_data():
    fit = read_fit()
    assert fit["weight"] == best_weight(fit["table"])
    assert fit["split"] == "val" and fit["command"].startswith("python -m baselines.fusion.fit")
    assert fit["net"]["sha256"] == file_sha256(WEIGHTS_DIR / "attention-unet-mixture.pt")
    names = [d["name"] for d in fit["datasets"]]
    assert len(names) == 7 and all(len(d["content_hash"]) == 64 for d in fit["datasets"])
    assert all(set(r["ap"]) == set(names) for r in fit["table"])
    assert all(f"{n}:val" in MixtureMedianDetector.trained_on for n in names)
    assert set(AttentionUNetMixtureDetector.trained_on) <= set(MixtureMedianDetector.trained_on)


def test_a_broken_fit_sidecar_gets_a_clear_error(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        read_fit(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"weight": -0.5}))
    with pytest.raises(DetectorError, match=r"bad\.json.*weight"):
        MixtureMedianDetector(fit=bad)
    bad.write_text("{not json")
    with pytest.raises(DetectorError, match="not valid JSON"):
        read_fit(bad)


def _stars_and_crs(seed=11, shape=(160, 160), sky=10000.0, read_noise=5.0, n_exp=2):
    """A bright-sky frame with bright stars, half the CRs on star cores, and companions without CRs."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(read_noise ** 2 + sky)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    scene = np.full(shape, sky)
    centres = rng.uniform(12, shape[0] - 12, (10, 2))
    for y, x in centres:  # compact stars (PSF sigma 1 px), 200-2000 sigma in total
        scene += rng.uniform(200, 2000) * sigma * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 2.0) / (2.0 * np.pi)
    charge = np.zeros(shape)
    truth = np.zeros(shape, bool)
    for k in range(24):
        if k % 2:
            y, x = (centres[k % len(centres)] + rng.integers(-1, 2, 2)).astype(int)
        else:
            y, x = rng.integers(6, shape[0] - 7, 2)
        charge[y:y + 2, x:x + 1] += rng.uniform(8, 20) * sigma
        truth[y:y + 2, x:x + 1] = True

    def observe(extra):
        return (rng.poisson(scene + extra) + rng.normal(0, read_noise, shape)).astype(np.float32)

    image = observe(charge)
    exposures = np.stack([observe(0.0) for _ in range(n_exp)])
    meta = {"gain": 1.0, "read_noise": read_noise, "sky": sky}
    return Sample(id="bright-sky", image=image, exposures=exposures, meta=meta), truth


@pytest.fixture(scope="module")
def fused():
    return MixtureMedianDetector()


def test_fused_detector_uses_the_companions_where_the_single_frame_net_cannot(fused):
    sample, truth = _stars_and_crs()
    obs = sample.observation()
    score = fused.score(obs)
    assert score.shape == truth.shape and score.dtype == np.float32 and np.isfinite(score).all()
    ap_fused = ap(exact_curve(score, truth))
    ap_net = ap(exact_curve(fused.net.logits(obs), truth))
    ap_median = ap(exact_curve(fused.median.score(obs), truth))
    # CRs of 8-20 sky sigma on star cores: neither source alone finds them all, together they find more
    assert ap_fused > 0.75
    assert ap_fused > max(ap_net, ap_median) + 0.02, (ap_fused, ap_net, ap_median)
    # with weight 0 it is the single-frame net: same ranking as the net's probability
    net_only = MixtureMedianDetector(weight=0.0).score(obs)
    np.testing.assert_array_equal(net_only, fused.net.logits(obs))


def test_fused_detector_needs_companion_exposures(fused):
    sample, _ = _stars_and_crs()
    single = Sample(id="no-companions", image=sample.image, meta=sample.meta)
    with pytest.raises(DetectorError, match="no-companions.*exposures|exposures.*no-companions"):
        fused.score(single.observation())


def test_fused_detector_records_its_weight_and_net(fused):
    p = fused.params()
    assert p["weight"] == read_fit(SIDECAR)["weight"]
    assert p["net_weights_sha256"] == file_sha256(WEIGHTS_DIR / "attention-unet-mixture.pt")[:16]
    assert MixtureMedianDetector(weight=p["weight"] + 1.0).params_hash() != fused.params_hash()
