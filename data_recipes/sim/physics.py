"""Physical cosmic-ray model: events, energy deposit, diffusion, rasterisation, saturation.

Pure numpy and vectorised over events. The model, per generator:

``muon``
    Minimum-ionising particle on a straight 3-D path through the sensitive slab. Incidence
    isotropic in space (cos(theta) = sqrt(U)) or cos^3-weighted on the ground
    (cos(theta) = U^(1/4)); the azimuth is uniform. The event's total charge is drawn from a
    Moyal (Landau approximation) with location at the thickness-dependent most probable value
    (docs/physics.md#landau-most-probable-values: ~52 e-/um at 5 um ... 73 e-/um at 300 um) and width from the Landau xi; the
    charge is shared along the path by per-step Moyal draws, so tracks fluctuate along their length.
``electron``
    Low-energy electron (Compton recoil / beta) on a multiply scattered 3-D random walk of range
    0.032 E[keV]^1.67 um (docs/physics.md#electron-worms); energy from a power law E^-1.5 between 50 and 500 keV
    (UNSOURCED); deposit rising towards the end of the range; stops when it leaves the slab.
``alpha``
    2-6 MeV alpha entering from the front surface: short dense straight path (range ~25 um at
    5 MeV), Bragg-like deposit, usually saturating: round star-like spots.
``snowball``
    IR-only large charge deposit: saturated disc core plus a diffuse halo.

Every deposit point is spread by charge diffusion with sigma(z) = sigma_max sqrt(z / t) (z =
depth from the collecting side) and integrated exactly over the pixel grid (erf differences of
the Gaussian in x and y, normalised in a window of +-3 sigma_max). IR presets then get
inter-pixel capacitance; CCD presets saturate and bleed along columns; IR pixels clip at full well.

Truth rule
----------
The significance of a pixel is the CR charge it received over the local noise sigma (the expected
per-pixel noise of the image without the CR: sqrt(read_noise^2 + sky + source + dark) in e-;
saturated CR pixels are infinitely significant). Truth and halo follow the library's one truth rule
(:func:`crbench.truth.apply_truth_rule`, default :data:`TRUTH_RULE` = seed 5 sigma, growth into
2.5 sigma, 8-connected; halo = other CR pixels above 1 sigma), see :meth:`CRLayer.truth_and_halo`.
``labels`` in :class:`CRLayer` mark every pixel that received at least ``LABEL_FLOOR_E`` (1 e-) and
the instance owning it (the event that deposited most charge there).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import erf

from crbench.errors import CRBenchError
from crbench.truth import DEFAULT_RULE, TruthRule, apply_truth_rule

from .presets import InstrumentPreset, get_preset

#: The truth rule of simulated samples (see module docstring).
TRUTH_RULE: TruthRule = DEFAULT_RULE
#: A pixel "received CR charge" (gets a label) at or above this many electrons.
LABEL_FLOOR_E = 1.0
#: Maximum incidence angle simulated (deg); beyond it tracks are clipped to this angle.
THETA_MAX_DEG = 87.0
#: Electron energy spectrum: dN/dE ~ E^-ELECTRON_SLOPE between these limits (keV); UNSOURCED.
ELECTRON_E_KEV = (50.0, 500.0)
ELECTRON_SLOPE = 1.5
#: Alpha energies (MeV), uniform; UNSOURCED (U/Th chain alphas are 4-9 MeV, degraded by material).
ALPHA_E_MEV = (2.0, 6.0)
#: Electron-hole pair energy in silicon (eV).
PAIR_EV = 3.65
#: Landau width parameter xi in silicon, e- per um: 0.1535 MeV cm^2/g x Z/A x rho / 3.65 eV.
XI_E_PER_UM = 0.1535e6 * (14.0 / 28.0855) * 2.329 * 1e-4 / PAIR_EV
#: Most probable energy loss per um versus path length (docs/physics.md#landau-most-probable-values table), e-/um.
_MPV_TABLE_UM = np.array([1.0, 5.0, 16.0, 100.0, 300.0, 1000.0])
_MPV_TABLE_E = np.array([45.0, 52.5, 58.5, 68.0, 73.0, 76.0])
GENERATORS = ("muon", "electron", "alpha", "snowball")
_CHUNK_POINTS = 150_000


def mpv_per_um(length_um: np.ndarray | float) -> np.ndarray:
    """Most probable deposit per um of silicon for a path of ``length_um`` (log-interpolated)."""
    length = np.clip(np.asarray(length_um, dtype=float), _MPV_TABLE_UM[0], _MPV_TABLE_UM[-1])
    return np.interp(np.log(length), np.log(_MPV_TABLE_UM), _MPV_TABLE_E)


def moyal(rng: np.random.Generator, loc: np.ndarray | float, scale: np.ndarray | float,
          size: Any = None) -> np.ndarray:
    """Draw from the Moyal distribution (location = most probable value) by inverse transform.

    The Moyal CDF is erfc(exp(-u/2)/sqrt 2) for u = (x - loc)/scale, so
    x = loc - 2 scale ln(sqrt(2) erfcinv(U)).
    """
    from scipy.special import erfcinv

    u = rng.random(size if size is not None else np.broadcast(np.asarray(loc), np.asarray(scale)).shape)
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return np.asarray(loc) - 2.0 * np.asarray(scale) * np.log(np.sqrt(2.0) * erfcinv(u))


@dataclass
class _Points:
    """Deposit points: position (px, continuous, pixel i spans [i, i+1)), depth z (um), charge, event."""

    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    z: list = field(default_factory=list)
    q: list = field(default_factory=list)
    ev: list = field(default_factory=list)
    sig: list = field(default_factory=list)  # extra diffusion sigma in px (snowball halo), added in quadrature

    def add(self, x, y, z, q, ev, sig=None) -> None:
        self.x.append(np.asarray(x, float).ravel())
        self.y.append(np.asarray(y, float).ravel())
        self.z.append(np.asarray(z, float).ravel())
        self.q.append(np.asarray(q, float).ravel())
        self.ev.append(np.asarray(ev, np.int64).ravel())
        n = self.x[-1].size
        self.sig.append(np.zeros(n) if sig is None else np.broadcast_to(np.asarray(sig, float), (n,)).copy())

    def arrays(self):
        if not self.x:
            e = np.zeros(0)
            return e, e, e, e, np.zeros(0, np.int64), e
        return tuple(np.concatenate(a) for a in (self.x, self.y, self.z, self.q, self.ev, self.sig))


@dataclass
class CRLayer:
    """The cosmic-ray charge of one exposure, with per-pixel ownership and per-event table.

    Attributes
    ----------
    charge : ndarray, float64, (H, W)
        CR charge in e- after diffusion, IPC and saturation/bleeding.
    labels : ndarray, int32, (H, W)
        Id of the instance owning each pixel that received >= ``LABEL_FLOOR_E`` e-; 0 = none.
    instances : DataFrame
        One row per event that reached the frame: ``id, morphology, generator, pixels, charge,
        saturated`` plus ``time`` (arrival as a fraction of the exposure), ``theta_deg``,
        ``length_px`` (projected path length), ``x``, ``y`` (start position, px).
    saturated : ndarray of bool, (H, W)
        Pixels at full well (CR charge plus background), including bleed trails.
    preset : str
        Preset name.
    exptime : float
        Exposure time (s).
    """

    charge: np.ndarray
    labels: np.ndarray
    instances: pd.DataFrame
    saturated: np.ndarray
    preset: str = ""
    exptime: float = 0.0

    def significance(self, noise_sigma: np.ndarray | float) -> np.ndarray:
        """CR charge over the local noise sigma (+inf on saturated CR pixels, 0 where no CR).

        Parameters
        ----------
        noise_sigma : float or ndarray (H, W)
            Expected per-pixel noise of the image without the CR (e-).
        """
        sigma = np.broadcast_to(np.asarray(noise_sigma, dtype=float), self.charge.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            sig = np.where(sigma > 0, self.charge / sigma, np.where(self.charge > 0, np.inf, 0.0))
        return np.where(self.saturated & (self.labels > 0), np.inf, sig)

    def truth_and_halo(self, noise_sigma: np.ndarray | float,
                       rule: TruthRule = TRUTH_RULE) -> tuple[np.ndarray, np.ndarray]:
        """Truth and halo masks under ``rule`` (:func:`crbench.truth.apply_truth_rule`).

        The CR-present mask is ``labels > 0`` (pixels that received >= ``LABEL_FLOOR_E``), so every
        truth and halo pixel has a non-zero label. Saturated CR pixels are seeds.
        """
        return apply_truth_rule(self.significance(noise_sigma), self.labels > 0, rule)

    def truth_mask(self, noise_sigma: np.ndarray | float, rule: TruthRule = TRUTH_RULE) -> np.ndarray:
        """Truth mask under ``rule`` (see :meth:`truth_and_halo`)."""
        return self.truth_and_halo(noise_sigma, rule)[0]

    def truth_labels(self, noise_sigma: np.ndarray | float, rule: TruthRule = TRUTH_RULE) -> np.ndarray:
        """``labels`` restricted to :meth:`truth_mask` (int32, 0 elsewhere)."""
        return np.where(self.truth_mask(noise_sigma, rule), self.labels, 0).astype(np.int32)

    def truth_instances(self, truth_labels: np.ndarray, *, diffusion_sigma_px: float = 0.5,
                        ipc_ring_px: float = 0.0, classify: bool = True) -> pd.DataFrame:
        """Instance table recounted on ``truth_labels``: events with no truth pixel are dropped,
        ``pixels`` counts truth pixels, ``charge`` is the CR charge on them, ``saturated`` says
        whether any truth pixel is saturated, and ``morphology`` is the geometric class of the
        8-connected truth component the instance lies in (:func:`crbench.morphology.classify_by_component`)."""
        return instance_table_for(truth_labels, self.charge, self.saturated, self.instances,
                                  diffusion_sigma_px=diffusion_sigma_px, ipc_ring_px=ipc_ring_px, classify=classify)


def ipc_ring_px(preset: InstrumentPreset) -> float:
    """The IPC ring the morphology rules take off (1 px on arrays with IPC, 0 on CCDs)."""
    return 1.0 if preset.ipc > 0 else 0.0


def instance_table_for(labels: np.ndarray, charge: np.ndarray, saturated: np.ndarray,
                       events: pd.DataFrame, *, diffusion_sigma_px: float = 0.5, ipc_ring_px: float = 0.0,
                       classify: bool = True) -> pd.DataFrame:
    """Per-instance table of ``labels`` (pixels, charge, saturated, morphology) joined to ``events``."""
    from crbench.morphology import classify_by_component
    from crbench.sample import empty_instance_table

    flat = labels.ravel()
    sel = flat > 0
    if not sel.any():
        out = empty_instance_table()
        for c in events.columns:
            if c not in out.columns:
                out[c] = pd.Series([], dtype=events[c].dtype)
        return out
    ids, inv = np.unique(flat[sel], return_inverse=True)
    pixels = np.bincount(inv)
    q = np.bincount(inv, weights=charge.ravel()[sel])
    sat = np.bincount(inv, weights=saturated.ravel()[sel].astype(float)) > 0
    table = events.set_index("id").reindex(ids)
    table = table.reset_index().rename(columns={"index": "id"})
    table["id"] = ids.astype(np.int32)
    table["pixels"] = pixels.astype(np.int64)
    table["charge"] = q.astype(np.float64)
    table["saturated"] = sat
    if classify:
        morph = classify_by_component(labels, saturated=saturated, diffusion_sigma_px=diffusion_sigma_px,
                                      ipc_ring_px=ipc_ring_px)
        table["morphology"] = [morph.get(int(i), "spot") for i in ids]
    else:
        table["morphology"] = "unclassified"
    cols = ["id", "morphology", "generator", "pixels", "charge", "saturated"]
    rest = [c for c in table.columns if c not in cols]
    return table[cols + rest].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# event generators
# --------------------------------------------------------------------------------------------

def _expanded_count(rng, rate: float, shape, margin: float, preset: InstrumentPreset, exptime: float):
    h, w = shape
    area = (h + 2 * margin) * (w + 2 * margin) * preset.pixel_area_cm2
    return int(rng.poisson(rate * area * exptime))


def _start_xy(rng, n: int, shape, margin: float):
    h, w = shape
    return rng.uniform(-margin, w + margin, n), rng.uniform(-margin, h + margin, n)


def _cos_theta(rng, n: int, incidence: str) -> np.ndarray:
    u = rng.random(n)
    if incidence == "isotropic":
        c = np.sqrt(u)          # p(theta) ~ cos sin
    elif incidence == "cos3":
        c = u ** 0.25           # p(theta) ~ cos^3 sin
    else:
        raise CRBenchError(f"preset incidence must be 'isotropic' or 'cos3', got {incidence!r}")
    return np.maximum(c, np.cos(np.radians(THETA_MAX_DEG)))


def _segments_hit(x0, y0, x1, y1, shape, pad: float) -> np.ndarray:
    h, w = shape
    return ((np.maximum(x0, x1) >= -pad) & (np.minimum(x0, x1) <= w + pad)
            & (np.maximum(y0, y1) >= -pad) & (np.minimum(y0, y1) <= h + pad))


def _straight_points(pts: _Points, rng, ev, x0, y0, x1, y1, z0, z1, q_total, step_px: float,
                     min_steps: int, weights_fn=None, fluct_scale: float = 0.2) -> None:
    """Place deposit points along straight segments with per-step Moyal fluctuations.

    ``q_total`` is shared among the steps in proportion to Moyal(1, fluct_scale) draws (times
    ``weights_fn(s, k)`` of the fractional position s of each step and its event index k when
    given, e.g. a Bragg rise).
    """
    if len(ev) == 0:
        return
    length = np.hypot(x1 - x0, y1 - y0)
    n = np.maximum(min_steps, np.ceil(length / step_px).astype(np.int64))
    n = np.minimum(n, 200_000)
    idx = np.repeat(np.arange(len(ev)), n)
    start = np.cumsum(n) - n
    j = np.arange(idx.size) - np.repeat(start, n)
    s = (j + 0.5) / n[idx]
    wgt = np.maximum(moyal(rng, 1.0, fluct_scale, size=idx.size), 0.05)
    if weights_fn is not None:
        wgt = wgt * weights_fn(s, idx)
    norm = np.bincount(idx, weights=wgt, minlength=len(ev))
    q = q_total[idx] * wgt / norm[idx]
    pts.add(x0[idx] + s * (x1 - x0)[idx], y0[idx] + s * (y1 - y0)[idx],
            z0[idx] + s * (z1 - z0)[idx], q, ev[idx])


def _muons(rng, shape, p: InstrumentPreset, exptime: float, pts: _Points, ev0: int) -> dict:
    t, pitch = p.thickness_um, p.pixel_pitch_um
    margin = t * np.tan(np.radians(THETA_MAX_DEG)) / pitch
    n = _expanded_count(rng, p.muon_rate, shape, margin, p, exptime)
    if n == 0:
        return {}
    cos_t = _cos_theta(rng, n, p.incidence)
    tan_t = np.sqrt(1 - cos_t**2) / cos_t
    phi = rng.uniform(0, 2 * np.pi, n)
    x0, y0 = _start_xy(rng, n, shape, margin)
    lp = t * tan_t / pitch
    x1, y1 = x0 + lp * np.cos(phi), y0 + lp * np.sin(phi)
    pad = 3 * p.diffusion_sigma_px + 1
    keep = _segments_hit(x0, y0, x1, y1, shape, pad)
    x0, y0, x1, y1, cos_t, lp, phi = (a[keep] for a in (x0, y0, x1, y1, cos_t, lp, phi))
    m = int(keep.sum())
    if m == 0:
        return {}
    l3 = t / cos_t  # um of silicon traversed
    q_tot = moyal(rng, mpv_per_um(l3) * l3, XI_E_PER_UM * l3) * p.charge_scale
    q_tot = np.maximum(q_tot, 0.3 * mpv_per_um(l3) * l3 * p.charge_scale)
    ev = ev0 + np.arange(m)
    # z from the collecting side: the particle crosses the whole slab (either direction)
    flip = rng.random(m) < 0.5
    z0 = np.where(flip, t, 0.0)
    z1 = t - z0
    min_steps = int(max(8, np.ceil(t / max(pitch * 0.25, 1.0))))
    _straight_points(pts, rng, ev, x0, y0, x1, y1, z0, z1, q_tot, 0.1, min(min_steps, 64))
    return {"ev": ev, "generator": np.full(m, "muon", object), "theta_deg": np.degrees(np.arccos(cos_t)),
            "length_px": lp, "x": x0, "y": y0, "deposit": q_tot}


def _electrons(rng, shape, p: InstrumentPreset, exptime: float, pts: _Points, ev0: int) -> dict:
    if p.electron_rate <= 0:
        return {}
    t, pitch = p.thickness_um, p.pixel_pitch_um
    e_lo, e_hi = ELECTRON_E_KEV
    r_max = 0.032 * e_hi**1.67
    margin = min(r_max, 2 * t + r_max * 0.3) / pitch
    n = _expanded_count(rng, p.electron_rate, shape, margin, p, exptime)
    if n == 0:
        return {}
    # power law dN/dE ~ E^-a by inverse transform
    a = ELECTRON_SLOPE
    u = rng.random(n)
    energy = (e_lo ** (1 - a) + u * (e_hi ** (1 - a) - e_lo ** (1 - a))) ** (1 / (1 - a))
    rng_um = 0.032 * energy**1.67
    x0, y0 = _start_xy(rng, n, shape, margin)
    z0 = rng.uniform(0, t, n)
    pad = rng_um / pitch + 3 * p.diffusion_sigma_px + 1
    keep = ((x0 >= -pad) & (x0 <= shape[1] + pad) & (y0 >= -pad) & (y0 <= shape[0] + pad))
    x0, y0, z0, energy, rng_um = (v[keep] for v in (x0, y0, z0, energy, rng_um))
    m = len(x0)
    if m == 0:
        return {}
    k = 40  # walk steps
    step = rng_um / k
    d = rng.normal(size=(m, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pos = np.stack([x0 * pitch, y0 * pitch, z0], axis=1)  # um
    alive = np.ones(m, bool)
    path = np.empty((k + 1, m, 3))
    live = np.empty((k, m), bool)
    path[0] = pos
    for j in range(k):
        frac = j / k
        kappa = 0.25 + 1.2 * frac**1.5  # scattering grows as the electron slows
        d = d + kappa * rng.normal(size=(m, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pos = pos + d * step[:, None]
        path[j + 1] = pos
        inside = (pos[:, 2] >= 0) & (pos[:, 2] <= t)
        live[j] = alive
        alive = alive & inside
    # deposit per walk step rises towards the end of the range (dE/dx ~ 1/E)
    frac_mid = (np.arange(k) + 0.5) / k
    w_step = 1.0 / np.sqrt(1.0 - frac_mid + 0.05)
    q_all = energy * 1e3 / PAIR_EV * p.charge_scale  # e- if fully absorbed
    w = w_step[:, None] * np.ones((1, m))
    w = w / w.sum(axis=0, keepdims=True)
    q_step = (w * q_all[None, :]) * live  # escaped electrons deposit nothing more
    step_px = step / pitch
    nsub = int(np.clip(np.ceil(step_px.max() / 0.2), 1, 12))
    sub = (np.arange(nsub) + 0.5) / nsub
    a_ = path[:-1][:, :, None, :]
    b_ = path[1:][:, :, None, :]
    p_ = a_ + (b_ - a_) * sub[None, None, :, None]  # (k, m, nsub, 3)
    qf = np.repeat(q_step[:, :, None], nsub, axis=2) / nsub
    fl = moyal(rng, 1.0, 0.15, size=qf.shape)
    qf = qf * np.maximum(fl, 0.05) / np.maximum(fl, 0.05).mean()
    evs = np.broadcast_to((ev0 + np.arange(m))[None, :, None], qf.shape)
    ok = qf > 0
    pts.add(p_[..., 0][ok] / pitch, p_[..., 1][ok] / pitch, np.clip(p_[..., 2][ok], 0, t), qf[ok], evs[ok])
    deposit = q_step.sum(axis=0)
    return {"ev": ev0 + np.arange(m), "generator": np.full(m, "electron", object),
            "theta_deg": np.full(m, np.nan), "length_px": rng_um / pitch, "x": x0, "y": y0,
            "deposit": deposit}


def _alphas(rng, shape, p: InstrumentPreset, exptime: float, pts: _Points, ev0: int) -> dict:
    if p.alpha_rate <= 0:
        return {}
    t, pitch = p.thickness_um, p.pixel_pitch_um
    margin = 3.0
    n = _expanded_count(rng, p.alpha_rate, shape, margin, p, exptime)
    if n == 0:
        return {}
    energy = rng.uniform(*ALPHA_E_MEV, n)
    rng_um = 25.0 * (energy / 5.0) ** 1.5  # ~25 um at 5 MeV in silicon (approximate)
    cos_t = _cos_theta(rng, n, "isotropic")
    phi = rng.uniform(0, 2 * np.pi, n)
    # path inside the slab: entering at the front (z = t, far from the collecting side)
    l_in = np.minimum(rng_um, t / cos_t)
    frac_in = l_in / rng_um
    lp = l_in * np.sqrt(1 - cos_t**2) / pitch
    x0, y0 = _start_xy(rng, n, shape, margin)
    x1, y1 = x0 + lp * np.cos(phi), y0 + lp * np.sin(phi)
    z0 = np.full(n, t)
    z1 = t - l_in * cos_t
    # Bragg rise: deposit ~ 1/sqrt(remaining range); only the part inside the slab counts
    e_in = energy * 1e6 / PAIR_EV * p.charge_scale
    share = 1.0 - np.sqrt(np.clip(1.0 - frac_in, 0, 1))  # fraction of energy lost over l_in
    q_tot = e_in * share
    keep = _segments_hit(x0, y0, x1, y1, shape, 3 * p.diffusion_sigma_px + 1)
    ev = ev0 + np.arange(int(keep.sum()))
    fi = frac_in[keep]

    def bragg(sf, k):  # dE/dx ~ 1/sqrt(remaining range); the path inside covers fraction fi of the range
        return 1.0 / np.sqrt(np.clip(1.0 - sf * fi[k], 0.0, 1.0) + 0.02)

    _straight_points(pts, rng, ev, x0[keep], y0[keep], x1[keep], y1[keep], z0[keep], z1[keep],
                     q_tot[keep], 0.1, 12,
                     weights_fn=bragg, fluct_scale=0.1)
    return {"ev": ev, "generator": np.full(len(ev), "alpha", object),
            "theta_deg": np.degrees(np.arccos(cos_t[keep])), "length_px": lp[keep], "x": x0[keep],
            "y": y0[keep], "deposit": q_tot[keep]}


def _snowballs(rng, shape, p: InstrumentPreset, exptime: float, pts: _Points, ev0: int) -> dict:
    if p.snowball_rate <= 0:
        return {}
    margin = 6.0
    n = _expanded_count(rng, p.snowball_rate, shape, margin, p, exptime)
    if n == 0:
        return {}
    xc, yc = _start_xy(rng, n, shape, margin)
    rc = rng.uniform(1.5, 3.5, n)            # core radius, px (UNSOURCED)
    halo = rc * rng.uniform(0.6, 1.2, n)     # halo scale, px (UNSOURCED)
    core_level = p.saturation * rng.uniform(1.5, 4.0, n)  # e- per core pixel: saturates
    q_core = core_level * np.pi * rc**2
    q_halo = q_core * rng.uniform(0.1, 0.25, n)
    npc, nph = 300, 300
    ev = ev0 + np.arange(n)
    r = rc[:, None] * np.sqrt(rng.random((n, npc)))
    a = rng.uniform(0, 2 * np.pi, (n, npc))
    pts.add(xc[:, None] + r * np.cos(a), yc[:, None] + r * np.sin(a), np.zeros((n, npc)),
            np.repeat((q_core / npc)[:, None], npc, 1), np.repeat(ev[:, None], npc, 1))
    r = rc[:, None] + np.abs(rng.normal(size=(n, nph))) * halo[:, None]
    a = rng.uniform(0, 2 * np.pi, (n, nph))
    pts.add(xc[:, None] + r * np.cos(a), yc[:, None] + r * np.sin(a), np.zeros((n, nph)),
            np.repeat((q_halo / nph)[:, None], nph, 1), np.repeat(ev[:, None], nph, 1), sig=0.5)
    return {"ev": ev, "generator": np.full(n, "snowball", object), "theta_deg": np.full(n, np.nan),
            "length_px": 2 * rc, "x": xc, "y": yc, "deposit": q_core + q_halo}


# --------------------------------------------------------------------------------------------
# rasterisation
# --------------------------------------------------------------------------------------------

def _pixel_weights(pos: np.ndarray, sigma: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact pixel integrals of 1-D Gaussians: returns (first pixel index, weights (n, 2r+1))."""
    i0 = np.floor(pos).astype(np.int64) - r
    edges = i0[:, None] + np.arange(2 * r + 2)[None, :]
    cdf = 0.5 * (1 + erf((edges - pos[:, None]) / (np.sqrt(2) * sigma[:, None])))
    w = np.diff(cdf, axis=1)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    return i0, w


def rasterise(shape: tuple[int, int], x, y, z, q, ev, extra_sigma, *, sigma_max_px: float,
              thickness_um: float, n_events: int, own_floor: float = 1e-3):
    """Spread deposit points by depth-dependent diffusion and integrate them over pixels.

    Returns
    -------
    charge : ndarray float64 (H, W)
    owner : ndarray int64 (H, W)
        Index of the event that deposited most charge in each pixel, -1 where none did
        (contributions below ``own_floor`` e- are not counted for ownership).
    in_frame : ndarray float64 (n_events,)
        Charge each event deposited inside the frame.
    """
    h, w = shape
    charge = np.zeros(h * w)
    in_frame = np.zeros(n_events)
    triples = []
    s0 = 0.05  # px: floor so point deposits stay numerically integrable
    r = int(max(1, np.ceil(3 * np.sqrt(sigma_max_px**2 + s0**2 + (extra_sigma.max() if extra_sigma.size else 0) ** 2))))
    for lo in range(0, len(x), _CHUNK_POINTS):
        sl = slice(lo, lo + _CHUNK_POINTS)
        xs, ys, zs, qs, es, xsg = x[sl], y[sl], z[sl], q[sl], ev[sl], extra_sigma[sl]
        sig = np.sqrt(sigma_max_px**2 * np.clip(zs / thickness_um, 0, 1) + s0**2 + xsg**2)
        ix0, wx = _pixel_weights(xs, sig, r)
        iy0, wy = _pixel_weights(ys, sig, r)
        k = 2 * r + 1
        px = ix0[:, None] + np.arange(k)[None, :]
        py = iy0[:, None] + np.arange(k)[None, :]
        wts = (wy[:, :, None] * wx[:, None, :]) * qs[:, None, None]
        inside = ((py[:, :, None] >= 0) & (py[:, :, None] < h) & (px[:, None, :] >= 0) & (px[:, None, :] < w))
        flat = (py[:, :, None] * w + px[:, None, :])
        sel = inside & (wts > 0)
        f = flat[sel]
        wv = wts[sel]
        e = np.broadcast_to(es[:, None, None], sel.shape)[sel]
        charge += np.bincount(f, weights=wv, minlength=h * w)
        in_frame += np.bincount(e, weights=wv, minlength=n_events)
        big = wv >= own_floor
        triples.append((f[big], e[big], wv[big]))
    owner = np.full(h * w, -1, np.int64)
    if triples:
        f = np.concatenate([t[0] for t in triples])
        e = np.concatenate([t[1] for t in triples])
        v = np.concatenate([t[2] for t in triples])
        if f.size:
            key = f * max(n_events, 1) + e
            uk, inv = np.unique(key, return_inverse=True)
            sums = np.bincount(inv, weights=v)
            upix, uev = uk // max(n_events, 1), uk % max(n_events, 1)
            order = np.lexsort((-sums, upix))
            upix, uev = upix[order], uev[order]
            first = np.ones(upix.size, bool)
            first[1:] = upix[1:] != upix[:-1]
            owner[upix[first]] = uev[first]
    return charge.reshape(shape), owner.reshape(shape), in_frame


def apply_ipc(charge: np.ndarray, alpha: float, owner: np.ndarray | None = None):
    """Inter-pixel capacitance: ``alpha`` to each 4-neighbour, ``alpha/10`` to each diagonal.

    Returns the coupled charge (total conserved up to the frame edge) and, when ``owner`` is
    given, the owner map extended to newly touched pixels (owner of the brightest neighbour).
    """
    if alpha <= 0:
        return charge, owner
    from scipy.ndimage import convolve

    ad = alpha / 10.0
    kern = np.array([[ad, alpha, ad], [alpha, 1 - 4 * alpha - 4 * ad, alpha], [ad, alpha, ad]])
    out = convolve(charge, kern, mode="constant", cval=0.0)
    if owner is None:
        return out, None
    own = owner.copy()
    need = (own < 0) & (out > 0)
    if need.any():
        h, w = charge.shape
        pad_q = np.pad(charge, 1, constant_values=-1.0)
        pad_o = np.pad(owner, 1, constant_values=-1)
        best_q = np.full(charge.shape, -1.0)
        best_o = np.full(charge.shape, -1, np.int64)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                qn = pad_q[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                on = pad_o[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                better = (on >= 0) & (qn > best_q)
                best_q[better] = qn[better]
                best_o[better] = on[better]
        own[need] = best_o[need]
    return out, own


def bleed_columns(image: np.ndarray, saturation: float, owner: np.ndarray | None = None):
    """Saturate at ``saturation`` and bleed the excess charge up and down the column.

    Each vertical run of over-full pixels is set to full well and its excess is shared equally
    between the pixels above and below, filling each to full well in turn (charge conserved
    except what bleeds off the frame edge).

    Returns
    -------
    image : ndarray float64
        Bled image.
    saturated : ndarray of bool
        Pixels at full well (run plus bleed trail).
    owner : ndarray or None
        Owner map with bleed-trail pixels assigned to the owner of their run.
    """
    img = np.array(image, dtype=np.float64, copy=True)
    sat = img >= saturation
    own = None if owner is None else owner.copy()
    if not sat.any():
        return img, sat, own
    h = img.shape[0]
    cols = np.unique(np.nonzero(sat)[1])
    for c in cols:
        col = img[:, c]
        s = col >= saturation
        # runs of saturated pixels
        d = np.diff(np.concatenate([[0], s.astype(np.int8), [0]]))
        starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
        for a, b in zip(starts, ends):
            excess = float(np.sum(col[a:b] - saturation))
            run_owner = None
            if own is not None:
                ro = own[a:b, c]
                ro = ro[ro >= 0]
                run_owner = int(np.bincount(ro).argmax()) if ro.size else None
            col[a:b] = saturation
            for direction, amount in ((-1, excess / 2), (1, excess / 2)):
                i = a - 1 if direction < 0 else b
                while amount > 0 and 0 <= i < h:
                    room = saturation - col[i]
                    if room > 0:
                        take = min(room, amount)
                        col[i] += take
                        amount -= take
                        if own is not None and run_owner is not None and own[i, c] < 0:
                            own[i, c] = run_owner
                    i += direction
        img[:, c] = col
    sat = img >= saturation * (1 - 1e-9)
    return img, sat, own


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

def simulate_crs(rng: np.random.Generator, shape: tuple[int, int], preset: "InstrumentPreset | str",
                 exptime: float, *, id_offset: int = 0, background: "np.ndarray | float" = 0.0,
                 rate_scale: float = 1.0, classify: bool = True) -> CRLayer:
    """Simulate the cosmic rays of one exposure.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one; same state -> same layer).
    shape : (int, int)
        Frame shape (H, W).
    preset : InstrumentPreset or str
        Instrument preset or its name (:data:`~data_recipes.sim.presets.PRESETS`).
    exptime : float
        Exposure time in seconds.
    id_offset : int
        Instance ids are ``id_offset + 1, id_offset + 2, ...``.
    background : float or ndarray
        Charge already in each pixel (sky, sources; e-) when the CR arrives, used only to decide
        saturation (CCD: bleeding; IR: clipping at full well).
    rate_scale : float
        Multiplier on every event rate (e.g. 0 for no CRs, 10 for a stress test).
    classify : bool
        Fill ``morphology`` with the geometric class of each event's labelled footprint
        (``'unclassified'`` when False; :meth:`CRLayer.truth_instances` classifies the truth).

    Returns
    -------
    CRLayer
        Charge map, owner labels, per-event table and saturation map.

    Raises
    ------
    CRBenchError
        On a non-positive shape or a negative exposure time.
    """
    p = get_preset(preset)
    shape = (int(shape[0]), int(shape[1]))
    if shape[0] <= 0 or shape[1] <= 0:
        raise CRBenchError(f"simulate_crs: shape must be positive (H, W), got {shape}")
    if not np.isfinite(exptime) or exptime < 0:
        raise CRBenchError(f"simulate_crs: exposure time must be >= 0 s, got {exptime}")
    if rate_scale != 1.0:
        p = p.with_(muon_rate=p.muon_rate * rate_scale, electron_rate=p.electron_rate * rate_scale,
                    alpha_rate=p.alpha_rate * rate_scale, snowball_rate=p.snowball_rate * rate_scale)
    pts = _Points()
    parts = []
    ev0 = 0
    for gen in (_muons, _electrons, _alphas, _snowballs):
        info = gen(rng, shape, p, float(exptime), pts, ev0)
        if info:
            parts.append(info)
            ev0 += len(info["ev"])
    n_ev = ev0
    x, y, z, q, ev, xs = pts.arrays()
    charge, owner, in_frame = rasterise(shape, x, y, z, q, ev, xs, sigma_max_px=p.diffusion_sigma_px,
                                        thickness_um=p.thickness_um, n_events=max(n_ev, 1))
    if p.ipc > 0:
        charge, owner = apply_ipc(charge, p.ipc, owner)
    # background above full well is the source's own problem (bled by the scene), not the CR's
    bg = np.minimum(np.broadcast_to(np.asarray(background, dtype=float), shape), p.saturation)
    if p.detector == "ccd":
        total, saturated, owner = bleed_columns(charge + bg, p.saturation, owner)
        charge = total - bg
    else:
        saturated = charge + bg >= p.saturation
        charge = np.where(saturated, np.maximum(p.saturation - bg, 0.0), charge)
    charge = np.maximum(charge, 0.0)
    orphan = (charge >= LABEL_FLOOR_E) & (owner < 0)
    if orphan.any() and (owner >= 0).any():
        # pixels fed only by many sub-floor contributions: give them the nearest owner
        from scipy.ndimage import distance_transform_edt

        _, (iy, ix) = distance_transform_edt(owner < 0, return_indices=True)
        owner = np.where(orphan, owner[iy, ix], owner)
    labels_idx = np.where(charge >= LABEL_FLOOR_E, owner, -1)
    labels = np.where(labels_idx >= 0, labels_idx + 1 + id_offset, 0).astype(np.int32)
    # per-event table
    if parts:
        ev_all = np.concatenate([pi["ev"] for pi in parts])
        table = pd.DataFrame({
            "id": (ev_all + 1 + id_offset).astype(np.int32),
            "generator": np.concatenate([pi["generator"] for pi in parts]),
            "theta_deg": np.concatenate([pi["theta_deg"] for pi in parts]).astype(float),
            "length_px": np.concatenate([pi["length_px"] for pi in parts]).astype(float),
            "x": np.concatenate([pi["x"] for pi in parts]).astype(float),
            "y": np.concatenate([pi["y"] for pi in parts]).astype(float),
            "deposit": np.concatenate([pi["deposit"] for pi in parts]).astype(float),
        })
        table["time"] = rng.random(len(table))
        table["in_frame_charge"] = in_frame[: len(table)]
    else:
        table = pd.DataFrame({c: pd.Series([], dtype=float) for c in
                              ("id", "generator", "theta_deg", "length_px", "x", "y", "deposit", "time",
                               "in_frame_charge")})
        table["id"] = table["id"].astype(np.int32)
        table["generator"] = table["generator"].astype(object)
    instances = instance_table_for(labels, charge, saturated, table, diffusion_sigma_px=p.diffusion_sigma_px,
                                   ipc_ring_px=ipc_ring_px(p), classify=classify)
    return CRLayer(charge=charge, labels=labels, instances=instances, saturated=saturated & (labels > 0),
                   preset=p.name, exptime=float(exptime))
