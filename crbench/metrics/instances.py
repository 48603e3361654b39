"""Per-CR (instance) metrics from the instance labels, at an operating point.

Everything here works on *score bin indices* (the run's :class:`~crbench.metrics.Binning`), so a
per-sample table is independent of the threshold and the metrics can be computed later at any
operating point ``t`` (a pixel is flagged when its bin index is ``>= t``).

Per instance the table keeps three threshold-free numbers:

- ``bin_any``: the highest bin of its pixels; the CR counts as found by the *any-pixel* rule at
  threshold ``t`` iff ``bin_any >= t``.
- ``bin_half``: the ``ceil(n / 2)``-th highest bin of its ``n`` pixels; found by the *>= 50% of
  its pixels* rule iff ``bin_half >= t``.
- ``bin_charge90``: the bin at which the charge of its pixels, taken from the highest score down,
  first reaches 90% of its total; found by the *>= 90% of its charge* rule iff ``bin_charge90 >= t``.

**Charge** of a CR pixel = ``max(image - local background, 0)`` in electrons, the local background
being the median of the non-CR, non-ignored pixels within :data:`BACKGROUND_MARGIN` pixels of the
instance (the sample's ``sky`` when there are none). The instance table's
``charge`` column holds only a total per CR, not the per-pixel split that the 90% rule needs, so the
image is used; an instance whose pixels all have zero charge falls back to equal weights.

Ignored pixels are no part of any instance (an instance entirely inside the ignore mask is dropped).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Distance (pixels) around an instance within which its local background is measured.
BACKGROUND_MARGIN = 2
#: The charge fraction of the charge rule.
CHARGE_FRACTION = 0.9
#: Columns of the per-sample instance table.
INSTANCE_TABLE_COLUMNS = ("id", "morphology", "pixels", "charge", "bin_any", "bin_half", "bin_charge90")



def cr_pixel_charge(image: np.ndarray, labels: np.ndarray, flat: np.ndarray, valid: np.ndarray | None = None,
                    sky: float = 0.0) -> np.ndarray:
    """CR charge (e-) at the CR pixels ``flat`` (flat indices): image minus the local background.

    The local background of an instance is the median of the non-CR, non-ignored pixels within
    :data:`BACKGROUND_MARGIN` pixels of any of its pixels (``sky`` when there are none). Sparse:
    the cost grows with the number of CR pixels, not the image size.
    """
    h, w = image.shape
    flat = np.asarray(flat, dtype=np.int64)
    if flat.size == 0:
        return np.zeros(0, np.float64)
    lab_flat = labels.ravel()
    img_flat = image.ravel()
    lab = lab_flat[flat].astype(np.int64)
    ys, xs = np.divmod(flat, w)
    m = BACKGROUND_MARGIN
    offs = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1) if dy or dx]
    dy = np.array([o[0] for o in offs])[None, :]
    dx = np.array([o[1] for o in offs])[None, :]
    ny, nx = ys[:, None] + dy, xs[:, None] + dx
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    nb = (np.clip(ny, 0, h - 1) * w + np.clip(nx, 0, w - 1))
    owner = np.broadcast_to(lab[:, None], nb.shape)
    ok = inside & (lab_flat[nb] == 0)
    if valid is not None:
        ok &= valid.ravel()[nb]
    size = h * w
    keys = np.unique(owner[ok].astype(np.int64) * size + nb[ok])  # each background pixel once per instance
    pairs = np.stack([keys // size, keys % size])
    uniq = np.unique(lab)
    bg = np.full(uniq.size, float(sky))
    if pairs.shape[1]:
        vals = img_flat[pairs[1]].astype(np.float64)
        order = np.lexsort((vals, pairs[0]))
        own, vals = pairs[0][order], vals[order]
        starts = np.r_[0, np.nonzero(np.diff(own))[0] + 1]
        counts = np.diff(np.r_[starts, own.size])
        med = (vals[starts + (counts - 1) // 2] + vals[starts + counts // 2]) / 2
        bg[np.searchsorted(uniq, own[starts])] = med
    return np.maximum(img_flat[flat].astype(np.float64) - bg[np.searchsorted(uniq, lab)], 0.0)


def pixel_charge(image: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None,
                 sky: float = 0.0) -> np.ndarray:
    """Per-pixel CR charge as a full map (zero outside CR pixels); see :func:`cr_pixel_charge`."""
    out = np.zeros(image.shape, dtype=np.float64)
    flat = np.flatnonzero(labels)
    out.ravel()[flat] = cr_pixel_charge(image, labels, flat, valid, sky)
    return out


def instance_table(labels: np.ndarray, bins: np.ndarray, charge: np.ndarray,
                   morphology: dict[int, str] | None = None, valid: np.ndarray | None = None) -> pd.DataFrame:
    """Threshold-free per-instance table of one sample (see the module docstring).

    Parameters
    ----------
    labels : ndarray of int (H, W)
        Instance ids, 0 = no CR.
    bins : ndarray of int (H, W)
        Score bin index of every pixel (of the score used for TPR, i.e. dilated when the
        convention dilates for TPR).
    charge : ndarray of float (H, W)
        Per-pixel charge (see :func:`pixel_charge`).
    morphology : dict, optional
        Instance id -> morphology class (``'unknown'`` when missing).
    valid : ndarray of bool, optional
        Pixels that count (ignored pixels are dropped from instances).

    Returns
    -------
    DataFrame
        Columns :data:`INSTANCE_TABLE_COLUMNS`, one row per instance with at least one valid pixel.
    """
    sel = labels > 0
    if valid is not None:
        sel &= valid
    return instance_table_from_pixels(labels[sel], bins[sel], charge[sel], morphology)


def instance_table_from_pixels(lab: np.ndarray, b: np.ndarray, q: np.ndarray,
                               morphology: dict[int, str] | None = None) -> pd.DataFrame:
    """:func:`instance_table` from the CR pixels' instance ids, bins and charges (1-D arrays)."""
    lab = np.asarray(lab).astype(np.int64)
    if lab.size == 0:
        return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in zip(
            INSTANCE_TABLE_COLUMNS, ("int64", "object", "int64", "float64", "int64", "int64", "int64"))})
    b = np.asarray(b).astype(np.int64)
    q = np.asarray(q).astype(np.float64)
    order = np.lexsort((-b, lab))  # by instance, then highest bin first
    lab, b, q = lab[order], b[order], q[order]
    starts = np.r_[0, np.nonzero(np.diff(lab))[0] + 1]
    counts = np.diff(np.r_[starts, lab.size])
    ids = lab[starts]
    bin_any = b[starts]
    bin_half = b[starts + (counts + 1) // 2 - 1]
    total = np.add.reduceat(q, starts)
    zero = total <= 0
    if zero.any():  # no measurable charge: equal weights
        q = np.where(np.repeat(zero, counts), 1.0, q)
        total = np.add.reduceat(q, starts)
    cum = np.cumsum(q)
    cum_in = cum - np.repeat(np.r_[0.0, cum[starts[1:] - 1]], counts)
    reached = cum_in >= CHARGE_FRACTION * np.repeat(total, counts) * (1 - 1e-12)
    # first index per group where the running charge reaches 90%
    pos = np.arange(lab.size)
    first = np.minimum.reduceat(np.where(reached, pos, lab.size), starts)
    bin_charge90 = b[np.minimum(first, lab.size - 1)]
    morph = morphology or {}
    return pd.DataFrame({
        "id": ids,
        "morphology": [str(morph.get(int(i), "unknown")) for i in ids],
        "pixels": counts.astype(np.int64),
        "charge": np.where(zero, 0.0, total),
        "bin_any": bin_any,
        "bin_half": bin_half,
        "bin_charge90": bin_charge90,
    })


def charge_histogram(labels: np.ndarray, bins: np.ndarray, charge: np.ndarray,
                     valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sparse histogram of CR charge by score bin: (bin indices, summed charge e-).

    The residual (unflagged) CR charge at threshold ``t`` is the sum over bins ``< t``.
    """
    sel = labels > 0
    if valid is not None:
        sel &= valid
    return charge_histogram_from_pixels(bins[sel], charge[sel])


def charge_histogram_from_pixels(b: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`charge_histogram` from the CR pixels' bins and charges (1-D arrays)."""
    b = np.asarray(b).astype(np.int64)
    if b.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    uniq, inv = np.unique(b, return_inverse=True)
    return uniq, np.bincount(inv, weights=np.asarray(q, dtype=np.float64), minlength=uniq.size)


def residual_charge(hist: tuple[np.ndarray, np.ndarray], t: int) -> float:
    """CR charge (e-) left unflagged at bin threshold ``t``."""
    idx, q = hist
    return float(q[idx < t].sum())


def fp_components(flagged: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> int:
    """Number of 8-connected components of ``flagged`` (valid pixels only) with no truth pixel."""
    m = flagged if valid is None else (flagged & valid)
    return fp_components_sparse(np.flatnonzero(m), truth, m.shape)


def fp_components_sparse(flat: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> int:
    """:func:`fp_components` from the sorted flat indices of the flagged pixels.

    Sparse union of 8-neighbours (cost grows with the number of flagged pixels).
    """
    flat = np.asarray(flat, dtype=np.int64)
    if flat.size == 0:
        return 0
    n, comp = sparse_components(flat, shape)
    hit = np.zeros(n, dtype=bool)
    hit[comp[truth.ravel()[flat]]] = True
    return int(n - hit.sum())


def sparse_components(flat: np.ndarray, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
    """8-connected components of the pixels at sorted flat indices ``flat``: (count, component of each)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    flat = np.asarray(flat, dtype=np.int64)
    k = flat.size
    if k == 0:
        return 0, np.zeros(0, np.int64)
    h, w = shape
    ys, xs = np.divmod(flat, w)
    src, dst = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        ny, nx = ys + dy, xs + dx
        ok = (ny < h) & (nx >= 0) & (nx < w)
        target = ny * w + nx
        pos = np.searchsorted(flat, target)
        pos_c = np.minimum(pos, k - 1)
        hit = ok & (flat[pos_c] == target)
        src.append(np.nonzero(hit)[0])
        dst.append(pos_c[hit])
    src_a, dst_a = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(src_a.size, np.int8), (src_a, dst_a)), shape=(k, k))
    n, comp = connected_components(graph, directed=False)
    return int(n), comp


#: The per-CR completeness rules: result column -> instance-table column (found iff ``col >= t``).
PER_CR_RULES = (("recall_any", "bin_any"), ("recall_half", "bin_half"), ("recall_charge90", "bin_charge90"))


def per_cr_recall(table: pd.DataFrame, t: int, weights: np.ndarray | None = None) -> dict[str, float]:
    """Completeness of each rule in :data:`PER_CR_RULES` at bin threshold ``t`` (the one implementation).

    Parameters
    ----------
    table : DataFrame
        Instance table (``bin_any``, ``bin_half``, ``bin_charge90`` columns).
    t : int
        Bin threshold (flag bins ``>= t``).
    weights : ndarray, optional
        Weight of each row (bootstrap replicate); all ones when None.

    Returns
    -------
    dict
        ``n_crs`` (weighted count), then for each rule its recall (NaN when there is no CR) and
        ``<rule>_found`` (weighted count of CRs found).
    """
    w = np.ones(len(table)) if weights is None else np.asarray(weights, dtype=np.float64)
    tot = float(w.sum())
    out: dict[str, float] = {"n_crs": tot}
    for rule, col in PER_CR_RULES:
        found = float(w @ (table[col].to_numpy() >= t)) if len(table) else 0.0
        out[f"{rule}_found"] = found
        out[rule] = found / tot if tot else float("nan")
    return out


def instance_metrics(table: pd.DataFrame, t: int) -> dict[str, Any]:
    """Completeness under the three rules at bin threshold ``t``.

    Returns
    -------
    dict
        ``n_crs``, ``cr_pixels``, ``recall_any``, ``recall_half``, ``recall_charge90``
        (NaN when there is no CR).
    """
    n = int(len(table))
    out: dict[str, Any] = {"n_crs": n, "cr_pixels": int(table["pixels"].sum()) if n else 0}
    r = per_cr_recall(table, t)
    for rule, _ in PER_CR_RULES:
        out[rule] = r[rule]
    return out
