"""Labelling parameters (:class:`LabelParams`), the noise model and the 8-connectivity structure."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from crbench.truth import TruthRule, seed_grow_rule


EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class LabelParams:
    """Parameters of the labelling pipeline (recorded in the dataset card)."""

    seed_snr: float = 5.0
    grow_snr: float = 2.5
    #: growth steps from a seed (None: the whole connected region, the library's default rule)
    grow_iterations: int | None = None
    min_pixels: int = 2
    n_companions: int = 6
    min_companions: int = 3
    deriv_scale: float = 0.2
    border: int = 8
    source_snr: float = 3.0
    source_grow: int = 1
    source_min_pixels: int = 2
    hot_min_frames: int = 3
    hot_min_fraction: float = 0.02
    hot_static_snr: float = 10.0
    saturation_adu: float | None = None
    saturation_grow: int = 2
    outlier_rejection: bool = True
    upsample: int = 20
    interpolation_order: int = 1
    #: stored exposures are not among the companions the frame was labelled against (not circular)
    disjoint_exposures: bool = True
    #: label CRs touching sources whose companions agree within the noise (stable_sources.py)
    label_stable_sources: bool = True
    stable_scatter_max: float = 1.5

    @property
    def truth_rule(self) -> TruthRule:
        """The truth rule these parameters name (:mod:`crbench.truth`)."""
        return seed_grow_rule(self.seed_snr, self.grow_snr, max_grow=self.grow_iterations)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NoiseModel:
    """CCD noise model: electrons = (ADU - bias) x gain; variance = read_noise^2 + max(signal, 0)."""

    gain: float
    read_noise: float
    bias: float
    method: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"gain": float(self.gain), "read_noise": float(self.read_noise), "bias": float(self.bias),
                **self.method}
