"""``crbench score-predictions DIR --dataset NAME``: score precomputed score maps."""
from __future__ import annotations

import argparse


def _range(text: str) -> tuple[float, float] | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--score-range must be auto, none or LO,HI; got {text!r}") from None
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"--score-range needs LO < HI; got {text!r}")
    return (lo, hi)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score-predictions", help="score a folder of precomputed score maps (one FITS per sample id)",
        description="Score a detector that ran elsewhere: DIR holds one FITS score map per sample id of the "
                    "split (<sample_id>.fits, primary HDU or first image extension, the sample's shape, finite "
                    "values, higher = more CR-like). Unknown ids, missing files, wrong shapes and non-finite "
                    "values are rejected naming the file. Maps for the validation split too (if any is "
                    "there, all are needed) choose the operating point as for live detectors; without them "
                    "it is chosen in-sample. Writes results.csv and results.json.")
    p.add_argument("directory", metavar="DIR", help="folder of <sample_id>.fits score maps")
    p.add_argument("--dataset", required=True, help="recipe name (already built) or dataset folder")
    p.add_argument("--split", default="test", help="split the maps are for (default test)")
    p.add_argument("--name", default="predictions", help="detector name shown in results (default predictions)")
    p.add_argument("--version", dest="det_version", default="1", help="the detector's version (default 1)")
    p.add_argument("--trained-on", action="append", default=[], metavar="DATASET/SPLIT",
                   help="training data of the detector (repeatable), e.g. sim-basic/train")
    p.add_argument("--score-range", type=_range, default="auto",
                   help="auto (default: 0,1 if all scores lie there, else unbounded), none, or LO,HI")
    p.add_argument("--out", default="results", help="output folder (default ./results)")
    p.add_argument("--protocol", choices=["crbench", "deepcr", "cosmic-conn"], default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace results already in the output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from crbench.predictions import score_predictions
    from crbench.report import format_table

    res = score_predictions(args.directory, args.dataset, split=args.split, name=args.name,
                            version=args.det_version, trained_on=args.trained_on, score_range=args.score_range,
                            progress=not args.no_progress, out=args.out, protocol=args.protocol,
                            overwrite=args.overwrite)
    print(format_table(res.table))
    print(f"wrote {args.out}/results.csv and {args.out}/results.json")
    return 0
