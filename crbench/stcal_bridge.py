"""Thin wrappers around stcal (the JWST ramp library, optional extra ``jwst``): jump detection and
ramp fitting on one (G, H, W) ramp in electrons.

Conventions (checked against stcal 1.20's source): data go in with ``gain = 1`` (electrons);
stcal's two-point difference uses ``sigma = sqrt(|median diff| + rn^2 / nframes)`` for a group
difference, i.e. ``rn`` is the noise of a difference of two single reads (CDS noise), so the
per-read noise is passed times sqrt(2). Ramp fitting (``OLS_C``, optimal weighting) gets the
per-read noise. GROUPDQ bits are JWST's: 1 DO_NOT_USE, 2 SATURATED, 4 JUMP_DET.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .errors import CRBenchError

DQFLAGS = {"GOOD": 0, "DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "DROPOUT": 8, "PERSISTENCE": 1024,
           "NO_GAIN_VALUE": 2**19, "UNRELIABLE_SLOPE": 2**24, "CHARGELOSS": 2**7, "REFERENCE_PIXEL": 2**31}
JUMP_DET = DQFLAGS["JUMP_DET"]
SATURATED = DQFLAGS["SATURATED"]


class StcalMissingError(CRBenchError, ImportError):
    """stcal is not installed."""


def stcal_version() -> str:
    """The installed stcal version (raises :class:`StcalMissingError` without it)."""
    try:
        import stcal
    except ImportError as exc:
        raise StcalMissingError("stcal is not installed; install the jwst extra: pip install -e '.[jwst]'") from exc
    return str(getattr(stcal, "__version__", "unknown"))


def _quiet() -> None:
    for name in ("stcal", "stcal.jump", "stcal.ramp_fitting"):
        logging.getLogger(name).setLevel(logging.WARNING)


def saturated_groups(ramp: np.ndarray, saturation: float, tolerance: float = 0.0) -> np.ndarray:
    """(G, H, W) bool: groups at or above ``saturation - tolerance`` and every group after one."""
    sat = np.asarray(ramp) >= float(saturation) - float(tolerance)
    return np.logical_or.accumulate(sat, axis=0)


def detect_jumps(ramp: np.ndarray, *, read_noise: float, nframes: int, saturation: float = np.inf,
                 threshold: float = 4.0, flag_4_neighbors: bool = True, snowballs: bool = False,
                 showers: bool = False) -> tuple[np.ndarray, int]:
    """stcal's two-point-difference jump detection on one ramp.

    Parameters
    ----------
    ramp : ndarray (G, H, W)
        Group values in e-.
    read_noise : float
        Per-read noise (e-).
    nframes : int
        Frames averaged per group.
    saturation : float
        Full well (e-): groups at or above it are flagged SATURATED first.
    threshold : float
        Rejection threshold (sigma) for ramps of >= 5 groups (stcal's 3- and 4-group thresholds
        are raised by the same amount over its defaults 6 and 5).
    flag_4_neighbors, snowballs, showers : bool
        stcal's neighbour flagging, snowball expansion (``expand_large_events``) and shower search.

    Returns
    -------
    gdq : ndarray (G, H, W) uint8
        GROUPDQ (``JUMP_DET`` marks the first group after a jump).
    n_primary : int
        Primary jumps stcal counted.
    """
    stcal_version()
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData

    _quiet()
    ramp = np.asarray(ramp, dtype=np.float32)
    g, h, w = ramp.shape
    gdq = np.zeros((1, g, h, w), np.uint8)
    gdq[0][saturated_groups(ramp, saturation)] = SATURATED
    jd = JumpData(gain2d=np.ones((h, w), np.float32),
                  rnoise2d=np.full((h, w), float(read_noise) * np.sqrt(2.0), np.float32), dqflags=DQFLAGS)
    jd.nframes = int(nframes)
    jd.dt_group = np.ones(1)
    jd.n_reads_groupdiff = np.ones(1) * 2 * int(nframes)
    jd.max_cores = "1"
    extra = float(threshold) - 4.0
    jd.set_detection_settings(float(threshold), 6.0 + extra, 5.0 + extra, 1000.0, 10.0, bool(flag_4_neighbors))
    jd.expand_large_events = bool(snowballs)
    jd.find_showers = bool(showers)
    jd.init_arrays_from_arrays(ramp[None].copy(), gdq, np.zeros((h, w), np.uint32))
    out, _, n_primary, _ = detect_jumps_data(jd)
    return np.asarray(out[0], dtype=np.uint8), int(n_primary)


def jump_significance(ramp: np.ndarray, *, read_noise: float, nframes: int, saturation: float = np.inf) -> np.ndarray:
    """(G-1, H, W) two-point-difference significance ``|diff - median| / sigma`` as stcal computes it
    on its first pass (median over the unsaturated differences, largest dropped; ``sigma`` from the
    median and the read noise); 0 on differences touching a saturated group."""
    ramp = np.asarray(ramp, dtype=np.float64)
    diffs = np.diff(ramp, axis=0)
    sat = saturated_groups(ramp, saturation)
    bad = sat[1:] | sat[:-1]
    d = np.where(bad, np.nan, diffs)
    n_ok = np.sum(~bad, axis=0)
    # stcal drops the largest difference before the median when there are enough differences
    srt = np.sort(np.where(np.isnan(d), -np.inf, d), axis=0)  # NaNs first
    g1 = d.shape[0]
    idx = np.arange(g1)[:, None, None]
    valid = idx >= (g1 - n_ok)[None]
    keep = valid & (idx < g1 - 1)  # drop the largest valid value
    keep = np.where((n_ok >= 3)[None], keep, valid)
    med = np.nanmedian(np.where(keep, srt, np.nan), axis=0) if g1 else np.zeros(ramp.shape[1:])
    med = np.nan_to_num(med)
    sigma = np.sqrt(np.abs(med) + 2.0 * read_noise**2 / nframes)
    sigma = np.where(sigma > 0, sigma, np.inf)
    return np.nan_to_num(np.abs(d - med[None]) / sigma[None], nan=0.0)


def fit_rate(ramp: np.ndarray, *, read_noise: float, group_time: float, frame_time: float, nframes: int,
             groupgap: int, saturation: float = np.inf, jumps: np.ndarray | None = None) -> np.ndarray:
    """stcal OLS_C ramp fit of one ramp: the slope (e-/s, NaN-free: 0 where no fit).

    Parameters
    ----------
    ramp : ndarray (G, H, W)
        Group values in e-.
    jumps : ndarray (G, H, W) bool, or None
        Groups to flag JUMP_DET (the first group after each jump); None fits without jump flags.
    """
    stcal_version()
    from stcal.ramp_fitting.ramp_fit import ramp_fit_data
    from stcal.ramp_fitting.ramp_fit_class import RampData

    _quiet()
    ramp = np.asarray(ramp, dtype=np.float32)
    g, h, w = ramp.shape
    gdq = np.zeros((1, g, h, w), np.uint8)
    gdq[0][saturated_groups(ramp, saturation)] = SATURATED
    if jumps is not None:
        jumps = np.asarray(jumps, bool)
        if jumps.shape != ramp.shape:
            raise CRBenchError(f"fit_rate: jump flags have shape {jumps.shape}, expected {ramp.shape}")
        gdq[0][jumps] |= JUMP_DET
    rd = RampData()
    rd.set_arrays(ramp[None].copy(), gdq, np.zeros((h, w), np.uint32), np.zeros((h, w), np.float32))
    rd.set_meta("NIRCAM", float(frame_time), float(group_time), int(groupgap), int(nframes))
    rd.set_dqflags(DQFLAGS)
    info: Any
    info, _, _ = ramp_fit_data(rd, False, np.full((h, w), float(read_noise), np.float32),
                               np.ones((h, w), np.float32), "OLS_C", "optimal", "none")
    slope = info["slope"] if isinstance(info, dict) else info[0]
    return np.nan_to_num(np.asarray(slope, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
