"""Checks of the size options every simulated recipe takes (one home for their error messages)."""
from __future__ import annotations

from typing import Any

import numpy as np

from crbench.errors import DatasetError


def _bad(recipe: str, opts: dict[str, Any], key: str, expected: str) -> DatasetError:
    return DatasetError(f"recipe {recipe!r}: option {key}={opts.get(key)!r} is invalid; expected {expected}")


def positive_int(recipe: str, opts: dict[str, Any], key: str) -> int:
    """``opts[key]`` as an int >= 1, or a :class:`DatasetError` naming the recipe and option."""
    try:
        value = int(opts[key])
    except (TypeError, ValueError):
        raise _bad(recipe, opts, key, "a positive integer") from None
    if value < 1:
        raise _bad(recipe, opts, key, "a positive integer")
    return value


def image_shape(recipe: str, opts: dict[str, Any], key: str = "shape") -> tuple[int, int]:
    """``opts[key]`` (``'HxW'``, an int or a pair) as (H, W) with H, W >= 16."""
    shape = opts[key]
    if isinstance(shape, str):
        shape = shape.lower().replace("x", ",").split(",")
    if isinstance(shape, (int, np.integer)):
        shape = (shape, shape)
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise _bad(recipe, opts, key, "(H, W) with H, W >= 16") from None
    if len(out) != 2 or min(out) < 16:
        raise _bad(recipe, opts, key, "(H, W) with H, W >= 16")
    return out[0], out[1]


def positive_seconds(recipe: str, opts: dict[str, Any], key: str = "exposure_time") -> float:
    """``opts[key]`` as a finite float > 0."""
    try:
        value = float(opts[key])
    except (TypeError, ValueError):
        raise _bad(recipe, opts, key, "a positive number of seconds") from None
    if not np.isfinite(value) or value <= 0:
        raise _bad(recipe, opts, key, "a positive number of seconds")
    return value


def rate_scale(recipe: str, opts: dict[str, Any], key: str = "cr_rate_scale") -> float:
    """``opts[key]`` (default 1) as a finite float >= 0."""
    try:
        value = float(opts.get(key, 1.0))
    except (TypeError, ValueError):
        raise _bad(recipe, opts, key, "a number >= 0") from None
    if not np.isfinite(value) or value < 0:
        raise _bad(recipe, opts, key, "a number >= 0")
    return value
