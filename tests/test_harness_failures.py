"""A detector that raises on one sample, or runs past --timeout, is reported for that sample and the
run goes on for the others."""
from __future__ import annotations

import time

import numpy as np
import pytest

from crbench.cli import main
from crbench.detectors.base import Detector
from crbench.errors import DetectorError
from crbench.harness import DetectorFailure, evaluate


class FailsOnOne(Detector):
    name = "fails-on-one"

    def __init__(self, bad: str = "basic-0003") -> None:
        super().__init__(bad=bad)

    def score(self, sample):
        if sample.id == self._params["bad"]:
            raise RuntimeError("detector exploded")
        return (sample.image - sample.sky).astype(np.float32)


class SlowOnOne(Detector):
    name = "slow-on-one"

    def __init__(self, slow: str = "basic-0002", seconds: float = 30.0) -> None:
        super().__init__(slow=slow, seconds=float(seconds))

    def score(self, sample):
        if sample.id == self._params["slow"]:
            time.sleep(self._params["seconds"])
        return (sample.image - sample.sky).astype(np.float32)


def test_raising_sample_is_reported_and_run_goes_on(basic_dataset):
    with pytest.warns(DetectorFailure, match="basic-0003.*detector exploded"):
        res = evaluate(FailsOnOne(), basic_dataset, split="all", progress=False, operating_split=None)
    run = res.runs[0]
    assert list(run["provenance"]["failed_samples"]) == ["basic-0003"]
    assert run["summary"]["n_images"] == 7 and run["summary"]["n_failed"] == 1
    assert np.isfinite(run["summary"]["ap"])


def test_timeout_is_reported_and_run_goes_on(basic_dataset):
    t0 = time.perf_counter()
    with pytest.warns(DetectorFailure, match="exceeded the 1 s timeout on sample 'basic-0002'"):
        res = evaluate(SlowOnOne(), basic_dataset, split="all", progress=False, operating_split=None, timeout=1.0)
    assert time.perf_counter() - t0 < 25  # the 30 s sleep was cut short
    failed = res.runs[0]["provenance"]["failed_samples"]
    assert list(failed) == ["basic-0002"] and "timeout" in failed["basic-0002"]
    assert res.runs[0]["summary"]["n_images"] == 7


def test_failure_on_the_validation_split_is_listed(basic_dataset):
    bad = basic_dataset.ids("val")[0]
    with pytest.warns(DetectorFailure):
        res = evaluate(FailsOnOne(bad=bad), basic_dataset, split="test", progress=False)
    assert list(res.runs[0]["provenance"]["failed_samples"]) == [f"val/{bad}"]
    assert res.runs[0]["summary"]["op_chosen_on"] == "val"


def test_on_error_raise_stops(basic_dataset):
    with pytest.raises(DetectorError, match="raised on sample 'basic-0003'"):
        evaluate(FailsOnOne(), basic_dataset, split="all", progress=False, on_error="raise", operating_split=None)


def test_failures_survive_a_process_pool(basic_dataset):
    with pytest.warns(DetectorFailure, match="basic-0003"):
        res = evaluate(FailsOnOne(), basic_dataset, split="all", progress=False, operating_split=None, workers=2)
    assert list(res.runs[0]["provenance"]["failed_samples"]) == ["basic-0003"]


def test_cli_lists_failed_samples(tmp_path, basic_dataset, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "slowdet.py").write_text(
        "import time, numpy as np\n"
        "from crbench.detectors.base import Detector\n"
        "class Slow(Detector):\n"
        "    name = 'slow'\n"
        "    def score(self, sample):\n"
        "        if sample.id == 'basic-0005':\n"
        "            time.sleep(30)\n"
        "        return sample.image.astype(np.float32)\n")
    code = main(["evaluate", "--dataset", str(basic_dataset.root), "--detector", "slowdet:Slow", "--split", "all",
                 "--timeout", "1", "--out", str(tmp_path / "out"), "--no-progress", "--bootstrap", "0",
                 "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert "slow: 1 sample(s) failed: basic-0005" in out and "timeout" in out
