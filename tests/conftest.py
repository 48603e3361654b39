"""Shared fixtures: small simulated samples and datasets built with the real recipe code."""
from __future__ import annotations

import os

# One native thread per library (astroscrappy's and torch's OpenMP, BLAS) unless the user set them:
# several OpenMP runtimes in one process oversubscribe a small or shared machine (LACosmic after a
# torch test ran >10x slower on 2 cores). Set before any of those libraries loads.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest

from crbench.sample import Sample

# Property tests draw fresh random examples on a developer's machine but the same ones under CI ($CI
# set), so that a CI verdict does not depend on the draw (a failure found locally is kept in
# .hypothesis/ and replayed first).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")

# Under CI ($CI set) any skip fails the session (see _ci_skip_guard.py).
from _ci_skip_guard import pytest_configure  # noqa: F401  (hook, registered by being in this namespace)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own CRBENCH_DATA_DIR so nothing touches the user's cache."""
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(tmp_path_factory.mktemp("crbench-data")))


def make_sample(sample_id: str = "s0", shape=(64, 64), seed: int = 0, n_exposures: int = 2,
                n_crs: int = 6, sky: float = 200.0, read_noise: float = 5.0) -> Sample:
    """A small sample with Poisson sky, a few bright CR hits and aligned companion exposures."""
    rng = np.random.default_rng(seed)
    h, w = shape
    frames = [rng.poisson(sky, shape).astype(np.float32) + rng.normal(0, read_noise, shape).astype(np.float32)
              for _ in range(n_exposures + 1)]
    labels = np.zeros(shape, np.int32)
    rows = []
    for k in range(1, n_crs + 1):
        y, x = rng.integers(4, h - 4), rng.integers(4, w - 4)
        labels[y:y + 2, x:x + 2] = np.where(labels[y:y + 2, x:x + 2] == 0, k, labels[y:y + 2, x:x + 2])
        frames[0][y:y + 2, x:x + 2] += 3000.0
    import pandas as pd

    for k in np.unique(labels[labels > 0]):
        rows.append((int(k), "spot", "electron", int((labels == k).sum()), float(3000.0 * (labels == k).sum()), False))
    table = pd.DataFrame(rows, columns=["id", "morphology", "generator", "pixels", "charge", "saturated"])
    table["id"] = table["id"].astype("int32")
    ignore = np.zeros(shape, bool)
    ignore[:2, :] = True
    labels[ignore] = 0
    table = table[table["id"].isin(np.unique(labels[labels > 0]))].reset_index(drop=True)
    return Sample(id=sample_id, image=frames[0], truth=labels > 0, ignore=ignore, labels=labels, instances=table,
                  sources=np.zeros(shape, bool),
                  exposures=np.stack(frames[1:]) if n_exposures else None,
                  meta={"gain": 2.0, "read_noise": read_noise, "sky": sky, "exptime": 100.0,
                        "saturation": 60000.0, "instrument": "test"})


@pytest.fixture
def sample() -> Sample:
    return make_sample()


@pytest.fixture(scope="session")
def basic_dataset(tmp_path_factory):
    """A tiny sim-basic dataset (8 images of 96x96), built once per session."""
    from crbench.recipes import build_dataset

    return build_dataset("sim-basic", tmp_path_factory.mktemp("ds") / "sim-basic", progress=False,
                         n_images=8, shape=(96, 96))
