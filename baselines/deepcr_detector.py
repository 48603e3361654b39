"""``deepcr``: the published deepCR package (Zhang & Bloom 2020) with its shipped weights.

Input scaling (what each shipped model expects; crbench images are in electrons)
---------------------------------------------------------------------------------
* ``ACS-WFC`` (default; global ACS/WFC model, Kwon 2021) and the per-filter ACS/WFC files
  (``ACS-WFC-F435W``, ``ACS-WFC-F606W``, ``ACS-WFC-F814W``, ``ACS-WFC-F606W-2-4``): raw electrons
  (``_flc`` units, sky included), **no normalisation** - passed through unchanged.
* ``WFC3-UVIS``: deepCR itself subtracts the image mean and divides by the image std
  (per image, inside ``clean``); crbench passes electrons.
* ``decam``: deepCR's preliminary DECam model, electrons passed unchanged (scale 1).

Traps handled so that users never meet them (see ``docs/anchors.md#deepcr-traps``):

* ``deepCR`` is imported before ``learned_models`` (circular import otherwise);
* inference runs under ``torch.inference_mode()`` (deepCR leaves gradient tracking on because of
  a ``required_grad`` typo) with ``patch=256`` (about 2x faster than the default 1024);
* the map is returned as float32 (``clean_large`` builds float64);
* ``WFC3-UVIS``'s weight-norm FutureWarning is silenced;
* the unregistered per-filter BatchNorm weights, which deepCR can only load as weight-norm nets
  (and so fails on), are loaded into the BatchNorm U-Net they were saved from.

deepCR tiles the image into non-overlapping ``patch`` squares, each zero-padded at its edges, so
its map can show faint seams at patch borders; this is deepCR's published behaviour, kept as is.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

import numpy as np

from crbench.detectors.base import Detector
from crbench.errors import DetectorError
from crbench.observation import Observation

#: Model name -> (file under learned_models/mask, hidden channels, registered in deepCR's mask_dict).
MODELS: dict[str, tuple[str, int, bool]] = {
    "ACS-WFC": ("ACS-WFC.pth", 32, True),
    "WFC3-UVIS": ("WFC3-UVIS.pth", 32, True),
    "decam": ("decam.pth", 32, True),
    "ACS-WFC-F435W": ("ACS-WFC-F435W.pth", 32, False),
    "ACS-WFC-F606W": ("ACS-WFC-F606W.pth", 32, False),
    "ACS-WFC-F814W": ("ACS-WFC-F814W.pth", 32, False),
    "ACS-WFC-F606W-2-4": ("ACS-WFC-F606W-2-4.pth", 4, False),
}

_INSTALL_HINT = ("install the 'deep' extra: pip install torch==2.13.0 && pip install -e \".[deep]\" "
                 "(from the crbench source folder)")
#: Oldest torch whose ``torch.load`` defaults to ``weights_only=True``: deepCR loads its shipped
#: weights with a bare ``torch.load``, which on older torch unpickles (and so can run code).
MIN_TORCH = (2, 6)


def _check_torch_version(version: str) -> None:
    """Refuse a torch older than :data:`MIN_TORCH` (deepCR's own ``torch.load`` would unpickle)."""
    try:
        found = tuple(int(x) for x in version.split("+")[0].split(".")[:2])
    except ValueError:
        return  # a development build we cannot parse: assume it is recent
    if found < MIN_TORCH:
        raise DetectorError(
            f"detector 'deepcr' needs torch >= {'.'.join(map(str, MIN_TORCH))} (found {version}): older torch "
            f"loads deepCR's weights by unpickling, which can run code; {_INSTALL_HINT}")


def _import_deepcr():
    """Import deepCR's model class (deepCR first, then learned_models) with a clear error."""
    try:
        import torch
    except ImportError as exc:
        raise DetectorError(f"detector 'deepcr' needs torch ({exc}); {_INSTALL_HINT}") from exc
    _check_torch_version(torch.__version__)
    try:
        import deepCR  # noqa: F401  (must precede learned_models: circular import otherwise)
        from deepCR import deepCR as DeepCRModel
        import learned_models
    except ImportError as exc:
        raise DetectorError(f"detector 'deepcr' needs the deepcr package ({exc}); {_INSTALL_HINT}") from exc
    return DeepCRModel, learned_models


def load_deepcr(model: str = "ACS-WFC"):
    """A ready deepCR instance on CPU for one of :data:`MODELS`.

    Raises
    ------
    DetectorError
        If the model name is unknown, deepcr is not installed, or the weight file will not load.
    """
    if model not in MODELS:
        raise DetectorError(f"detector 'deepcr': unknown model {model!r}; choose one of {', '.join(MODELS)}")
    DeepCRModel, learned_models = _import_deepcr()
    import torch

    fname, hidden, registered = MODELS[model]
    path = os.path.join(learned_models.default_model_path, "mask", fname)
    if not os.path.exists(path):
        raise DetectorError(f"detector 'deepcr': the deepcr package lacks its shipped weight file {path}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.nn.utils.weight_norm")
        try:
            if registered:
                net = DeepCRModel(mask=model, device="CPU")
            else:
                from deepCR.unet import WrappedModel
                from deepCR.unet_batchnorm import UNet2SigmoidBatchNorm

                net = DeepCRModel(mask="ACS-WFC", device="CPU")
                net.maskNet = WrappedModel(UNet2SigmoidBatchNorm(1, 1, hidden)).type(torch.FloatTensor)
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.maskNet.load_state_dict(state)
                net.maskNet.eval()
                net.scale, net.norm = 1, False
        except Exception as exc:  # noqa: BLE001 - a corrupt file makes torch's unpickler raise almost anything
            first = " ".join(str(exc).split()).split(". ")[0]  # torch's advice after it is not for users
            why = f"{type(exc).__name__}: {first[:150]}" if first else type(exc).__name__
            raise DetectorError(f"detector 'deepcr': cannot load weight file {path} ({why}); the file is corrupt "
                                "or not a deepCR state dict: reinstall deepcr (pip install --force-reinstall "
                                "deepcr==0.3.1)") from exc
    for p in net.maskNet.parameters():
        p.requires_grad_(False)
    return net


class DeepCRDetector(Detector):
    """deepCR's pretrained mask net; score = deepCR's CR probability.

    Parameters
    ----------
    model : str
        One of :data:`MODELS` (``'ACS-WFC'`` default, ``'WFC3-UVIS'``, ``'decam'``, per-filter ACS).
    patch : int
        deepCR's segment size (256 is deepCR's recommendation and the fastest on CPU).
    threads : int, optional
        torch intra-op threads during :meth:`score` (default: torch's setting).
    """

    name: ClassVar[str] = "deepcr"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("image",)
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    #: Shipped weights trained on HST data outside crbench.
    trained_on: ClassVar[tuple[str, ...]] = ("deepCR:ACS-WFC (Kwon 2021, external)",)

    def __init__(self, model: str = "ACS-WFC", patch: int = 256, threads: int | None = None) -> None:
        if int(patch) < 4:
            raise DetectorError(f"detector 'deepcr': patch must be >= 4, got {patch!r}")
        self.net = load_deepcr(model)
        self.threads = threads
        super().__init__(model=model, patch=int(patch))

    def score(self, obs: Observation) -> np.ndarray:
        """deepCR's probability map for ``obs.image`` (electrons), float32 in [0, 1]."""
        return self.probability(obs.image)

    def probability(self, image: np.ndarray) -> np.ndarray:
        """deepCR's probability map of a bare image in electrons."""
        import torch

        img = np.asarray(image, dtype=np.float32)
        if img.ndim != 2:
            raise DetectorError(f"detector 'deepcr' needs a 2-D image, got shape {img.shape}")
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                prob = self.net.clean(img, binary=False, inpaint=False, segment=True, patch=self._params["patch"])
        finally:
            if self.threads:
                torch.set_num_threads(prev)
        # NaN/inf stay: the harness's finite check (check_score_map) reports them, naming the sample
        return np.asarray(prob, dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return dict(self._params)
