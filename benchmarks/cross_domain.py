"""Which training data generalises: crbench-trained nets scored on every instrument's test split.

Each ``--weights LABEL=PATH`` (a weight file written by ``python -m baselines.unet.train``; its
sidecar says what it was trained on, for how many steps and CPU minutes) is scored by crbench's
harness (:func:`crbench.evaluate`: protocol crbench, pooled pixels, operating point on val,
``--bootstrap`` resamples of images for 95% intervals) on the test split of every ``--test-sets``
dataset. The table has one row per weight file and one column per test set, each cell
``AP / TPR@FPR 5e-4`` (percent), then the mean AP over the test sets.

Two tables of the README come from it:

- **cross-domain** (issue 18): the attention U-Net trained, with the same recipe and budget, on one
  instrument only (HST ACS EX+GC+GAL, DECam, or the ground-small camera: ``sim-ground-small`` plus
  the MicroObservatory twin and footprint sets) and on the mixture of all of them;
- **accuracy vs budget**: the mixture net at several CPU-minute budgets (``--budget-plot`` draws
  mean AP against the CPU minutes each sidecar records, PNG and PDF).

Results are written under ``--results/LABEL/DATASET/results.json`` and reused when the weight file
(sha256) and the dataset build (content hash) are unchanged.

Usage::

    python benchmarks/cross_domain.py --weights hst=runs/attention-unet-hst.pt \\
        --weights mixture=baselines/weights/attention-unet-mixture.pt [--test-sets A,B,...] \\
        [--bootstrap 200] [--results results/cross_domain] [--out DIR] [--budget-plot PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: One test set per instrument and field type the mixture covers, plus the real MicroObservatory set.
DEFAULT_TEST_SETS = ("sim-hst-acs-ex", "sim-hst-acs-gc", "sim-hst-acs-gal", "sim-decam", "sim-ground-small",
                     "microobs-hatp32-sim", "microobs-hatp32-footprints", "microobs-hatp32")


def parse_weights(items: list[str]) -> list[tuple[str, Path]]:
    """``LABEL=PATH`` pairs (:func:`baselines.unet.detector.parse_weight_labels`); SystemExit naming a
    malformed item or a missing file."""
    from baselines.unet.detector import parse_weight_labels
    from crbench.errors import DetectorError

    try:
        return parse_weight_labels(items)
    except DetectorError as exc:
        raise SystemExit(str(exc)) from None


def score_cell(label: str, weights: Path, dataset_name: str, results_root: Path, bootstrap: int) -> dict[str, Any]:
    """AP and TPR@5e-4 (with intervals) of one weight file on one test split, reusing a stored run."""
    from baselines.unet.weights import file_sha256
    from crbench.harness import evaluate
    from crbench.recipes import resolve_dataset
    from crbench.results import Results

    ds = resolve_dataset(dataset_name, progress=False)
    sha = file_sha256(weights)
    out = results_root / label / ds.name
    stored = out / "results.json"
    if stored.is_file():
        run = json.loads(stored.read_text())["runs"][0]
        prov = run["provenance"]
        if (prov["dataset"]["content_hash"] == ds.content_hash
                and prov["detector"]["params"].get("weights_sha256") == sha[:16]):
            return run["summary"]
    from baselines.unet.detector import detector_for_weights

    det = detector_for_weights(weights)
    res: Results = evaluate([det], ds, split="test", bootstrap=bootstrap, per_cr=False, sources=False,
                            on_error="raise", progress=False, out=out, overwrite=True)
    return res.runs[0]["summary"]


def sidecar_info(weights: Path) -> dict[str, Any]:
    """Training data, steps and CPU minutes from the weight file's sidecar (empty if none)."""
    side = weights.with_suffix(".json")
    if not side.is_file():
        return {}
    s = json.loads(side.read_text())
    data = s.get("training_data") or {}
    return {"trained_on": data.get("dataset"), "steps": s.get("steps"), "cpu_minutes": s.get("cpu_minutes"),
            "minutes": s.get("minutes"), "normalization": s.get("normalization")}


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}"


def cell_text(sm: dict[str, Any]) -> str:
    """``AP / TPR`` in percent; a TPR the curve does not reach is written as such, not as a number."""
    tpr = sm.get("tpr_at_fpr_5e-4", float("nan"))
    return f"{_pct(sm['ap'])} / {_pct(tpr) if tpr == tpr else 'not reached'}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", action="append", required=True, metavar="LABEL=PATH")
    p.add_argument("--test-sets", default=",".join(DEFAULT_TEST_SETS))
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--results", default="results/cross_domain", help="folder for the per-cell harness results")
    p.add_argument("--out", default=None, help="folder for cross_domain.csv and cross_domain.md")
    p.add_argument("--budget-plot", default=None, help="draw mean AP vs CPU minutes here (PNG and PDF)")
    a = p.parse_args(argv)
    weights = parse_weights(a.weights)
    test_sets = [t.strip() for t in a.test_sets.split(",") if t.strip()]
    rows = []
    for label, path in weights:
        info = sidecar_info(path)
        cells = {}
        for name in test_sets:
            sm = score_cell(label, path, name, Path(a.results), a.bootstrap)
            cells[name] = sm
            print(f"{label} on {name}: AP {sm['ap']:.4f} [{sm.get('ap_lo', float('nan')):.4f}, "
                  f"{sm.get('ap_hi', float('nan')):.4f}], TPR@5e-4 {sm.get('tpr_at_fpr_5e-4', float('nan')):.4f}",
                  flush=True)
        mean_ap = sum(c["ap"] for c in cells.values()) / len(cells)
        rows.append({"label": label, "weights": str(path), **info, "cells": cells, "mean_ap": mean_ap})
    header = "| trained on (label) | steps (CPU min) | " + " | ".join(test_sets) + " | mean AP |"
    lines = [header, "|" + "---|" * (len(test_sets) + 3)]
    for r in rows:
        cpu = r.get("cpu_minutes")
        budget = f"{r.get('steps')} ({cpu:.1f})" if cpu is not None else "-"
        lines.append(f"| {r['label']} | {budget} | " + " | ".join(cell_text(r["cells"][t]) for t in test_sets)
                     + f" | {_pct(r['mean_ap'])} |")
    table = "\n".join(lines)
    print("cells: AP / TPR@FPR 5e-4 (%), crbench protocol, test splits")
    print(table)
    if a.out:
        import pandas as pd

        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        flat = [{"label": r["label"], "weights": r["weights"], "trained_on": r.get("trained_on"),
                 "steps": r.get("steps"), "cpu_minutes": r.get("cpu_minutes"), "test_set": t,
                 **{k: r["cells"][t].get(k) for k in ("ap", "ap_lo", "ap_hi", "tpr_at_fpr_5e-4",
                                                      "tpr_at_fpr_5e-4_lo", "tpr_at_fpr_5e-4_hi")}}
                for r in rows for t in test_sets]
        from crbench.atomic import atomic_path, write_text

        with atomic_path(out / "cross_domain.csv") as tmp:
            pd.DataFrame(flat).to_csv(tmp, index=False)
        write_text(out / "cross_domain.md", table + "\n")
    if a.budget_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from crbench.plots.style import save_figure

        pts = sorted((r["cpu_minutes"], r["mean_ap"], r["label"]) for r in rows if r.get("cpu_minutes") is not None)
        fig, ax = plt.subplots(figsize=(3.4, 2.6))
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-")
        for x, y, lab in pts:
            ax.annotate(lab, (x, y), textcoords="offset points", xytext=(3, -10), fontsize=7)
        ax.set_xlabel("training CPU minutes")
        ax.set_ylabel(f"mean AP over {len(test_sets)} test splits")
        fig.tight_layout()
        stem = Path(a.budget_plot).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        for path in save_figure(fig, stem):
            print(f"wrote {path}")
    print(f"best_mean_ap: {max(rows, key=lambda r: r['mean_ap'])['label']} {max(r['mean_ap'] for r in rows):.4f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
