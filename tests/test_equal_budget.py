"""benchmarks/equal_budget.py reports the harness's numbers (crbench.harness.evaluate), not its own: its old copy
of the scoring loaded no companion exposures, so a detector that needs them (median) could not be scored."""
from __future__ import annotations

import re

import pytest

from crbench.harness import evaluate

from _scripts import load_script


def _load_script():
    return load_script("benchmarks/equal_budget.py")


def test_table_holds_the_harness_point_estimates_and_bootstrap_intervals(basic_dataset, tmp_path, capsys):
    rc = _load_script().main(["--dataset", str(basic_dataset.root), "--detectors", "median", "--boot", "30",
                              "--seed", "3", "--split", "all", "--plot", str(tmp_path / "roc.png")])
    assert rc == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| median |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected = evaluate("median", basic_dataset, split="all", bootstrap=30, seed=3, per_cr=False, sources=False,
                        on_error="raise", progress=False, operating_split=None).runs[0]["summary"]
    assert expected["ap_hi"] > expected["ap_lo"]  # a real interval to compare
    for cell, key in ((cells[1], "tpr_at_fpr_5e-4"), (cells[2], "tpr_at_fpr_1e-4"), (cells[3], "ap")):
        v, lo, hi = (float(x) for x in re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell).groups())
        assert v == pytest.approx(100 * expected[key], abs=0.051, nan_ok=True)
        assert (lo, hi) == (pytest.approx(100 * expected[f"{key}_lo"], abs=0.051, nan_ok=True),
                            pytest.approx(100 * expected[f"{key}_hi"], abs=0.051, nan_ok=True))
    assert float(cells[4]) == pytest.approx(expected["roc_auc"], abs=5e-5)
    assert (tmp_path / "roc.png").stat().st_size > 1000 and (tmp_path / "roc.pdf").exists()


def test_entries_are_read_instead_of_scoring_and_another_build_is_refused(basic_dataset, tmp_path, capsys):
    res = evaluate("median", basic_dataset, split="test", bootstrap=20, seed=1, per_cr=True, sources=False,
                   on_error="raise", progress=False, out=tmp_path / "run")
    entries = tmp_path / "entries"
    entries.mkdir()
    text = (tmp_path / "run" / "results.json").read_text()
    (entries / f"{basic_dataset.name}__test__median__0123456789ab.json").write_text(text)
    mod = _load_script()
    assert mod.main(["--dataset", str(basic_dataset.root), "--detectors", "median", "--entries", str(entries)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| median |"))
    ap_cell = [c.strip() for c in row.strip("|").split("|")][3]
    assert float(ap_cell.split()[0]) == pytest.approx(100 * res.runs[0]["summary"]["ap"], abs=0.051)
    assert "20 bootstrap resamples" in out
    # an entry of another build of the dataset is refused, naming both hashes
    (entries / f"{basic_dataset.name}__test__median__0123456789ab.json").write_text(
        text.replace(basic_dataset.content_hash, "f" * 64))
    with pytest.raises(SystemExit, match="another build"):
        mod.main(["--dataset", str(basic_dataset.root), "--detectors", "median", "--entries", str(entries)])
    with pytest.raises(SystemExit, match="expected one entry of lacosmic"):
        mod.main(["--dataset", str(basic_dataset.root), "--detectors", "lacosmic", "--entries", str(entries)])
