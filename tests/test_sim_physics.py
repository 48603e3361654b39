"""Physics sanity of the CR simulator: event rate, charge conservation, truth/label consistency."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.errors import CRBenchError, RegistryError
from data_recipes.sim.physics import (
    LABEL_FLOOR_E, TRUTH_RULE, bleed_columns, moyal, mpv_per_um, simulate_crs,
)
from data_recipes.sim.presets import PRESETS, get_preset


def test_presets_complete_and_lookup():
    assert set(PRESETS) == {"hst-acs-wfc", "decam", "lsst", "ground-small", "jwst-nircam"}
    p = get_preset("ground-small")
    assert p.default_shape == (500, 650) and p.pixel_scale == pytest.approx(5.2) and p.exptime == 60
    assert get_preset(p) is p
    with pytest.raises(RegistryError, match="unknown instrument preset 'nope'"):
        get_preset("nope")


def test_moyal_and_mpv():
    rng = np.random.default_rng(0)
    x = moyal(rng, 0.0, 1.0, size=200_000)
    # standard Moyal median = -2 ln(sqrt(2) erfcinv(1/2)) = 0.7875; the mode (histogram peak) sits at 0
    assert np.median(x) == pytest.approx(0.7875, abs=0.02)
    hist, edges = np.histogram(x, bins=np.linspace(-3, 5, 81))
    assert abs(edges[np.argmax(hist)]) <= 0.2
    assert mpv_per_um(16.0) == pytest.approx(58.5)
    assert mpv_per_um(5.0) < mpv_per_um(100.0) < mpv_per_um(300.0)


def test_event_rate_matches_flux_times_area_times_time():
    p = get_preset("hst-acs-wfc").with_(electron_rate=0.0, alpha_rate=0.0)
    shape, t = (512, 512), 2000.0
    layer = simulate_crs(np.random.default_rng(3), shape, p, t)
    inst = layer.instances
    inside = inst[(inst.x >= 0) & (inst.x < shape[1]) & (inst.y >= 0) & (inst.y < shape[0])]
    expected = p.muon_rate * shape[0] * shape[1] * p.pixel_area_cm2 * t
    assert abs(len(inside) - expected) < 5 * np.sqrt(expected)
    assert set(inst.generator) == {"muon"}


def test_charge_conservation_and_labels():
    p = get_preset("decam").with_(saturation=1e12)  # no saturation
    layer = simulate_crs(np.random.default_rng(1), (256, 256), p, 3000.0)
    assert len(layer.instances) > 5
    # everything rasterised into the frame is in the charge map
    assert layer.charge.sum() == pytest.approx(layer.instances["in_frame_charge"].sum(), rel=1e-3)
    # events far from the edges deposit all their charge inside
    inst = layer.instances
    mu = inst[(inst.generator == "muon") & (inst.x > 40) & (inst.x < 216) & (inst.y > 40) & (inst.y < 216)
              & (inst.length_px < 30)]
    if len(mu):
        np.testing.assert_allclose(mu["in_frame_charge"], mu["deposit"], rtol=1e-6)
    # labels: exactly the pixels with >= the floor, and ids are the table's
    assert np.array_equal(layer.labels > 0, layer.charge >= LABEL_FLOOR_E)
    assert set(np.unique(layer.labels[layer.labels > 0])) == set(inst["id"])
    counts = np.bincount(layer.labels.ravel())
    assert all(counts[i] == n for i, n in zip(inst["id"], inst["pixels"]))


def test_truth_mask_consistency():
    p = get_preset("hst-acs-wfc")
    layer = simulate_crs(np.random.default_rng(2), (256, 256), p, 1000.0, id_offset=100)
    sigma = np.full((256, 256), 11.0)
    sigma[:, 128:] = 200.0  # a bright source region hides faint CR pixels
    truth = layer.truth_mask(sigma)
    labels = layer.truth_labels(sigma)
    assert np.array_equal(truth, labels > 0)
    assert np.all(layer.labels[truth] > 0) and labels.min() == 0 and labels[truth].min() > 100
    assert truth[:, :128].mean() > truth[:, 128:].mean()
    unsat = truth & ~layer.saturated
    assert np.all(layer.charge[unsat] > TRUTH_RULE.grow_nsigma * sigma[unsat])
    # halo: the other CR pixels above 1 sigma, disjoint from truth
    t2, halo = layer.truth_and_halo(sigma)
    assert np.array_equal(t2, truth) and not (halo & truth).any() and halo.any()
    assert np.all(layer.charge[halo] > TRUTH_RULE.halo_nsigma * sigma[halo]) and np.all(layer.labels[halo] > 0)
    table = layer.truth_instances(labels)
    assert table["pixels"].sum() == truth.sum()
    assert table["id"].is_unique and set(table["morphology"]) <= {"spot", "track", "worm", "blob"}
    # a scalar noise works the same as a constant map
    assert np.array_equal(layer.truth_mask(11.0), layer.truth_mask(np.full((256, 256), 11.0)))


def test_deterministic_and_rate_scale():
    a = simulate_crs(np.random.default_rng(5), (128, 128), "jwst-nircam", 300.0)
    b = simulate_crs(np.random.default_rng(5), (128, 128), "jwst-nircam", 300.0)
    assert np.array_equal(a.charge, b.charge) and np.array_equal(a.labels, b.labels)
    none = simulate_crs(np.random.default_rng(5), (128, 128), "jwst-nircam", 300.0, rate_scale=0.0)
    assert none.charge.sum() == 0 and len(none.instances) == 0 and not none.labels.any()


def test_ccd_saturation_bleeds_and_ir_clips():
    p = get_preset("decam").with_(muon_rate=0, electron_rate=0, alpha_rate=1.0)  # dense alphas saturate
    layer = simulate_crs(np.random.default_rng(0), (128, 128), p, 200.0, background=1000.0)
    assert layer.instances["saturated"].any()
    assert (layer.charge + 1000.0).max() <= p.saturation * (1 + 1e-9)
    # a bled trail is vertical: saturated pixels extend further in y than in x for some event
    sat = layer.saturated
    assert sat.any()
    ir = get_preset("jwst-nircam").with_(muon_rate=0, electron_rate=0, snowball_rate=1.0)
    layer = simulate_crs(np.random.default_rng(0), (128, 128), ir, 300.0, background=50.0)
    assert set(layer.instances.generator) == {"snowball"}
    assert (layer.charge + 50.0).max() == pytest.approx(ir.saturation)


def test_bleed_columns_conserves_charge():
    img = np.full((50, 5), 100.0)
    img[25, 2] = 10_000.0
    out, sat, _ = bleed_columns(img, 1000.0)
    assert out.sum() == pytest.approx(img.sum())
    assert out.max() == pytest.approx(1000.0)
    assert sat[:, 2].sum() >= 9 and not sat[:, [0, 1, 3, 4]].any()
    owner = np.full(img.shape, -1)
    owner[25, 2] = 7
    _, _, own = bleed_columns(img, 1000.0, owner)
    assert np.all(own[sat] == 7)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(CRBenchError, match="exposure time"):
        simulate_crs(rng, (32, 32), "decam", -1.0)
    with pytest.raises(CRBenchError, match="shape"):
        simulate_crs(rng, (0, 32), "decam", 1.0)
    with pytest.raises(RegistryError):
        simulate_crs(rng, (32, 32), "hubble", 1.0)


def test_saturated_background_does_not_leak_into_cr_layer():
    p = get_preset("decam").with_(electron_rate=0.0, alpha_rate=0.0, muon_rate=0.5)
    bg = np.full((128, 128), 1000.0)
    bg[40:60, 40:60] = 3 * p.saturation  # a saturated star
    layer = simulate_crs(np.random.default_rng(4), (128, 128), p, 300.0, background=bg)
    assert len(layer.instances) > 3
    # the CR layer holds at most the CR's own charge: none of the star's excess
    assert layer.charge.sum() <= layer.instances["in_frame_charge"].sum() * (1 + 1e-9)
