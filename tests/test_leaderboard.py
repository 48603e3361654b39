"""Submitting detectors (module:Class and precomputed predictions), result-file schema, leaderboard."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crbench.cli import main
from crbench.errors import FormatError
from crbench.leaderboard import SubmissionError, build, load_entries, submit, thin_curve, training_conflicts
from crbench.predictions import check_predictions
from crbench.results import Results
from crbench.results import read_results_json
from crbench.schema import results_errors, validate_results

THIRD_PARTY = '''
import numpy as np
from scipy import ndimage
from crbench.detectors.base import Detector


class LocalContrast(Detector):
    """A third-party detector: image minus its 5x5 median, in units of the noise."""

    name = "local-contrast"
    version = "0.1"
    trained_on = {trained_on!r}

    def score(self, sample):
        img = sample.image.astype(np.float32)
        med = ndimage.median_filter(img, size=5)
        noise = np.sqrt(np.maximum(med, 1.0) + sample.read_noise ** 2)
        return ((img - med) / noise).astype(np.float32)
'''


def write_detector_module(folder: Path, name: str = "thirdparty_det", trained_on=()) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(THIRD_PARTY.format(trained_on=tuple(trained_on))))
    return f"{name}:LocalContrast"


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """A detector module written in a temporary folder and put on sys.path (no packaging)."""
    folder = tmp_path / "mycode"
    spec = write_detector_module(folder)
    monkeypatch.syspath_prepend(str(folder))
    return spec


def _evaluate_cli(spec: str, dataset, out: Path) -> dict:
    rc = main(["evaluate", "--dataset", str(dataset.root), "--detector", spec, "--out", str(out), "--no-progress"])
    assert rc == 0
    return json.loads((out / "results.json").read_text())


def _write_predictions(dataset, det, folder: Path, splits=("test", "val")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for sid in dataset.ids(split):
            fits.PrimaryHDU(det.score(dataset.load(sid).observation())).writeto(folder / f"{sid}.fits")


def test_third_party_detector_module_class_and_predictions_reach_leaderboard(basic_dataset, third_party, tmp_path,
                                                                            capsys):
    from crbench.detectors.registry import get_detector

    obj = _evaluate_cli(third_party, basic_dataset, tmp_path / "res-live")
    run = obj["runs"][0]
    assert run["detector"] == "local-contrast"
    assert run["provenance"]["detector"]["class"] == "thirdparty_det:LocalContrast"
    assert 0.5 < run["summary"]["roc_auc"] <= 1.0

    # the same scores handed over as FITS files score identically through score-predictions
    preds = tmp_path / "preds"
    _write_predictions(basic_dataset, get_detector(third_party), preds)
    rc = main(["score-predictions", str(preds), "--dataset", str(basic_dataset.root), "--name", "local-contrast-files",
               "--trained-on", "sim-basic/train", "--out", str(tmp_path / "res-files"), "--no-progress"])
    assert rc == 0
    files = json.loads((tmp_path / "res-files" / "results.json").read_text())["runs"][0]
    assert files["detector"] == "local-contrast-files"
    assert files["provenance"]["detector"]["trained_on"] == ["sim-basic/train"]
    keys = ["roc_auc", "ap", "tpr_at_fpr_5e-4", "best_dice"]
    if "op_chosen_on" in run["summary"]:  # the operating point is chosen on val maps as for the live run
        assert files["summary"]["op_chosen_on"] == run["summary"]["op_chosen_on"]
        keys += ["op_threshold", "recall_half"]
    for key in keys:
        assert files["summary"][key] == pytest.approx(run["summary"][key], abs=1e-9), key

    # both are accepted and appear in the rebuilt leaderboard
    lb = tmp_path / "lb"
    assert main(["leaderboard", "submit", str(tmp_path / "res-live"), str(tmp_path / "res-files"),
                 "--entries", str(lb / "entries")]) == 0
    assert main(["leaderboard", "build", "--entries", str(lb / "entries")]) == 0
    names = {e.run["detector"] for e in load_entries(lb / "entries")}
    assert names == {"local-contrast", "local-contrast-files"}
    readme = (lb / "README.md").read_text()
    assert "| local-contrast |" in readme and "| local-contrast-files |" in readme
    assert "## sim-basic (test split)" in readme
    page = (lb / "index.html").read_text()
    data = json.loads(page.split('id="lb-data">')[1].split("</script>")[0])
    assert {e["row"]["detector"] for e in data["entries"]} == names
    # entries carry provenance but no local paths
    entry = json.loads(next((lb / "entries").glob("*local-contrast-files*")).read_text())
    assert entry["runs"][0]["provenance"]["dataset"]["content_hash"] == basic_dataset.content_hash
    assert "path" not in entry["runs"][0]["provenance"]["dataset"]
    assert entry["meta"]["crbench_version"]


def test_module_class_detector_trained_on_test_split_is_rejected(basic_dataset, tmp_path, monkeypatch):
    folder = tmp_path / "cheater"
    spec = write_detector_module(folder, "cheat_det", trained_on=["sim-basic/test"])
    monkeypatch.syspath_prepend(str(folder))
    obj = _evaluate_cli(spec, basic_dataset, tmp_path / "res")
    assert obj["runs"][0]["provenance"]["detector"]["trained_on"] == ["sim-basic/test"]
    entries = tmp_path / "lb" / "entries"
    with pytest.raises(SubmissionError) as exc:
        submit(tmp_path / "res", entries)
    msg = str(exc.value)
    assert "results.json" in msg and "$.runs[0].provenance.detector.trained_on[0]" in msg
    assert "test split" in msg
    assert not entries.exists() or not list(entries.glob("*.json"))
    # the CLI prints one clear line and fails
    assert main(["leaderboard", "submit", str(tmp_path / "res"), "--entries", str(entries)]) == 1


@pytest.mark.parametrize("trained_on, bad", [
    (["sim-basic/train"], False),
    (["sim-basic/val", "other/train"], False),
    (["other/test"], True),          # any test split is off limits
    (["sim-basic"], True),           # the whole evaluated dataset
    (["sim-basic/all"], True),
    (["sim-basic:train", "sim-basic:val"], False),   # the trainer's 'dataset:split' spelling
    (["sim-basic:test"], True),
    (["other:test"], True),
    (["deepCR:ACS-WFC (Kwon 2021, external)"], False),
    (["Cosmic-CoNN LCO (Xu et al. 2023, external)"], False),
])
def test_training_conflicts(trained_on, bad):
    run = {"detector": "d", "dataset": "sim-basic", "split": "test",
           "provenance": {"detector": {"trained_on": trained_on}}}
    assert bool(training_conflicts(run)) is bad


@pytest.fixture
def demo_results(basic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    from crbench.harness import evaluate

    evaluate(["median"], basic_dataset, split="test", progress=False, out=out)
    return out / "results.json"


def _mutated(path: Path, tmp_path: Path, fn) -> Path:
    obj = json.loads(path.read_text())
    fn(obj)
    target = tmp_path / "bad" / "results.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(obj))
    return target


@pytest.mark.parametrize("mutate, where, what", [
    (lambda o: o["runs"][0]["provenance"]["dataset"].pop("content_hash"),
     "$.runs[0].provenance.dataset", "'content_hash' is a required property"),
    (lambda o: o["runs"][0]["summary"].__setitem__("n_images", "six"),
     "$.runs[0].summary.n_images", "'six' is not of type 'integer'"),
    (lambda o: o["runs"][0]["provenance"]["conventions"].__setitem__("dilation", "huge"),
     "$.runs[0].provenance.conventions.dilation", "'huge' is not one of"),
    (lambda o: o["runs"][0]["curve"]["fpr"].pop(),
     "$.runs[0].curve", "curve arrays differ in length"),
    (lambda o: o["runs"][0]["curve"]["tpr"].__setitem__(1, 1.5),
     "$.runs[0].curve.tpr[1]", "outside [0, 1]"),
    (lambda o: o["runs"][0]["curve"]["fpr"].__setitem__(2, "x"),
     "$.runs[0].curve.fpr[2]", "'x' is not of type 'number', 'null'"),
    (lambda o: o.__setitem__("runs", []),
     "$.runs", "should be non-empty"),
    (lambda o: o.__setitem__("schema_version", "2.0"),
     "$.schema_version", "not supported"),
    (lambda o: o["runs"][0]["summary"].__setitem__("dataset", "other"),
     "$.runs[0].summary.dataset", "disagrees with the run's dataset"),
])
def test_schema_errors_name_file_and_json_path(demo_results, tmp_path, mutate, where, what):
    bad = _mutated(demo_results, tmp_path, mutate)
    for load in (read_results_json, Results.load, lambda p: submit(p, tmp_path / "entries")):
        with pytest.raises(FormatError) as exc:
            load(bad)
        msg = str(exc.value)
        assert f"{bad}: {where}: " in msg, msg
        assert what in msg, msg
    assert not (tmp_path / "entries").exists()


def test_valid_results_pass_and_schema_is_versioned(demo_results):
    obj = read_results_json(demo_results)
    assert results_errors(obj) == []
    validate_results(obj)
    schema = json.loads((Path(__import__("crbench").__file__).parent / "schemas" / "results.schema.json").read_text())
    assert schema["$schema"].endswith("2020-12/schema")
    assert obj["schema_version"].startswith("1.")


def test_not_json_names_the_file(tmp_path):
    p = tmp_path / "results.json"
    p.write_text("{not json")
    with pytest.raises(FormatError, match=str(p)):
        read_results_json(p)


def test_failed_samples_and_hash_conflicts_are_refused(demo_results, tmp_path):
    entries = tmp_path / "entries"
    failed = _mutated(demo_results, tmp_path, lambda o: o["runs"][0]["provenance"]["failed_samples"].update(
        {"basic-0007": "detector raised"}))
    with pytest.raises(SubmissionError, match=r"failed_samples: .*1 sample\(s\) \(basic-0007\)"):
        submit(failed, entries)
    assert submit(demo_results, entries)
    # another build of the dataset, scored on another machine (its folder is not here to verify)
    other = _mutated(demo_results, tmp_path, lambda o: o["runs"][0]["provenance"]["dataset"].update(
        {"content_hash": "ab" * 32, "path": "/elsewhere/sim-basic"}))
    with pytest.raises(SubmissionError, match="content hash abababab"):
        submit(other, entries)
    written = submit(other, entries, replace_dataset=True)
    assert [e.path for e in load_entries(entries)] == written
    # resubmitting the same detector, parameters and data replaces its entry
    assert submit(other, entries) == written and len(list(entries.glob("*.json"))) == 1


def test_html_is_self_contained_and_escapes_names(demo_results, tmp_path):
    entries = tmp_path / "lb" / "entries"
    evil = _mutated(demo_results, tmp_path, lambda o: [r.update(detector="x</script><b>") or
                                                      r["summary"].update(detector="x</script><b>")
                                                      for r in o["runs"]])
    with pytest.raises(SubmissionError, match=r"\$\.runs\[0\]\.detector: 'x</script><b>' is not a leaderboard name"):
        submit(evil, entries)
    # an entry edited by hand after submission is still escaped on both pages
    (written,) = submit(demo_results, entries)
    obj = json.loads(written.read_text())
    obj["runs"][0]["detector"] = obj["runs"][0]["summary"]["detector"] = "x</script><b>"
    written.write_text(json.dumps(obj))
    paths = build(entries)
    page = paths["html"].read_text()
    assert page.count("</script>") == 2  # the data block and the code block, nothing injected
    assert "x\\u003c/script\\u003e" in page
    lowered = page.lower()
    for needle in ("<link", " src=", "https://", "@import", "fetch(", "xmlhttprequest"):
        assert needle not in lowered, needle
    readme = paths["markdown"].read_text()
    assert "| x&lt;/script&gt;&lt;b&gt; |" in readme and "<b>" not in readme


def test_empty_leaderboard_builds(tmp_path):
    paths = build(tmp_path / "entries", tmp_path)
    assert "No entries yet" in paths["markdown"].read_text()
    assert "crbench leaderboard submit" in paths["markdown"].read_text()
    assert "lb-table" in paths["html"].read_text()


def test_thin_curve_keeps_ends_and_limits_points():
    n = 5000
    fpr = np.linspace(0, 1, n) ** 4
    curve = {"fpr": list(fpr), "tpr": list(np.sqrt(fpr)), "precision": list(1 - fpr), "recall": list(np.sqrt(fpr)),
             "thresholds": list(np.linspace(1, 0, n)), "n_pos": 10}
    thin = thin_curve(curve, 300)
    assert len(thin["fpr"]) <= 302 and len(thin["fpr"]) == len(thin["thresholds"])
    assert thin["fpr"][0] == curve["fpr"][0] and thin["fpr"][-1] == curve["fpr"][-1]
    assert thin["n_pos"] == 10
    assert np.all(np.diff(thin["fpr"]) >= 0)


# ----------------------------------------------------------------------------- bad predictions

@pytest.fixture
def good_predictions(basic_dataset, tmp_path):
    folder = tmp_path / "preds"
    folder.mkdir()
    for sid in basic_dataset.ids("test"):
        s = basic_dataset.load(sid, load_companions=False)
        fits.PrimaryHDU(np.abs(s.image - np.median(s.image)).astype(np.float32) / 1e4).writeto(folder / f"{sid}.fits")
    return folder


def test_check_predictions_accepts_good_folder(basic_dataset, good_predictions):
    lo, hi = check_predictions(good_predictions, basic_dataset, "test")
    assert 0.0 <= lo < hi


def _first(folder: Path) -> Path:
    return sorted(folder.glob("*.fits"))[0]


@pytest.mark.parametrize("damage, expect", [
    (lambda f, ds: fits.PrimaryHDU(np.zeros((3, 3), np.float32)).writeto(f / "no-such-sample.fits"),
     r"no-such-sample\.fits"),
    (lambda f, ds: fits.PrimaryHDU(np.zeros((3, 3), np.float32)).writeto(f / f"{ds.ids('train')[0]}.fits"),
     r"belong to another split"),
    (lambda f, ds: _first(f).unlink(), r"have no score map: " ),
    (lambda f, ds: fits.PrimaryHDU(np.zeros((5, 7), np.float32)).writeto(_first(f), overwrite=True),
     r"\.fits: score map has shape \(5, 7\); sample '.*' of sim-basic has shape \(96, 96\)"),
    (lambda f, ds: fits.PrimaryHDU(np.full((96, 96), np.nan, np.float32)).writeto(_first(f), overwrite=True),
     r"\.fits: score map has 9216 NaN or inf values"),
    (lambda f, ds: _first(f).write_bytes(b"SIMPLE  =  garbage"),
     r"\.fits: cannot read FITS file"),
    (lambda f, ds: fits.PrimaryHDU(np.zeros((2, 96, 96), np.float32)).writeto(_first(f), overwrite=True),
     r"\.fits: score map has 3 dimensions"),
])
def test_bad_predictions_are_rejected_naming_the_file(basic_dataset, good_predictions, tmp_path, damage, expect,
                                                      capsys):
    damage(good_predictions, basic_dataset)
    with pytest.raises(FormatError, match=expect):
        check_predictions(good_predictions, basic_dataset, "test")
    rc = main(["score-predictions", str(good_predictions), "--dataset", str(basic_dataset.root),
               "--out", str(tmp_path / "r"), "--no-progress"])
    assert rc == 1
    assert "rejected" in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.json").exists()


def test_predictions_in_an_image_extension_are_read(basic_dataset, good_predictions):
    f = _first(good_predictions)
    data = fits.getdata(f)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCORE")]).writeto(f, overwrite=True)
    check_predictions(good_predictions, basic_dataset, "test")


def test_entry_point_route_without_packaging_tools(basic_dataset, tmp_path, monkeypatch):
    """A third-party distribution that registers its detector in the crbench.detectors group."""
    from crbench.detectors.registry import available_detectors

    site = tmp_path / "site"
    write_detector_module(site, "ep_det")
    dist = site / "crbench_thirdparty-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crbench-thirdparty\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[crbench.detectors]\nlocal-contrast-ep = ep_det:LocalContrast\n")
    monkeypatch.syspath_prepend(str(site))
    assert available_detectors()["local-contrast-ep"] == "ep_det:LocalContrast"
    obj = _evaluate_cli("local-contrast-ep", basic_dataset, tmp_path / "res")
    assert obj["runs"][0]["provenance"]["detector"]["class"] == "ep_det:LocalContrast"
    assert submit(tmp_path / "res", tmp_path / "entries")


def test_predictions_without_val_maps_choose_the_operating_point_in_sample(basic_dataset, tmp_path):
    from crbench.predictions import score_predictions

    folder = tmp_path / "preds"
    spec_dir = tmp_path / "code"
    write_detector_module(spec_dir, "val_det")
    import sys

    sys.path.insert(0, str(spec_dir))
    try:
        from crbench.detectors.registry import get_detector

        det = get_detector("val_det:LocalContrast")
    finally:
        sys.path.remove(str(spec_dir))
    _write_predictions(basic_dataset, det, folder, splits=("test",))
    res = score_predictions(folder, basic_dataset, progress=False)
    summary = res.runs[0]["summary"]
    if "op_chosen_on" in summary:
        assert summary["op_chosen_on"] == "in-sample"
    # one validation map present: all of them are then required, named in the error
    val_ids = basic_dataset.ids("val")
    if len(val_ids) > 1:
        fits.PrimaryHDU(det.score(basic_dataset.load(val_ids[0]).observation())).writeto(folder / f"{val_ids[0]}.fits")
        with pytest.raises(FormatError, match=rf"sim-basic/test and /val have no score map: .*{val_ids[1]}\.fits"):
            score_predictions(folder, basic_dataset, progress=False)


def test_non_standard_conventions_are_refused(demo_results, tmp_path):
    dilated = _mutated(demo_results, tmp_path, lambda o: o["runs"][0]["provenance"]["conventions"].update(
        {"dilation": "deepcr", "protocol": "deepcr"}))
    with pytest.raises(SubmissionError, match=r"conventions\.dilation: 'deepcr'; the leaderboard compares"):
        submit(dilated, tmp_path / "entries")
    other_op = _mutated(demo_results, tmp_path, lambda o: o["runs"][0]["summary"].update({"op_rule": "dice"}))
    with pytest.raises(SubmissionError, match=r"summary\.op_rule: 'dice'"):
        submit(other_op, tmp_path / "entries")


def test_the_board_says_what_each_detector_reads():
    """Single-frame and multi-exposure detectors share a table, so each row names its inputs."""
    from crbench.leaderboard_render import COLUMNS, detector_inputs

    assert ("inputs", "Inputs", None) in COLUMNS
    run = {"detector": "my-detector", "provenance": {"detector": {"requires": ["image", "exposures"]}}}
    assert detector_inputs(run) == "image+exposures"
    # results written before provenance carried 'requires': the registered detector of that name
    assert detector_inputs({"detector": "median", "provenance": {"detector": {}}}) == "image+exposures"
    assert detector_inputs({"detector": "lacosmic", "provenance": {"detector": {}}}) == "image"
    assert detector_inputs({"detector": "stcal-jump", "provenance": {"detector": {}}}) == "ramp"
    # an unregistered name is unknown; a class path in the file is never imported
    odd = {"detector": "nobody", "provenance": {"detector": {"class": "os:system", "requires": "image"}}}
    assert detector_inputs(odd) == "?"


def test_new_results_record_what_the_detector_reads(tmp_path):
    import crbench
    from crbench.detectors.registry import get_detector

    from crbench.recipes import build_dataset

    ds = build_dataset("sim-basic", tmp_path / "ds", progress=False, n_images=2, shape=(64, 64))
    res = crbench.evaluate([get_detector("median")], ds, split="test", progress=False, bootstrap=0,
                           operating_split=None, per_cr=False, sources=False)
    assert res.runs[0]["provenance"]["detector"]["requires"] == ["image", "exposures"]


def test_pages_say_which_standard_build_a_table_scores(tmp_path):
    from crbench.leaderboard_render import standard_build_text
    from crbench.standard import pinned, previous_pins

    current = pinned("sim-decam")["content_hash"]
    (old_version, old_hash), = previous_pins("sim-decam").items()
    assert standard_build_text("sim-decam", current) == f"standard {pinned('sim-decam')['standard']}"
    assert standard_build_text("sim-decam", old_hash) == f"superseded standard {old_version}"
    assert standard_build_text("sim-decam", "0" * 64) == ""
    assert standard_build_text("microobs-hatp32", "0" * 64) == ""   # a real set has no pin
    # the committed board: every simulated table names its standard build, the real ones do not
    entries = Path(__file__).resolve().parents[1] / "leaderboard" / "entries"
    build(entries, tmp_path)
    readme = (tmp_path / "README.md").read_text()
    heads = dict(re.findall(r"^## (\S+) \(test split\)\n\n(.*)$", readme, re.M))
    assert heads["sim-decam"].startswith(f"Standard {pinned('sim-decam')['standard']} build, dataset version")
    assert heads["microobs-hatp32"].startswith("Dataset version")
