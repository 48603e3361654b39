"""Every plot type writes a vector PDF and a PNG from demo-like results."""
from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from crbench import plots
from crbench.cli import main
from crbench.errors import UsageError
from crbench.detectors.base import Detector
from crbench.results import Results


class LocalContrast(Detector):
    """A cheap second detector: image minus its 5x5 median over the noise."""

    name = "local-contrast"

    def score(self, sample):
        img = sample.image.astype(np.float32)
        med = ndimage.median_filter(img, size=5)
        return ((img - med) / np.sqrt(np.maximum(med, 1.0) + 16.0)).astype(np.float32)


@pytest.fixture(scope="module")
def demo(basic_dataset, tmp_path_factory):
    """Results of two real detectors on the sim-basic test split, saved to disk."""
    from crbench.harness import evaluate

    out = tmp_path_factory.mktemp("demo")
    res = evaluate(["median", LocalContrast()], basic_dataset, split="test", progress=False, out=out)
    return res, out


def _with_morphology(res: Results) -> Results:
    """Results with per-morphology rows (taken from the harness when it writes them)."""
    res = copy.deepcopy(res)
    for k, run in enumerate(res.runs):
        if run.get("by_morphology"):
            continue
        run["by_morphology"] = [
            {"morphology": m, "n_crs": n, "recall_half": v - 0.1 * k,
             "recall_half_lo": v - 0.1 * k - 0.05, "recall_half_hi": min(1.0, v - 0.1 * k + 0.04)}
            for m, n, v in (("spot", 40, 0.95), ("track", 25, 0.9), ("worm", 0, float("nan")))]
    return res


def _check(paths, min_png_px: int = 300):
    from PIL import Image

    suffixes = sorted(p.suffix for p in paths)
    assert suffixes == [".pdf", ".png"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
        if p.suffix == ".pdf":
            head = p.read_bytes()[:5]
            assert head == b"%PDF-"
        else:
            with Image.open(p) as im:
                assert min(im.size) >= min_png_px


@pytest.mark.parametrize("width, inches", [("single", 3.5), ("double", 7.1)])
def test_roc_and_pr_at_column_widths(demo, tmp_path, width, inches):
    from PIL import Image

    res, _ = demo
    for fn, stem in ((plots.plot_roc, "roc"), (plots.plot_pr, "pr")):
        paths = fn(res, tmp_path / f"{stem}_{width}", width=width)
        _check(paths)
        with Image.open(tmp_path / f"{stem}_{width}.png") as im:
            # 300 dpi, bbox tight: within 20% of the nominal column width
            assert 0.8 * inches * 300 < im.size[0] < 1.2 * inches * 300


def test_roc_draws_confidence_bands(demo, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    res, _ = demo
    banded = copy.deepcopy(res)
    for run in banded.runs:
        tpr = np.asarray(run["curve"]["tpr"])
        run["curve"]["tpr_lo"] = list(np.clip(tpr - 0.05, 0, 1))
        run["curve"]["tpr_hi"] = list(np.clip(tpr + 0.05, 0, 1))
    seen = []
    from crbench.plots import curves

    orig = curves.save_figure

    def spy(fig, stem):
        seen.append(sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections))
        return orig(fig, stem)

    curves.save_figure = spy
    try:
        plots.plot_roc(banded, tmp_path / "roc_ci")
        plots.plot_roc(res, tmp_path / "roc_plain")
    finally:
        curves.save_figure = orig
        plt.close("all")
    assert seen == [len(res.runs), 0]


def test_morphology_recall_bars(demo, tmp_path):
    res, _ = demo
    _check(plots.plot_morphology_recall(_with_morphology(res), tmp_path / "morph"))
    stripped = copy.deepcopy(res)
    for run in stripped.runs:
        run.pop("by_morphology", None)
    with pytest.raises(ValueError, match="per-morphology"):
        plots.plot_morphology_recall(stripped, tmp_path / "none")


def test_class_imbalance_histograms(basic_dataset, tmp_path):
    paths = plots.plot_class_imbalance(basic_dataset, tmp_path)
    assert any(p.suffix == ".pdf" for p in paths) and any(p.suffix == ".png" for p in paths)
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000


def test_cutout_gallery(basic_dataset, demo, tmp_path):
    res, _ = demo
    from crbench.detectors.registry import get_detector
    from crbench.harness import run_detector

    samples = plots.gallery_samples(basic_dataset, "test", 2, load_companions=True)
    scores = {d.name: [run_detector(d, s)[0] for s in samples] for d in (get_detector("median"), LocalContrast())}
    paths = plots.plot_cutout_gallery(samples, scores, tmp_path / "gallery", dataset_name=basic_dataset.name,
                                      split="test", results=res, n_cutouts=3, size=24)
    _check(paths)
    with pytest.raises(UsageError, match="detector 'median' gives 1 score map"):
        plots.plot_cutout_gallery(samples, {"median": scores["median"][:1]}, tmp_path / "bad",
                                  dataset_name=basic_dataset.name)


def test_sim_to_real_gap(demo, tmp_path):
    res, _ = demo
    real = copy.deepcopy(res)
    for run in real.runs:
        run["dataset"] = run["summary"]["dataset"] = "real-twin"
        v = run["summary"]["tpr_at_fpr_5e-4"] - 0.1
        run["summary"].update({"tpr_at_fpr_5e-4": v, "tpr_at_fpr_5e-4_lo": v - 0.03, "tpr_at_fpr_5e-4_hi": v + 0.02})
    _check(plots.plot_sim_to_real_gap(real, res, tmp_path / "gap"))
    other = copy.deepcopy(real)
    for run in other.runs:
        run["detector"] = "someone-else"
    with pytest.raises(ValueError, match="no detector is in both"):
        plots.plot_sim_to_real_gap(other, res, tmp_path / "gap2")


def test_operating_threshold_respects_target_fpr():
    rng = np.random.default_rng(0)
    scores = [rng.normal(size=(50, 50)).astype(np.float32) for _ in range(2)]
    truths = [np.zeros((50, 50), bool) for _ in range(2)]
    truths[0][10, 10:20] = True
    for target in (1e-3, 1e-2, 0.1):
        t = plots.operating_threshold(scores, truths, [None, None], target)
        neg = np.concatenate([s[~m] for s, m in zip(scores, truths)])
        assert (neg >= t).mean() <= target  # the gallery flags score >= t, as the harness
        assert (neg >= np.nextafter(np.float32(t), np.float32(-np.inf))).mean() > target  # the loosest such


def test_select_cutouts_prefers_missed_tracks_and_flagged_stars():
    shape = (64, 64)
    truth = np.zeros(shape, bool)
    labels = np.zeros(shape, np.int32)
    labels[40, 5:30] = 1     # a long track
    labels[10, 50:52] = 2    # a spot
    truth = labels > 0
    sources = np.zeros(shape, bool)
    sources[20:24, 20:24] = True
    inst = pd.DataFrame({"id": [1, 2], "morphology": ["track", "spot"], "pixels": [25, 2]})
    misses_track = truth.copy()
    misses_track[40, 5:30] = False
    misses_track[21:23, 21:23] = True   # flags a star core
    cands = plots.select_cutouts(truth, labels, inst, sources, {"det": misses_track}, 16)
    kinds = [c["kind"] for c in cands]
    assert kinds[0] == "missed track" and cands[0]["y"] == 40
    assert "flagged star" in kinds and "false positive" not in kinds
    finds_all = plots.select_cutouts(truth, labels, inst, sources, {"det": truth.copy()}, 16)
    assert [c["kind"] for c in finds_all] == ["detected track"]


def test_plot_command_writes_every_plot(demo, tmp_path, capsys):
    res, out = demo
    real = copy.deepcopy(res)
    for run in real.runs:
        run["dataset"] = run["summary"]["dataset"] = run["provenance"]["dataset"]["name"] = "real-twin"
    real.save(tmp_path / "real")
    _with_morphology(res).save(tmp_path / "sim")
    rc = main(["plot", str(tmp_path / "sim"), "--out", str(tmp_path / "figs"), "--gap", str(tmp_path / "real"),
               str(tmp_path / "sim"), "--gallery-samples", "1", "--width", "double"])
    assert rc == 0
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    for stem in ("roc", "pr", "morphology_recall", "gallery", "sim_to_real_gap"):
        assert {f"{stem}.pdf", f"{stem}.png"} <= names, stem
    assert any(n.endswith(".png") and ("imbalance" in n or "cr_fraction" in n) for n in names), names
    text = capsys.readouterr().out
    assert "wrote" in text and "gallery: skipping" not in text


def test_saving_the_same_figure_twice_gives_the_same_bytes(tmp_path):
    # a regenerated figure whose content did not move must not show up as a change (no creation date)
    from crbench.plots.style import _style, save_figure

    plt = _style()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    first = [p.read_bytes() for p in save_figure(fig, tmp_path / "a" / "fig")]
    time.sleep(1.1)  # a creation date has one-second resolution
    second = [p.read_bytes() for p in save_figure(fig, tmp_path / "b" / "fig")]
    plt.close(fig)
    assert first == second
    assert b"CreationDate" not in first[0]
