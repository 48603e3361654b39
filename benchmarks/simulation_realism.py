"""Realism and speed of the physical CR simulator, next to published values.

HST ACS/WFC preset at 1000 s (ACS Instrument Handbook, via docs/physics.md#instrument-presets):
  fraction of pixels hit            1.5-3% per 1000 s
  median pixels per hit             typically 4-5
  median charge per hit             ~1000 e-, floor ~500 e- (we print the 5th percentile as the floor)
A hit is a truth footprint under the library's truth rule (crbench.truth, default seed5-grow2.5:
pixels above 2.5 x the local noise sigma 8-connected to a pixel above 5 sigma; sigma =
sqrt(read_noise^2 + sky + dark), here ~11 e-), see data_recipes/sim/physics.py. The retired
1-sigma threshold is printed next to it, and both again for the starting values of docs/physics.md#instrument-presets,
thickness and diffusion (15 um / 4 um) instead of the preset's tuned 11 um / 6 um.

DECam preset: the projected track length of muons, measured on truth footprints (maximum Feret
length) against the geometric expectation L = thickness x tan(theta) / pitch (docs/physics.md#morphologies) for
cos^3 incidence (median tan(theta) = 0.643 -> 10.7 px for 250 um / 15 um).

Speed: a full sample (scene, 3 exposures with noise and CRs, truth, morphology) for a
2048x2048 HST-like frame, in megapixels per second (3 x 4.19 Mpix / seconds); reference in the
same run: the foundation's toy simulator (data_recipes.basic) on the same frame.

Usage::

    python benchmarks/simulation_realism.py [--size 2048] [--seed 0]

The last line is ``realism_hit_fraction_ratio: <measured / handbook midpoint 2.25%>`` for the preset
under the default truth rule.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.morphology import instance_features  # noqa: E402
from crbench.truth import DEFAULT_RULE, TruthRule, threshold_rule  # noqa: E402
from data_recipes.sim.physics import ipc_ring_px, simulate_crs  # noqa: E402
from data_recipes.sim.presets import get_preset  # noqa: E402
from data_recipes.sim.scenes import background_sigma, simulate_sample  # noqa: E402

HANDBOOK_HIT_FRACTION = (0.015, 0.03)
HANDBOOK_PIXELS_PER_HIT = (4, 5)
HANDBOOK_MEDIAN_CHARGE = 1000.0
HANDBOOK_CHARGE_FLOOR = 500.0


def hst_realism(size: int, seed: int, rules: tuple[TruthRule, ...] = (DEFAULT_RULE,),
                **changes: float) -> list[dict[str, float]]:
    """Hit statistics of one simulated HST frame under each of ``rules`` (preset fields in ``changes``)."""
    p = get_preset("hst-acs-wfc").with_(**changes) if changes else get_preset("hst-acs-wfc")
    t = 1000.0
    layer = simulate_crs(np.random.default_rng(seed), (size, size), p, t)
    sigma = background_sigma(p, t)
    out = []
    for rule in rules:
        labels = layer.truth_labels(sigma, rule)
        table = layer.truth_instances(labels, diffusion_sigma_px=p.diffusion_sigma_px, ipc_ring_px=ipc_ring_px(p))
        out.append({
            "rule": rule.name,
            "noise_sigma": sigma,
            "hit_fraction": float(np.mean(labels > 0)),
            "median_pixels": float(table["pixels"].median()),
            "mean_pixels": float(table["pixels"].mean()),
            "median_charge": float(table["charge"].median()),
            "p5_charge": float(table["charge"].quantile(0.05)),
            "n_hits": len(table),
            "morph": table["morphology"].value_counts().to_dict(),
        })
    return out


def decam_tracks(seed: int, rule: TruthRule = DEFAULT_RULE) -> dict[str, Any]:
    p = get_preset("decam")
    p = p.with_(electron_rate=0.0, alpha_rate=0.0, muon_rate=p.muon_rate * 30)  # muons only, more of them
    shape, t = (1024, 1024), 300.0
    layer = simulate_crs(np.random.default_rng(seed), shape, p, t)
    labels = layer.truth_labels(background_sigma(p, t), rule)
    feats = instance_features(labels, layer.saturated, diffusion_sigma_px=p.diffusion_sigma_px)
    # events fully inside the frame (a box of half-size L around the start), so nothing is clipped
    inst = layer.instances.set_index("id")
    ev = inst.loc[feats["id"]]
    lp = ev["length_px"].to_numpy()
    inside = ((ev["x"].to_numpy() - lp > 5) & (ev["x"].to_numpy() + lp < shape[1] - 5)
              & (ev["y"].to_numpy() - lp > 5) & (ev["y"].to_numpy() + lp < shape[0] - 5))
    f = feats[inside]
    geo = inst.loc[f["id"], "length_px"].to_numpy()
    meas = f["feret"].to_numpy()
    rng = np.random.default_rng(seed + 1)
    cos_t = rng.random(200_000) ** 0.25
    expect = p.thickness_um * np.sqrt(1 - cos_t**2) / cos_t / p.pixel_pitch_um
    q = [10, 25, 50, 75, 90]
    return {"n": len(f), "measured_feret": np.percentile(meas, q), "geometric_in_sample": np.percentile(geo, q),
            "expected": np.percentile(expect, q), "q": q,
            "track_share": float((f["morphology"] == "track").mean())}


def speed(size: int, seed: int) -> tuple[float, float, float]:
    """(ours wall Mpix/s, ours CPU Mpix/s, toy reference wall Mpix/s)."""
    mpix = 3 * size * size / 1e6
    t0, c0 = time.perf_counter(), time.process_time()
    simulate_sample(np.random.default_rng(seed), "speed", "hst-acs-wfc", field="ex", shape=(size, size),
                    exptime=1000.0, n_exposures=3)
    ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    from data_recipes.basic import DEFAULTS, simulate_sample as toy

    opts = dict(DEFAULTS, shape=(size, size), exposures=3, exposure_time=1000.0,
                n_stars=int(DEFAULTS["n_stars"] * size * size / 65536))
    t0 = time.perf_counter()
    toy(np.random.default_rng(seed), "toy", opts)
    ref = time.perf_counter() - t0
    return mpix / ours, mpix / max(ours_cpu, 1e-9), mpix / ref


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    lo, hi = HANDBOOK_HIT_FRACTION
    h: dict[str, Any] | None = None
    for label, changes in (("preset (11 um, 6 um; tuned, unsourced)", {}),
                           ("docs/physics.md#instrument-presets starting values (15 um, 4 um)", {"thickness_um": 15.0,
                                                                        "diffusion_sigma_um": 4.0})):
        for r in hst_realism(args.size, args.seed, (DEFAULT_RULE, threshold_rule(1)), **changes):
            if h is None:
                h = r
            print(f"HST ACS/WFC {label}, 1000 s, {args.size}x{args.size}, truth rule {r['rule']} "
                  f"(sigma = {r['noise_sigma']:.1f} e-)")
            print(f"  hits: {r['n_hits']}  morphology: {r['morph']}")
            print(f"  fraction of pixels hit   {100 * r['hit_fraction']:.2f}%      handbook {100 * lo:.1f}-{100 * hi:.1f}%")
            print(f"  median pixels per hit    {r['median_pixels']:.0f} (mean {r['mean_pixels']:.1f})   handbook "
                  f"{HANDBOOK_PIXELS_PER_HIT[0]}-{HANDBOOK_PIXELS_PER_HIT[1]}")
            print(f"  median charge per hit    {r['median_charge']:.0f} e-      handbook ~{HANDBOOK_MEDIAN_CHARGE:.0f} e-")
            print(f"  charge floor (5th pct)   {r['p5_charge']:.0f} e-       handbook ~{HANDBOOK_CHARGE_FLOOR:.0f} e-")

    d = decam_tracks(args.seed)
    print(f"DECam preset muon tracks (cos^3 incidence, 250 um / 15 um px), {d['n']} muons fully in frame")
    print("  percentile                   " + "  ".join(f"{q:>6d}" for q in d["q"]))
    print("  expected L = t tan(th)/p      " + "  ".join(f"{v:6.1f}" for v in d["expected"]))
    print("  same, for these events        " + "  ".join(f"{v:6.1f}" for v in d["geometric_in_sample"]))
    print("  measured Feret length (px)    " + "  ".join(f"{v:6.1f}" for v in d["measured_feret"]))
    print(f"  classified as track: {100 * d['track_share']:.0f}%")

    ours, ours_cpu, ref = speed(args.size, args.seed)
    print(f"generation speed, {args.size}x{args.size} HST-like sample with 3 exposures: {ours:.2f} Mpix/s wall, "
          f"{ours_cpu:.2f} Mpix/s per CPU second (toy simulator data_recipes.basic, same frame: {ref:.2f} Mpix/s "
          f"wall; ratio {ours / ref:.2f})")
    if h is None:  # hst_realism yields one row per truth rule
        raise RuntimeError("simulation_realism: the HST preset gave no realism row")
    print(f"realism_hit_fraction_ratio: {h['hit_fraction'] / (0.5 * (lo + hi)):.3f}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
