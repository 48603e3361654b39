"""Ramp metrics: per-group jump TPR/FPR and the CR charge that leaks into the rate image.

Jump flags follow stcal: ``flags[g]`` marks group ``g`` as the first group after a jump, so truth
difference ``jumps[k]`` (between groups ``k`` and ``k + 1``) is matched with ``flags[k + 1]``.

Slope bias: every ramp is fitted with stcal (:func:`crbench.stcal_bridge.fit_rate`) with (a) the
detector's jump flags, (b) the true jumps, (c) no flags; the leaked charge of a CR is
``sum over its truth pixels of (fit - rate_clean)`` (e-, rate x exposure time), where
``rate_clean`` (CRFREE) is the same fit of the ramp without its CR charge. Halo pixels are not
counted. Image detectors have no per-group flags: their (a) row says ``not applicable``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import CRBenchError
from ..sample import Sample
from ..stcal_bridge import fit_rate

#: Rows are grouped by these instance columns (plus ``all``).
GROUP_BY = ("generator", "morphology")


def jump_rates(truth_jumps: np.ndarray, flags: np.ndarray, *, ignore: np.ndarray | None = None,
               halo: np.ndarray | None = None) -> dict[str, float]:
    """Per-group-difference TP/FP counts and rates of stcal-style group flags against the truth.

    Parameters
    ----------
    truth_jumps : ndarray (G-1, H, W) bool
    flags : ndarray (G, H, W) bool
        ``flags[k + 1]`` answers ``truth_jumps[k]``.
    ignore, halo : ndarray (H, W) bool or None
        Left out of every count (halo pixels only out of the negatives).
    """
    t = np.asarray(truth_jumps, bool)
    f = np.asarray(flags, bool)[1:]
    if f.shape != t.shape:
        raise CRBenchError(f"jump flags have {f.shape[0] + 1} groups, truth has {t.shape[0]} differences "
                           f"(expected {t.shape[0] + 1} groups)")
    keep = np.ones(t.shape[1:], bool) if ignore is None else ~np.asarray(ignore, bool)
    neg_keep = keep if halo is None else keep & ~np.asarray(halo, bool)
    tp = int(np.count_nonzero(f & t & keep))
    p = int(np.count_nonzero(t & keep))
    fp = int(np.count_nonzero(f & ~t & neg_keep))
    n = int(np.count_nonzero(~t & neg_keep))
    return {"tp": tp, "positives": p, "fp": fp, "negatives": n,
            "jump_tpr": tp / p if p else float("nan"), "jump_fpr": fp / n if n else float("nan")}


def fit_image(sample: Sample, flags: np.ndarray | None) -> np.ndarray:
    """stcal rate x exposure time of ``sample.ramp`` with jump ``flags`` (G, H, W) or none."""
    m = sample.meta
    need = ("group_time", "frame_time", "nframes", "groupgap", "exptime")
    missing = [k for k in need if k not in m]
    if sample.ramp is None or missing:
        raise CRBenchError(f"sample {sample.id!r}: the slope bias needs a ramp and meta {missing or list(need)}")
    rate = fit_rate(sample.ramp, read_noise=sample.read_noise, group_time=m["group_time"],
                    frame_time=m["frame_time"], nframes=int(m["nframes"]), groupgap=int(m["groupgap"]),
                    saturation=sample.saturation - sample.gain, jumps=flags)
    return rate * float(m["exptime"])


def leaked_charge(sample: Sample, image: np.ndarray) -> pd.DataFrame:
    """Per truth CR: ``id``, ``charge`` (true, e-), ``leaked`` = sum of (image - rate_clean) on its truth pixels."""
    if sample.rate_clean is None or sample.labels is None:
        raise CRBenchError(f"sample {sample.id!r}: the slope bias needs CRFREE (rate_clean) and CRLABEL")
    lab = sample.labels.ravel()
    sel = lab > 0
    ids, inv = np.unique(lab[sel], return_inverse=True)
    leak = np.bincount(inv, weights=(np.asarray(image, float) - sample.rate_clean).ravel()[sel], minlength=len(ids))
    table = pd.DataFrame({"id": ids.astype(np.int32), "leaked": leak})
    inst = sample.instances
    return table.merge(inst[[c for c in ("id", "charge", *GROUP_BY) if c in inst.columns]], on="id", how="left")


def _summarise(per_cr: pd.DataFrame, detector: str, flags: str, status: str = "ok") -> list[dict]:
    rows = []
    groups: list[tuple[str, str, pd.DataFrame]] = [("all", "all", per_cr)]
    for col in GROUP_BY:
        if col in per_cr:
            groups += [(col, str(v), d) for v, d in per_cr.groupby(col)]
    for by, value, d in groups:
        charge = float(d["charge"].sum()) if len(d) else 0.0
        rows.append({"detector": detector, "flags": flags, "group_by": by, "group": value, "n_crs": int(len(d)),
                     "cr_charge_e": charge, "leaked_e": float(d["leaked"].sum()),
                     "leaked_fraction": float(d["leaked"].sum()) / charge if charge > 0 else float("nan"),
                     "median_leaked_per_cr_e": float(d["leaked"].median()) if len(d) else float("nan"),
                     "status": status})
    return rows


def slope_bias_table(results_dir: str | Path | None, dataset, detectors: Iterable, *,
                     split: str = "test") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slope-bias and jump-rate tables of ``detectors`` on a ramp dataset's ``split``.

    Writes ``slope_bias.csv`` and ``ramp_jumps.csv`` into ``results_dir`` when given.

    Returns
    -------
    bias, jumps : DataFrame
        ``bias``: one row per (detector or reference, flags, group): ``flags`` is ``detector``
        (a), ``truth`` (b) or ``none`` (c). ``jumps``: per-detector jump TP/FP counts and rates.
    """
    from ..dataset import Dataset
    from ..detectors.registry import get_detector
    from ..recipes import resolve_dataset

    ds = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset, build_missing=False, progress=False)
    dets = [get_detector(d) for d in detectors]
    refs: dict[str, list] = {"truth": [], "none": []}
    per_det: dict[str, list] = {d.name: [] for d in dets}
    jump_counts: dict[str, list] = {d.name: [] for d in dets if hasattr(d, "jump_flags")}
    for sid in ds.ids(split):
        s = ds.load(sid)
        if s.jumps is None or s.ramp is None:
            raise CRBenchError(f"dataset {ds.name!r} sample {sid!r}: no JUMPS/RAMP; slope bias needs a ramp dataset")
        true_flags = np.concatenate([np.zeros((1,) + s.shape, bool), s.jumps], axis=0)
        refs["truth"].append(leaked_charge(s, fit_image(s, true_flags)))
        refs["none"].append(leaked_charge(s, fit_image(s, None)))
        obs = s.observation()
        for d in dets:
            if hasattr(d, "jump_flags"):
                f = np.asarray(d.jump_flags(obs), bool)
                per_det[d.name].append(leaked_charge(s, fit_image(s, f)))
                jump_counts[d.name].append(jump_rates(s.jumps, f, ignore=s.ignore, halo=s.halo))
    rows = []
    for d in dets:
        if per_det[d.name]:
            rows += _summarise(pd.concat(per_det[d.name], ignore_index=True), d.name, "detector")
        else:
            rows += _summarise(pd.concat(refs["none"], ignore_index=True).iloc[:0], d.name, "detector",
                               status="not applicable: no per-group jump flags (image detector)")
    rows += _summarise(pd.concat(refs["truth"], ignore_index=True), "(reference)", "truth")
    rows += _summarise(pd.concat(refs["none"], ignore_index=True), "(reference)", "none")
    bias = pd.DataFrame(rows)
    jrows = []
    for name, counts in jump_counts.items():
        tot = {k: sum(c[k] for c in counts) for k in ("tp", "positives", "fp", "negatives")}
        jrows.append({"detector": name, **tot,
                      "jump_tpr": tot["tp"] / tot["positives"] if tot["positives"] else float("nan"),
                      "jump_fpr": tot["fp"] / tot["negatives"] if tot["negatives"] else float("nan")})
    jumps = pd.DataFrame(jrows, columns=["detector", "tp", "positives", "fp", "negatives", "jump_tpr", "jump_fpr"])
    if results_dir is not None:
        from ..atomic import atomic_path

        out = Path(results_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (("slope_bias.csv", bias), ("ramp_jumps.csv", jumps)):
            with atomic_path(out / name) as tmp:
                table.to_csv(tmp, index=False)
    return bias, jumps


def is_ramp_dataset(dataset) -> bool:
    """True when the first sample of ``dataset`` (name, folder or Dataset) carries JUMPS."""
    from ..dataset import Dataset
    from ..recipes import resolve_dataset

    try:
        ds = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset, build_missing=False, progress=False)
        ids = ds.ids()
        return bool(ids) and ds.load(ids[0], load_companions=False).jumps is not None
    except CRBenchError:
        return False
