"""Independent purity estimates of multi-exposure labels (no injection, no simulator).

Three estimates, each with a 95 % interval (bootstrap over frames, or exact Poisson):

- **negative deviations**: the labelling rule applied to the sign-flipped significance. A CR only
  adds charge, while noise and misalignment residuals are symmetric, so the components the rule
  finds below the companions' median count the false components expected above it;
  purity = 1 - negative / positive (components and pixels), overall and on/off sources.
- **recurrence**: labelled pixels that recur at the same detector pixel in several frames, against
  the number expected by chance at the observed labelling rate (binomial per pixel); the excess is
  hot/warm-pixel leakage that the veto let through; purity = 1 - excess / labelled pixels.
- **held-back frames**: each frame is labelled twice, from two disjoint halves of its labelling
  companions; the share of components of one labelling that the other also finds (both ways).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage, stats

from ._common import stage
from .labelling import (EIGHT, LabelParams, SeriesLabels, SeriesModel, border_mask, seeds_and_growth,
                        shift_image, sky_levels, snr_map, split_components)


def series_electrons(frames_adu: np.ndarray, model: SeriesModel) -> tuple[np.ndarray, np.ndarray]:
    """Sky-subtracted frames (e-, static pattern removed) and each frame's sky (e-), as the labelling sees them."""
    g, bias = model.noise.gain, model.noise.bias
    clean = np.asarray(frames_adu, np.float32) - model.static_adu
    sky_adu = sky_levels(clean)
    return (clean - sky_adu[:, None, None]) * g, (sky_adu - bias) * g


def frame_snr(sub_e: np.ndarray, sky_e: np.ndarray, model: SeriesModel, params: LabelParams, i: int,
              companions: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """SNR map of frame ``i`` against the median of ``companions`` and where it is valid (as the labelling)."""
    h, w = sub_e.shape[1:]
    sh = model.shifts
    aligned = (np.stack([shift_image(sub_e[j], sh[j] - sh[i], order=params.interpolation_order) for j in companions])
               if len(companions) else np.full((1, h, w), np.nan, np.float32))
    static_e = np.abs(model.static_adu * model.noise.gain)
    snr, _, valid = snr_map(sub_e[i], aligned, read_noise=model.noise.read_noise, sky=float(sky_e[i]),
                            static_var=static_e, deriv_scale=params.deriv_scale,
                            min_companions=min(params.min_companions, max(len(companions), 1)))
    return snr, valid


def rule_components(snr: np.ndarray, valid: np.ndarray, ignore: np.ndarray, sources_ambiguous: np.ndarray,
                    veto: np.ndarray, params: LabelParams) -> np.ndarray:
    """The labelling's truth mask from an SNR map: rule, ambiguous components and ignore removed."""
    _, grown = seeds_and_growth(snr, params)
    border = border_mask(snr.shape, params.border)
    cr, _, _ = split_components(grown & valid & ~border, sources=sources_ambiguous, veto=veto,
                                min_pixels=params.min_pixels)
    return cr & ~ignore


def _bootstrap(num: np.ndarray, den: np.ndarray, fn, rng: np.random.Generator, n_boot: int = 1000
               ) -> list[float] | None:
    num, den = np.asarray(num, float), np.asarray(den, float)
    if len(num) < 2 or den.sum() <= 0:
        return None
    k = rng.integers(0, len(num), size=(n_boot, len(num)))
    with np.errstate(all="ignore"):
        vals = fn(num[k].sum(1), den[k].sum(1))
    vals = vals[np.isfinite(vals)]
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))] if len(vals) else None


def poisson_interval(k: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from an observed count ``k``."""
    a = 1 - level
    lo = stats.chi2.ppf(a / 2, 2 * k) / 2 if k > 0 else 0.0
    return float(lo), float(stats.chi2.ppf(1 - a / 2, 2 * k + 2) / 2)


def _poisson_purity(neg: float, pos: float, scale: float = 1.0) -> list[float] | None:
    if pos <= 0:
        return None
    lo, hi = poisson_interval(neg)
    return [float(max(0.0, 1 - hi * scale / pos)), float(max(0.0, 1 - lo * scale / pos))]


def _purity(neg: float, pos: float) -> float | None:
    return float(max(0.0, 1.0 - neg / pos)) if pos > 0 else None


def _on(mask: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a mask's components into those touching ``where`` and the others."""
    lab, n = ndimage.label(mask, EIGHT)
    if n == 0:
        return np.zeros_like(mask), np.zeros_like(mask)
    touch = ndimage.maximum(where, lab, np.arange(1, n + 1)).astype(bool)
    on = np.isin(lab, np.flatnonzero(touch) + 1)
    return on & mask, mask & ~on


def negative_deviation_purity(frames_adu: np.ndarray, labels: SeriesLabels, model: SeriesModel, *,
                              progress: bool = False) -> dict[str, Any]:
    """Purity from the sign-flipped rule (module docstring), overall, off and on sources."""
    p = labels.params
    sub_e, sky_e = series_electrons(frames_adu, model)
    rows = []
    for f in stage([f for f in labels.frames if not f.rejected], "label quality: negative deviations", progress):
        snr, valid = frame_snr(sub_e, sky_e, model, p, f.index, f.label_companions)
        src_amb = f.sources if f.sources_ambiguous is None else f.sources_ambiguous
        neg = rule_components(-snr, valid, f.ignore, src_amb, labels.veto, p)
        row = []
        for m in (f.truth, neg):
            on, off = _on(m, f.sources)
            for part in (m, off, on):
                row += [ndimage.label(part, EIGHT)[1], int(part.sum())]
        rows.append(row)
    a = np.array(rows, float).reshape(-1, 12) if rows else np.zeros((0, 12))
    out: dict[str, Any] = {"method": "labelling rule on -SNR against the same companions, same ignore/veto/source "
                                     "rules; purity = 1 - negative/positive; 95% exact Poisson interval on the "
                                     "negative component count (pixels: scaled by pixels per component)",
                           "n_frames": int(len(a))}
    for k, name in enumerate(("all", "off_sources", "on_sources")):
        pc, pp, nc, npx = (a[:, 2 * k], a[:, 2 * k + 1], a[:, 6 + 2 * k], a[:, 7 + 2 * k])
        # pixels cluster in components: scale the component count's Poisson interval by pixels per component
        px_per = npx.sum() / nc.sum() if nc.sum() else (pp.sum() / pc.sum() if pc.sum() else 1.0)
        out[name] = {"positive_components": int(pc.sum()), "negative_components": int(nc.sum()),
                     "positive_pixels": int(pp.sum()), "negative_pixels": int(npx.sum()),
                     "component_purity": _purity(nc.sum(), pc.sum()),
                     "component_purity_interval": _poisson_purity(nc.sum(), pc.sum()),
                     "pixel_purity": _purity(npx.sum(), pp.sum()),
                     "pixel_purity_interval": _poisson_purity(nc.sum(), pp.sum(), scale=px_per)}
    return out


def recurrence_purity(labels: SeriesLabels) -> dict[str, Any]:
    """Hot-pixel leakage: labelled pixels recurring at one detector pixel beyond chance (module docstring)."""
    frames = [f for f in labels.frames if not f.rejected]
    if not frames:
        return {"n_frames": 0}
    count = np.sum([f.truth for f in frames], axis=0)
    n_valid = np.sum([~f.ignore for f in frames], axis=0).astype(float)
    total = float(count.sum())
    observed = float(count[count >= 2].sum())
    # chance rate from the share of never-labelled pixels, sum_pix (1-p)^n_valid = n_zero, which a few
    # leaking pixels barely move (the mean rate would count the leakage as chance)
    nv_all = n_valid[n_valid > 0]
    n_zero = float(np.sum((count == 0) & (n_valid > 0)))
    if total == 0 or n_zero >= len(nv_all):
        rate = 0.0
    elif n_zero == 0:
        rate = total / max(float(nv_all.sum()), 1.0)
    else:
        from scipy.optimize import brentq

        rate = float(brentq(lambda q: np.sum((1 - q) ** nv_all) - n_zero, 0.0, 1.0 - 1e-12))
    # E[c 1(c>=2)] for c ~ Binomial(n, p) = n p - n p (1-p)^(n-1)
    nv = n_valid[n_valid > 0]
    expected = float(np.sum(nv * rate - nv * rate * (1 - rate) ** (nv - 1)))
    lo, hi = poisson_interval(observed)

    def pur(obs: float) -> float | None:
        return float(1 - max(obs - expected, 0.0) / total) if total else None

    return {"method": "labelled pixels at detector pixels labelled in >= 2 frames vs the binomial chance "
                      "expectation at the labelling rate implied by the never-labelled pixels; purity = 1 - excess / labelled; "
                      "95% exact Poisson interval on the observed count",
            "n_frames": len(frames), "labelled_pixels": int(total), "recurring_pixels_observed": int(observed),
            "recurring_pixels_expected": expected, "chance_rate": rate, "pixel_purity": pur(observed),
            "pixel_purity_interval": [pur(hi), pur(lo)] if total else None}


def held_back_agreement(frames_adu: np.ndarray, labels: SeriesLabels, model: SeriesModel, *,
                        seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Label each frame from two disjoint halves of its companions and compare (module docstring)."""
    p = labels.params
    sub_e, sky_e = series_electrons(frames_adu, model)
    rows = []
    for f in stage([f for f in labels.frames if not f.rejected], "label quality: held-back companions", progress):
        comps = list(f.label_companions)
        a_idx, b_idx = comps[0::2], comps[1::2]
        if len(a_idx) < 2 or len(b_idx) < 2:
            continue
        src_amb = f.sources if f.sources_ambiguous is None else f.sources_ambiguous
        masks = []
        for idx in (a_idx, b_idx):
            snr, valid = frame_snr(sub_e, sky_e, model, p, f.index, idx)
            masks.append((snr, valid))
        ignore = f.ignore | ~masks[0][1] | ~masks[1][1]
        la = rule_components(masks[0][0], masks[0][1], ignore, src_amb, labels.veto, p)
        lb = rule_components(masks[1][0], masks[1][1], ignore, src_amb, labels.veto, p)
        row = []
        for x, y in ((la, lb), (lb, la)):
            lab, n = ndimage.label(x, EIGHT)
            found = int(ndimage.maximum(y, lab, np.arange(1, n + 1)).astype(bool).sum()) if n else 0
            row += [found, n]
        rows.append(row)
    a = np.array(rows, float).reshape(-1, 4) if rows else np.zeros((0, 4))
    rng = np.random.default_rng(seed)
    num, den = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    return {"method": "frame labelled from companions 1,3,5 and from 2,4,6 (nearest-first); share of components "
                      "of one labelling overlapped by the other, both ways; 95% bootstrap over frames",
            "n_frames": int(len(a)), "components": int(den.sum()),
            "component_agreement": float(num.sum() / den.sum()) if den.sum() else None,
            "component_agreement_interval": _bootstrap(num, den, lambda n, d: n / d, rng)}
