"""Step 3, noise model: gain and read noise from the series when the headers lack them."""
from __future__ import annotations

from typing import Any

import numpy as np


from .._common import stage
from .alignment import shift_image
from .params import NoiseModel
from .sky import sky_levels

# ---------------------------------------------------------------------------------------------- noise


def _robust_sigma(x: np.ndarray) -> float:
    x = np.asarray(x)[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _clipped_var(x: np.ndarray, nsig: float = 4.0, iters: int = 5) -> float:
    x = x[np.isfinite(x)]
    for _ in range(iters):
        m, s = np.mean(x), np.std(x)
        keep = np.abs(x - m) < nsig * max(s, 1e-6)
        if keep.all():
            break
        x = x[keep]
    return float(np.var(x))


def estimate_noise(frames_adu: np.ndarray, *, gain: float | None = None, read_noise: float | None = None,
                   bias: float | None = None, sky_model: np.ndarray | None = None,
                   shifts: np.ndarray | None = None, exclude: np.ndarray | None = None,
                   fallback_gain: float = 1.0, progress: bool = False) -> NoiseModel:
    """Gain, read noise and bias of a series, from the data where not given.

    With an aligned ``sky_model`` (sky-subtracted, reference coordinates) and ``shifts``, each
    frame's residual (frame - its sky - the model moved onto it) on faint-sky pixels gives that
    frame's noise variance; without one, half the variance of consecutive-frame differences is used.
    Variance against sky level is a photon-transfer curve var = a + level / gain (the sky changes
    over a night): the gain is the inverse of its Theil-Sen slope. The bias is the darkest frame's
    level (its sky is absorbed into the read noise, which is therefore conservative) and the read
    noise is the variance floor there. Values given as arguments win.

    Parameters
    ----------
    frames_adu : ndarray, shape (N, H, W)
        Frames in ADU (static pattern removed), in time order.
    gain, read_noise, bias : float, optional
        Known values (e-/ADU, e-, ADU).
    sky_model, shifts : ndarray, optional
        Aligned median model and the alignment shifts (see :func:`register_series`).
    exclude : ndarray of bool, optional
        Detector pixels not to use (hot pixels).
    fallback_gain : float
        Gain used when the sky does not vary enough to measure the slope.
    progress : bool
        Show a progress bar.
    """
    from scipy.stats import theilslopes

    frames = np.asarray(frames_adu, np.float32)
    n = frames.shape[0]
    levels = sky_levels(frames)
    use = np.ones(frames.shape[1:], bool) if exclude is None else ~exclude
    b = 8
    use[:b, :] = use[-b:, :] = False
    use[:, :b] = use[:, -b:] = False
    pair_level, pair_var = [], []
    if sky_model is not None and shifts is not None:
        model = np.asarray(sky_model, np.float32)
        faint_thr = np.nanpercentile(model, 60)
        for j in stage(range(n), "series model: noise", progress):
            mj = shift_image(np.nan_to_num(model, nan=np.inf), -np.asarray(shifts[j]))
            ok = use & np.isfinite(mj) & (mj <= faint_thr)
            r = frames[j] - levels[j] - np.where(np.isfinite(mj), mj, 0.0)
            pair_var.append(_clipped_var(r[ok]))
            pair_level.append(levels[j])
        method_var = "residuals of each frame against the aligned median, faint-sky pixels"
    else:
        for j in range(n - 1):
            d = frames[j + 1] - frames[j]
            pair_var.append(_clipped_var(d[use]) / 2.0)
            pair_level.append(0.5 * (levels[j] + levels[j + 1]))
        method_var = "half the variance of consecutive-frame differences"
    pair_level_a = np.array(pair_level)
    pair_var_a = np.array(pair_var)
    method: dict[str, Any] = {"variance_from": method_var}
    g = gain
    if g is None:
        method["gain_source"] = "fallback"
        if n >= 4 and np.ptp(pair_level_a) > 0:
            slope, icpt, lo, hi = theilslopes(pair_var_a, pair_level_a)
            if slope > 0 and lo > 0:
                g = 1.0 / slope
                method["gain_source"] = "photon-transfer slope of frame variance vs sky level"
                method["gain_interval_95"] = [float(1 / hi), float(1 / lo)]
        if g is None:
            g = float(fallback_gain)
    else:
        method["gain_source"] = "given"
    bias_v = bias
    if bias_v is None:
        bias_v = float(np.min(levels))
        method["bias_source"] = "darkest frame's sky level (sky of that frame counted as read noise)"
    else:
        method["bias_source"] = "given"
    rn = read_noise
    if rn is None:
        if n >= 2:
            var_floor = float(np.median(pair_var_a[pair_level_a <= np.percentile(pair_level_a, 20)]))
            var_floor -= max(0.0, float(np.min(pair_level_a)) - bias_v) / g
            rn = float(np.sqrt(max(var_floor, 1.0 / 12.0)) * g)
        else:
            rn = float(np.sqrt(_clipped_var(frames[0][use])) * g)
        method["read_noise_source"] = "variance floor at the darkest frames (conservative)"
    else:
        method["read_noise_source"] = "given"
    method["n_pairs"] = int(len(pair_var_a))
    return NoiseModel(gain=float(g), read_noise=float(rn), bias=float(bias_v), method=method)
