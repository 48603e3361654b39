"""``crbench evaluate``: score detectors on a dataset split."""
from __future__ import annotations

import argparse

#: Operating-point columns printed after the main table.
OP_COLUMNS = ["detector", "op_rule", "op_chosen_on", "op_threshold", "op_fpr", "op_tpr", "recall_any",
              "recall_half", "recall_charge90", "residual_charge_fraction", "fp_components_per_mpix",
              "source_flag_fraction", "fpr_sources", "fpr_sky"]


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score detectors on a dataset split",
                       description="Score one or more detectors on a dataset split and write results.csv, "
                                   "results.json (curves, operating points, provenance) and "
                                   "results_by_morphology.csv. Per-sample records are cached, so an interrupted "
                                   "run resumes where it stopped.")
    p.add_argument("--dataset", required=True, help="recipe name or dataset folder")
    p.add_argument("--detector", action="append", required=True,
                   help="registered name or module:ClassName (repeatable)")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--out", default="results", help="output folder (default ./results)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in the output folder")
    g = p.add_argument_group("conventions")
    g.add_argument("--protocol", choices=["crbench", "deepcr", "cosmic-conn"], default=None,
                   help="convention preset (default crbench: no dilation, ignore excluded, pooled)")
    g.add_argument("--dilation", choices=["none", "deepcr", "both"], default=None,
                   help="3x3 dilation of the prediction: none, deepcr (TPR only) or both (TPR and FPR)")
    g.add_argument("--ignore", choices=["exclude", "as-negative"], default=None,
                   help="ignored pixels: left out of every count, or counted as true negatives")
    g.add_argument("--pooling", choices=["pooled", "per-image"], default=None,
                   help="pool confusion counts over images, or average per-image numbers")
    g.add_argument("--halo", choices=["ignore", "negative", "positive"], default=None,
                   help="halo pixels (CR charge > 1 sigma failing the truth rule): left out (default), "
                        "counted as non-CR, or counted as CR")
    o = p.add_argument_group("operating point and metrics")
    o.add_argument("--operating-point", default="fpr:5e-4", metavar="RULE",
                   help="threshold rule for per-CR and source metrics: 'fpr:<target>' or 'dice' (default fpr:5e-4)")
    o.add_argument("--operating-split", default="val", metavar="SPLIT",
                   help="split the threshold is chosen on, then applied unchanged (default val; 'none' = in-sample)")
    o.add_argument("--no-per-cr", action="store_true", help="skip per-CR and per-morphology metrics")
    o.add_argument("--no-sources", action="store_true", help="skip false positives on sources")
    o.add_argument("--bootstrap", type=int, default=200, metavar="N",
                   help="bootstrap replicates for 95%% intervals over images or exposure groups (default 200; 0 = off)")
    o.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    x = p.add_argument_group("execution")
    x.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (one thread each)")
    x.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running dask.distributed scheduler (e.g. tcp://host:8786)")
    x.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-sample limit; a detector running over is recorded as failed for that sample")
    x.add_argument("--cache", default=None, metavar="DIR",
                   help="record cache folder (default <data dir>/cache/records)")
    x.add_argument("--no-cache", action="store_true", help="do not read or write the record cache")
    x.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def check_out_dir(out: str, what: str = "the results") -> None:
    """Refuse an output folder that cannot be created (a file, or a file on its path) before any work.

    Parameters
    ----------
    out : str
        The ``--out`` value.
    what : str
        What the folder is for, named in the error.

    Raises
    ------
    UsageError
        Naming ``--out`` and the file in the way.
    """
    from pathlib import Path

    from crbench.errors import UsageError

    path = Path(out)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"has the file {p} on its path"
                raise UsageError(f"--out {out}: {where}; expected a folder (existing or new) for {what}")
            return


def run(args: argparse.Namespace) -> int:
    from crbench.harness import evaluate
    from crbench.report import format_table

    check_out_dir(args.out)
    cache = False if args.no_cache else (args.cache or True)
    op_split = None if str(args.operating_split).lower() in ("none", "") else args.operating_split
    res = evaluate(args.detector, args.dataset, split=args.split, protocol=args.protocol,
                   dilation=args.dilation, ignore=args.ignore, pooling=args.pooling, halo=args.halo,
                   progress=not args.no_progress, out=args.out, operating_point=args.operating_point,
                   operating_split=op_split, per_cr=not args.no_per_cr, sources=not args.no_sources,
                   bootstrap=args.bootstrap, seed=args.seed, cache=cache, workers=args.workers,
                   scheduler=args.scheduler, timeout=args.timeout, overwrite=args.overwrite)
    table = res.table
    print(format_table(table))
    if "op_threshold" in table.columns:
        print()
        print(format_table(table, OP_COLUMNS))
    morph = res.morphology_table
    if len(morph):
        print()
        print(format_table(morph, list(morph.columns)))
    for run_ in res.runs:
        failed = run_["provenance"]["failed_samples"]
        if failed:
            print(f"{run_['detector']}: {len(failed)} sample(s) failed: {', '.join(sorted(failed))}")
            for sid, why in sorted(failed.items()):
                print(f"  {sid}: {why}")
    extra = " and results_by_morphology.csv" if len(morph) else ""
    # --- ramp datasets (JUMPS): slope bias and per-group jump rates, crbench.metrics.ramps ---
    from ..metrics.ramps import is_ramp_dataset, slope_bias_table

    if is_ramp_dataset(args.dataset):
        _, jumps = slope_bias_table(args.out, args.dataset, args.detector, split=args.split)
        if len(jumps):
            print()
            print(format_table(jumps, list(jumps.columns)))
        extra += ", slope_bias.csv and ramp_jumps.csv"
    # --- end ramp datasets ---
    print(f"wrote {args.out}/results.csv, {args.out}/results.json{extra}")
    return 0
