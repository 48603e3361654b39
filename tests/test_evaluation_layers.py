"""The harness's layers (crbench.evaluation): failed samples are their own type, settings are
validated before any work, and ``reduce_run`` returns what its docstring promises."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from crbench.conventions import Conventions
from crbench.detectors.base import Detector
from crbench.errors import UsageError
from crbench.harness import (Binning, DetectorFailure, EvaluationSettings, RecordSpec, Runner, SampleFailure,
                             SampleRecord, collect, compute_record, evaluate, reduce_run)


class FailsOnOne(Detector):
    name = "fails-on-one-layer"

    def __init__(self, bad: str = "basic-0003") -> None:
        super().__init__(bad=bad)

    def score(self, sample):
        if sample.id == self._params["bad"]:
            raise RuntimeError("detector exploded")
        return (sample.image - sample.sky).astype(np.float32)


def test_a_failed_sample_is_a_sample_failure_not_a_record(basic_dataset):
    det = FailsOnOne()
    spec = RecordSpec(Binning.for_range(None), Conventions(), per_cr=False, sources=False)
    ids = basic_dataset.ids("all")
    runner = Runner()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = collect(runner, det, basic_dataset, ids, spec, None, "continue", False, "test")
    finally:
        runner.close()
    assert [o.sample_id for o in out] == list(ids)
    failed = [o for o in out if isinstance(o, SampleFailure)]
    assert [f.sample_id for f in failed] == ["basic-0003"]
    assert "basic-0003" in failed[0].message and "detector exploded" in failed[0].message
    assert all(isinstance(o, SampleRecord) for o in out if o.sample_id != "basic-0003")
    assert any(issubclass(w.category, DetectorFailure) for w in caught)
    # a record is a success: it has histograms and no error slot to leave empty
    assert "error" not in {f.name for f in dataclasses.fields(SampleRecord)}


@pytest.mark.parametrize("kwargs, word", [({"workers": 0}, "workers"), ({"timeout": -1}, "timeout"),
                                          ({"bootstrap": -2}, "bootstrap"), ({"on_error": "ignore"}, "on_error")])
def test_settings_are_checked_before_the_dataset_is_touched(tmp_path, kwargs, word):
    with pytest.raises(UsageError, match=word):
        EvaluationSettings(**kwargs)
    # evaluate refuses them before it opens (or builds) the dataset
    with pytest.raises(UsageError, match=word):
        evaluate("lacosmic", tmp_path / "no-dataset-here", progress=False, **kwargs)


def test_settings_resolve_the_operating_point_and_conventions():
    s = EvaluationSettings(operating_point="fpr:0.0005", protocol="deepcr")
    assert (s.rule, s.target_fpr) == ("fpr", 5e-4)
    assert s.conventions.protocol == "deepcr"
    assert EvaluationSettings(operating_point="dice").target_fpr is None


def test_reduce_run_returns_sources_by_snr_of_the_selected_rule():
    """The docstring promises a top-level ``sources_by_snr``: the source flag fractions by SNR at
    the selected rule's threshold (each operating point keeps its own)."""
    from conftest import make_sample

    s = make_sample(n_crs=8)
    s.sources = np.zeros(s.shape, bool)
    s.sources[30:34, 30:34] = True
    s.sources &= ~s.truth
    s.meta["psf_fwhm"] = 2.0
    b = Binning.for_range((0.0, 1.0), 64)
    score = s.truth.astype(np.float32)
    score[s.sources] = 0.6  # above bin 32, below bin 48: flagged by the loose threshold only
    spec = RecordSpec(b, Conventions(), thresholds=(("dice", 48), ("fpr", 32)))
    rec = compute_record(score, s, spec)
    by_rule = {}
    for rule in ("fpr", "dice"):
        red = reduce_run([rec], b, Conventions(), op={"rule": rule, "thresholds": {"fpr": 32, "dice": 48}})
        assert red["sources_by_snr"] == red["operating_points"][rule]["sources_by_snr"]
        by_rule[rule] = red["sources_by_snr"]
    for rule, flagged in (("fpr", 1.0), ("dice", 0.0)):
        rows = [r for r in by_rule[rule] if r["n_sources"]]
        assert sum(r["n_sources"] for r in rows) == 1
        assert [r["flag_fraction"] for r in rows] == [flagged]
