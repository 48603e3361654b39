"""What the v3 confusers (sharp PSF core, residual CTE trails) do to the ACS fields, paired with v2.

For each ACS field (EX, GC, GAL) the first ``--images`` images of the standard test split are simulated
again (same ids, same generators ``default_rng([1, index])``, 1024x1024, 1000 s, 3 exposures) under each
confuser variant, so every variant has the same scenes, the same CRs and the same noise draws; only the
PSF of the point sources and the read-out differ:

- ``v2``: the previous standard (v2) builds (Moffat PSF, FWHM 2 px; perfect charge transfer);
- ``psf``: v2 with the ``core-halo`` PSF of v3 (diffraction core + halo, convolved with the ACS/WFC
  pixel response; :func:`data_recipes.sim.presets.with_confusers`);
- ``cte``: v2 with v3's CTE (late-epoch ACS traps, 3% left after the pipeline's correction);
- ``physics``: both, on v2's scenes (v2's GC crowding and GAL knots);
- ``flt``: ``physics`` with the CTE left uncorrected (``_flt``-like frames; for scale, not a proposed standard);
- ``v3``: ``physics`` with v3's retuned scene crowding (``confusers='v3'``; its GC and GAL scenes draw
  fewer stars and knots, so their CRs are other draws than v2's; EX is paired).

Each variant is written as a temporary dataset and scored with crbench's defaults (protocol crbench,
threshold in-sample, no bootstrap) by LACosmic (the leaderboard's objlim 5) and the median of the
exposures. Printed: CR count and truth pixels, then TPR at FPR 5e-4 and AP per field and variant, and
LACosmic's EX/GC/GAL ordering per variant beside the deepCR paper's (``benchmarks/field_ordering.py``'s
rule: '>=' within 1 point).

Usage::

    nice python benchmarks/confuser_versions.py [--images 4] [--variants v2,psf,cte,physics,flt,v3]
        [--detectors lacosmic,median] [--workers 2] [--fields ex,gc,gal] [--gc-stars N] [--gal-knots N]
        [--bootstrap N] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from field_ordering import ordering  # noqa: E402  (the '>=' within 1 point rule of the README's tables)

FIELDS = ("ex", "gc", "gal")
VARIANTS = ("v2", "psf", "cte", "physics", "flt", "v3")
#: First test image of the standard ACS builds (split counts 16 / 4 / 16).
FIRST_TEST_INDEX = 20


def variant_preset(variant: str, gc_stars: float | None = None, gal_knots: float | None = None):
    """The ACS/WFC preset of one confuser variant (:data:`VARIANTS`), with ``gc_stars`` stars per 256x256
    in 'gc' fields and ``gal_knots`` knots per 256x256 in 'gal' fields when given (else the variant's own)."""
    preset = _variant_preset(variant)
    if gc_stars is not None:
        preset = preset.with_(gc_stars_per_area=float(gc_stars))
    if gal_knots is not None:
        preset = preset.with_(gal_knots_per_area=float(gal_knots))
    return preset


def _variant_preset(variant: str):
    from data_recipes.sim.presets import get_preset, with_confusers

    base = get_preset("hst-acs-wfc")
    v3 = with_confusers(base, "v3")
    physics = dict(psf=v3.psf, psf_core_fwhm=v3.psf_core_fwhm, psf_core_fraction=v3.psf_core_fraction,
                   psf_halo_fwhm=v3.psf_halo_fwhm, prf_kernel=v3.prf_kernel)
    assert v3.cte is not None
    variants = {
        "v2": base,
        "psf": base.with_(**physics),
        "cte": base.with_(cte=v3.cte),
        "physics": base.with_(**physics, cte=v3.cte),
        "flt": base.with_(**physics, cte=v3.cte.with_residual(1.0)),
        "v3": v3,
    }
    if variant not in variants:
        raise SystemExit(f"confuser_versions: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return variants[variant]


def build_variant(folder: Path, field: str, variant: str, n_images: int, gc_stars: float | None = None,
                  gal_knots: float | None = None):
    """The first ``n_images`` standard test images of ``sim-hst-acs-FIELD`` under ``variant``."""
    import numpy as np

    from crbench.dataset import write_dataset
    from data_recipes.sim.physics import TRUTH_RULE
    from data_recipes.sim.scenes import simulate_sample

    preset = variant_preset(variant, gc_stars, gal_knots)
    idx = list(range(FIRST_TEST_INDEX, FIRST_TEST_INDEX + n_images))
    ids = [f"hst-acs-{field}-{i:04d}" for i in idx]

    def samples():
        for i, sid in zip(idx, ids):
            s = simulate_sample(np.random.default_rng([1, i]), sid, preset, field=field, shape=(1024, 1024),
                                exptime=1000.0, n_exposures=3, rule=TRUTH_RULE)
            s.meta["preset"] = "hst-acs-wfc"
            yield s

    return write_dataset(folder, samples(), name=f"acs-{field}-{variant}", splits={"test": ids},
                         recipe=f"sim-hst-acs-{field}", parameters={"confuser_variant": variant}, seed=1,
                         progress=False)


def truth_counts(ds) -> tuple[int, int]:
    """(CR instances, truth pixels) of the test split (science images only: the companions are not read)."""
    n_cr = n_px = 0
    for sid in ds.ids("test"):
        s = ds.load(sid, load_companions=False)
        n_px += int(s.truth.sum())
        n_cr += 0 if s.instances is None else len(s.instances)
    return n_cr, n_px


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4, help="test images per field (1024x1024 each)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--detectors", default="lacosmic,median")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap replicates over images for 95%% intervals")
    p.add_argument("--fields", default=",".join(FIELDS))
    p.add_argument("--gc-stars", type=float, default=None,
                   help="stars per 256x256 of the GC fields in every variant (default: each variant's own)")
    p.add_argument("--gal-knots", type=float, default=None,
                   help="knots per 256x256 of the GAL fields in every variant (default: each variant's own)")
    p.add_argument("--out", default=None, help="folder for confuser_versions.csv (default: no file)")
    a = p.parse_args(argv)
    variants = [v for v in a.variants.split(",") if v]
    for v in variants:
        variant_preset(v)
    detectors = [d for d in a.detectors.split(",") if d]
    if a.images < 1:
        print(f"confuser_versions: --images must be >= 1, got {a.images}", file=sys.stderr)
        return 2

    from crbench.harness import evaluate

    fields = [f for f in a.fields.split(",") if f]
    rows = []
    for field in fields:
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                ds = build_variant(Path(tmp) / "ds", field, variant, a.images, a.gc_stars,
                                   a.gal_knots)
                n_cr, n_px = truth_counts(ds)
                for det in detectors:
                    res = evaluate(det, ds, split="test", progress=False, operating_split=None,
                                   bootstrap=a.bootstrap, cache=False, workers=a.workers)
                    s = res.runs[0]["summary"]
                    tpr = s.get("tpr_at_fpr_5e-4")
                    rows.append({"field": field, "variant": variant, "detector": det, "n_crs": n_cr,
                                 "truth_pixels": n_px, "ap": s.get("ap"),
                                 "tpr_at_fpr_5e-4": tpr if tpr is not None else float("nan"),
                                 "tpr_lo": s.get("tpr_at_fpr_5e-4_lo", float("nan")),
                                 "tpr_hi": s.get("tpr_at_fpr_5e-4_hi", float("nan"))})
                    interval = f" [{rows[-1]['tpr_lo']:.4f}, {rows[-1]['tpr_hi']:.4f}]" if a.bootstrap else ""
                    print(f"{field:4s} {variant:4s} {det:9s} CRs {n_cr:6d} truth px {n_px:7d} "
                          f"AP {s.get('ap'):.4f} TPR@5e-4 {rows[-1]['tpr_at_fpr_5e-4']:.4f}{interval}", flush=True)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        tmp_csv = out / "confuser_versions.csv.tmp"
        with open(tmp_csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp_csv, out / "confuser_versions.csv")

    print()
    print("| variant | detector | " + " | ".join(f"{f.upper()} TPR@5e-4 / AP" for f in FIELDS) + " | ordering |")
    print("|---|---|" + "---|" * len(FIELDS) + "---|")
    print("| deepCR paper | lacosmic | 57.3 | 58.3 | 33.8 | GC >= EX > GAL |")
    for variant in variants:
        for det in detectors:
            cell = {r["field"]: r for r in rows if r["variant"] == variant and r["detector"] == det}
            tprs = {f: 100 * cell[f]["tpr_at_fpr_5e-4"] for f in fields}
            print(f"| {variant} | {det} | " + " | ".join(
                f"{tprs[f]:.1f} / {cell[f]['ap']:.3f}" if f in cell else "" for f in FIELDS)
                + f" | {ordering(tprs) if len(fields) == len(FIELDS) else ''} |")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
