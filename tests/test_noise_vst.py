"""The variance-stabilised noise-model input (``--normalisation noise-vst``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.data import (
    NORMALIZATIONS,
    SOFTENING,
    PatchSampler,
    normalization_method,
    normalization_record,
    normalize_noise_model,
    normalize_noise_vst,
    normalize_observation,
)

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _frame(level, *, rn=5.0, sky=1000.0, gain=1.0, shape=(400, 400), seed=0):
    """Sky ``sky`` e- plus a flat source of ``level - sky`` e-, with Poisson and read noise."""
    rng = np.random.default_rng(seed)
    img = rng.poisson(level, shape).astype(np.float64) + rng.normal(0.0, rn, shape)
    return np.round(img / gain) * gain


@pytest.mark.parametrize("sky,rn,gain", [(1000.0, 5.0, 1.0), (10000.0, 40.0, 1.0), (100.0, 100.0, 20.0)])
def test_noise_is_one_unit_at_every_brightness(sky, rn, gain):
    # the background sets the centre: on a frame of pure sky the median is the sky level; the same
    # centre is then applied to frames with a flat source 0-1000 sigma above it
    sigma = np.sqrt(rn ** 2 + sky + gain ** 2 / 12.0)
    for k in (0.0, 3.0, 30.0, 300.0, 1000.0):
        img = _frame(sky + k * sigma, rn=rn, sky=sky, gain=gain)
        x = normalize_noise_vst(img, gain=gain, read_noise=rn, sky=sky, center=sky) * SOFTENING
        assert 0.9 < x.std() < 1.1, (k, x.std())
        # the asinh input's noise shrinks with the source's brightness (the reason for this transform)
        z = normalize_noise_model(img, gain=gain, read_noise=rn, sky=sky, center=sky)
        if k >= 300:
            assert z.std() * SOFTENING < 0.1 * x.std() * SOFTENING


def test_faint_pixels_get_the_noise_model_input_and_a_cr_on_a_star_keeps_its_step():
    sky, rn = 10000.0, 5.0
    sigma = np.sqrt(rn ** 2 + sky + 1 / 12.0)
    img = np.full((3, 3), sky)
    img[0, 0] = sky + 0.5 * sigma
    img[0, 1] = sky - 2.0 * sigma
    x = normalize_noise_vst(img, gain=1.0, read_noise=rn, sky=sky, center=sky)
    z = normalize_noise_model(img, gain=1.0, read_noise=rn, sky=sky, center=sky)
    assert x[0, 0] == pytest.approx(z[0, 0], abs=0.01) and x[0, 1] == pytest.approx(-2.0 / SOFTENING, rel=1e-5)
    assert x[1, 1] == 0.0
    # a 10-sigma CR on the sky and on a 50-sigma star: the step, in units of the local photon noise,
    # is the same; with the asinh input it is eight times smaller on the star
    on_sky = np.array([[sky, sky + 10 * sigma]])
    on_star = np.array([[sky + 50 * sigma, sky + 60 * sigma]])
    local = np.sqrt(sigma ** 2 + 50 * sigma)  # photon noise of the star pixel, e-
    step_sky = np.diff(normalize_noise_vst(on_sky, gain=1.0, read_noise=rn, sky=sky, center=sky))[0, 0]
    step_star = np.diff(normalize_noise_vst(on_star, gain=1.0, read_noise=rn, sky=sky, center=sky))[0, 0]
    assert step_star * SOFTENING == pytest.approx(10 * sigma / local, rel=0.1)
    assert step_star > 0.5 * step_sky
    asinh_sky = np.diff(normalize_noise_model(on_sky, gain=1.0, read_noise=rn, sky=sky, center=sky))[0, 0]
    asinh_star = np.diff(normalize_noise_model(on_star, gain=1.0, read_noise=rn, sky=sky, center=sky))[0, 0]
    assert asinh_star < 0.15 * asinh_sky


def test_record_method_and_observation_path():
    assert "noise-vst" in NORMALIZATIONS
    rec = normalization_record("noise-vst")
    assert rec["method"] == "noise-vst" and normalization_method(rec) == "noise-vst"
    img = _frame(1000.0, shape=(32, 32))
    meta = {"gain": 1.0, "read_noise": 5.0, "sky": 1000.0}
    x = normalize_observation("noise-vst", img, meta)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_array_equal(x, normalize_noise_vst(img, gain=1.0, read_noise=5.0, sky=1000.0))
    bad = img.copy()
    bad[0, 0] = np.nan
    assert np.isfinite(normalize_observation("noise-vst", bad, meta)).all()


def test_train_and_detect_with_the_vst_input(tmp_path):
    from baselines.unet.detector import AttentionUNetDetector
    from baselines.unet.inference import predict_logits, sigmoid
    from baselines.unet.train import main as train_main
    from crbench.recipes import build_dataset

    ds = build_dataset("sim-ground-small", tmp_path / "g", n_images=6, shape=(96, 96), progress=False)
    sampler = PatchSampler(ds, patch=64, batch=4, seed=1, normalization="noise-vst", noise_aug=True)
    batch = sampler.next_batch()
    assert np.isfinite(batch["x"]).all()
    assert train_main(["attention-unet", "--dataset", str(ds.root), "--steps", "2", "--loss", "bce", "--width", "4",
                       "--levels", "2", "--no-progress", "--normalisation", "noise-vst", "--noise-aug",
                       "--val-crop", "0", "--max-val-images", "1", "--out", str(tmp_path / "w")]) == 0
    side = json.loads((tmp_path / "w" / "attention-unet.json").read_text())
    assert side["normalization"] == "noise-vst" and "--normalisation noise-vst" in side["reproduce_command"]
    det = AttentionUNetDetector(weights=tmp_path / "w" / "attention-unet.pt")
    assert det.normalization == "noise-vst"
    sample = ds.load(ds.ids("test")[0])
    obs = sample.observation()
    score = det.score(obs)
    with torch.no_grad():
        ref = sigmoid(predict_logits(det.model, normalize_observation("noise-vst", obs.image, obs.meta,
                                                                       obs.bad_pixels()), tile=512))
    assert np.array_equal(score, ref)
