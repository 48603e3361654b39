"""The truth rule applied again after the noise-regime augmentation (``--truth-at-noise``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.data import PatchSampler
from baselines.unet.noise_aug import truth_at_regime
from crbench.errors import DatasetError
from crbench.truth import DEFAULT_RULE, apply_truth_rule

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)

LEVEL = 200.0


def _track(charges, noise=None, seed=0):
    """A flat 200 e- background (optionally noisy) with a horizontal CR of the given charges."""
    img = np.full((40, 40), LEVEL)
    if noise:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    truth = np.zeros(img.shape, bool)
    truth[20, 10:10 + len(charges)] = True
    img[20, 10:10 + len(charges)] += charges
    return img, truth


def test_noiseless_patch_matches_the_rule_on_exact_significance():
    charges = np.array([30.0, 200.0, 400.0, 5000.0, 400.0, 200.0, 30.0])
    img, truth = _track(charges)
    for rn, sky, gain in [(5.0, 200.0, 1.0), (40.0, 2200.0, 4.0), (100.0, 10200.0, 20.0)]:
        got_truth, got_halo = truth_at_regime(img, truth, level=LEVEL, before=(1.0, 1.0, 1.0),
                                              read_noise=rn, sky=sky, gain=gain)
        sigma = np.sqrt(rn ** 2 + sky + gain ** 2 / 12.0)  # no source under the CR
        sig = np.zeros(img.shape)
        sig[truth] = charges / sigma
        ref_truth, ref_halo = apply_truth_rule(sig, truth, DEFAULT_RULE)
        assert np.array_equal(got_truth, ref_truth & truth), (rn, sky, gain)
        assert np.array_equal(got_halo, ref_halo & truth & ~ref_truth), (rn, sky, gain)
    # at read noise 100 e-, sky 10,200 e- (sigma 142 e-) only the 5000 e- and 400 e- (2.8 sigma) pixels
    # stay truth; the 200 e- wings (1.4 sigma) are halo and the 30 e- ends (under 1 sigma) negatives
    t, h = truth_at_regime(img, truth, level=LEVEL, before=(1.0, 1.0, 1.0), read_noise=100.0, sky=10200.0, gain=20.0)
    assert t[20, 10:17].tolist() == [False, False, True, True, True, False, False]
    assert h[20, 10:17].tolist() == [False, True, False, False, False, True, False]


def test_unchanged_noise_keeps_the_truth_despite_estimation_noise():
    # a truth pixel passed the rule at the patch's own noise: the estimate's floor keeps it
    charges = np.array([55.0, 160.0, 3000.0, 160.0, 55.0])
    for seed in range(10):
        img, truth = _track(charges, noise=20.0, seed=seed)
        t, h = truth_at_regime(img, truth, level=LEVEL, before=(14.0, 200.0, 1.0), read_noise=14.0, sky=200.0,
                               gain=1.0)
        assert np.array_equal(t, truth) and not h.any()


def test_empty_truth_and_bad_shape():
    img, truth = _track([100.0])
    t, h = truth_at_regime(img, np.zeros_like(truth), level=LEVEL, before=(5, 5, 1), read_noise=5, sky=5, gain=1)
    assert not t.any() and not h.any()
    with pytest.raises(ValueError, match="shape"):
        truth_at_regime(img, truth[:-1], level=LEVEL, before=(5, 5, 1), read_noise=5, sky=5, gain=1)


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    from crbench.recipes import build_dataset

    return build_dataset("sim-ground-small", tmp_path_factory.mktemp("tan") / "g", n_images=6, shape=(96, 96),
                         exposure_time=3000.0, progress=False)


def test_sampler_only_shrinks_the_truth_and_draws_nothing(ground):
    kw = dict(patch=64, batch=16, seed=2, normalization="noise-model", noise_aug=True)
    plain = PatchSampler(ground, **kw).next_batch()
    on = PatchSampler(ground, truth_at_noise=True, **kw).next_batch()
    assert np.array_equal(on["x"], plain["x"]) and np.array_equal(on["weight"], plain["weight"])
    assert (on["y"] <= plain["y"]).all()
    assert (on["y"] < plain["y"]).any(), "some CR pixels must fail the rule at the drawn regimes"
    lost = (plain["y"] > 0) & (on["y"] == 0)
    # a pixel that lost truth is either halo (out of the loss) or a negative; nothing else leaves the loss
    assert (on["valid"] <= plain["valid"]).all()
    assert not ((plain["valid"] > on["valid"]) & ~lost).any()
    assert (lost & (on["valid"] == 0)).any()
    with pytest.raises(DatasetError, match="noise_aug"):
        PatchSampler(ground, patch=64, normalization="noise-model", truth_at_noise=True)


def test_truth_at_noise_is_recorded_and_reproduced(ground, tmp_path, capsys):
    from baselines.unet.train import main as train_main
    from crbench.cli import main

    common = ["--steps", "2", "--loss", "bce", "--width", "4", "--levels", "2", "--no-progress",
              "--normalisation", "noise-model", "--val-crop", "0", "--max-val-images", "1"]
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--noise-aug", "--truth-at-noise",
                       "--out", str(tmp_path / "a"), *common]) == 0
    side = json.loads((tmp_path / "a" / "attention-unet.json").read_text())
    assert side["augmentation"]["truth_at_noise"]["rule"] == DEFAULT_RULE.to_dict()
    assert "--truth-at-noise" in side["reproduce_command"]
    cmd = side["reproduce_command"].split()[3:]
    cmd[cmd.index("--out") + 1] = str(tmp_path / "b")
    assert train_main(cmd) == 0
    assert json.loads((tmp_path / "b" / "attention-unet.json").read_text())["sha256"] == side["sha256"]
    assert main(["train", "attention-unet", "--dataset", str(ground.root), "--noise-aug", "--truth-at-noise",
                 "--out", str(tmp_path / "c"), *common]) == 0
    assert "truth_at_noise" in json.loads((tmp_path / "c" / "attention-unet.json").read_text())["augmentation"]
    capsys.readouterr()
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--truth-at-noise",
                       "--out", str(tmp_path / "d"), *common]) == 2
    assert "--noise-aug" in capsys.readouterr().err
