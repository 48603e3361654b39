"""Typed results of one evaluation run and their provenance (``Results.runs`` entries once serialised).

``to_dict()`` gives the ``results.json`` layout that :mod:`crbench.schema` validates; the key
order is the one the file has always had.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..detectors.base import Detector
from .settings import EvaluationSettings

#: How a CR's charge is measured (recorded in every run's provenance).
CHARGE_RULE = "image minus local background (crbench.metrics.instances)"


@dataclass(frozen=True)
class DetectorProvenance:
    """The detector of a run: name, class, version and parameters."""

    name: str
    cls: str
    version: str
    params: dict[str, Any]
    params_hash: str
    trained_on: list[str]
    #: What the detector reads besides nothing (``Detector.requires``): ``image``, ``exposures``, ``ramp``.
    requires: tuple[str, ...]

    @classmethod
    def of(cls, det: Detector) -> DetectorProvenance:
        """Provenance of ``det``."""
        return cls(det.name, f"{type(det).__module__}:{type(det).__qualname__}", det.version, det.params(),
                   det.params_hash(), list(getattr(det, "trained_on", ())), tuple(getattr(det, "requires", ())))

    def to_dict(self) -> dict[str, Any]:
        """The ``provenance.detector`` object of ``results.json``."""
        return {"name": self.name, "class": self.cls, "version": self.version, "params": self.params,
                "params_hash": self.params_hash, "trained_on": list(self.trained_on),
                "requires": list(self.requires)}


@dataclass(frozen=True)
class DatasetProvenance:
    """The scored dataset split: name, version, content hash and where it was read."""

    name: str
    version: str
    content_hash: str
    split: str
    n_samples: int
    path: str


@dataclass(frozen=True)
class OperatingPointProvenance:
    """The selected operating point: its rule, the split it was chosen on and its score threshold."""

    rule: str
    chosen_on: str | None
    threshold: float


@dataclass(frozen=True)
class ExecutionProvenance:
    """How the records were computed (local workers, or dask), the timeout and the cache folder."""

    workers: int | None
    scheduler: str | None
    dask: bool
    timeout_s: float | None
    cache: str | None

    @classmethod
    def of(cls, settings: EvaluationSettings) -> ExecutionProvenance:
        """Execution provenance of a run with ``settings``."""
        root = settings.cache_root
        return cls(None if settings.uses_dask else settings.workers, settings.scheduler, settings.uses_dask,
                   settings.timeout, str(root) if root is not None else None)


@dataclass(frozen=True)
class RunProvenance:
    """Where one run's numbers come from (``provenance`` of a run in ``results.json``)."""

    detector: DetectorProvenance
    dataset: DatasetProvenance
    conventions: dict[str, Any]
    not_comparable: list[str]
    binning: dict[str, Any]
    operating_point: OperatingPointProvenance
    bootstrap: dict[str, Any]
    failed_samples: dict[str, str]
    execution: ExecutionProvenance
    charge_rule: str = CHARGE_RULE
    peak_rss_mb: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (same keys and order as ``results.json`` has always had)."""
        return {"detector": self.detector.to_dict(), "dataset": asdict(self.dataset),
                "conventions": dict(self.conventions), "not_comparable": list(self.not_comparable),
                "binning": dict(self.binning), "operating_point": asdict(self.operating_point),
                "bootstrap": dict(self.bootstrap), "failed_samples": dict(self.failed_samples),
                "execution": asdict(self.execution), "charge_rule": self.charge_rule,
                "peak_rss_mb": self.peak_rss_mb}


@dataclass(frozen=True)
class RunResult:
    """One detector scored on one dataset split (an element of ``Results.runs`` once serialised).

    Attributes
    ----------
    summary : dict
        The flat summary row (``results.csv``).
    curve : dict
        Downsampled ROC/PR curve (with bootstrap bands when bootstrapped).
    by_morphology : list of dict
        Per-morphology rows (``results_by_morphology.csv``).
    operating_points : dict
        Rule name -> :class:`~crbench.evaluation.reduction.OperatingPoint`.
    provenance : RunProvenance
    """

    detector: str
    dataset: str
    split: str
    summary: dict[str, Any]
    curve: dict[str, Any]
    by_morphology: list[dict[str, Any]]
    operating_points: dict[str, Any]
    provenance: RunProvenance

    def to_dict(self) -> dict[str, Any]:
        """The run as stored in ``Results.runs`` and ``results.json``."""
        return {"detector": self.detector, "dataset": self.dataset, "split": self.split,
                "summary": self.summary, "curve": self.curve, "by_morphology": self.by_morphology,
                "operating_points": self.operating_points, "provenance": self.provenance.to_dict()}
