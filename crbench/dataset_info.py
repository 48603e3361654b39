"""Text summary and statistics of a dataset (``crbench datasets info NAME``; its ``--plot`` figures are
:func:`crbench.plots.plot_class_imbalance`)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .dataset import Dataset
from .sample import MORPHOLOGIES


def dataset_statistics(dataset: Dataset) -> dict[str, Any]:
    """The card's class-imbalance statistics, computed from the samples when the card has none."""
    stats = dataset.card.get("statistics")
    if stats and stats.get("n_images"):
        return stats
    from .stats import class_imbalance_statistics, sample_statistics

    return class_imbalance_statistics(sample_statistics(s) for s in dataset.iter_samples(load_companions=False))


def _pct(x: Any, digits: int = 3) -> str:
    try:
        return f"{100.0 * float(x):.{digits}f}%"
    except (TypeError, ValueError):
        return "n/a"


def sample_pixels(dataset: Dataset, sample_id: str) -> int:
    """Pixels of one sample's science image, read from its ``SCI`` header (the data stay on disk).

    Raises
    ------
    FormatError
        When the sample file is missing, unreadable or has no ``SCI`` extension, naming the file.
    """
    from astropy.io import fits

    from .errors import FormatError

    path = dataset.sample_path(sample_id)
    try:
        header = fits.getheader(path, "SCI")
    except FileNotFoundError:
        raise FormatError(f"{path}: sample file of {sample_id!r} is missing; rebuild the dataset") from None
    except (OSError, KeyError, IndexError) as exc:
        raise FormatError(f"{path}: cannot read the SCI header of sample {sample_id!r} ({exc})") from None
    axes = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, int(header.get("NAXIS", 0)) + 1)]
    return int(np.prod(axes)) if axes else 0


def split_counts(dataset: Dataset, *, pixels: bool = True) -> pd.DataFrame:
    """Images, CRs and megapixels per split (rows: each split, then ``all``), with a column per
    morphology class when the instances table has one.

    Parameters
    ----------
    dataset : Dataset
        The dataset.
    pixels : bool
        Also count pixels (column ``mpix``, 10^6 pixels of the science images, read from the
        sample headers).

    Returns
    -------
    DataFrame
        Index ``split``; columns ``images``, ``crs``, one per morphology class when known, then
        ``mpix`` when ``pixels``.
    """
    inst = dataset.instances()
    has_morph = "morphology" in inst.columns and len(inst) > 0
    classes = [m for m in MORPHOLOGIES if has_morph and (inst["morphology"].astype(str) == m).any()]
    if has_morph:
        others = sorted(set(inst["morphology"].astype(str)) - set(MORPHOLOGIES))
        classes += others
    npix = {sid: sample_pixels(dataset, sid) for sid in dict.fromkeys(dataset.ids())} if pixels else {}
    rows = []
    names = list(dataset.splits) + ["all"]
    for name in names:
        ids = dataset.ids() if name == "all" else dataset.splits[name]
        sel = inst[inst["sample_id"].astype(str).isin(set(map(str, ids)))] if len(inst) else inst
        row: dict[str, Any] = {"split": name, "images": len(ids), "crs": int(len(sel))}
        for m in classes:
            row[m] = int((sel["morphology"].astype(str) == m).sum())
        if pixels:
            row["mpix"] = sum(npix[i] for i in ids) / 1e6
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def format_mpix(mpix: float) -> str:
    """Megapixels with three significant figures up to 100 (``16.8``, ``4.19``, ``0.074``), whole above."""
    v = float(mpix)
    if v >= 100:
        return f"{v:.0f}"
    if v == 0:
        return "0"
    digits = max(0, 2 - int(np.floor(np.log10(abs(v)))))
    return f"{v:.{digits}f}"


def _format_counts(counts: pd.DataFrame) -> list[str]:
    """Lines of the per-split table, split names left-aligned, counts right-aligned."""
    cols = list(counts.columns)
    heads = ["images", "CRs"] + [("Mpix" if c == "mpix" else c) for c in cols[2:]]
    cells = {name: [format_mpix(row[c]) if c == "mpix" else str(int(row[c])) for c in cols]
             for name, row in counts.iterrows()}
    widths = [max([len(h), 6] + [len(v[i]) for v in cells.values()]) for i, h in enumerate(heads)]
    out = ["  " + f"{'split':8s}" + " ".join(f"{h:>{w}s}" for h, w in zip(heads, widths))]
    for name, vals in cells.items():
        out.append("  " + f"{str(name):8s}" + " ".join(f"{v:>{w}s}" for v, w in zip(vals, widths)))
    return out


def standard_line(dataset: Dataset) -> str:
    """Whether the local copy is the standard build: ``match``, ``MISMATCH``, ``unpinned`` or
    ``not-standard``, then the reason (:func:`crbench.standard.check_standard`)."""
    from .standard import check_standard

    if dataset.card.get("size") is None:
        return ("not-standard: the card records no standard size (standard sizes exist for the simulated "
                "recipes only)")
    check = check_standard(dataset)
    msg = check.message
    prefix = f"{dataset.name}: "
    if msg.startswith(prefix):
        msg = msg[len(prefix):]
    status = "MISMATCH" if check.status == "mismatch" else check.status
    return f"{status}: {msg}"


def _hostish(origin: str) -> str:
    """Group key of a provenance origin: host plus owner/repository for code hosts, else the host."""
    from urllib.parse import urlparse

    u = urlparse(origin)
    if not u.scheme or not u.netloc:
        return origin
    parts = [p for p in u.path.split("/") if p]
    if u.netloc in ("raw.githubusercontent.com", "github.com", "gitlab.com", "bitbucket.org") and len(parts) >= 2:
        return f"{u.netloc}/{parts[0]}/{parts[1]}"
    return u.netloc


def provenance_summary(provenance: list[dict[str, Any]]) -> str:
    """One line: ``N files from K sources: A (n), B (m)`` (or the single non-file origin)."""
    if not provenance:
        return "not recorded"
    groups: dict[str, int] = {}
    for p in provenance:
        origin = str(p.get("origin") or p.get("url") or p.get("repository") or p.get("file") or p)
        key = _hostish(origin)
        groups[key] = groups.get(key, 0) + 1
    n = len(provenance)
    if n == 1 and not provenance[0].get("file"):
        return next(iter(groups))
    parts = ", ".join(f"{k} ({v})" for k, v in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{n} file{'s' if n != 1 else ''} from {len(groups)} source{'s' if len(groups) != 1 else ''}: {parts}"


def _kind(card: dict[str, Any]) -> str:
    kind = card.get("kind")
    if kind:
        return str(kind)
    try:
        from .recipes import available_recipes

        recipe = available_recipes().get(str(card.get("recipe")))
    except Exception:  # noqa: BLE001 - a third-party recipe module may fail to import
        recipe = None
    return str(getattr(recipe, "kind", "") or "unknown")


def label_quality_line(card: dict[str, Any]) -> str:
    """How good the labels are, in one line: measured completeness/purity, exact simulated truth,
    or "not measured"."""
    q = card.get("label_quality")
    if isinstance(q, dict) and q:
        def f(key: str) -> str:
            v = q.get(key)
            return "n/a" if v is None else f"{100.0 * float(v):.1f}%"

        if "purity" in q:
            from .label_quality import format_quality

            return "\n    " + format_quality(q).replace("\n", "\n    ")
        return (f"measured by injecting {q.get('n_injected_crs', '?')} simulated CRs: pixel completeness "
                f"{f('pixel_completeness')}, instance completeness {f('instance_completeness')}, pixel purity "
                f"{f('pixel_purity')}, {f('ignored_fraction')} of injected CR pixels ignored")
    kind = _kind(card)
    if kind.startswith("simulated") or kind == "injected":
        return "exact: truth comes from the simulation / injection itself"
    if kind == "real-negative-control":
        return "negative control: no CRs in truth by construction"
    if card.get("labelling") is not None:
        return "not measured for this build (rebuild with label_quality on)"
    return "not recorded in the card"


def confusers_line(conf: dict[str, Any]) -> str:
    """One line on a simulated card's ``confusers``: version, PSF core, CTE residual, detector defects."""
    parts = [str(conf.get("version", "v2"))]
    psf = conf.get("psf")
    if isinstance(psf, dict):
        parts.append(f"{psf.get('model')} PSF (core {psf.get('core_fwhm_px')} px, "
                     f"{psf.get('core_fraction')} of the light)")
    cte = conf.get("cte")
    if isinstance(cte, dict):
        parts.append(f"CTE trails, {cte.get('correction_residual')} left after correction")
    defects = conf.get("detector_defects")
    if isinstance(defects, dict):
        parts.append(f"hot {defects.get('hot_fraction')}, warm {defects.get('warm_fraction')} of the pixels")
    else:
        parts.append("no detector defects")
    return "; ".join(parts)


def describe(dataset: Dataset, *, full: bool = False) -> str:
    """Multi-line text: identity, images, CRs per class and megapixels per split, whether the copy
    is the pinned standard build, label quality, caveats, licence,
    provenance summary, then folder, hash, parameters and class-imbalance statistics.

    Shows the CR pixel fraction (mean, median, min, max over images, and pooled), CRs per
    megapixel, count and pixel share per morphology (with size quantiles), generator versus
    morphology counts when the instances carry a generator, the share of CR pixels on sources
    and the ignore fraction.

    Parameters
    ----------
    dataset : Dataset
        The dataset.
    full : bool
        List every provenance entry (origin and sha256) instead of the one-line summary.
    """
    card = dataset.card
    st = dataset_statistics(dataset)
    lines = [f"{dataset.name}  (version {card.get('version', '?')}, recipe {card.get('recipe', '?')}, "
             f"{_kind(card)})"]
    counts = split_counts(dataset)
    lines += _format_counts(counts)
    lines.append(f"  standard:     {standard_line(dataset)}")
    lines.append(f"  label quality: {label_quality_line(card)}")
    if card.get("exposures_rule"):
        flag = "  [circular: the median detector reuses labelling frames]" if card.get("circular") else ""
        lines.append(f"  exposures:    {card['exposures_rule']}{flag}")
    caveats = card.get("caveats") or card.get("note")
    if caveats:
        lines.append(f"  caveats:      {caveats}")
    licences = sorted({str(p["licence"]) for p in card.get("provenance") or [] if p.get("licence")})
    licence = card.get("licence") or ("; ".join(licences) if licences else None)
    if not licence:
        licence = ("BSD-3-Clause (simulated by crbench, under its licence)" if _kind(card).startswith("simulated")
                   else "not stated")
    lines.append(f"  licence:      {licence}")
    prov = card.get("provenance") or []
    lines.append(f"  provenance:   {provenance_summary(prov)}" + ("" if full or len(prov) < 2 else
                                                                   "  (--full lists every file)"))
    if full:
        for p in prov:
            origin = p.get("origin") or p.get("url") or p.get("repository") or str(p)
            sha = p.get("sha256")
            lines.append(f"    {origin}" + (f" (sha256 {str(sha)[:16]})" if sha else ""))
    lines += [f"  folder:       {dataset.root}",
              f"  content hash: {card.get('content_hash', '?')}"]
    if card.get("seed") is not None:
        lines.append(f"  seed:         {card['seed']}")
    params = card.get("parameters") or {}
    if params:
        lines.append("  parameters:   " + ", ".join(f"{k}={v}" for k, v in params.items()))
    conf = card.get("confusers")
    if isinstance(conf, dict) and conf:
        lines.append(f"  confusers:    {confusers_line(conf)}")
    td = card.get("truth_definition")
    if isinstance(td, dict) and td.get("truth"):
        lines.append(f"  truth:        {td['truth']}")
    elif isinstance(card.get("truth_rule"), dict) and card["truth_rule"].get("definition"):
        lines.append(f"  truth:        {card['truth_rule']['definition']}")
    lines.append("")
    lines.append("Class imbalance")
    if not st or not st.get("n_images"):
        lines.append("  (no samples)")
        return "\n".join(lines)
    f = st.get("cr_pixel_fraction", {})
    lines.append(f"  images: {st['n_images']} ({st.get('n_labelled', st['n_images'])} labelled)")
    lines.append(f"  CR pixel fraction per image: mean {_pct(f.get('mean'))}  median {_pct(f.get('median'))}  "
                 f"min {_pct(f.get('min'))}  max {_pct(f.get('max'))}  (pooled {_pct(f.get('pooled'))})")
    lines.append(f"  CRs: {st.get('n_crs', 0)}  ({float(st.get('crs_per_megapixel', 0.0)):.1f} per megapixel)"
                 + (f"; {st['n_saturated_crs']} saturated" if st.get("n_saturated_crs") else ""))
    lines.append(f"  {'morphology':10s} {'count':>7s} {'count %':>8s} {'pixel %':>8s}   size p5/p50/p95 (px)")
    quant = st.get("cr_size_quantiles", {}) or {}
    for m in MORPHOLOGIES:
        row = (st.get("morphology") or {}).get(m, {})
        q = quant.get(m)
        qs = f"{q['5']:.0f}/{q['50']:.0f}/{q['95']:.0f}" if q else "-"
        lines.append(f"  {m:10s} {int(row.get('count', 0)):7d} {_pct(row.get('count_share', 0), 1):>8s} "
                     f"{_pct(row.get('pixel_share', 0), 1):>8s}   {qs}")
    gm = st.get("generator_morphology") or {}
    if gm and set(gm) != {"unknown"}:
        lines.append("  generator -> morphology:")
        for g in sorted(gm):
            counts = gm[g]
            total = sum(counts.values())
            lines.append(f"    {g:9s} {total:6d}: " + ", ".join(
                f"{m} {counts.get(m, 0)} ({100.0 * counts.get(m, 0) / total:.0f}%)" for m in MORPHOLOGIES
                if counts.get(m, 0)))
    lines.append(f"  CR pixels on sources: {_pct(st.get('cr_pixels_on_sources_share', 0.0), 2)}")
    lines.append(f"  ignore fraction:      {_pct(st.get('ignore_fraction', 0.0), 3)}")
    return "\n".join(lines)
