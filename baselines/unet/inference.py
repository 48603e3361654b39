"""Seamless tiled inference.

The image is cut into core tiles whose origins are multiples of the net's pooling alignment;
each tile is run with a halo of at least the net's receptive radius (also a multiple of the
alignment, and clipped at the image edge, where the untiled net sees the same zero padding).
Only the core of each tile is kept, so the tiled output equals the untiled one to float
rounding everywhere: there are no seams.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from .models import UNet


def halo_for(model: UNet) -> int:
    """Halo (pixels each side) that makes tiling exact: receptive radius rounded up to the alignment."""
    a = model.alignment
    return int(math.ceil(model.receptive_radius / a) * a)


def _pad_to_alignment(x: np.ndarray, align: int) -> np.ndarray:
    h, w = x.shape
    ph, pw = (-h) % align, (-w) % align
    if not (ph or pw):
        return x
    mode: Literal["reflect", "edge"] = "reflect" if (h > ph and w > pw) else "edge"
    return np.pad(x, ((0, ph), (0, pw)), mode=mode)


@torch.no_grad()
def predict_logits(model: UNet, x: np.ndarray, tile: int | None = 512) -> np.ndarray:
    """Run ``model`` on a normalised 2-D image; return float32 logits of the same shape.

    Parameters
    ----------
    model : UNet
        Net in eval mode.
    x : ndarray (H, W)
        Normalised input (:func:`baselines.unet.data.normalize`).
    tile : int or None
        Core tile side (rounded up to the alignment); ``None`` or 0 runs the whole image at once.
    """
    h, w = x.shape
    align = model.alignment
    xp = _pad_to_alignment(np.asarray(x, dtype=np.float32), align)
    hp, wp = xp.shape
    if not tile or (hp <= tile and wp <= tile):
        out = model(torch.from_numpy(np.ascontiguousarray(xp))[None, None])[0, 0].numpy()
        return np.ascontiguousarray(out[:h, :w], dtype=np.float32)
    tile = int(math.ceil(tile / align) * align)
    halo = halo_for(model)
    out = np.empty((hp, wp), np.float32)
    for y0 in range(0, hp, tile):
        y1 = min(hp, y0 + tile)
        ya, yb = max(0, y0 - halo), min(hp, y1 + halo)
        for x0 in range(0, wp, tile):
            x1 = min(wp, x0 + tile)
            xa, xb = max(0, x0 - halo), min(wp, x1 + halo)
            window = torch.from_numpy(np.ascontiguousarray(xp[ya:yb, xa:xb]))[None, None]
            pred = model(window)[0, 0].numpy()
            out[y0:y1, x0:x1] = pred[y0 - ya:y1 - ya, x0 - xa:x1 - xa]
    return out[:h, :w]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically safe float32 logistic function."""
    return (0.5 * (1.0 + np.tanh(0.5 * z.astype(np.float32)))).astype(np.float32)
