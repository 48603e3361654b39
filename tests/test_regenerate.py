"""leaderboard/regenerate.py --keep-others: adding new detectors' rows keeps every other committed entry."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "leaderboard" / "regenerate.py"


def _load():
    spec = importlib.util.spec_from_file_location("regenerate", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _entry(folder: Path, dataset: str, detector: str) -> Path:
    p = folder / f"{dataset}__test__{detector}__000000000000.json"
    p.write_text(json.dumps({"runs": [{"dataset": dataset, "detector": detector}]}))
    return p


def test_keep_other_entries_copies_only_runs_outside_this_run(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for ds in ("a", "b"):
        for det in ("lacosmic", "net"):
            _entry(old, ds, det)
    kept = _load().keep_other_entries(old, new, datasets={"a", "b"}, detectors={"net"})
    assert kept == 2
    assert sorted(p.name for p in new.iterdir()) == ["a__test__lacosmic__000000000000.json",
                                                     "b__test__lacosmic__000000000000.json"]
    # a dataset outside the run keeps all its entries; a missing folder keeps nothing
    new2 = tmp_path / "new2"
    new2.mkdir()
    assert _load().keep_other_entries(old, new2, datasets={"a"}, detectors={"net"}) == 3
    assert _load().keep_other_entries(tmp_path / "absent", new2, datasets=set(), detectors=set()) == 0
