"""Resumable runs: an interrupted evaluation reruns only the unfinished samples; a changed
parameter invalidates the cache."""
from __future__ import annotations

import numpy as np
import pytest

from crbench.cache import RecordCache, evaluation_key
from crbench.detectors.base import Detector
from crbench.harness import evaluate

CALLS: list[str] = []


class Counting(Detector):
    """Image excess over the sky; logs every call; raises KeyboardInterrupt on ``interrupt_at``."""

    name = "counting"
    version = "1"

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__(gain=float(gain))
        self.interrupt_at: str | None = None

    def score(self, sample):
        if sample.id == self.interrupt_at:
            raise KeyboardInterrupt
        CALLS.append(sample.id)
        return (sample.image - sample.sky).astype(np.float32) * self._params["gain"]


def _run(det, ds, cache_dir, **kw):
    return evaluate(det, ds, split="all", progress=False, cache=cache_dir, operating_split=None, **kw)


def test_interrupted_run_resumes_without_recomputing(tmp_path, basic_dataset):
    ids = basic_dataset.ids("all")
    CALLS.clear()
    det = Counting()
    det.interrupt_at = ids[5]
    with pytest.raises(KeyboardInterrupt):
        _run(det, basic_dataset, tmp_path)
    assert CALLS == ids[:5]
    CALLS.clear()
    det.interrupt_at = None
    resumed = _run(det, basic_dataset, tmp_path)
    assert CALLS == ids[5:]  # finished samples come from the cache
    CALLS.clear()
    fresh = evaluate(Counting(), basic_dataset, split="all", progress=False, cache=None, operating_split=None)
    assert CALLS == ids
    for key in ("ap", "roc_auc", "tpr_at_fpr_5e-4", "recall_half", "source_flag_fraction"):
        assert resumed.table.loc[0, key] == fresh.table.loc[0, key]
    CALLS.clear()
    _run(det, basic_dataset, tmp_path)
    assert CALLS == []  # everything cached now


def test_changed_parameter_invalidates(tmp_path, basic_dataset):
    ids = basic_dataset.ids("all")
    CALLS.clear()
    _run(Counting(gain=1.0), basic_dataset, tmp_path)
    assert CALLS == ids
    CALLS.clear()
    _run(Counting(gain=2.0), basic_dataset, tmp_path)
    assert CALLS == ids
    CALLS.clear()
    _run(Counting(gain=1.0), basic_dataset, tmp_path, protocol="deepcr")  # conventions are part of the key
    assert CALLS == ids
    a, b = Counting(gain=1.0), Counting(gain=1.5)
    assert evaluation_key(a) != evaluation_key(b) and evaluation_key(a) == evaluation_key(Counting(gain=1.0))


def test_killed_process_resumes(tmp_path, basic_dataset):
    """A run killed from outside (SIGKILL mid-run) leaves whole cache files only and resumes."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        from crbench.detectors.base import Detector
        from crbench.harness import evaluate
        from crbench.dataset import Dataset

        class Killer(Detector):
            name = "counting"
            version = "1"
            def __init__(self, gain=1.0):
                super().__init__(gain=float(gain))
            def score(self, sample):
                if sample.id == {basic_dataset.ids('all')[3]!r}:
                    os.kill(os.getpid(), signal.SIGKILL)
                return (sample.image - sample.sky).astype(np.float32) * self._params['gain']

        Killer.__module__ = "test_cache"
        Killer.__qualname__ = "Counting"
        evaluate(Killer(), Dataset.open({str(basic_dataset.root)!r}), split="all", progress=False,
                 cache={str(tmp_path)!r}, operating_split=None)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    CALLS.clear()
    _run(Counting(), basic_dataset, tmp_path)
    assert CALLS == basic_dataset.ids("all")[3:]


def test_corrupt_cache_file_is_recomputed(tmp_path, basic_dataset):
    ids = basic_dataset.ids("all")
    CALLS.clear()
    _run(Counting(), basic_dataset, tmp_path)
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == len(ids)
    files[0].write_bytes(b"garbage")
    CALLS.clear()
    _run(Counting(), basic_dataset, tmp_path)
    assert len(CALLS) == 1


def test_uncacheable_detector_is_never_cached(tmp_path, basic_dataset):
    class NoCache(Counting):
        cacheable = False

    _run(NoCache(), basic_dataset, tmp_path)
    assert not list(tmp_path.rglob("*.npz"))
    assert RecordCache(tmp_path, basic_dataset.content_hash, "x", "k").get("nope") is None
