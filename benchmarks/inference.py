"""Inference speed and memory: crbench's attention U-Net vs the deepCR package, same image, one run.

Each detector runs in its own fresh worker process (so peak resident memory is its own) on the
same simulated 2048x2048 image in electrons (sky, noise, stars, CR hits), with the same number
of torch threads. Reported per detector: seconds per megapixel (best of ``--repeats`` after a
warm-up call) and peak memory (peak RSS of the worker, and the rise of the peak during
inference). The last line is ``speed_ratio_vs_deepcr: <deepcr seconds / ours>``.

Usage::

    python benchmarks/inference.py [--size 2048] [--repeats 3] [--threads 2] [--weights PATH]
    python benchmarks/inference.py --sweep 16x3,32x3,24x3,8x3,16x4   # speed trade-off curve

``--sweep WxL,...`` first times untrained attention U-Nets of width W and L levels (speed does not
depend on the weight values) against the same deepCR timing, one ratio line per configuration,
then runs the main comparison.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_image(size: int, seed: int = 0) -> np.ndarray:
    """Sky 400 e-, read noise 5 e-, Gaussian stars and CR hits; float32 electrons."""
    rng = np.random.default_rng(seed)
    img = rng.poisson(400.0, (size, size)).astype(np.float32) + rng.normal(0, 5, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[-7:8, -7:8]
    for _ in range(size * size // 20000):
        y, x = rng.integers(8, size - 8, 2)
        img[y - 7:y + 8, x - 7:x + 8] += rng.pareto(1.5) * 2000 * np.exp(-(yy**2 + xx**2) / (2 * 1.0**2))
    for _ in range(size * size // 2000):
        y, x = rng.integers(0, size - 2, 2)
        img[y:y + 2, x:x + 1] += rng.uniform(500, 5000)
    return img


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(which: str, size: int, repeats: int, threads: int, weights: str | None, tile: int, q) -> None:
    import torch

    torch.set_num_threads(threads)
    img = make_image(size)
    if which == "deepcr":
        from baselines.deepcr_detector import DeepCRDetector

        det: Any = DeepCRDetector(model="ACS-WFC", patch=256)
        run = det.probability
    else:
        from baselines.unet.detector import AttentionUNetDetector

        det = AttentionUNetDetector(weights=weights, tile=tile)
        run = det.probability
    run(img[:256, :256])  # warm-up
    before_peak = _peak_mb()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run(img)
        times.append(time.perf_counter() - t0)
    assert out.shape == img.shape and out.dtype == np.float32
    q.put({"which": which, "seconds": min(times), "all_seconds": times, "peak_mb": _peak_mb(),
           "inference_peak_rise_mb": max(0.0, _peak_mb() - before_peak), "rss_mb": _rss_mb(),
           "params": det.params()})


def measure(which: str, args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(which, args.size, args.repeats, args.threads, args.weights, args.tile, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--weights", default=None, help="attention-unet weight file (default: shipped)")
    ap.add_argument("--sweep", default=None, help="comma-separated WIDTHxLEVELS configurations to time")
    args = ap.parse_args(argv)
    mpix = args.size * args.size / 1e6
    print(f"image {args.size}x{args.size} ({mpix:.2f} Mpix), torch threads {args.threads}, "
          f"best of {args.repeats} after a warm-up")
    res = {"deepcr": measure("deepcr", args)}
    if args.sweep:
        import tempfile

        import torch

        from baselines.unet.models import build_model, count_parameters
        from baselines.unet.weights import save_weights

        with tempfile.TemporaryDirectory() as tmp:
            for spec in args.sweep.split(","):
                width, levels = (int(v) for v in spec.lower().split("x"))
                torch.manual_seed(0)
                net = build_model("attention-unet", width=width, levels=levels).eval()
                path = Path(tmp) / f"w{width}l{levels}.pt"
                save_weights(path, net, "attention-unet")
                sub = argparse.Namespace(**{**vars(args), "weights": str(path)})
                r = measure("attention-unet", sub)
                print(f"sweep width {width:3d} levels {levels}: params {count_parameters(net):8d}  "
                      f"{r['seconds'] / mpix:7.3f} s/Mpix  peak RSS {r['peak_mb']:.0f} MB  "
                      f"ratio_vs_deepcr {res['deepcr']['seconds'] / r['seconds']:.3f}")
    res["attention-unet"] = measure("attention-unet", args)
    for w, r in res.items():
        print(f"{w:15s} {r['seconds'] / mpix:7.3f} s/Mpix  ({r['seconds']:.2f} s; runs "
              f"{', '.join(f'{t:.2f}' for t in r['all_seconds'])})  peak RSS {r['peak_mb']:.0f} MB, "
              f"inference peak rise {r['inference_peak_rise_mb']:.0f} MB  params {r['params']}")
    print(f"speed_ratio_vs_deepcr: {res['deepcr']['seconds'] / res['attention-unet']['seconds']:.3f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
