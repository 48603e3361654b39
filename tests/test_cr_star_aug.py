"""Stars under CRs (``--cr-star-aug``): stars centred on CR pixels, drowned CR pixels leave the loss."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.data import SOFTENING, PatchSampler
from baselines.unet.star_aug import CR_STARS_PER_PATCH, draw_stars_on_crs
from crbench.errors import DatasetError

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _patch_with_crs(sigma: float = 10.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = 1000.0 + rng.normal(0.0, sigma, (48, 48))
    truth = np.zeros((48, 48), bool)
    truth[20, 20] = truth[20, 21] = True  # a bright CR pixel and a faint one
    img[20, 20] += 1000 * sigma
    img[20, 21] += 2 * sigma
    return img, truth


def test_no_truth_draws_nothing_and_leaves_the_stream():
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    img, truth = _patch_with_crs()
    assert draw_stars_on_crs(rng, img, np.zeros_like(truth), 10.0) is None
    assert rng.bit_generator.state == state


def test_stars_sit_on_the_cr_and_drown_only_the_faint_cr_pixel():
    sigma = 10.0
    img, truth = _patch_with_crs(sigma)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        charge, w, drowned = draw_stars_on_crs(rng, img, truth, sigma, peak_sigma_range=(200.0, 200.0),
                                               fwhm_range=(2.0, 2.0))
        # every star is centred within 1 px of a truth pixel: the stars' brightest pixel is next to the CR
        y, x = np.unravel_index(np.argmax(charge), charge.shape)
        assert abs(y - 20) <= 1 and 19 <= x <= 22, (seed, y, x)
        assert charge.max() > 150 * sigma  # a 200-sigma star (photon noise aside)
        assert w[20, 20] > 0.5  # the star's pixels carry loss weight
        # the 2-sigma CR pixel under a 200-sigma star is drowned; the 1000-sigma one is not
        assert drowned[20, 21] and not drowned[20, 20]
        assert not (drowned & ~truth).any()  # only truth pixels can be drowned


def test_bad_inputs_are_clear_errors():
    img, truth = _patch_with_crs()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="noise_sigma"):
        draw_stars_on_crs(rng, img, truth, 0.0)
    with pytest.raises(ValueError, match="shape"):
        draw_stars_on_crs(rng, img, truth[:-1], 10.0)


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    from crbench.recipes import build_dataset

    return build_dataset("sim-ground-small", tmp_path_factory.mktemp("crstars") / "g", n_images=6,
                         shape=(96, 96), exposure_time=3000.0, progress=False)


def _sampler(ds, **kw):
    return PatchSampler(ds, patch=64, batch=8, seed=5, normalization="noise-model", noise_aug=True, **kw)


def test_off_leaves_the_stream_and_on_puts_stars_under_crs(ground):
    plain = PatchSampler(ground, patch=64, batch=8, seed=5, normalization="noise-model", noise_aug=True).next_batch()
    off = _sampler(ground, cr_star_aug=0.0).next_batch()
    assert all(np.array_equal(plain[k], off[k]) for k in plain)
    n_cr = 0
    for seed in range(10):
        # one patch per sampler, no dihedral flips: its sample, position and regime are drawn before
        # the augmentation, so both see the same patch
        kw = dict(patch=64, batch=1, seed=seed, normalization="noise-model", noise_aug=True, augment=False)
        ref = PatchSampler(ground, **kw).next_batch()
        on = PatchSampler(ground, cr_star_aug=1.0, **kw).next_batch()
        assert np.array_equal(on["y"], ref["y"])  # the truth never changes
        # valid only loses truth pixels (CRs drowned by the star's photon noise)
        lost = (ref["valid"] > 0) & (on["valid"] == 0)
        assert not (lost & (on["y"] == 0)).any()
        assert ((on["valid"] > 0) <= (ref["valid"] > 0)).all()
        if on["y"].any():
            n_cr += 1
            # a star sits under a CR pixel: the input there is far above the noise-model unit, and the
            # star's pixels carry loss weight
            sig = np.sinh(on["x"]) * SOFTENING
            assert sig[on["y"] > 0].max() > 4
            assert on["weight"][on["y"] > 0].max() > ref["weight"][on["y"] > 0].max()
        else:
            assert np.array_equal(on["valid"], ref["valid"]) and np.array_equal(on["weight"], ref["weight"])
    assert n_cr >= 3, "the test set needs patches with CRs"


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_probability_is_a_clear_error(ground, bad):
    with pytest.raises(DatasetError, match="cr_star_aug"):
        _sampler(ground, cr_star_aug=bad)


def test_cr_star_aug_is_recorded_and_reproduced(ground, tmp_path, capsys):
    from baselines.unet.train import main as train_main
    from crbench.cli import main

    common = ["--steps", "2", "--loss", "bce", "--width", "4", "--levels", "2", "--no-progress",
              "--normalisation", "noise-model", "--noise-aug", "--val-crop", "0", "--max-val-images", "1"]
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--cr-star-aug", "0.5",
                       "--out", str(tmp_path / "a"), *common]) == 0
    side = json.loads((tmp_path / "a" / "attention-unet.json").read_text())
    assert side["augmentation"]["cr_star_aug"]["probability"] == 0.5
    assert side["augmentation"]["cr_star_aug"]["stars_per_patch"] == CR_STARS_PER_PATCH
    assert "--cr-star-aug 0.5" in side["reproduce_command"]
    cmd = side["reproduce_command"].split()[3:]
    cmd[cmd.index("--out") + 1] = str(tmp_path / "b")
    assert train_main(cmd) == 0
    assert json.loads((tmp_path / "b" / "attention-unet.json").read_text())["sha256"] == side["sha256"]
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--out", str(tmp_path / "c"), *common]) == 0
    side = json.loads((tmp_path / "c" / "attention-unet.json").read_text())
    assert "cr_star_aug" not in side["augmentation"] and "--cr-star-aug" not in side["reproduce_command"]
    assert main(["train", "attention-unet", "--dataset", str(ground.root), "--cr-star-aug", "0.25",
                 "--out", str(tmp_path / "d"), *common]) == 0
    side = json.loads((tmp_path / "d" / "attention-unet.json").read_text())
    assert side["augmentation"]["cr_star_aug"]["probability"] == 0.25
    capsys.readouterr()
    assert main(["train", "attention-unet", "--dataset", str(ground.root), "--cr-star-aug", "2",
                 "--out", str(tmp_path / "e"), *common]) != 0
    assert "--cr-star-aug" in capsys.readouterr().err
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--cr-star-aug", "-1",
                       "--out", str(tmp_path / "f"), *common]) == 2
    assert "cr_star_aug" in capsys.readouterr().err
