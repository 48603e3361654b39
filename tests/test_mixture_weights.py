"""The shipped mixture-trained nets (issue 18): what their sidecars promise, and that they find CRs
in every noise regime of the training ranges."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.unet.weights import WEIGHTS_DIR, file_sha256, load_weights  # noqa: E402
from crbench.metrics import ap, exact_curve, tpr_at_fpr  # noqa: E402
from crbench.sample import Sample  # noqa: E402
from crbench.standard import previous_pins  # noqa: E402

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
MIXTURE = ("attention-unet-mixture", "attention-unet-mixture-60", "unet-nogate-mixture", "deepcr-retrained-mixture")
TRAINING_SETS = ("sim-hst-acs-ex", "sim-hst-acs-gc", "sim-hst-acs-gal", "sim-decam", "sim-ground-small",
                 "microobs-hatp32-sim", "microobs-hatp32-footprints")


def _leaderboard_hashes() -> dict[str, str]:
    """Content hash of every dataset build the committed leaderboard entries were scored on."""
    from crbench.leaderboard_submit import load_entries

    out: dict[str, str] = {}
    for entry in load_entries(ROOT / "leaderboard" / "entries"):
        out.setdefault(entry.run["dataset"], entry.run["provenance"]["dataset"]["content_hash"])
    return out


def _previous_real_builds(name: str) -> set[str]:
    """Earlier builds of a real-derived recipe that its module lists (``PREVIOUS_BUILDS``), e.g. the twin's."""
    from data_recipes.real import twins

    return set(twins.PREVIOUS_BUILDS) if name == twins.NAME else set()


@pytest.mark.parametrize("name", MIXTURE)
def test_mixture_sidecar_records_the_standard_builds_and_the_noise_options(name):
    side = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    assert side["sha256"] == file_sha256(WEIGHTS_DIR / f"{name}.pt")
    _, meta = load_weights(WEIGHTS_DIR / f"{name}.pt")  # weights_only load, sidecar hash checked
    assert meta["normalization"]["method"] == "noise-model"
    assert side["augmentation"]["noise_aug"] is True
    assert side["augmentation"]["noise_aug_ranges"] == {"read_noise_e": [2.0, 100.0], "gain_e_per_adu": [0.5, 20.0],
                                                       "extra_sky_e": [1.0, 10000.0]}
    data = side["training_data"]["datasets"]
    assert [d["name"] for d in data] == list(TRAINING_SETS)
    assert all(abs(d["weight"] - 1 / 7) < 1e-12 for d in data)
    # each simulated set is a pinned standard build (the current one, or a superseded standard version kept in
    # the registry's 'previous'), each real-derived set the build the leaderboard scores
    sets = json.loads((ROOT / "crbench" / "registry" / "standard.json").read_text())["sets"]
    board = _leaderboard_hashes()
    for d in data:
        if d["name"] in sets:
            expected = {sets[d["name"]]["content_hash"], *previous_pins(d["name"]).values()}
        else:  # the build the leaderboard scores, or an earlier build its recipe module lists
            expected = {board.get(d["name"]), *_previous_real_builds(d["name"])}
        assert None not in expected and d["content_hash"] in expected, d["name"]
    cmd = side["reproduce_command"]
    assert cmd.startswith("python -m baselines.unet.train ")
    assert all(f"--dataset {n}" in cmd for n in TRAINING_SETS)
    for flag in ("--noise-aug", "--normalisation noise-model", f"--name {name}", f"--steps {side['steps']}",
                 "--seed 0"):
        assert flag in cmd
    # the log is the training run's: validation AP per epoch, the best epoch among them
    assert side["log"] and side["best"]["val_ap"] == max(e["val_ap"] for e in side["log"])
    assert side["cpu_minutes"] <= 60  # "a point a user can reproduce in an hour"


def _frame(gain: float, read_noise: float, sky: float, shape=(192, 192), n_crs=30, seed=5):
    """Sky (e-) with stars and faint compact CRs of 4-9 sigma per pixel, on the ADU grid of ``gain``."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(read_noise ** 2 + sky)
    img = rng.poisson(sky, shape).astype(np.float64) + rng.normal(0.0, read_noise, shape)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for _ in range(8):  # stars, PSF sigma 1.5 px, 50-400 sigma total
        y, x = rng.uniform(10, shape[0] - 10, 2)
        img += rng.uniform(50, 400) * sigma * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.5) / (4.5 * np.pi)
    truth = np.zeros(shape, bool)
    for _ in range(n_crs):
        y, x = rng.integers(4, shape[0] - 5, 2)
        s = rng.integers(1, 3)
        img[y:y + s, x:x + s] += rng.uniform(4, 9) * sigma
        truth[y:y + s, x:x + s] = True
    return (np.round(img / gain) * gain).astype(np.float32), truth


#: (gain e-/ADU, read noise e-, sky e-): issue 18's failing regime (high gain and read noise), an HST-like
#: faint sky, a DECam-like bright sky, and the extreme read noise of the augmentation range.
REGIMES = [(20.0, 40.0, 1000.0), (1.0, 3.0, 10.0), (4.0, 7.0, 18000.0), (0.5, 100.0, 1.0)]


@pytest.fixture(scope="module")
def mixture_detectors():
    from crbench.detectors.registry import get_detector

    return {n: get_detector(n) for n in MIXTURE}


@pytest.mark.parametrize("gain, read_noise, sky", REGIMES)
def test_mixture_nets_find_faint_crs_in_every_regime(mixture_detectors, gain, read_noise, sky):
    img, truth = _frame(gain, read_noise, sky)
    obs = Sample(id=f"g{gain}-rn{read_noise}-sky{sky}", image=img,
                 meta={"gain": gain, "read_noise": read_noise, "sky": sky}).observation()
    for name, det in mixture_detectors.items():
        score = det.score(obs)
        assert score.shape == img.shape and score.dtype == np.float32 and np.isfinite(score).all()
        curve = exact_curve(score, truth)
        assert ap(curve) > 0.85, (name, gain, read_noise, sky, ap(curve))
        assert tpr_at_fpr(curve, 1e-3) > 0.8, (name, gain, read_noise, sky)


def test_mixture_net_sees_significance_so_a_rescaled_regime_scores_alike(mixture_detectors):
    """The same significance image in ADU of two gains (and two sky levels) gives nearly the same map."""
    det = mixture_detectors["attention-unet-mixture"]
    img, truth = _frame(1.0, 5.0, 100.0)
    sig = (img - 100.0) / np.sqrt(25.0 + 100.0)
    maps = []
    for gain, rn, sky in [(1.0, 5.0, 100.0), (16.0, 40.0, 5000.0)]:
        sigma = np.sqrt(rn ** 2 + sky)
        image = (sig * sigma + sky).astype(np.float32)
        maps.append(det.score(Sample(id="s", image=image, meta={"gain": gain, "read_noise": rn, "sky": sky})
                              .observation()))
    assert np.abs(maps[0] - maps[1]).max() < 0.05
    assert ap(exact_curve(maps[1], truth)) > 0.85
