"""Fixed score bins shared by every image of a run, so per-image histograms add up exactly."""
from __future__ import annotations

from dataclasses import dataclass, asdict
from functools import lru_cache
from typing import Any

import numpy as np

#: Default number of bins for continuous scores.
DEFAULT_BINS = 32768
#: Bins of unbounded (asinh-spaced) scores: 2^17, so that ties within one bin move AP by < 1e-3 on
#: 10^4-10^5 Gaussian-like scores at 1% positives (measured: worst 2.2e-4 over 41 seeds; 32,768 bins
#: gave up to 4.8e-3).
UNBOUNDED_BINS = 131072
#: Mantissa bits kept by the ``'prob'`` binning (relative resolution 2**-10 of the distance to 0 or 1).
PROB_MANTISSA_BITS = 10
#: Below this distance to 0 or 1 the ``'prob'`` binning keeps one bin per power of two.
PROB_FINE_FLOOR_EXP = 40
_F32_ONE_BITS = 0x3F800000


@dataclass(frozen=True)
class Binning:
    """Map scores to bin indices ``0 .. n_bins - 1`` (higher index = higher score).

    Parameters
    ----------
    kind : {'prob', 'linear', 'asinh'}
        ``'prob'``: probabilities on ``[0, 1]``, binned by the float32 bit pattern of the distance
        ``q = min(p, 1 - p)`` to the nearer end: ``PROB_MANTISSA_BITS`` mantissa bits are kept, so
        the bins are relative (width ``2**-10 q``) and both tails resolve; every float32 value
        within ``2**11`` ulps of 1 (``p > 1 - 1.2e-4``) and every float32 value of ``q`` of the
        form ``m 2**e`` with ``m < 2**11`` gets its own bin; below ``q = 2**-40`` one bin per power
        of two. ``lo``, ``hi`` and ``n_bins`` are fixed (0, 1 and the count this implies).
        ``'linear'``: equal bins on ``[lo, hi]`` (bounded scores such as sweep counts). ``'asinh'``:
        equal bins in ``asinh(score / scale)`` on ``[lo, hi]`` (unbounded scores such as
        significances: fine near zero, relative resolution far out).
    lo, hi : float
        Score range; scores outside are clipped into the end bins.
    n_bins : int
        Number of bins.
    scale : float
        Softening scale of the asinh transform.
    """

    kind: str = "linear"
    lo: float = 0.0
    hi: float = 1.0
    n_bins: int = DEFAULT_BINS
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("prob", "linear", "asinh"):
            raise ValueError(f"Binning kind must be 'prob', 'linear' or 'asinh', got {self.kind!r}")
        if self.kind == "prob" and (self.lo, self.hi, self.n_bins) != (0.0, 1.0, _prob_n_bins()):
            raise ValueError(f"Binning kind 'prob' has lo=0, hi=1, n_bins={_prob_n_bins()}; got lo={self.lo}, "
                             f"hi={self.hi}, n_bins={self.n_bins}")
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.hi > self.lo):
            raise ValueError(f"Binning needs finite lo < hi, got lo={self.lo}, hi={self.hi}")
        if self.n_bins < 2:
            raise ValueError(f"Binning needs n_bins >= 2, got {self.n_bins}")

    @classmethod
    def for_range(cls, score_range: tuple[float, float] | None, n_bins: int | None = None, *,
                  integer: bool = False) -> "Binning":
        """Bins for a detector's declared ``score_range`` (``None`` = unbounded).

        With ``integer=True`` (sweep detectors: scores are counts ``0 .. K``) each integer gets its
        own bin, which is exact.
        """
        if score_range is None:
            return cls(kind="asinh", lo=-1e5, hi=1e5, n_bins=n_bins or UNBOUNDED_BINS, scale=1.0)
        lo, hi = float(score_range[0]), float(score_range[1])
        if integer:
            return cls(kind="linear", lo=lo - 0.5, hi=hi + 0.5, n_bins=int(hi - lo) + 1)
        if (lo, hi) == (0.0, 1.0) and n_bins is None:
            return cls.probability()
        return cls(kind="linear", lo=lo, hi=hi, n_bins=n_bins or DEFAULT_BINS)

    @classmethod
    def probability(cls) -> "Binning":
        """The tail-resolving binning of probabilities on ``[0, 1]`` (kind ``'prob'``)."""
        return cls(kind="prob", lo=0.0, hi=1.0, n_bins=_prob_n_bins())

    def _transform(self, x: np.ndarray | float) -> np.ndarray:
        if self.kind == "linear":
            return np.asarray(x, dtype=np.float64)
        return np.arcsinh(np.asarray(x, dtype=np.float64) / self.scale)

    def index(self, scores: np.ndarray) -> np.ndarray:
        """Bin index (int32) of each score, clipped into ``[0, n_bins - 1]``."""
        if self.kind == "prob":
            return _prob_index(scores)
        t_lo, t_hi = self._transform(self.lo), self._transform(self.hi)
        step = self.n_bins / float(t_hi - t_lo)
        s = np.asarray(scores, dtype=np.float32)
        if self.kind == "asinh":
            s = np.arcsinh(s / np.float32(self.scale))
        with np.errstate(over="ignore", invalid="ignore"):
            idx = (s - np.float32(t_lo)) * np.float32(step)
        np.clip(idx, 0, self.n_bins - 1, out=idx)
        return idx.astype(np.int32)

    def lower_edges(self) -> np.ndarray:
        """Score value at the lower edge of each bin (the threshold that bin starts).

        The edge is the smallest float32 score in the bin (bin 0: ``lo``, it takes everything
        below), so for float32 scores ``score >= edges[b]`` holds exactly when ``index(score) >= b``
        (bins no float32 value maps to repeat the next edge up).
        """
        if self.kind == "prob":
            return _prob_edges().copy()
        return _float32_edges(self).copy()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------- float32-exact probability bins
def _fine_cut() -> int:
    return (127 - PROB_FINE_FLOOR_EXP) << 23  # bit pattern of 2**-40


def _side_bins() -> int:
    """Bins on one side of 0.5: coarse (one per power of two below 2**-40), then fine up to q = 0.5."""
    shift = 23 - PROB_MANTISSA_BITS
    n_coarse = _fine_cut() >> 23
    top_key = (126 << 23) >> shift  # q = 0.5
    return n_coarse + top_key - (_fine_cut() >> shift) + 1


def _prob_n_bins() -> int:
    return 2 * _side_bins()


def _prob_index(scores: np.ndarray) -> np.ndarray:
    p = np.asarray(scores, dtype=np.float32)
    p = np.clip(p, np.float32(0.0), np.float32(1.0))
    high = p >= np.float32(0.5)
    q = np.where(high, np.float32(1.0) - p, p)  # exact in float32 (Sterbenz)
    bits = q.view(np.int32)
    shift = 23 - PROB_MANTISSA_BITS
    cut = _fine_cut()
    n_coarse = cut >> 23
    key = np.where(bits >= cut, (bits >> shift) - (cut >> shift) + n_coarse, bits >> 23)
    side = _side_bins()
    return np.where(high, 2 * side - 1 - key, key).astype(np.int32)


def _f32_key(v: np.ndarray) -> np.ndarray:
    """Order-preserving int64 key of float32 values (finite, -0.0 == 0.0)."""
    b = np.asarray(v, np.float32).view(np.uint32).astype(np.int64)
    return np.where(b >= 2**31, -(b & 0x7FFFFFFF), b)


def _f32_from_key(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.int64)
    bits = np.where(k >= 0, k, (-k) | 2**31).astype(np.uint32)
    return bits.view(np.float32)


@lru_cache(maxsize=8)
def _float32_edges(binning: "Binning") -> np.ndarray:
    """Smallest float32 of each bin of a linear/asinh binning, by bisection over float32 order."""
    n = binning.n_bins
    big = np.float32(np.finfo(np.float32).max)
    b = np.arange(n)
    lo = np.full(n, int(_f32_key(np.array([-big]))[0]) - 1, np.int64)  # index(lo) < b (virtual -inf)
    hi = np.full(n, int(_f32_key(np.array([big]))[0]), np.int64)      # index(hi) = n - 1 >= b
    while True:
        live = hi - lo > 1
        if not live.any():
            break
        mid = (lo + hi) // 2
        up = binning.index(_f32_from_key(mid)) >= b
        hi = np.where(live & up, mid, hi)
        lo = np.where(live & ~up, mid, lo)
    edges = _f32_from_key(hi).astype(np.float64)
    edges[0] = binning.lo
    return edges


@lru_cache(maxsize=1)
def _prob_edges() -> np.ndarray:
    """Smallest float32 in [0, 1] of each bin, by bisection over the (monotone) float32 bit patterns."""
    n = _prob_n_bins()
    lo = np.zeros(n, np.int64)  # index(bits lo) may be < b
    hi = np.full(n, _F32_ONE_BITS, np.int64)  # index(1.0) = n - 1 >= b
    b = np.arange(n)
    ok0 = _prob_index(np.zeros(1, np.float32))[0] >= b
    while True:
        mid = (lo + hi) // 2
        live = hi - lo > 1
        if not live.any():
            break
        idx = _prob_index(mid.astype(np.int32).view(np.float32))
        up = idx >= b
        hi = np.where(live & up, mid, hi)
        lo = np.where(live & ~up, mid, lo)
    edge_bits = np.where(ok0, 0, hi).astype(np.int32)
    return edge_bits.view(np.float32).astype(np.float64)
