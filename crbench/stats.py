"""Class-imbalance statistics of a dataset (pure functions over per-sample rows)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .sample import MORPHOLOGIES, Sample


def sample_statistics(sample: Sample) -> dict[str, Any]:
    """Per-sample counts: pixels, CR pixels, CRs, per-morphology counts and pixels, CR pixels on sources."""
    ignore = sample.ignore_or_false()
    valid = ~ignore
    n_valid = int(valid.sum())
    truth = sample.truth if sample.truth is not None else np.zeros(sample.shape, bool)
    cr_pix = int((truth & valid).sum())
    row: dict[str, Any] = {
        "sample_id": sample.id,
        "pixels": int(truth.size),
        "valid_pixels": n_valid,
        "ignore_pixels": int(ignore.sum()),
        "cr_pixels": cr_pix,
        "cr_pixel_fraction": cr_pix / n_valid if n_valid else 0.0,
        "n_crs": int(len(sample.instances)) if sample.instances is not None else 0,
        "cr_pixels_on_sources": int((truth & valid & sample.sources).sum()) if sample.sources is not None else 0,
        "labelled": sample.truth is not None,
    }
    inst = sample.instances
    for m in MORPHOLOGIES:
        if inst is not None and len(inst):
            sel = inst["morphology"] == m
            row[f"n_{m}"] = int(sel.sum())
            row[f"pixels_{m}"] = int(inst.loc[sel, "pixels"].sum())
        else:
            row[f"n_{m}"] = 0
            row[f"pixels_{m}"] = 0
    if inst is not None and len(inst):
        row["cr_sizes"] = {m: [int(x) for x in inst.loc[inst["morphology"] == m, "pixels"]] for m in MORPHOLOGIES}
    else:
        row["cr_sizes"] = {m: [] for m in MORPHOLOGIES}
    row["generator_morphology"] = generator_morphology_counts(inst)
    row["n_saturated_crs"] = (int(np.asarray(inst["saturated"], dtype=bool).sum())
                              if inst is not None and len(inst) and "saturated" in inst else 0)
    return row


def generator_morphology_counts(instances: Any) -> dict[str, dict[str, int]]:
    """``{generator: {morphology: count}}`` of an instance table (generator '' or NaN -> 'unknown')."""
    if instances is None or not len(instances) or "generator" not in instances or "morphology" not in instances:
        return {}
    gen = instances["generator"].astype(object).where(instances["generator"].notna(), "unknown")
    gen = gen.map(lambda g: str(g) if str(g) not in ("", "nan", "None") else "unknown")
    out: dict[str, dict[str, int]] = {}
    for g, m in zip(gen, instances["morphology"].astype(str)):
        out.setdefault(g, {})
        out[g][m] = out[g].get(m, 0) + 1
    return out


def class_imbalance_statistics(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-sample rows into the card's ``statistics`` block.

    Returns CR pixel fraction (mean, median, min, max over images), CRs per megapixel, count and
    pixel share per morphology, share of CR pixels on sources, and the ignore fraction.
    """
    rows = list(rows)
    if not rows:
        return {"n_images": 0}
    frac = np.array([r["cr_pixel_fraction"] for r in rows], dtype=float)
    total_pix = sum(r["pixels"] for r in rows)
    valid_pix = sum(r["valid_pixels"] for r in rows)
    cr_pix = sum(r["cr_pixels"] for r in rows)
    n_crs = sum(r["n_crs"] for r in rows)
    morph = {}
    for m in MORPHOLOGIES:
        n = sum(r[f"n_{m}"] for r in rows)
        p = sum(r[f"pixels_{m}"] for r in rows)
        morph[m] = {
            "count": int(n),
            "count_share": n / n_crs if n_crs else 0.0,
            "pixel_share": p / max(1, sum(sum(r[f"pixels_{k}"] for k in MORPHOLOGIES) for r in rows)),
        }
    sizes = {m: [s for r in rows for s in r["cr_sizes"][m]] for m in MORPHOLOGIES}
    return {
        "n_images": len(rows),
        "n_labelled": int(sum(bool(r["labelled"]) for r in rows)),
        "cr_pixel_fraction": {
            "mean": float(frac.mean()),
            "median": float(np.median(frac)),
            "min": float(frac.min()),
            "max": float(frac.max()),
            "pooled": cr_pix / valid_pix if valid_pix else 0.0,
        },
        "per_image_cr_pixel_fraction": [float(x) for x in frac],
        "n_crs": int(n_crs),
        "crs_per_megapixel": n_crs / (valid_pix / 1e6) if valid_pix else 0.0,
        "morphology": morph,
        "cr_size_quantiles": {
            m: ({q: float(np.percentile(sizes[m], float(q))) for q in ("5", "50", "95")} if sizes[m] else None)
            for m in MORPHOLOGIES
        },
        "cr_pixels_on_sources_share": sum(r["cr_pixels_on_sources"] for r in rows) / cr_pix if cr_pix else 0.0,
        "ignore_fraction": sum(r["ignore_pixels"] for r in rows) / total_pix if total_pix else 0.0,
        "generator_morphology": _merge_counts(r.get("generator_morphology", {}) for r in rows),
        "n_saturated_crs": int(sum(r.get("n_saturated_crs", 0) for r in rows)),
    }


def _merge_counts(dicts: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for d in dicts:
        for g, counts in d.items():
            tgt = out.setdefault(g, {})
            for m, n in counts.items():
                tgt[m] = tgt.get(m, 0) + int(n)
    return out
