"""``crbench compare RESULTS_A RESULTS_B``: differences between two result files, with intervals.

Any two runs on the same dataset and split can be compared: a new detector against a baseline
(``--a NAME --b NAME`` choose the runs, also two runs of one file), or two files of one run each.
Otherwise runs are matched by (detector, dataset, split). For every summary number present in both, the
difference B - A is printed with a 95% interval. When both runs carry bootstrap intervals
(``<metric>_lo`` / ``<metric>_hi``), the interval of the difference combines their half-widths in
quadrature (normal approximation for independent runs; runs on the same images are positively
correlated, so this interval is conservative). A difference whose interval excludes 0 is marked ``*``.
"""
from __future__ import annotations

import argparse
import math
from typing import Any

from crbench.errors import DatasetError, RegistryError

#: Metrics compared by default, in order (others with --all).
DEFAULT_METRICS = ["roc_auc", "ap", "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3",
                   "precision_at_recall_0.95", "best_dice", "recall_any", "recall_half", "recall_charge90",
                   "residual_charge_fraction", "fp_components_per_mpix", "source_flag_fraction", "fpr_sources",
                   "fpr_sky", "seconds_per_mpix"]


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="differences between two runs (any two detectors), with intervals",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("results_a", metavar="RESULTS_A", help="results.json or a folder holding one")
    p.add_argument("results_b", metavar="RESULTS_B", nargs="?", default=None,
                   help="results.json or a folder holding one (default: RESULTS_A, to compare two of its runs)")
    p.add_argument("--a", dest="detector_a", metavar="DETECTOR", help="the run of this detector in RESULTS_A")
    p.add_argument("--b", dest="detector_b", metavar="DETECTOR", help="the run of this detector in RESULTS_B")
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


def _pick(runs: list[dict[str, Any]], detector: str, where: str) -> list[dict[str, Any]]:
    chosen = [r for r in runs if r["detector"] == detector]
    if not chosen:
        names = ", ".join(sorted({r["detector"] for r in runs})) or "none"
        raise RegistryError(f"{where} has no run of detector {detector!r}; its detectors: {names}")
    return chosen


def pair_runs(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]], *, detector_a: str | None = None,
              detector_b: str | None = None, where_a: str = "RESULTS_A", where_b: str = "RESULTS_B",
              ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[str]]:
    """Pair the runs of two result files for comparison.

    With ``detector_a``/``detector_b``, that detector's runs on each side; then, or when each side
    holds one run, the runs are paired by dataset and split whatever their detectors (e.g. a new
    detector against a baseline). Otherwise runs pair by (detector, dataset, split).

    Returns
    -------
    pairs, unmatched : list of (run_a, run_b), list of str
        The pairs, and one line per run left without a partner.

    Raises
    ------
    DatasetError
        If the chosen runs are not on the same dataset and split.
    """
    if detector_a:
        runs_a = _pick(runs_a, detector_a, where_a)
    if detector_b:
        runs_b = _pick(runs_b, detector_b, where_b)
    any_detector = bool(detector_a or detector_b) or (len(runs_a) == 1 and len(runs_b) == 1)

    def key(r: dict[str, Any]) -> tuple:
        return (r["dataset"], r["split"]) if any_detector else (r["detector"], r["dataset"], r["split"])

    if any_detector:
        for runs, where, opt in ((runs_a, where_a, "--a"), (runs_b, where_b, "--b")):
            seen: dict[tuple, str] = {}
            for r in runs:
                if key(r) in seen and seen[key(r)] != r["detector"]:
                    raise RegistryError(f"{where} holds several detectors' runs on {'/'.join(key(r))} "
                                        f"({seen[key(r)]}, {r['detector']}, ...); choose one with {opt} DETECTOR")
                seen[key(r)] = r["detector"]
    index_b = {key(r): r for r in runs_b}
    keys_a = {key(r) for r in runs_a}
    pairs = [(a, index_b[key(a)]) for a in runs_a if key(a) in index_b]
    unmatched = [f"{'/'.join(key(a))}: only in {where_a}" for a in runs_a if key(a) not in index_b]
    unmatched += [f"{'/'.join(k)}: only in {where_b}" for k in index_b if k not in keys_a]
    if any_detector and not pairs:
        da = sorted({f"{r['detector']} on {r['dataset']}/{r['split']}" for r in runs_a})
        db = sorted({f"{r['detector']} on {r['dataset']}/{r['split']}" for r in runs_b})
        raise DatasetError(f"cannot compare {', '.join(da)} ({where_a}) with {', '.join(db)} ({where_b}): "
                           "runs must be on the same dataset and split")
    return pairs, unmatched


def run(args: argparse.Namespace) -> int:
    from crbench.results import Results

    path_b = args.results_b or args.results_a
    ra, rb = Results.load(args.results_a), Results.load(path_b)
    if args.results_b is None and not (args.detector_a and args.detector_b):
        raise ValueError("comparing two runs of one file needs --a DETECTOR and --b DETECTOR")
    pairs, unmatched = pair_runs(ra.runs, rb.runs, detector_a=args.detector_a, detector_b=args.detector_b,
                                 where_a=args.results_a, where_b=path_b)
    for a, b in pairs:
        if args.all:
            metrics = [k for k, v in a["summary"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and not k.endswith(("_lo", "_hi")) and k in b["summary"]]
        else:
            metrics = [m for m in DEFAULT_METRICS if m in a["summary"] or m in b["summary"]]
        who = (a["detector"] if a["detector"] == b["detector"]
               else f"A = {a['detector']}, B = {b['detector']},")
        print(f"{who} on {a['dataset']}/{a['split']}  (A from {args.results_a}, B from {path_b})")
        ha = a["provenance"].get("dataset", {}).get("content_hash")
        hb = b["provenance"].get("dataset", {}).get("content_hash")
        if ha and hb and ha != hb:
            print(f"  note: the dataset contents differ (hash A {ha[:12]} vs B {hb[:12]})")
        ca, cb = a["provenance"].get("conventions", {}), b["provenance"].get("conventions", {})
        if ca != cb:
            print(f"  note: conventions differ: A {ca} vs B {cb}")
        print(f"  {'metric':<28}{'A':>11}{'B':>11}{'B - A':>11}   95% interval of B - A")
        for row in compare_runs(a, b, metrics):
            ci = (f"[{row['diff_lo']:+.4g}, {row['diff_hi']:+.4g}]{' *' if row['significant'] else ''}"
                  if math.isfinite(row["diff_lo"]) else "(no intervals: rerun with --bootstrap N)")
            print(f"  {row['metric']:<28}{row['a']:>11.4g}{row['b']:>11.4g}{row['diff']:>+11.4g}   {ci}")
    for line in unmatched:
        print(line)
    if not pairs:
        print("no run appears in both files (runs match by detector, dataset and split; "
              "choose runs of different detectors with --a and --b)")
        return 1
    return 0
