"""Execution: produce the records of many samples serially, on a local process pool or on dask.

Records of one (detector, settings) come from :class:`Runner` (serial, ``workers=N`` processes,
or a dask client) and :func:`collect` (in id order, read from and written to a record cache).

Threads: astroscrappy (LACosmic) parallelises with OpenMP. Worker processes started by
``workers=N`` set ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS/torch to one thread) before any
detector is imported, so N workers use N cores; start dask workers the same way
(``OMP_NUM_THREADS=1 dask worker ADDRESS --nthreads 1``) - several threads in one worker calling
astroscrappy each spawn their own OpenMP team and oversubscribe the cores.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..cache import RecordCache
from ..dataset import Dataset
from ..detectors.base import Detector
from ..errors import DependencyError, DetectorError, UsageError
from ..sample import Sample
from .records import Outcome, RecordSpec, SampleFailure
from .scoring import evaluate_sample


class DetectorFailure(UserWarning):
    """Warning emitted when a detector fails on one sample and the run goes on."""


def _load(ds: Dataset, sample_id: str, detector: Detector) -> Sample:
    return ds.check_labelled(ds.load(sample_id, load_companions=any(r != "image" for r in detector.requires)))


def _outcome(detector: Detector, sample: Sample, spec: RecordSpec) -> Outcome:
    try:
        return evaluate_sample(detector, sample, spec.binning, spec.conventions, spec=spec)
    except DetectorError as exc:
        return SampleFailure(sample.id, str(exc))


def score_one(detector: Detector, dataset_root: str, sample_id: str, spec: RecordSpec) -> Outcome:
    """Worker task: load one sample, score it, return its record (a detector failure becomes a
    :class:`SampleFailure`; anything else raises). Module-level so process pools and dask can pickle it.

    Parameters
    ----------
    detector : Detector
        The detector to run.
    dataset_root : str
        Folder of the dataset (opened without re-checking its files: ``evaluate`` did).
    sample_id : str
        The sample to score.
    spec : RecordSpec
        What the record holds.

    Returns
    -------
    SampleRecord or SampleFailure
    """
    ds = Dataset.open(dataset_root, check_files=False)  # checked once by evaluate, not per task
    return _outcome(detector, _load(ds, sample_id, detector), spec)


def _die_with(parent_pid: int) -> None:
    """Make this worker process exit when ``parent_pid`` (the evaluating process) is gone.

    On Linux the kernel sends SIGKILL when the worker's parent exits (``PR_SET_PDEATHSIG``; the
    parent of a forkserver worker is the forkserver, which exits with the evaluating process).
    Everywhere, a daemon thread also polls ``parent_pid`` once a second and exits the worker
    when it has disappeared.
    """
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
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class Runner:
    """Produce records for sample ids: serially, on a local process pool, or on a dask client.

    Parameters
    ----------
    workers : int
        Local worker processes (1 = serial, in this process).
    client : distributed.Client, optional
        A dask client to run on (takes precedence over ``workers`` and ``scheduler``).
    scheduler : str, optional
        Address of a running dask.distributed scheduler (a client is opened and closed here).
    """

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
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        """Shut the process pool down and close a client this runner opened."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._own_client and self.client is not None:
            self.client.close()
            self.client = None

    def run(self, det: Detector, ds: Dataset, ids: Sequence[str], spec: RecordSpec) -> Iterator[Outcome]:
        """Outcomes of ``ids`` in completion order."""
        if not ids:
            return
        root = str(Path(ds.root).resolve())
        if self.client is not None:
            yield from self._run_dask(det, root, ids, spec)
        elif self.workers > 1:
            yield from self._run_pool(det, root, ids, spec)
        else:
            for sid in ids:
                yield _outcome(det, _load(ds, sid, det), spec)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context(method),
                                             initializer=_worker_init, initargs=(os.getpid(),))
        return self._pool

    def _run_pool(self, det: Detector, root: str, ids: Sequence[str], spec: RecordSpec) -> Iterator[Outcome]:
        pool = self._get_pool()
        futures: list[Future[Outcome]] = [pool.submit(score_one, det, root, sid, spec) for sid in ids]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:
            for f in futures:
                f.cancel()

    def _run_dask(self, det: Detector, root: str, ids: Sequence[str], spec: RecordSpec) -> Iterator[Outcome]:
        from distributed import as_completed as dask_completed

        client = self.client
        det_f = client.scatter(det, broadcast=True, hash=False)
        futures = [client.submit(score_one, det_f, root, sid, spec, pure=False) for sid in ids]
        try:
            for f in dask_completed(futures):
                yield f.result()
        finally:
            client.cancel(futures)


def collect(runner: Runner, det: Detector, ds: Dataset, ids: Sequence[str], spec: RecordSpec,
            cache: RecordCache | None, on_error: str, progress: bool, label: str) -> list[Outcome]:
    """Outcomes of ``ids`` in id order: cached records read, the rest computed (and cached as they land).

    Parameters
    ----------
    runner : Runner
        Where the records are computed.
    det : Detector
        The detector.
    ds : Dataset
        The dataset holding ``ids``.
    ids : sequence of str
        Sample ids.
    spec : RecordSpec
        What each record holds.
    cache : RecordCache or None
        Record cache (None = off).
    on_error : {'continue', 'raise'}
        A failed sample warns (:class:`DetectorFailure`) and is returned as a :class:`SampleFailure`,
        or raises.
    progress : bool
        Show a progress bar labelled ``label``.
    label : str
        Progress bar label.

    Returns
    -------
    list of SampleRecord or SampleFailure

    Raises
    ------
    DetectorError
        A sample failed and ``on_error`` is ``'raise'``.
    """
    got: dict[str, Outcome] = {}
    todo: list[str] = []
    for sid in ids:
        cached = cache.get(sid) if cache is not None else None
        if cached is not None:
            got[sid] = cached
        else:
            todo.append(sid)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc=label, unit="img", leave=False)
    try:
        for rec in runner.run(det, ds, todo, spec):
            if isinstance(rec, SampleFailure):
                if on_error == "raise":
                    raise DetectorError(rec.message)
                warnings.warn(rec.message, DetectorFailure, stacklevel=5)  # the caller of evaluate()
            elif cache is not None:
                cache.put(rec)
            got[rec.sample_id] = rec
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [got[sid] for sid in ids]

