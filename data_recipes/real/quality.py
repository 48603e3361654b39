"""Label quality of the multi-exposure pipeline, measured by injecting simulated CRs into real frames.

Simulated CRs (``data_recipes.sim``, the matching preset) are added to the raw frames, the whole
labelling pipeline runs again, and its labels are compared with the injected truth:

- **completeness**: share of injected CR pixels (outside the ignore mask) that get labelled, and
  share of injected CRs with at least half of their valid pixels labelled;
- **purity**: share of newly labelled pixels (outside the CRs the clean run already found) that are
  injected CR pixels;
- **ignored**: share of injected CR pixels that the pipeline sent to the ignore mask;

overall and per morphology (the simulator's class for completeness, the geometric class of the
labelled component for purity).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from crbench.sample import MORPHOLOGIES

from ._common import simulate_cr_layer, stage
from .labelling import EIGHT, LabelParams, SeriesLabels, SeriesModel, classify_morphology, label_series


def measure_label_quality(frames_adu: np.ndarray, clean: SeriesLabels, *, model: SeriesModel,
                          params: LabelParams, blocks: Sequence[Sequence[int]] | None, exptime: float,
                          seed: int = 0, preset: str = "ground-small", rate_boost: float = 50.0,
                          progress: bool = False) -> dict[str, Any]:
    """Inject simulated CRs, relabel, and score the labels against the injected truth.

    Parameters
    ----------
    frames_adu : ndarray (N, H, W)
        The raw series (ADU).
    clean : SeriesLabels
        The labelling of the series without injection (its CRs are excluded from purity).
    model : SeriesModel
        The series model used for ``clean`` (alignment, noise).
    params, blocks
        As for :func:`label_series`.
    exptime : float
        Exposure time (s) given to the simulator, multiplied by ``rate_boost`` for statistics.
    seed : int
        Random seed of the injection.
    preset : str
        Simulator preset.
    progress : bool
        Show progress bars, named ``label quality: ...`` (this is the build's second labelling pass).

    Returns
    -------
    dict
        Completeness, purity and ignored share, overall and per morphology, plus the method.
    """
    rng = np.random.default_rng(seed)
    raw = np.asarray(frames_adu, np.float32)
    n, h, w = raw.shape
    g, rn = model.noise.gain, model.noise.read_noise
    injected = np.zeros_like(raw)
    layers = {}
    labelled_idx = [f.index for f in clean.frames]
    generator = ""
    for i in stage(labelled_idx, "label quality: injecting simulated CRs", progress):
        sky_e = max((model.sky_adu[i] - model.noise.bias) * g, 0.0)
        layer = simulate_cr_layer(rng, (h, w), exptime, noise_sigma=float(np.sqrt(rn ** 2 + sky_e)),
                                  preset=preset, rate_scale=rate_boost)
        injected[i] = (layer.charge / g).astype(np.float32)
        layers[i] = layer
        generator = layer.generator
    inj = label_series(raw, params=params, blocks=blocks, model=model, injected=injected,
                       n_exposures=0, progress=progress, stage_name="label quality: relabelling")
    by_index = {f.index: f for f in inj.frames}
    clean_by = {f.index: f for f in clean.frames}
    tot = {"inj_valid": 0, "inj_lab": 0, "inj_all": 0, "inj_ignored": 0, "new_lab": 0, "new_true": 0}
    per = {m: {"n_injected": 0, "n_detected": 0, "pixels": 0, "pixels_labelled": 0,
               "n_labelled": 0, "n_labelled_true": 0} for m in MORPHOLOGIES}
    for i in labelled_idx:
        f, layer = by_index[i], layers[i]
        truth_inj = layer.truth
        valid = ~f.ignore
        lab = f.truth
        old = ndimage.binary_dilation(clean_by[i].truth, EIGHT)
        tot["inj_all"] += int(truth_inj.sum())
        tot["inj_ignored"] += int((truth_inj & ~valid).sum())
        tot["inj_valid"] += int((truth_inj & valid).sum())
        tot["inj_lab"] += int((truth_inj & valid & lab).sum())
        new = lab & ~old
        tot["new_lab"] += int(new.sum())
        tot["new_true"] += int((new & truth_inj).sum())
        # per injected instance (simulator's morphology)
        if len(layer.instances):
            ids = layer.instances["id"].to_numpy()
            morph = dict(zip(ids.tolist(), layer.instances["morphology"].astype(str).tolist()))
            lbl = layer.labels
            idx = np.asarray(ids)
            n_valid = ndimage.sum(truth_inj & valid, lbl, idx)
            n_hit = ndimage.sum(truth_inj & valid & lab, lbl, idx)
            for k, nv, nh in zip(idx.tolist(), n_valid, n_hit):
                m = morph.get(k, "spot")
                if m not in per or nv <= 0:
                    continue
                per[m]["n_injected"] += 1
                per[m]["n_detected"] += int(nh >= 0.5 * nv)
                per[m]["pixels"] += int(nv)
                per[m]["pixels_labelled"] += int(nh)
        # per labelled component (geometric class)
        comp, nc = ndimage.label(new, EIGHT)
        if nc:
            classes = classify_morphology(comp.astype(np.int32), nc)
            hit = ndimage.maximum(truth_inj, comp, np.arange(1, nc + 1)).astype(bool)
            for c, t in zip(classes, hit):
                if c in per:
                    per[c]["n_labelled"] += 1
                    per[c]["n_labelled_true"] += int(t)

    def ratio(a: int, b: int) -> float | None:
        return float(a / b) if b else None

    per_out = {}
    for m, d in per.items():
        per_out[m] = {
            "n_injected": d["n_injected"],
            "instance_completeness": ratio(d["n_detected"], d["n_injected"]),
            "pixel_completeness": ratio(d["pixels_labelled"], d["pixels"]),
            "n_labelled": d["n_labelled"],
            "purity": ratio(d["n_labelled_true"], d["n_labelled"]),
        }
    n_inst = sum(d["n_injected"] for d in per.values())
    return {
        "method": ("simulated CRs injected into the raw frames (charge / gain, ADU), full pipeline rerun; "
                   "completeness over injected pixels outside ignore; purity over labelled pixels outside the "
                   "clean run's CRs (dilated 1 px); instance detected when >= 50% of its valid pixels are labelled"),
        "generator": generator,
        "preset": preset,
        "exptime": float(exptime),
        "rate_boost": float(rate_boost),
        "seed": int(seed),
        "n_frames": len(labelled_idx),
        "n_injected_crs": int(n_inst),
        "pixel_completeness": ratio(tot["inj_lab"], tot["inj_valid"]),
        "instance_completeness": ratio(sum(d["n_detected"] for d in per.values()), n_inst),
        "pixel_purity": ratio(tot["new_true"], tot["new_lab"]),
        "ignored_fraction": ratio(tot["inj_ignored"], tot["inj_all"]),
        "per_morphology": per_out,
    }


def format_quality(q: dict[str, Any]) -> str:
    """A small text table of a label-quality result."""
    def f(x: Any) -> str:
        return "  -  " if x is None else f"{x:.3f}"

    lines = [f"label quality ({q['n_injected_crs']} injected CRs in {q['n_frames']} frames, {q['generator']})",
             f"pixel completeness {f(q['pixel_completeness'])}  instance completeness "
             f"{f(q['instance_completeness'])}  pixel purity {f(q['pixel_purity'])}  ignored {f(q['ignored_fraction'])}",
             f"{'morphology':10s} {'n_inj':>6s} {'inst_compl':>10s} {'pix_compl':>9s} {'n_lab':>6s} {'purity':>7s}"]
    for m, d in q["per_morphology"].items():
        lines.append(f"{m:10s} {d['n_injected']:6d} {f(d['instance_completeness']):>10s} "
                     f"{f(d['pixel_completeness']):>9s} {d['n_labelled']:6d} {f(d['purity']):>7s}")
    return "\n".join(lines)
