"""Input checks at the metric boundary: one clear error instead of a silently wrong number."""
from __future__ import annotations

import numpy as np

from ..errors import CRBenchError


class MetricInputError(CRBenchError, ValueError):
    """A metric function got an input outside its domain (a truth value other than 0/1, a target
    outside [0, 1], mismatched shapes)."""


def check_unit_target(name: str, value: float) -> float:
    """``value`` as a float in ``[0, 1]``, else :class:`MetricInputError` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise MetricInputError(f"{name} must be in [0, 1], got {value!r}")
    return v


def check_binary(name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as a bool array when it holds only 0/1 (or bools), else :class:`MetricInputError`."""
    a = np.asarray(arr)
    if a.dtype == bool:
        return a
    if a.size and not np.isin(a, (0, 1)).all():
        bad = a[~np.isin(a, (0, 1))].ravel()[0]
        raise MetricInputError(f"{name} must hold only 0/1 (or bool) values, found {bad!r}")
    return a.astype(bool)
