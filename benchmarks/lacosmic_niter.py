"""LACosmic with fewer iterations at the loose sweep steps: curve difference and speed ratio.

The default ``lacosmic`` sweep runs astroscrappy with ``niter=4`` at each of its 16 sigclip steps.
This script measures variants that run ``loose_niter`` iterations at the steps with ``sigclip <
loose_below`` (the ``LACosmicDetector`` parameters of the same names) on the first ``--images``
images of a split of a built dataset.

Every (step, niter) mask is computed once with ``LACosmicDetector(niter=k).mask`` and timed; a
variant's score is composed from the masks its ``niter_at`` picks at each step, which is exactly
what ``LACosmicDetector(loose_niter=..., loose_below=...)`` computes, and its time is the sum of
those masks' CPU times (``time.process_time`` with one thread, robust on a shared machine). The
curves are scored with crbench's default conventions (:func:`crbench.harness.evaluate_sample`),
pooled over the images.

Printed per variant: CPU seconds per Mpix, the speed ratio (default seconds / variant seconds), AP
and its difference from the default, the largest |delta TPR| over the ROC at FPR 1e-4..1e-2 (both
curves interpolated linearly in FPR on 41 log-spaced points) and TPR at FPR 1e-4, 1e-3, 1e-2. The
last line names the fastest variant whose max |delta TPR| is below 0.005 and |delta AP| below
0.002, if any.

Usage::

    CRBENCH_DATA_DIR=/work/data python benchmarks/lacosmic_niter.py [--dataset sim-hst-acs-ex] [--images 2]
"""
from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.lacosmic import DEFAULT_SWEEP, LACosmicDetector  # noqa: E402
from crbench.detectors.base import Detector  # noqa: E402

#: (loose_niter, loose_below) variants; None = the default sweep.
VARIANTS: list[tuple[int, float] | None] = [None, (2, 6.0), (1, 6.0), (2, 11.0), (1, 11.0), (3, 100.0),
                                            (2, 100.0), (1, 100.0)]
#: Largest curve change called negligible: max |delta TPR| and |delta AP|.
NEGLIGIBLE = (0.005, 0.002)


class _Fixed(Detector):
    """A detector returning a precomputed score (to score a composed sweep with the harness)."""

    name = "lacosmic-variant"
    integer_scores = True

    def __init__(self, score: np.ndarray, n_steps: int) -> None:
        super().__init__()
        self._score = score
        self.score_range = (0.0, float(n_steps))  # type: ignore[misc]

    def score(self, obs):  # noqa: D102
        return self._score


def tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR of a ROC curve at ``grid`` FPRs, linear interpolation between its points (from (0, 0))."""
    order = np.argsort(fpr, kind="stable")
    f = np.concatenate([[0.0], np.asarray(fpr, float)[order]])
    t = np.concatenate([[0.0], np.asarray(tpr, float)[order]])
    return np.interp(grid, f, t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="sim-hst-acs-ex")
    p.add_argument("--split", default="test")
    p.add_argument("--images", type=int, default=2)
    args = p.parse_args(argv)
    from crbench.conventions import resolve_conventions
    from crbench.harness import evaluate_sample
    from crbench.metrics import Binning, curve_from_histograms, summarize
    from crbench.recipes import resolve_dataset

    ds = resolve_dataset(args.dataset, build_missing=False)
    ids = ds.ids(args.split)[: args.images]
    steps = list(DEFAULT_SWEEP)
    variants = [LACosmicDetector() if v is None else LACosmicDetector(loose_niter=v[0], loose_below=v[1])
                for v in VARIANTS]
    needed = sorted({(i, d.niter_at(s)) for d in variants for i, s in enumerate(steps)})
    binning = Binning.for_range((0.0, float(len(steps))), integer=True)
    conv = resolve_conventions()
    pos: dict[int, Any] = {k: 0 for k in range(len(variants))}  # summed histograms (arrays) per variant
    neg: dict[int, Any] = {k: 0 for k in range(len(variants))}
    secs = {k: 0.0 for k in range(len(variants))}
    mpix = 0.0
    for sid in ids:
        sample = ds.load(sid, load_companions=False)
        obs = sample.observation()
        mpix += sample.image.size / 1e6
        masks, times = {}, {}
        for i, k in needed:
            det = LACosmicDetector(niter=k)
            t0 = time.process_time()  # CPU time of this single-threaded process: robust on a shared machine
            masks[i, k] = det.mask(obs, steps[i])
            times[i, k] = time.process_time() - t0
        for j, d in enumerate(variants):
            picks = [(i, d.niter_at(s)) for i, s in enumerate(steps)]
            score = np.asarray(np.sum([masks[pk] for pk in picks], axis=0, dtype=np.float32))
            rec = evaluate_sample(_Fixed(score, len(steps)), sample, binning, conv)
            pos[j] = pos[j] + rec.pos
            neg[j] = neg[j] + rec.neg
            secs[j] += sum(times[pk] for pk in picks)
        print(f"{sid}: {len(needed)} masks in {sum(times.values()):.1f} CPU s", flush=True)
    grid = np.geomspace(1e-4, 1e-2, 41)
    base_curve = curve_from_histograms(pos[0], neg[0], binning)
    base_ap = float(summarize(base_curve, floor_point=True)["ap"])
    base_tpr = tpr_on_grid(base_curve.fpr, base_curve.tpr, grid)
    print(f"dataset {ds.name} ({ds.card.get('size', '?')}), split {args.split}: {len(ids)} images, {mpix:.2f} Mpix; "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'variant':28s} {'CPU s/Mpix':>10s} {'speed':>6s} {'AP':>7s} {'dAP':>8s} {'max|dTPR|':>9s} "
          f"{'TPR@1e-4':>8s} {'TPR@1e-3':>8s} {'TPR@1e-2':>8s}")
    best = None
    for j, (v, d) in enumerate(zip(VARIANTS, variants)):
        curve = curve_from_histograms(pos[j], neg[j], binning)
        apj = float(summarize(curve, floor_point=True)["ap"])
        t = tpr_on_grid(curve.fpr, curve.tpr, grid)
        dmax = float(np.max(np.abs(t - base_tpr)))
        at = tpr_on_grid(curve.fpr, curve.tpr, np.array([1e-4, 1e-3, 1e-2]))
        label = "default (niter=4 everywhere)" if v is None else f"niter={v[0]} below sigclip {v[1]:g}"
        ratio = secs[0] / secs[j]
        print(f"{label:28s} {secs[j] / mpix:10.2f} {ratio:6.2f} {apj:7.4f} {apj - base_ap:+8.4f} {dmax:9.4f} "
              f"{at[0]:8.4f} {at[1]:8.4f} {at[2]:8.4f}")
        if v is not None and dmax < NEGLIGIBLE[0] and abs(apj - base_ap) < NEGLIGIBLE[1]:
            if best is None or ratio > best[1]:
                best = (label, ratio)
    print(f"negligible (max|dTPR| < {NEGLIGIBLE[0]}, |dAP| < {NEGLIGIBLE[1]}): "
          + (f"{best[0]}, speed ratio {best[1]:.2f}" if best else "none of the variants"))
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
