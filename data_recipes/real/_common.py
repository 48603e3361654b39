"""Shared helpers of the real-data recipes: reading sources, time splits, simulated CR layers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from crbench.errors import DatasetError, FormatError
from crbench.sample import INSTANCE_COLUMNS, empty_instance_table


def read_fits_image(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Primary image of a FITS file as float32 and its header as a dict (gzip handled by astropy)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim == 2), None)
            if hdu is None:
                raise FormatError(f"{path}: no 2-D image extension")
            return np.asarray(hdu.data, np.float32), dict(hdu.header)
    except OSError as exc:
        raise FormatError(f"{path}: not a readable FITS file ({exc})") from exc


def stage(items: Any, desc: str, progress: bool, *, total: int | None = None, unit: str = "frame") -> Any:
    """``items`` wrapped in a progress bar named ``desc`` when ``progress`` is true.

    Every stage of a long build gets its own named bar, so that a user sees which pass runs.
    """
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit)


def check_options(recipe: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Refuse build options a real recipe cannot honour (e.g. ``shape``), naming them."""
    bad = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if bad:
        raise DatasetError(f"recipe {recipe!r} does not take option(s) {', '.join(bad)}; "
                           f"it takes {', '.join(sorted(allowed))}")


def time_blocks(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), gap: int = 1) -> dict[str, list[int]]:
    """Contiguous train/val/test blocks of a time-ordered series, ``gap`` frames dropped between blocks.

    Frames next to each other in time are never in different splits.
    """
    if n < 3:
        raise DatasetError(f"a time split needs at least 3 frames, got {n}")
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    idx = list(range(n))
    train = idx[:max(n_train - gap, 1)]
    val = idx[n_train:max(n_train + n_val - gap, n_train + 1)]
    test = idx[n_train + n_val:]
    if not test or not val:
        train, val, test = idx[:n - 2], [n - 2], [n - 1]
    return {"train": train, "val": val, "test": test}


@dataclass
class SimLayer:
    """A simulated CR layer reduced to what the recipes use."""

    charge: np.ndarray
    labels: np.ndarray
    truth: np.ndarray
    instances: pd.DataFrame
    generator: str
    #: CR pixels above 1 sigma that fail the truth rule (crbench.truth)
    halo: np.ndarray | None = None


def simulate_cr_layer(rng: np.random.Generator, shape: tuple[int, int], exptime: float, *,
                      noise_sigma: float | np.ndarray, preset: str = "ground-small", id_offset: int = 0,
                      rate_scale: float = 1.0) -> SimLayer:
    """Simulated CRs from ``data_recipes.sim`` (the matching preset), or the foundation model as fallback.

    ``truth`` keeps the pixels the simulator's :meth:`truth_mask` counts as CR at this noise level;
    the instance table is restricted to instances with truth pixels.
    """
    try:
        from data_recipes.sim.physics import simulate_crs
        from data_recipes.sim.presets import get_preset
    except ImportError:
        return _fallback_layer(rng, shape, exptime * rate_scale, noise_sigma, id_offset)
    layer = simulate_crs(rng, shape, get_preset(preset), exptime, id_offset=id_offset, rate_scale=rate_scale)
    truth, halo = layer.truth_and_halo(noise_sigma)
    labels = np.where(truth, layer.labels, 0).astype(np.int32)
    if hasattr(layer, "truth_instances"):
        inst = layer.truth_instances(labels)
        inst = inst[[c for c in INSTANCE_COLUMNS if c in inst.columns]].reset_index(drop=True)
        inst["id"] = inst["id"].astype("int32")
    else:
        inst = _restrict(layer.instances.copy(), labels)
    return SimLayer(np.asarray(layer.charge, np.float64), labels, labels > 0, inst, f"data_recipes.sim:{preset}",
                    halo=halo)


def _restrict(inst: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    if not len(inst):
        return empty_instance_table()
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    keep = dict(zip(ids.tolist(), counts.tolist()))
    inst = inst[inst["id"].isin(keep)].copy()
    inst["pixels"] = inst["id"].map(keep).astype("int64")
    inst["id"] = inst["id"].astype("int32")
    return inst.reset_index(drop=True)


def _fallback_layer(rng, shape, exptime, noise_sigma, id_offset) -> SimLayer:
    from data_recipes.basic import _cr_layer

    n_pix = shape[0] * shape[1]
    # ~1 muon /cm^2/min at 9 um pixels: 8.1e-7 cm^2 per pixel
    expected = n_pix * 8.1e-7 * exptime / 60.0 * 3.0
    charge, owner, rows = _cr_layer(rng, shape, int(rng.poisson(expected)))
    from crbench.truth import apply_truth_rule

    mask, halo = apply_truth_rule(charge / np.asarray(noise_sigma, float), owner > 0)
    labels = np.where(mask, owner + id_offset * (owner > 0), 0).astype(np.int32)
    inst = pd.DataFrame([(k + id_offset, m, g, 0, q, False) for k, m, g, _, q in rows],
                        columns=["id", "morphology", "generator", "pixels", "charge", "saturated"])
    inst = _restrict(inst, labels)
    return SimLayer(charge, labels, labels > 0, inst, "data_recipes.basic (fallback: data_recipes.sim absent)",
                    halo=halo)


def merge_instances(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if t is not None and len(t)]
    if not tables:
        return empty_instance_table()
    return pd.concat(tables, ignore_index=True)
