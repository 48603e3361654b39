"""``crbench demo``: build the embedded simulated dataset, score every registered detector, plot."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

DEMO_RECIPE = "sim-basic"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="build the embedded dataset, score every detector, write results and plots",
                       description="Builds the embedded simulated dataset (no download), scores every registered "
                                   "detector that can run here on its test split, prints the results table and "
                                   "writes results.csv, results.json, roc.{png,pdf} and pr.{png,pdf}.")
    p.add_argument("--out", default="crbench-demo", help="output folder (default ./crbench-demo)")
    p.add_argument("--detector", action="append", help="only these detectors (repeatable; default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def demo_detectors(selected: list[str] | None = None) -> tuple[list, dict[str, str]]:
    """Instances of every registered detector that loads here, and the reasons for those skipped."""
    from crbench.detectors.registry import available_detectors, get_detector
    from crbench.errors import RegistryError

    dets, skipped = [], {}
    for name in selected or list(available_detectors()):
        try:
            dets.append(get_detector(name))
        except (RegistryError, ImportError, OSError) as exc:
            if selected:
                raise
            skipped[name] = str(exc)
    return dets, skipped


def run(args: argparse.Namespace) -> int:
    from crbench.harness import evaluate
    from crbench.plots import plot_pr, plot_roc
    from crbench.recipes import build_dataset
    from crbench.report import format_table

    t0 = time.perf_counter()
    out = Path(args.out)
    ds = build_dataset(DEMO_RECIPE, out / "dataset", progress=not args.no_progress, overwrite=True)
    dets, skipped = demo_detectors(args.detector)
    for name, why in skipped.items():
        print(f"skipping detector {name}: {why}")
    res = evaluate(dets, ds, split="test", progress=not args.no_progress, out=out, overwrite=True)
    plot_roc(res, out / "roc")
    plot_pr(res, out / "pr")
    print(format_table(res.table))
    print(f"wrote {out}/results.csv, results.json, roc.png/.pdf, pr.png/.pdf in {time.perf_counter() - t0:.0f} s")
    return 0
