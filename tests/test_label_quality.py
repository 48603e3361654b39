"""Independent label-quality estimates of the multi-exposure labelling, on synthetic series with known truth."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from crbench.dataset_info import label_quality_line
from data_recipes.real.completeness import measure_completeness
from data_recipes.real.labelling import LabelParams, NoiseModel, label_series, labelling_companions
from data_recipes.real.purity import held_back_agreement, negative_deviation_purity, recurrence_purity
from data_recipes.real.quality import measure_label_quality

GAIN, RN, BIAS, SKY = 2.0, 5.0, 300.0, 200.0
NOISE = NoiseModel(gain=GAIN, read_noise=RN, bias=BIAS)


def _flat(n=10, shape=(64, 64), seed=0, star=None, star_var=0.0):
    """A static field (optionally one star) in ADU, no drift; returns frames and an (N, H, W) e- scene."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for j in range(n):
        scene = np.full(shape, SKY)
        if star is not None:
            flux = star[2] * (1 + star_var * rng.uniform(-1, 1))
            scene = scene + flux / (2 * np.pi * 1.5 ** 2) * np.exp(-((yy - star[0]) ** 2 + (xx - star[1]) ** 2) / 4.5)
        out.append(rng.poisson(scene).astype(float) + rng.normal(0, RN, shape))
    return np.stack(out)


def _adu(e):
    return (e / GAIN + BIAS).astype(np.float32)


def _label(e, **kw):
    params = LabelParams(border=2, outlier_rejection=False, **kw)
    return label_series(_adu(e), params=params, noise=NOISE, shifts=np.zeros((len(e), 2)))


def test_negative_deviations_count_symmetric_residuals_as_false_components():
    e = _flat(seed=1)
    # frame 4: three real CRs (positive only) and two misalignment-like dipoles (+ next to -)
    for y, x in ((10, 10), (30, 40), (50, 20)):
        e[4, y:y + 2, x:x + 2] += 2000.0
    for y, x in ((15, 45), (45, 50)):
        e[4, y:y + 2, x:x + 2] += 800.0
        e[4, y + 3:y + 5, x:x + 2] -= 800.0
    res = _label(e)
    assert sum(len(f.instances) for f in res.frames) == 5   # the dipoles' positive halves pass the rule
    neg = negative_deviation_purity(_adu(e), res, res.model)["all"]
    assert neg["negative_components"] == 2 and neg["positive_components"] == 5
    assert abs(neg["component_purity"] - 0.6) < 1e-9
    lo, hi = neg["component_purity_interval"]
    assert lo < 0.6 < hi            # a Poisson interval on the two negatives


def test_recurrence_finds_hot_pixel_leakage_and_not_chance_coincidence():
    rng = np.random.default_rng(3)
    n, shape = 40, (120, 120)
    chance = [rng.random(shape) < 0.01 for _ in range(n)]
    frames = [SimpleNamespace(truth=t, ignore=np.zeros(shape, bool), rejected=False) for t in chance]
    q = recurrence_purity(SimpleNamespace(frames=frames))
    assert q["pixel_purity_interval"][1] >= 0.99      # independent labels: no leakage detected
    leaky = []
    for t in chance:
        t = t.copy()
        t[:5, :10] = True                               # 50 warm pixels labelled in every frame
        leaky.append(SimpleNamespace(truth=t, ignore=np.zeros(shape, bool), rejected=False))
    q2 = recurrence_purity(SimpleNamespace(frames=leaky))
    total = sum(int(f.truth.sum()) for f in leaky)
    true_purity = 1 - 50 * n / total
    assert abs(q2["pixel_purity"] - true_purity) < 0.02
    assert q2["pixel_purity_interval"][1] < 0.9


def test_held_back_companions_agree_on_bright_crs_more_than_on_faint_ones():
    rates = []
    for amp in (3000.0, 90.0):
        e = _flat(n=10, seed=2)
        rng = np.random.default_rng(5)
        for j in range(10):
            for _ in range(4):
                y, x = rng.integers(5, 57, 2)
                e[j, y:y + 2, x:x + 2] += amp
        res = _label(e)
        rates.append(held_back_agreement(_adu(e), res, res.model)["component_agreement"])
    assert rates[0] > 0.95 and rates[1] < rates[0]


def _crs(e, rng, per_frame=4, amps=(300.0, 5000.0)):
    for j in range(len(e)):
        for _ in range(per_frame):
            y, x = rng.integers(6, e.shape[1] - 8, 2)
            e[j, y:y + 2, x:x + 3] += rng.uniform(*amps)


def test_completeness_from_real_footprints_reports_charge_bins_and_ignored_apart():
    e = _flat(n=10, shape=(80, 80), seed=4)
    _crs(e, np.random.default_rng(6))
    params = LabelParams(border=12, outlier_rejection=False)
    res = label_series(_adu(e), params=params, noise=NOISE, shifts=np.zeros((10, 2)))
    per = np.mean([len(f.instances) for f in res.frames])
    c = measure_completeness(_adu(e), res, model=res.model, params=params, blocks=None, seed=1,
                             charge_bins=(0, 3000, 1e9))
    assert c["per_frame"] == max(1, round(per))          # the observed rate, not a boost
    a = c["all"]
    ignored = sum(b["ignored"] for b in a["by_charge"])
    assert ignored > 0 and a["n"] + ignored == a["n_injected"]       # border CRs are ignored, not missed
    assert abs(a["ignored_share"] - ignored / a["n_injected"]) < 1e-12
    top = a["by_charge"][-1]
    assert top["n"] > 0 and top["completeness"] >= 0.9 and top["interval"][0] <= top["completeness"]


def test_stored_exposures_are_disjoint_from_labelling_companions():
    e = _flat(n=12, seed=7)
    res = _label(e)
    for f in res.frames:
        assert len(f.companions) == 2 and len(f.label_companions) >= 3
        assert not set(f.companions) & set(f.label_companions)
    lab, stored = labelling_companions(5, range(12), LabelParams(), 2)
    assert stored == [4, 6] and 4 not in lab and 6 not in lab
    lab2, _ = labelling_companions(5, range(12), LabelParams(disjoint_exposures=False), 2)
    assert {4, 6} <= set(lab2)


def test_crs_on_stable_stars_are_labelled_and_on_variable_ones_ignored():
    star = (30, 30, 4e4)
    out = {}
    for var in (0.0, 0.5):
        e = _flat(n=10, seed=8, star=star, star_var=var)
        e[4, 31:33, 33:35] += 2500.0    # a CR on the star's wing
        res = _label(e)
        f = res.frames[4]
        assert f.sources[31, 33]
        out[var] = (bool(f.truth[31:33, 33:35].all()), bool(f.ignore[31:33, 33:35].all()))
    assert out[0.0] == (True, False)
    assert out[0.5] == (False, True)


def test_datasets_info_shows_independent_purity_and_completeness_vs_charge():
    e = _flat(n=10, seed=9)
    _crs(e, np.random.default_rng(10), per_frame=3, amps=(1500.0, 5000.0))
    res = _label(e)
    q = measure_label_quality(_adu(e), res, model=res.model, params=res.params, blocks=None)
    text = label_quality_line({"label_quality": q})
    for word in ("negative deviations", "recurrence", "held-back", "charge (e-)", "ignored"):
        assert word in text
    assert "simulated" not in text
