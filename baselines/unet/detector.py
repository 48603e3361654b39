"""Detectors backed by crbench-trained nets: ``attention-unet``, ``unet-nogate``, ``deepcr-retrained``
(trained on ``sim-hst-acs-ex``) and their ``-mixture`` versions (trained on the mixture of standard sets).

Each loads its shipped weights (``baselines/weights/NAME.pt``) or ``weights=PATH``, normalises
the image as in training (:mod:`.data`), runs seamless tiled inference in float32 under
``torch.no_grad()`` (:mod:`.inference`) and returns the CR probability map.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from crbench.detectors.base import Detector
from crbench.errors import DatasetError, DetectorError
from crbench.observation import Observation

from .data import normalization_method, normalize_observation
from .inference import predict_logits, sigmoid
from .models import fuse_batchnorm
from .weights import WEIGHTS_DIR, file_sha256, load_weights, read_sidecar


def trained_on_from_sidecar(weights: str | Path) -> tuple[str, ...]:
    """``('DATASET:SPLIT', ...)`` of the data a weight file was trained and selected on."""
    side = read_sidecar(weights) or {}
    data = side.get("training_data") or {}
    listed = data.get("datasets")
    names = [d["name"] for d in listed if isinstance(d, dict) and d.get("name")] if isinstance(listed, list) else []
    if not names and data.get("dataset"):
        names = [data["dataset"]]
    if not names:
        return ()
    splits = [data.get("split", "train")] + ([data["val_split"]] if data.get("val_split") else [])
    return tuple(f"{name}:{s}" for name in names for s in splits)


class _TrainedUNetDetector(Detector):
    """Common implementation; subclasses set :attr:`name` and :attr:`arch`.

    Parameters
    ----------
    weights : str or Path, optional
        Weight file; default the shipped ``baselines/weights/<name>.pt``.
    tile : int
        Core tile side for inference (memory control; the output does not depend on it).
    threads : int, optional
        torch intra-op threads during :meth:`score` (default: leave torch's setting).
    """

    arch: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("image",)
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    #: 2: normalisation statistics exclude the instrument mask, no longer the evaluation ignore mask.
    version: ClassVar[str] = "2"

    def __init__(self, weights: str | Path | None = None, tile: int = 512, threads: int | None = None) -> None:
        path = Path(weights) if weights is not None else WEIGHTS_DIR / f"{self.name}.pt"
        model, meta = load_weights(path, expect_arch=self.arch)
        self.model = fuse_batchnorm(model).eval()
        self.weights_path = path
        self.meta = meta
        try:
            #: ``'image-stats'`` (shipped weights, files without the record) or ``'noise-model'``.
            self.normalization = normalization_method(meta.get("normalization"))
        except DatasetError as exc:
            raise DetectorError(f"weights file {path}: {exc}") from exc
        self.threads = threads
        found = trained_on_from_sidecar(path)
        if found or weights is not None:
            self.trained_on = found  # type: ignore[misc]
        super().__init__(weights=str(path) if weights is not None else "shipped",
                         weights_sha256=file_sha256(path)[:16], tile=int(tile))

    def score(self, obs: Observation) -> np.ndarray:
        """CR probability per pixel, float32 in [0, 1] (the sigmoid of :meth:`logits`)."""
        return sigmoid(self.logits(obs))

    def logits(self, obs: Observation) -> np.ndarray:
        """The net's float32 logit per pixel (unbounded: no ties where the probability rounds to 1).

        The input is normalised as the net was trained (:attr:`normalization`): ``image-stats``
        (the image's median and MAD) or ``noise-model`` (gain, read noise and sky from
        ``obs.meta``); the median uses the image's pixels outside the instrument mask.
        """
        x = normalize_observation(self.normalization, obs.image, obs.meta, obs.bad_pixels())
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            with torch.no_grad():
                logits = predict_logits(self.model, x, tile=self._params["tile"])  # type: ignore[arg-type]  # the fused UNet
        finally:
            if self.threads:
                torch.set_num_threads(prev)
        return np.asarray(logits, dtype=np.float32)

    def probability(self, image: np.ndarray, dqmask: np.ndarray | None = None,
                    meta: Mapping[str, Any] | None = None) -> np.ndarray:
        """Probability map of a bare image in electrons (convenience for scripts).

        ``dqmask`` is an optional uint8 instrument mask (``crbench.observation.DQ_*`` bits);
        ``meta`` the instrument keys (``gain``, ``read_noise``, ``sky``) a ``noise-model`` net needs.
        """
        return self.score(Observation.build("image", image, dqmask=dqmask, meta=meta))


def _class_trained_on(name: str) -> tuple[str, ...]:
    return trained_on_from_sidecar(WEIGHTS_DIR / f"{name}.pt")


class AttentionUNetDetector(_TrainedUNetDetector):
    """U-Net with attention gates on every skip (Bhavanam et al. 2022), trained by crbench."""

    name: ClassVar[str] = "attention-unet"
    arch: ClassVar[str] = "attention-unet"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("attention-unet")


class PlainUNetDetector(_TrainedUNetDetector):
    """The attention U-Net with the gates removed (the gate ablation), trained by crbench."""

    name: ClassVar[str] = "unet-nogate"
    arch: ClassVar[str] = "unet-nogate"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("unet-nogate")


class DeepCRRetrainedDetector(_TrainedUNetDetector):
    """The deepCR-2-32 architecture retrained on crbench data by crbench's trainer.

    deepCR's own trainer (``deepCR.training.train``) does not run on current torch
    (``ReduceLROnPlateau(verbose=True)`` was removed) and hard-codes ``num_workers=8``; it also
    standardises training batches by mean/std, which its inference does not repeat. crbench
    therefore trains the identical 101,473-parameter net with its own trainer and the same input
    normalisation as the other crbench nets.
    """

    name: ClassVar[str] = "deepcr-retrained"
    arch: ClassVar[str] = "deepcr-2-32"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("deepcr-retrained")


class AttentionUNetMixtureDetector(_TrainedUNetDetector):
    """The generalist: the attention U-Net trained on the mixture of standard sets (issue 18).

    Trained on HST ACS EX/GC/GAL, DECam, ground-small and the MicroObservatory twin and footprint
    sets with noise, gain and sky augmentation, and fed significance from each image's noise model
    (``normalization: noise-model`` in its weight file), so it needs ``gain``, ``read_noise`` and
    ``sky`` in the sample's meta. Its sidecar records the command, data hashes and log.
    """

    name: ClassVar[str] = "attention-unet-mixture"
    arch: ClassVar[str] = "attention-unet"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("attention-unet-mixture")


class AttentionUNetMixture60Detector(_TrainedUNetDetector):
    """The generalist at the one-hour budget: the attention U-Net on the same mixture, noise
    augmentation, normalisation and seed as ``attention-unet-mixture``, trained for 60 CPU minutes
    (the step count of that budget) instead of 25. Its sidecar records the command, data hashes and log.
    """

    name: ClassVar[str] = "attention-unet-mixture-60"
    arch: ClassVar[str] = "attention-unet"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("attention-unet-mixture-60")


class PlainUNetMixtureDetector(_TrainedUNetDetector):
    """The gate ablation of the generalist: no attention gates, same mixture, budget and seed."""

    name: ClassVar[str] = "unet-nogate-mixture"
    arch: ClassVar[str] = "unet-nogate"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("unet-nogate-mixture")


class DeepCRRetrainedMixtureDetector(_TrainedUNetDetector):
    """deepCR-2-32 trained by crbench on the mixture, same budget, seed and normalisation as the U-Nets."""

    name: ClassVar[str] = "deepcr-retrained-mixture"
    arch: ClassVar[str] = "deepcr-2-32"
    trained_on: ClassVar[tuple[str, ...]] = _class_trained_on("deepcr-retrained-mixture")


DETECTOR_CLASSES: dict[str, type[_TrainedUNetDetector]] = {
    c.name: c for c in (AttentionUNetDetector, PlainUNetDetector, DeepCRRetrainedDetector,
                        AttentionUNetMixtureDetector, AttentionUNetMixture60Detector, PlainUNetMixtureDetector,
                        DeepCRRetrainedMixtureDetector)
}


def detector_for(name_or_arch: str, **params: Any) -> _TrainedUNetDetector:
    """Instantiate the detector for a detector name or an architecture name."""
    for cls in DETECTOR_CLASSES.values():
        if name_or_arch in (cls.name, cls.arch):
            return cls(**params)
    raise KeyError(name_or_arch)


def parse_weight_labels(items: Sequence[str], option: str = "--weights") -> list[tuple[str, Path]]:
    """``LABEL=PATH`` items as (label, path) pairs, every path an existing file.

    Raises
    ------
    DetectorError
        Naming ``option`` and the malformed item or the missing file.
    """
    out = []
    for item in items:
        label, sep, path = str(item).partition("=")
        if not sep or not label or not path:
            raise DetectorError(f"{option} {item!r}: expected LABEL=PATH")
        p = Path(path)
        if not p.is_file():
            raise DetectorError(f"{option} {item!r}: no weight file at {p}")
        out.append((label, p))
    return out


def detector_for_weights(path: str | Path) -> _TrainedUNetDetector:
    """The detector of the architecture a weight file holds, loading that file (its normalisation
    comes from the file too).

    Raises
    ------
    DetectorError
        When the file's architecture is not a crbench net.
    """
    from .weights import load_weights

    _, meta = load_weights(path, check_sidecar=False)
    arch = meta.get("arch")
    try:
        return detector_for(str(arch), weights=str(path))
    except KeyError:
        raise DetectorError(f"{path}: unknown architecture {arch!r}") from None
