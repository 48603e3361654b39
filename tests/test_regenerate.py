"""leaderboard/regenerate.py --keep-others: adding new detectors' rows keeps every other committed entry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from _scripts import REPO_ROOT, load_script
from crbench.errors import CRBenchError

#: A committed entry: a complete, schema-valid results file to relabel.
TEMPLATE = json.loads(sorted((REPO_ROOT / "leaderboard" / "entries").glob("sim-decam__test__lacosmic__*.json"))[0]
                      .read_text())


def _load():
    return load_script("leaderboard/regenerate.py")


def _entry(folder: Path, dataset: str, detector: str) -> Path:
    p = folder / f"{dataset}__test__{detector}__000000000000.json"
    obj = json.loads(json.dumps(TEMPLATE))
    run = obj["runs"][0]
    run["dataset"] = run["summary"]["dataset"] = run["provenance"]["dataset"]["name"] = dataset
    run["detector"] = run["summary"]["detector"] = run["provenance"]["detector"]["name"] = detector
    p.write_text(json.dumps(obj))
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


def test_a_corrupt_entry_is_an_error_naming_the_file(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    _entry(old, "a", "lacosmic")
    (old / "b__test__net__000000000000.json").write_text('{"runs": [')
    with pytest.raises(CRBenchError, match="b__test__net__000000000000.json"):
        _load().keep_other_entries(old, new, datasets={"a"}, detectors={"net"})
    assert not list(new.iterdir())
