"""First-run user experience: the demo without optional plugins, detectors list, compare, datasets
info, Results printing, train budgets, install hints and named progress bars."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crbench.cli import main

HINT = 'pip install -e ".[cosmic-conn]"'
MIRROR = Path("/work/shared/data/real")


@pytest.fixture
def no_cosmic_conn(monkeypatch):
    """An environment where the optional cosmic-conn package is not installed."""
    monkeypatch.setitem(sys.modules, "cosmic_conn", None)
    for name in list(sys.modules):
        if name.startswith("cosmic_conn."):
            monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def few_detectors(monkeypatch):
    """The registry restricted to two quick baselines and the optional plugin (fast default tests)."""
    import crbench.detectors.registry as reg

    full = reg.available_detectors()
    keep = {k: full[k] for k in ("lacosmic", "median", "cosmic-conn")}
    monkeypatch.setattr(reg, "available_detectors", lambda: dict(keep))


@pytest.fixture
def clean_thread_env(monkeypatch):
    """Undo the demo's thread limits after the test."""
    from crbench.commands.demo import THREAD_VARS

    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------------------------ demo
def test_missing_cosmic_conn_error_gives_source_checkout_hint(no_cosmic_conn):
    from baselines.cosmic_conn_detector import CosmicCoNNDetector
    from crbench.errors import DetectorError

    with pytest.raises(DetectorError) as exc:
        CosmicCoNNDetector()
    assert HINT in str(exc.value) and "\n" not in str(exc.value)


def test_demo_detectors_skip_missing_optional_plugin(no_cosmic_conn, few_detectors):
    from crbench.commands.demo import demo_detectors

    dets, skipped = demo_detectors()
    names = {d.name for d in dets}
    assert names == {"lacosmic", "median"}
    assert HINT in skipped["cosmic-conn"] and "\n" not in skipped["cosmic-conn"]
    # a detector the user names explicitly still fails loudly
    from crbench.errors import DetectorError

    with pytest.raises(DetectorError, match="cosmic-conn"):
        demo_detectors(["cosmic-conn"])


def test_demo_limits_native_threads_unless_user_set_them(clean_thread_env, monkeypatch):
    import os

    from crbench.commands.demo import limit_native_threads

    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    limit_native_threads()
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "3"


def test_plain_demo_without_cosmic_conn_skips_it_and_times_each_detector(no_cosmic_conn, few_detectors,
                                                                          clean_thread_env, tmp_path, capsys):
    """The README's first command (no --detector list) on a tiny build, with two quick baselines."""
    code = main(["demo", "--out", str(tmp_path), "--n-images", "8", "--shape", "64x64", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    skip_lines = [ln for ln in out.splitlines() if ln.startswith("skipped cosmic-conn")]
    assert len(skip_lines) == 1 and HINT in skip_lines[0]
    t = pd.read_csv(tmp_path / "results.csv")
    ran = set(t["detector"])
    assert ran == {"lacosmic", "median"}
    for name in ("results.json", "roc.png", "pr.pdf"):
        assert (tmp_path / name).stat().st_size > 0
    # one time line per detector that ran, and the total
    times = dict(re.findall(r"^\s+(\S+)\s+([0-9.]+) s$", out, re.M))
    assert ran <= set(times) and "total" in times
    assert float(times["total"]) >= max(float(times[d]) for d in ran)


@pytest.mark.slow
def test_plain_demo_full_size_without_cosmic_conn(no_cosmic_conn, clean_thread_env, tmp_path, capsys):
    """The README's first command at its default size scores every other detector that loads here."""
    from crbench.commands.detectors import load_detector
    from crbench.detectors.registry import available_detectors

    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    loadable = {n for n in available_detectors() if load_detector(n)[0] is not None}
    t = pd.read_csv(tmp_path / "results.csv").set_index("detector")
    out = capsys.readouterr().out
    # a detector that loads but needs inputs sim-basic lacks (stcal-jump: ramps) is skipped with that reason
    needs = {ln.split()[1].rstrip(":") for ln in out.splitlines() if ln.startswith("skipped ") and ": needs " in ln}
    assert needs <= {"stcal-jump"}
    assert set(t.index) == loadable - needs and "cosmic-conn" not in loadable and {"lacosmic", "median"} <= loadable
    assert {"attention-unet-mixture", "unet-nogate-mixture", "deepcr-retrained-mixture"} <= set(t.index)
    assert "skipped cosmic-conn" in out
    assert np.isfinite(t["ap"]).all()


# ------------------------------------------------------------------------------ detectors list
def test_detectors_list_says_what_loads_here(no_cosmic_conn, capsys):
    assert main(["detectors", "list"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln and not ln.startswith(" ")}
    assert re.match(r"lacosmic\s+ok\s+LACosmic", lines["lacosmic"])
    assert "``" not in lines["lacosmic"]
    assert re.match(r"median\s+ok\s", lines["median"])
    assert "ok" not in lines["cosmic-conn"].split()[:2] and HINT in lines["cosmic-conn"]


def test_plain_description_strips_markup_and_keeps_first_sentence():
    from crbench.commands.detectors import plain_description

    class Doc:
        """Uses :class:`~crbench.sample.Sample` and ``astroscrappy`` (Smith et al. 2020), e.g. twice.

        More text."""

    class Described(Doc):
        description = "Given explicitly."

    assert plain_description(Doc) == "Uses Sample and astroscrappy (Smith et al. 2020), e.g. twice."
    assert plain_description(Described) == "Given explicitly."


# ------------------------------------------------------------------------------------- compare
@pytest.fixture(scope="module")
def two_runs(basic_dataset, tmp_path_factory):
    from crbench.harness import evaluate

    root = tmp_path_factory.mktemp("cmp")
    evaluate("median", basic_dataset, split="test", progress=False, out=root / "median")
    evaluate("lacosmic", basic_dataset, split="test", progress=False, out=root / "lacosmic")
    evaluate("median", basic_dataset, split="val", progress=False, out=root / "median_val")
    evaluate(["median", "lacosmic"], basic_dataset, split="test", progress=False, out=root / "both")
    return root


def test_compare_two_different_detectors(two_runs, capsys):
    assert main(["compare", str(two_runs / "median"), str(two_runs / "lacosmic")]) == 0
    out = capsys.readouterr().out
    assert "A = median, B = lacosmic" in out
    a = json.loads((two_runs / "median" / "results.json").read_text())["runs"][0]["summary"]["ap"]
    b = json.loads((two_runs / "lacosmic" / "results.json").read_text())["runs"][0]["summary"]["ap"]
    row = re.search(r"^\s+ap\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    assert float(row.group(3)) == pytest.approx(b - a, abs=1e-3)


def test_compare_two_runs_of_one_file(two_runs, capsys):
    assert main(["compare", str(two_runs / "both"), "--a", "lacosmic", "--b", "median"]) == 0
    assert "A = lacosmic, B = median" in capsys.readouterr().out


def test_compare_refuses_different_splits_in_one_line(two_runs, capsys):
    assert main(["compare", str(two_runs / "median"), str(two_runs / "median_val"), "--b", "median"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("crbench: error:") and "same dataset and split" in err and err.count("\n") == 1
    assert "test" in err and "val" in err


def test_compare_names_missing_detector(two_runs, capsys):
    assert main(["compare", str(two_runs / "both"), "--a", "median", "--b", "nope"]) == 1
    err = capsys.readouterr().err
    assert "'nope'" in err and "lacosmic" in err


# --------------------------------------------------------------------------------- datasets info
def test_datasets_info_leads_with_split_counts_and_summarises_provenance(basic_dataset, tmp_path, capsys):
    from crbench.atomic import write_json
    from crbench.dataset import Dataset

    dst = tmp_path / "copy"
    shutil.copytree(basic_dataset.root, dst)
    card = json.loads((dst / "dataset.json").read_text())
    card["provenance"] = ([{"file": f"a{i}.fits", "origin": f"https://host-a.org/data/a{i}.fits", "sha256": "0" * 64,
                            "licence": "CC-BY-4.0"} for i in range(5)]
                          + [{"file": f"b{i}.fits", "origin": f"https://host-b.net/x/b{i}.fits", "sha256": "1" * 64,
                              "licence": "CC-BY-4.0"} for i in range(2)])
    card["caveats"] = "labels are machine-made"
    write_json(dst / "dataset.json", card)
    ds = Dataset.open(dst)
    assert main(["datasets", "info", str(dst)]) == 0
    out = capsys.readouterr().out
    inst = pd.read_csv(dst / "instances.csv")
    head = out.split("Class imbalance")[0]
    for split, ids in ds.splits.items():
        sel = inst[inst["sample_id"].isin(ids)]
        want = [len(ids), len(sel)] + [int((sel["morphology"] == m).sum()) for m in ("spot", "track")]
        row = re.search(rf"^\s+{split}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", head, re.M)
        assert row and [int(x) for x in row.groups()] == want, (split, head)
    assert "spot" in head.splitlines()[1] and "track" in head.splitlines()[1]
    assert "label quality" in head and "labels are machine-made" in head and "CC-BY-4.0" in head
    assert "7 files from 2 sources: host-a.org (5), host-b.net (2)" in head
    assert "https://" not in out
    assert main(["datasets", "info", str(dst), "--full"]) == 0
    assert capsys.readouterr().out.count("https://") == 7


def test_label_quality_line_reports_measured_numbers():
    from crbench.dataset_info import label_quality_line

    q = {"n_injected_crs": 120, "pixel_completeness": 0.8, "instance_completeness": 0.9, "pixel_purity": 0.95,
         "ignored_fraction": 0.1}
    line = label_quality_line({"label_quality": q, "kind": "real"})
    assert "120" in line and "80.0%" in line and "90.0%" in line and "95.0%" in line
    assert "not measured" in label_quality_line({"label_quality": None, "labelling": {}, "kind": "real"})


# ------------------------------------------------------------------------------------- results
def test_printing_results_is_concise(basic_dataset):
    from crbench.harness import evaluate

    res = evaluate(["median"], basic_dataset, split="test", progress=False)
    text = str(res)
    assert len(json.dumps(res.runs)) > 20 * len(text)  # the curves stay out
    assert text.count("\n") == len(res.runs)
    assert "median" in text and "sim-basic/test" in text and f"ap={res.table.loc[0, 'ap']:.4g}" in text
    assert repr(res) == text


# --------------------------------------------------------------------------------------- train
def test_train_steps_without_minutes(monkeypatch, capsys):
    pytest.importorskip("torch")
    import baselines.unet.train as bt

    calls = []

    def fake(name, dataset, minutes, seed, out, **kw):
        calls.append((name, dataset, minutes, kw.get("steps")))
        return Path("weights/x.pt")

    monkeypatch.setattr(bt, "cli_train", fake)
    assert main(["train", "attention-unet", "--dataset", "sim-basic", "--steps", "3"]) == 0
    assert calls == [("attention-unet", "sim-basic", None, 3)]


def test_train_without_any_budget_is_one_line_error(capsys):
    assert main(["train", "attention-unet", "--dataset", "sim-basic"]) == 1
    err = capsys.readouterr().err
    assert "--minutes" in err and "--steps" in err and err.count("\n") == 1


# ------------------------------------------------------------------------ real build progress
def _frames(tmp_path: Path, n: int) -> Path:
    """The first ``n`` MicroObservatory frames of the shared mirror, decompressed into ``tmp_path``."""
    import gzip

    for src in sorted((MIRROR / "microobs_hatp32").glob("HATP-32*.FITS.gz"))[:n]:
        (tmp_path / src.name[:-3]).write_bytes(gzip.decompress(src.read_bytes()))
    return tmp_path


@pytest.mark.skipif(not (MIRROR / "microobs_hatp32").is_dir(), reason="shared real-data mirror absent")
def test_real_build_stages_have_named_progress_bars(tmp_path, capsys):
    """Every stage of the real labelling pipeline, and the label-quality rerun, shows a named bar."""
    from data_recipes.real.labelling import LabelParams, fit_series_model, label_series
    from data_recipes.real.microobs import SATURATION_ADU, load_series
    from data_recipes.real.quality import measure_label_quality

    cube, _, _ = load_series(_frames(tmp_path, 6), progress=True)
    cube = np.ascontiguousarray(cube[:, 150:278, 200:328])
    p = LabelParams(saturation_adu=SATURATION_ADU, min_companions=3, n_companions=5)
    model = fit_series_model(cube, params=p, progress=True)
    labels = label_series(cube, params=p, model=model, n_exposures=0, progress=True)
    capsys.readouterr()
    q = measure_label_quality(cube, labels, model=model, params=p, blocks=None, exptime=60.0, progress=True)
    quality_err = capsys.readouterr().err
    assert "label quality: negative deviations" in quality_err and "label quality: held-back" in quality_err
    if q["completeness"]["library_size"]:   # the footprint rerun runs only when the crop has labelled CRs
        assert "label quality: relabelling: seeds" in quality_err and "label quality: relabelling: masks" in quality_err
        assert "label quality: injecting" in quality_err
    assert "labelling: seeds" not in quality_err.replace("label quality: relabelling: seeds", "")


@pytest.mark.skipif(not (MIRROR / "microobs_hatp32").is_dir(), reason="shared real-data mirror absent")
def test_series_model_stages_have_named_progress_bars(tmp_path, capsys):
    from data_recipes.real.labelling import LabelParams, fit_series_model
    from data_recipes.real.microobs import SATURATION_ADU, load_series

    cube, _, _ = load_series(_frames(tmp_path, 5), progress=True)
    fit_series_model(np.ascontiguousarray(cube[:, :96, :96]), params=LabelParams(saturation_adu=SATURATION_ADU),
                     progress=True)
    err = capsys.readouterr().err
    for name in ("reading frames", "series model: aligning", "series model: sky model",
                 "series model: static pattern", "series model: noise"):
        assert name in err, name


def test_plain_demo_skips_a_ramp_detector_in_one_line(monkeypatch, clean_thread_env, tmp_path, capsys, recwarn):
    """stcal-jump needs up-the-ramp reads, which the demo's images lack: one line, no per-sample failures."""
    pytest.importorskip("stcal")
    import crbench.detectors.registry as reg

    full = reg.available_detectors()
    monkeypatch.setattr(reg, "available_detectors", lambda: {k: full[k] for k in ("median", "stcal-jump")})
    code = main(["demo", "--out", str(tmp_path), "--n-images", "6", "--shape", "48x48", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert [ln for ln in out.splitlines() if ln.startswith("skipped stcal-jump")] == [
        "skipped stcal-jump: needs ramp, which sim-basic does not have"]
    assert not [w for w in recwarn if "stcal-jump" in str(w.message)]
    assert set(pd.read_csv(tmp_path / "results.csv")["detector"]) == {"median"}
