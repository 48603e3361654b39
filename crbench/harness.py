"""The evaluation harness: run detectors over a dataset split and reduce per-sample records.

Each (detector, sample) evaluation yields a :class:`SampleRecord` of small, threshold-free pieces:
per-class score histograms (overall, per morphology, on sources), a per-CR instance table, a
per-source table and a sparse CR-charge histogram. Records add up, so the same reduction serves
serial, process-pool and dask runs, resumes from a cache, and gives bootstrap replicates by
re-weighting records instead of rescoring.

Operating points: a threshold is chosen on the validation split (for a target FPR, or the best
Dice) and applied unchanged to the evaluated split; per-CR metrics, false positives on sources and
false-positive components are reported there. Without a separate validation split the threshold
is chosen on the evaluated split itself (recorded as in-sample) and false-positive components,
which need the threshold while the score map exists, are not available.

Threads: astroscrappy (LACosmic) parallelises with OpenMP. Worker processes started by
``workers=N`` set ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS/torch to one thread) before any
detector is imported, so N workers use N cores; start dask workers the same way
(``OMP_NUM_THREADS=1 dask worker ADDRESS --nthreads 1``) - several threads in one worker calling
astroscrappy each spawn their own OpenMP team and oversubscribe the cores.
"""
from __future__ import annotations

import os
import resource
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from .conventions import Conventions, resolve_conventions
from .dataset import Dataset
from .detectors.base import Detector, check_score_map
from .detectors.registry import get_detector
from .errors import CRBenchError, DatasetError, DependencyError, DetectorError, UsageError
from .metrics import Binning, curve_from_histograms, summarize
from .metrics.bootstrap import interval, replicate_weights
from .metrics.instances import (PER_CR_RULES, charge_histogram_from_pixels, cr_pixel_charge, fp_components,
                                fp_components_sparse, instance_table_from_pixels, per_cr_recall)
from .metrics.operating import (canonical_operating_point, choose_threshold, parse_operating_point,  # noqa: F401
                                rates_at, reached, threshold_value)
from .metrics.protocols import protocol_summary
from .metrics.sources import SNR_EDGES, source_table
from .metrics.summary import NOT_REACHED, tpr_at_fpr
from .metrics.wilson import MIN_RANKABLE_CRS, wilson_interval
from .observation import Observation
from .results import MORPHOLOGY_COLUMNS, Results, run_meta  # noqa: F401 (re-exported)
from .sample import MORPHOLOGIES, Sample

#: Default rule of the operating point: threshold at this FPR on the validation split.
DEFAULT_OPERATING_POINT = "fpr:5e-4"
#: FPR of the per-morphology pixel TPR column.
MORPHOLOGY_FPR = 5e-4
#: An operating point's achieved FPR is flagged (``op_fpr_off_target``) when it differs from the
#: target by more than this fraction of the target.
OP_FPR_TOLERANCE = 0.25
#: PSF FWHM (pixels) used for sources when a sample's meta has none.
DEFAULT_FWHM = 2.0


@dataclass
class SampleRecord:
    """What one (detector, sample) evaluation returns: small arrays and tables that add up.

    Attributes
    ----------
    pos, neg : ndarray of int64 (n_bins,)
        Score histograms of CR and non-CR pixels under the run's conventions.
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
    pos: np.ndarray | None = None
    neg: np.ndarray | None = None
    seconds: float = 0.0
    n_pixels: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    morph_pos: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    neg_src: np.ndarray | None = None
    instances: pd.DataFrame | None = None
    charge_hist: tuple[np.ndarray, np.ndarray] | None = None
    sources: pd.DataFrame | None = None
    fp_components: dict[str, int] = field(default_factory=dict)


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


class DetectorFailure(UserWarning):
    """Warning emitted when a detector fails on one sample and the run goes on."""


class _Timeout(BaseException):
    """Raised by the alarm handler inside a detector call (BaseException: detectors' ``except
    Exception`` blocks do not swallow it)."""


# ------------------------------------------------------------------------------------ scoring
def run_detector(detector: Detector, sample: Sample | Observation,
                 timeout: float | None = None) -> tuple[np.ndarray, float]:
    """Run ``detector`` on ``sample``'s observation, validate its output and time it.

    The detector gets only :meth:`Sample.observation` (image, companions, instrument mask and
    instrument meta, as read-only copies): never the truth, ignore mask, labels or sources.

    Parameters
    ----------
    sample : Sample or Observation
        The sample to score (or an observation already built from it).
    timeout : float, optional
        Seconds allowed. In the main thread of a process (serial runs and ``workers=N``) the call
        is interrupted by ``SIGALRM`` when it runs over (Python-level code and C calls that return
        control in between; one long C call ends first); elsewhere (dask worker threads) a call
        that ran over is discarded after it returns.

    Raises
    ------
    DetectorError
        If the detector lacks a required input, raises, runs past ``timeout``, or returns a
        wrong-shaped or non-finite map.
    """
    obs = sample.observation() if isinstance(sample, Sample) else sample
    check = getattr(detector, "check_inputs", None)
    if check is not None:
        check(obs)
    use_alarm = (timeout is not None and timeout > 0 and hasattr(signal, "setitimer")
                 and threading.current_thread() is threading.main_thread())
    previous = None
    t0 = time.perf_counter()
    try:
        if use_alarm:
            previous = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
        try:
            raw = detector.score(obs)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        raise DetectorError(f"detector {detector.name!r} exceeded the {timeout:g} s timeout on sample "
                            f"{sample.id!r}") from None
    except CRBenchError:
        raise
    except Exception as exc:
        raise DetectorError(f"detector {detector.name!r} raised on sample {sample.id!r}: "
                            f"{type(exc).__name__}: {exc}") from exc
    except SystemExit as exc:  # sys.exit() in detector code must not end the whole run silently
        raise DetectorError(f"detector {detector.name!r} called sys.exit({exc.code!r}) on sample "
                            f"{sample.id!r}") from exc
    finally:
        if use_alarm and previous is not None:
            signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - t0
    if timeout is not None and timeout > 0 and seconds > timeout:
        raise DetectorError(f"detector {detector.name!r} exceeded the {timeout:g} s timeout on sample "
                            f"{sample.id!r} (took {seconds:.1f} s)")
    return check_score_map(raw, obs, detector.name), seconds


def _on_alarm(signum, frame):  # pragma: no cover - exercised through run_detector
    raise _Timeout()


def _class_counts(bins: np.ndarray, truth: np.ndarray, n: int, valid: np.ndarray | None):
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


def _prepared(score: np.ndarray, sample: Sample, binning: Binning, conventions: Conventions):
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


def _histograms(pos_bins, neg_bins, truth, valid, ignore, has_ignore, n, conventions):
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
        morph = {}
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
                m = np.zeros(nb.size, bool)
                m[sub] = True
                rec.fp_components[name] = fp_components(m.reshape(neg_bins.shape), truth)
            else:
                rec.fp_components[name] = fp_components_sparse(sub, truth, neg_bins.shape)
    return rec


def evaluate_sample(detector: Detector, sample: Sample, binning: Binning, conventions: Conventions, *,
                    spec: RecordSpec | None = None) -> SampleRecord:
    """Score one sample and reduce it to a :class:`SampleRecord` (errors are raised).

    With only ``binning`` and ``conventions`` the record carries the pixel histograms alone (fast
    path); pass a :class:`RecordSpec` for per-CR, per-morphology and source pieces.
    """
    if spec is None:
        spec = RecordSpec(binning, conventions, per_cr=False, sources=False)
    score, seconds = run_detector(detector, sample, spec.timeout)
    return compute_record(score, sample, spec, seconds)


def score_one(detector: Detector, dataset_root: str, sample_id: str, spec: RecordSpec) -> SampleRecord:
    """Worker task: load one sample, score it, return its record (detector failures become an
    error record; anything else raises). Module-level so process pools and dask can pickle it."""
    ds = Dataset.open(dataset_root, check_files=False)  # checked once by evaluate, not per task
    sample = ds.check_labelled(ds.load(sample_id, load_companions=any(r != "image" for r in detector.requires)))
    try:
        return evaluate_sample(detector, sample, spec.binning, spec.conventions, spec=spec)
    except DetectorError as exc:
        return SampleRecord(sample_id, error=str(exc))


def _die_with(parent_pid: int) -> None:
    """Make this worker process exit when ``parent_pid`` (the evaluating process) is gone.

    On Linux the kernel sends SIGKILL when the worker's parent exits (``PR_SET_PDEATHSIG``; the
    parent of a forkserver worker is the forkserver, which exits with the evaluating process).
    Everywhere, a daemon thread also polls ``parent_pid`` once a second and exits the worker
    when it has disappeared.
    """
    import signal
    import sys
    import threading
    import time

    # Only for forkserver workers: a worker spawned by the evaluating process itself would get the
    # signal when the *thread* that started it ends, which may be long before the process does.
    if sys.platform.startswith("linux") and os.getppid() != parent_pid:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - no libc: the thread still watches
            pass

    def alive() -> bool:
        try:  # Linux: a killed parent its own parent has not reaped yet is a zombie, i.e. gone
            with open(f"/proc/{parent_pid}/stat", "rb") as fh:
                return fh.read().rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")
        except FileNotFoundError:
            return False
        except OSError:  # pragma: no cover - no /proc
            pass
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover
            return True
        return True

    if not alive():
        os._exit(1)

    def watch() -> None:
        while alive():
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="crbench-parent-watch", daemon=True).start()


def _worker_init(parent_pid: int | None = None) -> None:
    """One thread per worker process: set before any detector library starts its thread pools; the
    worker dies with ``parent_pid`` (see :func:`_die_with`)."""
    if parent_pid is not None:
        _die_with(parent_pid)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


# ------------------------------------------------------------------------------- execution
class _Runner:
    """Produce records for sample ids: serially, on a local process pool, or on a dask client."""

    def __init__(self, workers: int = 1, client: Any = None, scheduler: str | None = None) -> None:
        if workers < 1:
            raise UsageError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.client = client
        self._own_client = False
        if client is None and scheduler:
            try:
                from distributed import Client
            except ImportError as exc:  # pragma: no cover
                raise DependencyError("--scheduler needs dask.distributed: pip install 'dask[distributed]'") from exc
            self.client = Client(scheduler)
            self._own_client = True
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._own_client and self.client is not None:
            self.client.close()
            self.client = None

    def run(self, det: Detector, ds: Dataset, ids: Sequence[str], spec: RecordSpec) -> Iterator[SampleRecord]:
        if not ids:
            return
        root = str(Path(ds.root).resolve())
        if self.client is not None:
            yield from self._run_dask(det, root, ids, spec)
        elif self.workers > 1:
            yield from self._run_pool(det, root, ids, spec)
        else:
            for sid in ids:
                sample = ds.check_labelled(ds.load(sid, load_companions=any(r != "image" for r in det.requires)))
                try:
                    yield evaluate_sample(det, sample, spec.binning, spec.conventions, spec=spec)
                except DetectorError as exc:
                    yield SampleRecord(sid, error=str(exc))

    def _get_pool(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context(method),
                                             initializer=_worker_init, initargs=(os.getpid(),))
        return self._pool

    def _run_pool(self, det, root, ids, spec):
        from concurrent.futures import as_completed

        pool = self._get_pool()
        futures = [pool.submit(score_one, det, root, sid, spec) for sid in ids]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:
            for f in futures:
                f.cancel()

    def _run_dask(self, det, root, ids, spec):
        from distributed import as_completed

        det_f = self.client.scatter(det, broadcast=True, hash=False)
        futures = [self.client.submit(score_one, det_f, root, sid, spec, pure=False) for sid in ids]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:
            self.client.cancel(futures)


def _collect(runner: _Runner, det: Detector, ds: Dataset, ids: Sequence[str], spec: RecordSpec,
             cache, on_error: str, progress: bool, label: str) -> list[SampleRecord]:
    """Records of ``ids`` in id order: cached ones read, the rest computed (and cached as they land)."""
    got: dict[str, SampleRecord] = {}
    todo = []
    for sid in ids:
        rec = cache.get(sid) if cache is not None else None
        if rec is not None:
            got[sid] = rec
        else:
            todo.append(sid)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc=label, unit="img", leave=False)
    try:
        for rec in runner.run(det, ds, todo, spec):
            if rec.error is not None:
                if on_error == "raise":
                    raise DetectorError(rec.error)
                warnings.warn(rec.error, DetectorFailure, stacklevel=3)
            elif cache is not None:
                cache.put(rec)
            got[rec.sample_id] = rec
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [got[sid] for sid in ids]


# ------------------------------------------------------------------------------- reduction
class _Stacks:
    """The records of one run, stacked for weighted reduction (weights = bootstrap replicate)."""

    def __init__(self, records: Sequence[SampleRecord], n_bins: int) -> None:
        self.n = len(records)
        self.n_bins = n_bins
        self.POS = np.stack([r.pos for r in records]).astype(np.float64)
        self.NEG = np.stack([r.neg for r in records]).astype(np.float64)
        self.npix = np.array([r.n_pixels for r in records], dtype=np.float64)
        self.seconds = np.array([r.seconds for r in records], dtype=np.float64)
        src = [r.neg_src for r in records]
        self.has_src = any(s is not None for s in src)
        self.NEG_SRC = (np.stack([s if s is not None else np.zeros(n_bins, np.int64) for s in src]).astype(np.float64)
                        if self.has_src else None)
        # instance tables with the record index
        tabs = [(i, r.instances) for i, r in enumerate(records) if r.instances is not None and len(r.instances)]
        self.has_inst = any(r.instances is not None for r in records)
        if tabs:
            self.inst = pd.concat([t.assign(rec=i) for i, t in tabs], ignore_index=True)
        else:
            self.inst = pd.DataFrame({"rec": pd.Series([], dtype="int64"), "morphology": pd.Series([], dtype=object),
                                      "pixels": [], "charge": [], "bin_any": [], "bin_half": [], "bin_charge90": []})
        ch = [(i, r.charge_hist) for i, r in enumerate(records) if r.charge_hist is not None]
        self.ch_rec = np.concatenate([np.full(len(h[0]), i) for i, h in ch]) if ch else np.zeros(0, int)
        self.ch_bin = np.concatenate([h[0] for _, h in ch]) if ch else np.zeros(0, int)
        self.ch_q = np.concatenate([h[1] for _, h in ch]) if ch else np.zeros(0)
        mp_ = {}
        for i, r in enumerate(records):
            for m, (idx, cnt) in r.morph_pos.items():
                mp_.setdefault(m, []).append((np.full(len(idx), i), idx, cnt))
        self.morph = {m: tuple(np.concatenate(p) for p in zip(*parts)) for m, parts in mp_.items()}
        st = [(i, r.sources) for i, r in enumerate(records) if r.sources is not None and len(r.sources)]
        self.has_sources = any(r.sources is not None for r in records)
        self.src = pd.concat([t.assign(rec=i) for i, t in st], ignore_index=True) if st else None
        names = sorted({k for r in records for k in r.fp_components})
        self.fp_names = names
        self.FP = {k: np.array([r.fp_components.get(k, np.nan) for r in records], dtype=np.float64) for k in names}

    # --- weighted pooled pieces
    def pos_neg(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return w @ self.POS, w @ self.NEG

    def morph_pos(self, m: str, w: np.ndarray) -> np.ndarray:
        rec, idx, cnt = self.morph[m]
        return np.bincount(idx, weights=w[rec] * cnt, minlength=self.n_bins)


def _pixel_summary(stacks: _Stacks, w: np.ndarray, binning: Binning, conventions: Conventions,
                   per_image: list[dict[str, Any]] | None, floor_point: bool = False) -> tuple[Any, dict[str, Any]]:
    pos, neg = stacks.pos_neg(w)
    curve = curve_from_histograms(np.rint(pos).astype(np.int64), np.rint(neg).astype(np.int64), binning)
    floor = floor_point and (pos[0] + neg[0]) > 0
    if conventions.pooling == "pooled" or per_image is None:
        summary = summarize(curve, floor_point=floor)
    else:
        summary = {}
        for k, v0 in per_image[0].items():
            if isinstance(v0, (str, bool)):
                continue
            v = np.array([p[k] for p in per_image], dtype=float)
            ok = np.isfinite(v) & (w > 0)
            summary[k] = float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")
            if not ok.any():
                summary[f"{k}_status"] = f"{NOT_REACHED} on any image"
        summary["roc_auc_extrapolated"] = bool(floor)
    summary.update(protocol_summary(conventions.protocol, curve, stacks.POS, stacks.NEG, binning.lower_edges(), w))
    summary = {k: v for k, v in summary.items() if not (k.endswith("_status") and v == "ok")}
    n_pos, n_all = pos.sum(), pos.sum() + neg.sum()
    summary["cr_pixel_fraction"] = float(n_pos / n_all) if n_all else float("nan")
    mpix = float(w @ stacks.npix) / 1e6
    summary["seconds_per_mpix"] = float(w @ stacks.seconds) / mpix if mpix else float("nan")
    return curve, summary


def _op_metrics(stacks: _Stacks, w: np.ndarray, t: int, name: str) -> dict[str, Any]:
    """Every operating-point number at bin threshold ``t`` (flat dict); NaN with ``op_status`` when
    the threshold flags nothing (not reached)."""
    pos, neg = stacks.pos_neg(w)
    ok = reached(t, pos, neg)
    nan = float("nan")
    out: dict[str, Any] = {f"op_{k}": (v if ok else nan) for k, v in rates_at(pos, neg, t).items()}
    if not ok:
        out["op_status"] = f"{NOT_REACHED}: no threshold meets the rule (it would flag nothing)"
    if stacks.has_inst:
        inst = stacks.inst
        wi = w[inst["rec"].to_numpy()] if len(inst) else np.zeros(0)
        rec = per_cr_recall(inst, t, wi)
        out["n_crs"] = rec["n_crs"]
        for rule, _ in PER_CR_RULES:
            out[rule] = rec[rule] if ok else nan
            out[f"{rule}_found"] = rec[f"{rule}_found"] if ok else nan
        wq = w[stacks.ch_rec] * stacks.ch_q
        total_q = float(wq.sum())
        out["residual_charge_e"] = float(wq[stacks.ch_bin < t].sum()) if ok else nan
        out["residual_charge_fraction"] = (out["residual_charge_e"] / total_q if total_q and ok else nan)
    if name in stacks.FP and ok:
        mpix = float(w @ stacks.npix) / 1e6
        out["fp_components_per_mpix"] = float(w @ stacks.FP[name]) / mpix if mpix else nan
    else:
        out["fp_components_per_mpix"] = nan
    if stacks.has_sources:
        if stacks.src is not None:
            ws = w[stacks.src["rec"].to_numpy()]
            flagged = stacks.src["bin_max"].to_numpy() >= t
            out["n_sources"] = float(ws.sum())
            out["source_flag_fraction"] = float(ws @ flagged) / ws.sum() if ws.sum() and ok else nan
        else:
            out["n_sources"], out["source_flag_fraction"] = 0.0, nan
        if stacks.NEG_SRC is not None:
            ns = w @ stacks.NEG_SRC
            sky = neg - ns
            out["fpr_sources"] = float(ns[t:].sum() / ns.sum()) if ns.sum() and ok else nan
            out["fpr_sky"] = float(sky[t:].sum() / sky.sum()) if sky.sum() and ok else nan
    return out


def _wilson_columns(row: dict[str, Any]) -> None:
    """``<rule>_lo``/``_hi`` Wilson 95% intervals of the per-CR recalls (found out of n_crs)."""
    if "n_crs" not in row:
        return
    n = row.get("n_crs")
    for rule, _ in PER_CR_RULES:
        k = row.get(f"{rule}_found")
        if n is None or k is None or not np.isfinite(k) or not n:
            row[f"{rule}_lo"], row[f"{rule}_hi"] = float("nan"), float("nan")
            continue
        row[f"{rule}_lo"], row[f"{rule}_hi"] = wilson_interval(round(k), round(n))


def _by_snr(stacks: _Stacks, t: int) -> list[dict[str, Any]]:
    rows = []
    if stacks.src is None:
        return rows
    snr = stacks.src["snr"].to_numpy()
    flagged = stacks.src["bin_max"].to_numpy() >= t
    for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:]):
        sel = (snr >= lo) & (snr < hi)
        k = int(sel.sum())
        rows.append({"snr_lo": float(lo), "snr_hi": float(hi) if np.isfinite(hi) else None, "n_sources": k,
                     "flag_fraction": float(flagged[sel].mean()) if k else float("nan")})
    return rows


def _morph_metrics(stacks: _Stacks, w: np.ndarray, t: int, binning: Binning) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if not stacks.has_inst:
        return out
    pos_all, neg = stacks.pos_neg(w)
    ok = reached(t, pos_all, neg)
    inst = stacks.inst
    present = set(inst["morphology"].astype(str)) | set(stacks.morph)
    order = [m for m in MORPHOLOGIES if m in present] + sorted(present - set(MORPHOLOGIES))
    rec = inst["rec"].to_numpy()
    morph_col = inst["morphology"].astype(str).to_numpy()
    for m in order:
        sel = morph_col == m
        wi = w[rec[sel]]
        sub = inst[sel]
        r = per_cr_recall(sub, t, wi)
        row = {"n_crs": r["n_crs"], "cr_pixels": float(wi @ sub["pixels"].to_numpy())}
        for rule, _ in PER_CR_RULES:
            row[rule] = r[rule] if ok else float("nan")
            row[f"{rule}_found"] = r[f"{rule}_found"] if ok else float("nan")
        if m in stacks.morph:
            mp = stacks.morph_pos(m, w)
            c = curve_from_histograms(np.rint(mp).astype(np.int64), np.rint(neg).astype(np.int64), binning)
            row["pixel_tpr_at_fpr_5e-4"] = tpr_at_fpr(c, MORPHOLOGY_FPR)
        else:
            row["pixel_tpr_at_fpr_5e-4"] = float("nan")
        out[m] = row
    return out


def _curve_dict(curve) -> dict[str, Any]:
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


def _flat_keys(summary: dict[str, Any]) -> list[str]:
    return [k for k, v in summary.items() if isinstance(v, (float, int, np.floating)) and not isinstance(v, bool)
            and k not in ("n_images", "n_failed", "n_crs", "n_sources", "op_threshold")]


def reduce_run(records: Sequence[SampleRecord], binning: Binning, conventions: Conventions, *,
               op: dict[str, Any] | None = None, groups: Sequence[str] | None = None, n_boot: int = 0,
               seed: int = 0, sweep: bool = False) -> dict[str, Any]:
    """Reduce successful records to the run's summary, curve, operating points and morphology rows.

    Parameters
    ----------
    records : sequence of SampleRecord
        Successful records (no error).
    binning, conventions
        The run's bins and conventions.
    op : dict, optional
        ``{'rule': 'fpr'|'dice', 'thresholds': {'fpr': t, 'dice': t}, ...}``: bin thresholds fixed
        beforehand (e.g. on the validation split). Chosen on ``records`` themselves when missing.
    groups : sequence of str, optional
        Bootstrap group of each record (default: each its own).
    n_boot, seed : int
        Bootstrap replicates (0 = none) and seed.
    sweep : bool
        The detector is a parameter sweep (integer scores): its lowest bin ("flagged by no
        setting") is no operating point, so metrics beyond its loosest setting are not reached and
        ``roc_auc_extrapolated`` is True.

    Returns
    -------
    dict
        ``summary`` (flat, with ``_lo``/``_hi`` when bootstrapped), ``curve``, ``operating_points``,
        ``by_morphology`` (rows), ``sources_by_snr``, ``not_comparable``. Per-CR recalls carry
        Wilson 95% intervals (``_lo``/``_hi``, found out of ``n_crs``); a morphology with fewer than
        ``MIN_RANKABLE_CRS`` CRs has ``rankable`` False. An operating point that flags nothing is
        not reached: threshold and metrics NaN, ``op_status`` says why.
    """
    stacks = _Stacks(records, binning.n_bins)
    ones = np.ones(stacks.n)
    per_image = None
    if conventions.pooling == "per-image":
        per_image = [summarize(c, floor_point=sweep and (r.pos[0] + r.neg[0]) > 0)
                     for r in records for c in [curve_from_histograms(r.pos, r.neg, binning)]]
    curve, summary = _pixel_summary(stacks, ones, binning, conventions, per_image, sweep)
    op = dict(op or {})
    rule = op.get("rule", "fpr")
    target = op.get("target_fpr", 5e-4)
    thresholds = dict(op.get("thresholds") or {})
    if not thresholds:
        pos, neg = stacks.pos_neg(ones)
        thresholds = {"fpr": choose_threshold(pos, neg, "fpr", target), "dice": choose_threshold(pos, neg, "dice")}
        op.setdefault("chosen_on", "in-sample")
    edges = binning.lower_edges()
    points = {}
    for name, t in thresholds.items():
        m = _op_metrics(stacks, ones, t, name)
        points[name] = {"threshold": threshold_value(edges, t), "bin": int(t),
                        "chosen_on": op.get("chosen_on"), "validation": (op.get("validation") or {}).get(name),
                        "metrics": m, "sources_by_snr": _by_snr(stacks, t)}
    t_sel = thresholds[rule]
    summary["op_rule"] = canonical_operating_point(f"fpr:{float(target)!r}" if rule == "fpr" else "dice")
    summary["op_chosen_on"] = str(op.get("chosen_on"))
    summary["op_threshold"] = points[rule]["threshold"]
    summary.update(points[rule]["metrics"])
    if rule == "fpr":
        achieved = summary.get("op_fpr", float("nan"))
        summary["op_fpr_target"] = float(target)
        summary["op_fpr_achieved"] = achieved
        summary["op_fpr_off_target"] = bool(not np.isfinite(achieved)
                                            or abs(achieved - target) > OP_FPR_TOLERANCE * target)
    _wilson_columns(summary)
    morph = _morph_metrics(stacks, ones, t_sel, binning)
    band = {}
    if n_boot > 0:
        W = replicate_weights(groups if groups is not None else [str(i) for i in range(stacks.n)], n_boot, seed)
        reps, morph_reps, tpr_reps, prec_reps = [], [], [], []
        fpr_grid = np.asarray(_curve_dict(curve)["fpr"])
        rec_grid = np.asarray(_curve_dict(curve)["recall"])
        for w in W:
            c_b, s_b = _pixel_summary(stacks, w, binning, conventions, per_image, sweep)
            s_b.update(_op_metrics(stacks, w, t_sel, rule))
            reps.append(s_b)
            morph_reps.append(_morph_metrics(stacks, w, t_sel, binning))
            fpr_b, tpr_b = np.r_[0.0, c_b.fpr], np.r_[0.0, c_b.tpr]
            tpr_reps.append(np.interp(fpr_grid, fpr_b, tpr_b))
            prec_reps.append(np.interp(rec_grid, c_b.tpr, c_b.precision) if len(c_b.tpr) else np.full(len(rec_grid), np.nan))
        wilson = {r for r, _ in PER_CR_RULES} | {f"{r}_{e}" for r, _ in PER_CR_RULES for e in ("found", "lo", "hi")}
        for k in _flat_keys(summary):
            if k in ("op_threshold", "op_fpr_target") or k in wilson:
                continue
            lo, hi = interval(np.array([r.get(k, np.nan) for r in reps], dtype=float))
            summary[f"{k}_lo"], summary[f"{k}_hi"] = float(lo), float(hi)
        for m, row in morph.items():
            for k in ("pixel_tpr_at_fpr_5e-4",):
                lo, hi = interval(np.array([mr.get(m, {}).get(k, np.nan) for mr in morph_reps], dtype=float))
                row[f"{k}_lo"], row[f"{k}_hi"] = float(lo), float(hi)
        lo, hi = interval(np.array(tpr_reps))
        band["tpr_lo"], band["tpr_hi"] = [float(x) for x in np.clip(lo, 0, 1)], [float(x) for x in np.clip(hi, 0, 1)]
        lo, hi = interval(np.array(prec_reps))
        band["precision_lo"] = [float(x) for x in np.clip(lo, 0, 1)]
        band["precision_hi"] = [float(x) for x in np.clip(hi, 0, 1)]
    cd = _curve_dict(curve)
    cd.update(band)
    rows = []
    for m, row in morph.items():
        r = {"morphology": m}
        r.update(row)
        r["n_crs"] = int(round(r["n_crs"]))
        r["cr_pixels"] = int(round(r["cr_pixels"]))
        _wilson_columns(r)
        r["rankable"] = bool(r["n_crs"] >= MIN_RANKABLE_CRS)
        rows.append(r)
    nc = conventions.not_comparable()
    if nc:
        summary["not_comparable"] = ";".join(nc)
    return {"summary": summary, "curve": cd, "operating_points": points, "by_morphology": rows,
            "not_comparable": nc,
            "bootstrap": {"replicates": int(n_boot), "seed": int(seed), "level": 0.95,
                          "unit": "group" if groups is not None and len(set(groups)) < stacks.n else "image"}}


# ---------------------------------------------------------------------------------- evaluate
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
    out: str | Path | None = None,
    operating_point: str = DEFAULT_OPERATING_POINT,
    operating_split: str | None = "val",
    per_cr: bool = True,
    sources: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
    cache: bool | str | Path | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    client: Any = None,
    timeout: float | None = None,
    overwrite: bool = False,
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
    """
    from .cache import RecordCache, default_cache_dir, evaluation_key
    from .dataset import sample_fingerprint
    from .recipes import resolve_dataset
    from .results import check_results_destination

    if on_error not in ("continue", "raise"):
        raise UsageError(f"on_error must be 'continue' or 'raise', got {on_error!r}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if bootstrap < 0:
        raise UsageError(f"bootstrap must be >= 0 replicates (0 = no intervals), got {bootstrap!r}")
    rule, target = parse_operating_point(operating_point)
    conventions = resolve_conventions(protocol, dilation=dilation, ignore=ignore, pooling=pooling, halo=halo)
    if out is not None:
        check_results_destination(out, overwrite)
    ds = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset, progress=progress)
    ds.check_files()  # samples unchanged since the build (checked again before results are written)
    if isinstance(detectors, (str, Detector)) or hasattr(detectors, "score"):
        detectors = [detectors]  # type: ignore[list-item]
    dets = [get_detector(d) for d in detectors]  # type: ignore[union-attr]
    ids = ds.ids(split)
    groups_map = ds.groups()
    use_groups = bool(ds.card.get("groups"))
    cache_root = None
    if cache is True:
        cache_root = default_cache_dir()
    elif cache:
        cache_root = Path(cache)
    if operating_split is not None and operating_split not in ds.splits and operating_split != "val":
        raise DatasetError(f"operating split {operating_split!r}: dataset {ds.name!r} has no such split; it has "
                           f"{sorted(ds.splits)} (or 'none' to choose the threshold in-sample)")
    fingerprints = ({sid: sample_fingerprint(ds.sample_path(sid)) for sid in ds.ids()}
                    if cache_root is not None else {})
    in_sample = (operating_split is None or operating_split == split or split == "all"
                 or operating_split not in ds.splits or not ds.ids(operating_split))
    results = Results(meta=run_meta())
    runner = _Runner(workers=workers, client=client, scheduler=scheduler)
    try:
        for det in dets:
            binning = Binning.for_range(det.score_range, n_bins, integer=getattr(det, "integer_scores", False))
            base = RecordSpec(binning, conventions, per_cr=per_cr, sources=sources, timeout=timeout)

            def cache_for(spec: RecordSpec):
                if cache_root is None or not getattr(det, "cacheable", True):
                    return None
                return RecordCache(cache_root, ds.content_hash, det.name,
                                   evaluation_key(det, **spec.cache_settings()), fingerprints)

            op: dict[str, Any] = {"rule": rule, "target_fpr": target if rule == "fpr" else 5e-4}
            failures: dict[str, str | None] = {}
            spec = base
            if not in_sample:
                val_ids = ds.ids(operating_split)
                val_spec = replace(base, per_cr=False, sources=False)
                val_recs = _collect(runner, det, ds, val_ids, val_spec, cache_for(val_spec), on_error, progress,
                                    f"{det.name} on {ds.name}/{operating_split} (operating point)")
                ok = [r for r in val_recs if r.error is None]
                failures.update({f"{operating_split}/{r.sample_id}": r.error for r in val_recs if r.error})
                if ok:
                    pos = np.sum([r.pos for r in ok], axis=0)
                    neg = np.sum([r.neg for r in ok], axis=0)
                    th = {"fpr": choose_threshold(pos, neg, "fpr", op["target_fpr"]),
                          "dice": choose_threshold(pos, neg, "dice")}
                    op["thresholds"] = th
                    op["chosen_on"] = operating_split
                    op["validation"] = {k: rates_at(pos, neg, t) for k, t in th.items()}
                    spec = replace(base, thresholds=tuple(sorted(th.items())))
                else:
                    op["chosen_on"] = "in-sample"
            records = _collect(runner, det, ds, ids, spec, cache_for(spec), on_error, progress,
                               f"{det.name} on {ds.name}/{split}")
            ok = [r for r in records if r.error is None]
            failures.update({r.sample_id: r.error for r in records if r.error is not None})
            if not ok:
                raise DetectorError(f"detector {det.name!r} failed on every sample of {ds.name}/{split}; "
                                    f"first error: {next(iter(failures.values()))}")
            groups = [groups_map.get(r.sample_id, r.sample_id) for r in ok] if use_groups else None
            red = reduce_run(ok, binning, conventions, op=op, groups=groups, n_boot=bootstrap, seed=seed,
                             sweep=bool(getattr(det, "integer_scores", False)))
            row = {"detector": det.name, "dataset": ds.name, "split": split, "n_images": len(ok)}
            row.update(red["summary"])
            row["n_failed"] = len([r for r in records if r.error is not None])
            morph_rows = [{"detector": det.name, "dataset": ds.name, "split": split, **r} for r in red["by_morphology"]]
            results.runs.append({
                "detector": det.name,
                "dataset": ds.name,
                "split": split,
                "summary": row,
                "curve": red["curve"],
                "by_morphology": morph_rows,
                "operating_points": red["operating_points"],
                "provenance": {
                    "detector": {"name": det.name, "class": f"{type(det).__module__}:{type(det).__qualname__}",
                                 "version": det.version, "params": det.params(), "params_hash": det.params_hash(),
                                 "trained_on": list(getattr(det, "trained_on", ()))},
                    "dataset": {"name": ds.name, "version": ds.version, "content_hash": ds.content_hash,
                                "split": split, "n_samples": len(ids), "path": str(ds.root)},
                    "conventions": conventions.to_dict(),
                    "not_comparable": red["not_comparable"],
                    "binning": binning.to_dict(),
                    "operating_point": {"rule": row["op_rule"], "chosen_on": op.get("chosen_on"),
                                        "threshold": row["op_threshold"]},
                    "bootstrap": red["bootstrap"],
                    "failed_samples": failures,
                    "execution": {"workers": workers if client is None and not scheduler else None,
                                  "scheduler": scheduler, "dask": client is not None or bool(scheduler),
                                  "timeout_s": timeout,
                                  "cache": str(cache_root) if cache_root is not None else None},
                    "charge_rule": "image minus local background (crbench.metrics.instances)",
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                },
            })
    finally:
        runner.close()
    ds.check_files()  # a sample edited or rebuilt during the run would make the quoted hash wrong
    if out is not None:
        results.save(out, overwrite=overwrite)
    return results
