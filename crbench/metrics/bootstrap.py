"""Bootstrap confidence intervals over images, or over exposure groups.

Per-sample records add up, so a bootstrap replicate is a *weighting* of the records: draw the
groups (each image its own group unless the dataset card says which images share an exposure
or field) with replacement, and weight each record by how many times its group was drawn. Every
summary number of a replicate is then computed from weighted sums of the per-image histograms and
per-instance tables; nothing is rescored.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Default confidence level of the intervals.
LEVEL = 0.95


def replicate_weights(groups: Sequence[str], n_boot: int, seed: int = 0) -> np.ndarray:
    """Record weights of ``n_boot`` bootstrap replicates, resampling groups with replacement.

    Parameters
    ----------
    groups : sequence of str
        Group of each record (records of one group are drawn together).
    n_boot : int
        Number of replicates.
    seed : int
        Seed of the generator (same seed, same replicates).

    Returns
    -------
    ndarray of float64, shape (n_boot, n_records)
        How many times each record is in each replicate.
    """
    if n_boot < 0:
        raise ValueError(f"bootstrap: the number of replicates must be >= 0, got {n_boot}")
    names, inverse = np.unique(np.asarray(list(groups), dtype=object).astype(str), return_inverse=True)
    g = len(names)
    if n_boot == 0 or g == 0:
        return np.zeros((n_boot, len(inverse)))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, g, size=(n_boot, g))
    counts = np.zeros((n_boot, g))
    np.add.at(counts, (np.repeat(np.arange(n_boot), g), draws.ravel()), 1.0)
    return counts[:, inverse]


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the first axis, ignoring NaN (NaN where all replicates are NaN)."""
    v = np.asarray(values, dtype=float)
    q = (1 - level) / 2 * 100
    with np.errstate(invalid="ignore"), _quiet():
        lo = np.nanpercentile(v, q, axis=0)
        hi = np.nanpercentile(v, 100 - q, axis=0)
    return lo, hi


class _quiet:
    """Silence numpy's all-NaN warnings inside the block."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
