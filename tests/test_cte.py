"""CTE trails (data_recipes/sim/cte.py): charge moves away from the register, in the amounts the trap model says."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.errors import CRBenchError
from data_recipes.sim.cte import (CTEGeometry, CTEModel, extend_labels_along_trails, layer_after_cte,
                                  observed_after_cte, read_out)

RAW = CTEModel(residual=1.0)
FAR = CTEGeometry(offset=1500, register_at_top=False)


def _frame(sky: float = 50.0, shape=(300, 20)) -> np.ndarray:
    return np.full(shape, sky)


def test_a_flat_frame_reads_out_unchanged():
    # the traps start in equilibrium with the sky and every packet takes back what the traps release;
    # what is left is each packet filling the one site no packet passed before (density x v(sky) ~ 0.17 e-)
    for offset in (0, 1500):
        out = read_out(_frame(80.0), RAW, CTEGeometry(offset=offset, register_at_top=False))
        np.testing.assert_allclose(out, 80.0, rtol=3e-3)
        assert np.all(np.diff(out[1:, 0]) <= 1e-12)


def test_a_bright_pixel_loses_charge_into_a_trail_on_the_far_side_and_charge_is_conserved():
    q = _frame()
    q[100, 5] += 1000.0
    out = read_out(q, RAW, FAR)
    base = read_out(_frame(), RAW, FAR)
    excess = out[:, 5] - base[:, 5]
    assert excess[100] < 1000.0 * 0.95                       # it lost charge
    assert np.all(np.abs(excess[:100]) < 1e-6)               # nothing moves towards the register
    assert excess[101] > 10.0 and excess[101] > excess[110] > excess[150] > 0
    # everything lost sits in the trail (the frame is long enough for the slowest species to empty)
    assert excess.sum() == pytest.approx(1000.0, rel=1e-3)
    np.testing.assert_array_equal(out[:, 4], base[:, 4])      # other columns untouched


def test_the_register_side_sets_the_trail_direction():
    q = _frame()
    q[200, 3] += 1000.0
    geometry = CTEGeometry(offset=1500, register_at_top=True)
    excess = read_out(q, RAW, geometry)[:, 3] - read_out(_frame(), RAW, geometry)[:, 3]
    assert np.all(np.abs(excess[201:]) < 1e-6)
    assert excess[199] > 10.0


def test_loss_grows_with_distance_and_falls_with_brightness_and_background():
    def loss(extra: float, offset: int, sky: float = 50.0) -> float:
        q = _frame(sky)
        q[100, 0] += extra
        geometry = CTEGeometry(offset=offset, register_at_top=False)
        out = read_out(q, RAW, geometry)[100, 0] - read_out(_frame(sky), RAW, geometry)[100, 0]
        return 1.0 - out / extra

    assert loss(1000.0, 1500) > loss(1000.0, 100) > 0
    assert loss(100.0, 1500) > loss(1000.0, 1500) > loss(10000.0, 1500)      # well-fill power < 1
    assert loss(1000.0, 1500, sky=5.0) > loss(1000.0, 1500, sky=500.0)       # the sky keeps traps filled


def test_the_pipeline_correction_leaves_the_residual_share():
    q = _frame()
    q[50, 2] += 5000.0
    raw = read_out(q, RAW, FAR)
    flc = observed_after_cte(q, RAW.with_residual(0.03), FAR)
    np.testing.assert_allclose(flc - q, 0.03 * (raw - q), atol=1e-9)
    np.testing.assert_array_equal(observed_after_cte(q, RAW.with_residual(0.0), FAR), q)


def test_a_layer_is_what_it_adds_to_the_read_out_frame():
    q = _frame()
    cr = np.zeros_like(q)
    cr[120, 7] = 800.0
    cr[121, 7] = 300.0
    layer = layer_after_cte(q + cr, cr, RAW, FAR)
    np.testing.assert_allclose(layer, read_out(q + cr, RAW, FAR) - read_out(q, RAW, FAR), atol=1e-9)
    assert layer.sum() == pytest.approx(1100.0, rel=1e-3)
    assert layer[120, 7] < 800.0 and layer[125, 7] > 0


def test_trail_pixels_take_the_label_of_the_pixel_that_trailed_into_them():
    labels = np.zeros((40, 3), np.int32)
    labels[10, 1] = 7
    charge = np.zeros((40, 3))
    charge[10:20, 1] = 1.0
    charge[5, 1] = 1.0               # register side of the CR: not its trail
    charge[15, 2] = 1.0              # another column
    out = extend_labels_along_trails(labels, charge, CTEGeometry(0, False), max_length=5)
    assert list(np.nonzero(out[:, 1])[0]) == list(range(10, 16))
    assert np.all(out[10:16, 1] == 7) and out[5, 1] == 0 and out[15, 2] == 0
    flipped = extend_labels_along_trails(labels[::-1], charge[::-1], CTEGeometry(0, True), max_length=5)
    np.testing.assert_array_equal(flipped, out[::-1])


@pytest.mark.parametrize("kwargs, word", [
    ({"residual": 1.5}, "residual"),
    ({"densities": (1.0,), "release_timescales": (1.0, 2.0)}, "one length"),
    ({"release_timescales": (0.0, 1.0, 2.0)}, "release_timescales"),
    ({"well_fill_power": 0.0}, "well_fill_power"),
])
def test_bad_models_are_refused(kwargs, word):
    with pytest.raises(CRBenchError, match=word):
        CTEModel(**kwargs)


def test_bad_frames_are_refused():
    q = _frame()
    q[3, 3] = np.nan
    with pytest.raises(CRBenchError, match="NaN"):
        read_out(q, RAW, FAR)
    with pytest.raises(CRBenchError, match="2-D"):
        read_out(np.zeros(5), RAW, FAR)


def _per_transfer_read_out(column: np.ndarray, model: CTEModel) -> np.ndarray:
    """Reference without the express approximation: every pixel site keeps its own trapped electrons and
    each packet is clocked through the sites one transfer at a time (register below row 0)."""
    dens = np.asarray(model.densities)
    keep = np.exp(-1.0 / np.asarray(model.release_timescales))
    charge = np.asarray(column, dtype=float).copy()
    n = len(charge)
    trapped = np.zeros((n, len(dens)))
    pos = np.arange(n)
    for _ in range(n):
        pos = pos - 1
        for i in np.nonzero(pos >= 0)[0]:
            site = pos[i]
            released = trapped[site] * (1.0 - keep)
            trapped[site] -= released
            charge[i] += released.sum()
            want = np.maximum(dens * (max(charge[i], 0.0) / model.full_well) ** model.well_fill_power
                              - trapped[site], 0.0)
            if want.sum() > charge[i]:
                want *= charge[i] / want.sum()
            trapped[site] += want
            charge[i] -= want.sum()
    return charge


@pytest.mark.parametrize("extra", [100.0, 10000.0])
def test_the_express_read_out_agrees_with_a_transfer_by_transfer_simulation(extra):
    n, row, sky = 160, 140, 110.0
    flat = np.full(n, sky)
    hit = flat.copy()
    hit[row] += extra
    exact = _per_transfer_read_out(hit, RAW) - _per_transfer_read_out(flat, RAW)
    geometry = CTEGeometry(offset=0, register_at_top=False)
    express = (read_out(hit[:, None], RAW, geometry) - read_out(flat[:, None], RAW, geometry))[:, 0]
    assert express[row] / extra == pytest.approx(exact[row] / extra, abs=0.01)      # charge kept in the pixel
    assert express[row + 1:row + 11].sum() == pytest.approx(exact[row + 1:row + 11].sum(), rel=0.10)  # trail
