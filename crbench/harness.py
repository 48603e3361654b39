"""The evaluation harness's public names, in one place (a facade over :mod:`crbench.evaluation`).

The harness lives in :mod:`crbench.evaluation`, split by layer: per-sample records
(:mod:`~crbench.evaluation.records`), scoring one sample (:mod:`~crbench.evaluation.scoring`),
execution over many (:mod:`~crbench.evaluation.execution`), reduction to curves and tables
(:mod:`~crbench.evaluation.reduction`), typed settings and results
(:mod:`~crbench.evaluation.settings`, :mod:`~crbench.evaluation.run`) and
:func:`~crbench.evaluation.api.evaluate` (:mod:`~crbench.evaluation.api`).
"""
from __future__ import annotations

from .evaluation.api import evaluate, evaluate_with
from .evaluation.execution import DetectorFailure, Runner, collect, score_one
from .evaluation.records import (
                                 DEFAULT_FWHM,
                                 Outcome,
                                 RecordSpec,
                                 SampleFailure,
                                 SampleRecord,
                                 compute_record,
                                 sample_histograms,
)
from .evaluation.reduction import (
                                 MORPHOLOGY_FPR,
                                 OP_FPR_TOLERANCE,
                                 OperatingPoint,
                                 RunReduction,
                                 reduce_run,
)
from .evaluation.run import (
                                 CHARGE_RULE,
                                 DatasetProvenance,
                                 DetectorProvenance,
                                 ExecutionProvenance,
                                 OperatingPointProvenance,
                                 RunProvenance,
                                 RunResult,
)
from .evaluation.scoring import evaluate_sample, run_detector
from .evaluation.settings import DEFAULT_OPERATING_POINT, EvaluationSettings
from .metrics import Binning
from .metrics.operating import (
                                 canonical_operating_point,
                                 choose_threshold,
                                 parse_operating_point,
)
from .results import MORPHOLOGY_COLUMNS, Results, run_meta

__all__ = [
    "Binning", "CHARGE_RULE", "DEFAULT_FWHM", "DEFAULT_OPERATING_POINT", "DatasetProvenance", "DetectorFailure",
    "DetectorProvenance", "EvaluationSettings", "ExecutionProvenance", "MORPHOLOGY_COLUMNS", "MORPHOLOGY_FPR",
    "OP_FPR_TOLERANCE", "OperatingPoint", "OperatingPointProvenance", "Outcome", "RecordSpec", "Results",
    "RunProvenance", "RunReduction", "RunResult", "Runner", "SampleFailure", "SampleRecord",
    "canonical_operating_point", "choose_threshold", "collect", "compute_record", "evaluate", "evaluate_sample",
    "evaluate_with", "parse_operating_point", "reduce_run", "run_detector", "run_meta", "sample_histograms",
    "score_one",
]
