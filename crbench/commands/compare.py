"""``crbench compare RESULTS_A RESULTS_B``: differences between two result files, with intervals.

Runs are matched by (detector, dataset, split). For every summary number present in both, the
difference B - A is printed with a 95% interval. When both runs carry bootstrap intervals
(``<metric>_lo`` / ``<metric>_hi``), the interval of the difference combines their half-widths in
quadrature (normal approximation for independent runs; runs on the same images are positively
correlated, so this interval is conservative). A difference whose interval excludes 0 is marked ``*``.
"""
from __future__ import annotations

import argparse
import math
from typing import Any

#: Metrics compared by default, in order (others with --all).
DEFAULT_METRICS = ["roc_auc", "ap", "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3",
                   "precision_at_recall_0.95", "best_dice", "recall_any", "recall_half", "recall_charge90",
                   "residual_charge_fraction", "fp_components_per_mpix", "source_flag_fraction", "fpr_sources",
                   "fpr_sky", "seconds_per_mpix"]


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="differences between two results files, with intervals",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("results_a", metavar="RESULTS_A", help="results.json or a folder holding one")
    p.add_argument("results_b", metavar="RESULTS_B", help="results.json or a folder holding one")
    p.add_argument("--all", action="store_true", help="every numeric summary column, not only the main ones")
    p.set_defaults(func=run)


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def compare_runs(a: dict[str, Any], b: dict[str, Any], metrics: list[str]) -> list[dict[str, Any]]:
    """Rows ``metric, a, b, diff, diff_lo, diff_hi, significant`` for one matched pair of runs."""
    sa, sb = a["summary"], b["summary"]
    rows = []
    for m in metrics:
        va, vb = _num(sa.get(m)), _num(sb.get(m))
        if not (math.isfinite(va) or math.isfinite(vb)):
            continue
        d = vb - va
        lo = hi = float("nan")
        ha = (_num(sa.get(f"{m}_hi")) - _num(sa.get(f"{m}_lo"))) / 2
        hb = (_num(sb.get(f"{m}_hi")) - _num(sb.get(f"{m}_lo"))) / 2
        if math.isfinite(ha) and math.isfinite(hb) and math.isfinite(d):
            h = math.hypot(ha, hb)
            lo, hi = d - h, d + h
        sig = math.isfinite(lo) and (lo > 0 or hi < 0)
        rows.append({"metric": m, "a": va, "b": vb, "diff": d, "diff_lo": lo, "diff_hi": hi, "significant": sig})
    return rows


def run(args: argparse.Namespace) -> int:
    from crbench.results import Results

    ra, rb = Results.load(args.results_a), Results.load(args.results_b)
    index_b = {(r["detector"], r["dataset"], r["split"]): r for r in rb.runs}
    matched = 0
    for a in ra.runs:
        key = (a["detector"], a["dataset"], a["split"])
        b = index_b.get(key)
        if b is None:
            print(f"{'/'.join(key)}: only in {args.results_a}")
            continue
        matched += 1
        if args.all:
            metrics = [k for k, v in a["summary"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and not k.endswith(("_lo", "_hi")) and k in b["summary"]]
        else:
            metrics = [m for m in DEFAULT_METRICS if m in a["summary"] or m in b["summary"]]
        print(f"{a['detector']} on {a['dataset']}/{a['split']}  (A = {args.results_a}, B = {args.results_b})")
        ca, cb = a["provenance"].get("conventions", {}), b["provenance"].get("conventions", {})
        if ca != cb:
            print(f"  note: conventions differ: A {ca} vs B {cb}")
        print(f"  {'metric':<28}{'A':>11}{'B':>11}{'B - A':>11}   95% interval of B - A")
        for row in compare_runs(a, b, metrics):
            ci = (f"[{row['diff_lo']:+.4g}, {row['diff_hi']:+.4g}]{' *' if row['significant'] else ''}"
                  if math.isfinite(row["diff_lo"]) else "(no intervals: rerun with --bootstrap N)")
            print(f"  {row['metric']:<28}{row['a']:>11.4g}{row['b']:>11.4g}{row['diff']:>+11.4g}   {ci}")
    for key in index_b:
        if key not in {(r["detector"], r["dataset"], r["split"]) for r in ra.runs}:
            print(f"{'/'.join(key)}: only in {args.results_b}")
    if not matched:
        print("no run appears in both files (runs match by detector, dataset and split)")
        return 1
    return 0
