"""EXPLORATORY (not part of the package; run from the repository root with CRBENCH_DATA_DIR and
CRBENCH_MIRROR set): which bright CRs each detector misses in one sky-10,000 cell of the published grid.

Cell rn40-sky10000-g1 (rate x100, eight backgrounds, seed 0). Threshold: each detector's score at FPR
5e-4 over the scored pixels (pooled). A CR is a truth component (8-connected) whose peak significance
above the scaled background model is >= 10 sigma; it is missed when none of its pixels reaches the
threshold. Prints one line per missed CR: detector, background, component, pixels, peak sigma, whether it
touches a bright-star region (background model > 20 sigma, dilated 5x5), the background's peak sigma
under it, the distance to the nearest saturated pixel (px) and its best score.

Usage: python docs/noise_regimes/exploratory/diagnosis/bright_misses.py
"""
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, "benchmarks")
import noise_regimes as nr  # noqa: E402

from crbench.detectors.registry import get_detector  # noqa: E402

bgs, sats = nr.real_backgrounds_and_saturation(8, None, None, progress=False)
inj = nr.draw_injections(bgs, rate_scale=100, seed=0, saturated=sats)
grid = nr.make_grid((5.0, 40.0, 100.0), (10.0, 1000.0, 10000.0), (1.0, 20.0))
cell = next(c for c in grid if (c.read_noise, c.sky, c.gain) == (40.0, 10000.0, 1.0))
k = grid.index(cell)
dets = {"median": get_detector("median"), "attention-unet-mixture": get_detector("attention-unet-mixture")}
scores = {n: [] for n in dets}
truth, valid, snr, star, bg_sigma, sat_dist = [], [], [], [], [], []
for s, ij in zip(nr.cell_samples(inj, cell, k, 0), inj):
    obs = s.observation()
    for n, d in dets.items():
        scores[n].append(d.score(obs))
    bg = nr.scale_to_sky(ij.background, cell.sky)
    sig = cell.sigma(bg)
    truth.append(s.truth)
    valid.append(~(s.ignore | s.halo))
    snr.append((s.image - bg) / sig)
    star.append(ndimage.binary_dilation((bg - cell.sky) > 20 * sig, np.ones((5, 5), bool)))
    bg_sigma.append((bg - cell.sky) / sig)
    sat = ij.saturated | (s.image >= cell.saturation)
    sat_dist.append(ndimage.distance_transform_edt(~sat) if sat.any() else np.full(sat.shape, np.inf))
print("detector,background,component,pixels,peak_sigma,on_bright_star,background_peak_sigma,"
      "distance_to_saturation_px,best_score")
for n in dets:
    pooled = np.concatenate([sc[v & ~t] for sc, v, t in zip(scores[n], valid, truth)])
    thr = np.quantile(pooled, 1 - 5e-4)
    for i in range(len(truth)):
        lab, n_lab = ndimage.label(truth[i] & valid[i], np.ones((3, 3), bool))
        for j in range(1, n_lab + 1):
            m = lab == j
            peak = float(snr[i][m].max())
            if peak < 10 or scores[n][i][m].max() >= thr:
                continue
            print(f"{n},{i},{j},{int(m.sum())},{peak:.1f},{bool(star[i][m].any())},{bg_sigma[i][m].max():.1f},"
                  f"{sat_dist[i][m].min():.1f},{scores[n][i][m].max():.4f}")
