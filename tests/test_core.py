"""Data model, file format, detector interface, baselines, harness and CLI of the foundation."""
from __future__ import annotations

import json
import shutil
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

import crbench
from crbench.cli import main
from crbench.dataset import Dataset, write_dataset
from crbench.detectors import Detector, SweepDetector, get_detector
from crbench.detectors.base import masks_to_rank_score
from crbench.errors import DatasetError, DetectorError, FormatError, RegistryError, SampleError
from crbench.fitsio import read_sample, write_sample
from crbench.harness import evaluate

from conftest import make_sample


# ---------------------------------------------------------------- file format
def test_fits_round_trip_keeps_every_extension(tmp_path, sample):
    sample.ramp = np.stack([sample.image * f for f in (0.25, 0.5, 1.0)])
    path = tmp_path / "s0.fits"
    write_sample(sample, path)
    back = read_sample(path)
    np.testing.assert_array_equal(back.image, sample.image)
    for name in ("truth", "ignore", "labels", "sources", "exposures", "ramp"):
        np.testing.assert_array_equal(getattr(back, name), getattr(sample, name))
    assert back.truth.dtype == bool and back.labels.dtype == np.int32 and back.image.dtype == np.float32
    assert back.meta["gain"] == 2.0 and back.meta["read_noise"] == 5.0
    assert list(back.instances["id"]) == list(sample.instances["id"])
    assert list(back.instances["morphology"]) == list(sample.instances["morphology"])
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names[:2] == ["PRIMARY", "SCI"]
        assert {"CRMASK", "IGNORE", "CRLABEL", "SOURCES", "EXPOSURES", "RAMP", "INSTANCES"} <= set(names)
        assert hdul["CRMASK"].data.dtype == np.uint8
        assert hdul["SCI"].header["BUNIT"] == "electron" and hdul[0].header["GAIN"] == 2.0


def test_ccddata_opens_sample_with_mask(tmp_path, sample):
    path = tmp_path / "s0.fits"
    write_sample(sample, path)
    ccd = CCDData.read(path, hdu="SCI", hdu_mask="CRMASK", hdu_uncertainty=None, hdu_flags=None)
    assert ccd.unit.to_string() == "electron"
    np.testing.assert_array_equal(ccd.mask, sample.truth)
    np.testing.assert_allclose(ccd.data, sample.image)


def test_lazy_load_skips_companions(tmp_path, sample):
    path = tmp_path / "s0.fits"
    write_sample(sample, path)
    assert read_sample(path, load_companions=False).exposures is None


def test_nan_pixels_rejected_naming_sample(sample):
    sample.image[3, 3] = np.nan
    with pytest.raises(SampleError, match=r"sample 's0'.*1 NaN or inf"):
        sample.validate()


def test_mask_shape_mismatch_rejected(sample):
    sample.truth = sample.truth[:-1]
    with pytest.raises(SampleError, match=r"sample 's0': truth has shape \(63, 64\) but image has shape \(64, 64\)"):
        sample.validate()


def test_labels_must_agree_with_truth(sample):
    sample.labels = sample.labels.copy()
    sample.labels[10, 10] = 99
    with pytest.raises(SampleError, match="labels and truth disagree"):
        sample.validate()


def test_truncated_fits_names_the_file(tmp_path, sample):
    path = tmp_path / "s0.fits"
    write_sample(sample, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(FormatError, match=r"s0\.fits.*(truncated|corrupt)"):
        read_sample(path)


def test_missing_sci_extension_names_the_file(tmp_path):
    path = tmp_path / "bad.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), np.uint8), name="CRMASK")]).writeto(path)
    with pytest.raises(FormatError, match=r"bad\.fits: missing SCI extension"):
        read_sample(path)


def test_failed_write_leaves_nothing_behind(tmp_path, sample):
    sample.image = sample.image.copy()
    sample.image[0, 0] = np.inf
    with pytest.raises(SampleError):
        write_sample(sample, tmp_path / "s0.fits")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- dataset folder
def test_dataset_round_trip_and_card(tmp_path):
    samples = [make_sample(f"s{i}", seed=i) for i in range(4)]
    ds = write_dataset(tmp_path / "d", samples, name="toy", splits={"train": ["s0", "s1"], "val": ["s2"],
                                                                     "test": ["s3"]}, seed=3)
    again = Dataset.open(tmp_path / "d")
    assert again.ids("test") == ["s3"] and len(again) == 4
    assert again.card["statistics"]["n_images"] == 4
    assert 0 < again.card["statistics"]["cr_pixel_fraction"]["mean"] < 0.05
    np.testing.assert_array_equal(again.load("s1").truth, samples[1].truth)
    assert len(again.instances()) == sum(len(s.instances) for s in samples)
    with pytest.raises(DatasetError, match="no split 'bogus'"):
        again.ids("bogus")


def test_same_seed_same_content_hash(tmp_path):
    from crbench.recipes import build_dataset

    a = build_dataset("sim-basic", tmp_path / "a", progress=False, n_images=3, shape=(48, 48))
    b = build_dataset("sim-basic", tmp_path / "b", progress=False, n_images=3, shape=(48, 48))
    c = build_dataset("sim-basic", tmp_path / "c", progress=False, n_images=3, shape=(48, 48), seed=2)
    assert a.content_hash == b.content_hash != c.content_hash


def test_failed_dataset_build_leaves_no_folder(tmp_path):
    good = make_sample("s0")
    bad = make_sample("s1")
    bad.image[0, 0] = np.nan
    with pytest.raises(SampleError, match="s1"):
        write_dataset(tmp_path / "d", [good, bad], name="x", splits={"test": ["s0", "s1"]})
    assert not (tmp_path / "d").exists()
    assert not any(p.name.startswith(".d") for p in tmp_path.iterdir())


def test_open_non_dataset_folder_is_clear(tmp_path):
    with pytest.raises(DatasetError, match="not a crbench dataset"):
        Dataset.open(tmp_path)


# ---------------------------------------------------------------- detectors
def test_sweep_rank_score_direction():
    loose = np.array([1, 1, 1, 0], bool)
    mid = np.array([1, 1, 0, 0], bool)
    strict = np.array([1, 0, 0, 0], bool)
    score = masks_to_rank_score([loose, mid, strict])
    # the pixel flagged by the strictest step ranks highest; unflagged pixels lowest
    assert list(score) == [3, 2, 1, 0]
    assert score.dtype == np.float32


def test_lacosmic_sweep_is_loosest_first_and_finds_injected_crs(sample):
    det = get_detector("lacosmic", sigclip=[20.0, 4.0, 8.0])
    assert list(det.sweep_values()) == [4.0, 8.0, 20.0]
    score = det.score(sample.observation())
    assert score.shape == sample.shape and score.dtype == np.float32
    assert score[sample.truth].mean() > 2.5  # bright CRs flagged even at the strictest step
    assert (score[~sample.truth] > 0).mean() < 0.01
    assert det.params()["objlim"] == 5.0 and det.params()["sigfrac"] == 0.3


def test_median_detector_finds_injected_crs(sample):
    score = get_detector("median").score(sample.observation())
    assert np.median(score[sample.truth]) > 50
    assert np.percentile(score[~sample.truth], 99.9) < 6


def test_median_without_exposures_is_a_clear_error():
    s = make_sample(n_exposures=0)
    with pytest.raises(DetectorError, match=r"requires exposures but sample 's0' has none"):
        get_detector("median").check_inputs(s.observation())
    with pytest.raises(DetectorError, match="no companion exposures"):
        get_detector("median").score(s.observation())


class _WrongShape(Detector):
    name = "wrong-shape"

    def score(self, sample):
        return np.zeros((3, 3), np.float32)


class _NaNs(Detector):
    name = "nans"

    def score(self, sample):
        out = np.zeros(sample.shape, np.float32)
        out[0, 0] = np.nan
        return out


class _Raises(Detector):
    name = "raiser"

    def score(self, sample):
        if sample.id.endswith("3"):
            raise RuntimeError("boom")
        return sample.image.astype(np.float32)


@pytest.mark.parametrize("det,msg", [(_WrongShape(), r"returned shape \(3, 3\) for sample '.*'; expected \(96, 96\)"),
                                     (_NaNs(), r"returned 1 NaN or inf values for sample")])
def test_bad_detector_output_raises_naming_sample(basic_dataset, det, msg):
    with pytest.raises(DetectorError, match=msg):
        evaluate(det, basic_dataset, split="test", progress=False, on_error="raise")


def test_detector_failure_on_one_sample_is_recorded(basic_dataset):
    with pytest.warns(UserWarning, match="raised on sample"):
        res = evaluate(_Raises(), basic_dataset, split="all", progress=False)
    failed = res.runs[0]["provenance"]["failed_samples"]
    assert list(failed) == ["basic-0003"] and "boom" in failed["basic-0003"]
    assert res.table.loc[0, "n_images"] == 7 and res.table.loc[0, "n_failed"] == 1


def test_unknown_detector_lists_registered():
    with pytest.raises(RegistryError, match="unknown detector 'nope'.*lacosmic"):
        get_detector("nope")


# ---------------------------------------------------------------- harness and results
def test_evaluate_writes_table_and_json(tmp_path, basic_dataset):
    res = evaluate(["lacosmic", "median"], basic_dataset, split="test", progress=False, out=tmp_path)
    cols = ["detector", "dataset", "split", "n_images", "cr_pixel_fraction", "roc_auc", "ap", "tpr_at_fpr_1e-4",
            "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "tpr_at_fpr_5e-3", "precision_at_recall_0.95",
            "precision_at_recall_0.99", "best_dice", "seconds_per_mpix"]
    import pandas as pd

    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table.columns[: len(cols)]) == cols
    assert np.isfinite(table["ap"]).all() and np.isfinite(table["tpr_at_fpr_5e-4"]).all()
    obj = json.loads((tmp_path / "results.json").read_text())
    run = obj["runs"][0]
    assert run["provenance"]["dataset"]["content_hash"] == basic_dataset.content_hash
    assert run["provenance"]["detector"]["params"]["sigclip"][0] == 2.5
    assert run["provenance"]["conventions"]["dilation"] == "none"
    assert obj["meta"]["crbench_version"] == crbench.__version__
    assert len(run["curve"]["fpr"]) == len(run["curve"]["tpr"]) > 2


def test_median_beats_lacosmic_on_multi_exposure_data(basic_dataset):
    t = evaluate(["lacosmic", "median"], basic_dataset, split="all", progress=False).table.set_index("detector")
    assert t.loc["median", "ap"] > t.loc["lacosmic", "ap"]


# ---------------------------------------------------------------- plugins
PLUGIN = textwrap.dedent('''
    import numpy as np
    from crbench.detectors import Detector

    class BrightPixels(Detector):
        """Scores each pixel by its excess over the sky in units of the noise."""
        name = "bright-pixels"
        requires = ("image",)

        def score(self, sample):
            noise = np.sqrt(sample.read_noise**2 + max(sample.sky, 0.0))
            return ((sample.image - sample.sky) / noise).astype(np.float32)
''')


def test_module_class_plugin_scores(tmp_path, monkeypatch, basic_dataset):
    (tmp_path / "my_detector.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    res = evaluate("my_detector:BrightPixels", basic_dataset, split="test", progress=False)
    assert res.table.loc[0, "detector"] == "bright-pixels"
    assert res.table.loc[0, "roc_auc"] > 0.9
    sys.modules.pop("my_detector", None)


def test_readme_detector_example_runs(tmp_path, monkeypatch, basic_dataset):
    """The README's 'write your own detector' example is real code: run it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- example-detector -->")[1].split("```python")[1].split("```")[0]
    (tmp_path / "readme_example.py").write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("readme_example")
    res = evaluate(mod.SharpPeaks(), basic_dataset, split="test", progress=False)
    assert res.table.loc[0, "ap"] > 0.3
    sys.modules.pop("readme_example", None)


# ---------------------------------------------------------------- CLI
@pytest.mark.parametrize("args", [["--help"], ["datasets", "--help"], ["datasets", "build", "--help"],
                                  ["evaluate", "--help"], ["demo", "--help"], ["detectors", "list", "--help"]])
def test_cli_help(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    assert "usage: crbench" in capsys.readouterr().out


def test_cli_error_is_one_line_without_traceback(capsys):
    code = main(["evaluate", "--dataset", "no-such-dataset", "--detector", "lacosmic"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("crbench: error:") and "Traceback" not in err and err.count("\n") == 1


def test_cli_lists(capsys):
    assert main(["detectors", "list"]) == 0
    out = capsys.readouterr().out
    assert "lacosmic" in out and "median" in out
    assert main(["datasets", "list"]) == 0
    assert "sim-basic" in capsys.readouterr().out


def test_cli_build_and_evaluate(tmp_path, capsys):
    assert main(["datasets", "build", "sim-basic", "--out", str(tmp_path / "ds"), "--n-images", "4", "--shape",
                 "64x64", "--no-progress"]) == 0
    assert main(["evaluate", "--dataset", str(tmp_path / "ds"), "--detector", "median", "--detector", "lacosmic",
                 "--out", str(tmp_path / "res"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and (tmp_path / "res" / "results.json").exists()


@pytest.mark.slow  # ~20 s; tests/test_ux.py runs a tiny plain demo in the default run
def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--detector", "lacosmic", "--detector", "median",
                 "--no-progress"]) == 0
    for name in ("results.csv", "results.json", "roc.png", "roc.pdf", "pr.png", "pr.pdf"):
        assert (tmp_path / name).stat().st_size > 0
    import pandas as pd

    t = pd.read_csv(tmp_path / "results.csv").set_index("detector")
    assert np.isfinite(t["ap"]).all() and np.isfinite(t["tpr_at_fpr_5e-4"]).all()
    assert t.loc["median", "ap"] > t.loc["lacosmic", "ap"]
