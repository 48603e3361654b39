"""Accuracy vs training budget of crbench-trained nets, read from their weight sidecars' training logs.

Every weight file written by ``python -m baselines.unet.train`` carries a sidecar whose ``log`` holds,
for each validation epoch, the step, the CPU seconds spent so far and the validation AP (pooled over
the val crops of every training dataset: ``--val-crop`` and ``--max-val-images`` in the command). This
script turns those logs into the accuracy-vs-budget curve of issue 18 without training again:

- a table of validation AP at fixed CPU-minute budgets (the last validation at or before each budget;
  "not reached" when the run had not validated by then);
- the CPU minutes each run needed to first come within 0.005 AP of its own final validation AP;
- ``--plot PATH``: validation AP against CPU minutes, one line per net (PNG and PDF).

Validation AP is a model-selection number, not a test result: ``benchmarks/cross_domain.py``
scores weights trained at two budgets on the test splits.

Usage::

    python benchmarks/budget_curve.py [--weights baselines/weights/attention-unet-mixture.pt ...]
        [--budgets 2,5,10,15,20,25,40,50] [--plot docs/figures/budget_curve] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = tuple(str(ROOT / "baselines" / "weights" / f"{n}.pt")
                        for n in ("attention-unet-mixture", "unet-nogate-mixture", "deepcr-retrained-mixture",
                                  "attention-unet-mixture-60"))
#: How close to its final validation AP a run must come to count as converged.
TOLERANCE = 0.005


def read_log(weights: Path) -> tuple[str, list[dict[str, Any]]]:
    """``(name, [{"step", "cpu_minutes", "val_ap"}, ...])`` from the sidecar of ``weights``.

    Raises
    ------
    SystemExit
        When the sidecar is missing or holds no validation log with CPU seconds.
    """
    side_path = Path(weights).with_suffix(".json")
    if not side_path.is_file():
        raise SystemExit(f"{weights}: no sidecar {side_path.name} next to the weight file")
    side = json.loads(side_path.read_text())
    log = [{"step": int(e["step"]), "cpu_minutes": float(e["cpu_seconds"]) / 60.0, "val_ap": float(e["val_ap"])}
           for e in side.get("log") or [] if "cpu_seconds" in e and "val_ap" in e]
    if not log:
        raise SystemExit(f"{side_path}: no training log with cpu_seconds and val_ap per validation")
    return str(side.get("name") or Path(weights).stem), sorted(log, key=lambda e: e["cpu_minutes"])


def ap_at_budget(log: list[dict[str, Any]], minutes: float) -> float:
    """Validation AP of the last validation at or before ``minutes`` CPU minutes (NaN if none)."""
    done = [e for e in log if e["cpu_minutes"] <= minutes + 1e-9]
    return done[-1]["val_ap"] if done else float("nan")


def budget_minutes(weights: Path) -> float:
    """The CPU-minute budget the run was trained for (the sidecar's ``minutes``; inf when not recorded)."""
    side = json.loads(Path(weights).with_suffix(".json").read_text())
    value = side.get("minutes")
    return float(value) if isinstance(value, (int, float)) and value > 0 else float("inf")


def budget_cell(value: float, budget: float, run_budget: float) -> str:
    """Table text of one budget column: ``past budget`` beyond the run's own budget (its learning-rate
    schedule had ended, so its last AP says nothing about training that long), ``not reached`` before
    its first validation, else the AP."""
    if budget > run_budget + 1e-9:
        return "past budget"
    return "not reached" if value != value else f"{value:.4f}"


def minutes_to_converge(log: list[dict[str, Any]], tolerance: float = TOLERANCE) -> float:
    """CPU minutes at the first validation within ``tolerance`` of the run's final validation AP."""
    final = log[-1]["val_ap"]
    return next(e["cpu_minutes"] for e in log if e["val_ap"] >= final - tolerance)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", action="append", default=None, help="weight file (repeat); default: the "
                                                                    "four shipped mixture nets")
    p.add_argument("--budgets", default="2,5,10,15,20,25,40,50", help="CPU-minute budgets of the table")
    p.add_argument("--plot", default=None, help="write the curve here as PNG and PDF (suffix replaced)")
    p.add_argument("--out", default=None, help="folder for budget_curve.csv and budget_curve.md")
    a = p.parse_args(argv)
    try:
        budgets = [float(b) for b in a.budgets.split(",") if b.strip()]
    except ValueError:
        raise SystemExit(f"--budgets {a.budgets!r}: expected comma-separated CPU minutes, e.g. 5,10,20")
    if not budgets or any(b <= 0 for b in budgets):
        raise SystemExit(f"--budgets {a.budgets!r}: expected positive CPU minutes")
    paths = [Path(w) for w in (a.weights or DEFAULT_WEIGHTS)]
    runs = [read_log(w) for w in paths]
    header = ("| net | " + " | ".join(f"{b:g} min" for b in budgets)
              + f" | final (steps, CPU min) | CPU min to within {TOLERANCE} of final |")
    lines = [header, "|" + "---|" * (len(budgets) + 3)]
    rows = []
    for (name, log), path in zip(runs, paths):
        run_budget = budget_minutes(path)
        vals = [ap_at_budget(log, b) if b <= run_budget + 1e-9 else float("nan") for b in budgets]
        conv = minutes_to_converge(log)
        cells = [budget_cell(v, b, run_budget) for v, b in zip(vals, budgets)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {log[-1]['val_ap']:.4f} ({log[-1]['step']}, "
                     f"{log[-1]['cpu_minutes']:.1f}) | {conv:.1f} |")
        rows += [{"net": name, "budget_cpu_minutes": b, "val_ap": v, "status": "ok" if c[0].isdigit() else c}
                 for b, v, c in zip(budgets, vals, cells)]
    table = "\n".join(lines)
    print("validation AP (pooled val crops of the training sets) at each CPU-minute budget")
    print(table)
    if a.out:
        import pandas as pd

        from crbench.atomic import atomic_path, write_text

        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "budget_curve.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        write_text(out / "budget_curve.md", table + "\n")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from crbench.plots.style import save_figure

        fig, ax = plt.subplots(figsize=(3.4, 2.6))
        for name, log in runs:
            ax.plot([e["cpu_minutes"] for e in log], [e["val_ap"] for e in log], "o-", ms=2.5, label=name)
        ax.set_xlabel("training CPU minutes")
        ax.set_ylabel("validation AP")
        ax.legend(fontsize=6, loc="lower right")
        fig.tight_layout()
        stem = Path(a.plot).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        for path in save_figure(fig, stem):
            print(f"wrote {path}")
        plt.close(fig)
    slowest = max(runs, key=lambda r: minutes_to_converge(r[1]))
    print(f"max_cpu_minutes_to_converge: {slowest[0]} {minutes_to_converge(slowest[1]):.1f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
