"""Time a full evaluation of one standard test split: lacosmic and median, serial and with workers.

Each detector is evaluated on the test split of a built standard dataset (default
``sim-hst-acs-ex``: 16 images of 1024x1024 = 16.8 Mpix) with every metric on (per-CR, per-morphology,
sources), no record cache and no bootstrap, first serially (``workers=1``) and then with
``--workers N`` local worker processes (one thread each). The threshold is chosen on the test split
itself by default (``--operating-split none``), so exactly the test split is scored; pass
``--operating-split val`` to also score the val split as ``crbench evaluate`` does.

``--images N`` times only the first N test images (through a temporary view of the dataset whose
card lists only them and whose ``samples`` folder links to the original): for a loaded machine,
where the full split would not finish; the header line then says ``subset``.

Printed per detector and mode: wall-clock seconds, seconds per scored Mpix, and the detector's own
``seconds_per_mpix`` from the results (time inside ``score`` only); then the totals, and
``speedup: <serial seconds / parallel seconds>`` last. The dataset is read from the data dir
(``$CRBENCH_DATA_DIR``) and never built here; the script stops with one line when it is missing.

Usage::

    CRBENCH_DATA_DIR=/work/data python benchmarks/standard_eval.py [--dataset sim-hst-acs-ex] [--workers 2]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process, so workers=N uses N cores

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.errors import CRBenchError  # noqa: E402


def scored_mpix(ds, splits: list[str]) -> float:
    """Megapixels of the science images of ``splits`` (read from the sample headers)."""
    from crbench.dataset_info import sample_pixels

    ids = dict.fromkeys(i for s in splits for i in ds.ids(s))
    return sum(sample_pixels(ds, i) for i in ids) / 1e6


def subset_view(ds, n: int, folder: Path, splits: list[str]):
    """A dataset opened from ``folder`` with only the first ``n`` images of each of ``splits``
    (its ``samples`` folder is a link to ``ds``'s; the card is otherwise unchanged)."""
    from crbench.atomic import write_json
    from crbench.dataset import CARD_NAME, SAMPLES_DIR, Dataset

    card = dict(ds.card)
    card["splits"] = {s: ds.ids(s)[:n] for s in splits}
    os.symlink(Path(ds.root).resolve() / SAMPLES_DIR, folder / SAMPLES_DIR)
    if (Path(ds.root) / "instances.csv").exists():
        os.symlink(Path(ds.root).resolve() / "instances.csv", folder / "instances.csv")
    write_json(folder / CARD_NAME, card)
    return Dataset.open(folder)


def time_one(detector: str, ds, *, workers: int, operating_split: str | None) -> tuple[float, float]:
    """Wall seconds of one evaluation and the detector's own seconds per Mpix."""
    from crbench.harness import evaluate

    t0 = time.perf_counter()
    res = evaluate(detector, ds, split="test", progress=False, operating_split=operating_split, bootstrap=0,
                   cache=False, workers=workers)
    wall = time.perf_counter() - t0
    run = res.runs[0]
    if run["summary"].get("n_failed"):
        raise CRBenchError(f"{detector}: {run['summary']['n_failed']} samples failed; the timing would be "
                           "meaningless")
    return wall, float(run["summary"].get("seconds_per_mpix", float("nan")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="sim-hst-acs-ex",
                   help="standard dataset name or folder (default sim-hst-acs-ex)")
    p.add_argument("--detectors", default="lacosmic,median", help="comma-separated detectors (default lacosmic,median)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the parallel run (default 2)")
    p.add_argument("--images", type=int, default=None,
                   help="time only the first N test images (default: the whole test split)")
    p.add_argument("--operating-split", default="none",
                   help="split that chooses the operating threshold ('none' = the test split, the default)")
    args = p.parse_args(argv)
    from crbench.dataset_info import format_mpix
    from crbench.recipes import resolve_dataset

    try:
        ds = resolve_dataset(args.dataset, build_missing=False)
    except CRBenchError as exc:
        print(f"standard_eval: {exc}", file=sys.stderr)
        return 1
    op = None if args.operating_split.lower() == "none" else args.operating_split
    splits = ["test"] + ([op] if op and op != "test" and op in ds.splits else [])
    tmp = None
    if args.images is not None:
        import tempfile

        if args.images < 1:
            print(f"standard_eval: --images must be >= 1, got {args.images}", file=sys.stderr)
            return 2
        tmp = tempfile.TemporaryDirectory(prefix="crbench-standard-eval-")
        full = len(ds.ids("test"))
        ds = subset_view(ds, args.images, Path(tmp.name), splits)
        print(f"subset: the first {len(ds.ids('test'))} of the {full} test images")
    mpix = scored_mpix(ds, splits)
    dets = [d.strip() for d in args.detectors.split(",") if d.strip()]
    print(f"dataset: {ds.name} ({ds.card.get('size', 'unknown')} size, {ds.content_hash[:12]}); scored "
          f"{'+'.join(splits)}: {sum(len(ds.ids(s)) for s in splits)} images, {format_mpix(mpix)} Mpix; "
          f"detectors: {', '.join(dets)}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
          f"cpus: {os.cpu_count()}; load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    totals = {}
    for workers in (1, args.workers):
        mode = "serial" if workers == 1 else f"--workers {workers}"
        total = 0.0
        for det in dets:
            wall, det_spm = time_one(det, ds, workers=workers, operating_split=op)
            total += wall
            print(f"{mode:12s} {det:10s} {wall:8.1f} s  {wall / mpix:7.2f} s/Mpix (wall)  "
                  f"{det_spm:7.2f} s/Mpix inside the detector", flush=True)
        totals[workers] = total
        print(f"{mode:12s} {'total':10s} {total:8.1f} s  {total / mpix:7.2f} s/Mpix", flush=True)
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"speedup: {totals[1] / totals[args.workers]:.2f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
