"""Text of a card's ``label_quality`` (real datasets): the independent purity estimates and the
completeness by CR charge that ``data_recipes.real.quality`` measures. Pure formatting of card data,
so ``crbench datasets info`` shows it without importing any recipe."""
from __future__ import annotations

from typing import Any


def _f(x: Any) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def _iv(x: Any) -> str:
    return "" if not x else f" [{_f(x[0])}, {_f(x[1])}]"


def format_quality(q: dict[str, Any]) -> str:
    """A small text table of a card's label-quality result.

    Parameters
    ----------
    q : dict
        The card's ``label_quality`` field.

    Returns
    -------
    str
        One line per estimate, with 95% intervals.
    """
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
