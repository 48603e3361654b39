import sys, tempfile
from pathlib import Path
import pandas as pd
sys.path.insert(0, 'benchmarks')
import noise_regimes as nr
from baselines.unet.detector import AttentionUNetMixtureDetector
from crbench.detectors.registry import get_detector
bgs = nr.real_backgrounds(4, None, None)
inj = nr.draw_injections(bgs, rate_scale=30, seed=0)
grid = nr.make_grid((5., 40., 100.), (10., 1000., 10000.), (1., 20.))
dets = {"median": get_detector("median"),
        "mixture-10": AttentionUNetMixtureDetector(weights="runs/budget10/attention-unet-mixture.pt"),
        "srcaug-10": AttentionUNetMixtureDetector(weights="runs/srcaug/attention-unet-mixture.pt")}
rows = []
with tempfile.TemporaryDirectory() as tmp:
    for k, cell in enumerate(grid):
        samples = nr.cell_samples(inj, cell, k, 0)
        for name, d in dets.items():
            rows += nr.score_cell(samples, {name: d}, cell, Path(tmp) / name)
        print(cell.name, {r["detector"]: round(r["ap"], 3) for r in rows if r["cell"] == cell.name}, flush=True)
df = pd.DataFrame(rows)
df.to_csv("runs/srcaug/noise_eval.csv", index=False)
for d in ("mixture-10", "srcaug-10"):
    print(d, "below median (AP>=0.5):", len(nr.below_classical(df, d, classical=("median",))))
