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
    # from the prediction before dilating; FPR stays undilated
    assert _rates(PROTOCOLS["deepcr"]) == (2, 3, 1, 21)


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
