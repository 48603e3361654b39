"""Equal-budget comparison of the learned baselines on a test split, with bootstrap intervals.

Scores deepCR-2-32 retrained, the attention U-Net and the same U-Net without gates (each trained
by crbench for the same CPU minutes, seed and split: see their sidecars), the pretrained deepCR
package and LACosmic on one dataset split with crbench's harness (``crbench.harness``
conventions, pooled pixel counts, :func:`crbench.harness.evaluate`), with its bootstrap (``--boot``
resamples of images, or of the card's exposure groups) for 95% intervals. Prints a Markdown table;
``--plot`` also draws the ROC curves with :func:`crbench.plots.plot_roc` (PNG and PDF) and ``--out``
writes the table as CSV and Markdown.

Usage::

    python benchmarks/equal_budget.py --dataset sim-hst-acs-ex [--split test] [--weights-dir DIR]
        [--boot 1000] [--plot roc.png] [--out DIR]
    python benchmarks/equal_budget.py --weights-dir /tmp/w32x3 --detectors attention-unet   # other weights
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.conventions import resolve_conventions  # noqa: E402
from crbench.detectors.registry import get_detector  # noqa: E402
from crbench.harness import evaluate  # noqa: E402
from crbench.recipes import resolve_dataset  # noqa: E402

LEARNED = ("deepcr-retrained", "attention-unet", "unet-nogate")
DEFAULT_DETECTORS = LEARNED + ("deepcr", "lacosmic")
#: Summary metrics of the table and CSV (all from crbench.harness.evaluate's run summaries).
METRICS = ("ap", "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "roc_auc")


def build_detectors(names, weights_dir: Path | None) -> list:
    """The detectors by name, the learned ones with ``weights_dir/NAME.pt`` when a folder is given."""
    dets = []
    for name in names:
        params = {"weights": str(weights_dir / f"{name}.pt")} if name in LEARNED and weights_dir is not None else {}
        dets.append(get_detector(name, **params))
    return dets


def training_info(det) -> dict:
    """What a learned detector's weight sidecar says about its training budget (empty otherwise)."""
    path = getattr(det, "weights_path", None)
    side_path = Path(path).with_suffix(".json") if path else None
    if det.name not in LEARNED or side_path is None or not side_path.exists():
        return {}
    side = json.loads(side_path.read_text())
    return {"steps": side.get("steps"), "cpu_minutes": side.get("cpu_minutes"), "params": side.get("parameters"),
            "loss": side.get("loss"), "trained_on": ",".join(getattr(det, "trained_on", ()))}


def rows_from_results(results, info: dict[str, dict]) -> list[dict]:
    """One row per run: the summary metrics, their bootstrap intervals and the training info."""
    rows = []
    for run in results.runs:
        sm = run["summary"]
        nan = float("nan")
        rows.append({"detector": run["detector"], **{k: sm.get(k, nan) for k in METRICS},
                     "ci": {k: (sm.get(f"{k}_lo", nan), sm.get(f"{k}_hi", nan)) for k in METRICS},
                     "seconds_per_mpix": sm.get("seconds_per_mpix", nan), "info": info.get(run["detector"], {})})
    return rows


def _fmt(v: float, ci: tuple[float, float]) -> str:
    return f"{100 * v:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="sim-hst-acs-ex", help="dataset folder or recipe name")
    p.add_argument("--split", default="test")
    p.add_argument("--weights-dir", default=None, help="folder with NAME.pt of the learned nets (default: shipped)")
    p.add_argument("--detectors", nargs="+", default=list(DEFAULT_DETECTORS))
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write ROC curves to this path as PNG and PDF (suffix replaced)")
    p.add_argument("--out", default=None, help="folder for equal_budget.csv / .md")
    p.add_argument("--results", default=None, metavar="ROOT",
                   help="read ROOT/<dataset>/<detector>/results.json (e.g. results/leaderboard, written by "
                        "leaderboard/regenerate.py with the harness) instead of scoring again; their bootstrap is used")
    a = p.parse_args(argv)
    ds = resolve_dataset(a.dataset, progress=False)
    conventions = resolve_conventions(None)
    dets = build_detectors(a.detectors, Path(a.weights_dir) if a.weights_dir else None)
    t0 = time.time()
    # scoring, pooling and the bootstrap are the harness's (the card's exposure groups when it has them)
    if a.results:
        from crbench.results import Results

        results = Results()
        for d in dets:
            run = Results.load(Path(a.results) / ds.name / d.name / "results.json")
            if run.runs[0]["provenance"]["dataset"]["content_hash"] != ds.content_hash:
                raise SystemExit(f"{a.results}/{ds.name}/{d.name}: results of another build of {ds.name}")
            results.extend(run)
        a.boot = int(results.runs[0]["provenance"]["bootstrap"]["replicates"])
    else:
        results = evaluate(dets, ds, split=a.split, bootstrap=a.boot, seed=a.seed, per_cr=False, sources=False,
                           on_error="raise", progress=False, operating_split=None)
    rows = rows_from_results(results, {d.name: training_info(d) for d in dets})
    print(f"dataset {ds.name} (hash {ds.content_hash[:12]}), split {a.split}, {len(ds.ids(a.split))} images, "
          f"protocol {conventions.to_dict().get('protocol', 'crbench')}, {a.boot} bootstrap resamples, "
          f"{time.time() - t0:.0f} s")
    header = ("| detector | TPR @ FPR 5e-4 (%) [95% CI] | TPR @ FPR 1e-4 (%) | AP (%) [95% CI] | ROC AUC | "
              "s/Mpix | params | steps (CPU min used) | loss | trained on |")
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        i = r["info"]
        cpu = i.get("cpu_minutes")
        budget = f"{i.get('steps')} ({cpu:.1f})" if i and cpu is not None else (str(i.get("steps")) if i else "-")
        lines.append(f"| {r['detector']} | {_fmt(r['tpr_at_fpr_5e-4'], r['ci']['tpr_at_fpr_5e-4'])} | "
                     f"{_fmt(r['tpr_at_fpr_1e-4'], r['ci']['tpr_at_fpr_1e-4'])} | {_fmt(r['ap'], r['ci']['ap'])} | "
                     f"{r['roc_auc']:.4f} | {r['seconds_per_mpix']:.2f} | {i.get('params', '-') if i else '-'} | "
                     f"{budget} | {i.get('loss', '-') if i else '-'} | {i.get('trained_on', '-') if i else 'external'} |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        import pandas as pd

        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        flat = [{"detector": r["detector"], **{k: r[k] for k in ("ap", "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4",
                                                                  "tpr_at_fpr_1e-3", "roc_auc", "seconds_per_mpix")},
                 **{f"{k}_ci_lo": v[0] for k, v in r["ci"].items()}, **{f"{k}_ci_hi": v[1] for k, v in r["ci"].items()},
                 **r["info"]} for r in rows]
        pd.DataFrame(flat).to_csv(out / "equal_budget.csv", index=False)
        (out / "equal_budget.md").write_text(table + "\n")
    if a.plot:
        from crbench.plots import plot_roc

        stem = Path(a.plot).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        for path in plot_roc(results, stem, width="double", fpr_range=(1e-5, 1e-1), mark_fpr=5e-4):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
