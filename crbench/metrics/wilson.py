"""Wilson score interval of a binomial proportion (per-CR and per-class recall)."""
from __future__ import annotations

import math

from .validation import MetricInputError

#: Fewer CRs than this in a class and split: the class is shown with its n but never ranked on.
MIN_RANKABLE_CRS = 30


def wilson_interval(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n`` trials.

    Parameters
    ----------
    k, n : float
        Successes and trials, ``0 <= k <= n``; ``n = 0`` gives ``(nan, nan)``.
    level : float
        Two-sided coverage (0.95 or 0.68 use their exact normal quantiles).

    Returns
    -------
    lo, hi : float

    Examples
    --------
    >>> [round(x, 3) for x in wilson_interval(8, 8)]
    [0.676, 1.0]
    """
    if not 0 < level < 1:
        raise MetricInputError(f"interval level must be in (0, 1), got {level!r}")
    if n < 0 or k < 0 or k > n:
        raise MetricInputError(f"Wilson interval needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
