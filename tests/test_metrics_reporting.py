"""How not-reached metrics and not-comparable columns reach the leaderboard and terminal tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crbench.leaderboard import Entry, _fmt, load_entries, ranked_rows
from crbench.report import format_table

ENTRIES = Path(__file__).resolve().parents[1] / "leaderboard" / "entries"


def _entry(name: str, summary: dict, not_comparable=()) -> Entry:
    run = {"detector": name, "dataset": "d", "split": "test", "summary": summary,
           "provenance": {"not_comparable": list(not_comparable)}}
    return Entry(Path(f"{name}.json"), run, {})


def test_leaderboard_never_ranks_by_not_comparable_columns():
    # a dilated-TP protocol inflates AP: with equal rank metric, the AP tie-break must ignore it
    a = _entry("honest", {"tpr_at_fpr_5e-4": 0.5, "ap": 0.78})
    b = _entry("dilated", {"tpr_at_fpr_5e-4": 0.5, "ap": 0.996}, not_comparable=["ap", "best_dice"])
    rows = {r["detector"]: r["rank"] for r in ranked_rows([a, b])}
    assert rows == {"honest": 1, "dilated": 2}


def test_leaderboard_shows_not_reached():
    e = _entry("sat", {"tpr_at_fpr_5e-4": None, "tpr_at_fpr_5e-4_status": "not reached: strictest FPR 0.002",
                       "recall_half": None, "op_status": "not reached: flags nothing", "ap": 0.1})
    row = ranked_rows([e])[0]
    assert _fmt(row, "tpr_at_fpr_5e-4", 3) == "not reached"
    assert _fmt(row, "recall_half", 3) == "not reached"
    assert _fmt(row, "ap", 3) == "0.100"


def test_existing_leaderboard_entries_still_load_and_rank():
    entries = load_entries(ENTRIES)
    assert len(entries) > 0
    rows = ranked_rows(entries)
    assert all(isinstance(r["rank"], int) for r in rows)


def test_terminal_table_prints_not_reached():
    t = pd.DataFrame([{"detector": "a", "tpr_at_fpr_1e-4": np.nan, "tpr_at_fpr_1e-4_status": "not reached: x",
                       "ap": np.nan, "recall_half": np.nan, "op_status": "not reached: y"}])
    text = format_table(t, ["detector", "tpr_at_fpr_1e-4", "ap", "recall_half"])
    assert text.count("not reached") == 2 and "nan" in text  # a NaN without a reason stays NaN
