"""Detector defects that look like cosmic rays to a single-frame detector.

Real CCD frames carry sharp features that are not cosmic rays. Two kinds live in the detector and
are drawn here, once per field (all exposures of a field share them, as the exposures of one visit
share a detector; docs/physics.md#confusers):

``hot``    pixels whose dark current is above the calibration's flag threshold. The pipeline flags
           them in the data-quality array, so they are ``DQ_HOT`` in the instrument mask a detector
           sees, and evaluation ignores them (deepCR's protocol ignores DQ-flagged pixels:
           docs/anchors.md#deepcr-data).
``warm``   pixels whose dark current is below that threshold, so nothing flags them; dark subtraction
           leaves a residual that changes between calibrations. They are single sharp pixels in every
           exposure: a multi-exposure comparison ignores them, a Laplacian edge detector does not.
``column`` bad columns: a stretch of a column with excess dark current, flagged ``DQ_OTHER`` and
           ignored by evaluation.

Sharp *astronomical* confusers (compact star-forming knots and HII regions in resolved galaxies)
belong to the scene (:mod:`data_recipes.sim.scenes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crbench.errors import CRBenchError
from crbench.observation import DQ_HOT, DQ_OTHER


@dataclass(frozen=True)
class DefectModel:
    """Rates of the detector defects of one instrument preset.

    Parameters
    ----------
    hot_fraction : float
        Fraction of pixels flagged hot.
    hot_rate : (float, float)
        Range (e-/s) of a hot pixel's excess dark current, drawn log-uniformly.
    warm_fraction : float
        Fraction of pixels with an unflagged residual dark current.
    warm_rate : (float, float)
        Range (e-/s) of a warm pixel's residual dark current, drawn log-uniformly.
    columns_per_mpix : float
        Mean number of flagged bad column segments per megapixel.
    column_rate : float
        Excess dark current (e-/s) along a bad column segment.
    """

    hot_fraction: float = 0.0
    hot_rate: tuple[float, float] = (0.08, 1.0)
    warm_fraction: float = 0.0
    warm_rate: tuple[float, float] = (0.01, 0.08)
    columns_per_mpix: float = 0.0
    column_rate: float = 0.05

    def __post_init__(self) -> None:
        for name in ("hot_fraction", "warm_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 0.5:
                raise CRBenchError(f"DefectModel.{name} must be in [0, 0.5), got {v!r}")
        for name in ("hot_rate", "warm_rate"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise CRBenchError(f"DefectModel.{name} must be 0 < low <= high e-/s, got {(lo, hi)!r}")
        if self.columns_per_mpix < 0 or self.column_rate < 0:
            raise CRBenchError("DefectModel.columns_per_mpix and column_rate must be >= 0")

    def to_dict(self) -> dict[str, object]:
        """Plain values for the dataset card."""
        return {"hot_fraction": self.hot_fraction, "hot_rate_e_per_s": list(self.hot_rate),
                "warm_fraction": self.warm_fraction, "warm_rate_e_per_s": list(self.warm_rate),
                "columns_per_mpix": self.columns_per_mpix, "column_rate_e_per_s": self.column_rate}


@dataclass(frozen=True)
class Defects:
    """The defects of one field: excess dark charge per exposure (e-) and the instrument flags."""

    dark: np.ndarray
    dq: np.ndarray

    @property
    def flagged(self) -> np.ndarray:
        """Pixels the instrument mask flags (hot pixels and bad columns)."""
        return self.dq != 0


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def draw_defects(rng: np.random.Generator, shape: tuple[int, int], model: DefectModel,
                 exptime: float) -> Defects:
    """Draw the hot, warm and bad-column pixels of one field.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
    model : DefectModel
    exptime : float
        Exposure time (s); the excess charge is rate x time.

    Returns
    -------
    Defects
    """
    h, w = int(shape[0]), int(shape[1])
    n = h * w
    dark = np.zeros(n)
    dq = np.zeros(n, np.uint8)
    n_hot = int(rng.binomial(n, model.hot_fraction))
    n_warm = int(rng.binomial(n, model.warm_fraction))
    picks = rng.choice(n, size=n_hot + n_warm, replace=False) if n_hot + n_warm else np.zeros(0, np.int64)
    hot, warm = picks[:n_hot], picks[n_hot:]
    dark[hot] = _log_uniform(rng, *model.hot_rate, n_hot) * exptime
    dq[hot] = DQ_HOT
    dark[warm] = _log_uniform(rng, *model.warm_rate, n_warm) * exptime
    dark2, dq2 = dark.reshape(h, w), dq.reshape(h, w)
    n_col = int(rng.poisson(model.columns_per_mpix * n / 1e6))
    for _ in range(n_col):
        x = int(rng.integers(0, w))
        y0 = int(rng.integers(0, h))
        length = int(rng.integers(max(1, h // 8), h + 1))
        dark2[y0:y0 + length, x] += model.column_rate * exptime
        dq2[y0:y0 + length, x] |= DQ_OTHER
    return Defects(dark=dark2, dq=dq2)
