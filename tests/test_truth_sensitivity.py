"""benchmarks/truth_sensitivity.py regenerates a built simulated split exactly, whatever its confusers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from crbench.recipes import build_dataset
from crbench.truth import DEFAULT_RULE, apply_truth_rule

from _scripts import load_script


@pytest.mark.parametrize("confusers", ["v2", "v3"])
def test_regenerate_matches_a_build_of_either_confuser_version(tmp_path, confusers):
    ts = load_script("benchmarks/truth_sensitivity.py", "truth_sensitivity_under_test")
    ds = build_dataset("sim-hst-acs-gc", tmp_path / confusers, progress=False, size="small", n_images=4,
                       shape=(48, 48), confusers=confusers)
    name, pairs = ts.regenerate(str(ds.root), "test")
    assert name == "sim-hst-acs-gc" and [s.id for s, _ in pairs] == ds.ids("test")
    for sample, st in pairs:
        np.testing.assert_array_equal(sample.image, ds.load(sample.id, load_companions=False).image)
        # the regenerated significance gives back the build's truth under the recipe's rule
        truth, _ = apply_truth_rule(st.significance, st.present, DEFAULT_RULE)
        np.testing.assert_array_equal(truth, ds.load(sample.id, load_companions=False).truth)


def test_regenerate_refuses_a_build_that_differs(tmp_path):
    ts = load_script("benchmarks/truth_sensitivity.py", "truth_sensitivity_under_test")
    ds = build_dataset("sim-hst-acs-ex", tmp_path / "v3", progress=False, size="small", n_images=4,
                       shape=(48, 48), confusers="v3")
    card = ds.card
    card["parameters"].pop("confusers")   # a card that claims v2 for v3 images
    (ds.root / "dataset.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(SystemExit, match="differs from its regeneration"):
        ts.regenerate(str(ds.root), "test")


def test_regenerate_takes_the_split_of_a_standard_build(tmp_path, monkeypatch):
    # a standard build fixes its split counts (sim_recipes.STANDARD), which differ from the default fractions
    from data_recipes import sim_recipes

    ts = load_script("benchmarks/truth_sensitivity.py", "truth_sensitivity_under_test")
    tiny = dict(sim_recipes.STANDARD["sim-decam"], shape=(40, 40), split_counts=(2, 1, 3))
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-decam", tiny)
    ds = build_dataset("sim-decam", tmp_path / "std", progress=False)
    assert ds.card["size"] == "standard"
    for split in ("train", "val", "test"):
        name, pairs = ts.regenerate(str(ds.root), split)
        assert [s.id for s, _ in pairs] == ds.ids(split), split
