"""Binned metrics where curves saturate, not-reached operating points, pAUC, input checks, Wilson."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from crbench.metrics import (Binning, MetricInputError, ap, best_dice, class_histograms, curve_from_histograms,
                             exact_curve, partial_roc_auc, precision_at_recall, summarize, tpr_at_fpr,
                             wilson_interval)

ULP1 = np.float32(2.0 ** -24)  # float32 spacing just below 1


def _adversarial(seed: int, n: int, kind: str):
    """float32 scores piled within 1e-7 of 1 and of 0, with ties, or a constant map."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    y[0], y[1] = True, False
    if kind == "constant":
        return np.full(n, np.float32(rng.choice([0.0, 0.5, 1.0]))), y
    if kind == "top":  # a confident network: most CRs and some negatives in the last few float32 values
        k = np.where(y, rng.integers(0, 3, n), rng.geometric(0.02, n) * (rng.random(n) > 2e-5))
        s = np.float32(1.0) - k.astype(np.float32) * ULP1
    elif kind == "bottom":  # everything within 1e-7 of 0, distinct float32 values
        s = (rng.random(n) * 1e-7 * np.where(y, 1.0, 0.6)).astype(np.float32)
    else:  # both tails and a few middle values, heavy ties
        top = np.float32(1.0) - rng.integers(0, 4, n).astype(np.float32) * ULP1
        bottom = (rng.integers(0, 4, n) * 2e-8).astype(np.float32)
        middle = np.round(rng.random(n), 2).astype(np.float32)
        pick = rng.random(n)
        s = np.where(pick < np.where(y, 0.7, 0.01), top, np.where(pick < 0.9, bottom, middle)).astype(np.float32)
    return s, y


def _sk_tpr_at(y, s, f):
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    if fpr[1] > f:  # the strictest threshold already exceeds f: not reached
        return float("nan")
    return float(np.interp(f, fpr, tpr))


def _sk_best_dice(y, s):
    p, r, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(f1.max())


def _bin_tpr_resolution(s, y, b, f):
    """TPR held by the positives sharing a bin with the exact operating threshold at FPR ``f`` or with
    the next score below it (the interpolation range of the exact curve)."""
    fpr, _, thr = roc_curve(y, s, drop_intermediate=False)
    i = int(np.searchsorted(fpr, f))
    bins = np.unique(b.index(np.asarray(thr[max(i - 1, 1): i + 1], np.float32)))
    return float(np.isin(b.index(s[y]), bins).sum()) / max(int(y.sum()), 1)


def test_bin_resolution_allowance_is_small_where_bins_resolve_scores():
    # well-separated scores (one per bin): the allowance is at most one positive's TPR
    rng = np.random.default_rng(1)
    y = rng.random(20_000) < 0.05
    s = np.round(rng.random(20_000), 3).astype(np.float32)
    b = Binning.for_range((0.0, 1.0))
    assert _bin_tpr_resolution(s, y, b, 1e-4) <= 0.05
    # the 'bottom' case hypothesis found (2.6e-12 score spacing, 6e-11 bins near 6e-8): a few positives
    s, y = _adversarial(30, 38529, "bottom")
    assert 0 < _bin_tpr_resolution(s, y, b, 1e-4) < 0.01


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(20_000, 40_000),
       kind=st.sampled_from(["top", "bottom", "both", "constant"]))
def test_probability_bins_match_sklearn_where_curves_saturate(seed, n, kind):
    s, y = _adversarial(seed, n, kind)
    b = Binning.for_range((0.0, 1.0))
    c = curve_from_histograms(*class_histograms(s, y, b), b)
    # exact: the binned metrics are scikit-learn's metrics of the binned scores (bin index as score)
    q = b.index(s).astype(np.float64)
    want_q = _sk_tpr_at(y, q, 1e-4)
    got_tpr = tpr_at_fpr(c, 1e-4)
    assert (np.isnan(got_tpr) and np.isnan(want_q)) or abs(got_tpr - want_q) < 1e-9
    assert abs(ap(c) - average_precision_score(y, q)) < 1e-9
    assert abs(best_dice(c) - _sk_best_dice(y, q)) < 1e-9
    # resolution: against the raw scores. Every score of 'top', 'both' and 'constant' has its own bin;
    # 'bottom' spaces distinct scores ~3e-12 apart near 6e-8, finer than the bins' documented 2**-10
    # relative width, so a bin holds a few positives there (measured over 150 draws: AP within 3.2e-4,
    # best Dice within 1.9e-3)
    want_tpr = _sk_tpr_at(y, s, 1e-4)
    if np.isnan(want_tpr):
        assert np.isnan(got_tpr)
    else:
        # a binned curve cannot place the operating point inside a bin: besides 1e-3, allow the TPR
        # carried by the positives in the bins of the scores next to the exact operating threshold
        assert abs(got_tpr - want_tpr) < 1e-3 + _bin_tpr_resolution(s, y, b, 1e-4)
    assert abs(ap(c) - average_precision_score(y, s)) < 1e-3
    assert abs(best_dice(c) - _sk_best_dice(y, s)) < (4e-3 if kind == "bottom" else 1e-3)


def test_confident_network_top_bin_resolved():
    # 18% of CR pixels at p = 1.0 exactly, the rest within a few hundred float32 ulps of 1: the old
    # 32768 linear bins put all of them in one bin (TPR@1e-4 0.025 vs 0.090 exact on microobs).
    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.random(n) < 0.01
    k = np.where(y, rng.integers(0, 400, n), rng.integers(50, 2000, n))
    s = np.float32(1.0) - k.astype(np.float32) * ULP1
    b = Binning.for_range((0.0, 1.0))
    c = curve_from_histograms(*class_histograms(s, y, b), b)
    e = exact_curve(s, y)
    assert tpr_at_fpr(c, 1e-4) == pytest.approx(tpr_at_fpr(e, 1e-4), abs=1e-9)
    assert ap(c) == pytest.approx(ap(e), abs=1e-9)
    assert best_dice(c) == pytest.approx(best_dice(e), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, width=32, allow_subnormal=True), min_size=1, max_size=50),
       st.integers(0, 2**31 - 1))
def test_prob_bin_edges_are_exact_float32_thresholds(values, seed):
    b = Binning.probability()
    s = np.array(values, np.float32)
    idx = b.index(s)
    edges = b.lower_edges()
    assert np.all(np.diff(edges) >= 0)
    for t in np.unique(np.r_[idx, np.random.default_rng(seed).integers(0, b.n_bins, 5)]):
        np.testing.assert_array_equal(s >= np.float32(edges[t]), idx >= t)


def test_prob_bins_separate_every_float32_near_both_ends():
    b = Binning.probability()
    near1 = np.float32(1.0) - np.arange(2048, dtype=np.float32) * ULP1
    near0 = (np.arange(1, 2048, dtype=np.float32) * np.float32(2.0 ** -30))
    for v in (near1, near0):
        assert len(np.unique(b.index(v))) == len(np.unique(v))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(50, 20_000), ties=st.booleans())
def test_partial_auc_matches_sklearn(seed, n, ties):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    y[0], y[1] = True, False
    s = rng.normal(size=n) + 1.5 * y
    if ties:
        s = np.round(s, 1)
    for m in (1e-3, 0.05, 0.5):
        assert partial_roc_auc(exact_curve(s, y), m) == pytest.approx(roc_auc_score(y, s, max_fpr=m), abs=1e-9)


def test_summary_has_pauc_column():
    rng = np.random.default_rng(1)
    y = rng.random(5000) < 0.1
    s = rng.normal(size=5000) + 2 * y
    out = summarize(exact_curve(s, y))
    assert out["pauc_1e-3"] == pytest.approx(roc_auc_score(y, s, max_fpr=1e-3))


# ------------------------------------------------------------------------------- not reached
def test_constant_map_reports_not_reached_instead_of_a_chord():
    s = np.full(1000, 0.7)
    y = np.zeros(1000, bool)
    y[:10] = True
    out = summarize(exact_curve(s, y))
    assert np.isnan(out["tpr_at_fpr_1e-4"])
    assert out["tpr_at_fpr_1e-4_status"].startswith("not reached")
    assert out["roc_auc"] == pytest.approx(0.5)


def test_sweep_that_never_reaches_recall_reports_not_reached():
    # settings flag 0..3 (3 = strictest); bin 0 = flagged by no setting (the floor, no operating point)
    pos = np.array([60, 10, 10, 20])   # the loosest setting finds 40% of CR pixels
    neg = np.array([9900, 50, 30, 20])
    b = Binning.for_range((0.0, 3.0), integer=True)
    c = curve_from_histograms(pos, neg, b)
    base = summarize(c)  # as a continuous score: recall 0.95 reached at the all-flagged point (base rate)
    assert base["precision_at_recall_0.95"] == pytest.approx(100 / 10100)
    sweep = summarize(c, floor_point=True)
    assert np.isnan(sweep["precision_at_recall_0.95"])
    assert "not reached" in sweep["precision_at_recall_0.95_status"]
    assert sweep["roc_auc_extrapolated"] is True and base["roc_auc_extrapolated"] is False
    # FPR 5e-3 lies beyond the loosest setting (FPR 100/10000 = 0.01 > 5e-3 so it is reached) ...
    assert np.isfinite(sweep["tpr_at_fpr_5e-3"])
    # ... while a sweep whose loosest setting has FPR 5e-4 cannot report TPR at 1e-3
    neg2 = np.array([9995, 2, 2, 1])
    s2 = summarize(curve_from_histograms(pos, neg2, b), floor_point=True)
    assert np.isnan(s2["tpr_at_fpr_1e-3"]) and "loosest setting" in s2["tpr_at_fpr_1e-3_status"]


# ------------------------------------------------------------------------------- input checks
def test_truth_with_values_other_than_0_1_is_rejected():
    b = Binning.probability()
    with pytest.raises(MetricInputError, match="truth must hold only 0/1"):
        class_histograms(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), b)
    with pytest.raises(MetricInputError, match="shape"):
        class_histograms(np.array([0.1, 0.2]), np.array([0, 1, 1]), b)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_targets_outside_unit_interval_are_rejected(bad):
    c = exact_curve(np.array([0.1, 0.9]), np.array([False, True]))
    with pytest.raises(MetricInputError, match="target FPR"):
        tpr_at_fpr(c, bad)
    with pytest.raises(MetricInputError, match="target recall"):
        precision_at_recall(c, bad)


# ------------------------------------------------------------------------------- Wilson
def test_wilson_interval_hand_computed():
    # n = 8, k = 8, z = 1.959964: centre (1 + z^2/16) / (1 + z^2/8) = 0.83781,
    # half-width z sqrt(z^2/256) / (1 + z^2/8) = 0.16219 -> [0.6756, 1.0]
    lo, hi = wilson_interval(8, 8)
    assert lo == pytest.approx(0.6756, abs=1e-4) and hi == 1.0
    # n = 10, k = 5: centre 0.5, half z sqrt(0.025 + z^2/400) / (1 + z^2/10) = 0.2634 -> [0.2366, 0.7634]
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert np.isnan(wilson_interval(0, 0)[0])
    with pytest.raises(MetricInputError):
        wilson_interval(3, 2)
