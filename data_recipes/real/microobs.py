"""``microobs-hatp32``: 142 real 60 s frames of HAT-P-32 labelled by multi-exposure comparison.

MicroObservatory 'Cecilia' (6-inch robotic telescope, Whipple Obs.), 2017-12-20, 650x500 12-bit
frames, 5.2"/px, warm CCD without darks and without GAIN/RDNOISE keywords. Labels come from
:mod:`data_recipes.real.labelling` (gain, read noise and bias are estimated from the series); their
purity and completeness are measured independently (:mod:`data_recipes.real.quality`).

Splits are contiguous blocks in time (60/20/20 %, one frame dropped at each boundary) and a frame's
companions (stored ``exposures`` and those used to label it) come only from its own block.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crbench.dataset import Dataset, write_dataset
from crbench.observation import saturation_dqmask
from crbench.recipes import Recipe
from crbench.sample import Sample

from ._common import check_options, read_fits_image, stage, time_blocks
from .labelling import LabelParams, SeriesLabels, SeriesModel, fit_series_model, label_series

NAME = "microobs-hatp32"
DOWNLOAD = "microobs-hatp32"
EXPTIME = 60.0
SATURATION_ADU = 4095.0
PIXEL_SCALE = 5.21
EXPOSURES_RULE = ("stored EXPOSURES are the frame's nearest frames in its block; the labels compared the frame "
                  "against the next nearest (labelling companions), disjoint from the stored ones, so the "
                  "median detector does not reuse the frames that made the labels")
DEFAULTS: dict[str, Any] = {"n_images": None, "exposures": 2, "seed": 4, "label_quality": True}
CAVEATS = ("Labels come from a multi-exposure noise-model comparison, not from a human: single-pixel "
           "events, CRs on unstable sources (companions scatter beyond the noise) and CRs on vetoed "
           "hot/flickering pixels are in the ignore mask, not in truth; CRs on stable sources are labelled. Gain and read noise are estimated from the data (no header values, no darks). Licence: "
           "none stated (NASA Exoplanet Watch sample data): reference by URL, do not redistribute derived files.")


def load_series(folder: Path, n_frames: int | None = None, *, progress: bool = False
                ) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    """The series as an (N, H, W) float32 ADU stack in time order, with file names and headers."""
    files = sorted(Path(folder).glob("HATP-32*.FITS"))
    if not files:
        from crbench.errors import DatasetError

        raise DatasetError(f"{folder}: no HATP-32*.FITS frames; run 'crbench datasets download {DOWNLOAD}'")
    items = []
    for f in stage(files, "reading frames", progress):
        data, hdr = read_fits_image(f)
        items.append((str(hdr.get("UT-OBS", f.name)), f.name, data, hdr))
    items.sort(key=lambda t: t[0])
    if n_frames is not None:
        items = items[: int(n_frames)]
    cube = np.stack([t[2] for t in items])
    return cube, [t[1] for t in items], [t[3] for t in items]


def frame_id(fname: str) -> str:
    """Sample id of a frame: ``hatp32-<yymmddHHMMSS>``."""
    return "hatp32-" + fname.split("HATP-32", 1)[1].split(".")[0]


def prepare(n_frames: int | None, exposures: int, *, progress: bool, params: LabelParams | None = None
            ) -> tuple[np.ndarray, list[str], list[dict[str, Any]], dict[str, list[int]], SeriesModel, SeriesLabels]:
    """Download, load, fit the series model and label every frame (shared by the real-data recipes)."""
    from crbench.download import download

    folder = download(DOWNLOAD, progress=progress)
    cube, names, headers = load_series(folder, n_frames, progress=progress)
    p = params or LabelParams(saturation_adu=SATURATION_ADU)
    blocks = time_blocks(len(cube))
    model = fit_series_model(cube, params=p, progress=progress)
    labels = label_series(cube, params=p, blocks=list(blocks.values()), model=model, n_exposures=exposures,
                          progress=progress)
    return cube, names, headers, blocks, model, labels


def frame_meta(model: SeriesModel, sky_e: float, header: dict[str, Any], fname: str) -> dict[str, Any]:
    nz = model.noise
    return {
        "gain": nz.gain,
        "read_noise": nz.read_noise,
        "sky": sky_e,
        "exptime": float(header.get("EXPTIME", EXPTIME)),
        "saturation": float((SATURATION_ADU - nz.bias) * nz.gain),
        "instrument": "MicroObservatory Cecilia (KAF CCD, 12-bit)",
        "pixel_scale": PIXEL_SCALE,
        "psf_fwhm": 1.6,
        "date_obs": str(header.get("UT-OBS", "")),
        "source_file": fname,
        "label_confidence": "multi-exposure",
    }


def build(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    """Build ``microobs-hatp32`` into ``out``.

    Options: ``n_images`` (first N frames in time; default all 142), ``exposures`` (aligned
    companions stored per sample, default 2), ``seed`` (label-quality injection),
    ``label_quality`` (measure it, default True).
    """
    from crbench.download import provenance

    check_options(NAME, options, ("n_images", "n_frames", "exposures", "seed", "label_quality"))
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    n_frames = opts.get("n_frames") or opts.get("n_images")
    cube, names, headers, blocks, model, labels = prepare(n_frames, int(opts["exposures"]), progress=progress)
    by_index = {f.index: f for f in labels.frames}
    splits: dict[str, list[str]] = {}
    samples = []
    for split, idx in blocks.items():
        ids = []
        for i in idx:
            f = by_index[i]
            if f.rejected:
                continue
            sid = frame_id(names[i])
            ids.append(sid)
            meta = frame_meta(model, f.sky_e, headers[i], names[i])
            samples.append(Sample(id=sid, image=f.image_e, truth=f.truth, ignore=f.ignore, labels=f.labels,
                                  instances=f.instances, sources=f.sources, halo=f.halo,
                                  exposures=f.exposures_e if len(f.exposures_e) else None, meta=meta,
                                  dqmask=saturation_dqmask(f.image_e, meta["saturation"], tolerance=model.noise.gain)))
        splits[split] = ids
    quality = None
    if opts.get("label_quality"):
        from .quality import measure_label_quality

        quality = measure_label_quality(cube, labels, model=model, params=labels.params,
                                        blocks=list(blocks.values()), exptime=EXPTIME, seed=int(opts["seed"]),
                                        progress=progress)
    files = set(names)
    prov = [p for p in provenance(DOWNLOAD) if p["file"] in files]
    extra = {
        "kind": "real",
        "labelling": labels.summary(),
        "truth_rule": labels.params.truth_rule.to_dict(),
        "label_quality": quality,
        "exposures_rule": (EXPOSURES_RULE if labels.params.disjoint_exposures else
                           "stored EXPOSURES are among the frames the labels compared against (circular)"),
        "circular": not labels.params.disjoint_exposures,
        "split_rule": "contiguous time blocks 60/20/20 %, 1 frame dropped at each boundary; companions from the same block",
        "dropped_frames": [frame_id(names[i]) for i in range(len(names)) if not any(i in b for b in blocks.values())],
        "rejected_frames": [frame_id(names[i]) for i in labels.rejected],
        "caveats": CAVEATS,
        "licence": prov[0]["licence"] if prov else None,
        "units": "electrons (ADU - estimated bias) x estimated gain; static detector pattern removed",
    }
    params = {"n_frames": len(names), "exposures": int(opts["exposures"]), "seed": int(opts["seed"]),
              "label_quality": bool(opts.get("label_quality"))}
    return write_dataset(out, iter(samples), name=NAME, splits=splits, recipe=NAME, parameters=params,
                         seed=int(opts["seed"]), provenance=prov, extra=extra, progress=progress)


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


RECIPES.append(Recipe(
    name=NAME,
    description="142 real MicroObservatory 60 s frames (HAT-P-32) with multi-exposure CR labels (download)",
    kind="real",
    build=build,
    defaults={"exposures": 2, "seed": 4},
    requires_download=(DOWNLOAD,),
))
