"""Fixed score bins shared by every image of a run, so per-image histograms add up exactly."""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Any

import numpy as np

#: Default number of bins for continuous scores.
DEFAULT_BINS = 32768


@dataclass(frozen=True)
class Binning:
    """Map scores to bin indices ``0 .. n_bins - 1`` (higher index = higher score).

    Parameters
    ----------
    kind : {'linear', 'asinh'}
        ``'linear'``: equal bins on ``[lo, hi]`` (bounded scores such as probabilities or sweep
        counts). ``'asinh'``: equal bins in ``asinh(score / scale)`` on ``[lo, hi]`` (unbounded
        scores such as significances: fine near zero, relative resolution far out).
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
        if self.kind not in ("linear", "asinh"):
            raise ValueError(f"Binning kind must be 'linear' or 'asinh', got {self.kind!r}")
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
            return cls(kind="asinh", lo=-1e5, hi=1e5, n_bins=n_bins or DEFAULT_BINS, scale=1.0)
        lo, hi = float(score_range[0]), float(score_range[1])
        if integer:
            return cls(kind="linear", lo=lo - 0.5, hi=hi + 0.5, n_bins=int(hi - lo) + 1)
        return cls(kind="linear", lo=lo, hi=hi, n_bins=n_bins or DEFAULT_BINS)

    def _transform(self, x: np.ndarray | float) -> np.ndarray:
        if self.kind == "linear":
            return np.asarray(x, dtype=np.float64)
        return np.arcsinh(np.asarray(x, dtype=np.float64) / self.scale)

    def index(self, scores: np.ndarray) -> np.ndarray:
        """Bin index (int32) of each score, clipped into ``[0, n_bins - 1]``."""
        t_lo, t_hi = self._transform(self.lo), self._transform(self.hi)
        step = self.n_bins / float(t_hi - t_lo)
        s = np.asarray(scores, dtype=np.float32)
        if self.kind == "asinh":
            s = np.arcsinh(s / np.float32(self.scale))
        idx = (s - np.float32(t_lo)) * np.float32(step)
        np.clip(idx, 0, self.n_bins - 1, out=idx)
        return idx.astype(np.int32)

    def lower_edges(self) -> np.ndarray:
        """Score value at the lower edge of each bin (the threshold that bin starts)."""
        t_lo, t_hi = self._transform(self.lo), self._transform(self.hi)
        t = t_lo + (t_hi - t_lo) * np.arange(self.n_bins) / self.n_bins
        if self.kind == "asinh":
            return np.sinh(t) * self.scale
        return t

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
