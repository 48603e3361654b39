"""Astronomical scenes and multi-exposure samples for the physical CR simulator.

A scene is a noiseless source image in e- (stars with the preset's PSF and a power-law flux
distribution, Sersic galaxies convolved with the PSF) for one of three field types that mirror
deepCR's ACS test fields:

``ex``   sparse extragalactic: a few stars, many small faint galaxies
``gc``   crowded globular-cluster-like: a Plummer cloud of hundreds to thousands of stars plus
         unresolved diffuse light
``gal``  resolved galaxy: a large disk (with spiral modulation and star-forming knots) and bulge,
         plus a few foreground stars

An exposure adds sky and dark current, Poisson noise, the cosmic rays of
:func:`~data_recipes.sim.physics.simulate_crs`, Gaussian read noise, saturation (CCD: bleeding
along columns; IR: clipping) and ADU quantisation (``gain``), and is stored in e-.

Masks
-----
``truth``    the truth rule (physics.TRUTH_RULE, :mod:`crbench.truth`: seed 5 sigma, growth into
             2.5 sigma, 8-connected) on the significance = CR charge / local noise sigma, where the
             local noise sigma is sqrt(read_noise^2 + sky + dark + source) in e-.
``halo``     CR pixels above 1 sigma that fail the rule (ignored by evaluation by default). A CR
             whose pixels are all halo is no truth instance (counted in ``meta['halo_only_crs']``).
``sources``  noiseless source flux > SOURCE_NSIGMA (1.0) x sqrt(read_noise^2 + sky + dark)
             (stars, galaxies, knots; the unresolved light of the 'gc' field is not a source).
``ignore``   pixels saturated by sources (incl. their bleed trails), dilated by 7x7 (as deepCR).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.signal import fftconvolve
from scipy.special import erf, gammaincinv

from crbench.errors import CRBenchError
from crbench.portable import digitise, round_table
from crbench.observation import saturation_dqmask
from crbench.sample import Sample

from crbench.truth import TruthRule, apply_truth_rule

from .confusers import Defects, draw_defects
from .cte import CTEGeometry, draw_cte_geometry, extend_labels_along_trails, layer_after_cte, observed_after_cte
from .physics import TRUTH_RULE, CRLayer, bleed_columns, ipc_ring_px, simulate_crs
from .presets import InstrumentPreset, get_preset

FIELDS = ("ex", "gc", "gal")
#: Sources mask threshold in units of the background noise sigma.
SOURCE_NSIGMA = 1.0

#: Stars of a 'gc' field per 256x256 (Plummer cloud; the fields of deepCR's GC set are cluster
#: outskirts, crowded but resolved).
GC_STARS_PER_AREA = 300
#: Star-forming knots of a 'gal' field per 256x256, and the share that are compact (HII regions at
#: the PSF limit, rendered with the PSF itself; the rest are resolved, 1.8x the PSF width).
GAL_KNOTS_PER_AREA = 1500
GAL_COMPACT_KNOT_SHARE = 0.7
GAL_KNOT_FLUX = (3.0, 3000.0)
#: Disk scale length of a 'gal' field (fraction of the frame) and its peak surface brightness
#: (multiples of the background sigma).
GAL_DISK_SCALE = (0.3, 0.6)
GAL_DISK_PEAK = (100.0, 1000.0)
#: Dilation (square side, px) of source-saturated pixels into the ignore mask (deepCR uses 7x7).
IGNORE_DILATE = 7


@dataclass
class Scene:
    """Noiseless sources of one field: ``flux`` (H, W) in e- per exposure (``diffuse``, the
    unresolved cluster light included in it, is not counted as a source) and a source table."""

    flux: np.ndarray
    table: pd.DataFrame
    field: str
    diffuse: np.ndarray | float = 0.0


def gc_stars_per_area(p: "InstrumentPreset") -> float:
    """Stars per 256x256 of a 'gc' field under preset ``p``: its own setting, else :data:`GC_STARS_PER_AREA`."""
    return GC_STARS_PER_AREA if p.gc_stars_per_area is None else p.gc_stars_per_area


def gal_knots_per_area(p: "InstrumentPreset") -> float:
    """Knots per 256x256 of disk of a 'gal' field under ``p``: its own setting, else :data:`GAL_KNOTS_PER_AREA`."""
    return GAL_KNOTS_PER_AREA if p.gal_knots_per_area is None else p.gal_knots_per_area


# --------------------------------------------------------------------------------------------
# PSF rendering
# --------------------------------------------------------------------------------------------


def psf_kernel(preset: InstrumentPreset, radius: int | None = None) -> np.ndarray:
    """Pixel-integrated PSF image (odd square, sum 1) for FFT convolution."""
    r = radius if radius is not None else _stamp_radius(preset)
    tab = render_points((2 * r + 1, 2 * r + 1), np.array([r + 0.5]), np.array([r + 0.5]), np.array([1.0]), preset)
    return tab / tab.sum()


def _stamp_radius(p: InstrumentPreset) -> int:
    if p.psf == "core-halo":
        return int(min(30, np.ceil(6.0 * p.psf_halo_fwhm) + 2))
    return int(min(30, np.ceil((6.0 if p.psf == "moffat" else 3.0) * p.psf_fwhm) + 1))


def render_points(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray,
                  preset: InstrumentPreset, chunk: int = 4000) -> np.ndarray:
    """Render point sources (pixel i spans [i, i+1)) with the preset's PSF, pixel-integrated.

    Gaussian PSFs are integrated exactly (erf); Moffat PSFs on a 3x3 sub-pixel grid. Each stamp is
    normalised to the source flux (the wings beyond the stamp are dropped).
    """
    h, w = shape
    out = np.zeros(h * w)
    if len(x) == 0:
        return out.reshape(shape)
    r = _stamp_radius(preset)
    k = 2 * r + 1
    off = np.arange(k) - r
    for lo in range(0, len(x), chunk):
        xs, ys, fs = x[lo:lo + chunk], y[lo:lo + chunk], flux[lo:lo + chunk]
        ix = np.floor(xs).astype(np.int64)[:, None] + off[None, :]
        iy = np.floor(ys).astype(np.int64)[:, None] + off[None, :]
        if preset.psf == "gaussian":
            stamp = _gaussian_stamps(ix, iy, xs, ys, preset.psf_fwhm)
        elif preset.psf == "core-halo":
            core = _gaussian_stamps(ix, iy, xs, ys, preset.psf_core_fwhm)
            halo = _moffat_stamps(ix, iy, xs, ys, preset.psf_halo_fwhm, preset.moffat_beta)
            f_core = float(preset.psf_core_fraction)
            stamp = f_core * core / core.sum(axis=(1, 2), keepdims=True) + \
                (1.0 - f_core) * halo / halo.sum(axis=(1, 2), keepdims=True)
            if preset.prf_kernel is not None:
                stamp = _convolve_3x3(stamp, np.asarray(preset.prf_kernel, dtype=float).reshape(3, 3))
        else:
            stamp = _moffat_stamps(ix, iy, xs, ys, preset.psf_fwhm, preset.moffat_beta)
        stamp = stamp / stamp.sum(axis=(1, 2), keepdims=True) * fs[:, None, None]
        inside = (iy[:, :, None] >= 0) & (iy[:, :, None] < h) & (ix[:, None, :] >= 0) & (ix[:, None, :] < w)
        flat = iy[:, :, None] * w + ix[:, None, :]
        out += np.bincount(flat[inside], weights=stamp[inside], minlength=h * w)
    return out.reshape(shape)


def _gaussian_stamps(ix: np.ndarray, iy: np.ndarray, xs: np.ndarray, ys: np.ndarray, fwhm: float) -> np.ndarray:
    """Gaussian of ``fwhm`` px integrated exactly over each pixel of the stamps (n, k, k)."""
    s = fwhm / 2.3548
    cx = 0.5 * (1 + erf((ix + 1 - xs[:, None]) / (np.sqrt(2) * s))) - 0.5 * (
        1 + erf((ix - xs[:, None]) / (np.sqrt(2) * s)))
    cy = 0.5 * (1 + erf((iy + 1 - ys[:, None]) / (np.sqrt(2) * s))) - 0.5 * (
        1 + erf((iy - ys[:, None]) / (np.sqrt(2) * s)))
    return cy[:, :, None] * cx[:, None, :]


def _moffat_stamps(ix: np.ndarray, iy: np.ndarray, xs: np.ndarray, ys: np.ndarray, fwhm: float,
                   beta: float) -> np.ndarray:
    """Moffat of ``fwhm`` px and ``beta`` averaged over a 3x3 sub-pixel grid in each pixel (n, k, k)."""
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    sub = (np.arange(3) + 0.5) / 3
    dx = (ix[:, :, None] + sub[None, None, :]) - xs[:, None, None]  # (n, k, 3)
    dy = (iy[:, :, None] + sub[None, None, :]) - ys[:, None, None]
    r2 = dy[:, :, None, :, None] ** 2 + dx[:, None, :, None, :] ** 2  # (n, k, k, 3, 3)
    return ((1 + r2 / alpha**2) ** (-beta)).mean(axis=(3, 4))


def _convolve_3x3(stamps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each stamp (n, k, k) convolved with a 3x3 kernel, zero outside the stamp."""
    padded = np.pad(stamps, ((0, 0), (1, 1), (1, 1)))
    k = stamps.shape[1]
    out = np.zeros_like(stamps)
    for dy in range(3):
        for dx in range(3):
            out += kernel[dy, dx] * padded[:, 2 - dy:2 - dy + k, 2 - dx:2 - dx + k]
    return out


def sersic_image(shape: tuple[int, int], x0: float, y0: float, flux: float, r_e: float, n: float,
                 q: float, pa: float, radius: float | None = None) -> np.ndarray:
    """Sersic profile of total ``flux`` (normalised over the drawn stamp), sampled at pixel centres
    with 2x2 sub-sampling, inside ``radius`` (default 8 r_e, at most 200 px)."""
    out = np.zeros(shape)
    add_sersic(out, x0, y0, flux, r_e, n, q, pa, radius)
    return out


def add_sersic(target: np.ndarray, x0: float, y0: float, flux: float, r_e: float, n: float,
               q: float, pa: float, radius: float | None = None) -> None:
    """Add a Sersic profile (see :func:`sersic_image`) into ``target`` in place."""
    h, w = target.shape
    rad = radius if radius is not None else min(200.0, 8.0 * r_e + 3)
    ylo, yhi = int(max(0, np.floor(y0 - rad))), int(min(h, np.ceil(y0 + rad)))
    xlo, xhi = int(max(0, np.floor(x0 - rad))), int(min(w, np.ceil(x0 + rad)))
    if ylo >= yhi or xlo >= xhi:
        return
    bn = gammaincinv(2 * n, 0.5)
    sub = np.array([0.25, 0.75])
    yy = (np.arange(ylo, yhi)[:, None] + sub[None, :]).ravel() - y0   # (ny*2,)
    xx = (np.arange(xlo, xhi)[:, None] + sub[None, :]).ravel() - x0
    c, s = np.cos(pa), np.sin(pa)
    u = xx[None, :] * c + yy[:, None] * s
    v = (-xx[None, :] * s + yy[:, None] * c) / max(q, 0.05)
    prof = np.exp(-bn * ((np.sqrt(u**2 + v**2) / r_e) ** (1 / n) - 1))
    acc = prof.reshape(yhi - ylo, 2, xhi - xlo, 2).sum(axis=(1, 3))
    total = acc.sum()
    if total > 0:
        target[ylo:yhi, xlo:xhi] += acc / total * flux


# --------------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------------

def _power_law(rng, n: int, f_min: float, f_max: float, alpha: float) -> np.ndarray:
    """Fluxes with N(>F) ~ F^-alpha between f_min and f_max (inverse transform)."""
    u = rng.random(n)
    a, b = f_min ** (-alpha), f_max ** (-alpha)
    return (a - u * (a - b)) ** (-1 / alpha)


def background_sigma(preset: InstrumentPreset, exptime: float) -> float:
    """Per-pixel background noise sigma (e-): sqrt(read_noise^2 + sky + dark)."""
    return float(np.sqrt(preset.read_noise**2 + (preset.sky_rate + preset.dark_rate) * exptime))


def _flux_limits(p: InstrumentPreset, exptime: float) -> tuple[float, float]:
    sig = background_sigma(p, exptime)
    f_min = 5.0 * sig * max(2.0, 2.0 * p.psf_fwhm)  # ~5 sigma in an aperture of ~(2 FWHM)^2 px
    peak_frac = 1.0 / (1.133 * p.psf_fwhm**2)       # peak pixel / total for a Gaussian-like PSF
    f_max = 20.0 * p.saturation / peak_frac          # the brightest stars saturate
    return f_min, max(f_max, 10 * f_min)


def make_scene(rng: np.random.Generator, shape: tuple[int, int], preset: "InstrumentPreset | str",
               field: str, exptime: float) -> Scene:
    """Draw the noiseless sources of one field.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
    preset : InstrumentPreset or str
    field : {'ex', 'gc', 'gal'}
    exptime : float
        Exposure time (s); source fluxes scale with it.

    Returns
    -------
    Scene
    """
    p = get_preset(preset)
    if field not in FIELDS:
        raise CRBenchError(f"field type must be one of {FIELDS}, got {field!r}")
    h, w = shape
    area = h * w / 65536.0  # in units of 256x256
    f_min, f_max = _flux_limits(p, exptime)
    sig = background_sigma(p, exptime)
    rows: list[tuple] = []
    stars_x, stars_y, stars_f = [], [], []
    extended = np.zeros(shape)

    def add_stars(n, alpha, xs=None, ys=None, kind="star"):
        xs = rng.uniform(0, w, n) if xs is None else xs
        ys = rng.uniform(0, h, n) if ys is None else ys
        fs = _power_law(rng, n, f_min, f_max, alpha)
        stars_x.append(xs)
        stars_y.append(ys)
        stars_f.append(fs)
        rows.extend((kind, float(a), float(b), float(c), np.nan, np.nan) for a, b, c in zip(xs, ys, fs))

    if field == "ex":
        add_stars(rng.poisson(6 * area), 0.7)
        n_gal = rng.poisson(35 * area)
        for _ in range(n_gal):
            x0, y0 = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)
            r_e = float(np.exp(rng.uniform(np.log(1.0), np.log(6.0)))) * max(1.0, p.psf_fwhm / 2)
            n_s = float(rng.uniform(0.6, 4.0))
            fl = float(_power_law(rng, 1, f_min, 60 * f_min, 1.0)[0])
            add_sersic(extended, x0, y0, fl, r_e, n_s, rng.uniform(0.3, 1.0), rng.uniform(0, np.pi))
            rows.append(("galaxy", x0, y0, fl, r_e, n_s))
    elif field == "gc":
        # Plummer cloud centred in or near the frame
        xc, yc = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
        a = rng.uniform(0.3, 0.8) * max(h, w)
        n = rng.poisson(gc_stars_per_area(p) * area)
        u = rng.uniform(0.02, 0.999, n)
        rr = a / np.sqrt(u ** (-2 / 3) - 1)
        ang = rng.uniform(0, 2 * np.pi, n)
        xs, ys = xc + rr * np.cos(ang), yc + rr * np.sin(ang)
        ok = (xs >= -5) & (xs < w + 5) & (ys >= -5) & (ys < h + 5)
        add_stars(int(ok.sum()), 0.8, xs[ok], ys[ok])
        yy, xx = np.mgrid[0:h, 0:w]
        diffuse = (1 + ((xx + 0.5 - xc) ** 2 + (yy + 0.5 - yc) ** 2) / a**2) ** (-2.0)
        diffuse_light = diffuse * sig * rng.uniform(3.0, 15.0)  # unresolved cluster light
        add_stars(rng.poisson(4 * area), 0.7)
        rows.append(("cluster", xc, yc, float(diffuse.sum()), a, np.nan))
    else:  # gal
        xc, yc = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)
        scale = max(h, w)
        r_d = rng.uniform(*GAL_DISK_SCALE) * scale
        q = rng.uniform(0.4, 1.0)
        pa = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        dx, dy = xx + 0.5 - xc, yy + 0.5 - yc
        u = dx * np.cos(pa) + dy * np.sin(pa)
        v = (-dx * np.sin(pa) + dy * np.cos(pa)) / q
        rr = np.hypot(u, v)
        phi = np.arctan2(v, u)
        m_arms = int(rng.integers(2, 4))
        pitch = np.tan(np.radians(rng.uniform(12, 30)))
        arms = 1 + 0.7 * np.cos(m_arms * (phi - np.log(rr / r_d + 1e-3) / pitch))
        disk = np.exp(-rr / (r_d / 1.678)) * arms
        extended += disk / disk.max() * sig * rng.uniform(*GAL_DISK_PEAK)
        bulge_flux = sig * rng.uniform(300, 3000) * max(1.0, p.psf_fwhm) ** 2
        add_sersic(extended, xc, yc, bulge_flux, rng.uniform(0.03, 0.08) * scale, 4.0, q, pa)
        # star-forming knots following the arms
        n_k = rng.poisson(gal_knots_per_area(p) * area)
        cand = rng.uniform(0, 1, (n_k * 8, 2)) * [w, h]
        iy = np.clip(cand[:, 1].astype(int), 0, h - 1)
        ix = np.clip(cand[:, 0].astype(int), 0, w - 1)
        pr = disk[iy, ix] / disk.max()
        pick = cand[rng.random(len(cand)) < pr][:n_k]
        kf = _power_law(rng, len(pick), GAL_KNOT_FLUX[0] * f_min, GAL_KNOT_FLUX[1] * f_min, 1.2)
        n_c = int(round(GAL_COMPACT_KNOT_SHARE * len(pick)))
        knots = render_points(shape, pick[n_c:, 0], pick[n_c:, 1], kf[n_c:],
                              p.with_(psf="gaussian", psf_fwhm=p.psf_fwhm * 1.8))
        extended += knots
        if n_c:  # compact knots are point-like: rendered with the PSF below, like stars
            stars_x.append(pick[:n_c, 0])
            stars_y.append(pick[:n_c, 1])
            stars_f.append(kf[:n_c])
            rows.extend(("knot", float(a), float(b), float(c), np.nan, np.nan)
                        for a, b, c in zip(pick[:n_c, 0], pick[:n_c, 1], kf[:n_c]))
        add_stars(rng.poisson(5 * area), 0.7)
        rows.append(("galaxy", xc, yc, float(disk.sum()), r_d, 1.0))
    if extended.any():
        kern = psf_kernel(p)
        extended = np.maximum(fftconvolve(extended, kern, mode="same"), 0.0)
    sx = np.concatenate(stars_x) if stars_x else np.zeros(0)
    sy = np.concatenate(stars_y) if stars_y else np.zeros(0)
    sf = np.concatenate(stars_f) if stars_f else np.zeros(0)
    flux = extended + render_points(shape, sx, sy, sf, p)
    table = pd.DataFrame(rows, columns=["kind", "x", "y", "flux", "r_e", "sersic_n"])
    if field == "gc":
        return Scene(flux=flux + diffuse_light, table=table, field=field, diffuse=diffuse_light)
    return Scene(flux=flux, table=table, field=field)


# --------------------------------------------------------------------------------------------
# exposures and samples
# --------------------------------------------------------------------------------------------

def instrument_dqmask(image: np.ndarray, preset: InstrumentPreset, defects: Defects | None = None) -> np.ndarray:
    """The instrument mask of a simulated exposure: pixels read out at full well (``DQ_SATURATED``,
    sources and CRs alike, as a real readout flags them; within one ADU after quantisation), plus
    the flagged hot pixels and bad columns of ``defects`` (:mod:`data_recipes.sim.confusers`)."""
    dq = saturation_dqmask(image, preset.saturation, tolerance=preset.gain)
    if defects is not None:
        dq = dq | defects.dq
    return dq


def _quantise(img: np.ndarray, gain: float) -> np.ndarray:
    return digitise(img, gain)


def observe(rng: np.random.Generator, expected: np.ndarray, preset: InstrumentPreset, exptime: float,
            cr: CRLayer | None, cte_geometry: CTEGeometry | None = None) -> np.ndarray:
    """One exposure in e-: Poisson(expected) + CR charge + read noise, saturated and quantised.

    With ``cte_geometry`` (and ``preset.cte``) the collected charge is read out through the CCD's traps
    and corrected as the pipeline does (:func:`data_recipes.sim.cte.observed_after_cte`) before the
    read noise is added."""
    return _observe(rng, expected, preset, cr, cte_geometry)[0]


def _observe(rng: np.random.Generator, expected: np.ndarray, preset: InstrumentPreset, cr: CRLayer | None,
             cte_geometry: CTEGeometry | None, want_cr: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`observe` plus, with CTE and ``want_cr``, the CR layer's part of the observed frame (else None)."""
    img = rng.poisson(np.maximum(expected, 0)).astype(np.float64)
    if cr is not None:
        img += cr.charge
    cr_observed = None
    if cte_geometry is not None and preset.cte is not None:
        read = observed_after_cte(img, preset.cte, cte_geometry)
        if cr is not None and want_cr:
            cr_observed = layer_after_cte(img, cr.charge, preset.cte, cte_geometry, total_observed=read)
        img = read
    img += rng.normal(0.0, preset.read_noise, expected.shape)
    if preset.detector == "ccd":
        img = bleed_columns(img, preset.saturation)[0]
    else:
        img = np.minimum(img, preset.saturation)
    return _quantise(img, preset.gain), cr_observed


def make_ramp(rng: np.random.Generator, expected: np.ndarray, preset: InstrumentPreset, cr: CRLayer,
              n_groups: int) -> np.ndarray:
    """Up-the-ramp groups (G, H, W) in e-: cumulative Poisson signal, CR steps at their arrival
    times (``instances['time']``, per owning event), independent read noise per group, clipped at
    full well. With ``ramp=True`` the sample image is the last group (quantised)."""
    g = int(n_groups)
    rate = np.maximum(expected, 0) / g
    inc = rng.poisson(np.broadcast_to(rate, (g,) + expected.shape)).astype(np.float64)
    cum = np.cumsum(inc, axis=0)
    tmap = np.full(expected.shape, 2.0)
    if len(cr.instances) and "time" in cr.instances:
        ids = cr.instances["id"].to_numpy()
        times = cr.instances["time"].to_numpy(dtype=float)
        lut = dict(zip(ids.tolist(), times.tolist()))
        lab = cr.labels
        sel = lab > 0
        tmap[sel] = np.array([lut.get(int(i), 0.0) for i in lab[sel]])
    tg = (np.arange(g) + 1) / g
    cum += cr.charge[None] * (tmap[None] < tg[:, None, None])
    cum += rng.normal(0.0, preset.read_noise, cum.shape)
    return digitise(np.minimum(cum, preset.saturation), preset.gain).astype(np.float32)


def _cr_after_cte(cr: CRLayer, cr_observed: np.ndarray, geometry: CTEGeometry | None) -> CRLayer:
    """The CR layer as the read-out frame shows it: charge after CTE and correction (negative where the
    CR made another packet lose more, which is no CR charge), its trail pixels owned by the CR that
    trailed into them."""
    charge = np.maximum(cr_observed, 0.0)
    labels = cr.labels
    if geometry is not None:
        labels = extend_labels_along_trails(cr.labels, charge, geometry)
    labels = np.where(charge > 0, labels, 0).astype(cr.labels.dtype)
    return replace(cr, charge=np.where(labels > 0, charge, 0.0), labels=labels)


@dataclass
class SimulatedTruth:
    """What the truth rule needs of a simulated primary exposure, to re-label it under another rule.

    ``significance`` is the CR charge over the local noise sigma (+inf on saturated CR pixels);
    ``present`` the pixels that received CR charge; ``layer`` the primary exposure's CRs.
    """

    significance: np.ndarray
    present: np.ndarray
    layer: CRLayer
    noise_sigma: np.ndarray


def simulate_sample(rng: np.random.Generator, sample_id: str, preset: "InstrumentPreset | str", *,
                    field: str = "ex", shape: tuple[int, int] = (256, 256), exptime: float | None = None,
                    n_exposures: int = 3, ramp: bool = False, diffusion_for_morphology: float | None = None,
                    rule: TruthRule = TRUTH_RULE) -> Sample:
    """Simulate one labelled sample: the primary exposure plus ``n_exposures - 1`` companions.

    All exposures see the same scene, with independent Poisson/read noise and independent CRs.
    Truth, halo, labels and instances describe the primary exposure's CRs only (see module
    docstring); ``rule`` decides truth and halo and does not change the random stream.

    Returns
    -------
    Sample
    """
    return simulate_sample_with_truth(rng, sample_id, preset, field=field, shape=shape, exptime=exptime,
                                      n_exposures=n_exposures, ramp=ramp,
                                      diffusion_for_morphology=diffusion_for_morphology, rule=rule)[0]


def simulate_sample_with_truth(rng: np.random.Generator, sample_id: str, preset: "InstrumentPreset | str", *,
                               field: str = "ex", shape: tuple[int, int] = (256, 256),
                               exptime: float | None = None, n_exposures: int = 3, ramp: bool = False,
                               diffusion_for_morphology: float | None = None,
                               rule: TruthRule = TRUTH_RULE) -> tuple[Sample, SimulatedTruth]:
    """:func:`simulate_sample` plus the :class:`SimulatedTruth` of its primary exposure."""
    p = get_preset(preset)
    t = float(p.exptime if exptime is None else exptime)
    shape = (int(shape[0]), int(shape[1]))
    if n_exposures < 1:
        raise CRBenchError(f"sample {sample_id!r}: exposures must be >= 1, got {n_exposures}")
    scene = make_scene(rng, shape, p, field, t)
    # a preset without defects draws nothing, so its random stream (and content hash) is unchanged; the
    # CTE geometry comes from the defects' own generator, after them, so it changes no other draw
    defects, cte_geometry = None, None
    if p.defects is not None or p.cte is not None:
        field_rng = np.random.default_rng(int(rng.integers(2**63)))
        defects = draw_defects(field_rng, shape, p.defects, t) if p.defects is not None else None
        if p.cte is not None:
            if p.detector != "ccd" or ramp:
                raise CRBenchError(f"sample {sample_id!r}: CTE is modelled for CCD frames only, not for "
                                   f"preset {p.name!r} (detector {p.detector!r}, ramp={ramp})")
            cte_geometry = draw_cte_geometry(field_rng, shape[0], p.cte)
    bg = (p.sky_rate + p.dark_rate) * t
    expected = scene.flux + bg
    if defects is not None:
        expected = expected + defects.dark
    noise_sigma = np.sqrt(p.read_noise**2 + expected)
    src_sat = bleed_columns(expected, p.saturation)[1] if p.detector == "ccd" else expected >= p.saturation
    ignore = ndimage.binary_dilation(src_sat, structure=np.ones((IGNORE_DILATE, IGNORE_DILATE), bool)) \
        if src_sat.any() else np.zeros(shape, bool)
    if defects is not None:  # flagged pixels are ignored, as deepCR's protocol ignores DQ-flagged pixels
        ignore = ignore | defects.flagged
    sources = (scene.flux - scene.diffuse) > SOURCE_NSIGMA * background_sigma(p, t)
    frames, ramp_arr = [], None
    truth = labels = halo = None
    table = None
    sim_truth = None
    halo_only = 0
    sig_morph = p.diffusion_sigma_px if diffusion_for_morphology is None else diffusion_for_morphology
    for e in range(int(n_exposures)):
        cr = simulate_crs(rng, shape, p, t, id_offset=0, background=expected, classify=False)
        if e == 0 and ramp and p.ramp_groups > 0:
            # the image is the last group of its own ramp (same photons, same CRs)
            ramp_arr = make_ramp(rng, expected, p, cr, p.ramp_groups)
            frames.append(_quantise(ramp_arr[-1].astype(np.float64), p.gain).astype(np.float32))
        else:
            frame, cr_observed = _observe(rng, expected, p, cr, cte_geometry, want_cr=e == 0)
            frames.append(frame.astype(np.float32))
            if cr_observed is not None:  # the truth is the CR charge as the frame shows it, trails included
                cr = _cr_after_cte(cr, cr_observed, cte_geometry)
        if e == 0:
            significance = cr.significance(noise_sigma)
            present = cr.labels > 0
            truth, halo = apply_truth_rule(significance, present, rule)
            labels = np.where(truth, cr.labels, 0).astype(np.int32)
            truth = labels > 0
            table = cr.truth_instances(labels, diffusion_sigma_px=sig_morph, ipc_ring_px=ipc_ring_px(p))
            halo_ids = np.setdiff1d(np.unique(cr.labels[halo]), np.unique(labels[truth]))
            halo_only = int(np.count_nonzero(halo_ids))
            sim_truth = SimulatedTruth(significance=significance, present=present, layer=cr,
                                       noise_sigma=noise_sigma)
    if sim_truth is None:  # unreachable: n_exposures >= 1 is checked above and exposure 0 sets it
        raise CRBenchError(f"sample {sample_id!r}: no primary exposure was simulated")
    meta: dict[str, Any] = p.meta()
    meta.update({
        "sky": float(p.sky_rate * t), "dark": float(p.dark_rate * t), "exptime": t, "field": field,
        "truth_rule": rule.name, "halo_only_crs": halo_only, "source_nsigma": SOURCE_NSIGMA,
        "n_exposures": int(n_exposures), "simulator": "data_recipes.sim",
    })
    if ramp_arr is not None:
        meta["ramp_groups"] = int(p.ramp_groups)
        meta["group_time"] = t / p.ramp_groups
    sample = Sample(id=sample_id, image=frames[0], truth=truth, ignore=ignore, labels=labels,
                    instances=round_table(table) if table is not None else table, sources=sources, halo=halo,
                    exposures=np.stack(frames[1:]) if len(frames) > 1 else None, ramp=ramp_arr,
                    meta=meta, dqmask=instrument_dqmask(frames[0], p, defects)).validate()
    return sample, sim_truth
