"""Datasets kept off the leaderboard are refused with the reason."""
from __future__ import annotations

import json

import pytest

from crbench.leaderboard import EXCLUDED_DATASETS, SubmissionError, submit


def test_kast_science_submission_is_refused_with_the_reason(basic_dataset, tmp_path):
    from crbench.harness import evaluate

    evaluate(["median"], basic_dataset, split="test", progress=False, out=tmp_path / "res")
    obj = json.loads((tmp_path / "res" / "results.json").read_text())
    run = obj["runs"][0]
    run["provenance"]["dataset"]["name"] = "kast-science"
    run["provenance"]["dataset"].pop("path", None)
    run["summary"]["dataset"] = "kast-science"
    run["dataset"] = "kast-science"
    bad = tmp_path / "bad" / "results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(obj))
    with pytest.raises(SubmissionError, match="'kast-science' is not on the leaderboard: its labels come from one frame"):
        submit(bad, tmp_path / "entries")
    assert "kast-science" in EXCLUDED_DATASETS
