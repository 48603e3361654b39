"""``attention-unet-mixture-median``: the generalist with the companion exposures a median comparison uses.

A single frame cannot tell a CR on a bright star from the star's own structure as well as two more
exposures of the same star can (the noise-regime grid's sky-10,000 cells, README "Noise regimes").
This detector gives the generalist those exposures: its score is the net's logit plus a weighted,
clipped significance of the pixel over the median of the companions (:func:`.scores.fuse_scores`,
``median`` with its defaults). The weight is fitted on the validation splits of the mixture's sets
by ``python -m baselines.fusion.fit`` and read from the shipped sidecar
``baselines/weights/attention-unet-mixture-median.json`` (command, data hashes, the per-weight table).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from crbench.detectors.base import Detector
from crbench.errors import DetectorError
from crbench.jsonfile import read_json
from crbench.observation import Observation

from ..median import MedianDetector
from ..unet.detector import AttentionUNetMixtureDetector
from ..unet.weights import WEIGHTS_DIR
from .scores import Z_MAX, Z_MIN, fuse_scores

NAME = "attention-unet-mixture-median"
#: The shipped fit: weight, clip, net and the data it was chosen on.
SIDECAR = WEIGHTS_DIR / f"{NAME}.json"


def read_fit(path: str | Path = SIDECAR) -> dict[str, Any]:
    """The fusion fit recorded in ``path`` (a JSON sidecar written by :mod:`.fit`).

    Raises
    ------
    DetectorError
        If the file is missing, not JSON, or lacks a finite ``weight`` >= 0.
    """
    p = Path(path)
    if not p.is_file():
        raise DetectorError(f"{NAME}: fusion sidecar {p} not found; run `python -m baselines.fusion.fit` "
                            "(README 'The generalist with companion exposures')")
    fit = read_json(p, DetectorError, "a fusion sidecar")
    w = fit.get("weight") if isinstance(fit, dict) else None
    if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w) or w < 0:
        raise DetectorError(f"{p}: expected a finite 'weight' >= 0, got {w!r}")
    return fit


def _trained_on(net_trained_on: tuple[str, ...], fit_path: Path) -> tuple[str, ...]:
    """Data the net was trained on plus the splits the weight was chosen on (for the leaderboard's check)."""
    seen = list(net_trained_on)
    try:
        fit = read_fit(fit_path)
    except DetectorError:
        return tuple(seen)
    split = fit.get("split", "val")
    for d in fit.get("datasets", []):
        if isinstance(d, dict) and d.get("name") and f"{d['name']}:{split}" not in seen:
            seen.append(f"{d['name']}:{split}")
    return tuple(seen)


class MixtureMedianDetector(Detector):
    """The generalist net fused with the median comparison of the companion exposures.

    Parameters
    ----------
    weight : float, optional
        Weight of the median comparison's significance (default: the shipped fit's).
    z_min, z_max : float
        Clip of the significance in sigma.
    fit : str or Path, optional
        Fusion sidecar to read the weight from (default the shipped one).
    net_weights : str or Path, optional
        Weights of the attention U-Net (default the shipped ``attention-unet-mixture.pt``).
    deriv_scale : float
        The median comparison's alignment term (as ``median``).
    tile, threads
        Passed to the net (see ``attention-unet-mixture``).
    """

    name: ClassVar[str] = NAME
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("image", "exposures")
    score_range: ClassVar[tuple[float, float] | None] = None
    trained_on: ClassVar[tuple[str, ...]] = _trained_on(AttentionUNetMixtureDetector.trained_on, SIDECAR)

    def __init__(self, weight: float | None = None, z_min: float = Z_MIN, z_max: float = Z_MAX,
                 fit: str | Path | None = None, net_weights: str | Path | None = None, deriv_scale: float = 0.1,
                 tile: int = 512, threads: int | None = None) -> None:
        fit_path = Path(fit) if fit is not None else SIDECAR
        if weight is None:
            weight = float(read_fit(fit_path)["weight"])
        if not (np.isfinite(weight) and weight >= 0):
            raise DetectorError(f"{NAME}: weight must be a finite number >= 0, got {weight!r}")
        if not z_min < z_max:
            raise DetectorError(f"{NAME}: expected z_min < z_max, got {z_min!r} and {z_max!r}")
        self.net = AttentionUNetMixtureDetector(weights=net_weights, tile=tile, threads=threads)
        if fit is not None or net_weights is not None:  # another net or fit: what those were trained on
            self.trained_on = _trained_on(self.net.trained_on, fit_path)  # type: ignore[misc]
        self.median = MedianDetector(deriv_scale=deriv_scale)
        net_sha = self.net.params()["weights_sha256"]  # the net hashed its weight file already
        super().__init__(weight=float(weight), z_min=float(z_min), z_max=float(z_max),
                         net_weights="shipped" if net_weights is None else str(net_weights),
                         net_weights_sha256=net_sha, deriv_scale=float(deriv_scale), tile=int(tile))

    def score(self, obs: Observation) -> np.ndarray:
        """Fused score: the net's logit + weight x clipped median-comparison significance."""
        self.check_inputs(obs)
        p = self._params
        return fuse_scores(self.net.logits(obs), self.median.score(obs), p["weight"], z_min=p["z_min"],
                           z_max=p["z_max"])
