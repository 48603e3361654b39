"""False positives on astronomical sources (stars, galaxy cores).

Sources are the 8-connected components of a sample's ``sources`` mask. For each source:

- centre = flux-weighted centroid of ``max(image - sky, 0)`` over the component (geometric centre
  when it has no positive flux);
- flux = sum of ``image - sky`` over the component (e-);
- S/N = flux / sqrt(sum of max(image, 0) + n_pixels * read_noise^2) (CCD equation over the component);
- ``bin_max`` = the highest score bin of the non-CR, non-ignored pixels within one PSF FWHM of the
  centre (-1 when there is none): the source is *flagged* at bin threshold ``t`` iff ``bin_max >= t``.

Pixel FPR on sources vs sky splits the negative histogram into negatives inside the sources mask and
the rest.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

#: S/N bin edges of the source report.
SNR_EDGES = (0.0, 10.0, 30.0, 100.0, 300.0, 1000.0, np.inf)
SOURCE_TABLE_COLUMNS = ("x", "y", "flux", "snr", "bin_max")

_EIGHT = np.ones((3, 3), dtype=bool)


def source_table(image: np.ndarray, sources: np.ndarray, bins: np.ndarray, *, sky: float, read_noise: float,
                 fwhm: float, truth: np.ndarray | None = None, valid: np.ndarray | None = None) -> pd.DataFrame:
    """Threshold-free per-source table of one sample (see the module docstring).

    Parameters
    ----------
    image : ndarray (H, W)
        Image in electrons.
    sources : ndarray of bool (H, W)
        Source mask.
    bins : ndarray of int (H, W)
        Score bin index of every pixel (the score used for FPR).
    sky, read_noise : float
        Background level and read noise (e-).
    fwhm : float
        PSF FWHM in pixels: the radius within which a flagged pixel counts against the source.
    truth, valid : ndarray of bool, optional
        CR pixels and non-ignored pixels; CR pixels and ignored pixels never count as flags.

    Returns
    -------
    DataFrame
        Columns :data:`SOURCE_TABLE_COLUMNS`.
    """
    from .instances import sparse_components

    flat = np.flatnonzero(sources)
    if flat.size > 0.1 * sources.size:  # dense mask: one labelling pass
        lab, n = ndimage.label(sources, structure=_EIGHT)
        k = lab.ravel()[flat] - 1
    else:
        n, k = sparse_components(flat, sources.shape)
    if n == 0:
        return pd.DataFrame({c: pd.Series([], dtype="float64" if c != "bin_max" else "int64")
                             for c in SOURCE_TABLE_COLUMNS})
    h, wd = image.shape
    ys, xs = np.divmod(flat, wd)
    img = image.ravel()[flat].astype(np.float64)
    net = img - float(sky)
    w = np.maximum(net, 0.0)
    wsum = np.bincount(k, weights=w, minlength=n)
    npix = np.bincount(k, minlength=n).astype(np.float64)
    ok = wsum > 0
    safe = np.where(ok, wsum, 1.0)
    cy = np.where(ok, np.bincount(k, weights=w * ys, minlength=n) / safe, np.bincount(k, weights=ys, minlength=n) / npix)
    cx = np.where(ok, np.bincount(k, weights=w * xs, minlength=n) / safe, np.bincount(k, weights=xs, minlength=n) / npix)
    flux = np.bincount(k, weights=net, minlength=n)
    var = np.bincount(k, weights=np.maximum(img, 0.0), minlength=n) + npix * float(read_noise) ** 2
    snr = flux / np.sqrt(np.maximum(var, 1e-12))
    # highest usable bin within one FWHM of each centre (vectorised over sources x window offsets)
    r = max(float(fwhm), 0.5)
    ri = int(np.ceil(r))
    off = np.arange(-ri, ri + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    py = np.rint(cy).astype(np.int64)[:, None] + oy.ravel()[None, :]
    px = np.rint(cx).astype(np.int64)[:, None] + ox.ravel()[None, :]
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < wd)
    disc = inside & ((py - cy[:, None]) ** 2 + (px - cx[:, None]) ** 2 <= r * r)
    nb = np.clip(py, 0, h - 1) * wd + np.clip(px, 0, wd - 1)
    if truth is not None:
        disc &= ~truth.ravel()[nb]
    if valid is not None:
        disc &= valid.ravel()[nb]
    vals = np.where(disc, bins.ravel()[nb].astype(np.int64), -1)
    bin_max = vals.max(axis=1)
    return pd.DataFrame({"x": cx, "y": cy, "flux": flux, "snr": snr, "bin_max": bin_max})


def source_metrics(table: pd.DataFrame, t: int, snr_edges: Sequence[float] = SNR_EDGES) -> dict[str, Any]:
    """Fraction of sources flagged within one FWHM at bin threshold ``t``, overall and by S/N.

    Returns
    -------
    dict
        ``n_sources``, ``source_flag_fraction`` and ``by_snr``: a list of rows ``snr_lo``,
        ``snr_hi``, ``n_sources``, ``flag_fraction`` (NaN for empty bins).
    """
    n = int(len(table))
    flagged = table["bin_max"].to_numpy() >= t if n else np.zeros(0, bool)
    snr = table["snr"].to_numpy() if n else np.zeros(0)
    rows = []
    for lo, hi in zip(snr_edges[:-1], snr_edges[1:]):
        sel = (snr >= lo) & (snr < hi)
        k = int(sel.sum())
        rows.append({"snr_lo": float(lo), "snr_hi": float(hi) if np.isfinite(hi) else None, "n_sources": k,
                     "flag_fraction": float(flagged[sel].mean()) if k else float("nan")})
    return {"n_sources": n, "source_flag_fraction": float(flagged.mean()) if n else float("nan"), "by_snr": rows}
