"""``evaluate``: score detectors on a dataset split into :class:`~crbench.results.Results`.

The settings of a run are one :class:`EvaluationSettings`. Each detector's run is one typed
:class:`RunResult` (with its :class:`RunProvenance`), built from the records
(:mod:`.records`, :mod:`.execution`) and their reduction (:mod:`.reduction`), and serialised with
``to_dict()`` into ``Results.runs`` (the ``results.json`` layout the schema validates).
"""
from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..cache import RecordCache, evaluation_key
from ..dataset import Dataset, sample_fingerprint
from ..detectors.base import Detector
from ..detectors.registry import get_detector
from ..errors import DatasetError, DetectorError
from ..metrics import Binning
from ..metrics.operating import choose_threshold, rates_at
from ..results import Results, check_results_destination, run_meta
from .execution import Runner, collect
from .records import RecordSpec, SampleFailure, SampleRecord
from .reduction import RunReduction, reduce_run
from .run import (
    DatasetProvenance,
    DetectorProvenance,
    ExecutionProvenance,
    OperatingPointProvenance,
    RunProvenance,
    RunResult,
)
from .settings import DEFAULT_OPERATING_POINT, EvaluationSettings


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
    halo: str | None = None,
    progress: bool = True,
    out: str | os.PathLike[str] | None = None,
    operating_point: str = DEFAULT_OPERATING_POINT,
    operating_split: str | None = "val",
    per_cr: bool = True,
    sources: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
    cache: bool | str | os.PathLike[str] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    client: Any = None,
    timeout: float | None = None,
    overwrite: bool = False,
) -> Results:
    """Score detectors on one dataset split.

    The keyword arguments are the fields of :class:`EvaluationSettings`
    (:func:`evaluate_with` takes them as one object).

    Parameters
    ----------
    detectors : name, ``module:Class`` spec, Detector, or a list of them
        What to score.
    dataset : Dataset, folder path or recipe name
        The data (a recipe name is built into the data dir if needed).
    split : str
        ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
    protocol : str, optional
        ``'crbench'`` (default), ``'deepcr'`` or ``'cosmic-conn'``; ``dilation``, ``ignore``,
        ``pooling`` and ``halo`` override single conventions (see :mod:`crbench.conventions`).
    n_bins : int, optional
        Number of score bins for continuous scores (default 32768).
    on_error : {'continue', 'raise'}
        On a detector failure (exception, bad output, timeout), record the sample as failed and go on
        (default), or raise.
    progress : bool
        Show a tqdm progress bar.
    out : path, optional
        Folder to write ``results.csv``, ``results.json`` and ``results_by_morphology.csv`` into.
    operating_point : str
        ``'fpr:<target>'`` (default ``'fpr:5e-4'``) or ``'dice'``: the rule choosing the threshold at
        which per-CR and source metrics are reported. Both rules' thresholds are always recorded.
    operating_split : str or None
        Split on which the threshold is chosen (default ``'val'``), then applied unchanged; ``None``,
        an empty split, ``split`` itself (or ``'all'``), or ``'val'`` on a dataset without one choose it
        in-sample. Any other name the dataset lacks is an error.
    per_cr, sources : bool
        Compute per-CR/per-morphology metrics and false positives on sources.
    bootstrap : int
        Bootstrap replicates for 95% intervals (0 = none), resampling images, or the dataset card's
        ``groups`` (exposure groups) when it has them.
    seed : int
        Bootstrap seed.
    cache : bool, path or None
        Resumable per-sample record cache: ``True`` = ``<data dir>/cache/records``, a path = there,
        ``None``/``False`` = off. Detectors with ``cacheable = False`` are never cached.
    workers : int
        Local worker processes (one thread each).
    scheduler : str, optional
        Address of a running dask.distributed scheduler.
    client : distributed.Client, optional
        A dask client to run on (takes precedence over ``workers`` and ``scheduler``).
    timeout : float, optional
        Seconds a detector may spend on one sample; a sample running over is recorded as failed.
    overwrite : bool
        Replace result files already in ``out`` (otherwise an existing results folder is refused
        before anything is computed).

    Returns
    -------
    Results
        One run per detector (:meth:`RunResult.to_dict`).
    """
    settings = EvaluationSettings(
        split=split, protocol=protocol, dilation=dilation, ignore=ignore, pooling=pooling, n_bins=n_bins,
        on_error=on_error, halo=halo, progress=progress, out=out, operating_point=operating_point,
        operating_split=operating_split, per_cr=per_cr, sources=sources, bootstrap=bootstrap, seed=seed,
        cache=cache, workers=workers, scheduler=scheduler, client=client, timeout=timeout, overwrite=overwrite)
    return evaluate_with(detectors, dataset, settings)


def evaluate_with(detectors: str | Detector | Iterable[str | Detector], dataset: str | Path | Dataset,
                  settings: EvaluationSettings) -> Results:
    """:func:`evaluate` with its settings as one :class:`EvaluationSettings`.

    Parameters
    ----------
    detectors : name, ``module:Class`` spec, Detector, or a list of them
        What to score.
    dataset : Dataset, folder path or recipe name
        The data (a recipe name is built into the data dir if needed).
    settings : EvaluationSettings
        How to score.

    Returns
    -------
    Results
    """
    from ..recipes import resolve_dataset

    s = settings
    if s.out is not None:
        check_results_destination(s.out, s.overwrite)
    ds = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset, progress=s.progress)
    ds.check_files()  # samples unchanged since the build (checked again before results are written)
    dets = _detectors(detectors)
    if (s.operating_split is not None and s.operating_split not in ds.splits and s.operating_split != "val"):
        raise DatasetError(f"operating split {s.operating_split!r}: dataset {ds.name!r} has no such split; it has "
                           f"{sorted(ds.splits)} (or 'none' to choose the threshold in-sample)")
    fingerprints = ({sid: sample_fingerprint(ds.sample_path(sid)) for sid in ds.ids()}
                    if s.cache_root is not None else {})
    results = Results(meta=run_meta())
    runner = Runner(workers=s.workers, client=s.client, scheduler=s.scheduler)
    try:
        for det in dets:
            results.runs.append(_run_one(det, ds, s, runner, fingerprints).to_dict())
    finally:
        runner.close()
    ds.check_files()  # a sample edited or rebuilt during the run would make the quoted hash wrong
    if s.out is not None:
        results.save(s.out, overwrite=s.overwrite)
    return results


def _detectors(detectors: str | Detector | Iterable[str | Detector]) -> list[Detector]:
    """One detector (a name, a spec, or any object with ``score``), or an iterable of them."""
    if isinstance(detectors, (str, Detector)) or hasattr(detectors, "score"):
        return [get_detector(cast("str | Detector", detectors))]
    return [get_detector(d) for d in detectors]


def _in_sample(ds: Dataset, s: EvaluationSettings) -> bool:
    op_split = s.operating_split
    return (op_split is None or op_split == s.split or s.split == "all" or op_split not in ds.splits
            or not ds.ids(op_split))


def _run_one(det: Detector, ds: Dataset, s: EvaluationSettings, runner: Runner,
             fingerprints: Mapping[str, str]) -> RunResult:
    """Score ``det`` on ``ds`` under ``s``: operating point on the validation split, then the run."""
    cache_root = s.cache_root
    binning = Binning.for_range(det.score_range, s.n_bins, integer=getattr(det, "integer_scores", False))
    base = RecordSpec(binning, s.conventions, per_cr=s.per_cr, sources=s.sources, timeout=s.timeout)

    def cache_for(spec: RecordSpec) -> RecordCache | None:
        if cache_root is None or not getattr(det, "cacheable", True):
            return None
        return RecordCache(cache_root, ds.content_hash, det.name, evaluation_key(det, **spec.cache_settings()),
                           fingerprints)

    op: dict[str, Any] = {"rule": s.rule, "target_fpr": s.target_fpr if s.rule == "fpr" else 5e-4}
    failures: dict[str, str] = {}
    spec = base
    if not _in_sample(ds, s):
        val_split = str(s.operating_split)
        val_spec = replace(base, per_cr=False, sources=False)
        val_out = collect(runner, det, ds, ds.ids(val_split), val_spec, cache_for(val_spec), s.on_error,
                          s.progress, f"{det.name} on {ds.name}/{val_split} (operating point)")
        val_ok = [r for r in val_out if isinstance(r, SampleRecord)]
        failures.update({f"{val_split}/{r.sample_id}": r.message for r in val_out if isinstance(r, SampleFailure)})
        if val_ok:
            pos = np.sum([r.pos for r in val_ok], axis=0)
            neg = np.sum([r.neg for r in val_ok], axis=0)
            th = {"fpr": choose_threshold(pos, neg, "fpr", op["target_fpr"]), "dice": choose_threshold(pos, neg, "dice")}
            op.update(thresholds=th, chosen_on=val_split,
                      validation={k: rates_at(pos, neg, t) for k, t in th.items()})
            spec = replace(base, thresholds=tuple(sorted(th.items())))
        else:
            op["chosen_on"] = "in-sample"
    ids = ds.ids(s.split)
    outcomes = collect(runner, det, ds, ids, spec, cache_for(spec), s.on_error, s.progress,
                       f"{det.name} on {ds.name}/{s.split}")
    ok = [r for r in outcomes if isinstance(r, SampleRecord)]
    failed = [r for r in outcomes if isinstance(r, SampleFailure)]
    failures.update({r.sample_id: r.message for r in failed})
    if not ok:
        raise DetectorError(f"detector {det.name!r} failed on every sample of {ds.name}/{s.split}; "
                            f"first error: {next(iter(failures.values()))}")
    groups_map = ds.groups()
    groups = [groups_map.get(r.sample_id, r.sample_id) for r in ok] if ds.card.get("groups") else None
    red = reduce_run(ok, binning, s.conventions, op=op, groups=groups, n_boot=s.bootstrap, seed=s.seed,
                     sweep=bool(getattr(det, "integer_scores", False)))
    return _run_result(det, ds, s, red, op, binning, len(ok), len(failed), len(ids), failures)


def _run_result(det: Detector, ds: Dataset, s: EvaluationSettings, red: RunReduction, op: dict[str, Any],
                binning: Binning, n_ok: int, n_failed: int, n_samples: int,
                failures: dict[str, str]) -> RunResult:
    row: dict[str, Any] = {"detector": det.name, "dataset": ds.name, "split": s.split, "n_images": n_ok}
    row.update(red["summary"])
    row["n_failed"] = n_failed
    morph_rows = [{"detector": det.name, "dataset": ds.name, "split": s.split, **r} for r in red["by_morphology"]]
    provenance = RunProvenance(
        detector=DetectorProvenance.of(det),
        dataset=DatasetProvenance(ds.name, ds.version, ds.content_hash, s.split, n_samples, str(ds.root)),
        conventions=s.conventions.to_dict(), not_comparable=red["not_comparable"], binning=binning.to_dict(),
        operating_point=OperatingPointProvenance(row["op_rule"], op.get("chosen_on"), row["op_threshold"]),
        bootstrap=red["bootstrap"], failed_samples=failures, execution=ExecutionProvenance.of(s),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return RunResult(det.name, ds.name, s.split, row, red["curve"], morph_rows, dict(red["operating_points"]),
                     provenance)
