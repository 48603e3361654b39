"""Named conventions on a hand-computed 5x5 case: deepCR's dilated-TPR/undilated-FPR and
Cosmic-CoNN's ignore-as-negative, plus presets, overrides and per-image pooling."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.conventions import PROTOCOLS, Conventions, resolve_conventions
from crbench.harness import RecordSpec, compute_record, reduce_run, sample_histograms
from crbench.metrics import Binning
from crbench.sample import Sample

BINS = Binning.for_range((0.0, 1.0), 100)
T = 50  # bin of the 0.5 threshold


def _case() -> Sample:
    """Score 0.9 on a non-CR pixel next to an undetected CR pixel, a detected CR, and an ignored
    CR pixel (score 0.95) whose neighbour is an undetected CR pixel."""
    score = np.zeros((5, 5), np.float32)
    truth = np.zeros((5, 5), bool)
    ignore = np.zeros((5, 5), bool)
    score[1, 1] = 0.9                       # false positive (undilated)
    truth[1, 2], score[1, 2] = True, 0.1    # missed, but inside the 3x3 dilation of (1, 1)
    truth[3, 3], score[3, 3] = True, 0.8    # detected
    truth[3, 0] = True                      # missed; its only bright neighbour is ignored
    truth[4, 0], ignore[4, 0], score[4, 0] = True, True, 0.95
    labels = np.zeros((5, 5), np.int32)
    labels[truth] = np.arange(1, truth.sum() + 1)
    s = Sample(id="hand", image=np.zeros((5, 5), np.float32), truth=truth, ignore=ignore, labels=labels)
    s.meta["score"] = score
    return s


def _rates(conv: Conventions) -> tuple[int, int, int, int]:
    s = _case()
    pos, neg = sample_histograms(s.meta["score"], s, BINS, conv)
    return int(pos[T:].sum()), int(pos.sum()), int(neg[T:].sum()), int(neg.sum())


def test_crbench_default_counts_undilated_and_excludes_ignore():
    # 3 valid CR pixels, (3, 3) found; 25 - 3 CR - 1 ignored = 21 negatives, (1, 1) flagged
    assert _rates(PROTOCOLS["crbench"]) == (1, 3, 1, 21)


def test_deepcr_dilates_for_tpr_only():
    # dilation credits (1, 2) (next to 0.9); (3, 0) stays missed because the ignored pixel is removed
    # from the prediction before dilating; FPR stays undilated. deepCR/evaluate.py multiplies the
    # thresholded prediction and the truth by (1 - ignore), so the ignored pixel (4, 0) is a true
    # negative: 25 - 3 CR = 22 negatives (crbench's exclude rule would give 21).
    assert _rates(PROTOCOLS["deepcr"]) == (2, 3, 1, 22)
    assert PROTOCOLS["deepcr"].ignore == "as-negative"


def test_dilation_both_also_dilates_fpr():
    # negatives flagged: 3x3 around (1, 1) minus CR (1, 2) = 8, plus 3x3 around (3, 3) minus itself = 8,
    # sharing (2, 2): 15
    assert _rates(Conventions(dilation="both")) == (2, 3, 15, 21)


def test_cosmic_conn_counts_ignored_pixels_as_true_negatives():
    # prediction and truth times (1 - ignore): the ignored CR pixel becomes a negative with score 0
    tp, n_pos, fp, n_neg = _rates(PROTOCOLS["cosmic-conn"])
    assert (tp, n_pos, fp, n_neg) == (1, 3, 1, 22)
    assert fp / n_neg < 1 / 21  # the convention lowers FPR


def test_presets_and_overrides_are_named():
    assert PROTOCOLS["deepcr"].dilation == "deepcr" and PROTOCOLS["cosmic-conn"].ignore == "as-negative"
    c = resolve_conventions("deepcr", pooling="per-image")
    assert c.dilation == "deepcr" and c.pooling == "per-image" and c.protocol == "deepcr+custom"
    assert resolve_conventions(None) == PROTOCOLS["crbench"]
    with pytest.raises(ValueError, match="dilation='square'"):
        Conventions(dilation="square")
    with pytest.raises(ValueError, match="unknown protocol 'nope'"):
        resolve_conventions("nope")


def test_per_image_pooling_averages_image_numbers():
    rng = np.random.default_rng(0)
    recs = []
    for i, strength in enumerate((4.0, 0.5)):
        truth = rng.random((40, 40)) < 0.05
        score = 1 / (1 + np.exp(-(rng.normal(size=truth.shape) + strength * truth - 2)))
        s = Sample(id=f"s{i}", image=np.zeros(truth.shape, np.float32), truth=truth)
        recs.append(compute_record(score.astype(np.float32), s, RecordSpec(BINS, Conventions(), per_cr=False,
                                                                          sources=False)))
    pooled = reduce_run(recs, BINS, Conventions())["summary"]["ap"]
    per = [reduce_run([r], BINS, Conventions())["summary"]["ap"] for r in recs]
    mean = reduce_run(recs, BINS, Conventions(pooling="per-image"))["summary"]["ap"]
    assert mean == pytest.approx(np.mean(per))
    assert mean != pytest.approx(pooled)


def test_evaluate_records_the_conventions(basic_dataset):
    from crbench.harness import evaluate

    res = evaluate("median", basic_dataset, split="test", protocol="cosmic-conn", progress=False,
                   operating_split=None, per_cr=False, sources=False)
    conv = res.runs[0]["provenance"]["conventions"]
    assert conv == {"dilation": "none", "ignore": "as-negative", "pooling": "pooled", "protocol": "cosmic-conn",
                    "halo": "ignore"}


# ------------------------------------------------------------------ anchors' summary rules, by hand
def _records(scores, truths, ignores=None, binning=BINS):
    recs = []
    for i, (sc, tr) in enumerate(zip(scores, truths)):
        tr = np.asarray(tr, bool)
        ig = None if ignores is None else np.asarray(ignores[i], bool)
        s = Sample(id=f"h{i}", image=np.zeros(tr.shape, np.float32), truth=tr, ignore=ig)
        recs.append(compute_record(np.asarray(sc, np.float32), s, RecordSpec(binning, PROTOCOLS["cosmic-conn"],
                                                                             per_cr=False, sources=False)))
    return recs


def test_cosmic_conn_best_dice_is_mean_of_per_image_dice_with_plus_one():
    # image A: scores [0.9, 0.3 | 0.1, 0.1], truth [1, 1 | 0, 0]; image B: [0.7, 0.1 | 0.1, 0.1], truth [1, 0 | 0, 0]
    # Cosmic-CoNN: for t in linspace(0, 1, 51), Dice_i = 2 |P & R| / (|P| + |R| + 1) with P = score > t,
    # then the mean over images, best over t.
    #   t in [0.3, 0.7): A: P = {0.9}, 2*1/(1+2+1) = 0.5;  B: P = {0.7}, 2*1/(1+1+1) = 2/3  -> mean 7/12
    #   t in [0.1, 0.3): A: P = {0.9, 0.3}, 2*2/(2+2+1) = 0.8;  B: 2/3 -> mean 11/15 = 0.7333 (best)
    #   t < 0.1: every pixel: A 2*2/(4+2+1) = 4/7, B 2*1/(4+1+1) = 1/3
    # Pooled counts (crbench) would give 2*3/(3+3) = 1.0 at t in [0.1, 0.3).
    a = ([[0.9, 0.3], [0.1, 0.1]], [[1, 1], [0, 0]])
    b = ([[0.7, 0.1], [0.1, 0.1]], [[1, 0], [0, 0]])
    recs = _records([a[0], b[0]], [a[1], b[1]], binning=Binning.probability())
    cc = reduce_run(recs, Binning.probability(), PROTOCOLS["cosmic-conn"])["summary"]
    assert cc["best_dice"] == pytest.approx(11 / 15)
    ours = reduce_run(recs, Binning.probability(), PROTOCOLS["crbench"])["summary"]
    assert ours["best_dice"] == pytest.approx(1.0)


def test_cosmic_conn_step_tpr_and_nearest_precision():
    from crbench.metrics import exact_curve
    from crbench.metrics.protocols import nearest_precision_at_recall, step_tpr_at_fpr

    # scores (desc) 0.9 P, 0.8 N, 0.7 P, 0.6 N, 0.5 P, 0.4 N, 0.3 N; 3 positives, 4 negatives.
    # ROC points (fpr, tpr), (0,0) prepended: (0,1/3) (1/4,1/3) (1/4,2/3) (2/4,2/3) (2/4,1) (3/4,1) (1,1);
    # drop_intermediate drops none of the corners here. Step rule tpr[(fpr < F).sum()]:
    #   F = 0.3: fpr < 0.3 at 4 points -> tpr[4] = 2/3 (linear interpolation would give 2/3 too, take F = 0.2):
    #   F = 0.2: fpr < 0.2 at 2 points ((0,0), (0,1/3)) -> tpr[2] = 1/3; interpolation gives 1/3 as well;
    #   F = 0.25: fpr < 0.25 at 2 points -> tpr[2] = 1/3, while crbench (last point with FPR <= F) gives 2/3.
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    y = np.array([1, 0, 1, 0, 1, 0, 0], bool)
    c = exact_curve(s, y)
    assert step_tpr_at_fpr(c, 0.25)[0] == pytest.approx(1 / 3)
    from crbench.metrics import tpr_at_fpr
    assert tpr_at_fpr(c, 0.25) == pytest.approx(2 / 3)
    # PR points (recall, precision): (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), (1, 3/5) then full recall.
    # Nearest to recall 0.95 is recall 1 -> 3/5; nearest to 0.5 (tie 1/3 vs 2/3: first in decreasing-recall
    # order) is recall 2/3 at its loosest threshold -> 1/2.
    assert nearest_precision_at_recall(c, 0.95)[0] == pytest.approx(3 / 5)
    assert nearest_precision_at_recall(c, 0.5)[0] == pytest.approx(1 / 2)


def test_deepcr_dilation_marks_mixed_columns_not_comparable():
    recs = _records([_case().meta["score"]], [_case().truth], [_case().ignore])
    red = reduce_run(recs, BINS, PROTOCOLS["deepcr"])
    assert {"ap", "best_dice", "precision_at_recall_0.95"} <= set(red["not_comparable"])
    assert "ap" in red["summary"]["not_comparable"].split(";")
    assert reduce_run(recs, BINS, PROTOCOLS["crbench"])["not_comparable"] == []
