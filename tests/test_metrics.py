"""The metrics core against scikit-learn on random inputs of varied imbalance."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from crbench.metrics import (Binning, ap, best_dice, class_histograms, curve_from_histograms, exact_curve,
                             precision_at_recall, roc_auc, summarize, tpr_at_fpr)


def _random_case(seed: int, n: int, pos_frac: float, decimals: int | None):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < pos_frac
    if not y.any():
        y[rng.integers(n)] = True
    if y.all():
        y[rng.integers(n)] = False
    s = rng.normal(size=n) + rng.uniform(0.5, 3) * y
    if decimals is not None:
        s = np.round(s, decimals)  # ties, as in sweep scores
    return s, y


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(20, 5000),
       pos_frac=st.sampled_from([0.5, 0.1, 0.01, 0.001]), decimals=st.sampled_from([None, 1, 3]))
def test_exact_path_equals_sklearn(seed, n, pos_frac, decimals):
    s, y = _random_case(seed, n, pos_frac, decimals)
    c = exact_curve(s, y)
    assert roc_auc(c) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert ap(c) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(c.fpr, fpr[1:])
    np.testing.assert_allclose(c.tpr, tpr[1:])
    np.testing.assert_allclose(c.thresholds, thr[1:])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(10000, 60000), pos_frac=st.sampled_from([0.2, 0.05, 0.01]))
def test_binned_path_within_1e3_of_sklearn(seed, n, pos_frac):
    s, y = _random_case(seed, n, pos_frac, None)
    b = Binning.for_range(None)
    pos, neg = class_histograms(s, y, b)
    c = curve_from_histograms(pos, neg, b)
    assert abs(roc_auc(c) - roc_auc_score(y, s)) < 1e-3
    assert abs(ap(c) - average_precision_score(y, s)) < 1e-3


def test_binned_probability_scores_within_1e3():
    rng = np.random.default_rng(3)
    y = rng.random(200_000) < 0.001
    p = 1 / (1 + np.exp(-(rng.normal(size=y.size) * 2 + 5 * y - 3)))
    b = Binning.for_range((0.0, 1.0))
    assert b.kind == "prob"
    c = curve_from_histograms(*class_histograms(p, y, b), b)
    assert abs(ap(c) - average_precision_score(y, p)) < 1e-3
    assert abs(roc_auc(c) - roc_auc_score(y, p)) < 1e-3


def test_histograms_add_up_across_images():
    rng = np.random.default_rng(1)
    b = Binning.for_range(None, 4096)
    imgs = [(rng.normal(size=(32, 32)), rng.random((32, 32)) < 0.05) for _ in range(3)]
    parts = [class_histograms(s, y, b) for s, y in imgs]
    pooled = class_histograms(np.concatenate([s for s, _ in imgs]), np.concatenate([y for _, y in imgs]), b)
    np.testing.assert_array_equal(sum(p for p, _ in parts), pooled[0])
    np.testing.assert_array_equal(sum(n for _, n in parts), pooled[1])


def test_valid_mask_excludes_pixels():
    s = np.array([0.9, 0.8, 0.1, 0.2])
    y = np.array([True, False, False, True])
    valid = np.array([True, False, True, True])
    c = exact_curve(s, y, valid)
    assert (c.n_pos, c.n_neg) == (2, 1)
    assert roc_auc(c) == pytest.approx(roc_auc_score(y[valid], s[valid]))


def test_tpr_at_fpr_interpolates_roc_linearly():
    s, y = _random_case(5, 20000, 0.05, None)
    c = exact_curve(s, y)
    fpr, tpr, _ = roc_curve(y, s)
    for target in (1e-3, 5e-3, 0.05):
        assert tpr_at_fpr(c, target) == pytest.approx(np.interp(target, fpr, tpr), abs=1e-9)


def test_precision_at_recall_and_best_dice_match_brute_force():
    s, y = _random_case(7, 3000, 0.1, 2)
    c = exact_curve(s, y)
    prec, rec, _ = precision_recall_curve(y, s)
    for r in (0.95, 0.99):
        assert precision_at_recall(c, r) == pytest.approx(prec[rec >= r].max())
    dice = max(2 * ((s >= t) & y).sum() / ((s >= t).sum() + y.sum()) for t in np.unique(s))
    assert best_dice(c) == pytest.approx(dice)


def test_summary_names_and_empty_classes():
    c = exact_curve(np.array([0.1, 0.2]), np.array([False, False]))
    out = summarize(c)
    assert set(out) >= {"roc_auc", "ap", "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "tpr_at_fpr_5e-3",
                        "precision_at_recall_0.95", "precision_at_recall_0.99", "best_dice"}
    assert np.isnan(out["ap"]) and np.isnan(out["roc_auc"])


def test_binning_rejects_bad_parameters():
    with pytest.raises(ValueError, match="lo < hi"):
        Binning(kind="linear", lo=1.0, hi=0.0)
    with pytest.raises(ValueError, match="kind"):
        Binning(kind="log")


def test_sweep_ranges_get_exact_integer_bins():
    b = Binning.for_range((0.0, 16.0), integer=True)
    assert b.n_bins == 17
    idx = b.index(np.arange(17, dtype=np.float32))
    np.testing.assert_array_equal(idx, np.arange(17))
