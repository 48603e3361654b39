"""Per-sample records: what one (detector, sample) evaluation reduces to.

A :class:`SampleRecord` holds small, threshold-free pieces of one scored sample: per-class score
histograms (overall, per morphology, on sources), a per-CR instance table, a per-source table and a
sparse CR-charge histogram. Records add up, so the same reduction (:mod:`.reduction`) serves serial,
process-pool and dask runs, resumes from a cache, and gives bootstrap replicates by re-weighting
records instead of rescoring. A sample whose detector failed yields a :class:`SampleFailure`
instead. Everything here is a pure function of a validated score map and its sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from scipy import ndimage

from ..conventions import Conventions
from ..metrics import Binning
from ..metrics.instances import (
    charge_histogram_from_pixels,
    cr_pixel_charge,
    fp_components,
    fp_components_sparse,
    instance_table_from_pixels,
)
from ..metrics.sources import source_table
from ..sample import Sample

#: PSF FWHM (pixels) used for sources when a sample's meta has none.
DEFAULT_FWHM = 2.0


@dataclass
class SampleRecord:
    """What one successful (detector, sample) evaluation returns: small arrays and tables that add up.

    Attributes
    ----------
    sample_id : str
        The sample's id.
    pos, neg : ndarray of int64 (n_bins,)
        Score histograms of CR and non-CR pixels under the run's conventions.
    seconds : float
        Time the detector took on the sample.
    n_pixels : int
        Pixels in the score map.
    extra : dict
        Plain JSON-able extras (cached with the record).
    morph_pos : dict
        Morphology -> sparse positive histogram ``(bin indices, counts)``.
    neg_src : ndarray of int64 or None
        Histogram of the negative pixels inside the sources mask.
    instances : DataFrame or None
        Threshold-free per-CR table (:func:`crbench.metrics.instances.instance_table`).
    charge_hist : (ndarray, ndarray) or None
        Sparse CR charge by score bin (for the residual unflagged charge).
    sources : DataFrame or None
        Per-source table (:func:`crbench.metrics.sources.source_table`).
    fp_components : dict
        Operating-point name -> number of false-positive components at its (fixed) threshold.
    """

    sample_id: str
    pos: np.ndarray
    neg: np.ndarray
    seconds: float = 0.0
    n_pixels: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    morph_pos: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    neg_src: np.ndarray | None = None
    instances: pd.DataFrame | None = None
    charge_hist: tuple[np.ndarray, np.ndarray] | None = None
    sources: pd.DataFrame | None = None
    fp_components: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleFailure:
    """A (detector, sample) evaluation that failed: the detector raised, ran past its timeout or
    returned an invalid map. The run goes on without the sample and lists it in its provenance.

    Attributes
    ----------
    sample_id : str
        The sample's id.
    message : str
        One line saying what went wrong (names the detector and the sample).
    """

    sample_id: str
    message: str


#: What evaluating one sample yields.
Outcome: TypeAlias = SampleRecord | SampleFailure


@dataclass(frozen=True)
class RecordSpec:
    """Everything (besides the detector and sample) that determines a record.

    Attributes
    ----------
    binning : Binning
        The run's fixed score bins.
    conventions : Conventions
        Dilation, ignore handling, pooling.
    per_cr : bool
        Compute per-morphology histograms and the per-CR instance table.
    sources : bool
        Compute the source table and the on-source negative histogram.
    thresholds : tuple of (name, bin index)
        Fixed operating points at which false-positive components are counted.
    timeout : float or None
        Seconds a detector may take on one sample.
    """

    binning: Binning
    conventions: Conventions
    per_cr: bool = True
    sources: bool = True
    thresholds: tuple[tuple[str, int], ...] = ()
    timeout: float | None = None

    def cache_settings(self) -> dict[str, Any]:
        """The settings that enter the cache key (the timeout does not change a record)."""
        return {"binning": self.binning.to_dict(), "conventions": self.conventions.to_dict(),
                "per_cr": self.per_cr, "sources": self.sources, "thresholds": list(self.thresholds)}



def _class_counts(bins: np.ndarray, truth: np.ndarray, n: int,
                  valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative histograms: one pass over every pixel, then the (sparse) positives
    and ignored pixels subtracted - CR pixels are ~0.1% of an image."""
    flat = bins.ravel()
    counts = np.bincount(flat, minlength=n)
    tflat = np.flatnonzero(truth)
    if valid is not None:
        iflat = np.flatnonzero(~valid)
        if iflat.size:
            counts = counts - np.bincount(flat[iflat], minlength=n)
            tflat = tflat[valid.ravel()[tflat]]
    pos = np.bincount(flat[tflat], minlength=n)
    return pos.astype(np.int64), (counts - pos).astype(np.int64)


#: Bins of the TPR-side and FPR-side scores, truth, valid mask (None = all), ignore mask, any ignored.
_Prepared: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, bool]


def _prepared(score: np.ndarray, sample: Sample, binning: Binning, conventions: Conventions) -> _Prepared:
    """Bins of the TPR-side and FPR-side scores, truth and valid masks under ``conventions``."""
    truth = np.zeros(sample.shape, dtype=bool) if sample.truth is None else sample.truth
    ignore = sample.ignore_or_false()
    has_ignore = bool(ignore.any())
    valid = ~ignore if has_ignore else None
    halo = getattr(sample, "halo", None)
    if halo is not None and halo.any():
        # halo convention: 'ignore' leaves halo pixels out of every count, 'negative' keeps them as
        # non-CR, 'positive' counts them as CR truth (ignored pixels stay ignored)
        if conventions.halo == "ignore":
            valid = ~(ignore | halo)
        elif conventions.halo == "positive":
            truth = truth | (halo & ~ignore)
    if conventions.ignore == "as-negative":
        truth = truth & ~ignore
    bins = binning.index(score)
    if conventions.dilation == "none":
        return bins, bins, truth, valid, ignore, has_ignore
    # Prediction dilated by a 3x3 square: the 3x3 maximum filter of the score (thresholding commutes
    # with it). Ignored pixels are removed from the prediction first, so they never lend a score.
    base = np.where(ignore, np.float32(score.min()), score) if has_ignore else score
    dil_bins = binning.index(ndimage.maximum_filter(base, size=3, mode="nearest"))
    neg_bins = dil_bins if conventions.dilation == "both" else bins
    return dil_bins, neg_bins, truth, valid, ignore, has_ignore


def sample_histograms(score: np.ndarray, sample: Sample, binning: Binning,
                      conventions: Conventions) -> tuple[np.ndarray, np.ndarray]:
    """Per-class score histograms of one sample under ``conventions`` (pure function).

    ``ignore='exclude'`` leaves ignored pixels out of both classes; ``'as-negative'`` counts them as
    negatives at the lowest score (Cosmic-CoNN multiplies prediction and truth by 1 - ignore).
    ``dilation='deepcr'`` histograms positives on the 3x3-dilated score and negatives on the raw
    score; ``'both'`` uses the dilated score for both.
    """
    pos_bins, neg_bins, truth, valid, ignore, has_ignore = _prepared(score, sample, binning, conventions)
    return _histograms(pos_bins, neg_bins, truth, valid, ignore, has_ignore, binning.n_bins, conventions)


def _histograms(pos_bins: np.ndarray, neg_bins: np.ndarray, truth: np.ndarray, valid: np.ndarray | None,
                ignore: np.ndarray, has_ignore: bool, n: int,
                conventions: Conventions) -> tuple[np.ndarray, np.ndarray]:
    if pos_bins is neg_bins:
        pos, neg = _class_counts(pos_bins, truth, n, valid)
    else:
        pos, _ = _class_counts(pos_bins, truth, n, valid)
        _, neg = _class_counts(neg_bins, truth, n, valid)
    if conventions.ignore == "as-negative" and has_ignore:
        neg[0] += int(ignore.sum())
    return pos, neg


def compute_record(score: np.ndarray, sample: Sample, spec: RecordSpec, seconds: float = 0.0) -> SampleRecord:
    """Reduce one validated score map to a :class:`SampleRecord` (pure function)."""
    binning, conv = spec.binning, spec.conventions
    n = binning.n_bins
    pos_bins, neg_bins, truth, valid, ignore, has_ignore = _prepared(score, sample, binning, conv)
    pos, neg = _histograms(pos_bins, neg_bins, truth, valid, ignore, has_ignore, n, conv)
    rec = SampleRecord(sample.id, pos, neg, seconds, int(score.size))
    if spec.per_cr and sample.labels is not None:
        labels = np.where(truth, sample.labels, 0) if conv.ignore == "as-negative" else sample.labels
        inst = sample.instances
        morph: dict[int, str] = {}
        if inst is not None and len(inst):
            morph = dict(zip(inst["id"].astype(int).tolist(), inst["morphology"].astype(str).tolist()))
        flat = np.flatnonzero(labels)
        if valid is not None:
            flat = flat[valid.ravel()[flat]]
        lab = labels.ravel()[flat]
        b = pos_bins.ravel()[flat].astype(np.int64)
        q = cr_pixel_charge(sample.image, labels, flat, valid, sample.sky)
        rec.instances = instance_table_from_pixels(lab, b, q, morph)
        rec.charge_hist = charge_histogram_from_pixels(b, q)
        if flat.size:
            uniq = np.unique(lab)
            names = np.array([morph.get(int(k), "unknown") for k in uniq], dtype=object)
            pix_morph = names[np.searchsorted(uniq, lab)]
            for m in sorted(set(names.tolist())):
                idx, cnt = np.unique(b[pix_morph == m], return_counts=True)
                rec.morph_pos[m] = (idx.astype(np.int32), cnt.astype(np.int64))
    if spec.sources and sample.sources is not None:
        sflat = np.flatnonzero(sample.sources)
        if sflat.size:
            keep = ~truth.ravel()[sflat]
            if valid is not None:
                keep &= valid.ravel()[sflat]
            rec.neg_src = np.bincount(neg_bins.ravel()[sflat[keep]], minlength=n).astype(np.int64)
            rec.sources = source_table(sample.image, sample.sources, neg_bins, sky=sample.sky,
                                       read_noise=sample.read_noise,
                                       fwhm=float(sample.meta.get("psf_fwhm") or DEFAULT_FWHM), truth=truth,
                                       valid=valid)
    if spec.thresholds:
        t_min = min(t for _, t in spec.thresholds)
        nb = neg_bins.ravel()
        cand = np.flatnonzero(nb >= t_min)
        if valid is not None:
            cand = cand[valid.ravel()[cand]]
        cand_bins = nb[cand]
        for name, t in spec.thresholds:
            sub = cand[cand_bins >= t]
            if sub.size > 0.05 * nb.size:  # dense: one labelling pass is cheaper
                flagged = np.zeros(nb.size, bool)
                flagged[sub] = True
                rec.fp_components[name] = fp_components(flagged.reshape(neg_bins.shape), truth)
            else:
                rec.fp_components[name] = fp_components_sparse(sub, truth, neg_bins.shape)
    return rec

