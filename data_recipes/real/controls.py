"""Negative controls: ``m13-negatives`` (5 short real star-field frames) and ``kast-biases`` (3 biases).

Truth is all False: these frames have essentially no CRs, so every flagged pixel is a false
positive (false positives per megapixel on undersampled stars, and on pure read noise). The few
candidates that a multi-exposure comparison finds are put in the ignore mask, so that a real CR
cannot count as a false positive.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crbench.dataset import Dataset, write_dataset
from crbench.observation import DQ_SATURATED, saturation_dqmask
from crbench.recipes import Recipe
from crbench.sample import Sample, empty_instance_table

from ._common import check_options, read_fits_image
from .labelling import LabelParams, NoiseModel, fit_series_model, label_series

M13 = "m13-negatives"
KAST_BIASES = "kast-biases"
KAST_DOWNLOAD = "kast-blue"
#: Kast blue instrument model (MANIFEST: header says GAIN=1, the instrument has 1.2 e-/ADU, 3.7 e-).
KAST_GAIN = 1.2
KAST_READ_NOISE = 3.7
KAST_DATA_COLS = ((0, 1024), (1024, 2048))
KAST_OVERSCAN_COLS = ((2049, 2080), (2080, 2111))


def kast_calibrate(raw: np.ndarray) -> np.ndarray:
    """Kast blue raw frame -> electrons: per-amplifier overscan median subtracted, data columns kept.

    Amplifier 1 reads columns 1-1024 (overscan 2050-2080), amplifier 2 columns 1025-2048
    (overscan 2081-2111), 1-based as in the MANIFEST.
    """
    out = np.empty((raw.shape[0], 2048), np.float32)
    for (d0, d1), (o0, o1) in zip(KAST_DATA_COLS, KAST_OVERSCAN_COLS):
        level = np.median(raw[:, o0:o1], axis=1, keepdims=True)
        out[:, d0:d1] = (raw[:, d0:d1] - level) * KAST_GAIN
    return out


def _candidates_to_ignore(frames_adu: np.ndarray, noise: NoiseModel, n_comp: int, *, align: bool
                          ) -> tuple[list[np.ndarray], np.ndarray]:
    """Multi-exposure CR candidates of each frame, as masks to ignore, and the shifts.

    Only components of >= 2 pixels (seed SNR > 5, grown inside SNR > 2.5) away from pixels seeded in
    two frames count as candidates: single-pixel outliers stay scored, as noise.
    """
    p = LabelParams(n_companions=n_comp, min_companions=min(n_comp, 2), min_pixels=2, border=0,
                    outlier_rejection=False, hot_min_frames=2)
    model = fit_series_model(frames_adu, params=p, noise=noise,
                             shifts=None if align else np.zeros((len(frames_adu), 2)))
    res = label_series(frames_adu, params=p, model=model, n_exposures=0)
    return [f.truth for f in res.frames], model.shifts


def _aligned_companions(cube: np.ndarray, shifts: np.ndarray, i: int) -> np.ndarray:
    from .labelling import shift_image

    out = []
    for j in range(len(cube)):
        if j == i:
            continue
        a = shift_image(cube[j], shifts[j] - shifts[i])
        out.append(np.where(np.isfinite(a), a, cube[i]).astype(np.float32))
    return np.stack(out)


def _negative_sample(sid: str, image_e: np.ndarray, exposures_e: np.ndarray | None, ignore: np.ndarray,
                     meta: dict[str, Any], dqmask: np.ndarray | None = None) -> Sample:
    shape = image_e.shape
    return Sample(id=sid, image=image_e.astype(np.float32), truth=np.zeros(shape, bool), ignore=ignore,
                  labels=np.zeros(shape, np.int32), instances=empty_instance_table(), sources=None,
                  exposures=exposures_e, meta=meta, dqmask=dqmask)


def build_m13(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    """Build ``m13-negatives``: 5 x 5 s M13 frames, truth all False, every frame in ``test``."""
    from crbench.download import download, provenance

    check_options(M13, options, ("seed",))
    folder = download(M13, progress=progress)
    files = sorted(folder.glob("M13_blue_*.fits"))
    raws, hdrs = zip(*(read_fits_image(f) for f in files))
    cube = np.stack(raws)
    # gain from the per-pixel temporal photon-transfer curve (no header value)
    noise = estimate_noise_pixels(cube)
    cand, shifts = _candidates_to_ignore(cube, noise, n_comp=len(files) - 1, align=True)
    electrons = (cube - noise.bias) * noise.gain
    sat = cube >= 65535 * 0.98
    samples, ids = [], []
    for i, f in enumerate(files):
        sid = f"m13-{f.stem.split('_')[-1]}"
        others = _aligned_companions(electrons, shifts, i)
        ignore = cand[i] | sat[i]
        meta = {"gain": noise.gain, "read_noise": noise.read_noise, "sky": float(np.median(electrons[i])),
                "exptime": float(hdrs[i].get("EXPTIME", 5.0)), "saturation": float((65535 - noise.bias) * noise.gain),
                "instrument": "Orion SSDSI (Sony ICX285)", "pixel_scale": None, "psf_fwhm": 2.0,
                "source_file": f.name, "label_confidence": "negative control"}
        dq = np.where(sat[i], DQ_SATURATED, 0).astype(np.uint8)  # raw ADU near the 16-bit ceiling
        samples.append(_negative_sample(sid, electrons[i], others, ignore, meta, dq))
        ids.append(sid)
    extra = {"kind": "real-negative-control", "noise": noise.to_dict(), "shifts_px": shifts.tolist(),
             "ignored_candidates": [int(c.sum()) for c in cand],
             "note": "truth is all False; multi-exposure CR candidates and saturated pixels are ignored; "
                     "frames are taken 12 s apart; companions aligned by cross-correlation"}
    return write_dataset(out, iter(samples), name=M13, splits={"train": [], "val": [], "test": ids}, recipe=M13,
                         parameters={}, seed=None, provenance=provenance(M13), extra=extra, progress=progress)


def estimate_noise_pixels(cube_adu: np.ndarray) -> NoiseModel:
    """Gain, read noise and bias of a few registered frames of a static scene.

    Per-pixel temporal variance against per-pixel mean, binned by level (median per bin, corrected
    to a mean), is a photon-transfer curve var = a + mean / gain; the gain is its Theil-Sen slope's
    inverse over the bins from the sky level up to the 99th level percentile, the bias the 0.5th
    percentile level, the read noise the variance at the sky level minus the sky's shot noise.
    """
    from scipy.stats import chi2, theilslopes

    cube = np.asarray(cube_adu, np.float64)
    n = cube.shape[0]
    mean = cube.mean(axis=0).ravel()
    var = cube.var(axis=0, ddof=1).ravel()
    lo, hi = np.percentile(mean, [1, 99])
    edges = np.linspace(lo, hi, 41)
    which = np.digitize(mean, edges)
    # the median of a sample variance of n values is chi2.median(n-1)/(n-1) of the true variance
    unbias = float(chi2.median(n - 1) / (n - 1))
    xs, ys, counts = [], [], []
    for b in range(1, len(edges)):
        sel = which == b
        if sel.sum() >= 50:
            xs.append(float(np.median(mean[sel])))
            ys.append(float(np.median(var[sel])) / unbias)
            counts.append(int(sel.sum()))
    mode = int(np.argmax(counts)) if counts else 0
    method: dict[str, Any] = {
        "gain_source": "fallback 1.0 (the photon-transfer slope above the sky level is not significant)"}
    gain = 1.0
    # sky and brighter: pixels below the sky level are dominated by defects (noisier than the sky)
    xs_up, ys_up = xs[mode:], ys[mode:]
    if len(xs_up) >= 5:
        slope, _, lo_s, hi_s = theilslopes(ys_up, xs_up)
        if slope > 0 and lo_s > 0:
            gain = 1.0 / slope
            method = {"gain_source": "per-pixel temporal photon-transfer curve", "gain_interval_95": [1 / hi_s, 1 / lo_s]}
    bias = float(np.percentile(mean, 0.5))
    var_sky = ys[mode] if ys else float(np.median(var)) / unbias
    sky_level = xs[mode] if xs else float(np.median(mean))
    rn = float(np.sqrt(max(var_sky - max(sky_level - bias, 0.0) / gain, 1 / 12)) * gain)
    method.update({"bias_source": "0.5th percentile of the mean frame",
                   "read_noise_source": "temporal variance at the sky level (most populated bin), minus the sky's shot noise"})
    return NoiseModel(gain=float(gain), read_noise=rn, bias=bias, method=method)


def build_kast_biases(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    """Build ``kast-biases``: the 3 Kast blue biases (b21-b23) in e-, truth all False, all in ``test``."""
    from crbench.download import download, provenance

    check_options(KAST_BIASES, options, ("seed",))
    folder = download(KAST_DOWNLOAD, progress=progress)
    names = ["b21.fits.gz", "b22.fits.gz", "b23.fits.gz"]
    frames = []
    for n in names:
        raw, hdr = read_fits_image(folder / n)
        frames.append(kast_calibrate(raw))
    cube_e = np.stack(frames)
    noise = NoiseModel(gain=1.0, read_noise=KAST_READ_NOISE, bias=0.0, method={"source": "Kast instrument model"})
    cand, _ = _candidates_to_ignore(cube_e, noise, n_comp=2, align=False)
    samples, ids = [], []
    for i, n in enumerate(names):
        sid = f"kast-{n.split('.')[0]}"
        others = np.stack([cube_e[j] for j in range(3) if j != i])
        meta: dict[str, Any] = {
            "gain": KAST_GAIN, "read_noise": KAST_READ_NOISE, "sky": 0.0, "exptime": 0.0,
            "saturation": float(65535 * KAST_GAIN), "instrument": "Lick Kast blue", "pixel_scale": 0.43,
            "psf_fwhm": 2.0, "source_file": n, "label_confidence": "negative control"}
        samples.append(_negative_sample(sid, cube_e[i], others, cand[i].copy(), meta,
                                        saturation_dqmask(cube_e[i], meta["saturation"])))
        ids.append(sid)
    prov = [p for p in provenance(KAST_DOWNLOAD) if p["file"] in names]
    extra = {"kind": "real-negative-control", "ignored_candidates": [int(c.sum()) for c in cand],
             "note": "bias frames: truth all False; per-amplifier overscan subtracted, gain 1.2 e-/ADU and "
                     "read noise 3.7 e- from the instrument model (header says GAIN=1); multi-exposure CR "
                     "candidates ignored"}
    return write_dataset(out, iter(samples), name=KAST_BIASES, splits={"train": [], "val": [], "test": ids},
                         recipe=KAST_BIASES, parameters={}, seed=None, provenance=prov, extra=extra, progress=progress)


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


RECIPES.append(Recipe(
    name=M13, description="Negative control: 5 real 5 s M13 frames with essentially no CRs (download)",
    kind="real", build=build_m13, defaults={}, requires_download=(M13,)))
RECIPES.append(Recipe(
    name=KAST_BIASES, description="Negative control: 3 real Kast blue bias frames, pure read noise (download)",
    kind="real", build=build_kast_biases, defaults={}, requires_download=(KAST_DOWNLOAD,)))
