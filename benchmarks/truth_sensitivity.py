"""How much the baseline ranking depends on the truth rule.

Re-labels the same simulated test images under several truth rules (:mod:`crbench.truth`): plain
thresholds at 1, 3 and 5 sigma and the default seed-and-growth rule (seed 5 sigma, growth into
2.5 sigma, 8-connected), and scores every baseline on each labelling with crbench's harness
(pooled pixel counts, ignore excluded). Pixels with CR charge above 1 sigma that fail a rule are
its halo; the halo is ignored (the default ``halo`` convention) and, in a second table, counted as
non-CR (``halo=negative``, which is what re-labelling alone would do).

Re-labelling needs each pixel's CR charge and noise sigma, which the built FITS files do not keep:
the images are regenerated from the recipe (the simulator is deterministic in the recipe seed) and
checked pixel for pixel against the built dataset when one is given as a folder.

Usage::

    python benchmarks/truth_sensitivity.py [--dataset sim-hst-acs-ex | DATASET_DIR] [--split test]
        [--detectors lacosmic,median,...] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.conventions import Conventions  # noqa: E402
from crbench.detectors.registry import get_detector  # noqa: E402
from crbench.harness import run_detector, sample_histograms  # noqa: E402
from crbench.metrics import Binning, ap, curve_from_histograms, tpr_at_fpr  # noqa: E402
from crbench.truth import DEFAULT_RULE, TruthRule, apply_truth_rule, threshold_rule  # noqa: E402

DETECTORS = ("lacosmic", "median", "deepcr", "attention-unet", "unet-nogate", "deepcr-retrained")
RULES: tuple[TruthRule, ...] = (threshold_rule(1), threshold_rule(3), threshold_rule(5), DEFAULT_RULE)
TARGET_FPR = 5e-4


def regenerate(dataset: str, split: str):
    """The split's samples and their :class:`SimulatedTruth`, regenerated from the recipe."""
    from data_recipes.sim.scenes import simulate_sample_with_truth
    from data_recipes.sim_recipes import SPECS, default_confusers, recipe_preset, split_ids

    built = None
    path = Path(dataset)
    if path.is_dir():
        from crbench.dataset import Dataset

        built = Dataset.open(path)
        name, opts = built.card["recipe"], dict(built.card["parameters"])
    else:
        name, opts = dataset, {}
    if name not in SPECS:
        raise SystemExit(f"truth_sensitivity: {dataset!r} is not a simulated recipe of data_recipes.sim_recipes "
                         f"({', '.join(SPECS)})")
    preset_name, field, defaults, _ = SPECS[name]
    o = {"seed": 1, "cr_rate_scale": 1.0, **defaults, **opts}
    # a built card names its confusers unless they are v2 (v2 cards predate the option); a bare recipe name
    # simulates the recipe's default (standard) confusers
    confusers = str(opts.get("confusers", "v2")) if built is not None else default_confusers(name)
    preset = recipe_preset(name, confusers, float(o["cr_rate_scale"]))
    prefix = name.removeprefix("sim-")
    ids = [f"{prefix}-{i:04d}" for i in range(int(o["n_images"]))]
    if split == "all":
        wanted = ids
    elif built is not None:  # the build's own split (a standard build sets its split counts)
        wanted = built.ids(split)
    else:  # a bare recipe name: the small build, split by the default fractions
        wanted = split_ids(ids)[split]
    out = []
    for sid in wanted:
        i = ids.index(sid)
        sample, st = simulate_sample_with_truth(
            np.random.default_rng([int(o["seed"]), i]), sid, preset, field=field, shape=tuple(o["shape"]),
            exptime=float(o["exposure_time"]), n_exposures=int(o["exposures"]), ramp=preset.ramp_groups > 0)
        sample.meta["preset"] = preset_name
        if built is not None and not np.array_equal(built.load(sid, load_companions=False).image, sample.image):
            raise SystemExit(f"truth_sensitivity: sample {sid!r} of {path} differs from its regeneration; "
                             "rebuild the dataset with this code")
        out.append((sample, st))
    return name, out


def relabel(sample, st, rule: TruthRule):
    """A shallow copy of ``sample`` with truth and halo under ``rule`` (labels dropped)."""
    from dataclasses import replace

    truth, halo = apply_truth_rule(st.significance, st.present, rule)
    return replace(sample, truth=truth, halo=halo, labels=None)


def label_stats(pairs, rule: TruthRule) -> dict[str, float]:
    n_truth = n_halo = 0
    q_truth = q_all = 0.0
    below3 = 0
    for _, st in pairs:
        truth, halo = apply_truth_rule(st.significance, st.present, rule)
        n_truth += int(truth.sum())
        n_halo += int(halo.sum())
        q = st.layer.charge
        q_truth += float(q[truth].sum())
        q_all += float(q[st.present].sum())
        below3 += int((truth & (st.significance <= 3)).sum())
    return {"truth_px": n_truth, "halo_px": n_halo, "truth_below_3sigma": below3 / max(n_truth, 1),
            "charge_share": q_truth / max(q_all, 1e-300)}


def main(argv: list[str] | None = None) -> int:
    ap_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap_.add_argument("--dataset", default="sim-hst-acs-ex", help="simulated recipe name or a built dataset folder")
    ap_.add_argument("--split", default="test")
    ap_.add_argument("--detectors", default=",".join(DETECTORS))
    ap_.add_argument("--csv", default=None, help="write the long table as CSV here")
    args = ap_.parse_args(argv)

    t0 = time.time()
    name, pairs = regenerate(args.dataset, args.split)
    print(f"# {name} {args.split}: {len(pairs)} images regenerated from the recipe seed")
    print("\n## Labels per rule (CR pixels of the primary exposures)\n")
    print("| rule | truth px | halo px | truth px <= 3 sigma | CR charge on truth |")
    print("|---|---:|---:|---:|---:|")
    for rule in RULES:
        s = label_stats(pairs, rule)
        print(f"| {rule.name} | {s['truth_px']} | {s['halo_px']} | {100 * s['truth_below_3sigma']:.1f}% | "
              f"{100 * s['charge_share']:.2f}% |")

    rows = []
    for dname in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        try:
            det = get_detector(dname)
            binning = Binning.for_range(det.score_range, None, integer=getattr(det, "integer_scores", False))
            scores = [run_detector(det, sample)[0] for sample, _ in pairs]
        except Exception as exc:  # noqa: BLE001 - a baseline that does not load is skipped with a line
            print(f"skipped {dname}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        for rule in RULES:
            for halo in ("ignore", "negative"):
                conv = Conventions(halo=halo)
                pos: Any = 0  # summed histograms
                neg: Any = 0
                for score, (sample, st) in zip(scores, pairs):
                    p, n = sample_histograms(score, relabel(sample, st, rule), binning, conv)
                    pos, neg = pos + p, neg + n
                c = curve_from_histograms(pos, neg, binning)
                rows.append({"detector": dname, "rule": rule.name, "halo": halo,
                             "tpr_at_fpr_5e-4": tpr_at_fpr(c, TARGET_FPR), "ap": ap(c),
                             "n_pos": int(c.n_pos), "n_neg": int(c.n_neg)})
    if not rows:
        print("no detector could be scored")
        return 1
    df = pd.DataFrame(rows)
    for halo in ("ignore", "negative"):
        sub = df[df["halo"] == halo]
        print(f"\n## TPR at FPR {TARGET_FPR:g} / AP, halo={halo}\n")
        rules = [r.name for r in RULES]
        print("| detector | " + " | ".join(rules) + " |")
        print("|---|" + "---:|" * len(rules))
        for dname, g in sub.groupby("detector", sort=False):
            cells = []
            for r in rules:
                x = g[g["rule"] == r].iloc[0]
                cells.append(f"{x['tpr_at_fpr_5e-4']:.3f} / {x['ap']:.3f}")
            print(f"| {dname} | " + " | ".join(cells) + " |")
        print("\nRanking by TPR at FPR 5e-4:")
        for r in rules:
            g = sub[sub["rule"] == r].sort_values("tpr_at_fpr_5e-4", ascending=False)
            print(f"- {r}: " + " > ".join(f"{d} ({v:.3f})" for d, v in zip(g["detector"], g["tpr_at_fpr_5e-4"])))
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"\nwrote {args.csv}")
    print(f"\n({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
