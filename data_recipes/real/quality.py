"""Label quality of the multi-exposure pipeline, measured independently of the labels themselves.

- **purity** (:mod:`data_recipes.real.purity`): the rule on negative deviations, recurrence of
  labelled pixels across frames against chance, and agreement between labellings from held-back
  halves of the companions;
- **completeness** (:mod:`data_recipes.real.completeness`): the series' own real CR footprints
  injected at the observed rate, per CR-charge bin, with the ignored share apart from the missed.

Each number comes with a 95 % interval, overall and separately for CRs on sources (labelled where
the companions are stable, :mod:`data_recipes.real.stable_sources`). Headline keys
(``pixel_purity``, ``instance_completeness``, ...) repeat the main estimate of each.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .completeness import measure_completeness
from .labelling import LabelParams, SeriesLabels, SeriesModel
from .purity import held_back_agreement, negative_deviation_purity, recurrence_purity


def measure_label_quality(frames_adu: np.ndarray, clean: SeriesLabels, *, model: SeriesModel,
                          params: LabelParams, blocks: Sequence[Sequence[int]] | None, exptime: float | None = None,
                          seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Independent purity estimates and completeness vs charge of a labelled series.

    Parameters
    ----------
    frames_adu : ndarray (N, H, W)
        The raw series (ADU).
    clean : SeriesLabels
        Its labelling.
    model : SeriesModel
        The series model used for ``clean``.
    params, blocks
        As for :func:`~data_recipes.real.labelling.label_series`.
    exptime : float, optional
        Exposure time (s), recorded.
    seed : int
        Random seed (footprint placement, bootstraps).
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        ``purity`` (three estimates), ``completeness`` (by charge, on/off sources) and headline keys.
    """
    neg = negative_deviation_purity(frames_adu, clean, model, progress=progress)
    rec = recurrence_purity(clean)
    held = held_back_agreement(frames_adu, clean, model, seed=seed, progress=progress)
    comp = measure_completeness(frames_adu, clean, model=model, params=params, blocks=blocks, seed=seed,
                                progress=progress)
    allc = comp.get("all", {})
    return {
        "method": "independent estimates: purity from negative deviations, recurrence and held-back companions; "
                  "completeness from the series' own real CR footprints injected at the observed rate",
        "exptime": None if exptime is None else float(exptime),
        "seed": int(seed),
        "n_frames": neg["n_frames"],
        "purity": {"negative_deviations": neg, "recurrence": rec, "held_back": held},
        "completeness": comp,
        "n_injected_crs": allc.get("n_injected", 0),
        "instance_completeness": allc.get("completeness"),
        "instance_completeness_interval": allc.get("interval"),
        "pixel_completeness": comp.get("pixel_completeness"),
        "ignored_fraction": allc.get("ignored_share"),
        "pixel_purity": neg["all"]["pixel_purity"],
        "pixel_purity_interval": neg["all"]["pixel_purity_interval"],
    }


def _f(x: Any) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def _iv(x: Any) -> str:
    return "" if not x else f" [{_f(x[0])}, {_f(x[1])}]"


def format_quality(q: dict[str, Any]) -> str:
    """A small text table of a label-quality result."""
    if "purity" not in q:  # cards built before the independent estimates
        return (f"label quality (old card): pixel completeness {_f(q.get('pixel_completeness'))}, "
                f"pixel purity {_f(q.get('pixel_purity'))} (purity not independent: rebuild)")
    p = q["purity"]
    neg, rec, held = p["negative_deviations"], p["recurrence"], p["held_back"]
    lines = [f"purity (independent estimates, {q['n_frames']} frames)"]
    for k in ("all", "off_sources", "on_sources"):
        d = neg[k]
        lines.append(f"  negative deviations {k:11s}: components {_f(d['component_purity'])}"
                     f"{_iv(d['component_purity_interval'])} ({d['negative_components']} neg / "
                     f"{d['positive_components']} pos), pixels {_f(d['pixel_purity'])}{_iv(d['pixel_purity_interval'])}")
    lines.append(f"  recurrence (hot-pixel leakage): pixels {_f(rec.get('pixel_purity'))}"
                 f"{_iv(rec.get('pixel_purity_interval'))} ({rec.get('recurring_pixels_observed', 0)} recurring vs "
                 f"{rec.get('recurring_pixels_expected', 0):.1f} by chance)")
    lines.append(f"  held-back companions: component agreement {_f(held.get('component_agreement'))}"
                 f"{_iv(held.get('component_agreement_interval'))} ({held.get('components', 0)} components)")
    c = q["completeness"]
    lines.append(f"completeness (real footprints, {c.get('per_frame')} per frame, library {c.get('library_size')})")
    for k in ("all", "off_sources", "on_sources"):
        d = c.get(k)
        if not d:
            continue
        lines.append(f"  {k:11s}: {_f(d['completeness'])}{_iv(d['interval'])} of {d['n']} valid; "
                     f"ignored {_f(d['ignored_share'])}{_iv(d['ignored_interval'])} of {d['n_injected']} injected")
    if c.get("all"):
        lines.append(f"  {'charge (e-)':>16s} {'n_inj':>6s} {'ignored':>7s} {'completeness':>28s}")
        for b in c["all"]["by_charge"]:
            lo, hi = b["charge_e"]
            lines.append(f"  {lo:7.0f}-{hi:<8.0f} {b['n_injected']:6d} {b['ignored']:7d} "
                         f"{_f(b['completeness']):>10s}{_iv(b['interval']):>18s}")
    return "\n".join(lines)
