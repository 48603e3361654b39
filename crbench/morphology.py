"""Geometric morphology classes of cosmic-ray footprints: spot, track, worm, blob.

Works on any truth mask, real or simulated. Features of each footprint (8-connected component
of a mask, or all pixels of one instance id):

``area``         number of pixels A
``feret``        maximum Feret length L: largest distance between pixel centres, plus 1 (px)
``elongation``   e = sqrt(l1 / l2) of the second moments of the pixel centres (each eigenvalue
                 plus 1/12, the variance of a uniform pixel, so that lines stay finite)
``perp``         RMS distance of the pixel centres from the principal axis, sqrt(l2)
``tortuosity``   tau = skeleton length / (L - 1) (1 for footprints with L = 1); the skeleton
                 comes from scikit-image (a hard dependency)
``solidity``     A / pixels whose centres lie inside the convex hull of the pixel centres
``n_saturated``  saturated pixels in the footprint

The classification unit is the 8-connected component of a truth mask, for simulated and real CRs
alike (:func:`classify_by_component`): touching simulated CRs are classified together, as a real
label map (which has no event ids) must be.

Rules, in order (docs/physics.md#morphology-rules); on IR arrays with inter-pixel capacitance,
rules 2-5 use the footprint's :func:`intrinsic_shape` (the IPC ring of ``ipc_ring_px`` taken off):

1. **blob** if (n_saturated >= 1 and A >= 20) or (A >= 20 and e <= 1.5 and solidity >= 0.9)
2. **spot** if L <= 3, or L <= 5 and e < 2
3. **track** if perp <= 0.6 + sigma_diffusion_px and tau <= 1.3 and e >= 2
4. **worm** if L > 5
5. otherwise **spot**
"""
from __future__ import annotations

import math

from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.morphology import skeletonize as _skeletonize

from .errors import SampleError

FEATURE_COLUMNS = ("id", "morphology", "area", "feret", "elongation", "perp", "tortuosity", "solidity",
                   "n_saturated", "y", "x")

_SQRT2 = float(np.sqrt(2.0))


def _feret(ys: np.ndarray, xs: np.ndarray) -> float:
    n = ys.size
    if n == 1:
        return 1.0
    if n > 300:
        from scipy.spatial import ConvexHull, QhullError

        pts = np.stack([xs, ys], 1).astype(float)
        try:
            hull = ConvexHull(pts)
            pts = pts[hull.vertices]
        except (QhullError, ValueError):  # collinear: the extremes suffice
            i = np.argsort(xs + 1e-3 * ys)
            pts = pts[[i[0], i[-1]]]
        ys, xs = pts[:, 1], pts[:, 0]
    d2 = (ys[:, None] - ys[None, :]) ** 2 + (xs[:, None] - xs[None, :]) ** 2
    return float(np.sqrt(d2.max())) + 1.0


def _second_moment_eigenvalues(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float]:
    """(larger, smaller) eigenvalue of the population covariance of integer pixel centres, in closed form.

    The sums are exact integers and the rest is scalar IEEE arithmetic, so the result does not depend
    on the BLAS/LAPACK or SIMD kernels of the machine (``np.cov`` + ``eigvalsh`` did: a lattice footprint
    whose elongation is exactly 2 came out as 2.0 on one CPU and 1.9999999999999998 on another, and was
    classed track on one and worm on the other).
    """
    n = int(ys.size)
    if n < 2:
        return 0.0, 0.0
    y = ys.astype(np.int64)
    x = xs.astype(np.int64)
    sy, sx = int(y.sum()), int(x.sum())
    a = n * int((y * y).sum()) - sy * sy          # n^2 var(y)
    c = n * int((x * x).sum()) - sx * sx          # n^2 var(x)
    b = n * int((x * y).sum()) - sx * sy          # n^2 cov(x, y)
    disc = (a - c) ** 2 + 4 * b * b
    root = math.isqrt(disc)
    r = float(root) if root * root == disc else math.sqrt(disc)
    n2 = 2 * n * n
    return max((a + c + r) / n2, 0.0), max((a + c - r) / n2, 0.0)


def _snap(value: float) -> float:
    """``value`` rounded to 12 decimals: ties of the rules (e.g. elongation exactly 2 on the pixel lattice)
    then fall on the same side on every machine."""
    return round(float(value), 12)


def _solidity(ys: np.ndarray, xs: np.ndarray) -> float:
    """A / number of pixel centres inside the convex hull of the footprint's pixel centres."""
    n = ys.size
    if n < 3:
        return 1.0
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(np.stack([xs, ys], 1))
    except (QhullError, ValueError):  # collinear footprint
        return 1.0
    a, b, c = hull.equations[:, 0], hull.equations[:, 1], hull.equations[:, 2]  # a x + b y + c <= 0 inside
    rows = np.arange(int(ys.min()), int(ys.max()) + 1, dtype=float)
    rhs = -c[None, :] - b[None, :] * rows[:, None] + 1e-6  # a x <= rhs, per row and edge
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = rhs / a[None, :]
    hi = np.where(a[None, :] > 1e-12, bound, np.inf).min(axis=1)
    lo = np.where(a[None, :] < -1e-12, bound, -np.inf).max(axis=1)
    flat_ok = np.all(np.where(np.abs(a)[None, :] <= 1e-12, rhs >= 0, True), axis=1)
    count = np.where(flat_ok & (hi >= lo), np.floor(hi) - np.ceil(lo) + 1, 0).clip(min=0).sum()
    return float(min(1.0, n / max(count, n)))


def _skeleton_length(sub: np.ndarray) -> float:
    sk = _skeletonize(np.pad(sub, 1))
    n4 = int(np.count_nonzero(sk[1:, :] & sk[:-1, :]) + np.count_nonzero(sk[:, 1:] & sk[:, :-1]))
    # diagonal links not already bridged by a pair of 4-links
    d1 = sk[1:, 1:] & sk[:-1, :-1] & ~sk[1:, :-1] & ~sk[:-1, 1:]
    d2 = sk[1:, :-1] & sk[:-1, 1:] & ~sk[1:, 1:] & ~sk[:-1, :-1]
    return n4 + _SQRT2 * int(np.count_nonzero(d1) + np.count_nonzero(d2))


def footprint_features(sub: np.ndarray, n_saturated: int = 0, *, lazy_for: float | None = None,
                       ipc_ring_px: float = 0.0) -> dict[str, float]:
    """Geometric features of the True pixels of a (cropped) boolean footprint ``sub``.

    With ``lazy_for`` (a diffusion sigma in px), the costly features (solidity, tortuosity) are
    computed only when the rule set needs them to classify the footprint, else left NaN; the
    ``morphology`` key is then filled in too.
    """
    ys, xs = np.nonzero(sub)
    area = int(ys.size)
    if area == 0:
        raise SampleError("footprint_features: empty footprint")
    feret = _feret(ys.astype(float), xs.astype(float))
    l1, l2 = _second_moment_eigenvalues(ys, xs)
    elong = _snap(math.sqrt((l1 + 1 / 12) / (l2 + 1 / 12)))
    perp = _snap(math.sqrt(l2))
    f: dict[str, Any] = {"area": area, "feret": feret, "elongation": elong, "perp": perp,
                         "tortuosity": float("nan"), "solidity": float("nan"), "n_saturated": int(n_saturated),
                         "y": float(ys.mean()), "x": float(xs.mean())}

    def tortuosity() -> float:
        if feret <= 1.0 + 1e-9:
            return 1.0
        return float(_skeleton_length(sub) / (feret - 1.0))

    if lazy_for is None:
        f["tortuosity"] = tortuosity()
        f["solidity"] = _solidity(ys.astype(float), xs.astype(float))
        return f
    # lazy: follow the rules and compute only what they ask for
    if area >= 20 and not n_saturated and elong <= 1.5:
        f["solidity"] = _solidity(ys.astype(float), xs.astype(float))
    length_i, elong_i, perp_i = intrinsic_shape(f, ipc_ring_px)
    if not ((n_saturated >= 1 and area >= 20) or (area >= 20 and elong <= 1.5 and f["solidity"] >= 0.9)) \
            and not (length_i <= 3 or (length_i <= 5 and elong_i < 2)) \
            and perp_i <= 0.6 + lazy_for and elong_i >= 2:
        f["tortuosity"] = tortuosity()
    f["morphology"] = classify_features(f, lazy_for, ipc_ring_px)
    return f


def intrinsic_shape(f: dict[str, float], ipc_ring_px: float = 0.0) -> tuple[float, float, float]:
    """Length, elongation and width of a footprint with the inter-pixel-capacitance ring removed.

    IPC couples a fraction of each pixel's charge into its 4 neighbours, so a bright deposit lights
    up a ring of ``r = ipc_ring_px`` pixels around its path (docs/physics.md#morphology-rules). The
    ring adds ``2 r`` to the Feret length and ``0.4 r^2`` (the per-axis variance of a pixel and its
    4 neighbours) to both second moments; both are taken off here. With ``r = 0`` (CCDs) this
    returns ``(feret, elongation, perp)`` unchanged.

    Returns
    -------
    (length, elongation, perp) : tuple of float
    """
    length, e, perp = float(f["feret"]), float(f["elongation"]), float(f["perp"])
    r = float(ipc_ring_px)
    if r <= 0:
        return length, e, perp
    l2 = perp**2
    l1 = e**2 * (l2 + 1 / 12) - 1 / 12
    s2 = 0.4 * r**2
    l1p, l2p = max(l1 - s2, 0.0), max(l2 - s2, 0.0)
    return max(length - 2 * r, 1.0), float(np.sqrt((l1p + 1 / 12) / (l2p + 1 / 12))), float(np.sqrt(l2p))


def classify_features(f: dict[str, float], diffusion_sigma_px: float = 0.5, ipc_ring_px: float = 0.0) -> str:
    """Apply the rule set (module docstring) to one feature dict (NaN features fail their test).

    ``ipc_ring_px`` > 0 (IR arrays with inter-pixel capacitance) applies rules 2-5 to the
    :func:`intrinsic_shape` of the footprint, so an IPC-widened straight muon is not a worm.
    """
    a = f["area"]
    if (f["n_saturated"] >= 1 and a >= 20) or (a >= 20 and f["elongation"] <= 1.5 and f["solidity"] >= 0.9):
        return "blob"
    length, e, perp = intrinsic_shape(f, ipc_ring_px)
    if length <= 3 or (length <= 5 and e < 2):
        return "spot"
    if perp <= 0.6 + diffusion_sigma_px and f["tortuosity"] <= 1.3 and e >= 2:
        return "track"
    if length > 5:
        return "worm"
    return "spot"


def _table(labels: np.ndarray, saturated: np.ndarray | None, diffusion_sigma_px: float,
           lazy: bool = False, ipc_ring_px: float = 0.0) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None:
            continue
        lab = i + 1
        sub = labels[sl] == lab
        nsat = int(np.count_nonzero(saturated[sl][sub])) if saturated is not None else 0
        f: dict[str, Any] = footprint_features(sub, nsat, lazy_for=diffusion_sigma_px if lazy else None,
                                               ipc_ring_px=ipc_ring_px)
        f["y"] += sl[0].start
        f["x"] += sl[1].start
        f["id"] = lab
        if not lazy:
            f["morphology"] = classify_features(f, diffusion_sigma_px, ipc_ring_px)
        rows.append(f)
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object if c == "morphology" else float)
                             for c in FEATURE_COLUMNS})
    return pd.DataFrame(rows)[list(FEATURE_COLUMNS)]


def _check(name: str, arr: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise SampleError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise SampleError(f"{name} has shape {arr.shape}, expected {shape}")
    return arr


def _check_label_map(labels: np.ndarray, saturated: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D integer label map and its optional saturated mask of the same shape (as bool)."""
    labels = _check("labels", labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise SampleError(f"labels must be an integer array, got dtype {labels.dtype}")
    if saturated is not None:
        saturated = _check("saturated", saturated, labels.shape).astype(bool)
    return labels, saturated


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber positive ids to 1..n (so find_objects stays small); returns (compact, ids) with
    ``ids[k]`` the original id of compact id k (``ids[0] = 0``)."""
    lab = np.where(labels > 0, labels, 0).astype(np.int64)
    top = int(lab.max())
    if top < 50_000_000:
        present = np.flatnonzero(np.bincount(lab.ravel(), minlength=top + 1))
        present = present[present > 0]
        lut = np.zeros(top + 1, np.int32)
        lut[present] = np.arange(1, present.size + 1, dtype=np.int32)
        return lut[lab], np.concatenate([[0], present])
    ids, inv = np.unique(lab, return_inverse=True)
    compact = inv.reshape(lab.shape).astype(np.int32)
    if ids[0] != 0:
        compact = compact + 1
        ids = np.concatenate([[0], ids])
    return compact, ids


def classify_components(mask: np.ndarray, *, saturated: np.ndarray | None = None,
                        diffusion_sigma_px: float = 0.5, ipc_ring_px: float = 0.0) -> tuple[np.ndarray, pd.DataFrame]:
    """Split ``mask`` into 8-connected components and classify each.

    Parameters
    ----------
    mask : ndarray of bool, (H, W)
        CR mask (truth or prediction).
    saturated : ndarray of bool, (H, W), optional
        Saturated pixels (counted per component for the blob rule).
    diffusion_sigma_px : float
        Charge-diffusion sigma of the detector in pixels (widens the track rule).
    ipc_ring_px : float
        Ring of IPC-coupled neighbours a bright deposit lights up (1 for IR arrays with IPC, 0 for
        CCDs); see :func:`intrinsic_shape`.

    Returns
    -------
    labels : ndarray of int32
        Component ids 1..n (0 = background).
    table : DataFrame
        One row per component: ``id, morphology`` and the features (module docstring).
    """
    mask = _check("mask", mask).astype(bool)
    if saturated is not None:
        saturated = _check("saturated", saturated, mask.shape).astype(bool)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    labels = labels.astype(np.int32)
    return labels, _table(labels, saturated, diffusion_sigma_px, ipc_ring_px=ipc_ring_px)


def classify_by_component(labels: np.ndarray, saturated: np.ndarray | None = None, *,
                          diffusion_sigma_px: float = 0.5, ipc_ring_px: float = 0.0) -> dict[int, str]:
    """Classify each instance id of ``labels`` by the 8-connected component of ``labels > 0`` it lies in.

    This is crbench's classification unit for simulated and real CRs alike: a real label map has no
    event ids, only components, so simulated CRs that touch are classified together too (each
    instance takes its component's class; an instance split over several components takes the
    class of its largest part).

    Returns
    -------
    dict
        ``{id: morphology}`` for every non-zero id present in ``labels``.
    """
    labels, saturated = _check_label_map(labels, saturated)
    if labels.size == 0 or labels.max() <= 0:
        return {}
    comp = ndimage.label(labels > 0, structure=np.ones((3, 3), dtype=int))[0].astype(np.int32)
    table = _table(comp, saturated, diffusion_sigma_px, lazy=True, ipc_ring_px=ipc_ring_px)
    klass = np.array([""] + list(table.sort_values("id")["morphology"]), dtype=object)
    sel = labels > 0
    ids, cids = labels[sel].astype(np.int64), comp[sel].astype(np.int64)
    pairs, counts = np.unique(np.stack([ids, cids], 1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))  # per id, its largest part first
    out: dict[int, str] = {}
    for (i, c) in pairs[order]:
        out.setdefault(int(i), str(klass[int(c)]))
    return out


def classify_instances(labels: np.ndarray, saturated: np.ndarray | None = None, *,
                       diffusion_sigma_px: float = 0.5, ipc_ring_px: float = 0.0) -> dict[int, str]:
    """Classify each instance id of a label map (all pixels of an id form one footprint).

    Returns
    -------
    dict
        ``{id: morphology}`` for every non-zero id present in ``labels``.
    """
    labels, saturated = _check_label_map(labels, saturated)
    if labels.size == 0 or labels.max() <= 0:
        return {}
    compact, ids = _compact(labels)
    table = _table(compact, saturated, diffusion_sigma_px, lazy=True, ipc_ring_px=ipc_ring_px)
    return {int(ids[int(i)]): m for i, m in zip(table["id"], table["morphology"])}


def instance_features(labels: np.ndarray, saturated: np.ndarray | None = None, *,
                      diffusion_sigma_px: float = 0.5, ipc_ring_px: float = 0.0) -> pd.DataFrame:
    """Feature table (as :func:`classify_components`) per instance id of ``labels``."""
    labels = _check("labels", labels)
    if labels.size == 0 or labels.max() <= 0:
        return _table(np.zeros((1, 1), np.int32), None, diffusion_sigma_px)
    compact, ids = _compact(labels)
    table = _table(compact, None if saturated is None else np.asarray(saturated, bool), diffusion_sigma_px,
                   ipc_ring_px=ipc_ring_px)
    table["id"] = [int(ids[int(i)]) for i in table["id"]]
    return table
