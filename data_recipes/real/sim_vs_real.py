"""Simulated vs real CR populations of a labelled series, by the same unit and classifier.

Real CRs are the labelled components of the series (8-connected, charge = frame minus the
companions' median). Simulated CRs are drawn with a preset onto each real frame's clean background
and noise, kept under the same truth rule, dropped where they touch that frame's ignore mask (as the
labelling drops ambiguous components), and measured the same way: 8-connected components of the
truth mask, charge = image minus background (noise included), geometric class from
:func:`data_recipes.real.labelling.classify_morphology`.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from crbench.sample import MORPHOLOGIES

from ._common import simulate_cr_layer
from .labelling import EIGHT, SeriesLabels, SeriesModel, instance_table


def real_cr_table(labels: SeriesLabels) -> pd.DataFrame:
    """Labelled CRs of the non-rejected frames: ``frame, pixels, charge, morphology``."""
    rows = [f.instances.assign(frame=f.index) for f in labels.frames if not f.rejected and len(f.instances)]
    cols = ["frame", "pixels", "charge", "morphology"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def sim_cr_table(labels: SeriesLabels, model: SeriesModel, preset: Any, *, exptime: float, rate_scale: float,
                 seed: int = 0) -> pd.DataFrame:
    """Simulated CRs on the real frames' backgrounds, measured like the real ones (module docstring)."""
    rng = np.random.default_rng(seed)
    rn = model.noise.read_noise
    rows = []
    for f in labels.frames:
        if f.rejected:
            continue
        bg = np.maximum(model.model_in_frame_e(f.index), 0.0)
        sigma = np.sqrt(rn ** 2 + bg)
        layer = simulate_cr_layer(rng, bg.shape, exptime, noise_sigma=sigma, preset=preset, rate_scale=rate_scale)
        img = rng.poisson(bg).astype(np.float64) + rng.normal(0.0, rn, bg.shape) + layer.charge
        truth = layer.labels > 0
        lab, n = ndimage.label(truth, EIGHT)
        if n:
            touch = ndimage.maximum(f.ignore, lab, np.arange(1, n + 1)).astype(bool)
            truth &= ~np.isin(lab, np.flatnonzero(touch) + 1)
        _, table = instance_table(truth, img - bg)
        if len(table):
            rows.append(table.assign(frame=f.index))
    cols = ["frame", "pixels", "charge", "morphology"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def compare_populations(real: pd.DataFrame, sim: pd.DataFrame) -> dict[str, Any]:
    """KS statistics of charge and size, morphology shares and their chi-square test."""
    out: dict[str, Any] = {"n_real": int(len(real)), "n_sim": int(len(sim))}
    for col in ("charge", "pixels"):
        a, b = real[col].to_numpy(float), sim[col].to_numpy(float)
        ks = stats.ks_2samp(a, b) if len(a) and len(b) else None
        out[col] = {"median_real": float(np.median(a)) if len(a) else None,
                    "median_sim": float(np.median(b)) if len(b) else None,
                    "ks": None if ks is None else float(ks.statistic), "p": None if ks is None else float(ks.pvalue)}
    cr = np.array([int((real["morphology"] == m).sum()) for m in MORPHOLOGIES])
    cs = np.array([int((sim["morphology"] == m).sum()) for m in MORPHOLOGIES])
    keep = (cr + cs) > 0
    chi = stats.chi2_contingency(np.stack([cr[keep], cs[keep]])) if keep.sum() >= 2 and cr.sum() and cs.sum() else None
    out["morphology"] = {"classes": list(MORPHOLOGIES),
                         "share_real": (cr / max(cr.sum(), 1)).tolist(), "share_sim": (cs / max(cs.sum(), 1)).tolist(),
                         "chi2": None if chi is None else float(chi[0]), "p": None if chi is None else float(chi[1])}
    return out


def plot_populations(real: pd.DataFrame, sims: Mapping[str, pd.DataFrame], stem: str, *, title: str) -> list[str]:
    """Charge, size and morphology of real vs simulated CRs side by side; writes ``stem``.png and .pdf."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    qmax = max([float(real["charge"].max())] + [float(s["charge"].max()) for s in sims.values() if len(s)])
    cbins = np.logspace(1.5, np.log10(max(qmax, 100.0)) + 0.05, 30)
    pmax = max([int(real["pixels"].max())] + [int(s["pixels"].max()) for s in sims.values() if len(s)])
    pbins = np.arange(0.5, min(pmax, 60) + 1.5)
    series = {"real (labelled)": real, **sims}
    for k, (name, d) in enumerate(series.items()):
        style = {"histtype": "step", "lw": 2 if k == 0 else 1.3, "label": f"{name} (n={len(d)})",
                 "weights": np.full(len(d), 1.0 / max(len(d), 1))}
        ax[0].hist(np.clip(d["charge"], cbins[0], cbins[-1]), bins=cbins, **style)
        ax[1].hist(np.clip(d["pixels"], 1, pbins[-1]), bins=pbins, **style)
        share = [(d["morphology"] == m).mean() if len(d) else 0 for m in MORPHOLOGIES]
        w = 0.8 / len(series)
        ax[2].bar(np.arange(len(MORPHOLOGIES)) + (k - (len(series) - 1) / 2) * w, share, width=w, label=name)
    ax[0].set_xscale("log")
    ax[0].set_xlabel("CR charge (e-)")
    ax[1].set_xlabel("CR size (pixels, 8-connected)")
    ax[2].set_xticks(range(len(MORPHOLOGIES)), MORPHOLOGIES)
    ax[2].set_ylabel("share")
    ax[0].set_ylabel("share of CRs per bin")
    ax[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    paths = []
    for ext in ("png", "pdf"):
        path = f"{stem}.{ext}"
        tmp = f"{stem}.tmp.{ext}"
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths
