"""Bootstrap intervals: seeded, resampling images or exposure groups, on every summary number."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.dataset import update_card
from crbench.harness import evaluate
from crbench.metrics.bootstrap import interval, replicate_weights


def test_weights_resample_groups_together():
    groups = ["a", "a", "b", "c", "c", "c"]
    w = replicate_weights(groups, 500, seed=1)
    assert w.shape == (500, 6)
    # records of one group always share a weight; every replicate draws 3 groups
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()
    assert np.allclose(w[:, [0, 2, 3]].sum(1), 3)
    np.testing.assert_array_equal(w, replicate_weights(groups, 500, seed=1))
    assert not np.array_equal(w, replicate_weights(groups, 500, seed=2))
    assert abs(w[:, 2].mean() - 1.0) < 0.15


def test_interval_covers_the_mean_of_a_known_distribution():
    rng = np.random.default_rng(0)
    lo, hi = interval(rng.normal(3.0, 1.0, size=20000))
    assert lo == pytest.approx(3 - 1.96, abs=0.05) and hi == pytest.approx(3 + 1.96, abs=0.05)
    with pytest.raises(ValueError, match=">= 0"):
        replicate_weights(["a"], -1)


def test_evaluate_puts_intervals_on_every_summary_number(tmp_path, basic_dataset):
    res = evaluate("median", basic_dataset, split="all", progress=False, bootstrap=40, seed=7,
                   operating_split=None, out=tmp_path)
    s = res.runs[0]["summary"]
    for k in ("ap", "roc_auc", "tpr_at_fpr_5e-4", "best_dice", "recall_any", "recall_charge90", "op_fpr",
              "residual_charge_fraction", "source_flag_fraction"):
        assert s[f"{k}_lo"] <= s[k] + 1e-12 and s[k] <= s[f"{k}_hi"] + 1e-12, k
    assert s["ap_hi"] > s["ap_lo"]
    c = res.runs[0]["curve"]
    assert len(c["tpr_lo"]) == len(c["tpr_hi"]) == len(c["fpr"])
    assert all(lo <= hi + 1e-12 for lo, hi in zip(c["tpr_lo"], c["tpr_hi"]))
    assert "recall_half_lo" in res.runs[0]["by_morphology"][0]
    assert res.runs[0]["provenance"]["bootstrap"] == {"replicates": 40, "seed": 7, "level": 0.95, "unit": "image"}
    again = evaluate("median", basic_dataset, split="all", progress=False, bootstrap=40, seed=7,
                     operating_split=None)
    assert again.runs[0]["summary"]["ap_lo"] == s["ap_lo"]
    from crbench.results import Results

    assert Results.load(tmp_path).runs[0]["summary"]["ap_lo"] == s["ap_lo"]  # valid against the schema


def test_exposure_groups_from_the_card(tmp_path, basic_dataset):
    import shutil

    from crbench.dataset import Dataset

    root = tmp_path / "ds"
    shutil.copytree(basic_dataset.root, root)
    ds = Dataset.open(root)
    ids = ds.ids("all")
    ds = update_card(ds, groups={sid: f"visit{i // 4}" for i, sid in enumerate(ids)})
    res = evaluate("median", ds, split="all", progress=False, bootstrap=30, operating_split=None)
    assert res.runs[0]["provenance"]["bootstrap"]["unit"] == "group"
    # two groups only: a replicate is visit0 twice, visit1 twice, or both - few distinct values
    s = res.runs[0]["summary"]
    assert s["ap_lo"] <= s["ap"] <= s["ap_hi"]


def _regrouped_copy(tmp_path, basic_dataset, groups_of):
    """A copy of ``basic_dataset`` with train = first 4 images, test = last 4, and card ``groups``."""
    import shutil

    from crbench.dataset import Dataset

    root = tmp_path / "ds"
    shutil.copytree(basic_dataset.root, root)
    ds = Dataset.open(root)
    ids = ds.ids("all")
    return update_card(ds, splits={"train": ids[:4], "test": ids[4:]},
                       groups={sid: groups_of(i) for i, sid in enumerate(ids)})


#: Bootstrapped summary numbers (per-CR recalls carry Wilson intervals instead: test_metrics_exact).
KEYS = ("ap", "roc_auc", "tpr_at_fpr_5e-4", "op_tpr")


def test_one_group_gives_no_spread(tmp_path, basic_dataset):
    """All images in one group: every replicate draws that group once, i.e. the whole dataset, so
    each interval collapses onto the point estimate. Image-level resampling of the same images
    gives a spread: the card's groups, not the images, are what evaluate resamples."""
    ds = _regrouped_copy(tmp_path, basic_dataset, lambda i: "one-visit")
    grouped = evaluate("median", ds, split="all", progress=False, bootstrap=40, seed=3, operating_split=None)
    assert grouped.runs[0]["provenance"]["bootstrap"]["unit"] == "group"
    s = grouped.runs[0]["summary"]
    for k in KEYS:
        assert s[f"{k}_lo"] == pytest.approx(s[k], abs=1e-12) and s[f"{k}_hi"] == pytest.approx(s[k], abs=1e-12), k
    images = evaluate("median", basic_dataset, split="all", progress=False, bootstrap=40, seed=3,
                      operating_split=None)
    assert images.runs[0]["provenance"]["bootstrap"]["unit"] == "image"
    assert images.runs[0]["summary"]["ap_hi"] - images.runs[0]["summary"]["ap_lo"] > 1e-6


def test_two_groups_interval_spans_the_groups_own_values(tmp_path, basic_dataset):
    """Two groups A (train) and B (test): a replicate is A+A, A+B or B+B, whose value is that of A alone,
    of everything, or of B alone (doubling a group's weight leaves ratios unchanged). With 200
    replicates each case occurs many times, so the 2.5% and 97.5% percentiles are exactly the
    smallest and largest of those three values, each measured here by evaluating its split."""
    ds = _regrouped_copy(tmp_path, basic_dataset, lambda i: "A" if i < 4 else "B")
    run = evaluate("median", ds, split="all", progress=False, bootstrap=200, seed=0, operating_split=None).runs[0]
    alone = {sp: evaluate("median", ds, split=sp, progress=False, operating_split=None).runs[0]["summary"]
             for sp in ("train", "test")}
    s = run["summary"]
    for k in KEYS:
        values = [alone["train"][k], s[k], alone["test"][k]]
        assert s[f"{k}_lo"] == pytest.approx(min(values), abs=1e-9), k
        assert s[f"{k}_hi"] == pytest.approx(max(values), abs=1e-9), k
    assert alone["train"]["ap"] != pytest.approx(alone["test"]["ap"], abs=1e-6)  # the groups differ
