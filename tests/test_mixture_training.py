"""Mixture training, noise-regime augmentation and the noise-model normalisation of the crbench nets."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.data import (
    SOFTENING,
    PatchSampler,
    normalization_method,
    normalization_record,
    normalize_noise_model,
    normalize_observation,
    normalize_sample_image,
)
from baselines.unet.noise_aug import (
    EXTRA_SKY_RANGE,
    GAIN_RANGE,
    READ_NOISE_RANGE,
    NoiseRegime,
    apply_noise_regime,
    draw_noise_regime,
)
from baselines.unet.weights import WEIGHTS_DIR, file_sha256, load_weights, save_weights
from crbench.errors import DetectorError
from crbench.sample import Sample

#: (gain e-/ADU, read noise e-, sky e-): HST-like, DECam-like, a high-gain ground camera, a faint sky
#: with a huge read noise.
REGIMES = [(1.0, 3.0, 10.0), (4.0, 7.0, 18000.0), (39.4, 38.0, 1680.0), (0.5, 100.0, 1.0), (12.0, 20.0, 300.0)]


from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _noise_frame(gain, rn, sky, shape=(256, 256), seed=0):
    """Pure noise frame in electrons: Poisson sky + Gaussian read noise, quantised to the ADU step."""
    rng = np.random.default_rng(seed)
    img = rng.poisson(sky, shape) + rng.normal(0.0, rn, shape)
    return (np.round(img / gain) * gain).astype(np.float32)


def _significance(x):
    """Undo the asinh compression: the linear significance the net's input encodes."""
    return np.sinh(x.astype(np.float64)) * SOFTENING


# ----------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("gain, rn, sky", REGIMES)
def test_noise_model_normalisation_gives_unit_variance_on_pure_noise(gain, rn, sky):
    img = _noise_frame(gain, rn, sky)
    z = _significance(normalize_noise_model(img, gain=gain, read_noise=rn, sky=sky))
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1.0) < 0.05
    # the image-stats normalisation also whitens pure noise (it measures the MAD), as long as the
    # ADU step is small against the noise; on a coarse grid (12 e-/ADU under 27 e- of noise) the MAD
    # of the quantised values is off by a large factor, which the noise model does not suffer from
    z_old = _significance(normalize_sample_image(img))
    if gain < 0.25 * np.sqrt(rn ** 2 + sky):
        assert abs(z_old.std() - 1.0) < 0.1


def test_fixed_significance_bump_maps_to_the_same_input_in_every_regime():
    """A hit 8 sigma above the background (sigma from the noise model) becomes the same net input,
    asinh(8 / softening), whatever the gain, read noise and sky."""
    expected = np.arcsinh(8.0 / SOFTENING)
    medians = []
    for k, (gain, rn, sky) in enumerate(REGIMES):
        img = _noise_frame(gain, rn, sky, seed=10 + k).astype(np.float64)
        sigma = np.sqrt(rn ** 2 + sky + gain ** 2 / 12.0)
        ys, xs = np.mgrid[4:256:8, 4:256:8]  # 1024 isolated one-pixel bumps
        img[ys, xs] += 8.0 * sigma
        x = normalize_noise_model(img.astype(np.float32), gain=gain, read_noise=rn, sky=sky)
        medians.append(float(np.median(x[ys, xs])))
    assert np.allclose(medians, expected, atol=0.03), medians
    assert max(medians) - min(medians) < 0.04


def test_noise_model_counts_dark_current_and_subtracts_the_image_level():
    """The simulated presets record the sky without the dark current; the normaliser's background
    (median) and noise (sky + dark) must both include it, or a 300 e- dark leaves a 5-sigma offset."""
    gain, rn, sky, dark = 39.4, 38.0, 1680.0, 300.0
    img = _noise_frame(gain, rn, sky + dark, seed=4)
    meta = {"gain": gain, "read_noise": rn, "sky": sky, "dark": dark}
    z = _significance(normalize_observation("noise-model", img, meta))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    # no sky in the meta: the image median stands in for it
    z2 = _significance(normalize_observation("noise-model", img, {"gain": gain, "read_noise": rn}))
    assert abs(z2.std() - 1.0) < 0.05


def test_normalization_method_of_weight_records():
    legacy = {"method": "asinh((image - median) / (1.4826 MAD * softening))", "softening": 5.0}
    assert normalization_method(None) == "image-stats"
    assert normalization_method({}) == "image-stats"
    assert normalization_method(legacy) == "image-stats"
    assert normalization_method(normalization_record("noise-model")) == "noise-model"
    # retraining with the default writes the legacy record unchanged
    assert normalization_record("image-stats") == legacy


# ----------------------------------------------------------------------------- shipped weights unchanged
@pytest.mark.parametrize("name", ["attention-unet", "unet-nogate", "deepcr-retrained"])
def test_shipped_weights_keep_the_image_stats_path(name):
    from baselines.unet.detector import detector_for
    from baselines.unet.inference import predict_logits, sigmoid

    path = WEIGHTS_DIR / f"{name}.pt"
    side = json.loads(path.with_suffix(".json").read_text())
    assert file_sha256(path) == side["sha256"]  # the file itself is untouched
    _, meta = load_weights(path)
    assert normalization_method(meta.get("normalization")) == "image-stats"
    det = detector_for(name)
    assert det.normalization == "image-stats"
    if name != "attention-unet":
        return
    # the score is the pre-change code path: image median/MAD normalisation, then the fused net
    img = _noise_frame(2.0, 4.0, 110.0, shape=(96, 80), seed=1)
    img[40:42, 30] += 3000.0
    meta_obs = {"gain": 2.0, "read_noise": 4.0, "sky": 100.0}  # a noise-model net would use these
    score = det.score(Sample(id="s", image=img, meta=meta_obs).observation())
    with torch.no_grad():
        ref = sigmoid(predict_logits(det.model, normalize_sample_image(img, None), tile=512))
    assert np.array_equal(score, ref)


def test_unknown_normalisation_in_a_weight_file_is_a_clear_error(tmp_path):
    from baselines.unet.detector import AttentionUNetDetector
    from baselines.unet.models import build_model

    path = tmp_path / "w.pt"
    save_weights(path, build_model("attention-unet", width=4, levels=2), "attention-unet")
    blob = torch.load(path, weights_only=True)
    blob["normalization"] = {"method": "per-pixel-zscore"}
    torch.save(blob, path)
    with pytest.raises(DetectorError, match=r"w\.pt.*unknown normalisation method 'per-pixel-zscore'"):
        AttentionUNetDetector(weights=path)


# ----------------------------------------------------------------------------- noise augmentation
def test_noise_regime_draws_are_log_uniform_within_the_ranges():
    rng = np.random.default_rng(0)
    draws = [draw_noise_regime(rng) for _ in range(2000)]
    for attr, (lo, hi) in (("read_noise", READ_NOISE_RANGE), ("gain", GAIN_RANGE),
                           ("extra_sky", EXTRA_SKY_RANGE)):
        v = np.log([getattr(d, attr) for d in draws])
        assert v.min() >= np.log(lo) and v.max() <= np.log(hi)
        # log-uniform: the median of the logs sits half-way between the log bounds
        assert abs(np.median(v) - 0.5 * (np.log(lo) + np.log(hi))) < 0.1 * (np.log(hi) - np.log(lo))
    assert (READ_NOISE_RANGE, GAIN_RANGE, EXTRA_SKY_RANGE) == ((2.0, 100.0), (0.5, 20.0), (1.0, 10000.0))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_noise_aug_patch_is_on_the_adu_grid_with_the_drawn_noise(seed):
    rng = np.random.default_rng(seed)
    regime = draw_noise_regime(rng)
    blank = np.full((256, 256), 50.0, np.float32)  # noiseless, own read noise 0
    out, new = apply_noise_regime(blank, regime, rng, read_noise=0.0, sky=50.0)
    g = regime.gain
    assert new == {"gain": g, "read_noise": regime.read_noise, "sky": 50.0 + regime.extra_sky,
                   "added_sky": regime.extra_sky}
    steps = out.astype(np.float64) / g
    assert np.allclose(steps, np.round(steps), atol=1e-3 * max(1.0, np.abs(steps).max() / 1e3))
    assert abs(out.mean() - (50.0 + regime.extra_sky)) < 5 * np.sqrt(regime.read_noise ** 2 + regime.extra_sky) / 256
    expected_std = np.sqrt(regime.read_noise ** 2 + regime.extra_sky + g ** 2 / 12.0)
    assert abs(out.std() / expected_std - 1.0) < 0.03


def test_noise_aug_read_noise_only_raised_never_lowered():
    rng = np.random.default_rng(5)
    blank = np.zeros((256, 256), np.float32)
    out, new = apply_noise_regime(blank, NoiseRegime(read_noise=30.0, gain=2.0, extra_sky=1.0), rng,
                                  read_noise=0.0, sky=0.0)
    assert abs(out.std() - np.sqrt(900.0 + 1.0 + 4.0 / 12)) < 0.6 and new["read_noise"] == 30.0
    # own read noise 200 e- is above the target: no Gaussian noise added, read noise stays 200
    out, new = apply_noise_regime(blank, NoiseRegime(read_noise=30.0, gain=2.0, extra_sky=1.0), rng,
                                  read_noise=200.0, sky=0.0)
    assert new["read_noise"] == 200.0 and out.std() < 2.0


# ----------------------------------------------------------------------------- datasets
@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    from crbench.recipes import build_dataset

    root = tmp_path_factory.mktemp("mix")
    a = build_dataset("sim-hst-acs-ex", root / "acs", size="small", n_images=3, shape=(64, 64), progress=False)
    b = build_dataset("sim-ground-small", root / "ground", n_images=10, shape=(128, 128), progress=False)
    return a, b


def test_mixture_sampler_draws_each_dataset_with_equal_probability(two_datasets):
    a, b = two_datasets
    # area-proportional sampling of the pooled samples would give ACS 1 x 64^2 / (1 x 64^2 + 6 x 128^2) = 4 %
    assert len(a.ids("train")) == 1 and len(b.ids("train")) == 6
    sampler = PatchSampler([a, b], patch=32, batch=4, seed=0, augment=False)
    assert sampler.dataset_names() == [a.name, b.name]
    counts = np.bincount([sampler.draw_item().group for _ in range(1000)], minlength=2)
    assert counts.sum() == 1000 and abs(counts[0] - 500) < 60, counts
    batch = sampler.next_batch()
    assert batch["x"].shape == (4, 1, 32, 32) and np.isfinite(batch["x"]).all()
    # a one-dataset list samples exactly as the single-dataset sampler does
    one = PatchSampler(b, patch=32, batch=3, seed=2).next_batch()
    listed = PatchSampler([b], patch=32, batch=3, seed=2).next_batch()
    assert all(np.array_equal(one[k], listed[k]) for k in one)


def test_sampler_with_noise_aug_hands_the_new_noise_to_the_normaliser(two_datasets):
    a, b = two_datasets
    sampler = PatchSampler([a, b], patch=64, batch=8, seed=1, augment=False, noise_aug=True,
                           normalization="noise-model")
    batch = sampler.next_batch()
    assert len(sampler.last_regimes) == 8
    assert {r["dataset"] for r in sampler.last_regimes} <= {a.name, b.name}
    for k in range(8):
        z = _significance(batch["x"][k, 0])
        # clipped width of the significance (sources and CRs cut; the MAD is useless on a coarse
        # ADU grid): the noise model must match the patch's new noise, and the level its background
        core = z[np.abs(z - np.median(z)) < 4.0]
        assert core.size > 0.8 * z.size
        assert 0.8 < core.std() < 1.25, (k, core.std(), sampler.last_regimes[k])
        assert abs(core.mean()) < 0.3, (k, core.mean(), sampler.last_regimes[k])


# ----------------------------------------------------------------------------- training
def test_mixture_training_sidecar_and_detector(two_datasets, tmp_path):
    from baselines.unet.detector import AttentionUNetDetector
    from baselines.unet.inference import predict_logits, sigmoid
    from baselines.unet.train import train_model

    a, b = two_datasets
    p = train_model("attention-unet", [a, b], minutes=None, seed=0, steps=3, out=tmp_path, progress=False,
                    loss="bce", patch=32, batch=2, epoch_steps=3, width=4, levels=2, val_crop=0,
                    max_val_images=1, normalization="noise-model", noise_aug=True)
    side = json.loads(p.with_suffix(".json").read_text())
    data = side["training_data"]
    assert [(d["name"], d["content_hash"], d["weight"]) for d in data["datasets"]] == \
        [(a.name, a.content_hash, 0.5), (b.name, b.content_hash, 0.5)]
    assert [d["n_val_used"] for d in data["datasets"]] == [1, 1] and data["n_val_used"] == 2
    assert side["normalization"] == "noise-model"
    assert side["augmentation"]["noise_aug"] is True
    assert side["augmentation"]["noise_aug_ranges"]["read_noise_e"] == [2.0, 100.0]
    cmd = side["reproduce_command"]
    assert cmd.count("--dataset ") == 2 and str(a.root) in cmd and str(b.root) in cmd
    assert "--normalisation noise-model" in cmd and "--noise-aug" in cmd
    _, meta = load_weights(p)
    assert meta["normalization"]["method"] == "noise-model"

    det = AttentionUNetDetector(weights=p)
    assert det.normalization == "noise-model"
    assert set(det.trained_on) == {f"{n}:{s}" for n in (a.name, b.name) for s in ("train", "val")}
    sample = b.load(b.ids("test")[0])
    obs = sample.observation()
    score = det.score(obs)
    assert score.shape == sample.shape and score.dtype == np.float32 and np.isfinite(score).all()
    assert np.all((score >= 0) & (score <= 1))
    # inference applies the noise-model normalisation with the observation's meta, not image-stats
    with torch.no_grad():
        nm = sigmoid(predict_logits(det.model, normalize_observation("noise-model", obs.image, obs.meta,
                                                                      obs.bad_pixels()), tile=512))
        st = sigmoid(predict_logits(det.model, normalize_sample_image(obs.image, obs.bad_pixels()), tile=512))
    assert np.array_equal(score, nm) and not np.array_equal(score, st)


def test_cli_mixture_comma_list_and_repeated_dataset(two_datasets, tmp_path, capsys):
    from baselines.unet.train import main as train_main
    from crbench.cli import main

    a, b = two_datasets
    common = ["--steps", "2", "--loss", "bce", "--width", "4", "--levels", "2", "--no-progress"]
    rc = main(["train", "attention-unet", "--dataset", f"{a.root},{b.root}", "--normalisation", "noise-model",
               "--noise-aug", "--out", str(tmp_path / "c"), *common])
    assert rc == 0, capsys.readouterr().err
    side = json.loads((tmp_path / "c" / "attention-unet.json").read_text())
    assert [d["name"] for d in side["training_data"]["datasets"]] == [a.name, b.name]
    assert side["normalization"] == "noise-model" and side["augmentation"]["noise_aug"] is True

    rc = train_main(["unet-nogate", "--dataset", str(a.root), "--dataset", str(b.root), "--out",
                     str(tmp_path / "m"), *common])
    assert rc == 0
    side = json.loads((tmp_path / "m" / "unet-nogate.json").read_text())
    assert [d["name"] for d in side["training_data"]["datasets"]] == [a.name, b.name]
    assert side["normalization"] == "image-stats" and side["augmentation"]["noise_aug"] is False
    assert "--normalisation image-stats" in side["reproduce_command"]

    # single dataset: the earlier sidecar fields stay as they were
    rc = main(["train", "deepcr-retrained", "--dataset", str(a.root), "--out", str(tmp_path / "s"), *common])
    assert rc == 0
    data = json.loads((tmp_path / "s" / "deepcr-retrained.json").read_text())["training_data"]
    assert data["dataset"] == a.name and data["content_hash"] == a.content_hash
    assert [d["name"] for d in data["datasets"]] == [a.name]

    assert train_main(["unet-nogate", "--dataset", f"{a.root},{a.root}", "--steps", "1", "--no-progress",
                       "--out", str(tmp_path / "d")]) == 2
    assert "given more than once" in capsys.readouterr().err


def test_validation_options_and_weight_name_are_recorded(two_datasets, tmp_path, capsys):
    """--epoch-steps / --val-crop / --max-val-images / --name reach the trainer and its recorded command,
    so the shipped mixture nets' commands rerun as they were trained; bad values are clear errors."""
    from baselines.unet.train import main as train_main
    from crbench.cli import main

    a, b = two_datasets
    common = ["--steps", "4", "--loss", "bce", "--width", "4", "--levels", "2", "--no-progress"]
    rc = main(["train", "attention-unet", "--dataset", f"{a.root},{b.root}", "--epoch-steps", "2", "--val-crop",
               "32", "--max-val-images", "1", "--name", "attention-unet-mixture", "--out", str(tmp_path / "c"),
               *common])
    assert rc == 0, capsys.readouterr().err
    side = json.loads((tmp_path / "c" / "attention-unet-mixture.json").read_text())
    assert [e["step"] for e in side["log"]] == [2, 4]  # validated every 2 steps
    assert side["hyperparameters"]["val_crop"] == 32 and side["hyperparameters"]["max_val_images"] == 1
    assert all(d["n_val_used"] == 1 for d in side["training_data"]["datasets"])
    cmd = side["reproduce_command"]
    for part in ("--epoch-steps 2", "--val-crop 32", "--max-val-images 1", "--name attention-unet-mixture"):
        assert part in cmd
    # defaults are not spelled out
    rc = train_main(["unet-nogate", "--dataset", str(a.root), "--out", str(tmp_path / "d"), *common])
    assert rc == 0
    cmd = json.loads((tmp_path / "d" / "unet-nogate.json").read_text())["reproduce_command"]
    assert "--epoch-steps" not in cmd and "--name" not in cmd
    assert train_main(["unet-nogate", "--dataset", str(a.root), "--name", "../escape", "--out",
                       str(tmp_path / "e"), *common]) == 2
    assert "expected a file stem" in capsys.readouterr().err
    assert main(["train", "unet-nogate", "--dataset", str(a.root), "--max-val-images", "0", *common]) != 0
    assert "--max-val-images must be >= 1" in capsys.readouterr().err
