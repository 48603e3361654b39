"""Class-imbalance-aware pixel losses; every one skips ignored pixels (``valid == 0``).

All take logits (not probabilities) for numerical stability and return a scalar tensor.

* ``bce``: binary cross-entropy averaged over valid pixels.
* ``mwbce``: Cosmic-CoNN's median-weighted BCE (Xu et al. 2023): the negative-class term of
  each pixel is weighted by ``max(alpha, W)``, ``W`` the source weight map of
  :func:`baselines.unet.data.source_weight_map`; ``alpha`` ramps 0 -> 1 over the first
  ``ramp`` fraction of training, after which the loss is plain BCE.
* ``focal``: focal loss (Lin et al. 2017), ``gamma = 2``.
* ``bce+dice``: BCE plus soft Dice loss on the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "mwbce", "focal", "bce+dice")


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (values * valid).sum() / valid.sum().clamp_min(1.0)


def bce(logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over valid pixels."""
    return _masked_mean(F.binary_cross_entropy_with_logits(logits, y, reduction="none"), valid)


def median_weighted_bce(logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor,
                        alpha: float) -> torch.Tensor:
    """Median-weighted BCE: negatives weighted by ``clamp(weight, alpha, 1)``."""
    w_neg = weight.clamp(min=float(alpha), max=1.0)
    pos = -y * F.logsigmoid(logits)
    neg = -(1.0 - y) * w_neg * F.logsigmoid(-logits)
    return _masked_mean(pos + neg, valid)


def focal(logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss: BCE scaled by ``(1 - p_t) ** gamma``."""
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    return _masked_mean(ce * (1 - p_t) ** gamma, valid)


def soft_dice(logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice coefficient over the valid pixels of the batch."""
    p = torch.sigmoid(logits) * valid
    t = y * valid
    return 1.0 - (2.0 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)


def compute_loss(name: str, logits: torch.Tensor, batch: dict[str, torch.Tensor], progress: float,
                 ramp: float = 0.5) -> torch.Tensor:
    """Evaluate loss ``name`` on a batch.

    Parameters
    ----------
    name : str
        One of :data:`LOSSES`.
    logits : Tensor
        Net output (N, 1, H, W).
    batch : dict
        ``y``, ``valid`` and ``weight`` tensors of the logits' shape.
    progress : float
        Fraction of training done, in [0, 1] (drives the ``mwbce`` alpha ramp).
    ramp : float
        Fraction of training over which ``mwbce``'s alpha goes from 0 to 1.
    """
    y, valid = batch["y"], batch["valid"]
    if name == "bce":
        return bce(logits, y, valid)
    if name == "mwbce":
        alpha = min(1.0, progress / ramp) if ramp > 0 else 1.0
        return median_weighted_bce(logits, y, valid, batch["weight"], alpha)
    if name == "focal":
        return focal(logits, y, valid)
    if name == "bce+dice":
        return bce(logits, y, valid) + soft_dice(logits, y, valid)
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
