"""The detector protocol.

A detector maps an :class:`~crbench.observation.Observation` (what a telescope delivers: image,
companion exposures, ramp, instrument mask and instrument meta; never the truth, ignore mask,
labels or sources) to a float32 score map of the image's shape, higher = more CR-like, finite
everywhere. A detector that only yields yes/no masks subclasses
:class:`SweepDetector`: it declares a parameter sweep ordered from the loosest to the strictest
step, and its score is the number of steps that flag a pixel, so pixels flagged even by the
strictest step rank highest and every detector yields a curve.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Sequence

import numpy as np

from ..errors import DetectorError
from ..observation import Observation

#: Inputs a detector may require.
INPUTS = ("image", "exposures", "ramp")


class Detector:
    """Base class of every detector.

    Subclasses set :attr:`name` and implement :meth:`score`. Keyword arguments of ``__init__``
    are the detector's parameters; store them with :meth:`set_params` so they are recorded in
    results and in the cache key.

    Attributes
    ----------
    name : str
        Registry name.
    version : str
        Bump when the output changes for the same parameters (invalidates cached results).
    requires : tuple of str
        Inputs needed besides nothing: any of ``'image'``, ``'exposures'``, ``'ramp'``.
    score_range : (float, float) or None
        Bounds of the score when known (e.g. ``(0, 1)`` for probabilities): the harness then
        uses linear bins. ``None`` means unbounded (asinh-spaced bins).
    """

    name: ClassVar[str] = "detector"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("image",)
    score_range: ClassVar[tuple[float, float] | None] = None
    #: True when scores are integer counts (sweep detectors): the harness then bins exactly.
    integer_scores: ClassVar[bool] = False
    #: Names of training datasets/splits used (learned detectors); checked by the leaderboard.
    trained_on: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self.set_params(**params)

    def set_params(self, **params: Any) -> None:
        self._params = dict(params)

    def params(self) -> dict[str, Any]:
        """The detector's parameters, JSON-serialisable, as recorded in results."""
        return dict(getattr(self, "_params", {}))

    def params_hash(self) -> str:
        """Short hash of (name, version, parameters): part of the result-cache key."""
        blob = json.dumps({"name": self.name, "version": self.version, "params": self.params()},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def missing_inputs(self, obs: Any) -> list[str]:
        """The inputs this detector requires that ``obs`` (an Observation or a Sample) lacks."""
        out = []
        for need in self.requires:
            if need == "image":
                continue
            arr = getattr(obs, need, None)
            if arr is None or (need == "exposures" and arr.shape[0] < 1):
                out.append(need)
        return out

    def check_inputs(self, obs: Observation) -> None:
        """Raise :class:`DetectorError` if ``obs`` lacks an input this detector requires."""
        for need in self.missing_inputs(obs):
            raise DetectorError(f"detector {self.name!r} requires {need} but sample {obs.id!r} has none")

    def score(self, obs: Observation) -> np.ndarray:  # pragma: no cover - abstract
        """Return a float32 (H, W) score map of ``obs.image``, higher = more CR-like."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class SweepDetector(Detector):
    """A detector that yields binary masks over a parameter sweep.

    Subclasses implement :meth:`sweep_values` (loosest first, strictest last) and
    :meth:`mask`. The score of a pixel is the number of sweep steps that flag it.
    """

    integer_scores = True

    def sweep_values(self) -> Sequence[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def mask(self, obs: Observation, value: float) -> np.ndarray:  # pragma: no cover - abstract
        """Boolean (H, W) CR mask of ``obs`` at sweep step ``value``."""
        raise NotImplementedError

    @property
    def score_range(self) -> tuple[float, float]:  # type: ignore[override]
        return (0.0, float(len(self.sweep_values())))

    def score(self, obs: Observation) -> np.ndarray:
        return masks_to_rank_score(self.mask(obs, v) for v in self.sweep_values())


def masks_to_rank_score(masks) -> np.ndarray:
    """Turn a sequence of binary masks (loosest first) into a rank score.

    A pixel's score is the number of masks that flag it; for nested masks a pixel flagged by
    the strictest (last) mask is flagged by all and so scores highest.
    """
    score = None
    for m in masks:
        m = np.asarray(m, dtype=bool)
        if score is None:
            score = np.zeros(m.shape, dtype=np.float32)
        score += m
    if score is None:
        raise DetectorError("a sweep detector declared an empty sweep")
    return score


def check_score_map(score: Any, obs: Observation, detector_name: str) -> np.ndarray:
    """Validate a detector's output on ``obs`` and return it as float32.

    Raises
    ------
    DetectorError
        If ``score`` is not an array of the image's shape or has NaN/inf values, naming the
        detector and the sample.
    """
    if not isinstance(score, np.ndarray):
        raise DetectorError(f"detector {detector_name!r} returned {type(score).__name__} for sample "
                            f"{obs.id!r}; expected a float32 array of shape {obs.shape}")
    if score.shape != obs.shape:
        raise DetectorError(f"detector {detector_name!r} returned shape {score.shape} for sample "
                            f"{obs.id!r}; expected {obs.shape}")
    if not (np.issubdtype(score.dtype, np.floating) or np.issubdtype(score.dtype, np.integer)
            or score.dtype == bool):
        raise DetectorError(f"detector {detector_name!r} returned dtype {score.dtype} for sample "
                            f"{obs.id!r}; expected float32")
    score = np.asarray(score, dtype=np.float32)
    if not score.flags.writeable:  # e.g. a view of the read-only observation image
        score = score.copy()
    n_bad = int(np.count_nonzero(~np.isfinite(score)))
    if n_bad:
        raise DetectorError(f"detector {detector_name!r} returned {n_bad} NaN or inf values for sample "
                            f"{obs.id!r}; scores must be finite everywhere")
    return score
