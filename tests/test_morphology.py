"""Geometric morphology classifier: synthetic shapes and agreement with the simulator's generators."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.errors import SampleError
from crbench.morphology import classify_by_component, classify_components, classify_instances, footprint_features
from data_recipes.sim.physics import simulate_crs
from data_recipes.sim.presets import get_preset


def _canvas():
    return np.zeros((80, 80), bool)


def test_synthetic_shapes():
    m = _canvas()
    m[5, 5] = True                      # single pixel -> spot
    m[10:12, 10:12] = True              # 2x2 -> spot
    for i in range(25):                 # diagonal straight line, 2 px wide -> track
        m[20 + i, 5 + i] = m[20 + i, 6 + i] = True
    yy, xx = np.mgrid[0:80, 0:80]
    m |= (yy - 60) ** 2 + (xx - 60) ** 2 <= 16   # filled disc r=4 -> blob
    t = np.linspace(0, 3 * np.pi, 200)          # meandering curve -> worm
    m[np.round(8 + 5 * np.sin(t)).astype(int) + 2, np.round(40 + 10 * t / np.pi).astype(int) - 5] = True
    labels, table = classify_components(m)
    got = {}
    for _, r in table.iterrows():
        got[(int(round(r.y)), int(round(r.x)))] = r.morphology
    by_lab = dict(zip(table["id"], table["morphology"]))
    assert by_lab[labels[5, 5]] == "spot"
    assert by_lab[labels[10, 10]] == "spot"
    assert by_lab[labels[30, 15]] == "track"
    assert by_lab[labels[60, 60]] == "blob"
    worm_label = labels[np.round(8 + 5 * np.sin(t[0])).astype(int) + 2, 35]
    assert by_lab[worm_label] == "worm"
    assert len(table) == labels.max() == 5
    f = table.set_index("id").loc[labels[30, 15]]
    assert f.elongation > 5 and f.tortuosity <= 1.3 and f.feret == pytest.approx(np.hypot(24, 25) + 1)


def test_saturated_small_region_is_blob_and_features():
    m = _canvas()
    m[10:15, 10:14] = True  # 20 px
    sat = np.zeros_like(m)
    sat[12, 12] = True
    _, table = classify_components(m, saturated=sat)
    assert table.morphology.tolist() == ["blob"]
    _, table = classify_components(m)
    assert table.n_saturated.tolist() == [0]
    f = footprint_features(np.ones((1, 1), bool))
    assert f["feret"] == 1 and f["area"] == 1 and f["tortuosity"] == 1


def test_classify_instances_uses_ids_and_union():
    lab = np.zeros((40, 40), np.int32)
    lab[5, 5:25] = 1001          # a track split in two pieces still one instance
    lab[5, 12] = 0
    lab[30:32, 30:32] = 77
    out = classify_instances(lab)
    assert out == {77: "spot", 1001: "track"}
    assert classify_instances(np.zeros((5, 5), np.int32)) == {}


def test_bad_inputs():
    with pytest.raises(SampleError, match="2-D"):
        classify_components(np.zeros((3, 3, 3), bool))
    with pytest.raises(SampleError, match="saturated has shape"):
        classify_components(np.zeros((4, 4), bool), saturated=np.zeros((5, 5), bool))
    with pytest.raises(SampleError, match="integer"):
        classify_instances(np.zeros((4, 4), float))


def _truth_table(preset, shape, exptime, seed=0):
    p = get_preset(preset) if isinstance(preset, str) else preset
    layer = simulate_crs(np.random.default_rng(seed), shape, p, exptime)
    sigma = np.sqrt(p.read_noise**2 + (p.sky_rate + p.dark_rate) * exptime)
    labels = layer.truth_labels(sigma)
    return layer.truth_instances(labels, diffusion_sigma_px=p.diffusion_sigma_px)


def _isolated_ids(p, shape, exptime, seed):
    from scipy import ndimage

    layer = simulate_crs(np.random.default_rng(seed), shape, p, exptime)
    sigma = np.sqrt(p.read_noise**2 + (p.sky_rate + p.dark_rate) * exptime)
    labels = layer.truth_labels(sigma)
    comp = ndimage.label(labels > 0, structure=np.ones((3, 3), int))[0]
    sel = labels > 0
    pairs = np.unique(np.stack([labels[sel], comp[sel]], 1), axis=0)
    per_comp = np.bincount(pairs[:, 1])
    return set(int(i) for i, c in pairs if per_comp[c] == 1)


def test_touching_crs_take_their_components_class():
    """Sim and real CRs are classified by one unit, the 8-connected truth component."""
    lab = np.zeros((30, 30), np.int32)
    lab[10, 2:12] = 1       # a straight track ...
    lab[4:10, 12] = 2       # ... touched at its end by another: one L-shaped footprint
    lab[25:27, 25:27] = 3   # an isolated spot
    assert classify_instances(lab) == {1: "track", 2: "track", 3: "spot"}
    assert classify_by_component(lab) == {1: "worm", 2: "worm", 3: "spot"}


@pytest.mark.parametrize("n, expected_ccd, expected_ipc", [(3, "worm", "track"), (4, "worm", "track"),
                                                           (2, "spot", "spot"), (6, "track", "track")])
def test_ipc_ring_is_taken_off_short_ir_muons(n, expected_ccd, expected_ipc):
    """A short straight path (diagonal, n px) widened by a 1-px IPC ring (4-neighbours): a worm by the
    CCD rule at 3-4 px, a track once the ring is taken off; a point stays a spot, a long one a track."""
    from scipy import ndimage

    path = np.zeros((20, 30), bool)
    for k in range(n):
        path[5 + k // 2, 3 + k] = True
    lab = ndimage.binary_dilation(path, ndimage.generate_binary_structure(2, 1)).astype(np.int32)
    assert classify_instances(lab, diffusion_sigma_px=0.36) == {1: expected_ccd}
    assert classify_instances(lab, diffusion_sigma_px=0.36, ipc_ring_px=1.0) == {1: expected_ipc}


@pytest.mark.parametrize("preset, shape, exptime, minimum", [
    ("decam", (384, 384), 300.0, 0.80),   # 250 um fully depleted: the acceptance criterion (>= 80%)
    ("lsst", (768, 768), 600.0, 0.75),    # 100 um: ~82% over many seeds; near-vertical muons are spots
])
def test_thick_sensor_muons_are_tracks(preset, shape, exptime, minimum):
    p = get_preset(preset)
    p = p.with_(electron_rate=0.0, alpha_rate=0.0, muon_rate=p.muon_rate * 40)
    table = _truth_table(p, shape, exptime, seed=1)
    # the classification unit is the 8-connected truth component: at 40x the rate crossing muons
    # merge into worms, so the track rule is checked on the muons alone in their component
    mu = table[(table.generator == "muon") & table.id.isin(_isolated_ids(p, shape, exptime, seed=1))]
    assert len(mu) >= 40
    assert (mu.morphology == "track").mean() >= minimum
    # what is not a track is (nearly) vertical: short projected paths
    assert mu[mu.morphology != "track"].length_px.median() < 5


def test_near_normal_thin_sensor_hits_are_spots():
    p = get_preset("hst-acs-wfc").with_(electron_rate=0.0, alpha_rate=0.0)
    table = _truth_table(p, (384, 384), 1000.0)
    near = table[(table.generator == "muon") & (table.theta_deg < 30)]
    assert len(near) >= 40
    assert (near.morphology == "spot").mean() >= 0.80


def test_snowballs_are_blobs():
    p = get_preset("jwst-nircam").with_(muon_rate=0.0, electron_rate=0.0, snowball_rate=0.25)
    table = _truth_table(p, (384, 384), 300.0)
    sb = table[table.generator == "snowball"]
    assert len(sb) >= 20
    assert (sb.morphology == "blob").mean() >= 0.90
