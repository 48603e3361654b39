"""Network architectures: a configurable U-Net with optional attention gates.

One class covers every learned baseline crbench trains:

* ``deepcr-2-32``: :func:`build_model` ``('deepcr-2-32')`` is the deepCR "2-32" mask net (Zhang &
  Bloom 2020): two levels (32 and 64 channels, one 2x2 max-pool), double 3x3 conv + BatchNorm
  (momentum 0.005) + ReLU, 2x2 transposed-conv up, skip concatenation, 1x1 conv. 101,473
  parameters, as the published net.
* ``attention-unet``: a U-Net with an attention gate on every decoder skip connection (Bhavanam
  et al. 2022): the gating signal is the upsampled decoder feature at the skip's resolution,
  ``W_g`` and ``W_x`` are 1x1 convs (C -> C/2) + norm, ``psi`` is ReLU -> 1x1 conv (-> 1) + norm
  -> sigmoid, and the skip is multiplied by ``psi``. With ``width=32, levels=3`` this is the
  paper's 472,695-parameter net.
* ``unet-nogate``: the same U-Net with the gates switched off (the ablation).

The networks output logits; apply a sigmoid for probabilities. Every conv + norm pair lives in
an ``nn.Sequential`` so :func:`fuse_batchnorm` can fold BatchNorm into the conv for inference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

#: Architectures :func:`build_model` knows, with their default configuration.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "deepcr-2-32": {"width": 32, "levels": 2, "gates": False, "bn_momentum": 0.005},
    "attention-unet": {"width": 16, "levels": 3, "gates": True, "bn_momentum": 0.1},
    "unet-nogate": {"width": 16, "levels": 3, "gates": False, "bn_momentum": 0.1},
}


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`UNet`.

    Parameters
    ----------
    width : int
        Channels of the first level; level ``l`` has ``width * 2**l``.
    levels : int
        Number of resolution levels (``levels - 1`` max-pool steps); 2 for deepCR-2-32, 3 for
        the attention U-Net of the paper.
    gates : bool
        Attention gate on every skip connection.
    bn_momentum : float
        BatchNorm momentum (deepCR uses 0.005).
    in_channels : int
        Input channels (1: the image).
    """

    width: int = 32
    levels: int = 3
    gates: bool = True
    bn_momentum: float = 0.1
    in_channels: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _conv_bn_relu(cin: int, cout: int, momentum: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, momentum=momentum),
                         nn.ReLU(inplace=True))


class DoubleConv(nn.Sequential):
    """Two (3x3 conv, BatchNorm, ReLU) blocks."""

    def __init__(self, cin: int, cout: int, momentum: float) -> None:
        super().__init__(_conv_bn_relu(cin, cout, momentum), _conv_bn_relu(cout, cout, momentum))


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Oktay et al. 2018; Bhavanam et al. 2022).

    Parameters
    ----------
    channels : int
        Channels of both the skip feature ``x`` and the gating signal ``g`` (same resolution).
    momentum : float
        BatchNorm momentum.
    """

    def __init__(self, channels: int, momentum: float) -> None:
        super().__init__()
        inter = max(1, channels // 2)
        self.w_g = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter, momentum=momentum))
        self.w_x = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter, momentum=momentum))
        self.psi = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(inter, 1, 1),
                                 nn.BatchNorm2d(1, momentum=momentum), nn.Sigmoid())

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        alpha = self.psi(self.w_g(g) + self.w_x(x))
        return x * alpha


class UNet(nn.Module):
    """U-Net with optional attention gates; outputs logits of shape (N, 1, H, W).

    H and W must be multiples of ``2 ** (levels - 1)`` (see :attr:`alignment`).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if config.levels < 2:
            raise ValueError(f"UNet levels must be >= 2, got {config.levels}")
        if config.width < 2:
            raise ValueError(f"UNet width must be >= 2, got {config.width}")
        self.config = config
        m = config.bn_momentum
        chans = [config.width * 2 ** i for i in range(config.levels)]
        self.inc = DoubleConv(config.in_channels, chans[0], m)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(chans[i], chans[i + 1], m))
            for i in range(config.levels - 1))
        # decoder, deepest first
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                for i in reversed(range(config.levels - 1)))
        self.dec = nn.ModuleList(DoubleConv(2 * chans[i], chans[i], m)
                                 for i in reversed(range(config.levels - 1)))
        self.gates = nn.ModuleList(AttentionGate(chans[i], m) for i in reversed(range(config.levels - 1))) \
            if config.gates else None
        self.outc = nn.Conv2d(chans[0], 1, 1)

    @property
    def alignment(self) -> int:
        """Input sizes must be multiples of this."""
        return 2 ** (self.config.levels - 1)

    @property
    def receptive_radius(self) -> int:
        """Pixels beyond which an input cannot influence an output pixel (upper bound)."""
        lv = self.config.levels
        # per level l < L-1: 2 encoder + 2 decoder 3x3 convs (2**l px each), pool and up (2**l each);
        # the bottom level: 2 convs.
        return 6 * (2 ** (lv - 1) - 1) + 2 ** lv + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for k, (up, dec) in enumerate(zip(self.up, self.dec)):
            y = up(y)
            skip = skips.pop()
            if self.gates is not None:
                skip = self.gates[k](skip, y)
            y = dec(torch.cat([skip, y], dim=1))
        return self.outc(y)


def build_model(arch: str, **overrides: Any) -> UNet:
    """Build an architecture by name, with optional config overrides (``width``, ``levels``...).

    Raises
    ------
    ValueError
        If ``arch`` is unknown or an override is not a :class:`UNetConfig` field.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    cfg = dict(ARCHITECTURES[arch])
    fields = set(UNetConfig.__dataclass_fields__)
    bad = set(overrides) - fields
    if bad:
        raise ValueError(f"architecture {arch!r}: unknown option(s) {sorted(bad)}; known: {sorted(fields)}")
    cfg.update(overrides)
    return UNet(UNetConfig(**cfg))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every (Conv2d, BatchNorm2d) pair inside an ``nn.Sequential`` into the conv, in place.

    Only valid in eval mode (running statistics). Returns ``model``.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                running_mean, running_var = bn.running_mean, bn.running_var
                if running_mean is None or running_var is None:
                    raise ValueError(f"fuse_batchnorm: {b!r} keeps no running statistics; cannot fold it")
                scale = bn.weight / torch.sqrt(running_var + bn.eps)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(running_mean)
                new_bias = (bias - running_mean) * scale + bn.bias
                if conv.bias is None:
                    conv.bias = nn.Parameter(new_bias)
                else:
                    conv.bias.copy_(new_bias)
                module._modules[b] = nn.Identity()
    return model
