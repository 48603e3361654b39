"""The leaderboard cannot be gamed or corrupted: builds, metric ranges, curve checks, names, sizes."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from crbench.cli import main
from crbench.errors import FormatError
from crbench.leaderboard import SubmissionError, build, load_entries, submit, thin_curve
from crbench.leaderboard_checks import MAX_DEPTH, MAX_SUBMISSION_BYTES


@pytest.fixture(scope="module")
def official(basic_dataset, tmp_path_factory) -> dict:
    """Parsed results of the median detector on the tiny sim-basic test split."""
    from crbench.harness import evaluate

    out = tmp_path_factory.mktemp("official")
    evaluate(["median"], basic_dataset, split="test", progress=False, out=out)
    return json.loads((out / "results.json").read_text())


def _write(obj: dict, folder: Path, name: str = "results.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(json.dumps(obj))
    return p


def _variant(official: dict, fn) -> dict:
    obj = copy.deepcopy(official)
    fn(obj)
    return obj


def _other_build(obj: dict) -> None:
    """The same dataset name under another version string and another content hash."""
    ds = obj["runs"][0]["provenance"]["dataset"]
    ds.update(version="1.0", content_hash="ab" * 32, path="/elsewhere/sim-basic")  # built and scored elsewhere
    obj["meta"]["versions"] = dict(obj["meta"]["versions"], numpy="9.9.9", astropy="0.0.1")


# -------------------------------------------------------------------------------- dataset builds

def test_other_version_string_and_hash_cannot_overwrite_the_official_entry(official, tmp_path):
    entries = tmp_path / "entries"
    (entry,) = submit(_write(official, tmp_path / "a"), entries)
    before = entry.read_bytes()
    forged = _write(_variant(official, _other_build), tmp_path / "b")
    with pytest.raises(SubmissionError, match=r"dataset 'sim-basic' differs from the build the leaderboard ranks"):
        submit(forged, entries)
    assert entry.read_bytes() == before
    # another detector on that other build is refused as well (one build per dataset name)
    renamed = _variant(official, lambda o: (_other_build(o), o["runs"][0].update(detector="median2"),
                                            o["runs"][0]["summary"].update(detector="median2")))
    with pytest.raises(SubmissionError, match="differs from the build"):
        submit(_write(renamed, tmp_path / "c"), entries)
    assert [e.path for e in load_entries(entries)] == [entry]


def test_hash_refusal_shows_both_builds(official, tmp_path):
    entries = tmp_path / "entries"
    submit(_write(official, tmp_path / "a"), entries)

    def rebuilt(o):  # the same version string, built elsewhere with other package versions
        o["runs"][0]["provenance"]["dataset"]["content_hash"] = "ab" * 32
        o["meta"]["versions"] = dict(o["meta"]["versions"], numpy="9.9.9", astropy="0.0.1")

    with pytest.raises(SubmissionError) as exc:
        submit(_write(_variant(official, rebuilt), tmp_path / "b"), entries)
    msg = str(exc.value)
    ours = official["runs"][0]["provenance"]["dataset"]["content_hash"]
    assert f"content hash {'ab' * 32}" in msg and f"content hash {ours}" in msg  # both full hashes
    assert "numpy 9.9.9" in msg and f"numpy {official['meta']['versions']['numpy']}" in msg
    assert "astropy 0.0.1" in msg and f"crbench {official['meta']['versions']['crbench']}" in msg
    assert "default options" not in msg


def test_replace_dataset_lists_and_needs_yes(official, tmp_path, capsys):
    entries = tmp_path / "entries"
    submit(_write(official, tmp_path / "a"), entries)
    second = _variant(official, lambda o: (o["runs"][0].update(detector="median2"),
                                           o["runs"][0]["summary"].update(detector="median2")))
    submit(_write(second, tmp_path / "a2"), entries)
    old = sorted(entries.glob("*.json"))
    assert len(old) == 2
    snapshot = {p: p.read_bytes() for p in old}
    forged = _write(_variant(official, _other_build), tmp_path / "b")
    capsys.readouterr()
    rc = main(["leaderboard", "submit", str(forged), "--entries", str(entries), "--replace-dataset"])
    out = capsys.readouterr()
    assert rc == 1
    for p in old:
        assert f"would delete {p}" in out.out
    assert "pass --yes" in out.err
    assert {p: p.read_bytes() for p in sorted(entries.glob("*.json"))} == snapshot  # nothing deleted or written
    assert main(["leaderboard", "submit", str(forged), "--entries", str(entries), "--replace-dataset", "--yes"]) == 0
    remaining = load_entries(entries)
    assert [e.run["detector"] for e in remaining] == ["median"]
    assert remaining[0].run["provenance"]["dataset"]["content_hash"] == "ab" * 32


# ----------------------------------------------------------------------------------- metric ranges

def _set(path: str, value):
    def fn(o):
        node = o
        keys = path.split("/")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        node[keys[-1]] = value
    return fn


@pytest.mark.parametrize("path, value, where", [
    ("runs/0/summary/tpr_at_fpr_5e-4", 7.5, "$.runs[0].summary[\"tpr_at_fpr_5e-4\"]"),
    ("runs/0/summary/ap", -3, "$.runs[0].summary.ap"),
    ("runs/0/summary/roc_auc", float("inf"), "$.runs[0].summary.roc_auc"),
    ("runs/0/summary/n_images", 10 ** 9, "$.runs[0].summary.n_images"),
    ("runs/0/summary/seconds_per_mpix", -1.0, "$.runs[0].summary.seconds_per_mpix"),
    ("runs/0/summary/recall_half", 1.5, "$.runs[0].summary.recall_half"),
    ("runs/0/summary/fpr_sources_hi", 2.0, "$.runs[0].summary.fpr_sources_hi"),
    ("runs/0/summary/n_crs", -4.0, "$.runs[0].summary.n_crs"),
    ("runs/0/by_morphology/0/recall_any", 3.0, "$.runs[0].by_morphology[0].recall_any"),
])
def test_out_of_range_metrics_are_refused(official, tmp_path, path, value, where):
    bad = _write(_variant(official, _set(path, value)), tmp_path / "bad")
    with pytest.raises(FormatError) as exc:
        submit(bad, tmp_path / "entries")
    assert f"{bad}: {where}: " in str(exc.value), str(exc.value)
    assert not (tmp_path / "entries").exists()


def test_unreached_metric_may_be_null_but_nan_auc_is_refused(official, tmp_path):
    # "not reached": null for a TPR at an FPR is allowed
    ok = _variant(official, _set("runs/0/summary/tpr_at_fpr_1e-4", None))
    assert submit(_write(ok, tmp_path / "ok"), tmp_path / "entries")
    # ROC AUC is defined by any curve with both classes: NaN is a mismatch
    nan = _write(_variant(official, _set("runs/0/summary/roc_auc", float("nan"))), tmp_path / "nan")
    with pytest.raises(SubmissionError, match=r"summary\.roc_auc: nan but the curve gives"):
        submit(nan, tmp_path / "entries2")


@pytest.mark.parametrize("key", ["roc_auc", "ap", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "best_dice",
                                 "precision_at_recall_0.95"])
def test_summary_must_follow_from_the_curve(official, tmp_path, key):
    # a curve keeps a subset of the full curve's points: the honest summary passes on thinned curves
    for n in (300, 40):
        thin = copy.deepcopy(official)
        thin["runs"][0]["curve"] = thin_curve(thin["runs"][0]["curve"], n)
        assert len(thin["runs"][0]["curve"]["fpr"]) <= n + 2
        assert submit(_write(thin, tmp_path / f"thin{n}"), tmp_path / f"entries{n}")
    v = official["runs"][0]["summary"][key]
    forged = min(1.0, v + 0.05) if v < 0.95 else v - 0.05  # in range, but not what the curve says
    bad = _write(_variant(official, _set(f"runs/0/summary/{key}", forged)), tmp_path / "bad")
    with pytest.raises(SubmissionError, match=rf"summary\.{key}: .* does not match the submitted curve"):
        submit(bad, tmp_path / "entries")


def test_forged_precision_is_refused(official, tmp_path):
    def fn(o):
        c = o["runs"][0]["curve"]
        c["precision"] = [1.0] * len(c["precision"])
    bad = _write(_variant(official, fn), tmp_path / "bad")
    with pytest.raises(SubmissionError, match=r"curve\.precision\[\d+\]: 1\.0 but tpr, fpr, n_pos and n_neg give"):
        submit(bad, tmp_path / "entries")


# ------------------------------------------------------------------------------------------ names

@pytest.mark.parametrize("field, value", [
    ("detector", "<img src=x onerror=alert(1)>"),
    ("detector", "two\nlines"),
    ("detector", "a|b"),
    ("detector", "x" * 65),
    ("split", "<script>alert(1)</script>"),
    ("version", "1<br>"),
])
def test_displayed_identifiers_must_be_plain_names(official, tmp_path, field, value):
    def fn(o):
        run = o["runs"][0]
        if field == "version":
            run["provenance"]["dataset"]["version"] = value
        else:
            run[field] = run["summary"][field] = value
            if field == "split":
                run["provenance"]["dataset"]["split"] = value
    bad = _write(_variant(official, fn), tmp_path / "bad")
    with pytest.raises(SubmissionError, match=r"is not a leaderboard name"):
        submit(bad, tmp_path / "entries")
    assert not (tmp_path / "entries").exists()


def test_free_text_is_escaped_in_the_readme(official, tmp_path):
    text = "notes <script>alert(1)</script>\n# Injected heading\n[link](javascript:alert(1)) `code` *x*"
    obj = _variant(official, lambda o: o["runs"][0]["provenance"]["detector"].update(trained_on=[text]))
    entries = tmp_path / "lb" / "entries"
    submit(_write(obj, tmp_path / "a"), entries)
    readme = build(entries)["markdown"].read_text()
    assert "<script>" not in readme and "&lt;script&gt;" in readme
    assert "\n# Injected heading" not in readme
    assert "[link](" not in readme and "\\[link\\](javascript:alert(1))" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| 1 | median |"))
    assert "Injected heading" in row and "\\`code\\` \\*x\\*" in row


# ----------------------------------------------------------------------------------- size and depth

def test_oversized_submission_is_refused_in_one_line(official, tmp_path):
    p = tmp_path / "big" / "results.json"
    p.parent.mkdir()
    text = json.dumps(official)
    p.write_text(text + " " * (MAX_SUBMISSION_BYTES + 1 - len(text)))  # valid JSON, one byte too large
    with pytest.raises(SubmissionError) as exc:
        submit(p, tmp_path / "entries")
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith(f"{p}: submission refused: the file has {MAX_SUBMISSION_BYTES + 1} bytes")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 200_000])
def test_deep_nesting_is_refused_in_one_line(official, tmp_path, depth):
    text = json.dumps(official)
    deep = "[" * depth + "]" * depth
    text = text.replace('"meta": {', '"meta": {"deep": ' + deep + ", ", 1)
    p = tmp_path / "deep" / "results.json"
    p.parent.mkdir()
    p.write_text(text)
    with pytest.raises(SubmissionError) as exc:
        submit(p, tmp_path / "entries")
    assert str(exc.value) == f"{p}: submission refused: JSON nested deeper than {MAX_DEPTH} levels"


def test_overlong_curve_is_refused(official, tmp_path):
    def fn(o):
        c = o["runs"][0]["curve"]
        for k in ("fpr", "tpr", "precision", "recall", "thresholds"):
            c[k] = [0.5] * 20_001
    bad = _write(_variant(official, fn), tmp_path / "bad")
    with pytest.raises(SubmissionError, match=r"\$\.runs\[0\]\.curve\.\w+: 20001 points"):
        submit(bad, tmp_path / "entries")


# ------------------------------------------------------------------- standard builds, verified content

def test_only_the_pinned_standard_build_is_accepted(official, tmp_path, monkeypatch):
    ds = official["runs"][0]["provenance"]["dataset"]
    reg = tmp_path / "standard.json"
    reg.write_text(json.dumps({"schema": 1, "sets": {ds["name"]: {"content_hash": "cd" * 32}}}))
    monkeypatch.setenv("CRBENCH_STANDARD_REGISTRY", str(reg))
    with pytest.raises(SubmissionError, match="is not the standard build"):
        submit(_write(official, tmp_path / "a"), tmp_path / "entries")
    reg.write_text(json.dumps({"schema": 1, "sets": {ds["name"]: {"content_hash": ds["content_hash"]}}}))
    assert submit(_write(official, tmp_path / "b"), tmp_path / "entries2")


def test_submission_whose_dataset_folder_was_edited_is_refused(basic_dataset, tmp_path):
    import shutil

    from crbench.harness import evaluate

    root = tmp_path / "ds"
    shutil.copytree(basic_dataset.root, root)
    evaluate(["median"], root, split="test", progress=False, out=tmp_path / "res")
    results = tmp_path / "res" / "results.json"
    assert json.loads(results.read_text())["runs"][0]["provenance"]["dataset"]["path"] == str(root)
    sample = sorted((root / "samples").glob("*.fits"))[0]
    data = bytearray(sample.read_bytes())
    data[-100] ^= 0x01  # one bit of the last extension's data, same size
    sample.write_bytes(bytes(data))
    with pytest.raises(SubmissionError, match="does not hash to the content hash"):
        submit(results, tmp_path / "entries")
