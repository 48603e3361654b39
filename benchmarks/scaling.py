"""The same evaluation serially and on a 2-worker dask LocalCluster: identical sums, then the speedup.

A small ``sim-basic`` dataset is built (or reused) and LACosmic (astroscrappy, a short sigclip
sweep, so the detector dominates the run) is evaluated on its test split twice in this process:

1. serially (``crbench.evaluate(...)``);
2. on ``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` through
   ``crbench.evaluate(..., client=client)``, each worker started with ``OMP_NUM_THREADS=1`` so the
   two workers use one core each (astroscrappy uses OpenMP).

The serial run is also pinned to one OpenMP thread (set before astroscrappy is imported), so the
comparison is one core against two. The cluster's start-up is excluded from its time (it is paid
once per session); the scatter of the detector and the transfer of records are included. The record
cache is off. The script checks that both runs give identical histogram sums and summary numbers,
and prints ``speedup: <serial seconds / distributed seconds>`` last.

Usage::

    python benchmarks/scaling.py [--images 32] [--size 384] [--sweep 4]
"""
from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before astroscrappy / numpy start thread pools

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.harness import evaluate  # noqa: E402
from crbench.recipes import build_dataset  # noqa: E402


def same_value(a: Any, b: Any) -> bool:
    """Equality of two results' values, nested lists and dicts included, with NaN equal to NaN (a class
    without CRs has NaN recalls in both runs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=32, help="images in the dataset (a quarter go to test)")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--sweep", type=int, default=4, help="number of sigclip steps of the LACosmic sweep")
    p.add_argument("--data", default=None, help="dataset folder (default: a temporary one)")
    args = p.parse_args(argv)
    from distributed import Client, LocalCluster

    from baselines.lacosmic import LACosmicDetector

    tmp = tempfile.TemporaryDirectory(prefix="crbench-scaling-")
    root = Path(args.data or tmp.name) / "sim-basic-scaling"
    ds = build_dataset("sim-basic", root, progress=False, n_images=args.images, shape=(args.size, args.size),
                       overwrite=True)
    det = LACosmicDetector(sigclip=[float(s) for s in np.geomspace(3.0, 30.0, args.sweep)])
    kw: dict[str, Any] = dict(split="test", progress=False, operating_split=None, cache=None)
    n = len(ds.ids("test"))
    print(f"dataset: {n} test images of {args.size}x{args.size}; detector: lacosmic with {args.sweep} sigclip steps")
    evaluate(det, ds, split="test", progress=False, operating_split=None, per_cr=False, sources=False)  # warm-up
    t0 = time.perf_counter()
    serial = evaluate(det, ds, **kw)
    t_serial = time.perf_counter() - t0
    print(f"serial: {t_serial:.2f} s")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"OMP_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        # warm-up: imports crbench, astroscrappy and scipy in both workers (start-up cost, paid once)
        evaluate(det, ds, split="val", progress=False, operating_split=None, per_cr=False, sources=False,
                 client=client)
        t0 = time.perf_counter()
        dist = evaluate(det, ds, client=client, **kw)
        t_dist = time.perf_counter() - t0
    print(f"dask LocalCluster, 2 workers x 1 thread: {t_dist:.2f} s")
    a, b = serial.runs[0], dist.runs[0]
    same = (a["curve"]["n_pos"] == b["curve"]["n_pos"] and a["curve"]["n_neg"] == b["curve"]["n_neg"]
            and a["curve"]["tpr"] == b["curve"]["tpr"] and a["curve"]["fpr"] == b["curve"]["fpr"]
            and all(same_value(a["summary"][k], b["summary"][k])
                    for k in a["summary"] if not k.startswith("seconds_per_mpix"))
            and same_value(a["by_morphology"], b["by_morphology"]))
    print(f"identical sums and summary numbers: {same} (n_pos {a['curve']['n_pos']}, n_neg {a['curve']['n_neg']}, "
          f"AP {a['summary']['ap']:.6f} vs {b['summary']['ap']:.6f})")
    spm_a, spm_b = a["summary"]["seconds_per_mpix"], b["summary"]["seconds_per_mpix"]
    print(f"detector seconds per Mpix: serial {spm_a:.2f}, in the workers {spm_b:.2f} (ratio {spm_b / spm_a:.2f}; "
          f"near 2 means the two workers did not get two free cores); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    if not same:
        print("ERROR: distributed results differ from the serial run", file=sys.stderr)
        return 1
    print(f"speedup: {t_serial / t_dist:.2f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
