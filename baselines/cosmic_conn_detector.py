"""``cosmic-conn``: optional plugin for Cosmic-CoNN (Xu et al. 2023) with its shipped models.

Cosmic-CoNN is GPL-3 licensed and never required: install it with
``pip install -e ".[cosmic-conn]"`` from a source checkout (after a pinned torch). crbench only
imports it here.

Quirks handled:

* its nets never predict the last ``h % 16`` rows and ``w % 16`` columns (left at 0): the image is
  padded by reflection to a multiple of 16 and the prediction cropped back;
* ``init_model`` calls ``logging.basicConfig``, which would configure the user's root logger:
  the root logger's handlers and level are restored afterwards;
* its stamp loop reports any error as "stamp won't fit into memory": crbench calls it with one
  stamp size (``crop``) and re-raises failures as :class:`~crbench.errors.DetectorError`.

Input: images in electrons with the sky included (Cosmic-CoNN subtracts each stamp's median
itself); ``ground_imaging`` (LCO imagers, default), ``NRES`` (LCO spectrograph) and
``HST_ACS_WFC`` are selectable with ``model``.
"""
from __future__ import annotations

import logging
from typing import ClassVar, Literal

import numpy as np

from crbench.detectors.base import Detector
from crbench.errors import DetectorError
from crbench.observation import Observation

MODELS = ("ground_imaging", "NRES", "HST_ACS_WFC")
_HINT = ("detector 'cosmic-conn' needs the optional, GPL-3 licensed cosmic-conn package; install it with "
         'pip install torch==2.13.0 && pip install -e ".[cosmic-conn]" (from the crbench source folder)')


def _init_model(model: str, crop: int):
    """``cosmic_conn.init_model`` without its logging side effect."""
    try:
        import cosmic_conn
        from cosmic_conn.dl_framework.options import ModelOptions
    except ImportError as exc:
        raise DetectorError(f"{_HINT} ({exc})") from exc
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        opt = ModelOptions()
        opt.crop = int(crop)
        net = cosmic_conn.init_model(model, opt)
    except Exception as exc:  # noqa: BLE001 - third-party code raises anything
        raise DetectorError(f"detector 'cosmic-conn': cannot initialise model {model!r} ({exc})") from exc
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    return net


class CosmicCoNNDetector(Detector):
    """Cosmic-CoNN's shipped nets; score = Cosmic-CoNN's CR probability.

    Parameters
    ----------
    model : str
        ``'ground_imaging'`` (default), ``'NRES'`` or ``'HST_ACS_WFC'``.
    crop : int
        Stamp size for its tiled inference (256 is ~2x faster than its default 1024 on CPU).
    """

    name: ClassVar[str] = "cosmic-conn"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("image",)
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    trained_on: ClassVar[tuple[str, ...]] = ("Cosmic-CoNN LCO (Xu et al. 2023, external)",)

    def __init__(self, model: str = "ground_imaging", crop: int = 256) -> None:
        if model not in MODELS:
            raise DetectorError(f"detector 'cosmic-conn': unknown model {model!r}; choose one of {', '.join(MODELS)}")
        if int(crop) < 16 or int(crop) % 16:
            raise DetectorError(f"detector 'cosmic-conn': crop must be a positive multiple of 16, got {crop!r}")
        self.net = _init_model(model, int(crop))
        super().__init__(model=model, crop=int(crop))

    def score(self, obs: Observation) -> np.ndarray:
        """Cosmic-CoNN's probability map, float32, every pixel predicted."""
        return self.probability(obs.image)

    def probability(self, image: np.ndarray) -> np.ndarray:
        """Probability map of a bare image in electrons."""
        import torch

        img = np.asarray(image, dtype=np.float32)
        if img.ndim != 2:
            raise DetectorError(f"detector 'cosmic-conn' needs a 2-D image, got shape {img.shape}")
        h, w = img.shape
        crop = self._params["crop"]
        # pad to a multiple of 16 (its last h%16 rows / w%16 cols are never predicted) and to at
        # least one stamp
        ph, pw = max((-h) % 16, 16 - h if h < 16 else 0), max((-w) % 16, 16 - w if w < 16 else 0)
        mode: Literal["reflect", "edge"] = "reflect" if (h > ph and w > pw) else "edge"
        padded = np.pad(img, ((0, ph), (0, pw)), mode=mode) if (ph or pw) else img
        padded = np.nan_to_num(padded, nan=float(np.nanmedian(padded)))
        try:
            with torch.no_grad():
                prob = self.net.detect_cr(padded, ret_numpy=True)
        except Exception as exc:  # noqa: BLE001
            raise DetectorError(f"detector 'cosmic-conn' failed on a {h}x{w} image with crop {crop}: {exc}") from exc
        prob = np.asarray(prob, dtype=np.float32)[:h, :w]
        # NaN/inf stay: the harness's finite check (check_score_map) reports them, naming the sample
        return np.ascontiguousarray(prob)
