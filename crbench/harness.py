"""The evaluation harness: run detectors over a dataset split and reduce per-sample counts.

Each sample yields a :class:`SampleRecord` of small count arrays (score histograms per class);
records add up, so the same reduction serves serial, process-pool and dask runs.
"""
from __future__ import annotations

import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import ndimage

from .conventions import Conventions, resolve_conventions
from .dataset import Dataset
from .detectors.base import Detector, check_score_map
from .detectors.registry import get_detector
from .errors import CRBenchError, DetectorError
from .metrics import Binning, class_histograms, curve_from_histograms, summarize
from .results import Results, run_meta
from .sample import Sample


@dataclass
class SampleRecord:
    """What one (detector, sample) evaluation returns: small arrays that add up."""

    sample_id: str
    pos: np.ndarray | None = None
    neg: np.ndarray | None = None
    seconds: float = 0.0
    n_pixels: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DetectorFailure(UserWarning):
    """Warning emitted when a detector fails on one sample and the run goes on."""


def run_detector(detector: Detector, sample: Sample) -> tuple[np.ndarray, float]:
    """Run ``detector`` on ``sample``, validate its output and time it.

    Raises
    ------
    DetectorError
        If the detector lacks a required input, raises, or returns a wrong-shaped or non-finite map.
    """
    check = getattr(detector, "check_inputs", None)
    if check is not None:
        check(sample)
    t0 = time.perf_counter()
    try:
        raw = detector.score(sample)
    except CRBenchError:
        raise
    except Exception as exc:
        raise DetectorError(f"detector {detector.name!r} raised on sample {sample.id!r}: "
                            f"{type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - t0
    return check_score_map(raw, sample, detector.name), seconds


def sample_histograms(score: np.ndarray, sample: Sample, binning: Binning,
                      conventions: Conventions) -> tuple[np.ndarray, np.ndarray]:
    """Per-class score histograms of one sample under ``conventions`` (pure function)."""
    if sample.truth is None:
        truth = np.zeros(sample.shape, dtype=bool)
    else:
        truth = sample.truth
    ignore = sample.ignore_or_false()
    if conventions.ignore == "exclude":
        valid = ~ignore if ignore.any() else None
        n_ignored = 0
    else:  # as-negative: ignored pixels become negatives at the lowest score
        valid = ~ignore if ignore.any() else None
        truth = truth & ~ignore
        n_ignored = int(ignore.sum())
    if conventions.dilation == "none":
        pos, neg = class_histograms(score, truth, binning, valid)
    else:
        dilated = ndimage.maximum_filter(score, size=3, mode="nearest")
        pos, _ = class_histograms(dilated, truth, binning, valid)
        neg_score = dilated if conventions.dilation == "both" else score
        _, neg = class_histograms(neg_score, truth, binning, valid)
    if n_ignored:
        neg = neg.copy()
        neg[0] += n_ignored
    return pos, neg


def evaluate_sample(detector: Detector, sample: Sample, binning: Binning, conventions: Conventions) -> SampleRecord:
    """Score one sample and reduce it to a :class:`SampleRecord` (errors are raised)."""
    score, seconds = run_detector(detector, sample)
    pos, neg = sample_histograms(score, sample, binning, conventions)
    return SampleRecord(sample.id, pos, neg, seconds, int(score.size))


def _summary_from_records(records: Sequence[SampleRecord], binning: Binning, conventions: Conventions):
    ok = [r for r in records if r.error is None]
    if not ok:
        return None, {}
    pos = np.sum([r.pos for r in ok], axis=0)
    neg = np.sum([r.neg for r in ok], axis=0)
    curve = curve_from_histograms(pos, neg, binning)
    if conventions.pooling == "pooled":
        summary = summarize(curve)
    else:
        per = [summarize(curve_from_histograms(r.pos, r.neg, binning)) for r in ok]
        summary = {k: float(np.nanmean([p[k] for p in per])) if any(np.isfinite(p[k]) for p in per)
                   else float("nan") for k in per[0]}
    n_pos, n_all = int(pos.sum()), int(pos.sum() + neg.sum())
    summary["cr_pixel_fraction"] = n_pos / n_all if n_all else float("nan")
    total_mpix = sum(r.n_pixels for r in ok) / 1e6
    summary["seconds_per_mpix"] = sum(r.seconds for r in ok) / total_mpix if total_mpix else float("nan")
    return curve, summary


def _curve_dict(curve) -> dict[str, list[float]]:
    c = curve.downsample(2000)
    return {
        "thresholds": [float(x) for x in c.thresholds],
        "fpr": [float(x) for x in c.fpr],
        "tpr": [float(x) for x in c.tpr],
        "precision": [float(x) for x in c.precision],
        "recall": [float(x) for x in c.tpr],
        "n_pos": c.n_pos,
        "n_neg": c.n_neg,
    }


def evaluate(
    detectors: str | Detector | Iterable[str | Detector],
    dataset: str | Path | Dataset,
    *,
    split: str = "test",
    protocol: str | None = None,
    dilation: str | None = None,
    ignore: str | None = None,
    pooling: str | None = None,
    n_bins: int | None = None,
    on_error: str = "continue",
    progress: bool = True,
    out: str | Path | None = None,
) -> Results:
    """Score detectors on one dataset split.

    Parameters
    ----------
    detectors : name, ``module:Class`` spec, Detector, or a list of them
        What to score.
    dataset : Dataset, folder path or recipe name
        The data (a recipe name is built into the data dir if needed).
    split : str
        ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
    protocol : str, optional
        ``'crbench'`` (default), ``'deepcr'`` or ``'cosmic-conn'``; ``dilation``, ``ignore`` and
        ``pooling`` override single conventions (see :mod:`crbench.conventions`).
    n_bins : int, optional
        Number of score bins for continuous scores (default 16384).
    on_error : {'continue', 'raise'}
        On a detector failure, record the sample as failed and go on (default), or raise.
    progress : bool
        Show a tqdm progress bar.
    out : path, optional
        Folder to write ``results.csv`` and ``results.json`` into.

    Returns
    -------
    Results
    """
    from .recipes import resolve_dataset

    if on_error not in ("continue", "raise"):
        raise ValueError(f"on_error must be 'continue' or 'raise', got {on_error!r}")
    conventions = resolve_conventions(protocol, dilation=dilation, ignore=ignore, pooling=pooling)
    ds = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset, progress=progress)
    if isinstance(detectors, (str, Detector)) or hasattr(detectors, "score"):
        detectors = [detectors]  # type: ignore[list-item]
    dets = [get_detector(d) for d in detectors]  # type: ignore[union-attr]
    ids = ds.ids(split)
    results = Results(meta=run_meta())
    for det in dets:
        binning = Binning.for_range(det.score_range, n_bins)
        records: list[SampleRecord] = []
        it: Iterable[str] = ids
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(ids, desc=f"{det.name} on {ds.name}/{split}", unit="img", leave=False)
        for sid in it:
            sample = ds.load(sid, load_companions=any(r != "image" for r in det.requires))
            try:
                records.append(evaluate_sample(det, sample, binning, conventions))
            except DetectorError as exc:
                if on_error == "raise":
                    raise
                warnings.warn(str(exc), DetectorFailure, stacklevel=2)
                records.append(SampleRecord(sid, error=str(exc)))
        curve, summary = _summary_from_records(records, binning, conventions)
        failures = {r.sample_id: r.error for r in records if r.error is not None}
        if curve is None:
            raise DetectorError(f"detector {det.name!r} failed on every sample of {ds.name}/{split}; "
                                f"first error: {next(iter(failures.values()))}")
        row = {"detector": det.name, "dataset": ds.name, "split": split, "n_images": len(records) - len(failures)}
        row.update(summary)
        row["n_failed"] = len(failures)
        results.runs.append({
            "detector": det.name,
            "dataset": ds.name,
            "split": split,
            "summary": row,
            "curve": _curve_dict(curve),
            "provenance": {
                "detector": {"name": det.name, "class": f"{type(det).__module__}:{type(det).__qualname__}",
                             "version": det.version, "params": det.params(), "params_hash": det.params_hash(),
                             "trained_on": list(getattr(det, "trained_on", ()))},
                "dataset": {"name": ds.name, "version": ds.version, "content_hash": ds.content_hash,
                            "split": split, "n_samples": len(ids), "path": str(ds.root)},
                "conventions": conventions.to_dict(),
                "binning": binning.to_dict(),
                "failed_samples": failures,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            },
        })
    if out is not None:
        results.save(out)
    return results
