"""The multi-exposure labelling pipeline on a synthetic drifting series with known truth."""
from __future__ import annotations

import numpy as np
import pytest

from data_recipes.real._common import time_blocks
from data_recipes.real.labelling import (
    LabelParams, estimate_noise, fit_series_model, label_series, outlying_frames, register_series,
    seeds_and_growth, split_components,
)

GAIN, RN, BIAS = 2.0, 5.0, 300.0


def _series(n=10, shape=(110, 130), seed=0, sky_ramp=False, jump=True):
    """A drifting star field in ADU with static/flickering hot pixels and injected CRs.

    Returns frames, true shifts (to apply to each frame to land on frame n // 2), CR truth masks,
    hot pixel coordinates and flicker pixel coordinates.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    offsets = np.cumsum(rng.uniform(-1.5, 1.5, (n, 2)), axis=0)
    if jump:
        offsets[n // 2 + 2:] += (14.3, -21.6)  # a re-centring jump
    offsets -= offsets[n // 2]
    ys0, xs0 = rng.uniform(-30, h + 30, 60), rng.uniform(-30, w + 30, 60)
    flux = rng.uniform(2e3, 4e4, 60)
    yy, xx = np.mgrid[0:h, 0:w]
    sig = 1.2
    hot = [(20, 30), (70, 100), (50, 60)]
    flick = [(90, 20), (30, 110)]
    # keep stars away from the hot and flickering pixels in every frame
    near = np.zeros(ys0.size, bool)
    for (y, x) in hot + flick:
        d = np.hypot(ys0[None] + offsets[:, :1] - y, xs0[None] + offsets[:, 1:] - x)
        near |= (d < 7).any(axis=0)
    ys0, xs0, flux = ys0[~near], xs0[~near], flux[~near]
    frames, truths = [], []
    for j in range(n):
        scene = np.zeros(shape)
        for y0, x0, f in zip(ys0 + offsets[j, 0], xs0 + offsets[j, 1], flux):
            if -10 < y0 < h + 10 and -10 < x0 < w + 10:
                scene += f / (2 * np.pi * sig ** 2) * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sig ** 2))
        sky = 200.0 * (1 + (2.0 * j / n if sky_ramp else 0.0))
        e = rng.poisson(scene + sky).astype(float) + rng.normal(0, RN, shape)
        truth = np.zeros(shape, bool)
        for _ in range(4):  # 2x2 spots of 3000 e- away from stars
            for _try in range(50):
                y, x = rng.integers(12, h - 13), rng.integers(12, w - 13)
                if scene[y - 2:y + 4, x - 2:x + 4].max() < 5 and not truth[y - 3:y + 5, x - 3:x + 5].any():
                    break
            e[y:y + 2, x:x + 2] += 3000.0
            truth[y:y + 2, x:x + 2] = True
        adu = e / GAIN + BIAS
        for (y, x) in hot:
            adu[y, x] += 400.0
        for (y, x) in flick:
            if j % 4 == 0:  # on in a quarter of the frames: the static pattern does not catch it
                adu[y, x] += 300.0
        frames.append(adu.astype(np.float32))
        truths.append(truth)
    return np.stack(frames), -offsets, truths, hot, flick


def test_alignment_recovers_known_shifts_including_a_jump():
    frames, true_shifts, *_ = _series()
    shifts = register_series(frames)
    assert np.max(np.abs(shifts - true_shifts)) < 0.15
    assert np.max(np.abs(np.diff(true_shifts, axis=0))) > 20  # the jump really is there


def test_pipeline_finds_injected_crs_and_vetoes_hot_pixels():
    frames, _, truths, hot, flick = _series(n=12, seed=1)
    res = label_series(frames, params=LabelParams(border=4, outlier_rejection=False))
    found = valid = labelled = correct = 0
    for f in res.frames:
        t = truths[f.index]
        valid += int((t & ~f.ignore).sum())
        found += int((t & f.truth).sum())
        labelled += int(f.truth.sum())
        correct += int((f.truth & t).sum())
        for (y, x) in hot + flick:
            assert not f.truth[y, x], f"hot pixel {(y, x)} labelled as CR in frame {f.index}"
        assert (f.labels > 0).sum() == f.truth.sum()
        assert len(f.instances) == len(np.unique(f.labels[f.labels > 0]))
    assert valid > 0.7 * sum(int(t.sum()) for t in truths)
    assert found / valid > 0.9
    assert correct / labelled > 0.9
    for (y, x) in flick:
        assert res.veto[y, x], f"flickering pixel {(y, x)} not vetoed"


def test_noise_model_recovers_gain_from_a_sky_ramp():
    frames, shifts, *_ = _series(n=12, seed=2, sky_ramp=True, jump=False)
    model = fit_series_model(frames, shifts=shifts)
    assert model.noise.gain == pytest.approx(GAIN, rel=0.25)
    assert model.noise.method["gain_source"].startswith("photon-transfer")
    given = estimate_noise(frames, gain=3.0, read_noise=1.0, bias=10.0)
    assert (given.gain, given.read_noise, given.bias) == (3.0, 1.0, 10.0)


def test_seeds_grow_only_inside_the_low_threshold():
    snr = np.zeros((20, 20), np.float32)
    snr[10, 10] = 9.0
    snr[10, 11:14] = 3.0   # grows into these
    snr[10, 15] = 3.0      # not connected through > 2.5 pixels
    seeds, grown = seeds_and_growth(snr, LabelParams())
    assert seeds.sum() == 1
    assert grown[10, 10:14].all() and not grown[10, 15]


def test_components_touching_sources_or_too_small_become_ambiguous():
    grown = np.zeros((20, 20), bool)
    grown[2, 2:5] = True       # fine
    grown[10, 10] = True       # single pixel
    grown[15, 15:17] = True    # on a source
    src = np.zeros_like(grown)
    src[15, 16] = True
    cr, amb, counts = split_components(grown, sources=src, veto=None, min_pixels=2)
    assert cr.sum() == 3 and amb.sum() == 3
    assert counts["on_sources"] == 1 and counts["too_small"] == 1


def test_outlying_frame_rejected():
    frac = np.array([1e-4] * 20 + [2e-3])
    pix = np.array([30] * 20 + [600])
    assert outlying_frames(frac, pix).tolist() == [False] * 20 + [True]
    # a few pixels more than average is counting noise, not an outlier
    assert not outlying_frames(np.array([1e-5] * 20 + [4e-5]), np.array([3] * 20 + [12])).any()


def test_time_blocks_keep_neighbours_together():
    b = time_blocks(142)
    assert max(b["train"]) < min(b["val"]) - 1 and max(b["val"]) < min(b["test"]) - 1
    assert len(b["train"]) + len(b["val"]) + len(b["test"]) == 140


def test_series_fit_and_labelling_run_with_the_pinned_blas_thread_count(monkeypatch):
    """Real builds hash differently with 1 and 2 OpenBLAS threads (microobs-hatp32: 5d82a13f... vs
    909d5405...); the series fit and the labelling therefore pin the BLAS pool, whatever the caller set."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import data_recipes.real.labelling.series as series

    if not any(p["user_api"] == "blas" for p in threadpool_info()):
        pytest.fail("no BLAS thread pool visible to threadpoolctl: the pin cannot be checked")
    seen: list[int] = []
    real_register = series.register_series

    def spy(*args, **kwargs):
        seen.append(min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return real_register(*args, **kwargs)

    monkeypatch.setattr(series, "register_series", spy)
    frames, *_ = _series(n=6, seed=4, jump=False)
    for outer in (1, 3):
        with threadpool_limits(limits=outer, user_api="blas"):
            model = series.fit_series_model(frames)
            after = min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        assert after == outer  # restored for the caller
        series.label_series(frames, model=model, n_exposures=2)
    assert seen == [series.SERIES_BLAS_THREADS] * 2
