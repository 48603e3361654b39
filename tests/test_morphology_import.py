"""scikit-image is a hard dependency of :mod:`crbench.morphology`: tortuosity must never degrade silently."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from crbench.morphology import footprint_features

MORPHOLOGY_PY = Path(__file__).resolve().parents[1] / "crbench" / "morphology.py"


def test_tortuosity_of_straight_track_is_one() -> None:
    sub = np.zeros((3, 12), bool)
    sub[1, 1:11] = True  # 10-pixel straight track: skeleton length 9 = L - 1
    tau = footprint_features(sub)["tortuosity"]
    assert np.isfinite(tau) and tau == pytest.approx(1.0)


def test_tortuosity_of_bent_track_exceeds_track_limit() -> None:
    sub = np.zeros((12, 12), bool)
    sub[1, 1:11] = True
    sub[1:11, 10] = True  # L-shaped: skeleton ~18 px over a Feret span of ~12.7 px
    tau = footprint_features(sub)["tortuosity"]
    assert np.isfinite(tau) and tau > 1.3


def test_missing_scikit_image_is_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without scikit-image the module must refuse to import, not fall back to tau = 1."""
    monkeypatch.setitem(sys.modules, "skimage.morphology", None)  # makes the import raise ImportError
    spec = importlib.util.spec_from_file_location("crbench._morphology_probe", MORPHOLOGY_PY,
                                                  submodule_search_locations=None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "crbench"
    with pytest.raises(ImportError):
        spec.loader.exec_module(module)
