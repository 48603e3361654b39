"""Real CR footprint library and ``microobs-hatp32-footprints`` (real CRs injected into clean real frames).

A third kind of truth between real labels and simulation: confident CR footprints are cut from the
labelled real frames with their charge (frame minus the companions' median, e-), and pasted into
other real frames of the same split after those frames' own labelled CRs were replaced by the
companions' median. Truth is exactly the pasted footprints; the pipeline's ignore mask (sources,
vetoed pixels, borders, ambiguous candidates) is kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from crbench.dataset import Dataset, write_dataset
from crbench.errors import DatasetError
from crbench.observation import saturation_dqmask
from crbench.recipes import Recipe
from crbench.sample import Sample, empty_instance_table

from ._common import check_options, stage
from .labelling import EIGHT, FrameLabel
from .microobs import DOWNLOAD, frame_id, frame_meta, prepare

NAME = "microobs-hatp32-footprints"
DEFAULTS: dict[str, Any] = {"n_images": None, "exposures": 2, "seed": 11, "per_frame": 10, "on_sources": 0.0}


@dataclass
class Footprint:
    """One real CR: its charge stamp (e-) on its mask, morphology and where it came from."""

    charge: np.ndarray
    mask: np.ndarray
    morphology: str
    frame: int

    @property
    def pixels(self) -> int:
        return int(self.mask.sum())


def extract_footprints(frames: Sequence[FrameLabel], *, min_pixels: int = 2) -> list[Footprint]:
    """Confident footprints: labelled CRs of non-rejected frames, >= ``min_pixels``, not touching ignore."""
    out: list[Footprint] = []
    for f in frames:
        if f.rejected or f.cr_charge is None or not len(f.instances):
            continue
        near_ignore = ndimage.binary_dilation(f.ignore, EIGHT)
        morph = dict(zip(f.instances["id"].tolist(), f.instances["morphology"].astype(str).tolist()))
        for sl, k in zip(ndimage.find_objects(f.labels), range(1, int(f.labels.max()) + 1)):
            if sl is None:
                continue
            m = f.labels[sl] == k
            if m.sum() < min_pixels or (near_ignore[sl] & m).any():
                continue
            q = np.where(m, f.cr_charge[sl], 0.0).astype(np.float32)
            if q.sum() <= 0:
                continue
            out.append(Footprint(charge=q, mask=m, morphology=morph.get(k, "spot"), frame=f.index))
    return out


def inject_footprints(rng: np.random.Generator, image: np.ndarray, forbidden: np.ndarray,
                      library: Sequence[Footprint], n: int, *, exclude_frame: int | None = None,
                      max_tries: int = 200) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Paste ``n`` footprints at random free places (not on ``forbidden`` or on each other).

    Returns
    -------
    image, labels, instances
        The image with the charge added, instance ids of the pasted pixels and the instance table.
    """
    img = np.asarray(image, np.float32).copy()
    labels = np.zeros(img.shape, np.int32)
    rows = []
    choices = [fp for fp in library if fp.frame != exclude_frame]
    if not choices:
        return img, labels, empty_instance_table()
    blocked = forbidden.copy()
    h, w = img.shape
    k = 0
    for _ in range(n):
        fp = choices[int(rng.integers(len(choices)))]
        fh, fw = fp.mask.shape
        if fh >= h or fw >= w:
            continue
        for _try in range(max_tries):
            y, x = int(rng.integers(0, h - fh)), int(rng.integers(0, w - fw))
            region = blocked[y:y + fh, x:x + fw]
            if not (region & fp.mask).any():
                k += 1
                img[y:y + fh, x:x + fw] += fp.charge
                labels[y:y + fh, x:x + fw][fp.mask] = k
                blocked[y:y + fh, x:x + fw] |= ndimage.binary_dilation(fp.mask, EIGHT)
                rows.append((k, fp.morphology, f"real-footprint:frame{fp.frame}", fp.pixels,
                             float(fp.charge.sum()), False))
                break
    table = pd.DataFrame(rows, columns=["id", "morphology", "generator", "pixels", "charge", "saturated"]) \
        if rows else empty_instance_table()
    if rows:
        table["id"] = table["id"].astype("int32")
    return img, labels, table


def _paste_on_sources(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, table: pd.DataFrame,
                      f: FrameLabel, library: Sequence[Footprint], n: int, read_noise: float, rule: Any):
    """Paste ``n`` more footprints wholly on the frame's labelled source pixels (stars), with truth by the
    common rule at the local noise (the star's photon noise included). Returns the image, labels, table,
    truth and the halo of those footprints."""
    from crbench.truth import apply_truth_rule

    allowed = f.sources & ~f.ignore
    blocked = ~allowed | ndimage.binary_dilation(lab > 0, EIGHT)
    img2, lab2, table2 = inject_footprints(rng, img, blocked, library, n, exclude_frame=f.index)
    new = lab2 > 0
    offset = int(lab.max()) if lab.size else 0
    labels = np.where(new, lab2 + offset, lab).astype(np.int32)
    signal = np.median(f.exposures_e, axis=0) if len(f.exposures_e) else img
    sigma = np.sqrt(read_noise ** 2 + np.maximum(signal, 0.0))
    charge = (img2 - img).astype(np.float64)
    on_truth, on_halo = apply_truth_rule(np.where(new, charge / sigma, 0.0), new, rule)
    labels = np.where(new & ~on_truth, 0, labels).astype(np.int32)
    truth = (lab > 0) | on_truth
    if len(table2):
        table2 = table2.copy()
        table2["id"] = (table2["id"] + offset).astype("int32")
        kept = set(np.unique(labels[on_truth]).tolist())
        table2 = table2[table2["id"].isin(kept)]
        table2["generator"] = table2["generator"] + ":on-source"
        table = pd.concat([table, table2], ignore_index=True) if len(table) else table2.reset_index(drop=True)
    return img2, labels, table, truth, on_halo


def build(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    """Build ``microobs-hatp32-footprints`` into ``out``.

    Options: ``n_images``, ``exposures``, ``seed``, ``per_frame`` (footprints pasted per frame),
    ``on_sources`` (share of them pasted wholly on labelled source pixels, truth by the common rule at
    the local noise; 0, the default, keeps the standard build).
    """
    from crbench.download import provenance

    check_options(NAME, options, ("n_images", "n_frames", "exposures", "seed", "per_frame", "on_sources"))
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    n_frames = opts.get("n_frames") or opts.get("n_images")
    on_sources = float(opts["on_sources"])
    if not 0.0 <= on_sources <= 1.0:
        raise DatasetError(f"recipe {NAME!r}: on_sources={on_sources!r} must be a share in [0, 1]")
    cube, names, headers, blocks, model, labels = prepare(n_frames, int(opts["exposures"]), progress=progress)
    by_index = {f.index: f for f in labels.frames}
    rng = np.random.default_rng(int(opts["seed"]))
    splits: dict[str, list[str]] = {}
    samples = []
    lib_sizes = {}
    for split, idx in blocks.items():
        frames = [by_index[i] for i in idx]
        library = extract_footprints(frames)
        lib_sizes[split] = len(library)
        ids = []
        for f in stage(frames, f"pasting footprints ({split})", progress):
            if f.rejected:
                continue
            clean = f.image_e - (f.cr_charge if f.cr_charge is not None else 0.0)
            forbidden = f.ignore | f.sources
            n_on = int(rng.binomial(int(opts["per_frame"]), on_sources)) if on_sources > 0 else 0
            img, lab, table = inject_footprints(rng, clean, forbidden, library, int(opts["per_frame"]) - n_on,
                                                exclude_frame=f.index)
            truth = lab > 0
            on_halo = None
            if n_on:
                img, lab, table, truth, on_halo = _paste_on_sources(rng, img, lab, table, f, library, n_on,
                                                                    model.noise.read_noise,
                                                                    labels.params.truth_rule)
            sid = frame_id(names[f.index])
            ids.append(sid)
            meta = frame_meta(model, f.sky_e, headers[f.index], names[f.index])
            meta["label_confidence"] = "real footprints injected (exact placement)"
            # the frame's own halo (real CR charge that failed the truth rule) stays in the cleaned image
            halo = None if f.halo is None else f.halo & ~truth
            if on_halo is not None:
                halo = on_halo if halo is None else (halo | on_halo)
            samples.append(Sample(id=sid, image=img, truth=truth, ignore=f.ignore, labels=lab, instances=table,
                                  dqmask=saturation_dqmask(img, meta["saturation"], tolerance=model.noise.gain),
                                  sources=f.sources, halo=halo, exposures=f.exposures_e if len(f.exposures_e) else None,
                                  meta=meta))
        splits[split] = ids
    extra = {"kind": "injected", "footprint_library_size": lib_sizes, "per_frame": int(opts["per_frame"]),
             "labelling": labels.summary(), "truth_rule": labels.params.truth_rule.to_dict(),
             "method": "confident real CR footprints (>= 2 px, away from ignore) cut with their charge from the "
                       "labelled frames of each split; each frame's own labelled CRs replaced by the companions' "
                       "median; footprints from other frames of the same split pasted away from sources and "
                       "ignore; the pasted charge carries the source frame's noise"}
    prov = [p for p in provenance(DOWNLOAD) if p["file"] in set(names)]
    params: dict[str, Any] = {"n_frames": len(names), "exposures": int(opts["exposures"]), "seed": int(opts["seed"]),
                              "per_frame": int(opts["per_frame"])}
    if on_sources > 0:  # default builds keep the parameters (and card) they always had
        params["on_sources"] = on_sources
        extra["on_sources_rule"] = ("a share on_sources of each frame's footprints pasted wholly on labelled "
                                    "source pixels (not ignored); their truth is the common rule on the "
                                    "footprint charge over the local noise sqrt(read_noise^2 + companions' "
                                    "median), the rest of their pixels above 1 sigma halo")
    return write_dataset(out, iter(samples), name=NAME, splits=splits, recipe=NAME, parameters=params,
                         seed=int(opts["seed"]), provenance=prov, extra=extra, progress=progress)


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


RECIPES.append(Recipe(
    name=NAME,
    description="Real CR footprints from microobs-hatp32 pasted into its cleaned real frames (download)",
    kind="injected",
    build=build,
    defaults={"exposures": 2, "seed": 11, "per_frame": 10},
    requires_download=(DOWNLOAD,),
))
