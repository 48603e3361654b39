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
from crbench.observation import saturation_dqmask
from crbench.recipes import Recipe
from crbench.sample import Sample, empty_instance_table

from ._common import check_options, stage
from .labelling import EIGHT, FrameLabel
from .microobs import DOWNLOAD, frame_id, frame_meta, prepare

NAME = "microobs-hatp32-footprints"
DEFAULTS: dict[str, Any] = {"n_images": None, "exposures": 2, "seed": 11, "per_frame": 10}


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


def build(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    """Build ``microobs-hatp32-footprints`` into ``out``.

    Options: ``n_images``, ``exposures``, ``seed``, ``per_frame`` (footprints pasted per frame).
    """
    from crbench.download import provenance

    check_options(NAME, options, ("n_images", "n_frames", "exposures", "seed", "per_frame"))
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    n_frames = opts.get("n_frames") or opts.get("n_images")
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
            img, lab, table = inject_footprints(rng, clean, forbidden, library, int(opts["per_frame"]),
                                                exclude_frame=f.index)
            truth = lab > 0
            sid = frame_id(names[f.index])
            ids.append(sid)
            meta = frame_meta(model, f.sky_e, headers[f.index], names[f.index])
            meta["label_confidence"] = "real footprints injected (exact placement)"
            # the frame's own halo (real CR charge that failed the truth rule) stays in the cleaned image
            halo = None if f.halo is None else f.halo & ~truth
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
    params = {"n_frames": len(names), "exposures": int(opts["exposures"]), "seed": int(opts["seed"]),
              "per_frame": int(opts["per_frame"])}
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
