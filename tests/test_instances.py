"""Per-CR rules, residual charge, false-positive components and source flags on hand-made cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crbench.conventions import Conventions
from crbench.harness import RecordSpec, compute_record, reduce_run
from crbench.metrics import Binning
from crbench.metrics.instances import (charge_histogram, fp_components, instance_metrics, instance_table,
                                       pixel_charge, residual_charge)
from crbench.metrics.sources import source_metrics, source_table
from crbench.sample import Sample


def _two_crs():
    labels = np.zeros((6, 8), np.int32)
    bins = np.zeros((6, 8), np.int64)
    charge = np.zeros((6, 8))
    # CR 1 (track): 4 pixels, bins 30, 20, 10, 5 with charge 100, 100, 100, 700
    for (y, x), b, q in zip([(1, 1), (1, 2), (1, 3), (1, 4)], [30, 20, 10, 5], [100, 100, 100, 700]):
        labels[y, x], bins[y, x], charge[y, x] = 1, b, q
    # CR 2 (spot): 3 pixels, bins 8, 8, 2 with charge 500, 400, 100
    for (y, x), b, q in zip([(4, 5), (4, 6), (5, 5)], [8, 8, 2], [500, 400, 100]):
        labels[y, x], bins[y, x], charge[y, x] = 2, b, q
    return labels, bins, charge


def test_instance_table_threshold_free_bins():
    labels, bins, charge = _two_crs()
    t = instance_table(labels, bins, charge, {1: "track", 2: "spot"}).set_index("id")
    # any pixel: the highest bin; half: the ceil(n/2)-th highest; 90% of charge from the top down
    assert t.loc[1, ["bin_any", "bin_half", "bin_charge90"]].tolist() == [30, 20, 5]
    # CR 2: 500 + 400 = 900 of 1000 e- already at bin 8, exactly 90%
    assert t.loc[2, ["bin_any", "bin_half", "bin_charge90"]].tolist() == [8, 8, 8]
    assert t.loc[1, "pixels"] == 4 and t.loc[1, "charge"] == pytest.approx(1000)
    assert t.loc[2, "morphology"] == "spot"


@pytest.mark.parametrize("thr,expected", [
    (3, (1.0, 1.0, 1.0)),
    (6, (1.0, 1.0, 0.5)),    # CR1 needs bin 5 for 90% of its charge (its 700 e- pixel)
    (9, (0.5, 0.5, 0.0)),
    (25, (0.5, 0.0, 0.0)),
    (31, (0.0, 0.0, 0.0)),
])
def test_three_rules_at_thresholds(thr, expected):
    labels, bins, charge = _two_crs()
    t = instance_table(labels, bins, charge, {1: "track", 2: "spot"})
    m = instance_metrics(t, thr)
    assert (m["recall_any"], m["recall_half"], m["recall_charge90"]) == expected
    assert m["n_crs"] == 2 and m["cr_pixels"] == 7


def test_residual_charge_sums_unflagged_cr_charge():
    labels, bins, charge = _two_crs()
    h = charge_histogram(labels, bins, charge)
    assert residual_charge(h, 0) == 0
    assert residual_charge(h, 9) == pytest.approx(700 + 1000)   # CR1's bin-5 pixel and all of CR2
    assert residual_charge(h, 11) == pytest.approx(100 + 700 + 1000)
    assert residual_charge(h, 100) == pytest.approx(2000)


def test_ignored_pixels_leave_instances():
    labels, bins, charge = _two_crs()
    valid = np.ones(labels.shape, bool)
    valid[4:, :] = False  # CR 2 entirely ignored
    valid[1, 1] = False   # CR 1 loses its brightest pixel
    t = instance_table(labels, bins, charge, valid=valid)
    assert t["id"].tolist() == [1] and t.loc[0, "bin_any"] == 20 and t.loc[0, "pixels"] == 3


def test_pixel_charge_subtracts_local_background():
    rng = np.random.default_rng(1)
    img = np.full((20, 20), 100.0, np.float32) + rng.normal(0, 0.01, (20, 20)).astype(np.float32)
    labels = np.zeros((20, 20), np.int32)
    labels[5, 5:8] = 1
    img[5, 5:8] += np.array([50, 300, 20], np.float32)
    q = pixel_charge(img, labels, sky=0.0)
    np.testing.assert_allclose(q[5, 5:8], [50, 300, 20], atol=0.1)
    assert q[labels == 0].sum() == 0


def test_fp_components_count_blobs_without_truth():
    flagged = np.zeros((10, 10), bool)
    truth = np.zeros((10, 10), bool)
    flagged[1, 1:3] = True            # blob A, no truth
    flagged[5, 5] = flagged[6, 6] = True  # blob B (diagonal: one 8-connected component), touches truth
    truth[6, 6] = True
    flagged[8, 1] = True              # blob C, no truth
    assert fp_components(flagged, truth) == 2
    valid = np.ones((10, 10), bool)
    valid[8, 1] = False               # an ignored flag is no false positive
    assert fp_components(flagged, truth, valid) == 1


def test_source_flagged_only_within_one_fwhm():
    img = np.full((30, 30), 10.0)
    yy, xx = np.mgrid[:30, :30]
    img += 5000 * np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / (2 * 1.2 ** 2))
    sources = img > 50
    bins = np.zeros((30, 30), np.int64)
    bins[10, 13] = 40   # 1 px from the centre: within FWHM = 2.5
    bins[10, 16] = 90   # 4 px away: outside
    t = source_table(img, sources, bins, sky=10.0, read_noise=5.0, fwhm=2.5)
    assert len(t) == 1
    assert t.loc[0, "x"] == pytest.approx(12, abs=0.05) and t.loc[0, "y"] == pytest.approx(10, abs=0.05)
    assert t.loc[0, "bin_max"] == 40 and t.loc[0, "snr"] > 50
    assert source_metrics(t, 41)["source_flag_fraction"] == 0.0
    m = source_metrics(t, 40)
    assert m["source_flag_fraction"] == 1.0
    assert sum(r["n_sources"] for r in m["by_snr"]) == 1


def test_record_and_reduction_per_cr_and_sources():
    """A perfect detector finds every CR under every rule, leaves no charge and no false blobs."""
    from conftest import make_sample

    s = make_sample(n_crs=8)
    s.sources = np.zeros(s.shape, bool)
    s.sources[30:34, 30:34] = True
    s.meta["psf_fwhm"] = 2.0
    b = Binning.for_range((0.0, 1.0), 64)
    spec = RecordSpec(b, Conventions(), thresholds=(("fpr", 32), ("dice", 32)))
    perfect = compute_record(s.truth.astype(np.float32), s, spec)
    red = reduce_run([perfect], b, Conventions(), op={"rule": "fpr", "thresholds": {"fpr": 32, "dice": 32}})
    summ = red["summary"]
    assert summ["recall_any"] == summ["recall_half"] == summ["recall_charge90"] == 1.0
    assert summ["residual_charge_e"] == 0 and summ["fp_components_per_mpix"] == 0
    assert summ["source_flag_fraction"] == 0 and summ["n_crs"] == len(s.instances)
    rows = {r["morphology"]: r for r in red["by_morphology"]}
    assert rows["spot"]["recall_half"] == 1.0 and rows["spot"]["pixel_tpr_at_fpr_5e-4"] == 1.0
    # flag the sources mask and one false blob: the source and the blob are counted
    score = s.truth.astype(np.float32)
    score[31, 31] = 1.0
    score[50, 10] = 1.0
    rec = compute_record(score, s, spec)
    red = reduce_run([rec], b, Conventions(), op={"rule": "fpr", "thresholds": {"fpr": 32, "dice": 32}})
    assert red["summary"]["source_flag_fraction"] == 1.0
    assert red["summary"]["fp_components_per_mpix"] == pytest.approx(2 / (64 * 64 / 1e6))
    assert red["summary"]["fpr_sources"] == pytest.approx(1 / 16)


def test_evaluate_writes_morphology_csv(tmp_path, basic_dataset):
    from crbench.harness import MORPHOLOGY_COLUMNS, evaluate

    res = evaluate("median", basic_dataset, split="test", progress=False, out=tmp_path)
    run = res.runs[0]
    assert run["summary"]["op_chosen_on"] == "val"
    assert set(run["operating_points"]) == {"fpr", "dice"}
    assert np.isfinite(run["summary"]["fp_components_per_mpix"])
    table = pd.read_csv(tmp_path / "results_by_morphology.csv")
    assert list(table.columns) == MORPHOLOGY_COLUMNS == [
        "detector", "dataset", "split", "morphology", "n_crs", "cr_pixels", "recall_any", "recall_half",
        "recall_charge90", "pixel_tpr_at_fpr_5e-4", "recall_any_lo", "recall_any_hi", "recall_half_lo",
        "recall_half_hi", "recall_charge90_lo", "recall_charge90_hi", "rankable"]
    # Wilson intervals bracket every recall; rankable exactly when the class has >= 30 CRs
    assert (table["recall_half_lo"] <= table["recall_half"]).all() and (table["recall_half"] <= table["recall_half_hi"]).all()
    assert (table["rankable"] == (table["n_crs"] >= 30)).all()
    assert set(table["morphology"]) <= {"spot", "track", "worm", "blob"}
    inst = basic_dataset.instances()
    test_ids = basic_dataset.ids("test")
    assert table["n_crs"].sum() == inst[inst["sample_id"].isin(test_ids)].shape[0]
