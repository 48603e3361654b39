"""JWST NIRCam-like up-the-ramp exposures: frames averaged into groups, CR jumps, per-group truth.

Readout (``docs/physics.md#nircam-readout-patterns``): a ramp is ``n_groups`` groups; each group
is the mean of ``nframes`` consecutive frames, followed by ``groupgap`` frames that are read and
dropped (:data:`READOUT_PATTERNS`). Frame ``j`` (0-based, gaps included) is read at
``(j + 1) * frame_time`` after the reset.

Per read frame the simulator adds, in e-:

- the accumulated photo- and dark charge (Poisson increments between read frames);
- the CR charge that has arrived by then: a CR arriving at time ``t0`` is a step at ``t0``; the
  non-saturated (halo) pixels of a **snowball** collect their charge linearly over a spread time
  of 1-2 group times after ``t0`` (the halo grows in later groups; simple model, UNSOURCED
  duration); the saturated core is a step;
- a **shower** (:func:`add_showers`): a faint extended round deposit (Gaussian, sigma 8-20 px,
  0.5-3 sigma of a group difference at its centre) arriving as a step; simple model;
- nonlinearity: ``s - NONLIN_C * s^2 / saturation`` (5% deficit at full well; simple model), then
  clipping at full well;
- read noise per frame (Gaussian, the preset's ``read_noise``);
- 1/f noise: per frame, a row offset (common to all columns) with a 1/f power spectrum over the
  rows, ``ONEF_SIGMA`` e- rms (simple model of the horizontal banding);
- reference-pixel noise: per frame and per 512-column amplifier (4 amplifiers across the
  detector, scaled to the cutout width), a Gaussian offset of ``REFPIX_SIGMA`` e- left after
  reference-pixel correction (simple model).

IPC is in the CR charge (:func:`data_recipes.sim.physics.simulate_crs`); the scene is PSF-smooth,
so its IPC is neglected.

Truth per group difference ``k`` (between groups ``k`` and ``k + 1``): the CR charge that appears
between the two groups (the group means of the CR contribution, differenced) over the expected
sigma of a group difference without the CR, ``sqrt(2 rn^2 / nframes + rate * group_time)``
(+inf where the CR saturates the pixel), passed through the library's truth rule
(:func:`crbench.truth.apply_truth_rule`) on the pixels that received CR charge. A CR that arrives
before the first read is in every group: no difference sees it and it is no truth (counted in
``meta['crs_before_first_read']``). The rate-image truth is every pixel that is truth in at least
one group difference; the halo is the union of the per-difference halos minus the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crbench.errors import CRBenchError
from crbench.truth import TruthRule, apply_truth_rule

from .physics import LABEL_FLOOR_E, CRLayer
from .presets import InstrumentPreset

#: name -> (nframes per group, groupgap frames dropped after each group, max groups); JDox
#: "NIRCam Detector Readout Patterns" (docs/physics.md#nircam-readout-patterns).
READOUT_PATTERNS: dict[str, tuple[int, int, int]] = {
    "RAPID": (1, 0, 10),
    "BRIGHT1": (1, 1, 10),
    "BRIGHT2": (2, 0, 10),
    "SHALLOW2": (2, 3, 10),
    "SHALLOW4": (4, 1, 10),
    "MEDIUM2": (2, 8, 10),
    "MEDIUM8": (8, 2, 10),
    "DEEP2": (2, 18, 20),
    "DEEP8": (8, 12, 20),
}
#: Full-frame NIRCam frame time (s), JDox readout patterns page.
FRAME_TIME_FULL = 10.73677
#: Nonlinearity: fractional signal deficit at full well (simple quadratic model, UNSOURCED).
NONLIN_C = 0.05
#: 1/f row-offset noise per frame, e- rms (simple model, UNSOURCED).
ONEF_SIGMA = 2.0
#: Residual reference-pixel (per amplifier, per frame) offset noise, e- rms (simple model, UNSOURCED).
REFPIX_SIGMA = 1.0
#: Snowball halo spread time, in group times (uniform between these; UNSOURCED).
SNOWBALL_SPREAD_GROUPS = (1.0, 2.0)


@dataclass(frozen=True)
class Readout:
    """A readout pattern with its group count and frame time."""

    pattern: str
    n_groups: int
    frame_time: float = FRAME_TIME_FULL

    def __post_init__(self) -> None:
        if self.pattern not in READOUT_PATTERNS:
            raise CRBenchError(f"readout pattern {self.pattern!r} is unknown; expected one of "
                               f"{', '.join(READOUT_PATTERNS)}")
        if not 3 <= self.n_groups <= READOUT_PATTERNS[self.pattern][2]:
            raise CRBenchError(f"readout pattern {self.pattern}: n_groups must be 3..{READOUT_PATTERNS[self.pattern][2]}, "
                               f"got {self.n_groups}")

    @property
    def nframes(self) -> int:
        return READOUT_PATTERNS[self.pattern][0]

    @property
    def groupgap(self) -> int:
        return READOUT_PATTERNS[self.pattern][1]

    @property
    def group_time(self) -> float:
        """Time between the starts of consecutive groups (s)."""
        return (self.nframes + self.groupgap) * self.frame_time

    @property
    def n_frame_slots(self) -> int:
        """Frames from reset to the last read (gaps included, none after the last group)."""
        return self.n_groups * (self.nframes + self.groupgap) - self.groupgap

    @property
    def total_time(self) -> float:
        return self.n_frame_slots * self.frame_time

    @property
    def effective_time(self) -> float:
        """(n_groups - 1) x group_time: the time the fitted slope is multiplied by for the rate image."""
        return (self.n_groups - 1) * self.group_time

    def group_frames(self) -> list[np.ndarray]:
        """Frame indices averaged into each group."""
        step = self.nframes + self.groupgap
        return [np.arange(k * step, k * step + self.nframes) for k in range(self.n_groups)]

    def read_times(self) -> np.ndarray:
        """(n_groups, nframes) read times (s) after the reset."""
        return (np.stack(self.group_frames()) + 1) * self.frame_time

    def meta(self) -> dict:
        return {"readout_pattern": self.pattern, "ramp_groups": int(self.n_groups), "nframes": self.nframes,
                "groupgap": self.groupgap, "frame_time": float(self.frame_time),
                "group_time": float(self.group_time)}


@dataclass
class RampSim:
    """A simulated ramp: ``groups`` (G, H, W) float32 e-, ``cr_groups`` (G, H, W) the CR part of
    each group (before nonlinearity and noise), ``jumps`` (G-1, H, W) bool per-difference truth,
    ``halo`` (H, W) bool, ``truth`` (H, W) bool rate-image truth, ``before_first_read`` ids of CRs
    that arrived before the first read."""

    groups: np.ndarray
    cr_groups: np.ndarray
    jumps: np.ndarray
    truth: np.ndarray
    halo: np.ndarray
    before_first_read: np.ndarray


def full_well(preset: InstrumentPreset, nonlin: float = NONLIN_C) -> float:
    """The largest value a read can show (e-): the preset's full well after nonlinearity."""
    return float(preset.saturation * (1.0 - nonlin))


def _onef_rows(rng: np.random.Generator, n: int, h: int, sigma: float) -> np.ndarray:
    """(n, h) row offsets with a 1/f power spectrum, ``sigma`` rms."""
    if sigma <= 0:
        return np.zeros((n, h))
    f = np.fft.rfftfreq(h)
    amp = np.zeros_like(f)
    amp[1:] = 1.0 / np.sqrt(f[1:])
    spec = amp * (rng.normal(size=(n, len(f))) + 1j * rng.normal(size=(n, len(f))))
    rows = np.fft.irfft(spec, n=h, axis=1)
    std = rows.std(axis=1, keepdims=True)
    return rows / np.where(std > 0, std, 1.0) * sigma


def cr_arrival(cr: CRLayer, readout: Readout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel CR arrival time (s; +inf where no CR) and charge-collection duration (s; 0 = a step).

    The owning instance's ``time`` (fraction of the ramp) sets the arrival; snowball halo pixels
    (not saturated) collect over :data:`SNOWBALL_SPREAD_GROUPS` group times.
    """
    t0 = np.full(cr.charge.shape, np.inf)
    dur = np.zeros(cr.charge.shape)
    inst = cr.instances
    if not len(inst):
        return t0, dur
    ids = inst["id"].to_numpy()
    times = inst["time"].to_numpy(dtype=float) * readout.total_time
    spread = np.where(inst["generator"].to_numpy() == "snowball",
                      rng.uniform(*SNOWBALL_SPREAD_GROUPS, len(inst)) * readout.group_time, 0.0)
    lut_t = np.full(int(ids.max()) + 1, np.inf)
    lut_d = np.zeros(int(ids.max()) + 1)
    lut_t[ids] = times
    lut_d[ids] = spread
    lab = cr.labels
    sel = lab > 0
    t0[sel] = lut_t[lab[sel]]
    dur[sel] = np.where(cr.saturated[sel], 0.0, lut_d[lab[sel]])
    return t0, dur


def cr_fraction(t: float, t0: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Fraction of each pixel's CR charge collected by time ``t`` (step, or linear over ``dur``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        lin = np.clip((t - t0) / np.where(dur > 0, dur, 1.0), 0.0, 1.0)
    return np.where(dur > 0, lin, (t > t0).astype(float))


def simulate_ramp(rng: np.random.Generator, rate: np.ndarray, preset: InstrumentPreset, cr: CRLayer,
                  readout: Readout, rule: TruthRule, *, onef_sigma: float = ONEF_SIGMA,
                  refpix_sigma: float = REFPIX_SIGMA, nonlin: float = NONLIN_C) -> RampSim:
    """Simulate one ramp and its per-group truth (see module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
    rate : ndarray (H, W)
        Expected photo- plus dark current, e-/s.
    preset : InstrumentPreset
        Read noise and full well.
    cr : CRLayer
        The ramp's CRs (``instances['time']`` = arrival as a fraction of the ramp).
    readout : Readout
    rule : TruthRule

    Returns
    -------
    RampSim
    """
    h, w = rate.shape
    g, nf = readout.n_groups, readout.nframes
    rate = np.maximum(np.asarray(rate, dtype=float), 0.0)
    t0, dur = cr_arrival(cr, readout, rng)
    reads = readout.read_times()
    n_amp = max(1, int(round(4 * w / 2048)))
    amp_of_col = np.minimum(np.arange(w) * n_amp // w, n_amp - 1)
    groups = np.zeros((g, h, w))
    cr_groups = np.zeros((g, h, w))
    acc = np.zeros((h, w))
    t_prev = 0.0
    for k in range(g):
        onef = _onef_rows(rng, nf, h, onef_sigma)
        for i in range(nf):
            t = reads[k, i]
            acc += rng.poisson(rate * (t - t_prev))
            t_prev = t
            crq = cr.charge * cr_fraction(t, t0, dur)
            s = acc + crq
            s = np.minimum(s, preset.saturation)
            s = s - nonlin * s * s / preset.saturation
            frame = s + rng.normal(0.0, preset.read_noise, (h, w)) + onef[i][:, None]
            frame += rng.normal(0.0, refpix_sigma, n_amp)[amp_of_col][None, :]
            frame = np.minimum(frame, full_well(preset, nonlin))
            groups[k] += frame / nf
            cr_groups[k] += crq / nf
    jump_q = np.diff(cr_groups, axis=0)
    sigma = np.sqrt(2 * preset.read_noise**2 / nf + rate * readout.group_time + onef_sigma**2 + refpix_sigma**2)
    present = cr.labels > 0
    jumps = np.zeros((g - 1, h, w), bool)
    halo = np.zeros((h, w), bool)
    for k in range(g - 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            sig = jump_q[k] / sigma
        sig = np.where(cr.saturated & present & (jump_q[k] >= LABEL_FLOOR_E), np.inf, sig)
        tk, hk = apply_truth_rule(sig, present & (jump_q[k] >= LABEL_FLOOR_E), rule)
        jumps[k] = tk
        halo |= hk
    truth = np.asarray(jumps.any(axis=0))
    first_read = reads[0, 0]
    inst = cr.instances
    early = inst["id"].to_numpy()[inst["time"].to_numpy(dtype=float) * readout.total_time < first_read] \
        if len(inst) else np.zeros(0, np.int32)
    return RampSim(groups=groups.astype(np.float32), cr_groups=cr_groups, jumps=jumps, truth=truth,
                   halo=halo & ~truth, before_first_read=np.asarray(early, dtype=np.int32))


def add_showers(rng: np.random.Generator, cr: CRLayer, rate_per_s: float, readout: Readout,
                diff_sigma: float) -> CRLayer:
    """Add showers to ``cr`` in place of nothing: faint extended round deposits (simple model).

    Each shower is a Gaussian of sigma 8-20 px whose centre pixel gets 0.5-3 x ``diff_sigma`` e-,
    arriving at a uniform time; it owns the pixels where it adds >= 1 e- and no other CR
    does. ``rate_per_s`` is showers per second over the frame.
    """
    h, w = cr.charge.shape
    n = int(rng.poisson(rate_per_s * readout.total_time))
    if n == 0:
        return cr
    import pandas as pd

    charge, labels = cr.charge.copy(), cr.labels.copy()
    next_id = int(max(labels.max(), cr.instances["id"].max() if len(cr.instances) else 0)) + 1
    rows = []
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n):
        xc, yc = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(8.0, 20.0)
        peak = rng.uniform(0.5, 3.0) * diff_sigma
        q = peak * np.exp(-((xx + 0.5 - xc) ** 2 + (yy + 0.5 - yc) ** 2) / (2 * s * s))
        charge += q
        own = (q >= LABEL_FLOOR_E) & (labels == 0)
        labels[own] = next_id
        rows.append({"id": next_id, "morphology": "unclassified", "generator": "shower", "pixels": int(own.sum()),
                     "charge": float(q[own].sum()), "saturated": False, "time": float(rng.random()),
                     "x": xc, "y": yc, "length_px": 2 * s, "theta_deg": np.nan, "deposit": float(q.sum())})
        next_id += 1
    inst = pd.concat([cr.instances, pd.DataFrame(rows)], ignore_index=True) if len(cr.instances) else pd.DataFrame(rows)
    return CRLayer(charge=charge, labels=labels, instances=inst, saturated=cr.saturated, preset=cr.preset,
                   exptime=cr.exptime)
