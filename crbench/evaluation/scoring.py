"""Scoring one sample: run a detector on a sample's observation, validate and time its output."""
from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import numpy as np

from ..conventions import Conventions
from ..detectors.base import Detector, check_score_map
from ..errors import CRBenchError, DetectorError
from ..metrics import Binning
from ..observation import Observation
from ..sample import Sample
from .records import RecordSpec, SampleRecord, compute_record


class _Timeout(BaseException):
    """Raised by the alarm handler inside a detector call (BaseException: detectors' ``except
    Exception`` blocks do not swallow it)."""


def run_detector(detector: Detector, sample: Sample | Observation,
                 timeout: float | None = None) -> tuple[np.ndarray, float]:
    """Run ``detector`` on ``sample``'s observation, validate its output and time it.

    The detector gets only :meth:`Sample.observation` (image, companions, instrument mask and
    instrument meta, as read-only copies): never the truth, ignore mask, labels or sources.

    Parameters
    ----------
    detector : Detector
        The detector to run.
    sample : Sample or Observation
        The sample to score (or an observation already built from it).
    timeout : float, optional
        Seconds allowed. In the main thread of a process (serial runs and ``workers=N``) the call
        is interrupted by ``SIGALRM`` when it runs over (Python-level code and C calls that return
        control in between; one long C call ends first); elsewhere (dask worker threads) a call
        that ran over is discarded after it returns.

    Returns
    -------
    score : ndarray
        The validated score map.
    seconds : float
        Wall-clock time of the ``score`` call.

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
            signal.setitimer(signal.ITIMER_REAL, float(timeout or 0))
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


def _on_alarm(signum: int, frame: FrameType | None) -> None:  # pragma: no cover - exercised through run_detector
    raise _Timeout()


def evaluate_sample(detector: Detector, sample: Sample, binning: Binning, conventions: Conventions, *,
                    spec: RecordSpec | None = None) -> SampleRecord:
    """Score one sample and reduce it to a :class:`SampleRecord` (errors are raised).

    With only ``binning`` and ``conventions`` the record carries the pixel histograms alone (fast
    path); pass a :class:`RecordSpec` for per-CR, per-morphology and source pieces.

    Raises
    ------
    DetectorError
        As :func:`run_detector`.
    """
    if spec is None:
        spec = RecordSpec(binning, conventions, per_cr=False, sources=False)
    score, seconds = run_detector(detector, sample, spec.timeout)
    return compute_record(score, sample, spec, seconds)

