"""``crbench demo``: build the embedded simulated dataset, score every detector that loads here, plot.

Detectors whose optional package or weights are missing are skipped with one line each. The demo
runs every native library (astroscrappy's and torch's OpenMP, BLAS) on one thread unless the user
set ``OMP_NUM_THREADS``: one process holds several OpenMP runtimes, and their spinning threads
oversubscribe a small or shared machine (LACosmic ran >10x slower after a torch detector on 2 cores).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEMO_RECIPE = "sim-basic"
#: Variables limiting native thread pools; set to 1 by the demo unless the user set them.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _shape(text: str) -> tuple[int, int]:
    from crbench.commands.datasets import _shape as parse_shape

    return parse_shape(text)


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="build the embedded dataset, score every detector, write results and plots",
                       description="Builds the embedded simulated dataset (no download), scores every registered "
                                   "detector that loads here on its test split (skipping, with one line each, "
                                   "those whose optional package or weights are missing), prints the results "
                                   "table and the time per detector, and writes results.csv, results.json, "
                                   "roc.{png,pdf} and pr.{png,pdf}.")
    p.add_argument("--out", default="crbench-demo", help="output folder (default ./crbench-demo)")
    p.add_argument("--detector", action="append", help="only these detectors (repeatable; default: all)")
    p.add_argument("--n-images", type=int, default=None, help="images in the demo dataset (default 24)")
    p.add_argument("--shape", type=_shape, default=None, help="image shape HxW (default 256x256)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def demo_detectors(selected: list[str] | None = None) -> tuple[list, dict[str, str]]:
    """Instances of the detectors to run, and the one-line reasons for those skipped.

    Parameters
    ----------
    selected : list of str, optional
        Detector names or specs the user asked for: any failure to load one raises. Default: every
        registered detector, skipping those that cannot load here (missing optional package or
        weights, import failure).

    Returns
    -------
    detectors, skipped : list of Detector, dict of str to str
    """
    from crbench.commands.detectors import load_detector
    from crbench.detectors.registry import available_detectors, get_detector

    if selected:
        return [get_detector(name) for name in selected], {}
    dets, skipped = [], {}
    for name in available_detectors():
        det, reason = load_detector(name)
        if det is None:
            skipped[name] = reason or "cannot load"
        else:
            dets.append(det)
    return dets, skipped


def limit_native_threads() -> None:
    """Set :data:`THREAD_VARS` to 1 where the user has not set them (before libraries load)."""
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")


def run(args: argparse.Namespace) -> int:
    limit_native_threads()
    from crbench.errors import DetectorError
    from crbench.harness import evaluate
    from crbench.plots import plot_pr, plot_roc
    from crbench.recipes import build_dataset
    from crbench.report import format_table, format_timings
    from crbench.results import Results

    t0 = time.perf_counter()
    out = Path(args.out)
    ds = build_dataset(DEMO_RECIPE, out / "dataset", progress=not args.no_progress,
                       n_images=args.n_images, shape=args.shape, overwrite=True)
    timings: dict[str, float] = {"(build dataset)": time.perf_counter() - t0}
    t = time.perf_counter()
    dets, skipped = demo_detectors(args.detector)
    timings["(load detectors)"] = time.perf_counter() - t
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    res = Results()
    first = ds.load(ds.ids("test")[0])
    for det in dets:
        missing = det.missing_inputs(first)
        if missing:  # e.g. stcal-jump needs up-the-ramp reads, which the demo's images do not have
            if args.detector:
                raise DetectorError(f"detector {det.name!r} needs {', '.join(missing)}, which {ds.name} lacks")
            print(f"skipped {det.name}: needs {', '.join(missing)}, which {ds.name} does not have")
            continue
        t = time.perf_counter()
        try:
            res.extend(evaluate(det, ds, split="test", progress=not args.no_progress))
        except DetectorError as exc:
            if args.detector:
                raise
            print(f"skipped {det.name}: {' '.join(str(exc).split())}")
            continue
        timings[det.name] = time.perf_counter() - t
    if not res.runs:
        raise DetectorError(f"demo: no detector could run on {ds.name}; see 'crbench detectors list'")
    t = time.perf_counter()
    res.save(out, overwrite=True)
    plot_roc(res, out / "roc")
    plot_pr(res, out / "pr")
    timings["(save and plot)"] = time.perf_counter() - t
    print(format_table(res.table))
    print()
    print(format_timings(timings, total=time.perf_counter() - t0))
    print(f"wrote {out}/results.csv, results.json, roc.png/.pdf, pr.png/.pdf")
    return 0
