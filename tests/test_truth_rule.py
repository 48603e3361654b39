"""The one truth rule (crbench.truth): seed and growth, halo, connectivity; the simulators and the
real labelling share it; cards record it; HALO survives FITS; the halo evaluation conventions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crbench.conventions import Conventions, resolve_conventions
from crbench.errors import CRBenchError, SampleError
from crbench.fitsio import read_sample, write_sample
from crbench.harness import sample_histograms
from crbench.metrics import Binning
from crbench.sample import Sample
from crbench.truth import (
    DEFAULT_RULE, TruthRule, apply_truth_rule, present_from_seeds, rule_from_dict, seed_grow_rule, threshold_rule,
)


def _seed_map() -> np.ndarray:
    """A 6-sigma seed at (5, 5), its 8 neighbours at 3 sigma, the ring around them at 2 sigma."""
    sig = np.zeros((11, 11))
    sig[3:8, 3:8] = 2.0
    sig[4:7, 4:7] = 3.0
    sig[5, 5] = 6.0
    return sig


def test_seed_grows_into_neighbours_and_ring_is_halo():
    truth, halo = apply_truth_rule(_seed_map(), None, DEFAULT_RULE)
    expected_truth = np.zeros((11, 11), bool)
    expected_truth[4:7, 4:7] = True
    ring = np.zeros((11, 11), bool)
    ring[3:8, 3:8] = True
    ring &= ~expected_truth
    assert np.array_equal(truth, expected_truth)
    assert np.array_equal(halo, ring)


def test_isolated_blob_without_seed_is_all_halo():
    sig = np.zeros((9, 9))
    sig[3:6, 3:6] = 4.0  # above growth, below seed
    truth, halo = apply_truth_rule(sig, None, DEFAULT_RULE)
    assert not truth.any()
    assert np.array_equal(halo, sig > 1)


def test_connectivity_decides_diagonal_neighbours():
    sig = np.zeros((7, 7))
    sig[3, 3] = 8.0
    sig[4, 4] = 3.0   # touches the seed by a corner only
    sig[5, 5] = 3.0   # and continues diagonally
    t8, h8 = apply_truth_rule(sig, None, seed_grow_rule(5, 2.5, connectivity=8))
    t4, h4 = apply_truth_rule(sig, None, seed_grow_rule(5, 2.5, connectivity=4))
    assert t8[4, 4] and t8[5, 5] and not h8.any()
    assert t4[3, 3] and not t4[4, 4] and not t4[5, 5]
    assert h4[4, 4] and h4[5, 5]


def test_growth_follows_the_whole_connected_region_and_present_mask():
    sig = np.zeros((3, 20))
    sig[1, 0] = 7.0
    sig[1, 1:15] = 3.0   # a 14-pixel faint tail
    truth, _ = apply_truth_rule(sig, None, DEFAULT_RULE)
    assert truth[1, :15].all()  # more than any fixed number of dilations
    limited, halo = apply_truth_rule(sig, None, seed_grow_rule(5, 2.5, max_grow=5))
    assert limited[1, :6].all() and not limited[1, 6:].any() and halo[1, 6:15].all()
    present = np.zeros_like(sig, bool)
    present[1, :8] = True  # the CR's charge stops at column 8
    truth_p, halo_p = apply_truth_rule(sig, present, DEFAULT_RULE)
    assert np.array_equal(truth_p, present) and not halo_p.any()


def test_threshold_rule_and_validation():
    sig = _seed_map()
    t3, h3 = apply_truth_rule(sig, None, threshold_rule(3))
    assert np.array_equal(t3, sig > 3) and np.array_equal(h3, (sig > 1) & ~(sig > 3))
    t1, h1 = apply_truth_rule(sig, None, threshold_rule(1))
    assert np.array_equal(t1, sig > 1) and not h1.any()
    with pytest.raises(CRBenchError, match="connectivity must be 4 or 8"):
        TruthRule(connectivity=6)
    with pytest.raises(CRBenchError, match="halo_nsigma <= grow_nsigma <= seed_nsigma"):
        TruthRule(seed_nsigma=2.0, grow_nsigma=3.0)
    d = DEFAULT_RULE.to_dict()
    assert d["name"] == "seed5-grow2.5" and d["connectivity"] == 8 and "version" in d
    assert rule_from_dict(json.loads(json.dumps(d))) == DEFAULT_RULE


def test_nan_is_not_significant_and_inf_is_a_seed():
    sig = np.zeros((5, 5))
    sig[2, 2] = np.inf
    sig[2, 3] = 3.0
    sig[0, 0] = np.nan
    truth, halo = apply_truth_rule(sig, None, DEFAULT_RULE)
    assert truth[2, 2] and truth[2, 3] and truth.sum() == 2 and not halo.any()


# ----------------------------------------------------------------------------- one rule everywhere


def _chain_map() -> np.ndarray:
    """A seed with a 9-pixel tail at 3 sigma, a 2-sigma fringe and a lone 4-sigma pixel far away."""
    sig = np.zeros((12, 16))
    sig[4, 2] = 9.0
    sig[4, 3:12] = 3.0
    sig[5, 2:12] = 1.5
    sig[10, 14] = 4.0
    return sig


def test_real_labelling_uses_the_library_rule():
    from data_recipes.real.labelling import LabelParams, halo_mask, seeds_and_growth

    sig = _chain_map()
    p = LabelParams()
    assert p.truth_rule == DEFAULT_RULE
    seeds, grown = seeds_and_growth(sig.astype(np.float32), p)
    truth, _ = apply_truth_rule(sig, None, DEFAULT_RULE)
    assert np.array_equal(seeds, sig > 5) and np.array_equal(grown, truth)
    assert grown[4, 2:12].all()  # the whole tail, not 5 dilations
    # halo: pixels above 1 sigma connected to a seed that fail the rule; the lone 4-sigma pixel
    # is not connected to any seed, so it is no CR charge at all in real data
    halo = halo_mask(sig.astype(np.float32), p)
    assert np.array_equal(halo, (sig > 1) & (sig <= 2.5) & (np.arange(12)[:, None] == 5))
    assert np.array_equal(present_from_seeds(sig), grown | halo)


def test_simulation_uses_the_library_rule():
    from data_recipes.sim.physics import TRUTH_RULE, CRLayer

    sig = _chain_map()
    sigma = 10.0
    labels = np.where(sig > 0, 1, 0).astype(np.int32)
    labels[10, 14] = 2
    layer = CRLayer(charge=sig * sigma, labels=labels, instances=pd.DataFrame(
        {"id": np.array([1, 2], np.int32), "morphology": ["track", "spot"], "generator": ["muon", "electron"],
         "pixels": [0, 0], "charge": [0.0, 0.0], "saturated": [False, False]}),
        saturated=np.zeros(sig.shape, bool))
    assert TRUTH_RULE == DEFAULT_RULE
    truth, halo = layer.truth_and_halo(sigma)
    exp_truth, exp_halo = apply_truth_rule(sig, labels > 0, DEFAULT_RULE)
    assert np.array_equal(truth, exp_truth) and np.array_equal(halo, exp_halo)
    assert halo[10, 14] and not truth[10, 14]  # event 2 is all halo
    table = layer.truth_instances(layer.truth_labels(sigma), classify=False)
    assert table["id"].tolist() == [1]  # an all-halo CR is no truth instance


def test_simulated_sample_has_halo_and_drops_halo_only_crs():
    from data_recipes.sim.scenes import simulate_sample_with_truth

    s, st = simulate_sample_with_truth(np.random.default_rng([1, 0]), "t", "hst-acs-wfc", field="ex",
                                       shape=(128, 128), exptime=1000.0, n_exposures=1)
    assert s.halo is not None and s.halo.any() and not (s.halo & s.truth).any()
    truth, halo = apply_truth_rule(st.significance, st.present, DEFAULT_RULE)
    assert np.array_equal(truth, s.truth) and np.array_equal(halo, s.halo)
    assert set(s.instances["id"].tolist()) == set(np.unique(s.labels[s.truth]).tolist())
    halo_only = set(np.unique(st.layer.labels[s.halo]).tolist()) - set(s.instances["id"].tolist())
    assert s.meta["halo_only_crs"] == len(halo_only) and s.meta["truth_rule"] == "seed5-grow2.5"
    # the old 1-sigma truth is truth + halo: the rule removed pixels
    assert (st.significance[st.present] > 1).sum() == s.truth.sum() + s.halo.sum()


# ----------------------------------------------------------------------------- cards and FITS


@pytest.mark.parametrize("recipe, opts", [("sim-basic", {"n_images": 3, "shape": (64, 64)}),
                                          ("sim-hst-acs-ex", {"n_images": 3, "shape": (64, 64)})])
def test_card_records_the_truth_rule(tmp_path, recipe, opts):
    from crbench.recipes import build_dataset

    ds = build_dataset(recipe, tmp_path / recipe, progress=False, **opts)
    rule = ds.card["truth_rule"]
    assert rule["name"] == "seed5-grow2.5" and rule["seed_nsigma"] == 5.0 and rule["grow_nsigma"] == 2.5
    assert rule["connectivity"] == 8 and rule["halo_nsigma"] == 1.0
    samples = [ds.load(i) for i in ds.ids()]
    assert rule["halo_only_crs_dropped"] == sum(int(s.meta["halo_only_crs"]) for s in samples)
    assert all(s.halo is not None for s in samples)


def test_halo_fits_round_trip(tmp_path):
    truth = np.zeros((8, 8), bool)
    truth[2, 2] = True
    halo = np.zeros((8, 8), bool)
    halo[2, 3] = halo[3, 3] = True
    s = Sample(id="h", image=np.zeros((8, 8), np.float32), truth=truth, labels=truth.astype(np.int32), halo=halo)
    write_sample(s, tmp_path / "h.fits")
    from astropy.io import fits

    with fits.open(tmp_path / "h.fits") as hdul:
        assert hdul["HALO"].data.dtype == np.uint8
    back = read_sample(tmp_path / "h.fits")
    assert back.halo is not None and np.array_equal(back.halo, halo)
    bad = Sample(id="bad", image=np.zeros((8, 8), np.float32), truth=truth, halo=truth.copy())
    with pytest.raises(SampleError, match="'bad': halo and truth overlap"):
        bad.validate()


# ----------------------------------------------------------------------------- halo conventions

BINS = Binning.for_range((0.0, 1.0), 100)
T = 50


def _halo_case() -> tuple[Sample, np.ndarray]:
    """One detected CR pixel, one detected and one missed halo pixel, an ignored halo pixel."""
    score = np.zeros((4, 4), np.float32)
    truth = np.zeros((4, 4), bool)
    halo = np.zeros((4, 4), bool)
    ignore = np.zeros((4, 4), bool)
    truth[1, 1], score[1, 1] = True, 0.9
    halo[1, 2], score[1, 2] = True, 0.8    # flagged halo pixel
    halo[2, 1], score[2, 1] = True, 0.1    # missed halo pixel
    halo[3, 3], ignore[3, 3], score[3, 3] = True, True, 0.9
    s = Sample(id="halo", image=np.zeros((4, 4), np.float32), truth=truth, ignore=ignore,
               labels=truth.astype(np.int32), halo=halo)
    return s, score


def _counts(halo: str) -> tuple[int, int, int, int]:
    s, score = _halo_case()
    pos, neg = sample_histograms(score, s, BINS, Conventions(halo=halo))
    return int(pos[T:].sum()), int(pos.sum()), int(neg[T:].sum()), int(neg.sum())


def test_halo_ignore_is_the_default_and_excludes_halo_pixels():
    assert Conventions().halo == "ignore"
    # 16 pixels - 1 CR - 2 halo - 1 ignored = 12 negatives, none flagged
    assert _counts("ignore") == (1, 1, 0, 12)


def test_halo_negative_counts_halo_pixels_as_non_cr():
    # the flagged halo pixel is a false positive; 14 negatives
    assert _counts("negative") == (1, 1, 1, 14)


def test_halo_positive_counts_halo_pixels_as_cr():
    # 3 CR pixels (the ignored halo pixel stays ignored), 2 found
    assert _counts("positive") == (2, 3, 0, 12)


def test_halo_convention_validated_and_overridable():
    with pytest.raises(ValueError, match="convention halo='maybe'"):
        Conventions(halo="maybe")
    c = resolve_conventions("crbench", halo="positive")
    assert c.halo == "positive" and c.protocol == "crbench+custom"


def test_cli_halo_flag_reaches_the_results(tmp_path, basic_dataset):
    import argparse

    from crbench.commands import evaluate as cmd

    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    out = tmp_path / "res"
    args = parser.parse_args(["evaluate", "--detector", "median", "--dataset", str(basic_dataset.root),
                              "--halo", "negative", "--no-per-cr", "--no-sources", "--bootstrap", "0",
                              "--no-progress", "--operating-split", "none", "--no-cache", "--out", str(out)])
    assert args.func(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["runs"][0]["provenance"]["conventions"]["halo"] == "negative"
