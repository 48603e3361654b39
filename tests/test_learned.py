"""Learned baselines: deepCR wrapper, crbench U-Nets (models, tiling, weights, training), Cosmic-CoNN."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crbench.errors import DetectorError  # noqa: E402
from crbench.metrics import ap, exact_curve, tpr_at_fpr  # noqa: E402
from crbench.sample import Sample  # noqa: E402

from baselines.unet import losses  # noqa: E402
from baselines.unet.data import PatchSampler, image_stats, normalize_sample_image  # noqa: E402
from baselines.unet.inference import halo_for, predict_logits  # noqa: E402
from baselines.unet.models import build_model, count_parameters, fuse_batchnorm  # noqa: E402
from baselines.unet.weights import WEIGHTS_DIR, file_sha256, load_weights, save_weights, sidecar_path  # noqa: E402


from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _sky_with_crs(shape=(128, 160), n_crs=25, seed=3, sky=300.0, rn=5.0):
    """Sky + Poisson/read noise image in electrons with bright compact CR hits; returns (image, truth)."""
    rng = np.random.default_rng(seed)
    img = rng.poisson(sky, shape).astype(np.float64) + rng.normal(0, rn, shape)
    truth = np.zeros(shape, bool)
    h, w = shape
    for _ in range(n_crs):
        y, x = rng.integers(3, h - 4), rng.integers(3, w - 4)
        size = rng.integers(1, 3)
        img[y:y + size, x:x + size] += rng.uniform(1500, 4000)
        truth[y:y + size, x:x + size] = True
    return img.astype(np.float32), truth


def _set_bn_stats(model, seed=0):
    """Give BatchNorm layers data-driven running statistics (a few train-mode passes on noise with
    structure) so fusion and tiling are tested on a net whose output varies across the image."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(2, 1, 64, 64, generator=g)
            x[:, :, 20:23, 30:32] += 20
            model(x)
    return model.eval()


# ----------------------------------------------------------------------------- deepCR wrapper
@pytest.fixture(scope="module")
def deepcr_detector():
    pytest.importorskip("deepCR")
    from baselines.deepcr_detector import DeepCRDetector

    return DeepCRDetector()


def test_deepcr_finds_injected_crs(deepcr_detector):
    img, truth = _sky_with_crs()
    score = deepcr_detector.score(Sample(id="inj", image=img).observation())
    assert score.dtype == np.float32 and score.shape == img.shape
    assert 0.0 <= score.min() and score.max() <= 1.0
    curve = exact_curve(score, truth)
    assert ap(curve) > 0.9
    assert np.median(score[truth]) > 0.5
    assert np.percentile(score[~truth], 99) < 0.5


def test_deepcr_unknown_model_is_a_clear_error():
    pytest.importorskip("deepCR")
    from baselines.deepcr_detector import DeepCRDetector

    with pytest.raises(DetectorError, match="unknown model 'HST-XYZ'"):
        DeepCRDetector(model="HST-XYZ")


def test_deepcr_unregistered_per_filter_weights_load():
    pytest.importorskip("deepCR")
    from baselines.deepcr_detector import DeepCRDetector

    img, truth = _sky_with_crs(seed=5)
    score = DeepCRDetector(model="ACS-WFC-F606W").score(Sample(id="inj", image=img).observation())
    assert ap(exact_curve(score, truth)) > 0.9


def test_deepcr_inference_builds_no_autograd_graph(deepcr_detector):
    img, _ = _sky_with_crs(shape=(64, 64))
    assert not any(p.requires_grad for p in deepcr_detector.net.maskNet.parameters())
    out = deepcr_detector.probability(img)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_deepcr_own_trainer_still_fails_on_current_torch():
    """Why crbench trains deepCR-2-32 itself: deepCR 0.3.1's trainer passes ``verbose=True`` to
    ``ReduceLROnPlateau``, which current torch rejects. If this starts passing, switch
    ``deepcr-retrained`` back to deepCR's own training API."""
    pytest.importorskip("deepCR")
    from deepCR.training import train

    img = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    with pytest.raises(TypeError, match="verbose"):
        train(img, np.zeros_like(img), hidden=32, epoch=1, batch_size=1, use_tqdm=False, verbose=False)


# ----------------------------------------------------------------------------- models
def _shape_census(model) -> list[tuple[tuple[int, ...], int]]:
    """Sorted (parameter shape, how many tensors have it): the layer structure, independent of names."""
    from collections import Counter

    return sorted(Counter(tuple(p.shape) for p in model.parameters()).items())


def test_deepcr_2_32_matches_the_net_deepcr_builds_for_acs_wfc():
    """crbench's ``deepcr-2-32`` is compared with the network the installed deepCR 0.3.1 builds for
    ``deepCR(mask='ACS-WFC')`` (its ``UNet2SigmoidBatchNorm(1, 1, 32)``): same parameter count and the
    same tensor shapes, so the re-implementation has the published layers, not just the same total."""
    pytest.importorskip("deepCR")
    from deepCR import deepCR

    theirs = deepCR(mask="ACS-WFC", device="CPU").maskNet
    ours = build_model("deepcr-2-32")
    assert count_parameters(ours) == sum(p.numel() for p in theirs.parameters())
    assert _shape_census(ours) == _shape_census(theirs)


def test_deepcr_weight_norm_variant_differs_only_by_normalisation():
    """deepCR's other 2-32 net (``deepCR.unet.UNet2Sigmoid``, weight-norm: used for ``WFC3-UVIS`` and
    for every model loaded by path) has fewer parameters than the BatchNorm net. The difference is
    exactly the normalisation: BatchNorm's affine weight and bias (2 per channel of the six 3x3
    convs) replaced by weight-norm's gain ``weight_g`` (1 per output channel of the same convs)."""
    pytest.importorskip("deepCR")
    import warnings

    from deepCR.unet import UNet2Sigmoid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's weight_norm deprecation warning
        wn = UNet2Sigmoid(1, 1, 32)
    ours = build_model("deepcr-2-32")
    bn_affine = sum(m.weight.numel() + m.bias.numel() for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d))
    gains = sum(p.numel() for n, p in wn.named_parameters() if n.endswith("weight_g"))
    assert bn_affine == 2 * gains  # six convs: 32 + 32 + 64 + 64 + 32 + 32 channels
    assert sum(p.numel() for p in wn.parameters()) == count_parameters(ours) - bn_affine + gains


def test_attention_unet_paper_size_and_gate_switch():
    gated = build_model("attention-unet", width=32, levels=3)
    plain = build_model("unet-nogate", width=32, levels=3)
    assert count_parameters(gated) == 472_695  # Bhavanam et al. 2022
    assert count_parameters(plain) == 467_233  # the 3-level 32-64-128 base net
    assert gated.gates is not None and len(gated.gates) == 2
    assert plain.gates is None


@pytest.mark.parametrize("arch", ["deepcr-2-32", "attention-unet", "unet-nogate"])
@pytest.mark.parametrize("levels", [2, 3, 4])
def test_unet_forward_shapes(arch, levels):
    model = build_model(arch, width=4, levels=levels).eval()
    x = torch.randn(2, 1, 16 * 3, 16 * 5)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape


def test_build_model_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet")
    with pytest.raises(ValueError, match="unknown option"):
        build_model("attention-unet", depth=3)


def test_batchnorm_fusion_preserves_output():
    model = _set_bn_stats(build_model("attention-unet", width=8))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        ref = model(x)
        import copy

        fused = fuse_batchnorm(copy.deepcopy(model))
        out = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(ref, out, atol=1e-4)


def test_batchnorm_fusion_refuses_a_batchnorm_without_running_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2, track_running_stats=False))
    with torch.no_grad(), pytest.raises(ValueError, match="no running statistics"):
        fuse_batchnorm(model.eval())


# ----------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("arch, levels", [("attention-unet", 3), ("deepcr-2-32", 2), ("unet-nogate", 4)])
def test_tiled_equals_untiled_everywhere(arch, levels):
    model = _set_bn_stats(build_model(arch, width=6, levels=levels), seed=levels)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(141, 163)).astype(np.float32)  # not a multiple of the alignment
    x[50:53, 60:62] += 30
    whole = predict_logits(model, x, tile=None)
    tiled = predict_logits(model, x, tile=40)
    assert whole.shape == x.shape and tiled.dtype == np.float32
    assert whole.std() > 1e-3  # a net with a constant output would make this test vacuous
    assert np.max(np.abs(whole - tiled)) < 1e-4
    # a seam would show up as a jump along tile borders; none here because the maps are equal,
    # while a tile-without-halo run does differ (the test can fail):
    assert halo_for(model) >= model.receptive_radius


def test_tiling_without_halo_would_seam():
    """Sanity check of the test above: cropping tiles without a halo changes the output."""
    model = _set_bn_stats(build_model("attention-unet", width=6))
    x = np.random.default_rng(1).normal(size=(96, 96)).astype(np.float32)
    whole = predict_logits(model, x, tile=None)
    with torch.no_grad():
        left = model(torch.from_numpy(np.ascontiguousarray(x[:, :48]))[None, None])[0, 0].numpy()
    assert np.max(np.abs(left[:, -4:] - whole[:, 44:48])) > 1e-3


# ----------------------------------------------------------------------------- weights
def test_weights_round_trip(tmp_path):
    model = _set_bn_stats(build_model("attention-unet", width=4))
    path = tmp_path / "net.pt"
    sha = save_weights(path, model, "attention-unet")
    assert len(sha) == 64
    loaded, meta = load_weights(path, expect_arch="attention-unet")
    assert meta["arch"] == "attention-unet" and meta["config"]["width"] == 4
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_corrupted_weights_error_names_the_file(tmp_path):
    model = build_model("attention-unet", width=4)
    path = tmp_path / "broken.pt"
    save_weights(path, model, "attention-unet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DetectorError, match="broken.pt.*corrupt"):
        load_weights(path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all" * 10)
    with pytest.raises(DetectorError, match="garbage.pt"):
        load_weights(garbage)
    with pytest.raises(DetectorError, match="missing.pt.*does not exist"):
        load_weights(tmp_path / "missing.pt")


def test_wrong_architecture_weights_error_names_the_file(tmp_path):
    from baselines.unet.detector import PlainUNetDetector

    path = tmp_path / "gated.pt"
    save_weights(path, build_model("attention-unet", width=4), "attention-unet")
    with pytest.raises(DetectorError, match="gated.pt.*'attention-unet'.*needs 'unet-nogate'"):
        PlainUNetDetector(weights=path)
    # a file whose tensors do not fit the architecture it declares
    blob = torch.load(path, weights_only=True)
    blob["config"]["gates"] = False
    lying = tmp_path / "lying.pt"
    torch.save(blob, lying)
    with pytest.raises(DetectorError, match="lying.pt.*does not fit"):
        load_weights(lying)
    # a plain state dict (not a crbench weight file)
    plain = tmp_path / "plain.pt"
    torch.save(build_model("unet-nogate", width=4).state_dict(), plain)
    with pytest.raises(DetectorError, match="plain.pt.*not a crbench"):
        load_weights(plain)


def test_sidecar_hash_mismatch_is_detected(tmp_path):
    path = tmp_path / "net.pt"
    save_weights(path, build_model("unet-nogate", width=4), "unet-nogate")
    sidecar_path(path).write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(DetectorError, match="net.pt.*sidecar"):
        load_weights(path)


# ----------------------------------------------------------------------------- data and losses
def test_normalisation_is_invariant_to_sky_and_gain():
    img, _ = _sky_with_crs(shape=(64, 64))
    a = normalize_sample_image(img)
    b = normalize_sample_image(img * 2.5 + 1000.0)
    assert np.allclose(a, b, atol=1e-4)
    c, s = image_stats(img)
    assert abs(c - 300) < 5 and 15 < s < 22  # sqrt(300 + 25) ~ 18


def test_median_weighted_bce_weights_only_negatives():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]])
    y = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    valid = torch.ones_like(y)
    w = torch.zeros_like(y)
    full = losses.bce(logits, y, valid)
    assert torch.allclose(losses.median_weighted_bce(logits, y, valid, w, alpha=1.0), full)
    only_pos = losses.median_weighted_bce(logits, y, valid, w, alpha=0.0)
    expected = torch.nn.functional.softplus(-logits[0, 0, 0, 0]) / 4
    assert torch.allclose(only_pos, expected)
    # ignored pixels do not count
    valid2 = valid.clone()
    valid2[..., 1, 1] = 0
    assert not torch.allclose(losses.bce(logits, y, valid2), full)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from crbench.recipes import build_dataset

    root = tmp_path_factory.mktemp("ds") / "tiny"
    return build_dataset("sim-basic", root, n_images=6, shape=(96, 96), exposures=3, progress=False)


def test_patch_sampler_is_deterministic_and_respects_ignore(tiny_dataset):
    a = PatchSampler(tiny_dataset, patch=64, batch=3, seed=7).next_batch()
    b = PatchSampler(tiny_dataset, patch=64, batch=3, seed=7).next_batch()
    c = PatchSampler(tiny_dataset, patch=64, batch=3, seed=8).next_batch()
    for k in a:
        assert a[k].shape == (3, 1, 64, 64) and a[k].dtype == np.float32
        assert np.array_equal(a[k], b[k])
    assert not np.array_equal(a["x"], c["x"])
    assert set(np.unique(a["valid"])) <= {0.0, 1.0}


def test_tiny_training_reduces_loss_and_reproduces(tiny_dataset, tmp_path):
    from baselines.unet.detector import AttentionUNetDetector
    from baselines.unet.train import train_model

    kw = dict(minutes=0, seed=3, steps=18, progress=False, loss="bce", patch=48, batch=4, epoch_steps=6,
              width=4, val_crop=0)
    p1 = train_model("attention-unet", tiny_dataset, out=tmp_path / "a", **kw)
    p2 = train_model("attention-unet", tiny_dataset, out=tmp_path / "b", **kw)
    log1 = json.loads(p1.with_suffix(".json").read_text())
    log2 = json.loads(p2.with_suffix(".json").read_text())
    losses_ = [e["train_loss"] for e in log1["log"]]
    assert len(losses_) == 3 and losses_[-1] < losses_[0]
    assert [e["val_ap"] for e in log1["log"]] == [e["val_ap"] for e in log2["log"]]
    # same seed and steps in another folder: byte-identical weight files, hence the same recorded hash
    assert log1["sha256"] == log2["sha256"] == file_sha256(p1) == file_sha256(p2)
    side = log1
    for key in ("command", "sha256", "training_data", "seed", "minutes", "steps", "log"):
        assert key in side
    assert side["training_data"]["dataset"] == "sim-basic" and side["training_data"]["split"] == "train"
    assert "--steps 18" in side["command"] and "--seed 3" in side["command"]
    assert "--minutes" not in side["command"]  # the step count set the budget; no minutes to record
    det = AttentionUNetDetector(weights=p1)
    assert det.trained_on == ("sim-basic:train", "sim-basic:val")
    sample = tiny_dataset.load(tiny_dataset.ids("test")[0])
    score = det.score(sample.observation())
    assert score.shape == sample.shape and score.dtype == np.float32
    assert np.all((score >= 0) & (score <= 1))


def test_crbench_train_cli_passes_steps_loss_and_architecture(tmp_path, capsys):
    from crbench.cli import main
    from crbench.recipes import build_dataset

    ds = build_dataset("sim-basic", tmp_path / "ds", n_images=3, shape=(128, 128), exposures=3, progress=False)
    rc = main(["train", "deepcr-retrained", "--dataset", str(ds.root), "--minutes", "1", "--steps", "3",
               "--loss", "focal", "--width", "4", "--levels", "2", "--no-progress", "--out", str(tmp_path / "w")])
    assert rc == 0
    side = json.loads((tmp_path / "w" / "deepcr-retrained.json").read_text())
    assert side["steps"] == 3 and side["loss"] == "focal"
    assert side["config"]["width"] == 4 and side["config"]["levels"] == 2 and not side["config"]["gates"]
    assert "--steps 3" in side["reproduce_command"] and "--loss focal" in side["reproduce_command"]
    assert "wrote" in capsys.readouterr().out
    assert main(["train", "attention-unet", "--dataset", str(ds.root), "--minutes", "1", "--steps", "0"]) != 0
    assert "--steps must be positive" in capsys.readouterr().err


# ----------------------------------------------------------------------------- shipped weights
@pytest.mark.parametrize("name", ["attention-unet", "unet-nogate", "deepcr-retrained"])
def test_shipped_weights_load_and_detect(name):
    assert (WEIGHTS_DIR / f"{name}.pt").exists(), f"shipped weights {name}.pt missing from {WEIGHTS_DIR}"
    from crbench.detectors.registry import get_detector

    det = get_detector(name)
    side = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    assert side["sha256"] and side["command"] and side["log"]
    assert all(not t.endswith(":test") for t in det.trained_on) and det.trained_on
    img, truth = _sky_with_crs(seed=11)
    score = det.score(Sample(id="inj", image=img).observation())
    assert score.dtype == np.float32 and score.shape == img.shape
    assert ap(exact_curve(score, truth)) > 0.5
    assert tpr_at_fpr(exact_curve(score, truth), 1e-2) > 0.5


# ----------------------------------------------------------------------------- Cosmic-CoNN plugin
def test_cosmic_conn_plugin_pads_edges_and_keeps_logging():
    pytest.importorskip("cosmic_conn", reason="optional GPL plugin cosmic-conn not installed")
    from baselines.cosmic_conn_detector import CosmicCoNNDetector

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    det = CosmicCoNNDetector()
    assert (list(root.handlers), root.level) == before
    img, truth = _sky_with_crs(shape=(100, 90), seed=2)  # 100 % 16 = 4 rows, 90 % 16 = 10 cols
    img[-2:, 40:42] += 3000
    truth[-2:, 40:42] = True
    img[50:52, -3:-1] += 3000
    truth[50:52, -3:-1] = True
    score = det.score(Sample(id="edge", image=img).observation())
    assert score.shape == img.shape and score.dtype == np.float32
    assert score[-2:, 40:42].min() > 0.5 and score[50:52, -3:-1].min() > 0.5


def test_cosmic_conn_unknown_model():
    pytest.importorskip("cosmic_conn", reason="optional GPL plugin cosmic-conn not installed")
    from baselines.cosmic_conn_detector import CosmicCoNNDetector

    with pytest.raises(DetectorError, match="unknown model"):
        CosmicCoNNDetector(model="JWST")


# ------------------------------------------------------------- non-finite network outputs are not hidden
@pytest.mark.parametrize("name, bad", [("deepcr", np.nan), ("cosmic-conn", np.inf)])
def test_wrapper_non_finite_output_reaches_the_harness_check(name, bad):
    """A NaN/inf input pixel makes the network's output non-finite around it; the wrapper must pass
    that on (not turn it into a confident 0 or 1) so that the harness names the sample."""
    pytest.importorskip("deepCR" if name == "deepcr" else "cosmic_conn")
    from crbench.detectors.registry import get_detector
    from crbench.harness import run_detector

    img, _ = _sky_with_crs()
    img = img[:64, :64].copy()
    img[30, 30] = bad
    det = get_detector(name)
    score = det.probability(img)
    assert not np.isfinite(score).all()
    with pytest.raises(DetectorError, match=r"NaN or inf values for sample 'bad-pixel'"):
        run_detector(det, Sample(id="bad-pixel", image=img))
