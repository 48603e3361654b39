"""``sim-basic``: the foundation's simple simulated recipe (embedded, no download).

Sky, Gaussian-PSF stars, Poisson and read noise, CR spots and straight tracks with exact truth
and instance labels, and N aligned exposures of the same scene with independent noise and CRs.
It drives ``crbench demo``; the physical simulator (``data_recipes.sim``) supersedes its CR model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crbench.dataset import write_dataset
from crbench.portable import digitise, round_table
from crbench.recipes import Recipe
from crbench.observation import saturation_dqmask
from crbench.sample import Sample

from ._options import image_shape, positive_int, positive_seconds
from crbench.truth import DEFAULT_RULE, apply_truth_rule

DEFAULTS: dict[str, Any] = {
    "n_images": 24,
    "shape": (256, 256),
    "exposures": 3,
    "exposure_time": 500.0,
    "seed": 1,
    "gain": 2.0,
    "read_noise": 4.0,
    "sky_rate": 0.5,          # e-/s/px
    "cr_rate": 0.02,          # CRs per pixel per 1000 s (order of HST ACS/WFC)
    "psf_fwhm": 2.2,
    "n_stars": 60,
}


def _stars(rng: np.random.Generator, shape: tuple[int, int], n: int, fwhm: float, exptime: float):
    h, w = shape
    sigma = fwhm / 2.3548
    yy, xx = np.mgrid[0:h, 0:w]
    scene = np.zeros(shape, np.float64)
    # power-law flux distribution (dN/dF ~ F^-2.5 above a floor)
    flux = 200.0 * exptime / 100 * (1 - rng.random(n)) ** (-1 / 1.5)
    ys, xs = rng.uniform(0, h, n), rng.uniform(0, w, n)
    table = []
    for y0, x0, f in zip(ys, xs, flux):
        y_lo, y_hi = int(max(0, y0 - 5 * sigma)), int(min(h, y0 + 5 * sigma + 1))
        x_lo, x_hi = int(max(0, x0 - 5 * sigma)), int(min(w, x0 + 5 * sigma + 1))
        sub_y, sub_x = yy[y_lo:y_hi, x_lo:x_hi], xx[y_lo:y_hi, x_lo:x_hi]
        scene[y_lo:y_hi, x_lo:x_hi] += f / (2 * np.pi * sigma**2) * np.exp(
            -((sub_y - y0) ** 2 + (sub_x - x0) ** 2) / (2 * sigma**2))
        table.append((x0, y0, f))
    return scene, pd.DataFrame(table, columns=["x", "y", "flux"])


def _cr_layer(rng: np.random.Generator, shape: tuple[int, int], n_crs: int):
    """Charge (e-) and instance-id maps for ``n_crs`` spots and straight tracks."""
    h, w = shape
    charge = np.zeros(shape, np.float64)
    owner = np.zeros(shape, np.int32)
    rows = []
    for k in range(1, n_crs + 1):
        is_track = rng.random() < 0.35
        y0, x0 = rng.uniform(2, h - 2), rng.uniform(2, w - 2)
        layer = np.zeros(shape, np.float64)
        if is_track:
            length = rng.uniform(6, 30)
            ang = rng.uniform(0, np.pi)
            n_steps = int(length * 4)
            t = np.linspace(0, length, n_steps)
            ys = np.clip(y0 + t * np.sin(ang), 0, h - 1)
            xs = np.clip(x0 + t * np.cos(ang), 0, w - 1)
            q = rng.uniform(150, 600) * length / n_steps  # e- per step
            np.add.at(layer, (np.round(ys).astype(int), np.round(xs).astype(int)), q)
        else:
            total = rng.lognormal(np.log(1500), 0.5)
            iy, ix = int(y0), int(x0)
            fy, fx = y0 - iy, x0 - ix
            # bilinear split over 2x2 plus a diffusion halo: 4-5 pixels typically
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    yy, xx = min(iy + dy, h - 1), min(ix + dx, w - 1)
                    layer[yy, xx] += total * (0.15 + 0.7 * wy * wx)
        pix = layer > 0
        new = pix & (owner == 0)
        if not new.any():
            continue
        owner[new] = k
        charge += layer
        rows.append((k, "track" if is_track else "spot", "muon" if is_track else "electron",
                     int(new.sum()), float(layer.sum())))
    return charge, owner, rows


def simulate_sample(rng: np.random.Generator, sample_id: str, opts: dict[str, Any]) -> Sample:
    """One sample: primary exposure with labelled CRs and N-1 aligned companions."""
    shape = (int(opts["shape"][0]), int(opts["shape"][1]))
    t = float(opts["exposure_time"])
    sky = float(opts["sky_rate"]) * t
    scene, stars = _stars(rng, shape, int(opts["n_stars"]), float(opts["psf_fwhm"]), t)
    rn = float(opts["read_noise"])
    n_pix = shape[0] * shape[1]
    expected_crs = float(opts["cr_rate"]) * n_pix / 1000.0 * t / 1000.0 * 1000 / 25
    frames, truth, labels, table, halo, halo_only = [], None, None, None, None, 0
    for e in range(int(opts["exposures"])):
        charge, owner, rows = _cr_layer(rng, shape, rng.poisson(expected_crs))
        noisy = rng.poisson(np.maximum(sky + scene, 0)).astype(np.float64) + rng.normal(0, rn, shape)
        frames.append(digitise(noisy + charge, float(opts["gain"])).astype(np.float32))
        if e == 0:
            # the library's truth rule on CR charge / local noise sigma (crbench.truth)
            sigma = np.sqrt(rn**2 + np.maximum(sky + scene, 0))
            mask, halo = apply_truth_rule(charge / sigma, owner > 0, DEFAULT_RULE)
            labels = np.where(mask, owner, 0).astype(np.int32)
            truth = labels > 0
            ids, counts = np.unique(labels[truth], return_counts=True)
            halo_only = int(np.setdiff1d(np.unique(owner[halo]), ids).size)
            kept = dict(zip(ids.tolist(), counts.tolist()))
            table = pd.DataFrame(
                [(k, m, g, kept[k], float(charge[labels == k].sum()), False) for k, m, g, _, _ in rows if k in kept],
                columns=["id", "morphology", "generator", "pixels", "charge", "saturated"],
            )
            table["id"] = table["id"].astype("int32")
    sources = scene > 3 * np.sqrt(sky + rn**2)
    meta: dict[str, Any] = {
        "gain": float(opts["gain"]), "read_noise": rn, "sky": sky, "exptime": t,
        "saturation": 80000.0, "instrument": "sim-basic", "pixel_scale": 0.05,
        "psf_fwhm": float(opts["psf_fwhm"]), "truth_rule": DEFAULT_RULE.name, "halo_only_crs": halo_only,
    }
    return Sample(id=sample_id, image=frames[0], truth=truth, ignore=np.zeros(shape, bool), labels=labels,
                  instances=round_table(table), sources=sources, halo=halo,
                  exposures=np.stack(frames[1:]) if len(frames) > 1 else None, meta=meta,
                  dqmask=saturation_dqmask(frames[0], meta["saturation"]))


def split_ids(ids: list[str], fractions=(0.5, 0.25, 0.25)) -> dict[str, list[str]]:
    """Deterministic train/val/test split of ``ids`` in order."""
    n = len(ids)
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    return {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}


def check_options(opts: dict[str, Any]) -> dict[str, Any]:
    """Validate the size options of ``sim-basic``; return them normalised.

    Parameters
    ----------
    opts : dict
        The recipe's options (:data:`DEFAULTS` updated with the user's).

    Returns
    -------
    dict
        ``opts`` with ``n_images`` and ``exposures`` as int, ``shape`` as an (H, W) tuple and
        ``exposure_time`` as float.

    Raises
    ------
    DatasetError
        Naming the option and the expected range.
    """
    out = dict(opts)
    out["n_images"] = positive_int("sim-basic", opts, "n_images")
    out["exposures"] = positive_int("sim-basic", opts, "exposures")
    out["shape"] = image_shape("sim-basic", opts)
    out["exposure_time"] = positive_seconds("sim-basic", opts)
    return out


def build(out: Path, *, progress: bool = True, **options: Any):
    """Build ``sim-basic`` into ``out``."""
    opts = dict(DEFAULTS)
    opts.update(options)
    opts = check_options(opts)
    rng = np.random.default_rng(int(opts["seed"]))
    ids = [f"basic-{i:04d}" for i in range(int(opts["n_images"]))]
    # filled while the samples are written; write_dataset reads ``extra`` after the last one
    rule_card = {**DEFAULT_RULE.to_dict(), "halo_only_crs_dropped": 0}

    def samples():
        for sid in ids:
            s = simulate_sample(rng, sid, opts)
            rule_card["halo_only_crs_dropped"] += int(s.meta["halo_only_crs"])
            yield s

    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}
    return write_dataset(out, samples(), name="sim-basic", splits=split_ids(ids), recipe="sim-basic",
                         parameters=params, seed=int(opts["seed"]), progress=progress,
                         provenance=[{"origin": "simulated by data_recipes.basic", "sha256": None}],
                         extra={"truth_rule": rule_card})


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


RECIPES.append(Recipe(
    name="sim-basic",
    description="Foundation simulation: sky, Gaussian stars, spots and straight tracks, 3 exposures (no download)",
    kind="simulated",
    build=build,
    defaults={k: DEFAULTS[k] for k in ("n_images", "shape", "exposures", "exposure_time", "seed")},
))
