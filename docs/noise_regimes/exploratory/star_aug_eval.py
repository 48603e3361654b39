"""EXPLORATORY (not part of the package; run from the repository root with CRBENCH_DATA_DIR and
CRBENCH_MIRROR set): the noise-regime grid of benchmarks/noise_regimes.py (same backgrounds, CRs and
cells as the README command, NBG backgrounds, default 4) for the median comparison and candidate nets
given as LABEL=WEIGHTS (an attention U-Net weight file) or LABEL=reg:DETECTOR (a registered detector).
Used for the star-augmentation test (README "Noise regimes") and, with 4 backgrounds, the diagnosis
runs in diagnosis/ (each at the benchmark state its README names):

    NBG=8 python docs/noise_regimes/exploratory/star_aug_eval.py docs/noise_regimes/exploratory/diagnosis/star_aug_8_backgrounds.csv \
        mixture-10=runs/budget10/attention-unet-mixture.pt star-aug-0.3=runs/star/p0.3/attention-unet-mixture.pt \
        star-aug-0.6=runs/star/p0.6/attention-unet-mixture.pt

The weights come from the commands in star_aug_p0.3_sidecar.json / star_aug_p0.6_sidecar.json
("reproduce_command"; mixture-10 from docs/cross_domain/sidecars/attention-unet-mixture-10min.json)."""
import sys, tempfile, os
from pathlib import Path
import pandas as pd
sys.path.insert(0, 'benchmarks')
import noise_regimes as nr
from baselines.unet.detector import AttentionUNetMixtureDetector
from crbench.detectors.registry import get_detector
cands = dict(a.split("=", 1) for a in sys.argv[2:])
out = Path(sys.argv[1])
N = int(os.environ.get("NBG", "4"))
bgs, sats = nr.real_backgrounds_and_saturation(N, None, None, progress=False)
inj = nr.draw_injections(bgs, rate_scale=30, seed=0, saturated=sats)
grid = nr.make_grid((5., 40., 100.), (10., 1000., 10000.), (1., 20.))
dets = {"median": get_detector("median")}
dets.update({k: (get_detector(v[4:]) if v.startswith("reg:") else AttentionUNetMixtureDetector(weights=v)) for k, v in cands.items()})
rows = []
with tempfile.TemporaryDirectory() as tmp:
    for k, cell in enumerate(grid):
        samples = nr.cell_samples(inj, cell, k, 0)
        for name, d in dets.items():
            rows += nr.score_cell(samples, {name: d}, cell, Path(tmp) / name)
        print(cell.name, {r["detector"]: round(r["ap"], 3) for r in rows if r["cell"] == cell.name}, flush=True)
df = pd.DataFrame(rows)
df.to_csv(out, index=False)
for d in cands:
    print(d, "below median (AP>=0.5):", len(nr.below_classical(df, d, classical=("median",))))
