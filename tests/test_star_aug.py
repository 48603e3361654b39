"""Star augmentation of the training patches (``--star-aug``): the star model, the sampler hook, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.data import SOFTENING, PatchSampler
from baselines.unet.star_aug import (
    FWHM_RANGE,
    PEAK_SIGMA_RANGE,
    draw_stars,
    pixel_integrated_gaussian,
    star_image,
)
from crbench.errors import DatasetError

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _integrate_by_subsampling(centre: float, sigma: float, n: int, sub: int = 2001) -> np.ndarray:
    """Reference: the Gaussian density sampled on a fine grid and summed per pixel (midpoint rule)."""
    out = np.empty(n)
    for i in range(n):
        t = np.linspace(i - 0.5, i + 0.5, sub + 1)
        mid = 0.5 * (t[1:] + t[:-1])
        dens = np.exp(-0.5 * ((mid - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        out[i] = dens.sum() * (1.0 / sub)
    return out


@pytest.mark.parametrize("centre,sigma", [(5.0, 0.68), (5.37, 0.42), (0.2, 1.3), (9.49, 0.9)])
def test_pixel_integration_matches_fine_sampling(centre, sigma):
    got = pixel_integrated_gaussian(centre, sigma, 11)
    ref = _integrate_by_subsampling(centre, sigma, 11)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_undersampled_star_is_sharp_and_has_the_requested_peak():
    # FWHM 1.6 px (the MicroObservatory PSF): the central pixel of a centred star holds ~30 % of its
    # flux; a point-sampled Gaussian would put 1 / (2 pi sigma^2) = 34 % there
    img = star_image((21, 21), 10.0, 10.0, 1.6, 1.6, peak=1.0)
    assert img.max() == pytest.approx(1.0)
    assert img[10, 10] == img.max()
    frac = 1.0 / img.sum()
    sigma = 1.6 / (2 * np.sqrt(2 * np.log(2)))
    ref = _integrate_by_subsampling(10.0, sigma, 21)
    assert frac == pytest.approx(ref.max() ** 2, rel=1e-6)
    assert 0.25 < frac < 0.32
    # its nearest neighbour is still ~40 % of the peak: not a one-pixel CR
    assert 0.3 < img[10, 11] < 0.5
    with pytest.raises(ValueError, match="fwhm"):
        star_image((5, 5), 2, 2, 0.0, 1.0, 1.0)


def test_drawn_stars_cover_the_significance_range_and_weights():
    rng = np.random.default_rng(3)
    sigma = 100.0
    peaks, n_stars = [], 0
    for _ in range(200):
        charge, w = draw_stars(rng, (64, 64), sigma)
        assert charge.shape == (64, 64) and (charge >= 0).all() and np.array_equal(charge, np.round(charge))
        assert w.shape == (64, 64) and w.min() >= 0 and w.max() <= 1 + 1e-12
        # loss weight sits on the stars: the brightest star pixel has high weight
        peak_at = np.unravel_index(np.argmax(charge), charge.shape)
        assert w[peak_at] > 0.3
        peaks.append(charge.max() / sigma)
    peaks = np.array(peaks)
    lo, hi = PEAK_SIGMA_RANGE
    # the brightest star of a patch: above the lower end (Poisson noise of ~25 e- at 5 sigma x 100 e-)
    assert peaks.min() > 0.8 * lo and peaks.max() < 1.2 * hi
    assert np.median(peaks) > 20  # most patches carry a star far above any noise
    with pytest.raises(ValueError, match="noise_sigma"):
        draw_stars(rng, (8, 8), float("nan"))
    assert FWHM_RANGE[0] >= 1.0


def _sampler(ds, **kw):
    return PatchSampler(ds, patch=64, batch=6, seed=5, normalization="noise-model", noise_aug=True, **kw)


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    from crbench.recipes import build_dataset

    return build_dataset("sim-ground-small", tmp_path_factory.mktemp("stars") / "g", n_images=6, shape=(96, 96),
                         progress=False)


def test_star_aug_off_leaves_the_stream_and_on_changes_only_the_image(ground):
    plain = PatchSampler(ground, patch=64, batch=6, seed=5, normalization="noise-model", noise_aug=True).next_batch()
    off = _sampler(ground, star_aug=0.0).next_batch()
    assert all(np.array_equal(plain[k], off[k]) for k in plain)
    on = _sampler(ground, star_aug=1.0).next_batch()
    assert not np.array_equal(on["x"], plain["x"])
    # every patch got at least one star: bright compact peaks far above the noise-model unit
    sig = np.sinh(on["x"]) * SOFTENING  # back to sigma units (asinh input of the noise-model path)
    assert (sig.reshape(6, -1).max(axis=1) > 4).all()
    # stars are negatives: truth is a subset of the drawn patch truth (never grows from stars)
    assert set(np.unique(on["y"])) <= {0.0, 1.0}
    assert (on["weight"] >= 0).all() and (on["weight"] <= 1).all()


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_star_aug_probability_is_a_clear_error(ground, bad):
    with pytest.raises(DatasetError, match="star_aug"):
        _sampler(ground, star_aug=bad)


def test_star_aug_is_recorded_and_reproduced(ground, tmp_path, capsys):
    from baselines.unet.train import main as train_main
    from crbench.cli import main

    common = ["--steps", "2", "--loss", "bce", "--width", "4", "--levels", "2", "--no-progress",
              "--normalisation", "noise-model", "--noise-aug", "--val-crop", "0", "--max-val-images", "1"]
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--star-aug", "0.5",
                       "--out", str(tmp_path / "a"), *common]) == 0
    side = json.loads((tmp_path / "a" / "attention-unet.json").read_text())
    assert side["augmentation"]["star_aug"]["probability"] == 0.5
    assert side["augmentation"]["star_aug"]["fwhm_px"] == list(FWHM_RANGE)
    assert "--star-aug 0.5" in side["reproduce_command"]
    # the recorded command gives the same weights
    cmd = side["reproduce_command"].split()[3:]
    cmd[cmd.index("--out") + 1] = str(tmp_path / "b")
    assert train_main(cmd) == 0
    again = json.loads((tmp_path / "b" / "attention-unet.json").read_text())
    assert again["sha256"] == side["sha256"]
    # without the option nothing about stars is recorded
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--out", str(tmp_path / "c"), *common]) == 0
    side = json.loads((tmp_path / "c" / "attention-unet.json").read_text())
    assert "star_aug" not in side["augmentation"] and "--star-aug" not in side["reproduce_command"]
    # crbench train passes it through and refuses a probability outside [0, 1]
    assert main(["train", "attention-unet", "--dataset", str(ground.root), "--star-aug", "0.25",
                 "--out", str(tmp_path / "d"), *common]) == 0
    side = json.loads((tmp_path / "d" / "attention-unet.json").read_text())
    assert side["augmentation"]["star_aug"]["probability"] == 0.25
    capsys.readouterr()
    assert main(["train", "attention-unet", "--dataset", str(ground.root), "--star-aug", "2",
                 "--out", str(tmp_path / "e"), *common]) != 0
    assert "--star-aug" in capsys.readouterr().err
    assert train_main(["attention-unet", "--dataset", str(ground.root), "--star-aug", "-1",
                       "--out", str(tmp_path / "f"), *common]) == 2
    assert "star_aug" in capsys.readouterr().err
