"""``crbench evaluate``: score detectors on a dataset split."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score detectors on a dataset split",
                       description="Score one or more detectors on a dataset split and write results.csv and "
                                   "results.json (curves and provenance).")
    p.add_argument("--dataset", required=True, help="recipe name or dataset folder")
    p.add_argument("--detector", action="append", required=True,
                   help="registered name or module:ClassName (repeatable)")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--out", default="results", help="output folder (default ./results)")
    p.add_argument("--protocol", choices=["crbench", "deepcr", "cosmic-conn"], default=None,
                   help="convention preset (default crbench: no dilation, ignore excluded, pooled)")
    p.add_argument("--dilation", choices=["none", "deepcr", "both"], default=None)
    p.add_argument("--ignore", choices=["exclude", "as-negative"], default=None)
    p.add_argument("--pooling", choices=["pooled", "per-image"], default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from crbench.harness import evaluate
    from crbench.report import format_table

    res = evaluate(args.detector, args.dataset, split=args.split, protocol=args.protocol,
                   dilation=args.dilation, ignore=args.ignore, pooling=args.pooling,
                   progress=not args.no_progress, out=args.out)
    print(format_table(res.table))
    for run_ in res.runs:
        failed = run_["provenance"]["failed_samples"]
        if failed:
            print(f"{run_['detector']}: {len(failed)} sample(s) failed: {', '.join(sorted(failed))}")
    print(f"wrote {args.out}/results.csv and {args.out}/results.json")
    return 0
