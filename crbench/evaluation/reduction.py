"""Reduction: successful records of one run -> summary, curve, operating points, morphology rows.

Operating points: a threshold is chosen on the validation split (for a target FPR, or the best
Dice) and applied unchanged to the evaluated split; per-CR metrics, false positives on sources and
false-positive components are reported there. Without a separate validation split the threshold
is chosen on the evaluated split itself (recorded as in-sample) and false-positive components,
which need the threshold while the score map exists, are not available.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from ..conventions import Conventions
from ..metrics import Binning, curve_from_histograms, summarize
from ..metrics.bootstrap import interval, replicate_weights
from ..metrics.curves import ConfusionCurve
from ..metrics.instances import PER_CR_RULES, per_cr_recall
from ..metrics.operating import (
    canonical_operating_point,
    choose_threshold,
    rates_at,
    reached,
    threshold_value,
)
from ..metrics.protocols import protocol_summary
from ..metrics.sources import SNR_EDGES
from ..metrics.summary import NOT_REACHED, tpr_at_fpr
from ..metrics.wilson import MIN_RANKABLE_CRS, wilson_interval
from ..sample import MORPHOLOGIES
from .records import SampleRecord

#: FPR of the per-morphology pixel TPR column.
MORPHOLOGY_FPR = 5e-4
#: An operating point's achieved FPR is flagged (``op_fpr_off_target``) when it differs from the
#: target by more than this fraction of the target.
OP_FPR_TOLERANCE = 0.25


class _Stacks:
    """The records of one run, stacked for weighted reduction (weights = bootstrap replicate)."""

    def __init__(self, records: Sequence[SampleRecord], n_bins: int) -> None:
        self.n = len(records)
        self.n_bins = n_bins
        self.POS = np.stack([r.pos for r in records]).astype(np.float64)
        self.NEG = np.stack([r.neg for r in records]).astype(np.float64)
        self.npix = np.array([r.n_pixels for r in records], dtype=np.float64)
        self.seconds = np.array([r.seconds for r in records], dtype=np.float64)
        src = [r.neg_src for r in records]
        self.has_src = any(s is not None for s in src)
        self.NEG_SRC = (np.stack([s if s is not None else np.zeros(n_bins, np.int64) for s in src]).astype(np.float64)
                        if self.has_src else None)
        # instance tables with the record index
        tabs = [(i, r.instances) for i, r in enumerate(records) if r.instances is not None and len(r.instances)]
        self.has_inst = any(r.instances is not None for r in records)
        if tabs:
            self.inst = pd.concat([t.assign(rec=i) for i, t in tabs], ignore_index=True)
        else:
            self.inst = pd.DataFrame({"rec": pd.Series([], dtype="int64"), "morphology": pd.Series([], dtype=object),
                                      "pixels": [], "charge": [], "bin_any": [], "bin_half": [], "bin_charge90": []})
        ch = [(i, r.charge_hist) for i, r in enumerate(records) if r.charge_hist is not None]
        self.ch_rec = np.concatenate([np.full(len(h[0]), i) for i, h in ch]) if ch else np.zeros(0, int)
        self.ch_bin = np.concatenate([h[0] for _, h in ch]) if ch else np.zeros(0, int)
        self.ch_q = np.concatenate([h[1] for _, h in ch]) if ch else np.zeros(0)
        mp_: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for i, r in enumerate(records):
            for m, (idx, cnt) in r.morph_pos.items():
                mp_.setdefault(m, []).append((np.full(len(idx), i), idx, cnt))
        self.morph: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
            m: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts])) for m, parts in mp_.items()}
        st = [(i, r.sources) for i, r in enumerate(records) if r.sources is not None and len(r.sources)]
        self.has_sources = any(r.sources is not None for r in records)
        self.src = pd.concat([t.assign(rec=i) for i, t in st], ignore_index=True) if st else None
        names = sorted({k for r in records for k in r.fp_components})
        self.fp_names = names
        self.FP = {k: np.array([r.fp_components.get(k, np.nan) for r in records], dtype=np.float64) for k in names}

    # --- weighted pooled pieces
    def pos_neg(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return w @ self.POS, w @ self.NEG

    def morph_pos(self, m: str, w: np.ndarray) -> np.ndarray:
        rec, idx, cnt = self.morph[m]
        return np.bincount(idx, weights=w[rec] * cnt, minlength=self.n_bins)


def _pixel_summary(stacks: _Stacks, w: np.ndarray, binning: Binning, conventions: Conventions,
                   per_image: list[dict[str, Any]] | None, floor_point: bool = False) -> tuple[ConfusionCurve, dict[str, Any]]:
    pos, neg = stacks.pos_neg(w)
    curve = curve_from_histograms(np.rint(pos).astype(np.int64), np.rint(neg).astype(np.int64), binning)
    floor = floor_point and (pos[0] + neg[0]) > 0
    if conventions.pooling == "pooled" or per_image is None:
        summary = summarize(curve, floor_point=floor)
    else:
        summary = {}
        for k, v0 in per_image[0].items():
            if isinstance(v0, (str, bool)):
                continue
            v = np.array([p[k] for p in per_image], dtype=float)
            ok = np.isfinite(v) & (w > 0)
            summary[k] = float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")
            if not ok.any():
                summary[f"{k}_status"] = f"{NOT_REACHED} on any image"
        summary["roc_auc_extrapolated"] = bool(floor)
    summary.update(protocol_summary(conventions.protocol, curve, stacks.POS, stacks.NEG, binning.lower_edges(), w))
    summary = {k: v for k, v in summary.items() if not (k.endswith("_status") and v == "ok")}
    n_pos, n_all = pos.sum(), pos.sum() + neg.sum()
    summary["cr_pixel_fraction"] = float(n_pos / n_all) if n_all else float("nan")
    mpix = float(w @ stacks.npix) / 1e6
    summary["seconds_per_mpix"] = float(w @ stacks.seconds) / mpix if mpix else float("nan")
    return curve, summary


def _op_metrics(stacks: _Stacks, w: np.ndarray, t: int, name: str) -> dict[str, Any]:
    """Every operating-point number at bin threshold ``t`` (flat dict); NaN with ``op_status`` when
    the threshold flags nothing (not reached)."""
    pos, neg = stacks.pos_neg(w)
    ok = reached(t, pos, neg)
    nan = float("nan")
    out: dict[str, Any] = {f"op_{k}": (v if ok else nan) for k, v in rates_at(pos, neg, t).items()}
    if not ok:
        out["op_status"] = f"{NOT_REACHED}: no threshold meets the rule (it would flag nothing)"
    if stacks.has_inst:
        inst = stacks.inst
        wi = w[inst["rec"].to_numpy()] if len(inst) else np.zeros(0)
        rec = per_cr_recall(inst, t, wi)
        out["n_crs"] = rec["n_crs"]
        for rule, _ in PER_CR_RULES:
            out[rule] = rec[rule] if ok else nan
            out[f"{rule}_found"] = rec[f"{rule}_found"] if ok else nan
        wq = w[stacks.ch_rec] * stacks.ch_q
        total_q = float(wq.sum())
        out["residual_charge_e"] = float(wq[stacks.ch_bin < t].sum()) if ok else nan
        out["residual_charge_fraction"] = (out["residual_charge_e"] / total_q if total_q and ok else nan)
    if name in stacks.FP and ok:
        mpix = float(w @ stacks.npix) / 1e6
        out["fp_components_per_mpix"] = float(w @ stacks.FP[name]) / mpix if mpix else nan
    else:
        out["fp_components_per_mpix"] = nan
    if stacks.has_sources:
        if stacks.src is not None:
            ws = w[stacks.src["rec"].to_numpy()]
            flagged = stacks.src["bin_max"].to_numpy() >= t
            out["n_sources"] = float(ws.sum())
            out["source_flag_fraction"] = float(ws @ flagged) / ws.sum() if ws.sum() and ok else nan
        else:
            out["n_sources"], out["source_flag_fraction"] = 0.0, nan
        if stacks.NEG_SRC is not None:
            ns = w @ stacks.NEG_SRC
            sky = neg - ns
            out["fpr_sources"] = float(ns[t:].sum() / ns.sum()) if ns.sum() and ok else nan
            out["fpr_sky"] = float(sky[t:].sum() / sky.sum()) if sky.sum() and ok else nan
    return out


def _wilson_columns(row: dict[str, Any]) -> None:
    """``<rule>_lo``/``_hi`` Wilson 95% intervals of the per-CR recalls (found out of n_crs)."""
    if "n_crs" not in row:
        return
    n = row.get("n_crs")
    for rule, _ in PER_CR_RULES:
        k = row.get(f"{rule}_found")
        if n is None or k is None or not np.isfinite(k) or not n:
            row[f"{rule}_lo"], row[f"{rule}_hi"] = float("nan"), float("nan")
            continue
        row[f"{rule}_lo"], row[f"{rule}_hi"] = wilson_interval(round(k), round(n))


def _by_snr(stacks: _Stacks, t: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if stacks.src is None:
        return rows
    snr = stacks.src["snr"].to_numpy()
    flagged = stacks.src["bin_max"].to_numpy() >= t
    for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:]):
        sel = (snr >= lo) & (snr < hi)
        k = int(sel.sum())
        rows.append({"snr_lo": float(lo), "snr_hi": float(hi) if np.isfinite(hi) else None, "n_sources": k,
                     "flag_fraction": float(flagged[sel].mean()) if k else float("nan")})
    return rows


def _morph_metrics(stacks: _Stacks, w: np.ndarray, t: int, binning: Binning) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if not stacks.has_inst:
        return out
    pos_all, neg = stacks.pos_neg(w)
    ok = reached(t, pos_all, neg)
    inst = stacks.inst
    present = set(inst["morphology"].astype(str)) | set(stacks.morph)
    order = [m for m in MORPHOLOGIES if m in present] + sorted(present - set(MORPHOLOGIES))
    rec = inst["rec"].to_numpy()
    morph_col = inst["morphology"].astype(str).to_numpy()
    for m in order:
        sel = morph_col == m
        wi = w[rec[sel]]
        sub = inst[sel]
        r = per_cr_recall(sub, t, wi)
        row = {"n_crs": r["n_crs"], "cr_pixels": float(wi @ sub["pixels"].to_numpy())}
        for rule, _ in PER_CR_RULES:
            row[rule] = r[rule] if ok else float("nan")
            row[f"{rule}_found"] = r[f"{rule}_found"] if ok else float("nan")
        if m in stacks.morph:
            mp = stacks.morph_pos(m, w)
            c = curve_from_histograms(np.rint(mp).astype(np.int64), np.rint(neg).astype(np.int64), binning)
            row["pixel_tpr_at_fpr_5e-4"] = tpr_at_fpr(c, MORPHOLOGY_FPR)
        else:
            row["pixel_tpr_at_fpr_5e-4"] = float("nan")
        out[m] = row
    return out


def _curve_dict(curve: ConfusionCurve) -> dict[str, Any]:
    c = curve.downsample(2000)
    return {
        "thresholds": [float(x) for x in c.thresholds],
        "fpr": [float(x) for x in c.fpr],
        "tpr": [float(x) for x in c.tpr],
        "precision": [float(x) for x in c.precision],
        "recall": [float(x) for x in c.tpr],
        "n_pos": c.n_pos,
        "n_neg": c.n_neg,
    }


def _flat_keys(summary: dict[str, Any]) -> list[str]:
    return [k for k, v in summary.items() if isinstance(v, (float, int, np.floating)) and not isinstance(v, bool)
            and k not in ("n_images", "n_failed", "n_crs", "n_sources", "op_threshold")]


class OperatingPoint(TypedDict):
    """One operating point of a run (``operating_points[name]`` in ``results.json``)."""

    threshold: float
    bin: int
    chosen_on: str | None
    validation: dict[str, float] | None
    metrics: dict[str, Any]
    sources_by_snr: list[dict[str, Any]]


class RunReduction(TypedDict):
    """What :func:`reduce_run` returns (see its docstring)."""

    summary: dict[str, Any]
    curve: dict[str, Any]
    operating_points: dict[str, OperatingPoint]
    by_morphology: list[dict[str, Any]]
    sources_by_snr: list[dict[str, Any]]
    not_comparable: list[str]
    bootstrap: dict[str, Any]


def _bootstrap_intervals(stacks: _Stacks, curve: ConfusionCurve, summary: dict[str, Any],
                         morph: dict[str, dict[str, float]], binning: Binning, conventions: Conventions,
                         per_image: list[dict[str, Any]] | None, sweep: bool, rule: str, t_sel: int,
                         groups: Sequence[str] | None, n_boot: int, seed: int) -> dict[str, list[float]]:
    """Add ``_lo``/``_hi`` to ``summary`` and ``morph`` rows in place; return the curve's bands."""
    W = replicate_weights(list(groups) if groups is not None else [str(i) for i in range(stacks.n)], n_boot, seed)
    reps: list[dict[str, Any]] = []
    morph_reps: list[dict[str, dict[str, float]]] = []
    tpr_reps: list[np.ndarray] = []
    prec_reps: list[np.ndarray] = []
    cd = _curve_dict(curve)
    fpr_grid, rec_grid = np.asarray(cd["fpr"]), np.asarray(cd["recall"])
    for w in W:
        c_b, s_b = _pixel_summary(stacks, w, binning, conventions, per_image, sweep)
        s_b.update(_op_metrics(stacks, w, t_sel, rule))
        reps.append(s_b)
        morph_reps.append(_morph_metrics(stacks, w, t_sel, binning))
        fpr_b, tpr_b = np.r_[0.0, c_b.fpr], np.r_[0.0, c_b.tpr]
        tpr_reps.append(np.interp(fpr_grid, fpr_b, tpr_b))
        prec_reps.append(np.interp(rec_grid, c_b.tpr, c_b.precision) if len(c_b.tpr)
                         else np.full(len(rec_grid), np.nan))
    wilson = {r for r, _ in PER_CR_RULES} | {f"{r}_{e}" for r, _ in PER_CR_RULES for e in ("found", "lo", "hi")}
    for k in _flat_keys(summary):
        if k in ("op_threshold", "op_fpr_target") or k in wilson:
            continue
        lo, hi = interval(np.array([r.get(k, np.nan) for r in reps], dtype=float))
        summary[f"{k}_lo"], summary[f"{k}_hi"] = float(lo), float(hi)
    for m, row in morph.items():
        for k in ("pixel_tpr_at_fpr_5e-4",):
            lo, hi = interval(np.array([mr.get(m, {}).get(k, np.nan) for mr in morph_reps], dtype=float))
            row[f"{k}_lo"], row[f"{k}_hi"] = float(lo), float(hi)
    band: dict[str, list[float]] = {}
    lo, hi = interval(np.array(tpr_reps))
    band["tpr_lo"], band["tpr_hi"] = [float(x) for x in np.clip(lo, 0, 1)], [float(x) for x in np.clip(hi, 0, 1)]
    lo, hi = interval(np.array(prec_reps))
    band["precision_lo"] = [float(x) for x in np.clip(lo, 0, 1)]
    band["precision_hi"] = [float(x) for x in np.clip(hi, 0, 1)]
    return band


def _morphology_rows(morph: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for m, values in morph.items():
        row: dict[str, Any] = {"morphology": m, **values}
        row["n_crs"] = int(round(values["n_crs"]))
        row["cr_pixels"] = int(round(values["cr_pixels"]))
        _wilson_columns(row)
        row["rankable"] = bool(row["n_crs"] >= MIN_RANKABLE_CRS)
        rows.append(row)
    return rows


def reduce_run(records: Sequence[SampleRecord], binning: Binning, conventions: Conventions, *,
               op: dict[str, Any] | None = None, groups: Sequence[str] | None = None, n_boot: int = 0,
               seed: int = 0, sweep: bool = False) -> RunReduction:
    """Reduce successful records to the run's summary, curve, operating points and morphology rows.

    Parameters
    ----------
    records : sequence of SampleRecord
        Successful records.
    binning, conventions
        The run's bins and conventions.
    op : dict, optional
        ``{'rule': 'fpr'|'dice', 'target_fpr': float, 'thresholds': {'fpr': t, 'dice': t},
        'chosen_on': str, 'validation': {...}}``: bin thresholds fixed beforehand (e.g. on the
        validation split). Chosen on ``records`` themselves (``chosen_on`` 'in-sample') when missing.
    groups : sequence of str, optional
        Bootstrap group of each record (default: each its own).
    n_boot, seed : int
        Bootstrap replicates (0 = none) and seed.
    sweep : bool
        The detector is a parameter sweep (integer scores): its lowest bin ("flagged by no
        setting") is no operating point, so metrics beyond its loosest setting are not reached and
        ``roc_auc_extrapolated`` is True.

    Returns
    -------
    RunReduction
        A dict with ``summary`` (flat, with ``_lo``/``_hi`` when bootstrapped), ``curve``,
        ``operating_points`` (both rules, each with its own ``sources_by_snr``), ``by_morphology``
        (rows), ``sources_by_snr`` (source flag fractions by SNR at the selected rule's threshold),
        ``not_comparable`` and ``bootstrap``. Per-CR recalls carry Wilson 95% intervals
        (``_lo``/``_hi``, found out of ``n_crs``); a morphology with fewer than ``MIN_RANKABLE_CRS``
        CRs has ``rankable`` False. An operating point that flags nothing is not reached: threshold
        and metrics NaN, ``op_status`` says why.
    """
    stacks = _Stacks(records, binning.n_bins)
    ones = np.ones(stacks.n)
    per_image = None
    if conventions.pooling == "per-image":
        per_image = [summarize(c, floor_point=sweep and (r.pos[0] + r.neg[0]) > 0)
                     for r in records for c in [curve_from_histograms(r.pos, r.neg, binning)]]
    curve, summary = _pixel_summary(stacks, ones, binning, conventions, per_image, sweep)
    op = dict(op or {})
    rule = str(op.get("rule", "fpr"))
    target = float(op.get("target_fpr", 5e-4))
    thresholds: dict[str, int] = dict(op.get("thresholds") or {})
    if not thresholds:
        pos, neg = stacks.pos_neg(ones)
        thresholds = {"fpr": choose_threshold(pos, neg, "fpr", target), "dice": choose_threshold(pos, neg, "dice")}
        op.setdefault("chosen_on", "in-sample")
    edges = binning.lower_edges()
    validation: dict[str, dict[str, float]] = op.get("validation") or {}
    points: dict[str, OperatingPoint] = {}
    for name, t in thresholds.items():
        points[name] = {"threshold": threshold_value(edges, t), "bin": int(t), "chosen_on": op.get("chosen_on"),
                        "validation": validation.get(name), "metrics": _op_metrics(stacks, ones, t, name),
                        "sources_by_snr": _by_snr(stacks, t)}
    t_sel = thresholds[rule]
    summary["op_rule"] = canonical_operating_point(f"fpr:{target!r}" if rule == "fpr" else "dice")
    summary["op_chosen_on"] = str(op.get("chosen_on"))
    summary["op_threshold"] = points[rule]["threshold"]
    summary.update(points[rule]["metrics"])
    if rule == "fpr":
        achieved = summary.get("op_fpr", float("nan"))
        summary["op_fpr_target"] = target
        summary["op_fpr_achieved"] = achieved
        summary["op_fpr_off_target"] = bool(not np.isfinite(achieved)
                                            or abs(achieved - target) > OP_FPR_TOLERANCE * target)
    _wilson_columns(summary)
    morph = _morph_metrics(stacks, ones, t_sel, binning)
    cd = _curve_dict(curve)
    if n_boot > 0:
        cd.update(_bootstrap_intervals(stacks, curve, summary, morph, binning, conventions, per_image, sweep,
                                       rule, t_sel, groups, n_boot, seed))
    nc = conventions.not_comparable()
    if nc:
        summary["not_comparable"] = ";".join(nc)
    return {"summary": summary, "curve": cd, "operating_points": points, "by_morphology": _morphology_rows(morph),
            "sources_by_snr": points[rule]["sources_by_snr"], "not_comparable": nc,
            "bootstrap": {"replicates": int(n_boot), "seed": int(seed), "level": 0.95,
                          "unit": "group" if groups is not None and len(set(groups)) < stacks.n else "image"}}
