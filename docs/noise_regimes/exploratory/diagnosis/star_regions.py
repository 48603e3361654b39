"""EXPLORATORY (not part of the package; run from the repository root with CRBENCH_DATA_DIR and
CRBENCH_MIRROR set): where the sky-10,000 cells of benchmarks/noise_regimes.py lose AP.

For the six sky-10,000 cells of the published grid (rate x100, eight backgrounds, seed 0), each
detector's pooled AP (scikit-learn average_precision_score over the scored pixels, which matches the
harness's AP to 3 decimals here) with parts of the frame left out of the score:

- ``all``: every scored pixel (the published cell);
- ``no_star_region``: pixels within a 5x5 dilation of the background model > 20 sigma (bright stars) out;
- ``no_star_negatives``: only the non-CR pixels of those regions out (star false positives);
- ``no_star_crs``: only the CR pixels of those regions out (CRs that land on bright stars);
- ``no_faint_crs``: CR pixels under 10 sigma out.

Usage: python docs/noise_regimes/exploratory/diagnosis/star_regions.py [LABEL=WEIGHTS.pt ...] > out.csv
"""
import sys

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score

sys.path.insert(0, "benchmarks")
import noise_regimes as nr  # noqa: E402

from baselines.unet.detector import detector_for_weights  # noqa: E402
from crbench.detectors.registry import get_detector  # noqa: E402

bgs, sats = nr.real_backgrounds_and_saturation(8, None, None, progress=False)
inj = nr.draw_injections(bgs, rate_scale=100, seed=0, saturated=sats)
grid = nr.make_grid((5.0, 40.0, 100.0), (10.0, 1000.0, 10000.0), (1.0, 20.0))
dets = {"median": get_detector("median"), "attention-unet-mixture": get_detector("attention-unet-mixture")}
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    dets[label] = detector_for_weights(path)
print("cell,exclusion,detector,ap")
for k, cell in enumerate(grid):
    if cell.sky != 10000.0:
        continue
    scores = {n: [] for n in dets}
    truth, keep, snr = [], {e: [] for e in ("all", "no_star_region", "no_star_negatives", "no_star_crs")}, []
    for s, ij in zip(nr.cell_samples(inj, cell, k, 0), inj):
        obs = s.observation()
        for n, d in dets.items():
            scores[n].append(d.score(obs).ravel())
        valid = ~(s.ignore | s.halo)
        bg = nr.scale_to_sky(ij.background, cell.sky)
        sig = cell.sigma(bg)
        star = ndimage.binary_dilation((bg - cell.sky) > 20 * sig, np.ones((5, 5), bool))
        keep["all"].append(valid.ravel())
        keep["no_star_region"].append((valid & ~star).ravel())
        keep["no_star_negatives"].append((valid & ~(star & ~s.truth)).ravel())
        keep["no_star_crs"].append((valid & ~(star & s.truth)).ravel())
        truth.append(s.truth.ravel())
        snr.append(((s.image - bg) / sig).ravel())
    y, snr = np.concatenate(truth), np.concatenate(snr)
    keep = {e: np.concatenate(v) for e, v in keep.items()}
    keep["no_faint_crs"] = keep["all"] & ~(y & (snr < 10))
    for e, m in keep.items():
        for n in dets:
            ap = average_precision_score(y[m], np.concatenate(scores[n])[m])
            print(f"{cell.name},{e},{n},{ap:.4f}", flush=True)
