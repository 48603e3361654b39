"""benchmarks/scaling.py compares the serial and distributed results value by value, NaN included."""
from __future__ import annotations

from _scripts import load_script


def test_results_comparison_treats_nan_as_equal_and_still_sees_differences():
    scaling = load_script("benchmarks/scaling.py", "scaling_under_test")
    def nan() -> float:  # a new NaN object each time, as two runs' results hold (== is then False)
        return float("nan")

    # a class without CRs has NaN recalls in both runs: that is the same result (it was reported as a mismatch)
    a = [{"morphology": "track", "n_crs": 0, "recall_half": nan(), "interval": [nan(), nan()]}]
    b = [{"morphology": "track", "n_crs": 0, "recall_half": nan(), "interval": [nan(), nan()]}]
    assert a != b and scaling.same_value(a, b)
    assert not scaling.same_value(a, [{**b[0], "recall_half": 0.5}])
    assert not scaling.same_value(a, [{**b[0], "n_crs": 1}])
    assert not scaling.same_value({"x": 1.0}, {"x": 1.0, "y": 2.0})
    assert not scaling.same_value([1.0, nan()], [1.0])
    assert scaling.same_value({"ap": 0.25, "curve": [0.0, 0.5]}, {"ap": 0.25, "curve": [0.0, 0.5]})
