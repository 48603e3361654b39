"""EXPLORATORY (not part of the package; run from the repository root with CRBENCH_DATA_DIR holding the standard builds): does brightening the sources of training patches fix the high-sky star confusion?
Wraps apply_noise_regime: before each patch's noise regime, with probability 0.5, the patch's smooth positive
structure (3x3 median filter minus the sky, clipped >= 0: stars, galaxies; 1-2 px CRs mostly removed) is scaled by
f ~ log-uniform [1, 30], with the Poisson noise of the added charge. Truth unchanged. Same recipe and 1373 steps as
the 10-minute mixture net."""
import numpy as np
from scipy import ndimage
import baselines.unet.data as data
_orig = data.apply_noise_regime
def brighten_then_regime(img, regime, rng, *, read_noise, sky):
    if rng.random() < 0.5:
        f = float(np.exp(rng.uniform(0.0, np.log(30.0))))
        struct = np.clip(ndimage.median_filter(img, size=3) - sky, 0.0, None)
        add = (f - 1.0) * struct
        img = (img + add + rng.normal(0.0, 1.0, img.shape) * np.sqrt(add)).astype(np.float32)
    return _orig(img, regime, rng, read_noise=read_noise, sky=sky)
data.apply_noise_regime = brighten_then_regime
from baselines.unet.train import main
import sys
sys.exit(main(["attention-unet", "--dataset", "sim-hst-acs-ex,sim-hst-acs-gc,sim-hst-acs-gal,sim-decam,sim-ground-small,microobs-hatp32-sim,microobs-hatp32-footprints",
               "--steps", "1373", "--seed", "0", "--loss", "mwbce", "--out", "runs/srcaug", "--normalisation", "noise-model",
               "--noise-aug", "--epoch-steps", "200", "--val-crop", "256", "--max-val-images", "4", "--name", "attention-unet-mixture", "--no-progress"]))
