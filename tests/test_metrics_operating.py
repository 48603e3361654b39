"""Operating points: the one implementation of thresholds, its edge cases, and how the harness
reports targets it cannot reach."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crbench.conventions import Conventions
from crbench.harness import RecordSpec, compute_record, reduce_run
from crbench.metrics import (Binning, MetricInputError, canonical_operating_point, choose_threshold,
                             parse_operating_point, rates_at, same_operating_point, score_threshold)
from crbench.metrics.instances import PER_CR_RULES, per_cr_recall
from crbench.sample import Sample


# ------------------------------------------------------------------------------ parse / canonical
@pytest.mark.parametrize("text,want", [("fpr:5e-4", ("fpr", 5e-4)), ("FPR:0.0005", ("fpr", 5e-4)),
                                       (" dice ", ("dice", None)), ("fpr:0", ("fpr", 0.0)), ("fpr:1", ("fpr", 1.0))])
def test_parse_operating_point(text, want):
    assert parse_operating_point(text) == want


@pytest.mark.parametrize("bad", ["fpr:", "fpr:abc", "fpr:-1e-4", "fpr:1.5", "fpr:nan", "roc", ""])
def test_parse_operating_point_rejects(bad):
    with pytest.raises(MetricInputError, match="operating point"):
        parse_operating_point(bad)


def test_operating_point_strings_have_one_canonical_form():
    assert canonical_operating_point("fpr:0.0005") == canonical_operating_point("fpr:5e-4") == "fpr:5e-4"
    assert canonical_operating_point("fpr:0.00025") == "fpr:2.5e-4"
    assert canonical_operating_point("Dice") == "dice"
    assert same_operating_point("fpr:0.0005", "fpr:5e-4") and same_operating_point("fpr:5E-4", "fpr:5.0e-4")
    assert not same_operating_point("fpr:5e-4", "fpr:1e-4") and not same_operating_point("fpr:5e-4", "dice")
    assert not same_operating_point("fpr:5e-4", "garbage")


# ------------------------------------------------------------------------------ choose_threshold
def test_choose_threshold_fpr_edge_cases():
    pos = np.array([0, 1, 0, 3])
    neg = np.array([90, 5, 4, 1])  # FPR of bins >= t: t=3 0.01, t=2 0.05, t=1 0.1, t=0 1.0
    assert choose_threshold(pos, neg, "fpr", 0.05) == 2      # exactly at the target is allowed
    assert choose_threshold(pos, neg, "fpr", 0.0499) == 3
    assert choose_threshold(pos, neg, "fpr", 1.0) == 0
    assert choose_threshold(pos, neg, "fpr", 0.0) == 4       # flag nothing: not reached
    assert choose_threshold(pos, neg, "fpr", 0.005) == 4
    # no negatives: every threshold has FPR 0, the loosest flags everything
    assert choose_threshold(pos, np.zeros(4), "fpr", 1e-4) == 0


def test_choose_threshold_dice_prefers_the_strictest_tie():
    pos = np.array([0, 2, 0, 2])
    neg = np.array([5, 0, 0, 0])
    # Dice at t=3: 2*2/(2+4) = 2/3; t=2 same counts -> tie, strictest (3) kept; t=1: 2*4/(4+4) = 1
    assert choose_threshold(pos, neg, "dice") == 1
    assert choose_threshold(np.array([0, 0, 2]), np.array([0, 0, 0]), "dice") == 2
    assert choose_threshold(np.zeros(3), np.ones(3), "dice") == 3  # no positives: not reached


def test_choose_threshold_rejects_bad_input():
    with pytest.raises(MetricInputError, match="target FPR"):
        choose_threshold(np.ones(3), np.ones(3), "fpr", 2.0)
    with pytest.raises(MetricInputError, match="needs a target"):
        choose_threshold(np.ones(3), np.ones(3), "fpr")
    with pytest.raises(MetricInputError, match="rule 'f1'"):
        choose_threshold(np.ones(3), np.ones(3), "f1")
    with pytest.raises(MetricInputError, match="equal length"):
        choose_threshold(np.ones(3), np.ones(4), "dice")


def test_rates_at_counts_bins_at_or_above():
    r = rates_at(np.array([1, 1, 2]), np.array([6, 2, 2]), 1)
    assert r == pytest.approx({"fpr": 0.4, "tpr": 0.75, "precision": 3 / 7, "dice": 6 / 11})
    assert np.isnan(rates_at(np.array([1, 1]), np.array([1, 1]), 2)["precision"])  # nothing flagged


@pytest.mark.parametrize("binning", [Binning.probability(), Binning(kind="linear", lo=0.0, hi=1.0, n_bins=32768),
                                     Binning.for_range(None, 4096)])
def test_score_threshold_flags_what_the_bin_threshold_counts(binning):
    # the harness's bin threshold, its score edge and the gallery's exact score threshold must flag the
    # same pixels (the old copies disagreed at 1,507 edges once cast to float32)
    rng = np.random.default_rng(4)
    s = rng.random(300_000).astype(np.float32)
    y = rng.random(s.size) < 0.01
    edges = binning.lower_edges()
    idx = binning.index(s)
    for t in np.unique(rng.choice(idx, 200)):
        np.testing.assert_array_equal(s >= np.float32(edges[t]), idx >= t)
    for f in (1e-4, 5e-4, 1e-2):
        thr = score_threshold([s], [y], [None], f)
        assert (s[~y] >= thr).mean() <= f
        assert (s[~y] >= np.nextafter(np.float32(thr), np.float32(-1))).mean() > f


def test_score_threshold_not_reached_is_nan():
    s = np.ones(100, np.float32)
    y = np.zeros(100, bool)
    assert np.isnan(score_threshold([s], [y], [None], 1e-3))


# ------------------------------------------------------------------------------ per-CR rules
def test_per_cr_recall_is_the_one_rule():
    table = pd.DataFrame({"bin_any": [5, 3, 1], "bin_half": [4, 2, 0], "bin_charge90": [4, 1, 0]})
    r = per_cr_recall(table, 2)
    assert (r["recall_any"], r["recall_half"], r["recall_charge90"]) == pytest.approx((2 / 3, 2 / 3, 1 / 3))
    r = per_cr_recall(table, 2, np.array([2.0, 0.0, 1.0]))
    assert r["n_crs"] == 3 and r["recall_any_found"] == 2 and r["recall_any"] == pytest.approx(2 / 3)
    assert [k for k, _ in PER_CR_RULES] == ["recall_any", "recall_half", "recall_charge90"]


# ------------------------------------------------------------------------------ harness
def _confident_records(n_images=2):
    """A saturated network: every pixel at p = 1.0 or 0.0; 1% of the negatives also at 1.0."""
    recs = []
    rng = np.random.default_rng(0)
    for i in range(n_images):
        labels = np.zeros((40, 40), np.int32)
        for k in range(4):
            labels[5 + 8 * k, 3:6] = k + 1
        truth = labels > 0
        score = np.where(truth, 1.0, 0.0).astype(np.float32)
        score[(rng.random(truth.shape) < 0.01) & ~truth] = 1.0
        inst = pd.DataFrame({"id": [1, 2, 3, 4], "morphology": ["worm"] * 4, "generator": ["sim"] * 4,
                             "pixels": [3] * 4, "charge": [1.0] * 4, "saturated": [False] * 4})
        s = Sample(id=f"c{i}", image=np.zeros(truth.shape, np.float32), truth=truth, labels=labels, instances=inst)
        recs.append(compute_record(score, s, RecordSpec(Binning.probability(), Conventions(), per_cr=True,
                                                        sources=False)))
    return recs


def test_unreachable_operating_point_is_not_reached_not_inf_and_not_zero_recall():
    recs = _confident_records()
    red = reduce_run(recs, Binning.probability(), Conventions(), op={"rule": "fpr", "target_fpr": 5e-4})
    s = red["summary"]
    assert np.isnan(s["op_threshold"]) and not np.isinf(s["op_threshold"])
    assert s["op_status"].startswith("not reached")
    assert np.isnan(s["recall_half"]) and np.isnan(s["op_tpr"]) and np.isnan(s["op_fpr_achieved"])
    assert s["op_fpr_off_target"] is True
    assert np.isnan(s["tpr_at_fpr_5e-4"]) and s["tpr_at_fpr_5e-4_status"].startswith("not reached")
    assert s["op_rule"] == "fpr:5e-4"
    # the Dice rule is reachable and reported
    dice = red["operating_points"]["dice"]
    assert np.isfinite(dice["threshold"]) and dice["metrics"]["recall_half"] == 1.0


def test_achieved_fpr_is_reported_next_to_the_target_and_flagged():
    rng = np.random.default_rng(2)
    recs = []
    for i in range(2):
        truth = rng.random((100, 100)) < 0.02
        # integer-valued scores 0..3: FPR steps are coarse, the 5e-4 target cannot be met closely
        score = np.where(truth, rng.integers(1, 4, truth.shape), (rng.random(truth.shape) < 0.0001) * 3)
        s = Sample(id=f"w{i}", image=np.zeros(truth.shape, np.float32), truth=truth)
        recs.append(compute_record(score.astype(np.float32), s, RecordSpec(Binning.for_range((0, 3), integer=True),
                                                                          Conventions(), per_cr=False, sources=False)))
    s = reduce_run(recs, Binning.for_range((0, 3), integer=True), Conventions(),
                   op={"rule": "fpr", "target_fpr": 5e-4}, sweep=True)["summary"]
    assert s["op_fpr_target"] == 5e-4
    assert s["op_fpr_achieved"] == pytest.approx(s["op_fpr"])
    assert s["op_fpr_achieved"] < 5e-4 * 0.75 and s["op_fpr_off_target"] is True
    assert s["roc_auc_extrapolated"] is True and "pauc_1e-3" in s


def test_per_class_recall_gets_wilson_interval_and_rankable_flag():
    recs = _confident_records(2)  # 8 worms, all found at the Dice threshold
    red = reduce_run(recs, Binning.probability(), Conventions(), op={"rule": "dice"}, n_boot=20)
    row = next(r for r in red["by_morphology"] if r["morphology"] == "worm")
    assert row["n_crs"] == 8 and row["recall_half"] == 1.0
    # Wilson (8 of 8): [0.676, 1.0], where a bootstrap over the images gives [1, 1]
    assert row["recall_half_lo"] == pytest.approx(0.6756, abs=1e-4) and row["recall_half_hi"] == 1.0
    assert row["rankable"] is False  # fewer than 30 CRs
    s = red["summary"]
    assert s["recall_half_lo"] == pytest.approx(0.6756, abs=1e-4)
