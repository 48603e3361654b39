"""``kast-science``: two real Kast blue spectrograph frames (b27 1200 s, b24 30 s), lower-confidence labels.

There is no second exposure of the same field, so labels come from a documented single-frame
procedure (:func:`single_frame_labels`), flagged as lower confidence in the card:

1. overscan-subtracted, trimmed frame in electrons (gain 1.2 e-/ADU, read noise 3.7 e-);
2. a CR-free model = the larger of a 1x15 median along rows and a 15x1 median along columns: sky
   lines (extended along the slit) survive one, the object trace (extended along the dispersion)
   the other, a CR shorter than 8 px in both directions survives neither;
3. SNR = (frame - model) / sqrt(rn^2 + max(model, 0)); seeds at SNR > 5, grown by up to 5
   dilations inside SNR > 2.5;
4. components with peak SNR >= ``confident_snr`` (default 10) are truth; weaker ones, components
   touching bright spectral features (model > 20 sigma above the background) and a 4 px border are
   ignored.

This is not an astroscrappy/LACosmic mask, so LACosmic is not scored against itself, but labels
rest on one frame and a model: treat scores on this set as indicative.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from crbench.dataset import Dataset, write_dataset
from crbench.observation import saturation_dqmask
from crbench.recipes import Recipe
from crbench.sample import Sample

from ._common import check_options, read_fits_image
from .controls import KAST_DOWNLOAD, KAST_GAIN, KAST_READ_NOISE, kast_calibrate
from .labelling import EIGHT, LabelParams, border_mask, instance_table, seeds_and_growth

NAME = "kast-science"
FRAMES = {"b27.fits.gz": 1200.0, "b24.fits.gz": 30.0}
PROCEDURE: dict[str, Any] = {"model": "max(median 1x15 along rows, median 15x1 along columns)", "seed_snr": 5.0,
                              "grow_snr": 2.5, "grow_iterations": 5, "confident_snr": 10.0, "feature_snr": 20.0,
                              "border": 4, "window": 15}


def single_frame_labels(image_e: np.ndarray, read_noise: float, *, saturation: float = np.inf,
                        window: int = 15, seed_snr: float = 5.0, grow_snr: float = 2.5, grow_iterations: int = 5,
                        confident_snr: float = 10.0, feature_snr: float = 20.0, border: int = 4
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Single-frame CR labels of a long-slit spectrum (module docstring).

    Returns
    -------
    truth, ignore, sources, deviation
        Confident CR pixels, ignored pixels, bright spectral features, and frame minus model (e-).
    """
    img = np.asarray(image_e, np.float32)
    model = np.maximum(ndimage.median_filter(img, size=(1, window)), ndimage.median_filter(img, size=(window, 1)))
    sigma = np.sqrt(read_noise ** 2 + np.maximum(model, 0.0))
    snr = (img - model) / sigma
    bkg = float(np.median(model))
    sources = (model - bkg) > feature_snr * np.sqrt(read_noise ** 2 + max(bkg, 0.0))
    sources = ndimage.binary_dilation(sources, EIGHT, iterations=2)
    p = LabelParams(seed_snr=seed_snr, grow_snr=grow_snr, grow_iterations=grow_iterations)
    _, grown = seeds_and_growth(snr, p)
    lab, n = ndimage.label(grown, EIGHT)
    ignore = border_mask(img.shape, border) | (img >= saturation)
    truth = np.zeros(img.shape, bool)
    if n:
        idx = np.arange(1, n + 1)
        peak = ndimage.maximum(snr, lab, idx)
        on_src = ndimage.maximum(sources, lab, idx).astype(bool)
        on_ign = ndimage.maximum(ignore, lab, idx).astype(bool)
        good = (peak >= confident_snr) & ~on_src & ~on_ign
        truth = np.isin(lab, idx[good])
        ignore |= np.isin(lab, idx[~good]) & grown
    return truth, ignore, sources, img - model


def build(out: Path, *, progress: bool = True, **options: Any) -> Dataset:
    """Build ``kast-science`` (both frames in ``test``)."""
    from crbench.download import download, provenance

    check_options(NAME, options, ("seed",))
    folder = download(KAST_DOWNLOAD, progress=progress)
    samples, ids = [], []
    saturation = float(65535 * KAST_GAIN)
    for fname, exptime in FRAMES.items():
        raw, hdr = read_fits_image(folder / fname)
        img = kast_calibrate(raw)
        truth, ignore, sources, dev = single_frame_labels(
            img, KAST_READ_NOISE, saturation=saturation, **{k: v for k, v in PROCEDURE.items() if k != "model"})
        labels, table = instance_table(truth, dev)
        sid = f"kast-{fname.split('.')[0]}"
        ids.append(sid)
        meta = {"gain": KAST_GAIN, "read_noise": KAST_READ_NOISE, "sky": float(np.median(img)),
                "exptime": float(hdr.get("EXPTIME", exptime)), "saturation": saturation,
                "instrument": "Lick Kast blue (long-slit spectrograph)", "pixel_scale": 0.43, "psf_fwhm": 2.5,
                "source_file": fname, "object": str(hdr.get("OBJECT", "")),
                "label_confidence": "lower: single-frame procedure"}
        samples.append(Sample(id=sid, image=img, truth=truth, ignore=ignore, labels=labels, instances=table,
                              dqmask=saturation_dqmask(img, saturation),
                              sources=sources, meta=meta))
    prov = [p for p in provenance(KAST_DOWNLOAD) if p["file"] in FRAMES]
    rule = LabelParams(seed_snr=PROCEDURE["seed_snr"], grow_snr=PROCEDURE["grow_snr"],
                       grow_iterations=PROCEDURE["grow_iterations"]).truth_rule
    extra = {"kind": "real", "label_confidence": "lower", "truth_rule": rule.to_dict(),
             "labelling": {"procedure": "single-frame directional-median model (see data_recipes.real.kast)",
                           **PROCEDURE},
             "caveats": "one frame per field: labels rest on a smooth model of the spectrum, not on a second "
                        "exposure; faint CRs (peak SNR < 10) and CRs on bright spectral features are ignored"}
    return write_dataset(out, iter(samples), name=NAME, splits={"train": [], "val": [], "test": ids}, recipe=NAME,
                         parameters={}, seed=None, provenance=prov, extra=extra, progress=progress)


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


RECIPES.append(Recipe(
    name=NAME,
    description="2 real Kast blue spectra (1200 s, 30 s) with lower-confidence single-frame CR labels (download)",
    kind="real", build=build, defaults={}, requires_download=(KAST_DOWNLOAD,)))
