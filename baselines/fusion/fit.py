"""Choose the fusion weight of ``attention-unet-mixture-median`` on the mixture's validation splits.

For every validation image of every dataset the net's logits and the median comparison's
significance are computed once; then, for each candidate weight, the exact average precision
(scikit-learn's definition, outside each sample's ignore mask) per dataset; the weight with the
highest mean AP over the datasets (each dataset counts once, as in the mixture's training) is
written with the whole table, the data hashes and the command to the sidecar the detector reads::

    CRBENCH_DATA_DIR=... python -m baselines.fusion.fit --out baselines/weights/attention-unet-mixture-median.json

Test splits are never read.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from crbench.errors import UsageError  # noqa: E402

#: The sets the generalist was trained on that carry companion exposures (all seven of its mixture).
MIXTURE_SETS = ("sim-hst-acs-ex", "sim-hst-acs-gc", "sim-hst-acs-gal", "sim-decam", "sim-ground-small",
                "microobs-hatp32-sim", "microobs-hatp32-footprints")
#: Candidate weights of the significance (0 = the net alone).
WEIGHTS = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class Pixels:
    """The valid pixels of one dataset's split: net logits, median significance, truth."""

    name: str
    content_hash: str
    n_images: int
    logits: np.ndarray
    significance: np.ndarray
    truth: np.ndarray


def exact_ap(scores: np.ndarray, truth: np.ndarray) -> float:
    """Exact average precision of ``scores`` against boolean ``truth`` (crbench's exact curve)."""
    from crbench.metrics.curves import exact_curve
    from crbench.metrics.summary import ap

    return float(ap(exact_curve(scores, truth)))


def weight_table(pixels: Sequence[Pixels], weights: Sequence[float], z_min: float, z_max: float) -> list[dict]:
    """AP per dataset and their mean for each weight, plus the median comparison alone (``weight`` inf)."""
    from .scores import fuse_scores

    rows = []
    for w in weights:
        aps = {p.name: exact_ap(fuse_scores(p.logits, p.significance, w, z_min=z_min, z_max=z_max), p.truth)
               for p in pixels}
        rows.append({"weight": float(w), "ap": aps, "mean_ap": float(np.mean(list(aps.values())))})
    aps = {p.name: exact_ap(p.significance, p.truth) for p in pixels}
    rows.append({"weight": "median alone", "ap": aps, "mean_ap": float(np.mean(list(aps.values())))})
    return rows


def best_weight(rows: Sequence[dict]) -> float:
    """The finite weight with the highest mean AP (the smaller weight on a tie)."""
    finite = [r for r in rows if isinstance(r["weight"], float)]
    if not finite:
        raise UsageError("no candidate weight was scored")
    return float(max(finite, key=lambda r: (r["mean_ap"], -r["weight"]))["weight"])


def collect(name: str, split: str, detector: Any, progress: bool = True) -> Pixels:
    """Score every image of ``name``'s ``split`` once with the net and the median comparison."""
    from tqdm.auto import tqdm

    from crbench.recipes import resolve_dataset

    ds = resolve_dataset(name, build_missing=False, progress=progress)
    if split not in ds.splits:
        raise UsageError(f"dataset {name!r} has no split {split!r} (splits: {', '.join(ds.splits)})")
    lg, z, t = [], [], []
    ids = ds.ids(split)
    for s in tqdm(ds.iter_samples(split), total=len(ids), desc=f"{name}:{split}", unit="img", disable=not progress):
        obs = s.observation()
        missing = detector.missing_inputs(obs)
        if missing:
            raise UsageError(f"dataset {name!r} sample {s.id!r} lacks {missing}: the fusion needs companion exposures")
        valid = ~s.ignore_or_false()
        lg.append(detector.net.logits(obs)[valid])
        z.append(detector.median.score(obs)[valid])
        t.append(np.asarray(s.truth, bool)[valid])
    return Pixels(name, ds.content_hash, len(ids), np.concatenate(lg), np.concatenate(z), np.concatenate(t))


def main(argv: list[str] | None = None) -> int:
    from crbench.atomic import write_json
    from crbench.standard import library_versions

    from ..unet.weights import file_sha256
    from .detector import NAME, SIDECAR, MixtureMedianDetector

    ap_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap_.add_argument("--dataset", action="append", default=None, help="dataset name or folder (repeat; "
                     f"default the mixture's sets: {', '.join(MIXTURE_SETS)})")
    ap_.add_argument("--split", default="val", help="split to fit on (default val; never test)")
    ap_.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS), help="candidate weights, comma-separated")
    ap_.add_argument("--out", default=str(SIDECAR), help="sidecar to write (default the shipped one)")
    ap_.add_argument("--no-progress", action="store_true")
    args = ap_.parse_args(argv)
    if args.split == "test":
        raise UsageError("--split test: the fusion weight is chosen on validation data, never on a test split")
    try:
        weights = [float(w) for w in args.weights.split(",") if w.strip()]
    except ValueError:
        raise UsageError(f"--weights: expected comma-separated numbers, got {args.weights!r}") from None
    if not weights or any(not (np.isfinite(w) and w >= 0) for w in weights):
        raise UsageError(f"--weights: expected finite numbers >= 0, got {args.weights!r}")
    names = args.dataset or list(MIXTURE_SETS)
    start = time.perf_counter()
    det = MixtureMedianDetector(weight=0.0)
    pixels = [collect(n, args.split, det, progress=not args.no_progress) for n in names]
    p = det.params()
    rows = weight_table(pixels, weights, p["z_min"], p["z_max"])
    w = best_weight(rows)
    for r in rows:
        cells = " ".join(f"{k}={v:.4f}" for k, v in r["ap"].items())
        print(f"weight {r['weight']}: mean AP {r['mean_ap']:.4f}  {cells}")
    record = {
        "name": NAME,
        "weight": w,
        "z_min": p["z_min"], "z_max": p["z_max"], "deriv_scale": p["deriv_scale"],
        "rule": "score = net logit + weight * clip(median significance, z_min, z_max)",
        "selection": "highest mean over datasets of the exact AP outside the ignore mask",
        "net": {"name": det.net.name, "sha256": file_sha256(det.net.weights_path)},
        "split": args.split,
        "datasets": [{"name": px.name, "content_hash": px.content_hash, "n_images": px.n_images,
                      "n_pixels": int(px.truth.size), "n_truth_pixels": int(px.truth.sum())} for px in pixels],
        "table": rows,
        "command": "python -m baselines.fusion.fit " + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": round(time.perf_counter() - start, 1),
        "environment": {"python": platform.python_version(), **library_versions()},
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")
    print(f"weight: {w:g}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
