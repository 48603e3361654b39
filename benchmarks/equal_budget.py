"""Equal-budget comparison of the learned baselines on a test split, with bootstrap intervals.

By default compares the three mixture-trained nets (attention U-Net, the same U-Net without gates
-- the gate ablation -- and deepCR-2-32, each trained by crbench for the same CPU minutes, seed and
data: see their sidecars) with the pretrained deepCR and Cosmic-CoNN packages, LACosmic and the
median comparison, on one or more dataset splits (``--dataset A,B``), with crbench's harness
(``crbench.harness`` conventions, pooled pixel counts, :func:`crbench.harness.evaluate`) and its
bootstrap (``--boot`` resamples of images, or of the card's exposure groups) for 95% intervals.
Prints, per dataset, a Markdown table of the summary numbers and one of pixel TPR at FPR 5e-4 per
morphology class; ``--entries`` (committed leaderboard entries) or ``--results`` (the leaderboard's
stored runs) reads runs instead of scoring again;
``--plot`` draws the ROC curves with :func:`crbench.plots.plot_roc` (PNG and PDF) and ``--out``
writes the tables as CSV and Markdown.

Usage::

    python benchmarks/equal_budget.py --dataset sim-hst-acs-ex [--split test] [--weights-dir DIR]
        [--boot 1000] [--plot roc.png] [--out DIR]
    python benchmarks/equal_budget.py --entries leaderboard/entries \\
        --dataset sim-hst-acs-ex,sim-hst-acs-gc,sim-hst-acs-gal,sim-decam,sim-ground-small,microobs-hatp32
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

LEARNED = ("deepcr-retrained", "attention-unet", "unet-nogate",
           "deepcr-retrained-mixture", "attention-unet-mixture", "unet-nogate-mixture", "attention-unet-mixture-60")
#: Issue 18's comparison: the three mixture-trained nets (same 25-minute budget, seed, data), the
#: generalist at the one-hour budget (same recipe, 60 CPU minutes: outside the equal budget), the
#: pretrained deepCR and Cosmic-CoNN, the classical baselines, and the generalist fused with the median
#: comparison of the companion exposures (multi-exposure, like ``median``; no training of its own).
DEFAULT_DETECTORS = ("attention-unet-mixture", "unet-nogate-mixture", "deepcr-retrained-mixture",
                     "attention-unet-mixture-60", "deepcr", "cosmic-conn", "lacosmic", "median",
                     "attention-unet-mixture-median")
MORPHOLOGIES = ("spot", "track", "worm", "blob")
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
    """What a learned detector's weight sidecar says about its training budget (empty otherwise); for a
    detector built around a learned net (``attention-unet-mixture-median``: ``det.net``), the net's."""
    inner = getattr(det, "net", None)
    if inner is not None and getattr(inner, "name", None) in LEARNED:
        return training_info(inner)
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
    if v != v:
        return "not reached"
    return f"{100 * v:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def morphology_table(results) -> str:
    """Per-morphology pixel TPR at FPR 5e-4 (%, 95% interval) per detector, with the CR count per class.

    The operating threshold is each detector's pooled FPR 5e-4 threshold on the split; a class with
    fewer CRs than the harness ranks (``rankable`` false) is marked.
    """
    present = [m for m in MORPHOLOGIES if any(row["morphology"] == m for run in results.runs
                                                for row in run.get("by_morphology") or [])]
    lines = ["| detector | " + " | ".join(present) + " |", "|" + "---|" * (len(present) + 1)]
    for run in results.runs:
        by = {row["morphology"]: row for row in run.get("by_morphology") or []}
        cells = []
        for m in present:
            row = by.get(m)
            if row is None:
                cells.append("-")
                continue
            nan = float("nan")
            text = _fmt(row.get("pixel_tpr_at_fpr_5e-4", nan), (row.get("pixel_tpr_at_fpr_5e-4_lo", nan),
                                                                   row.get("pixel_tpr_at_fpr_5e-4_hi", nan)))
            cells.append(f"{text} (n={row['n_crs']}{'' if row.get('rankable', True) else ', too few to rank'})")
        lines.append(f"| {run['detector']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="sim-hst-acs-ex",
                   help="dataset folder or recipe name, or a comma list of them (one table each)")
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
    p.add_argument("--entries", default=None, metavar="DIR",
                   help="read the committed leaderboard entries DIR/<dataset>__<split>__<detector>__*.json (e.g. "
                        "leaderboard/entries) instead of scoring again; same checks as --results")
    a = p.parse_args(argv)
    names = [n.strip() for n in a.dataset.split(",") if n.strip()]
    csv_rows, md = [], []
    for name in names:
        table, morph, flat, results = compare_on(name, a)
        md += [f"### {name} ({a.split})", "", table, "", "Per morphology: pixel TPR at FPR 5e-4 (%)", "", morph, ""]
        csv_rows += flat
        if a.plot:
            from crbench.plots import plot_roc

            stem = Path(a.plot).with_suffix("")
            stem = stem.with_name(f"{stem.name}_{name}") if len(names) > 1 else stem
            stem.parent.mkdir(parents=True, exist_ok=True)
            for path in plot_roc(results, stem, width="double", fpr_range=(1e-5, 1e-1), mark_fpr=5e-4):
                print(f"wrote {path}")
    if a.out:
        import pandas as pd

        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        from crbench.atomic import atomic_path, write_text

        with atomic_path(out / "equal_budget.csv") as tmp:
            pd.DataFrame(csv_rows).to_csv(tmp, index=False)
        write_text(out / "equal_budget.md", "\n".join(md) + "\n")
    return 0


def stored_run_path(a: argparse.Namespace, dataset: str, detector: str) -> Path:
    """Where ``--results`` or ``--entries`` keeps the run of ``detector`` on ``dataset``; exits if none."""
    if a.entries:
        found = sorted(Path(a.entries).glob(f"{dataset}__{a.split}__{detector}__*.json"))
        if len(found) != 1:
            raise SystemExit(f"{a.entries}: expected one entry of {detector} on {dataset} ({a.split}), "
                             f"found {len(found)}; run leaderboard/regenerate.py")
        return found[0]
    path = Path(a.results) / dataset / detector / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no results of {detector} on {dataset}; run leaderboard/regenerate.py")
    return path


def compare_on(dataset_name: str, a: argparse.Namespace):
    """Score (or read) the detectors on one dataset; return the tables, CSV rows and results."""
    ds = resolve_dataset(dataset_name, progress=False)
    conventions = resolve_conventions(None)
    dets = build_detectors(a.detectors, Path(a.weights_dir) if a.weights_dir else None)
    t0 = time.time()
    boot = a.boot
    # scoring, pooling and the bootstrap are the harness's (the card's exposure groups when it has them)
    if a.results or a.entries:
        from crbench.results import Results

        results = Results()
        for d in dets:
            path = stored_run_path(a, ds.name, d.name)
            run = Results.load(path)
            if run.runs[0]["provenance"]["dataset"]["content_hash"] != ds.content_hash:
                raise SystemExit(f"{path}: results of another build of {ds.name} (content hash "
                                 f"{run.runs[0]['provenance']['dataset']['content_hash'][:12]}, "
                                 f"local build {ds.content_hash[:12]})")
            results.extend(run)
        boot = int(results.runs[0]["provenance"]["bootstrap"]["replicates"])
    else:
        results = evaluate(dets, ds, split=a.split, bootstrap=a.boot, seed=a.seed, per_cr=True, sources=False,
                           on_error="raise", progress=False, operating_split=None)
    rows = rows_from_results(results, {d.name: training_info(d) for d in dets})
    print(f"dataset {ds.name} (hash {ds.content_hash[:12]}), split {a.split}, {len(ds.ids(a.split))} images, "
          f"protocol {conventions.to_dict().get('protocol', 'crbench')}, {boot} bootstrap resamples, "
          f"{time.time() - t0:.0f} s")
    header = ("| detector | TPR @ FPR 5e-4 (%) [95% CI] | TPR @ FPR 1e-4 (%) | AP (%) [95% CI] | ROC AUC | "
              "s/Mpix | params | steps (CPU min used) | loss | trained on |")
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        i = r["info"]
        cpu = i.get("cpu_minutes")
        budget = f"{i.get('steps')} ({cpu:.1f})" if i and cpu is not None else (str(i.get("steps")) if i else "-")
        trained = i.get("trained_on", "-") if i else "external"
        if i and len(trained) > 60:
            trained = f"{trained.count(':train')} datasets (mixture)"
        lines.append(f"| {r['detector']} | {_fmt(r['tpr_at_fpr_5e-4'], r['ci']['tpr_at_fpr_5e-4'])} | "
                     f"{_fmt(r['tpr_at_fpr_1e-4'], r['ci']['tpr_at_fpr_1e-4'])} | {_fmt(r['ap'], r['ci']['ap'])} | "
                     f"{r['roc_auc']:.4f} | {r['seconds_per_mpix']:.2f} | {i.get('params', '-') if i else '-'} | "
                     f"{budget} | {i.get('loss', '-') if i else '-'} | {trained} |")
    table = "\n".join(lines)
    morph = morphology_table(results)
    print(table)
    print("per morphology: pixel TPR at FPR 5e-4 (%) [95% CI]")
    print(morph)
    flat = [{"dataset": ds.name, "detector": r["detector"],
             **{k: r[k] for k in ("ap", "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "roc_auc",
                                  "seconds_per_mpix")},
             **{f"{k}_ci_lo": v[0] for k, v in r["ci"].items()}, **{f"{k}_ci_hi": v[1] for k, v in r["ci"].items()},
             **r["info"]} for r in rows]
    return table, morph, flat, results

if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
