"""benchmarks/noise_regimes.py: the same CRs in every noise cell, sky scaling, ADU quantisation, grid
checks, and an end-to-end --quick run scored by crbench's harness."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "noise_regimes.py"


@pytest.fixture(scope="module")
def nr():
    spec = importlib.util.spec_from_file_location("noise_regimes", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses resolve their annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def _background(shape=(64, 80), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bg = 300.0 + rng.gamma(2.0, 20.0, shape)
    bg[20:23, 30:33] += 5000.0  # a star
    return bg


def test_same_crs_in_every_cell_truth_nested_by_noise(nr):
    inj = nr.draw_injections([_background()], rate_scale=200.0, seed=1)[0]
    present = inj.primary.labels > 0
    assert present.any()
    grid = nr.make_grid([2.0, 100.0], [1.0, 10000.0], [0.5, 20.0])
    samples = {c: nr.cell_samples([inj], c, k, seed=1)[0] for k, c in enumerate(grid)}
    for cell, s in samples.items():
        # truth lies on the shared CR layer and keeps that layer's instance ids
        assert not (s.truth & ~present).any(), cell.name
        assert np.array_equal(s.labels[s.truth], inj.primary.labels[s.truth])
    quiet = samples[nr.Cell(2.0, 1.0, 0.5)]
    noisy = samples[nr.Cell(100.0, 10000.0, 20.0)]
    assert quiet.truth.sum() > noisy.truth.sum() > 0
    assert not (noisy.truth & ~quiet.truth).any()  # lower noise: a superset of the same CR pixels
    # the CR charge is the same in every cell: a noise-free check through the cell's image minus its noise draw
    for k, cell in enumerate(grid):
        rng = np.random.default_rng([1, 1, k, 0])
        bg = nr.scale_to_sky(inj.background, cell.sky)
        no_cr = nr.observe(rng, bg, cell, None)
        diff = samples[cell].image.astype(np.float64) - no_cr
        # identical noise stream: the difference is the CR charge up to one ADU step (and clipping)
        assert np.all(np.abs(diff - inj.primary.charge)[~samples[cell].ignore] <= cell.gain + 1e-3)


def test_sky_scaling_hits_the_requested_median_and_keeps_structure(nr):
    bg = _background()
    for sky in (1.0, 100.0, 10000.0):
        out = nr.scale_to_sky(bg, sky)
        assert np.median(out) == pytest.approx(sky, rel=1e-12)
        assert np.allclose(out / sky, bg / np.median(bg))


def test_gain_quantisation_puts_values_on_the_adu_grid(nr):
    rng = np.random.default_rng(0)
    for gain in (0.5, 4.0, 20.0):
        cell = nr.Cell(10.0, 100.0, gain)
        img = nr.observe(rng, nr.scale_to_sky(_background(), cell.sky), cell, None)
        adu = img / gain
        assert np.allclose(adu, np.round(adu), atol=1e-9)
        assert len(np.unique(np.round(adu))) > 10


@pytest.mark.parametrize("kw, option", [
    ({"read_noise": [-1.0], "sky": [1.0], "gain": [1.0]}, "--read-noise"),
    ({"read_noise": [1.0], "sky": [1.0], "gain": [0.0]}, "--gain"),
    ({"read_noise": [1.0], "sky": [0.0], "gain": [1.0]}, "--sky"),
    ({"read_noise": [1.0], "sky": [float("nan")], "gain": [1.0]}, "--sky"),
])
def test_bad_grid_value_names_the_option(nr, kw, option):
    from crbench.errors import CRBenchError

    with pytest.raises(CRBenchError, match=option):
        nr.make_grid(**kw)


def test_bad_grid_value_on_the_command_line_is_one_clear_line(nr, capsys):
    assert nr.main(["--quick", "--gain", "0", "--detectors", "median"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gain" in err[0] and "> 0" in err[0]


def _quick(nr, basic_dataset, tmp_path, detectors):
    return nr.main(["--quick", "--backgrounds", f"dataset:{basic_dataset.root}", "--n-backgrounds", "2",
                    "--crop", "64,64", "--detectors", detectors, "--rate-scale", "300", "--out", str(tmp_path)])


def _table(text: str) -> list[list[str]]:
    rows = [ln for ln in text.splitlines() if ln.startswith("| rn")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]


def test_quick_run_median_end_to_end(nr, basic_dataset, tmp_path, capsys):
    assert _quick(nr, basic_dataset, tmp_path, "median") == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert len(rows) == 8  # 2x2x2 quick grid
    for r in rows:
        assert int(r[4]) > 0 and math.isfinite(float(r[5]))  # truth pixels, median AP
    assert out.strip().splitlines()[-2:] == [f"cells_where_{h}_below_classical: n/a (not scored)"
                                             for h in (nr.HEADLINE, nr.HEADLINE_COMPANIONS)]
    import pandas as pd

    df = pd.read_csv(tmp_path / "noise_regimes.csv")
    assert len(df) == 8 and set(df.detector) == {"median"}
    assert (tmp_path / "noise_regimes.md").read_text().startswith("| cell |")


def test_quick_run_lacosmic_and_median(nr, basic_dataset, tmp_path, capsys):
    assert _quick(nr, basic_dataset, tmp_path, "lacosmic,median") == 0
    out = capsys.readouterr().out
    header = next(ln for ln in out.splitlines() if ln.startswith("| cell |"))
    assert "lacosmic AP" in header and "median AP" in header
    rows = _table(out)
    assert len(rows) == 8 and all(math.isfinite(float(r[7])) for r in rows)  # median AP column


def test_below_classical_check(nr):
    import pandas as pd

    df = pd.DataFrame([
        {"cell": "a", "detector": "median", "ap": 0.8}, {"cell": "a", "detector": "attention-unet", "ap": 0.7},
        {"cell": "b", "detector": "median", "ap": 0.4}, {"cell": "b", "detector": "attention-unet", "ap": 0.1},
        {"cell": "c", "detector": "lacosmic", "ap": 0.6}, {"cell": "c", "detector": "attention-unet", "ap": 0.9},
        {"cell": "d", "detector": "lacosmic", "ap": 0.6}, {"cell": "d", "detector": "attention-unet",
                                                            "ap": float("nan")},
    ])
    assert nr.below_classical(df, "attention-unet") == ["a", "d"]
    # the compact AP table marks exactly those cells, for the learned detector only
    for col, val in (("read_noise", 5.0), ("sky", 10.0), ("gain", 1.0), ("truth_px", 100)):
        df[col] = val
    rows = nr.ap_table(df, ["median", "lacosmic", "attention-unet"]).splitlines()[2:]
    cells = [r.strip("| ").split(" | ") for r in rows]
    assert [c[-1] for c in cells] == ["0.70*", "0.10", "0.90", "–*"]
    assert not any("*" in x for c in cells for x in c[:-1])


def test_covered_box_is_the_rectangle_covered_in_every_frame(nr):
    a = np.zeros((50, 60), bool)
    a[:45, :52] = True  # one frame's coverage (the model shifted by its pointing)
    b = np.zeros((50, 60), bool)
    b[3:48, :50] = True
    ys, xs = nr.covered_box([a, b])
    assert (ys.start, ys.stop, xs.start, xs.stop) == (3, 45, 0, 50)
    assert a[ys, xs].all() and b[ys, xs].all()
    # a non-rectangular coverage (a notch) is trimmed until every pixel is covered, keeping most rows
    c = np.ones((40, 40), bool)
    c[:3, 30:] = False
    ys, xs = nr.covered_box([c])
    assert c[ys, xs].all() and (ys.stop - ys.start) * (xs.stop - xs.start) >= 37 * 40
    with pytest.raises(nr.NoiseGridError, match="covers no pixel"):
        nr.covered_box([a, ~a])


def test_saturated_pixels_native_or_not_are_flagged_and_ignored_with_their_ring(nr):
    bg = _background((48, 48), seed=3)
    sat = np.zeros(bg.shape, bool)
    sat[20:22, 30:32] = True  # a saturated core in the real frame (true value unknown)
    bg[36, 14] = 80.0 * np.median(bg)  # a star core that saturates only at high sky and gain 1
    inj = nr.draw_injections([bg], rate_scale=50.0, seed=2, saturated=[sat])[0]
    for k, cell in enumerate(nr.make_grid((5.0, 40.0), (10.0, 10000.0), (1.0, 20.0))):
        s = nr.cell_sample(inj, cell, np.random.default_rng(k))
        # flagged as the instrument would flag a full well, not replaced by the ADC's full scale
        assert (s.image[sat] < cell.saturation).all() or cell.sky == 10000.0
        assert s.ignore[18:24, 28:34].all()  # core + the 2-px ring of the real labels
        assert not s.ignore[10, 10] and not s.truth[s.ignore].any()
        assert (s.dqmask[sat] > 0).all()
        star_saturated = cell.sky == 10000.0 and cell.gain == 1.0
        assert (s.image[36, 14] >= cell.saturation) == star_saturated
        assert s.ignore[34:39, 12:17].all() == star_saturated
    with pytest.raises(nr.NoiseGridError, match="saturation mask"):
        nr.draw_injections([bg], saturated=[sat[:10]])


def test_bootstrap_intervals_in_the_quick_run(nr, basic_dataset, tmp_path, capsys):
    assert nr.main(["--quick", "--backgrounds", f"dataset:{basic_dataset.root}", "--n-backgrounds", "2",
                    "--crop", "64,64", "--detectors", "median", "--rate-scale", "300", "--bootstrap", "30",
                    "--out", str(tmp_path)]) == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "noise_regimes.csv")
    assert np.isfinite(df[["ap_lo", "ap_hi"]].to_numpy()).all()
    assert ((df.ap_lo <= df.ap + 1e-12) & (df.ap <= df.ap_hi + 1e-12)).all()
    capsys.readouterr()
    assert nr.main(["--quick", "--bootstrap", "-1", "--detectors", "median"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bootstrap" in err[0]


def test_interval_gaps_say_whether_the_intervals_are_disjoint(nr):
    import pandas as pd

    nan = float("nan")
    df = pd.DataFrame([
        {"cell": "a", "detector": "median", "ap": 0.80, "ap_lo": 0.75, "ap_hi": 0.85},
        {"cell": "a", "detector": "lacosmic", "ap": 0.60, "ap_lo": 0.50, "ap_hi": 0.70},
        {"cell": "a", "detector": "attention-unet-mixture", "ap": 0.70, "ap_lo": 0.65, "ap_hi": 0.74},
        {"cell": "b", "detector": "median", "ap": 0.80, "ap_lo": 0.70, "ap_hi": 0.90},
        {"cell": "b", "detector": "attention-unet-mixture", "ap": 0.78, "ap_lo": 0.70, "ap_hi": 0.85},
        {"cell": "c", "detector": "median", "ap": 0.80, "ap_lo": nan, "ap_hi": nan},
        {"cell": "c", "detector": "attention-unet-mixture", "ap": 0.70, "ap_lo": nan, "ap_hi": nan},
        {"cell": "d", "detector": "median", "ap": 0.80, "ap_lo": 0.7, "ap_hi": 0.9},
        {"cell": "d", "detector": "attention-unet-mixture", "ap": 0.90, "ap_lo": 0.8, "ap_hi": 0.95},
    ])
    gaps = nr.interval_gaps(df, "attention-unet-mixture")
    assert [(g["cell"], g["classical"], g["separated"]) for g in gaps] == \
        [("a", "median", True), ("b", "median", False), ("c", "median", False)]


def test_weight_files_are_scored_under_their_labels(nr, basic_dataset, tmp_path, capsys):
    from baselines.unet.weights import WEIGHTS_DIR

    shipped = WEIGHTS_DIR / "attention-unet-mixture.pt"
    assert nr.main(["--quick", "--backgrounds", f"dataset:{basic_dataset.root}", "--n-backgrounds", "2",
                    "--crop", "64,64", "--detectors", "median", "--rate-scale", "300",
                    "--weights", f"candidate={shipped}", "--out", str(tmp_path)]) == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "noise_regimes.csv")
    assert set(df.detector) == {"median", "candidate"}
    # the weight file scores exactly as the registered detector that ships it
    assert nr.main(["--quick", "--backgrounds", f"dataset:{basic_dataset.root}", "--n-backgrounds", "2",
                    "--crop", "64,64", "--detectors", "attention-unet-mixture", "--rate-scale", "300",
                    "--out", str(tmp_path / "reg")]) == 0
    reg = pd.read_csv(tmp_path / "reg" / "noise_regimes.csv")
    assert np.allclose(df[df.detector == "candidate"].ap.to_numpy(), reg.ap.to_numpy())
    capsys.readouterr()
    for bad, why in ((["--weights", "nolabel"], "expected LABEL=PATH"),
                     (["--weights", f"x={tmp_path / 'missing.pt'}"], "no weight file"),
                     (["--weights", f"median={shipped}"], "already a detector")):
        assert nr.main(["--quick", "--backgrounds", f"dataset:{basic_dataset.root}", "--n-backgrounds", "2",
                        "--crop", "64,64", "--detectors", "median", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], err


def test_quick_run_scores_the_generalist_with_companions(nr, basic_dataset, tmp_path, capsys):
    """The fused generalist is scored like any detector and its headline is the last line, with a count."""
    pytest.importorskip("torch")
    assert nr.main(["--quick", "--backgrounds", f"dataset:{basic_dataset.root}", "--n-backgrounds", "2",
                    "--crop", "64,64", "--detectors", "median,attention-unet-mixture-median", "--rate-scale", "300",
                    "--bootstrap", "20", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    import pandas as pd

    df = pd.read_csv(tmp_path / "noise_regimes.csv")
    fused = df[df.detector == nr.HEADLINE_COMPANIONS]
    assert len(fused) == 8 and np.isfinite(fused.ap).all()
    n_below = len(nr.below_classical(df, nr.HEADLINE_COMPANIONS))
    assert lines[-2] == f"cells_where_{nr.HEADLINE}_below_classical: n/a (not scored)"
    assert lines[-1] == f"cells_where_{nr.HEADLINE_COMPANIONS}_below_classical: {n_below}"
    assert any(ln.startswith(f"{nr.HEADLINE_COMPANIONS} below a classical baseline with disjoint") for ln in lines)
