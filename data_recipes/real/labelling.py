"""Multi-exposure CR labelling of a series of real frames of one field (pure functions).

The pipeline follows the Cosmic-CoNN labelling recipe (anchors.md) adapted to a drifting series
from a small telescope without calibration frames:

1. **Alignment** (:func:`register_series`): sub-pixel shifts by phase cross-correlation of
   static-pattern-subtracted, 3x3-median-filtered frames against one reference frame; any shift up
   to half the frame (re-centring jumps of > 60 px included) is recovered.
2. **Sky model and static pattern** (:func:`static_pattern`): the median of the aligned frames is
   the sky model; the per-detector-pixel median of (frame - sky model shifted back) is the static
   detector pattern (bias structure, hot pixels), removed from every frame.
3. **Noise model** (:func:`estimate_noise`): gain from the photon-transfer slope of the variance of
   consecutive-frame differences against sky level (the sky changes over the night), read noise
   from the variance floor, when headers lack them.
4. **Seeds and growth** (:func:`seeds_and_growth`): SNR = (f - m) / sqrt(var_f + var_m + (s grad m)^2)
   against the median m of the aligned companions is the significance of the library's one truth
   rule (:func:`crbench.truth.apply_truth_rule`, :attr:`LabelParams.truth_rule`: seeds at SNR > 5,
   8-connected growth inside SNR > 2.5, as in the simulators); components touching sources, smaller
   than ``min_pixels`` or on vetoed pixels go to the ignore mask (ambiguous). Pixels above 1 sigma
   connected to a seed that fail the rule are the halo.
5. **Hot/flickering pixel veto** (:func:`hot_pixel_veto`): a detector pixel seeded in several
   frames, or with a strong static pattern, is not a CR.
6. **Outlying frames** (:func:`outlying_frames`): a frame whose CR pixel share exceeds
   min(2 x mean, mean + 2 sd) is rejected.

All parameters live in :class:`LabelParams` and are recorded in the dataset card.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from crbench.errors import DatasetError
from crbench.truth import TruthRule, apply_truth_rule, present_from_seeds, seed_grow_rule

from ._common import stage

EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class LabelParams:
    """Parameters of the labelling pipeline (recorded in the dataset card)."""

    seed_snr: float = 5.0
    grow_snr: float = 2.5
    #: growth steps from a seed (None: the whole connected region, the library's default rule)
    grow_iterations: int | None = None
    min_pixels: int = 2
    n_companions: int = 6
    min_companions: int = 3
    deriv_scale: float = 0.2
    border: int = 8
    source_snr: float = 3.0
    source_grow: int = 1
    source_min_pixels: int = 2
    hot_min_frames: int = 3
    hot_min_fraction: float = 0.02
    hot_static_snr: float = 10.0
    saturation_adu: float | None = None
    saturation_grow: int = 2
    outlier_rejection: bool = True
    upsample: int = 20
    interpolation_order: int = 1
    #: stored exposures are not among the companions the frame was labelled against (not circular)
    disjoint_exposures: bool = True
    #: label CRs touching sources whose companions agree within the noise (stable_sources.py)
    label_stable_sources: bool = True
    stable_scatter_max: float = 1.5

    @property
    def truth_rule(self) -> TruthRule:
        """The truth rule these parameters name (:mod:`crbench.truth`)."""
        return seed_grow_rule(self.seed_snr, self.grow_snr, max_grow=self.grow_iterations)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NoiseModel:
    """CCD noise model: electrons = (ADU - bias) x gain; variance = read_noise^2 + max(signal, 0)."""

    gain: float
    read_noise: float
    bias: float
    method: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"gain": float(self.gain), "read_noise": float(self.read_noise), "bias": float(self.bias),
                **self.method}


# ---------------------------------------------------------------------------------------------- alignment


def _prep_for_correlation(frame: np.ndarray, static: np.ndarray | None) -> np.ndarray:
    f = np.asarray(frame, np.float32)
    if static is not None:
        f = f - static
    f = ndimage.median_filter(f, size=3)
    f = f - np.median(f)
    hi = np.percentile(f, 99.9)
    f = np.clip(f, 0, hi if hi > 0 else None)
    # taper the edges so that the frame border does not dominate the correlation
    h, w = f.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32) ** 0.25
    return f * win


def register_series(frames: np.ndarray, *, reference: int | None = None, static: np.ndarray | None = None,
                    upsample: int = 20, progress: bool = False) -> np.ndarray:
    """Shifts that align every frame onto a reference frame.

    Parameters
    ----------
    frames : ndarray, shape (N, H, W)
        The series (any linear units).
    reference : int, optional
        Index of the reference frame (default: the middle one).
    static : ndarray, shape (H, W), optional
        Static detector pattern to subtract before correlating. Default: none; the 3x3 median
        filter applied before correlating already removes single hot pixels and CRs (a per-pixel
        median of drifting frames would keep smeared stars and bias the shifts).
    upsample : int
        Sub-pixel precision 1/upsample.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray, shape (N, 2)
        ``shifts[j] = (dy, dx)``: ``scipy.ndimage.shift(frames[j], shifts[j])`` lies on the reference.
    """
    from skimage.registration import phase_cross_correlation

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise DatasetError(f"register_series needs an (N, H, W) stack, got shape {frames.shape}")
    n = frames.shape[0]
    ref = n // 2 if reference is None else int(reference)
    ref_img = _prep_for_correlation(frames[ref], static)
    shifts = np.zeros((n, 2))
    for j in stage(range(n), "series model: aligning", progress):
        if j == ref:
            continue
        mov = _prep_for_correlation(frames[j], static)
        s, _, _ = phase_cross_correlation(ref_img, mov, upsample_factor=upsample, normalization=None)
        shifts[j] = s
    return shifts


def shift_image(img: np.ndarray, shift: Sequence[float], *, order: int = 1) -> np.ndarray:
    """``img`` moved by ``shift`` (dy, dx); pixels coming from outside are NaN."""
    img = np.asarray(img, np.float32)
    if np.allclose(shift, 0):
        return img.copy()
    out = ndimage.shift(img, shift, order=order, mode="constant", cval=np.nan, prefilter=False)
    # bilinear shift: a pixel is valid only if all its source pixels were inside the frame
    cover = ndimage.shift(np.ones(img.shape, np.float32), shift, order=1, mode="constant", cval=0.0)
    out[cover < 0.999] = np.nan
    return out


def shift_mask(mask: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """A boolean mask moved by ``shift`` (nearest pixel, conservative: any overlap keeps it True)."""
    m = ndimage.shift(mask.astype(np.float32), shift, order=1, mode="constant", cval=0.0)
    return m > 0.01


# -------------------------------------------------------------------------------- sky model, static pattern


def sky_levels(frames: np.ndarray) -> np.ndarray:
    """Per-frame sky level: the median of each frame."""
    return np.median(np.asarray(frames).reshape(len(frames), -1), axis=1)


def aligned_median(frames: np.ndarray, shifts: np.ndarray, *, order: int = 1, progress: bool = False) -> np.ndarray:
    """Median of the sky-subtracted frames aligned onto the reference (NaN where no frame covers)."""
    sky = sky_levels(frames)
    stack = np.stack([shift_image(f - s, sh, order=order) for f, s, sh in
                      stage(zip(frames, sky, shifts), "series model: sky model", progress, total=len(frames))])
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(stack, axis=0)


def static_pattern(frames: np.ndarray, shifts: np.ndarray, sky_model: np.ndarray, *, order: int = 1,
                   progress: bool = False) -> np.ndarray:
    """Static detector pattern: per-pixel median of (frame - sky - sky model moved to the frame).

    Hot pixels and fixed bias structure stay at the same detector pixel while the sky drifts, so they
    survive this median while stars and CRs do not.
    """
    sky = sky_levels(frames)
    model = np.nan_to_num(sky_model, nan=0.0)
    res = np.stack([f - s - np.nan_to_num(shift_image(model, -sh, order=order), nan=0.0)
                    for f, s, sh in stage(zip(frames, sky, shifts), "series model: static pattern", progress,
                                          total=len(frames))])
    return np.median(res, axis=0).astype(np.float32)


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


# ---------------------------------------------------------------------------------------------- masks


def sources_mask(sky_model_e: np.ndarray, noise: NoiseModel, sky_e: float, params: LabelParams) -> np.ndarray:
    """Stars and galaxies on the aligned sky model.

    Pixels of the model minus its large-scale background (a 36 px median) brighter than
    ``source_snr`` times the noise of one frame (where a star residual can pass for a CR), in
    components of at least ``source_min_pixels``, grown by ``source_grow`` pixels.
    """
    m = np.asarray(sky_model_e, np.float32)
    finite = np.isfinite(m)
    fill = float(np.median(m[finite])) if finite.any() else 0.0
    m = np.where(finite, m, fill)
    small = m[::4, ::4]
    bkg_small = ndimage.median_filter(small, size=9, mode="nearest")
    bkg = ndimage.zoom(bkg_small, (m.shape[0] / small.shape[0], m.shape[1] / small.shape[1]), order=1)
    bkg = bkg[: m.shape[0], : m.shape[1]]
    if bkg.shape != m.shape:
        bkg = np.pad(bkg, ((0, m.shape[0] - bkg.shape[0]), (0, m.shape[1] - bkg.shape[1])), mode="edge")
    sig = float(np.sqrt(noise.read_noise ** 2 + max(sky_e, 0.0)))
    det = ((m - bkg) > params.source_snr * sig) & finite
    lab, nlab = ndimage.label(det, EIGHT)
    if nlab:
        sizes = ndimage.sum(det, lab, index=np.arange(1, nlab + 1))
        det = np.isin(lab, np.flatnonzero(sizes >= params.source_min_pixels) + 1)
    if params.source_grow > 0:
        det = ndimage.binary_dilation(det, EIGHT, iterations=params.source_grow)
    return det


def border_mask(shape: tuple[int, int], border: int) -> np.ndarray:
    """True within ``border`` pixels of the frame edge."""
    m = np.zeros(shape, bool)
    if border > 0:
        m[:border, :] = m[-border:, :] = True
        m[:, :border] = m[:, -border:] = True
    return m


# ---------------------------------------------------------------------------------------------- labelling


def snr_map(frame: np.ndarray, companions: np.ndarray, *, read_noise: float, sky: float,
            static_var: np.ndarray | float = 0.0, deriv_scale: float = 0.2,
            min_companions: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SNR of each pixel against the median of aligned companions (all in sky-subtracted e-).

    Returns
    -------
    snr, median, valid
        ``valid`` is where at least ``min_companions`` companions cover the pixel.
    """
    import warnings

    comp = np.asarray(companions, np.float32)
    n_cov = np.sum(np.isfinite(comp), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(comp, axis=0)
    valid = n_cov >= min_companions
    med = np.where(np.isfinite(med), med, 0.0).astype(np.float32)
    expected = np.maximum(med + sky, 0.0)
    var_f = read_noise ** 2 + expected + static_var
    nc = np.maximum(n_cov, 1)
    var_m = (read_noise ** 2 + expected) * np.where(nc > 2, np.pi / 2, 1.0) / nc
    var = var_f + var_m
    if deriv_scale > 0:
        grad = np.maximum(np.abs(ndimage.maximum_filter(med, 3) - med), np.abs(med - ndimage.minimum_filter(med, 3)))
        var = var + (deriv_scale * grad) ** 2
    snr = (np.asarray(frame, np.float32) - med) / np.sqrt(np.maximum(var, 1e-6))
    snr = np.where(valid, snr, 0.0).astype(np.float32)
    return snr, med, valid


def seeds_and_growth(snr: np.ndarray, params: LabelParams) -> tuple[np.ndarray, np.ndarray]:
    """Seeds (SNR > seed_snr) and the truth rule's growth (:func:`crbench.truth.apply_truth_rule`)."""
    rule = params.truth_rule
    seeds = np.nan_to_num(snr, nan=0.0) > rule.seed_nsigma
    grown, _ = apply_truth_rule(snr, None, rule)
    return seeds, grown


def halo_mask(snr: np.ndarray, params: LabelParams) -> np.ndarray:
    """Pixels above the rule's halo level connected to a seed that fail the rule (before any veto)."""
    rule = params.truth_rule
    return apply_truth_rule(snr, present_from_seeds(snr, rule), rule)[1]


def split_components(grown: np.ndarray, *, sources: np.ndarray | None, veto: np.ndarray | None,
                     min_pixels: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Keep confident CR components; send ambiguous ones to ignore.

    A component is ambiguous when it touches ``sources`` or ``veto`` or has fewer than ``min_pixels``.

    Returns
    -------
    cr, ambiguous, counts
    """
    lab, n = ndimage.label(grown, EIGHT)
    counts = {"components": int(n), "on_sources": 0, "on_veto": 0, "too_small": 0}
    if n == 0:
        return np.zeros_like(grown), np.zeros_like(grown), counts
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum(grown, lab, idx)
    bad = np.zeros(n, bool)
    if sources is not None:
        on_src = ndimage.maximum(sources, lab, idx).astype(bool)
        counts["on_sources"] = int(on_src.sum())
        bad |= on_src
    if veto is not None:
        on_veto = ndimage.maximum(veto, lab, idx).astype(bool)
        counts["on_veto"] = int((on_veto & ~bad).sum())
        bad |= on_veto
    small = sizes < min_pixels
    counts["too_small"] = int((small & ~bad).sum())
    bad |= small
    bad_ids = idx[bad]
    ambiguous = np.isin(lab, bad_ids) & grown
    cr = grown & ~ambiguous
    return cr, ambiguous, counts


def hot_pixel_veto(seed_stack: np.ndarray, static_e: np.ndarray, static_sigma: np.ndarray | float,
                   params: LabelParams) -> np.ndarray:
    """Detector pixels that are not CRs: seeded in several frames, or strongly hot in the static pattern.

    Parameters
    ----------
    seed_stack : ndarray of bool, shape (N, H, W)
        Seed masks of every frame in detector coordinates.
    static_e : ndarray
        Static pattern in electrons.
    static_sigma : ndarray or float
        Noise of one frame per pixel (e-), to scale the static pattern.
    """
    n = seed_stack.shape[0]
    count = seed_stack.sum(axis=0)
    min_frames = max(params.hot_min_frames, int(np.ceil(params.hot_min_fraction * n)))
    flicker = count >= min_frames
    hot = np.abs(static_e) > params.hot_static_snr * static_sigma
    return flicker | hot


def outlying_frames(cr_fraction: np.ndarray, cr_pixels: np.ndarray | None = None) -> np.ndarray:
    """Cosmic-CoNN's rule: reject frames whose CR share exceeds min(2 x mean, mean + 2 sd).

    With ``cr_pixels`` given, a frame must also exceed the mean count by 5 Poisson sigma (+ 5 px),
    so that frames with a handful of CR pixels are not rejected for counting noise alone.
    """
    f = np.asarray(cr_fraction, float)
    if f.size < 3 or f.mean() == 0:
        return np.zeros(f.shape, bool)
    thr = min(2 * f.mean(), f.mean() + 2 * f.std())
    out = f > thr
    if cr_pixels is not None:
        c = np.asarray(cr_pixels, float)
        out &= c > c.mean() + 5 * np.sqrt(max(c.mean(), 1.0)) + 5
    return out


def instance_table(cr: np.ndarray, deviation: np.ndarray, saturated: np.ndarray | None = None,
                   generator: str = "real") -> tuple[np.ndarray, pd.DataFrame]:
    """Instance ids (8-connected components) and the per-instance table of a CR mask.

    ``deviation`` is the CR charge estimate per pixel (e-): frame minus the companions' median.
    Morphology comes from :func:`classify_morphology`.
    """
    from crbench.sample import empty_instance_table

    lab, n = ndimage.label(cr, EIGHT)
    lab = lab.astype(np.int32)
    if n == 0:
        return lab, empty_instance_table()
    idx = np.arange(1, n + 1)
    pixels = ndimage.sum(cr, lab, idx).astype(np.int64)
    charge = ndimage.sum(np.maximum(deviation, 0), lab, idx)
    sat = (ndimage.maximum(saturated, lab, idx).astype(bool) if saturated is not None
           else np.zeros(n, bool))
    morph = classify_morphology(lab, n, sat)
    table = pd.DataFrame({"id": idx.astype("int32"), "morphology": morph, "generator": generator,
                          "pixels": pixels, "charge": charge.astype(float), "saturated": sat})
    return lab, table


def classify_morphology(labels: np.ndarray, n: int, saturated: np.ndarray | None = None) -> list[str]:
    """Geometric class of each instance (physics.md rules), with :func:`crbench.morphology.classify_instances`."""
    try:
        from crbench.morphology import classify_instances
    except ImportError:  # the shared classifier is optional; fall back to the rules below
        classify_instances = None
    if classify_instances is not None:
        sat_map = None
        if saturated is not None and np.any(saturated):
            sat_map = np.isin(labels, np.flatnonzero(saturated) + 1)
        out = classify_instances(labels, sat_map)
        return [str(out.get(i, "spot")) for i in range(1, n + 1)]
    return [_classify_one(labels == i, bool(saturated[i - 1]) if saturated is not None else False)
            for i in range(1, n + 1)] if n < 5000 else ["spot"] * n


def _classify_one(mask: np.ndarray, saturated: bool) -> str:
    ys, xs = np.nonzero(mask)
    a = ys.size
    if a == 0:
        return "spot"
    pts = np.stack([ys, xs], 1).astype(float)
    d = pts[:, None, :] - pts[None, :, :] if a <= 400 else None
    length = float(np.sqrt((d ** 2).sum(-1)).max()) + 1 if d is not None else float(np.hypot(np.ptp(ys), np.ptp(xs))) + 1
    if a >= 2:
        cov = np.cov(pts.T) + np.eye(2) * 1e-3
        ev = np.sort(np.linalg.eigvalsh(cov))
        elong = float(np.sqrt(ev[1] / ev[0]))
        centred = pts - pts.mean(0)
        axis = np.linalg.eigh(cov)[1][:, 1]
        perp = float(np.sqrt(np.mean((centred @ np.array([-axis[1], axis[0]])) ** 2)))
    else:
        elong, perp = 1.0, 0.0
    if (saturated and a >= 20) or (a >= 20 and elong <= 1.5):
        return "blob"
    if length <= 3 or (length <= 5 and elong < 2):
        return "spot"
    if perp <= 0.9 and elong >= 2:
        return "track"
    if length > 5:
        return "worm"
    return "spot"


# ---------------------------------------------------------------------------------------------- series


@dataclass
class FrameLabel:
    """Labelling result of one frame (all arrays in the frame's own detector coordinates)."""

    index: int
    image_e: np.ndarray
    truth: np.ndarray
    ignore: np.ndarray
    labels: np.ndarray
    instances: pd.DataFrame
    sources: np.ndarray
    companions: list[int]
    exposures_e: np.ndarray
    sky_e: float
    rejected: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    #: CR charge estimate (frame minus companions' median, e-) on truth pixels, 0 elsewhere.
    cr_charge: np.ndarray | None = None
    #: CR pixels above 1 sigma that fail the truth rule (not ignored, not truth).
    halo: np.ndarray | None = None
    #: companions the frame was labelled against (``companions`` are the stored ones)
    label_companions: list[int] = field(default_factory=list)
    #: source pixels too unstable to label CRs on (the rest of ``sources`` is labelled)
    sources_ambiguous: np.ndarray | None = None


@dataclass
class SeriesLabels:
    """Labels of a whole series plus what was measured on the way (recorded in the card)."""

    frames: list[FrameLabel]
    shifts: np.ndarray
    noise: NoiseModel
    static_e: np.ndarray
    veto: np.ndarray
    params: LabelParams
    rejected: list[int]
    model: "SeriesModel | None" = None

    def summary(self) -> dict[str, Any]:
        return {
            "params": self.params.to_dict(),
            "truth_rule": self.params.truth_rule.to_dict(),
            "noise": self.noise.to_dict(),
            "shifts_px": {"max_abs": float(np.abs(self.shifts).max()) if len(self.shifts) else 0.0,
                          "max_step": float(np.abs(np.diff(self.shifts, axis=0)).max()) if len(self.shifts) > 1 else 0.0},
            "vetoed_pixels": int(self.veto.sum()),
            "rejected_frames": [int(i) for i in self.rejected],
            "cr_pixels_per_frame_mean": float(np.mean([f.truth.sum() for f in self.frames])) if self.frames else 0.0,
        }


@dataclass
class SeriesModel:
    """What a series teaches about itself: alignment, sky model, static pattern and noise.

    ``sky_model_adu`` is the aligned, sky-subtracted median in reference coordinates (NaN where no
    frame covers); ``static_adu`` the static detector pattern; ``sky_adu`` each frame's sky level
    after removing the static pattern.
    """

    shifts: np.ndarray
    sky_model_adu: np.ndarray
    static_adu: np.ndarray
    sky_adu: np.ndarray
    noise: NoiseModel

    def model_in_frame_e(self, i: int, *, order: int = 1) -> np.ndarray:
        """The clean background of frame ``i`` in electrons (sky model moved onto it + its sky)."""
        m = shift_image(np.nan_to_num(self.sky_model_adu, nan=0.0), -self.shifts[i], order=order)
        m = np.where(np.isfinite(m), m, 0.0)
        return ((m + self.sky_adu[i] - self.noise.bias) * self.noise.gain).astype(np.float32)

    def coverage_in_frame(self, i: int) -> np.ndarray:
        """Where the sky model covers frame ``i``."""
        cov = np.isfinite(self.sky_model_adu).astype(np.float32)
        return shift_image(cov, -self.shifts[i]) > 0.999


def fit_series_model(frames_adu: np.ndarray, *, params: LabelParams | None = None,
                     noise: NoiseModel | None = None, shifts: np.ndarray | None = None,
                     progress: bool = False) -> SeriesModel:
    """Align a series, build its sky model and static pattern, and estimate its noise model
    (``progress``: one named bar per step)."""
    p = params or LabelParams()
    raw = np.asarray(frames_adu, np.float32)
    if shifts is None:
        shifts = register_series(raw, upsample=p.upsample, progress=progress)
    shifts = np.asarray(shifts, float)
    sky_model_adu = aligned_median(raw, shifts, order=p.interpolation_order, progress=progress)
    static_adu = static_pattern(raw, shifts, sky_model_adu, order=p.interpolation_order, progress=progress)
    clean = raw - static_adu
    if noise is None:
        hot_rough = np.abs(static_adu) > 5 * _robust_sigma(static_adu) + 1
        noise = estimate_noise(clean, sky_model=sky_model_adu, shifts=shifts,
                               exclude=ndimage.binary_dilation(hot_rough, iterations=1), progress=progress)
    return SeriesModel(shifts=shifts, sky_model_adu=sky_model_adu, static_adu=static_adu,
                       sky_adu=sky_levels(clean), noise=noise)


def companion_indices(i: int, allowed: Sequence[int], k: int) -> list[int]:
    """The ``k`` frames of ``allowed`` nearest in time (index) to frame ``i``, excluding ``i``."""
    cand = sorted((abs(j - i), j) for j in allowed if j != i)
    return sorted(j for _, j in cand[:k])


def labelling_companions(i: int, block: Sequence[int], params: LabelParams, n_exposures: int
                         ) -> tuple[list[int], list[int]]:
    """(labelling companions, stored exposures) of frame ``i`` in its block.

    Stored exposures are the ``n_exposures`` nearest frames; with ``params.disjoint_exposures`` the
    labelling compares against the next ``n_companions`` nearest, so that a detector given the stored
    exposures never sees the frames that made the labels.
    """
    stored = companion_indices(i, block, n_exposures) if n_exposures > 0 else []
    pool = [j for j in block if j not in stored] if params.disjoint_exposures else list(block)
    return companion_indices(i, pool, params.n_companions), stored


def label_series(frames_adu: np.ndarray, *, params: LabelParams | None = None,
                 noise: NoiseModel | None = None, blocks: Sequence[Sequence[int]] | None = None,
                 shifts: np.ndarray | None = None, n_exposures: int = 2,
                 injected: np.ndarray | None = None, model: "SeriesModel | None" = None,
                 progress: bool = False, stage_name: str = "labelling") -> SeriesLabels:
    """Label CRs in every frame of a series of one field.

    Parameters
    ----------
    frames_adu : ndarray, shape (N, H, W)
        Raw frames in ADU, in time order.
    params : LabelParams
        Pipeline parameters.
    noise : NoiseModel, optional
        Known gain/read noise/bias; estimated from the data when None.
    blocks : list of index lists, optional
        Companions of a frame are taken only from its own block (e.g. its split), so that stored
        exposures never leak across splits. Default: one block.
    shifts : ndarray (N, 2), optional
        Known alignment shifts (default: measured with :func:`register_series`).
    n_exposures : int
        Aligned companions stored with each frame (the nearest in time).
    injected : ndarray (N, H, W), optional
        Extra charge (ADU) added to each frame before labelling (label-quality measurement).
    model : SeriesModel, optional
        A model fitted before (:func:`fit_series_model`); saves the alignment and noise fits.
    progress : bool
        Show progress bars (``<stage_name>: seeds`` and ``<stage_name>: masks``).
    stage_name : str
        Name of this labelling pass in the progress bars (e.g. the label-quality rerun).

    Returns
    -------
    SeriesLabels
    """
    p = params or LabelParams()
    raw = np.asarray(frames_adu, np.float32)
    if raw.ndim != 3 or raw.shape[0] < p.min_companions + 1:
        raise DatasetError(f"label_series needs at least {p.min_companions + 1} frames of one field, "
                           f"got shape {raw.shape}")
    n, h, w = raw.shape
    saturated_adu = raw >= p.saturation_adu if p.saturation_adu is not None else None
    if injected is not None:
        raw = raw + np.asarray(injected, np.float32)
    if model is None:
        model = fit_series_model(raw, params=p, noise=noise, shifts=shifts, progress=progress)
    shifts = model.shifts
    sky_model_adu, static_adu, noise = model.sky_model_adu, model.static_adu, model.noise
    frames_adu_clean = raw - static_adu
    g, rn = noise.gain, noise.read_noise
    sky_adu = sky_levels(frames_adu_clean)
    # electrons, sky-subtracted for the comparison
    sub_e = (frames_adu_clean - sky_adu[:, None, None]) * g
    sky_e = (sky_adu - noise.bias) * g
    static_e = static_adu * g
    sky_model_e = sky_model_adu * g
    src_ref = sources_mask(sky_model_e, noise, float(np.median(sky_e)), p)
    frame_sigma = np.sqrt(rn ** 2 + max(float(np.median(sky_e)), 0.0))
    border = border_mask((h, w), p.border)
    blocks = [list(range(n))] if blocks is None else [list(b) for b in blocks]
    block_of = {i: bi for bi, b in enumerate(blocks) for i in b}

    order = [i for b in blocks for i in b]

    def compare(i: int, nearest: bool = False):
        # the veto pass compares against the nearest frames (best coverage); labels against disjoint ones
        cidx = (companion_indices(i, blocks[block_of[i]], p.n_companions) if nearest
                else labelling_companions(i, blocks[block_of[i]], p, n_exposures)[0])
        aligned = np.stack([shift_image(sub_e[j], shifts[j] - shifts[i], order=p.interpolation_order)
                            for j in cidx]) if cidx else np.full((1, h, w), np.nan, np.float32)
        snr, med, valid = snr_map(sub_e[i], aligned, read_noise=rn, sky=float(sky_e[i]),
                                  static_var=np.abs(static_e), deriv_scale=p.deriv_scale,
                                  min_companions=min(p.min_companions, max(len(cidx), 1)))
        return cidx, aligned, snr, med, valid

    # pass 1: seeds of every frame (detector coordinates) for the hot/flickering pixel veto
    seed_stack = np.zeros((n, h, w), bool)
    for i in stage(order, f"{stage_name}: seeds", progress):
        seed_stack[i] = (compare(i, nearest=True)[2] > p.seed_snr) & ~shift_mask(src_ref, -shifts[i])
    veto = hot_pixel_veto(seed_stack, static_e, frame_sigma, p)
    del seed_stack

    # pass 2: growth, components, masks
    results: dict[int, FrameLabel] = {}
    for i in stage(order, f"{stage_name}: masks", progress):
        cidx, aligned, snr, med, valid = compare(i)
        src_i = shift_mask(src_ref, -shifts[i])
        src_amb = src_i
        if p.label_stable_sources:
            from .stable_sources import companion_scatter_ratio, unreliable_sources

            ratio = companion_scatter_ratio(aligned, med, read_noise=rn, sky=float(sky_e[i]))
            src_amb = unreliable_sources(src_i, ratio, max_ratio=p.stable_scatter_max)
        seeds, grown = seeds_and_growth(snr, p)
        cr, ambiguous, counts = split_components(grown & valid & ~border, sources=src_amb, veto=veto,
                                                 min_pixels=p.min_pixels)
        if saturated_adu is not None:
            sat_i = saturated_adu[i]
            if p.saturation_grow > 0 and sat_i.any():
                sat_i = ndimage.binary_dilation(sat_i, EIGHT, iterations=p.saturation_grow)
        else:
            sat_i = np.zeros((h, w), bool)
        ignore = border | ~valid | veto | ambiguous | sat_i
        cr &= ~ignore
        halo = halo_mask(snr, p) & ~cr & ~ignore
        deviation = sub_e[i] - med
        labels, table = instance_table(cr, deviation, sat_i)
        image_e = ((frames_adu_clean[i] - noise.bias) * g).astype(np.float32)
        # stored companions: the nearest ``n_exposures`` aligned, sky-matched to this frame
        near = labelling_companions(i, blocks[block_of[i]], p, n_exposures)[1]
        exps = []
        for j in near:
            a = shift_image(sub_e[j], shifts[j] - shifts[i], order=p.interpolation_order)
            a = np.where(np.isfinite(a), a, med) + sky_e[i]
            exps.append(a.astype(np.float32))
        ex = np.stack(exps) if exps else np.zeros((0, h, w), np.float32)
        results[i] = FrameLabel(index=i, image_e=image_e, truth=cr, ignore=ignore, labels=labels,
                                instances=table, sources=src_i, companions=near, exposures_e=ex,
                                sky_e=float(sky_e[i]), counts=counts,
                                cr_charge=np.where(cr, deviation, 0.0).astype(np.float32), halo=halo,
                                label_companions=list(cidx), sources_ambiguous=src_amb)
    frames_out = [results[i] for i in range(n) if i in results]
    rejected: list[int] = []
    if p.outlier_rejection:
        frac = np.array([f.truth.sum() / max((~f.ignore).sum(), 1) for f in frames_out])
        bad = outlying_frames(frac, np.array([f.truth.sum() for f in frames_out]))
        for f, b in zip(frames_out, bad):
            f.rejected = bool(b)
            if b:
                rejected.append(f.index)
    return SeriesLabels(frames=frames_out, shifts=shifts, noise=noise, static_e=static_e, veto=veto,
                        params=p, rejected=rejected, model=model)
