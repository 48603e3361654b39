"""The whole pipeline on a series: fit the series model once, then label every frame."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import pandas as pd
from scipy import ndimage
from threadpoolctl import threadpool_limits

from crbench.errors import DatasetError

from .._common import stage
from .alignment import register_series, shift_image, shift_mask
from .detection import (halo_mask, hot_pixel_veto, instance_table, outlying_frames, seeds_and_growth, snr_map,
                        split_components)
from .masks import border_mask, sources_mask
from .noise import _robust_sigma, estimate_noise
from .params import EIGHT, LabelParams, NoiseModel
from .sky import aligned_median, sky_levels, static_pattern

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


#: BLAS threads while fitting and labelling a series. A BLAS reduction sums in an order set by the
#: thread count, which moved the fitted series model (the gain in the last bits) and so the labels and
#: the content hash of every real build (measured: ``microobs-hatp32`` hashed 5d82a13f... with one
#: OpenBLAS thread and 909d5405... with two; the exact call is not isolated: a 12-frame fit does not
#: show it, the likeliest is the matrix product of scikit-image's upsampled phase cross-correlation).
#: The published builds were made with two; pinning it makes a build independent of
#: ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` and of the machine's core count.
SERIES_BLAS_THREADS = 2

_F = TypeVar("_F", bound=Callable[..., Any])


def _pinned_blas_threads(func: _F) -> _F:
    """Run ``func`` with :data:`SERIES_BLAS_THREADS` BLAS threads (restored afterwards)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=SERIES_BLAS_THREADS, user_api="blas"):
            return func(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


@_pinned_blas_threads
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


@_pinned_blas_threads
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
        seeds, grown = seeds_and_growth(snr, p)
        src_amb = src_i
        if p.label_stable_sources:
            from ..stable_sources import companion_scatter_ratio, unreliable_sources

            ratio = companion_scatter_ratio(aligned, med, read_noise=rn, sky=float(sky_e[i]))
            src_amb = unreliable_sources(src_i, ratio, max_ratio=p.stable_scatter_max)
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
