"""crbench-trained CNN baselines: deepCR-2-32 retrained, attention-gated U-Net, U-Net without gates.

Modules (one job each):

* :mod:`.models` - the configurable U-Net (attention gates switchable; deepCR-2-32 is its
  2-level, 32-channel, gate-free instance) and BatchNorm folding for inference;
* :mod:`.data` - input normalisation, patch sampling, augmentation, loss weight maps;
* :mod:`.losses` - BCE, Cosmic-CoNN median-weighted BCE, focal, BCE + Dice;
* :mod:`.train` - CPU training with a reproducible step budget (``python -m baselines.unet.train``,
  ``crbench train``);
* :mod:`.weights` - weight files (``torch.load(weights_only=True)``) and their JSON sidecars;
* :mod:`.inference` - seamless tiled inference;
* :mod:`.detector` - the registered detectors ``attention-unet``, ``unet-nogate``,
  ``deepcr-retrained``.
"""
