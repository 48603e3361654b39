"""Simulated builds are identical whichever SIMD kernels numpy and OpenBLAS pick on this CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crbench.portable import digitise, round_table

#: Every simulated recipe that ships (the standard sets and the demo's sim-basic).
SIM_RECIPES = ("sim-basic", "sim-hst-acs-ex", "sim-hst-acs-gc", "sim-hst-acs-gal", "sim-decam",
               "sim-ground-small", "sim-jwst-nircam",
               # the next confuser version (CTE read-out, core-halo PSF), so it can become standard as is
               "sim-hst-acs-gc@v3")

_BUILD_ALL = """
import json, sys, tempfile
from pathlib import Path
from crbench.recipes import build_dataset
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for name in sys.argv[1:]:
        recipe, _, confusers = name.partition("@")
        extra = {"confusers": confusers} if confusers else {}
        ds = build_dataset(recipe, Path(tmp) / name, progress=False, n_images=3, shape=(96, 96), **extra)
        out[name] = ds.content_hash
print(json.dumps(out))
"""


def _hashes(env_extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _BUILD_ALL, *SIM_RECIPES], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _simd_groups() -> list[str]:
    """numpy's dispatchable SIMD groups found on this CPU beyond the build baseline."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__  # type: ignore

    return [g for g in ("X86_V4", "X86_V3", "ASIMDHP", "ASIMDDP", "SVE") if __cpu_features__.get(g)
            and g in __cpu_dispatch__] or ["X86_V4", "X86_V3"]


def test_builds_do_not_depend_on_simd_kernels():
    native = _hashes({})
    scalar = _hashes({"NPY_DISABLE_CPU_FEATURES": " ".join(_simd_groups()), "OPENBLAS_CORETYPE": "Nehalem"})
    assert set(native) == set(SIM_RECIPES)
    differ = {k: (native[k][:12], scalar[k][:12]) for k in native if native[k] != scalar[k]}
    assert not differ, f"content hash moved when numpy's SIMD dispatch was switched off: {differ}"


def test_digitise_rounds_to_multiples_of_the_step():
    x = np.array([0.0, 0.9, 1.1, 2.9, -1.2, 1e6 + 0.3])
    np.testing.assert_array_equal(digitise(x, 2.0), [0.0, 0.0, 2.0, 2.0, -2.0, 1e6])
    with pytest.raises(ValueError, match="step"):
        digitise(x, 0.0)
    with pytest.raises(ValueError, match="step"):
        digitise(x, float("nan"))


def test_round_table_absorbs_last_bit_noise_and_keeps_other_columns():
    t = pd.DataFrame({"id": np.array([1, 2], np.int32), "charge": [1336.1977581800001, np.nan],
                      "morphology": ["spot", "track"], "saturated": [False, True]})
    u = t.copy()
    u["charge"] = [1336.1977581800001 + 4.5e-13, np.nan]
    assert t["charge"][0] != u["charge"][0]
    a, b = round_table(t), round_table(u)
    pd.testing.assert_frame_equal(a, b)
    assert a["charge"][0] == 1336.198 and np.isnan(a["charge"][1])
    assert a["id"].dtype == np.int32 and list(a["morphology"]) == ["spot", "track"]
