"""``stcal-jump``: the JWST pipeline's up-the-ramp jump detection (stcal two-point difference).

Score of a pixel: the largest two-point-difference significance ``|diff - median| / sigma`` over its
group differences, as stcal computes it on its first pass
(:func:`crbench.stcal_bridge.jump_significance`); pixels that stcal flags although their own
significance is below ``threshold`` (its 4-neighbour flagging, snowball expansion, shower search)
get the score ``threshold``, so ``score >= threshold`` is stcal's own pixel mask. :meth:`jump_flags`
returns stcal's per-group JUMP_DET flags for the ramp metrics (:mod:`crbench.metrics.ramps`).
"""
from __future__ import annotations

import numpy as np

from crbench.detectors.base import Detector
from crbench.errors import DetectorError
from crbench.observation import Observation
from crbench.stcal_bridge import JUMP_DET, detect_jumps, jump_significance, stcal_version


class StcalJumpDetector(Detector):
    """stcal's jump detection on ``obs.ramp``.

    Parameters
    ----------
    threshold : float
        Rejection threshold in sigma (stcal's default 4 for >= 5 groups).
    snowballs : bool
        stcal's snowball expansion (``expand_large_events``).
    showers : bool
        stcal's shower search (``find_showers``).
    flag_4_neighbors : bool
        Flag the 4 neighbours of jumps between 10 and 1000 sigma (stcal's default).
    """

    name = "stcal-jump"
    version = "1"
    requires = ("ramp",)
    score_range = None

    def __init__(self, threshold: float = 4.0, snowballs: bool = False, showers: bool = False,
                 flag_4_neighbors: bool = True) -> None:
        if not np.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"stcal-jump: threshold must be > 0, got {threshold}")
        super().__init__(threshold=float(threshold), snowballs=bool(snowballs), showers=bool(showers),
                         flag_4_neighbors=bool(flag_4_neighbors), stcal_version=stcal_version())
        self._last: tuple[tuple, np.ndarray, np.ndarray] | None = None

    def _run(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        key = _fingerprint(obs)
        if self._last is not None and self._last[0] == key:
            return self._last[1], self._last[2]
        if obs.ramp is None or obs.ramp.shape[0] < 3:
            raise DetectorError(f"detector 'stcal-jump' needs a ramp of >= 3 groups but sample {obs.id!r} has "
                                f"{'none' if obs.ramp is None else obs.ramp.shape[0]}")
        nframes = int(obs.meta.get("nframes", 1))
        sat = obs.saturation - obs.gain if np.isfinite(obs.saturation) else np.inf
        p = self._params
        gdq, _ = detect_jumps(obs.ramp, read_noise=obs.read_noise, nframes=nframes, saturation=sat,
                              threshold=p["threshold"], flag_4_neighbors=p["flag_4_neighbors"],
                              snowballs=p["snowballs"], showers=p["showers"])
        flags = (gdq & JUMP_DET) > 0
        sig = jump_significance(obs.ramp, read_noise=obs.read_noise, nframes=nframes, saturation=sat)
        score = sig.max(axis=0) if sig.shape[0] else np.zeros(obs.shape)
        score = np.where(flags.any(axis=0), np.maximum(score, p["threshold"]), score)
        self._last = (key, flags, score.astype(np.float32))
        return flags, self._last[2]

    def score(self, obs: Observation) -> np.ndarray:
        return self._run(obs)[1].copy()

    def jump_flags(self, obs: Observation) -> np.ndarray:
        """(G, H, W) bool: stcal's JUMP_DET flags (the first group after each detected jump)."""
        return self._run(obs)[0].copy()


def _fingerprint(obs: Observation) -> tuple:
    """Cheap identity of an observation's ramp (score and jump_flags share one stcal run)."""
    ramp = obs.ramp
    if ramp is None:
        return (obs.id, None)
    return (obs.id, ramp.shape, float(np.asarray(ramp[:, ::7, ::5], dtype=np.float64).sum()))
