"""The v3 confusers of the ACS recipes: a sharp, diffraction-limited PSF core and residual CTE trails."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.errors import DatasetError, RegistryError
from crbench.recipes import build_dataset
from crbench.truth import apply_truth_rule
from data_recipes import sim_recipes
from data_recipes.sim.cte import CTEGeometry
from data_recipes.sim.physics import TRUTH_RULE
from data_recipes.sim.presets import ACS_CTE, get_preset, with_confusers
from data_recipes.sim.scenes import _convolve_3x3, psf_kernel, render_points, simulate_sample_with_truth

ACS = get_preset("hst-acs-wfc")
V3 = with_confusers(ACS, "v3")


def _centred(preset, n: int = 61) -> np.ndarray:
    c = n // 2 + 0.5
    return render_points((n, n), np.array([c]), np.array([c]), np.array([1.0]), preset)


def test_core_halo_psf_is_normalised_symmetric_and_sharper_than_v2():
    k = psf_kernel(V3)
    assert k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-12)
    np.testing.assert_allclose(k, k.T, atol=1e-12)
    # a star centred on a pixel puts more of its light in that pixel than v2's Moffat (FWHM 2 px)
    assert _centred(V3).max() > 1.3 * _centred(ACS).max()


def test_core_halo_encircled_energy_is_the_documented_tuning():
    # docs/physics.md#confusers: 0.81 within 0.125" (2.5 px), between the ACS requirement 0.75 and goal 0.80
    img = _centred(V3)
    n = img.shape[0]
    yy, xx = np.mgrid[:n, :n] + 0.5
    r = np.hypot(yy - (n // 2 + 0.5), xx - (n // 2 + 0.5))
    assert 0.78 <= img[r <= 2.5].sum() <= 0.84


def test_prf_convolution_keeps_flux_and_a_delta_kernel_changes_nothing():
    rng = np.random.default_rng(3)
    stamps = np.zeros((4, 9, 9))
    stamps[:, 2:7, 2:7] = rng.random((4, 5, 5))
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    np.testing.assert_array_equal(_convolve_3x3(stamps, delta), stamps)
    prf = np.asarray(V3.prf_kernel).reshape(3, 3)
    out = _convolve_3x3(stamps, prf)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), stamps.sum(axis=(1, 2)) * prf.sum())
    shifted = np.zeros((3, 3))
    shifted[1, 2] = 1.0                                   # kernel weight to the right: content moves right
    moved = _convolve_3x3(stamps, shifted)
    np.testing.assert_array_equal(moved[:, :, 1:], stamps[:, :, :-1])


def test_with_confusers_refuses_unknown_versions_and_other_instruments():
    assert with_confusers(ACS, "v2") is ACS
    with pytest.raises(RegistryError, match="v2, v3"):
        with_confusers(ACS, "v9")
    with pytest.raises(RegistryError, match="ACS/WFC"):
        with_confusers(get_preset("decam"), "v3")


def test_v3_keeps_the_scene_and_the_crs_of_v2_and_the_truth_follows_the_read_out_cr_charge():
    kw = dict(field="ex", shape=(128, 128), exptime=1000.0, n_exposures=2)   # v3 retunes only GC and GAL scenes
    s2, _ = simulate_sample_with_truth(np.random.default_rng([1, 5]), "a", ACS, **kw)
    flt = V3.with_(cte=ACS_CTE.with_residual(1.0))          # uncorrected, so the trails are strong
    s3, t3 = simulate_sample_with_truth(np.random.default_rng([1, 5]), "a", flt, **kw)
    # same random stream: the same CRs (same start points and angles for every id both truths keep) and
    # the same sources (their masks differ only at the edges the sharper PSF moves)
    both = s2.instances.merge(s3.instances, on="id", suffixes=("_2", "_3"))
    assert len(both) >= 0.9 * len(s2.instances) > 0
    for col in ("x", "y", "theta_deg"):
        np.testing.assert_array_equal(both[f"{col}_2"], both[f"{col}_3"])
    assert (s2.sources != s3.sources).mean() < 0.01
    assert not np.array_equal(s2.image, s3.image)
    # the truth is the common rule on the CR charge the read-out frame shows
    truth, halo = apply_truth_rule(t3.significance, t3.present, TRUTH_RULE)
    np.testing.assert_array_equal(truth, s3.truth)
    np.testing.assert_array_equal(halo, s3.halo)
    finite = t3.present & np.isfinite(t3.significance)          # saturated CR pixels are +inf
    assert finite.sum() > 100
    np.testing.assert_allclose(t3.significance[finite], t3.layer.charge[finite] /
                               np.broadcast_to(t3.noise_sigma, t3.layer.charge.shape)[finite])
    # CTE moves CR charge out of the hit pixels into trails along the columns: the truth grows there
    assert s3.truth.sum() != s2.truth.sum()


def test_v3_recipe_option_builds_a_custom_set_with_the_models_on_its_card(tmp_path):
    ds = build_dataset("sim-hst-acs-ex", tmp_path / "v3", progress=False, n_images=2, shape=(64, 64),
                       confusers="v3")
    conf = ds.card["confusers"]
    assert conf["version"] == "v3" and conf["psf"]["model"] == "core-halo"
    assert conf["cte"]["correction_residual"] == pytest.approx(0.03)
    assert ds.card["parameters"]["confusers"] == "v3"
    v2 = build_dataset("sim-hst-acs-ex", tmp_path / "v2", progress=False, n_images=2, shape=(64, 64),
                       confusers="v2")
    plain = build_dataset("sim-hst-acs-ex", tmp_path / "plain", progress=False, n_images=2, shape=(64, 64))
    assert v2.content_hash != ds.content_hash
    # a build without the option is the standard confuser version's build
    default = {"v2": v2, "v3": ds}[sim_recipes.default_confusers("sim-hst-acs-ex")]
    assert plain.content_hash == default.content_hash
    assert "confusers" not in v2.card["parameters"] and "version" not in v2.card["confusers"]
    gc = build_dataset("sim-hst-acs-gc", tmp_path / "gc3", progress=False, n_images=1, shape=(64, 64),
                       confusers="v3")
    assert gc.card["confusers"]["gc_stars_per_256x256"] == 40.0      # the retuned crowding is on the card


@pytest.mark.parametrize("name, value, match", [("sim-decam", "v3", "ACS/WFC"), ("sim-hst-acs-gc", "v7", "v2, v3")])
def test_v3_recipe_option_errors_name_the_recipe(tmp_path, name, value, match):
    with pytest.raises(DatasetError, match=match) as err:
        build_dataset(name, tmp_path / "x", progress=False, n_images=1, shape=(32, 32), confusers=value)
    assert name in str(err.value)
    assert not (tmp_path / "x" / "dataset.json").exists()


def test_cte_geometry_is_drawn_per_field_and_within_the_chip():
    from data_recipes.sim.cte import draw_cte_geometry

    rng = np.random.default_rng(0)
    geos = [draw_cte_geometry(rng, 1024, ACS_CTE) for _ in range(200)]
    assert all(0 <= g.offset <= ACS_CTE.chip_rows - 1024 for g in geos)
    assert {g.register_at_top for g in geos} == {True, False}
    assert isinstance(geos[0], CTEGeometry)


def test_cli_builds_v3_and_says_it_is_not_the_standard(tmp_path, capsys):
    from crbench.cli import main
    from crbench.dataset import Dataset

    out = tmp_path / "ds"
    assert main(["datasets", "build", "sim-hst-acs-gal", "--confusers", "v3", "--n-images", "2", "--shape", "48x48",
                 "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "built sim-hst-acs-gal" in text and "standard" in text
    card = Dataset.open(out).card
    assert card["size"] == "custom" and card["confusers"]["version"] == "v3"
    assert main(["datasets", "build", "sim-decam", "--confusers", "v3", "--n-images", "1", "--shape", "32x32",
                 "--out", str(tmp_path / "d"), "--no-progress"]) == 1
    assert "ACS/WFC" in capsys.readouterr().err


def test_datasets_info_names_the_confusers(tmp_path):
    from crbench.dataset_info import describe

    v3 = build_dataset("sim-hst-acs-gc", tmp_path / "v3", progress=False, n_images=1, shape=(48, 48),
                       confusers="v3")
    line = [ln for ln in describe(v3).splitlines() if ln.strip().startswith("confusers:")]
    assert len(line) == 1 and "v3" in line[0] and "core-halo PSF" in line[0] and "0.03 left" in line[0]
    v2 = build_dataset("sim-hst-acs-gc", tmp_path / "v2", progress=False, n_images=1, shape=(48, 48),
                       confusers="v2")
    assert "confusers:    v2; hot 0.01" in describe(v2)


@pytest.mark.parametrize("other", ["v2", "v3"])
def test_other_confusers_at_the_standard_profile_keep_the_standard_splits(tmp_path, monkeypatch, other):
    # a tiny stand-in for the standard profile: a build with the non-standard confuser version is custom but
    # keeps the standard split counts (and test ids)
    tiny = dict(sim_recipes.STANDARD["sim-hst-acs-ex"], shape=(32, 32), split_counts=(3, 1, 2))
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-hst-acs-ex", tiny)
    monkeypatch.setattr(sim_recipes, "ACS_STANDARD_CONFUSERS", "v3" if other == "v2" else "v2")
    ds = build_dataset("sim-hst-acs-ex", tmp_path / "other", progress=False, confusers=other)
    assert ds.card["size"] == "custom"
    assert [len(ds.ids(s)) for s in ("train", "val", "test")] == [3, 1, 2]
    std = build_dataset("sim-hst-acs-ex", tmp_path / "std", progress=False)
    assert std.card["size"] == "standard" and std.ids("test") == ds.ids("test")


def test_flipping_the_acs_standard_confusers_makes_v3_the_standard_build(tmp_path, monkeypatch):
    # what docs/confusers_v3/README.md step 1 did, on a tiny stand-in for the standard profile
    monkeypatch.setattr(sim_recipes, "ACS_STANDARD_CONFUSERS", "v2")
    ground_version = sim_recipes.standard_version("sim-ground-small")
    tiny = dict(sim_recipes.STANDARD["sim-hst-acs-gc"], shape=(32, 32), split_counts=(2, 1, 1))
    tiny.pop("standard_version")  # GC's own v4 (its grown test split) came after the flip
    monkeypatch.setitem(sim_recipes.STANDARD, "sim-hst-acs-gc", tiny)
    v2_standard = build_dataset("sim-hst-acs-gc", tmp_path / "before", progress=False)
    assert v2_standard.card["standard"] == "v2" and "version" not in v2_standard.card["confusers"]
    monkeypatch.setattr(sim_recipes, "ACS_STANDARD_CONFUSERS", "v3")
    assert sim_recipes.standard_version("sim-hst-acs-gc") == "v3"
    assert sim_recipes.standard_version("sim-ground-small") == ground_version  # not an ACS set: not moved
    v3_standard = build_dataset("sim-hst-acs-gc", tmp_path / "after", progress=False)
    assert v3_standard.card["size"] == "standard" and v3_standard.card["standard"] == "v3"
    assert v3_standard.card["confusers"]["version"] == "v3"
    # the old standard stays buildable, as a custom build with the old hash (the registry's 'previous' pin)
    v2_again = build_dataset("sim-hst-acs-gc", tmp_path / "v2", progress=False, confusers="v2")
    assert v2_again.card["size"] == "custom" and v2_again.content_hash == v2_standard.content_hash
    # other recipes are untouched
    decam = build_dataset("sim-decam", tmp_path / "decam", progress=False, size="small", n_images=1, shape=(32, 32))
    assert "version" not in decam.card["confusers"]
