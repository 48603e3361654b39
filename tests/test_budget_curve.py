"""benchmarks/budget_curve.py: validation AP at CPU-minute budgets from a sidecar's training log."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from _scripts import load_script


@pytest.fixture(scope="module")
def bc():
    return load_script("benchmarks/budget_curve.py")


def _sidecar(tmp_path: Path, log: list[dict]) -> Path:
    w = tmp_path / "net.pt"
    w.write_bytes(b"")
    w.with_suffix(".json").write_text(json.dumps({"name": "net", "log": log}))
    return w


LOG = [{"step": 100, "cpu_seconds": 180.0, "val_ap": 0.80}, {"step": 200, "cpu_seconds": 360.0, "val_ap": 0.90},
       {"step": 300, "cpu_seconds": 540.0, "val_ap": 0.93}, {"step": 400, "cpu_seconds": 720.0, "val_ap": 0.932}]


def test_ap_at_budget_takes_the_last_validation_before_the_budget(bc, tmp_path):
    name, log = bc.read_log(_sidecar(tmp_path, LOG))
    assert name == "net" and [e["cpu_minutes"] for e in log] == [3.0, 6.0, 9.0, 12.0]
    assert math.isnan(bc.ap_at_budget(log, 2.9))  # no validation yet: not reached, not 0
    assert bc.ap_at_budget(log, 3.0) == 0.80 and bc.ap_at_budget(log, 8.9) == 0.90
    assert bc.ap_at_budget(log, 100.0) == 0.932
    assert bc.minutes_to_converge(log) == 9.0  # 0.93 is within 0.005 of the final 0.932


def test_table_and_files(bc, tmp_path, capsys):
    w = _sidecar(tmp_path, LOG)
    assert bc.main(["--weights", str(w), "--budgets", "2,6", "--out", str(tmp_path / "o"),
                    "--plot", str(tmp_path / "o" / "curve.png")]) == 0
    out = capsys.readouterr().out
    assert "| net | not reached | 0.9000 | 0.9320 (400, 12.0) | 9.0 |" in out
    assert out.strip().splitlines()[-1] == "max_cpu_minutes_to_converge: net 9.0"
    assert (tmp_path / "o" / "curve.pdf").is_file() and (tmp_path / "o" / "budget_curve.csv").is_file()


@pytest.mark.parametrize("args, msg", [(["--budgets", "a,b"], "--budgets"), (["--budgets", "0,5"], "positive")])
def test_bad_budgets_are_clear(bc, tmp_path, args, msg):
    w = _sidecar(tmp_path, LOG)
    with pytest.raises(SystemExit, match=msg):
        bc.main(["--weights", str(w), *args])


def test_missing_sidecar_or_log_names_the_file(bc, tmp_path):
    w = tmp_path / "lonely.pt"
    w.write_bytes(b"")
    with pytest.raises(SystemExit, match="lonely.pt: no sidecar"):
        bc.read_log(w)
    with pytest.raises(SystemExit, match="no training log"):
        bc.read_log(_sidecar(tmp_path, [{"step": 1}]))


def test_budgets_past_the_runs_own_budget_are_not_given_an_ap(bc, tmp_path, capsys):
    """A 12-minute run says nothing about a 20-minute budget (its schedule ended): 'past budget', not its last AP."""
    w = tmp_path / "short.pt"
    w.write_bytes(b"")
    w.with_suffix(".json").write_text(json.dumps({"name": "short", "minutes": 12, "log": LOG}))
    assert bc.budget_minutes(w) == 12.0
    assert bc.budget_minutes(_sidecar(tmp_path, LOG)) == math.inf  # no recorded budget: every column
    assert bc.budget_cell(0.9, 20.0, 12.0) == "past budget"
    assert bc.budget_cell(float("nan"), 2.0, 12.0) == "not reached"
    assert bc.main(["--weights", str(w), "--budgets", "6,12,20"]) == 0
    assert "| short | 0.9000 | 0.9320 | past budget | 0.9320 (400, 12.0) | 9.0 |" in capsys.readouterr().out
