"""Builds are identical whichever SIMD kernels numpy and OpenBLAS pick on this CPU (simulated recipes; the real
series' alignment, where the real sets' labelling starts)."""
from __future__ import annotations

import json
import math
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
               # both confuser versions of the ACS recipes (v3 is the standard; v2 the previous standard)
               "sim-hst-acs-gc@v2", "sim-hst-acs-gc@v3",
               # the 12,000 s fields that end the standard sim-ground-small test split (bright sky, saturated hits)
               "sim-ground-small~12000")

_BUILD_ALL = """
import json, sys, tempfile
from pathlib import Path
from crbench.recipes import build_dataset
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for name in sys.argv[1:]:
        recipe, _, confusers = name.partition("@")
        recipe, _, exposure_time = recipe.partition("~")
        extra = {"confusers": confusers} if confusers else {}
        if exposure_time:
            extra["exposure_time"] = float(exposure_time)
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


#: A 10-pixel lattice footprint (two touching CRs on sim-hst-acs-ex test image 0010) whose elongation is
#: exactly 2, the track/worm boundary: np.cov + eigvalsh gave 2.0 with numpy's AVX-512 kernels and
#: 1.9999999999999998 without them, so the standard build's morphology column depended on the CPU.
_TIE = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)

_FEATURES = """
import json, sys
import numpy as np
from crbench.morphology import footprint_features
rng = np.random.default_rng(7)
shapes = [np.array(json.loads(sys.argv[1]), dtype=bool)]
for _ in range(300):
    sub = rng.random((rng.integers(1, 9), rng.integers(1, 9))) < 0.6
    if sub.any():
        shapes.append(sub)
out = []
for sub in shapes:
    f = footprint_features(sub, 0, lazy_for=0.5)
    out.append([repr(f["elongation"]), repr(f["perp"]), f["morphology"]])
print(json.dumps(out))
"""


def _features(env_extra: dict[str, str]) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _FEATURES, json.dumps(_TIE.astype(int).tolist())], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_morphology_features_do_not_depend_on_simd_kernels():
    native = _features({})
    scalar = _features({"NPY_DISABLE_CPU_FEATURES": " ".join(_simd_groups()), "OPENBLAS_CORETYPE": "Nehalem"})
    # the tie's second moments are exactly 1.85 and 0.4 px^2: elongation sqrt((1.85 + 1/12) / (0.4 + 1/12)) = 2,
    # width sqrt(0.4); the tie falls on the exact side (e >= 2: track)
    assert native[0] == ["2.0", repr(round(math.sqrt(0.4), 12)), "track"]
    differ = [i for i, (a, b) in enumerate(zip(native, scalar)) if a != b]
    assert len(native) == len(scalar) > 200 and not differ, f"footprints {differ[:5]} classified differently"


def test_closed_form_moments_agree_with_numpy():
    from crbench.morphology import _second_moment_eigenvalues

    rng = np.random.default_rng(3)
    for _ in range(200):
        ys, xs = np.nonzero(rng.random((12, 12)) < 0.3)
        if ys.size < 2:
            continue
        want = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float), bias=True))[::-1].clip(min=0)
        np.testing.assert_allclose(_second_moment_eigenvalues(ys, xs), want, rtol=1e-12, atol=1e-12)


_BUILD_STANDARD = """
import sys, tempfile
from pathlib import Path
from crbench.recipes import build_dataset
with tempfile.TemporaryDirectory() as tmp:
    print(build_dataset(sys.argv[1], Path(tmp) / "ds", progress=False).content_hash)
"""


@pytest.mark.slow
def test_full_standard_build_matches_its_pin_without_simd_kernels():
    # the small builds above missed the morphology tie that only full-size frames hit (README, "Standard datasets")
    from crbench.standard import pinned

    env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
    env.update({"NPY_DISABLE_CPU_FEATURES": " ".join(_simd_groups()), "OPENBLAS_CORETYPE": "Nehalem"})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _BUILD_STANDARD, "sim-hst-acs-ex"], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pin = pinned("sim-hst-acs-ex")
    assert pin is not None
    assert proc.stdout.strip().splitlines()[-1] == pin["content_hash"]


_REGISTER = """
import json, sys
from pathlib import Path
import numpy as np
from data_recipes.real._common import read_fits_image
from data_recipes.real.labelling.alignment import register_series
files = sorted(Path(sys.argv[1]).glob("HATP-32*.FITS*"))
# frames 14 and 36 of the series against its reference (the middle frame, 71): in float32 their correlation
# peaks rounded to the adjacent 1/20-px step with numpy's AVX-512 kernels switched off
stack = np.stack([read_fits_image(files[i])[0] for i in (14, 36, len(files) // 2)])
print(json.dumps(register_series(stack, reference=2).tolist()))
"""


def _shifts(env_extra: dict[str, str], folder: Path) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _REGISTER, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_real_series_alignment_does_not_depend_on_simd_kernels():
    """The real sets' labelling starts from these shifts: a 0.05-px difference moved the gain fit, every
    image in electrons and the labels (microobs-hatp32 hashed 60636bdb... instead of 909d5405... without
    numpy's SIMD kernels before the correlation ran in float64)."""
    from _mirror import require_mirror

    folder = require_mirror() / "microobs_hatp32"
    native = _shifts({}, folder)
    scalar = _shifts({"NPY_DISABLE_CPU_FEATURES": " ".join(_simd_groups()), "OPENBLAS_CORETYPE": "Nehalem"}, folder)
    assert native == scalar
    # on the 1/20-px grid, stored at float32 precision (as the pinned builds' shifts were)
    assert native[2] == [0.0, 0.0] and all(v == float(np.float32(round(v * 20) / 20)) for row in native for v in row)


_BUILD_TWIN = """
import sys
from pathlib import Path
from crbench.recipes import build_dataset
print(build_dataset("microobs-hatp32-sim", Path(sys.argv[1]), progress=False, n_images=int(sys.argv[2])).content_hash)
"""


@pytest.mark.slow
def test_twin_build_does_not_depend_on_simd_kernels(tmp_path):
    """The twin's per-CR charge differed in the last bits (7.7e-12 e-) with and without numpy's SIMD kernels, so
    the full build hashed aabf1aa7... with AVX-512 and b8ff1a9f... without; its table is rounded now."""
    from _mirror import require_mirror

    mirror = require_mirror()

    def build(tag: str, extra: dict[str, str]) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
        env.update(extra)
        env.update({"CRBENCH_MIRROR": str(mirror), "CRBENCH_DATA_DIR": str(tmp_path / "data"),
                    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])})
        proc = subprocess.run([sys.executable, "-c", _BUILD_TWIN, str(tmp_path / tag), "40"], env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.strip().splitlines()[-1]

    native = build("native", {})
    assert native == build("scalar", {"NPY_DISABLE_CPU_FEATURES": " ".join(_simd_groups()),
                                      "OPENBLAS_CORETYPE": "Nehalem"})
