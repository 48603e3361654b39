"""crbench's binned evaluator vs scikit-learn on >= 16 Mpix pooled, in one run.

Data: ``--images`` (default 4) simulated 2048x2048 images with ~0.1% CR pixels (spots and tracks
with instance labels and morphologies), stars (a sources mask) and a probability-like score
correlated with the truth. All inputs are built before any measurement and stacked in one array,
so scikit-learn gets the pooled scores as a view (no concatenation is charged to it) and crbench
walks the same array image by image.

Measured, each in the same process and run:

- scikit-learn: ``roc_curve`` + ``precision_recall_curve`` + ``average_precision_score`` on the
  pooled scores (what a pooled evaluation needs from it);
- crbench pixel metrics: per-image histograms (:func:`crbench.harness.compute_record`, pixel
  histograms only), curve and every summary number;
- crbench with per-morphology and per-CR metrics switched on (instance tables, CR charge,
  per-morphology histograms, sources, false-positive components at two operating points) and the
  full reduction.

Time: wall clock of one call each (after a small warm-up), without tracing. Memory: peak of
``tracemalloc`` above the baseline during a separate traced call - numpy reports its buffers to
tracemalloc, so both sides' arrays are counted the same way (the shared inputs are allocated before
and excluded from both).

The last line is ``speedup: <sklearn seconds / crbench pixel-metric seconds>``.

Usage::

    python benchmarks/evaluator.py [--images 4] [--size 2048]
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.conventions import Conventions  # noqa: E402
from crbench.harness import RecordSpec, compute_record, reduce_run  # noqa: E402
from crbench.metrics import Binning, ap, curve_from_histograms, summarize  # noqa: E402
from crbench.sample import Sample  # noqa: E402


def make_case(n_images: int, size: int, seed: int = 0):
    """Stacked scores (float32), truth, labels and per-image samples with instances and sources."""
    rng = np.random.default_rng(seed)
    scores = np.empty((n_images, size, size), np.float32)
    samples = []
    for i in range(n_images):
        labels = np.zeros((size, size), np.int32)
        image = (rng.poisson(300.0, (size, size)) + rng.normal(0, 5, (size, size))).astype(np.float32)
        rows, k = [], 0
        target = int(size * size * 1e-3)
        n_cr = 0
        while n_cr < target:
            k += 1
            y, x = rng.integers(2, size - 30, 2)
            if rng.random() < 0.7:
                yy, xx = np.array([y, y, y + 1, y + 1]), np.array([x, x + 1, x, x + 1])
                morph = "spot"
            else:
                n = int(rng.integers(6, 25))
                yy = y + np.round(np.arange(n) * rng.uniform(0, 1)).astype(int)
                xx = x + np.arange(n)
                morph = "track"
            new = labels[yy, xx] == 0
            labels[yy[new], xx[new]] = k
            image[yy[new], xx[new]] += rng.uniform(200, 3000, new.sum()).astype(np.float32)
            n_cr += int(new.sum())
            rows.append((k, morph, "sim", int(new.sum()), 0.0, False))
        truth = labels > 0
        inst = pd.DataFrame(rows, columns=["id", "morphology", "generator", "pixels", "charge", "saturated"])
        sources = np.zeros((size, size), bool)
        for y, x in rng.integers(5, size - 5, (size * size // 20000, 2)):
            sources[y - 2:y + 3, x - 2:x + 3] = True
            image[y - 1:y + 2, x - 1:x + 2] += 2000
        logit = rng.normal(-6.0, 1.3, (size, size)) + 7.5 * truth + 2.0 * sources
        scores[i] = 1.0 / (1.0 + np.exp(-logit))
        samples.append(Sample(id=f"img{i}", image=image, truth=truth, ignore=None, labels=labels, instances=inst,
                              sources=sources, meta={"sky": 300.0, "read_noise": 5.0, "psf_fwhm": 2.2}))
    truth_all = np.stack([cast(np.ndarray, s.truth) for s in samples])
    return scores, truth_all, samples


def run_sklearn(scores: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    y, s = truth.ravel(), scores.ravel()
    roc_curve(y, s)
    precision_recall_curve(y, s)
    return float(average_precision_score(y, s))


def run_crbench(scores: np.ndarray, samples, full: bool) -> float:
    b = Binning.for_range((0.0, 1.0))
    conv = Conventions()
    t_dice, t_fpr = (int(t) for t in b.index(np.array([30000 / 32768, 29000 / 32768], np.float32)))
    spec = RecordSpec(b, conv, per_cr=full, sources=full,
                      thresholds=(("dice", t_dice), ("fpr", t_fpr)) if full else ())
    recs = [compute_record(scores[i], s, spec) for i, s in enumerate(samples)]
    if full:
        red = reduce_run(recs, b, conv, op={"rule": "fpr", "thresholds": {"fpr": t_fpr, "dice": t_dice}})
        return float(red["summary"]["ap"])
    pos = np.sum([r.pos for r in recs], axis=0)
    neg = np.sum([r.neg for r in recs], axis=0)
    curve = curve_from_histograms(pos, neg, b)
    summarize(curve)
    return float(ap(curve))


def measure(fn, *args):
    t0 = time.perf_counter()
    value = fn(*args)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, seconds, (peak - base) / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=2048)
    args = p.parse_args(argv)
    scores, truth, samples = make_case(args.images, args.size)
    n = scores.size
    print(f"data: {args.images} images {args.size}x{args.size} = {n / 1e6:.1f} Mpix pooled, "
          f"{truth.mean():.3%} CR pixels, {sum(len(s.instances) for s in samples)} CRs")
    run_crbench(scores[:1, :256, :256], [Sample(id="w", image=samples[0].image[:256, :256],
                                                truth=truth[0, :256, :256])], False)  # warm-up
    ap_sk, t_sk, m_sk = measure(run_sklearn, scores, truth)
    print(f"scikit-learn roc_curve + precision_recall_curve + average_precision_score: {t_sk:.2f} s, "
          f"peak {m_sk:.0f} MiB")
    ap_cb, t_cb, m_cb = measure(run_crbench, scores, samples, False)
    b = Binning.for_range((0.0, 1.0))
    print(f"crbench binned pixel metrics ({b.n_bins} {b.kind!r} bins): {t_cb:.3f} s, peak {m_cb:.0f} MiB")
    ap_full, t_full, m_full = measure(run_crbench, scores, samples, True)
    print(f"crbench with per-morphology + per-CR + sources + FP components: {t_full:.3f} s, peak {m_full:.0f} MiB")
    print(f"AP: scikit-learn {ap_sk:.6f}, crbench {ap_cb:.6f}, difference {abs(ap_sk - ap_cb):.2e} "
          f"(full path {abs(ap_sk - ap_full):.2e})")
    print(f"peak memory ratio crbench/scikit-learn: {m_cb / m_sk:.4f} (full path {m_full / m_sk:.4f})")
    print(f"speedup with per-morphology and per-CR metrics: {t_sk / t_full:.1f}")
    print(f"speedup: {t_sk / t_cb:.1f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
