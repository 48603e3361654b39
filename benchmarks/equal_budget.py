"""Equal-budget comparison of the learned baselines on a test split, with bootstrap intervals.

Scores deepCR-2-32 retrained, the attention U-Net and the same U-Net without gates (each trained
by crbench for the same CPU minutes, seed and split: see their sidecars), the pretrained deepCR
package and LACosmic on one dataset split with crbench's harness (``crbench.harness``
conventions, pooled pixel counts), then bootstraps over images (``--boot`` resamples) for 95%
intervals. Prints a Markdown table; ``--plot`` also draws the ROC curves (PNG and PDF) and ``--out`` writes
the table as CSV and Markdown.

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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.conventions import resolve_conventions  # noqa: E402
from crbench.detectors.registry import get_detector  # noqa: E402
from crbench.harness import evaluate_sample  # noqa: E402
from crbench.metrics import Binning, ap, curve_from_histograms, roc_auc, tpr_at_fpr  # noqa: E402
from crbench.recipes import resolve_dataset  # noqa: E402

LEARNED = ("deepcr-retrained", "attention-unet", "unet-nogate")
DEFAULT_DETECTORS = LEARNED + ("deepcr", "lacosmic")


def _metrics(pos: np.ndarray, neg: np.ndarray, binning: Binning) -> dict[str, float]:
    c = curve_from_histograms(pos, neg, binning)
    return {"ap": ap(c), "tpr_at_fpr_1e-4": tpr_at_fpr(c, 1e-4), "tpr_at_fpr_5e-4": tpr_at_fpr(c, 5e-4),
            "tpr_at_fpr_1e-3": tpr_at_fpr(c, 1e-3), "roc_auc": roc_auc(c)}


def score_detector(name: str, ds, split: str, conventions, weights_dir: Path | None, boot: int, seed: int) -> dict:
    """Point estimates and bootstrap intervals for one detector."""
    params = {}
    if name in LEARNED and weights_dir is not None:
        params["weights"] = str(weights_dir / f"{name}.pt")
    det = get_detector(name, **params)
    binning = Binning.for_range(det.score_range, None, integer=getattr(det, "integer_scores", False))
    records, seconds, mpix = [], 0.0, 0.0
    for sid in ds.ids(split):
        rec = evaluate_sample(det, ds.load(sid, load_companions=False), binning, conventions)
        records.append(rec)
        seconds += rec.seconds
        mpix += rec.n_pixels / 1e6
    pos = np.stack([r.pos for r in records])
    neg = np.stack([r.neg for r in records])
    point = _metrics(pos.sum(0), neg.sum(0), binning)
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in point}
    n = len(records)
    for _ in range(boot):
        idx = rng.integers(0, n, n)
        m = _metrics(pos[idx].sum(0), neg[idx].sum(0), binning)
        for k, v in m.items():
            draws[k].append(v)
    ci = {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) if boot else (np.nan, np.nan)
          for k, v in draws.items()}
    curve = curve_from_histograms(pos.sum(0), neg.sum(0), binning)
    info = {}
    if name in LEARNED:
        side_path = Path(getattr(det, "weights_path")).with_suffix(".json")
        if side_path.exists():
            side = json.loads(side_path.read_text())
            info = {"steps": side.get("steps"), "cpu_minutes": side.get("cpu_minutes"),
                    "params": side.get("parameters"),
                    "loss": side.get("loss"), "trained_on": ",".join(getattr(det, "trained_on", ()))}
    return {"detector": name, **point, "ci": ci, "seconds_per_mpix": seconds / mpix if mpix else np.nan,
            "curve": (curve.fpr, curve.tpr), "info": info}


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
    a = p.parse_args(argv)
    ds = resolve_dataset(a.dataset, progress=False)
    conventions = resolve_conventions(None)
    wdir = Path(a.weights_dir) if a.weights_dir else None
    t0 = time.time()
    rows = [score_detector(d, ds, a.split, conventions, wdir, a.boot, a.seed) for d in a.detectors]
    print(f"dataset {ds.name} (hash {ds.content_hash[:12]}), split {a.split}, {len(ds.ids(a.split))} images, "
          f"protocol {conventions.to_dict().get('protocol', 'crbench')}, {a.boot} bootstrap resamples over images, "
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
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.5))
        for r in rows:
            fpr, tpr = r["curve"]
            ax.plot(np.maximum(fpr, 1e-7), tpr, label=r["detector"])
        ax.set_xscale("log")
        ax.set_xlim(1e-5, 1e-1)
        ax.axvline(5e-4, color="0.7", lw=0.8, ls="--")
        ax.set_xlabel("pixel false-positive rate")
        ax.set_ylabel("pixel true-positive rate")
        ax.set_title(f"{ds.name} / {a.split}: equal-budget comparison")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        stem = Path(a.plot).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        for ext in (".png", ".pdf"):
            fig.savefig(stem.with_suffix(ext), dpi=150)
        print(f"wrote {stem}.png and {stem}.pdf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
