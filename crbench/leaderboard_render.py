"""Leaderboard pages rendered from the entries: Markdown tables and one static HTML page.

:func:`build` writes ``README.md`` (Markdown tables per dataset) and ``index.html``: one
self-contained static page (inline CSS, JS and data; no server, no network) with sortable tables,
dataset and morphology filters, ROC and PR plots and provenance on demand. Entries come from
:mod:`crbench.leaderboard_submit`.
"""
from __future__ import annotations

import datetime
import functools
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence


from .atomic import write_text
from .leaderboard_checks import (MAX_DEPTH, MAX_SUBMISSION_BYTES)
from .sample import MORPHOLOGIES
from .leaderboard_submit import DEFAULT_ROOT, Entry, _readable, load_entries

ASSETS = Path(__file__).parent / "leaderboard_assets"
#: Metric entries are ranked by within a (dataset, split) table (higher is better), then ``ap``.
RANK_METRIC = "tpr_at_fpr_5e-4"
#: Columns of the leaderboard tables: (key, header, digits); ``None`` digits = text.
COLUMNS: list[tuple[str, str, int | None]] = [
    ("rank", "#", None),
    ("detector", "Detector", None),
    ("inputs", "Inputs", None),
    ("dataset", "Dataset", None),
    ("split", "Split", None),
    ("tpr_at_fpr_5e-4", "TPR@FPR 5e-4", 3),
    ("tpr_at_fpr_1e-4", "TPR@FPR 1e-4", 3),
    ("ap", "AP", 3),
    ("roc_auc", "ROC AUC", 4),
    ("precision_at_recall_0.95", "Prec@Rec 0.95", 3),
    ("best_dice", "Best Dice", 3),
    ("recall_half", "CR recall @op", 3),
    ("fpr_sources", "Star FPR @op", 4),
    ("seconds_per_mpix", "s / Mpix", 3),
    ("n_images", "Images", None),
]
#: Columns where lower is better (sorted ascending first on the page).
LOWER_IS_BETTER = ("seconds_per_mpix", "fpr_sources")
#: Columns shown without their bootstrap interval (timings vary with the machine, not the sample).
NO_INTERVAL = ("seconds_per_mpix",)
#: Per-morphology columns (from ``runs[i]['by_morphology']`` rows when present).
MORPH_COLUMNS: list[tuple[str, str, int | None]] = [
    ("n_crs", "CRs", None),
    ("recall_any", "Recall (any hit)", 3),
    ("recall_half", "Recall (half)", 3),
    ("recall_charge90", "Recall (90% charge)", 3),
    ("pixel_tpr_at_fpr_5e-4", "Pixel TPR@FPR 5e-4", 3),
]
#: Columns measured at the operating point (not reached together when ``summary.op_status`` says so).
OP_COLUMNS = ("recall_half", "fpr_sources")


# ------------------------------------------------------------------------------------------ tables

def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def detector_inputs(run: dict[str, Any]) -> str:
    """What a run's detector reads, e.g. ``image`` or ``image+exposures`` (a single frame or companions too).

    From the run's ``provenance.detector.requires``; results written before that field existed fall back
    to the registered detector of that name (entry points only, never a class path from the file), and
    to ``?`` when there is none.
    """
    det = (run.get("provenance") or {}).get("detector") or {}
    req = det.get("requires")
    if not (isinstance(req, list) and req and all(isinstance(x, str) for x in req)):
        req = list(_registered_requires(str(run.get("detector"))))
    return "+".join(req) if req else "?"


def standard_build_text(dataset: str, content_hash: str) -> str:
    """Which pinned standard build a dataset hash is, for the page: ``'standard v3'``, ``'superseded
    standard v2'``, or ``''`` for a set without a pin (the real sets) or a hash the registry does not name."""
    from .standard import pinned_version_of

    match = pinned_version_of(dataset, content_hash)
    if match is None:
        return ""
    kind, version = match
    return f"standard {version}" if kind == "current" else f"superseded standard {version}"


@functools.lru_cache(maxsize=None)
def _registered_requires(name: str) -> tuple[str, ...]:
    from .detectors.registry import available_detectors, load_detector_class

    if name not in available_detectors():
        return ()
    try:
        return tuple(str(x) for x in load_detector_class(name).requires)
    except Exception:  # noqa: BLE001 - a plugin that does not import here leaves the column unknown
        return ()


def ranked_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """One row per entry with the table columns, CIs and a rank within its (dataset, split)."""
    rows = []
    for k, e in enumerate(entries):
        s = e.run["summary"]
        row: dict[str, Any] = {"id": k, "detector": e.run["detector"], "inputs": detector_inputs(e.run),
                               "dataset": e.run["dataset"], "split": e.run["split"], "file": e.path.name}
        for key, _, digits in COLUMNS:
            if key in row or key == "rank":
                continue
            row[key] = s.get(key) if digits is None else _num(s.get(key))
            why = s.get(f"{key}_status") or (s.get("op_status") if key in OP_COLUMNS else None)
            if digits is not None and row[key] is None and isinstance(why, str) and why.startswith("not reached"):
                row[f"{key}_status"] = why
            if digits is not None and key not in NO_INTERVAL:
                lo, hi = _num(s.get(f"{key}_lo")), _num(s.get(f"{key}_hi"))
                if lo is not None and hi is not None:
                    row[f"{key}_lo"], row[f"{key}_hi"] = lo, hi
        not_comparable = set((e.run.get("provenance") or {}).get("not_comparable") or [])
        row["_rank_by"] = {k: (None if k in not_comparable else row.get(k)) for k in (RANK_METRIC, "ap")}
        rows.append(row)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["split"]), []).append(r)
    for grp in groups.values():
        # columns a run's protocol marks not comparable (provenance.not_comparable) never rank it
        grp.sort(key=lambda r: (-(r["_rank_by"][RANK_METRIC] if r["_rank_by"][RANK_METRIC] is not None else -1),
                                -(r["_rank_by"]["ap"] if r["_rank_by"]["ap"] is not None else -1), r["detector"]))
        for i, r in enumerate(grp, 1):
            r["rank"] = i
    for r in rows:
        del r["_rank_by"]
    return sorted(rows, key=lambda r: (r["dataset"], r["split"], r["rank"]))


def _fmt(row: dict[str, Any], key: str, digits: int | None) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "not reached" if str(row.get(f"{key}_status", "")).startswith("not reached") else "–"
    if digits is None:
        return str(v)

    def num(x: float) -> str:
        return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits or x == 0 else f"{x:.2g}"

    text = num(v)
    if f"{key}_lo" in row:
        text += f" [{num(row[f'{key}_lo'])}, {num(row[f'{key}_hi'])}]"
    return text


_MD_CONTROL = re.compile(r"([\\`*_\[\]|~])")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def md_text(text: Any) -> str:
    """``text`` safe inside one Markdown table cell: one line, no HTML, no Markdown markup.

    Control characters and line breaks become one space, ``& < > "`` become HTML entities and
    the Markdown control characters ``\\ ` * _ [ ] | ~`` are escaped with a backslash.
    """
    flat = _LINE_BREAKS.sub(" ", str(text))
    return _MD_CONTROL.sub(r"\\\1", html.escape(flat, quote=True).replace("&#x27;", "'"))


def markdown(entries: Sequence[Entry]) -> str:
    """The leaderboard as Markdown: one ranked table per (dataset, split), per-morphology recall after it."""
    rows = ranked_rows(entries)
    by_id = {k: e for k, e in enumerate(entries)}
    lines = ["# crbench leaderboard", "",
             f"Generated by `crbench leaderboard build` from {len(entries)} entries in `entries/`. "
             f"Ranked by pixel TPR at a pixel FPR of 5e-4 (then AP); brackets are 95% bootstrap intervals "
             "where the results carry them. '@op' columns are at each detector's operating point (pixel FPR "
             "5e-4, threshold chosen on the validation split where there is one): the share of CRs with at "
             "least half their pixels flagged, and the pixel FPR on stars and galaxies. 'Inputs' is what a "
             "detector reads: `image` (one frame), `image+exposures` (the companion exposures of the same "
             "pointing too, as the median comparison) or `ramp` (up-the-ramp reads). Open `index.html` "
             "for sortable tables, filters, curves and provenance.", ""]
    keys = sorted({(r["dataset"], r["split"]) for r in rows})
    for ds, split in keys:
        grp = [r for r in rows if (r["dataset"], r["split"]) == (ds, split)]
        prov = by_id[grp[0]["id"]].run["provenance"]["dataset"]
        standard = standard_build_text(str(ds), str(prov["content_hash"]))
        build = f"{md_text(standard.capitalize())} build, dataset version" if standard else "Dataset version"
        lines += [f"## {md_text(ds)} ({md_text(split)} split)", "",
                  f"{build} {md_text(prov.get('version', '?'))}, content hash "
                  f"`{md_text(prov['content_hash'][:16])}`, {md_text(grp[0].get('n_images'))} images.", ""]
        cols = [c for c in COLUMNS if c[0] not in ("dataset", "split")]
        lines.append("| " + " | ".join(h for _, h, _ in cols) + " | Trained on |")
        lines.append("|" + "|".join("---:" if d is not None or k in ("rank", "n_images") else "---"
                                     for k, _, d in cols) + "|---|")
        for r in grp:
            trained = by_id[r["id"]].run["provenance"]["detector"].get("trained_on") or []
            cells = [md_text(_fmt(r, k, d)) if d is None else _fmt(r, k, d) for k, _, d in cols]
            lines.append("| " + " | ".join(cells) + " | " + md_text(", ".join(map(str, trained)) or "–") + " |")
        morph: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
            (r, rows) for r in grp for rows in [by_id[r["id"]].run.get("by_morphology")] if rows]
        if morph:
            lines += ["", "Per-morphology recall (half of the CR's pixels flagged at the operating point):", "",
                      "| Detector | " + " | ".join(MORPHOLOGIES) + " |",
                      "|---|" + "|".join("---:" for _ in MORPHOLOGIES) + "|"]
            for r, m in morph:
                cells = []
                for name in MORPHOLOGIES:
                    row = next((x for x in m if x.get("morphology") == name), None)
                    v = _num(row.get("recall_half")) if row else None
                    op_status = str(by_id[r["id"]].run["summary"].get("op_status") or "")
                    if v is None or row is None:
                        cells.append("not reached" if row and op_status.startswith("not reached") else "–")
                    else:
                        text = f"{v:.3f}"
                        lo, hi = _num(row.get("recall_half_lo")), _num(row.get("recall_half_hi"))
                        if lo is not None and hi is not None:
                            text += f" [{lo:.3f}, {hi:.3f}]"
                        small = ", too few to rank" if row.get("rankable") is False else ""
                        cells.append(f"{text} (n={int(row.get('n_crs', 0))}{small})" if row.get("n_crs") is not None
                                     else text)
                lines.append(f"| {md_text(r['detector'])} | " + " | ".join(cells) + " |")
        lines.append("")
    if not keys:
        lines += ["No entries yet.", ""]
    lines += ["## Submitting a detector", "",
              "```",
              "# a detector class in your own code (no packaging needed; its folder on PYTHONPATH)",
              "crbench evaluate --dataset sim-hst-acs-ex --detector mypackage.mymodule:MyDetector --out results",
              "# or score maps made elsewhere: one <sample_id>.fits per test (and val) sample",
              "crbench score-predictions maps/ --dataset sim-hst-acs-ex --name my-detector "
              "--trained-on sim-hst-acs-ex/train --out results",
              "crbench leaderboard submit results/results.json --build",
              "```", "",
              "Entries are validated against the results schema (`crbench/schemas/results.schema.json`, "
              "which bounds every metric: rates in [0, 1], counts and seconds non-negative) and refused when "
              "the detector was trained on a test split or on the data it is scored on, when samples failed, "
              "when the scoring conventions differ from the crbench protocol, when a summary number (ROC AUC, "
              "AP, TPR at an FPR, precision at a recall, best Dice) does not follow from the submitted curve, "
              "when the detector, dataset, split or dataset version is not a plain name "
              "(`[A-Za-z0-9][A-Za-z0-9._+-]{0,63}`), when the file is over "
              f"{MAX_SUBMISSION_BYTES // 2**20} MiB or nested over {MAX_DEPTH} levels deep, or when the "
              "dataset's build (content hash and version) differs from the entries already here; the refusal "
              "shows both builds' hashes and package versions. `--replace-dataset` lists the entries of the "
              "other build and deletes them only with `--yes`.", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- html

def page_data(entries: Sequence[Entry]) -> dict[str, Any]:
    """The JSON the static page is drawn from: rows, columns, curves, morphology rows, provenance."""
    rows = ranked_rows(entries)
    items = []
    for r in rows:
        e = entries[r["id"]]
        c = e.run["curve"]
        curve = {k: [(_num(x) if _num(x) is not None else None) for x in c[k]]
                 for k in ("fpr", "tpr", "precision", "recall", "tpr_lo", "tpr_hi", "precision_lo", "precision_hi")
                 if isinstance(c.get(k), list)}
        morph = {}
        for m in e.run.get("by_morphology") or []:
            name = m.get("morphology")
            if name:
                morph[name] = {k: (_num(v) if not isinstance(v, str) else v) for k, v in m.items()}
        items.append({"row": r, "curve": curve, "morphology": morph,
                      "provenance": {"run": e.run["provenance"], "meta": e.meta, "file": e.path.name}})
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["dataset"]] = counts.get(r["dataset"], 0) + 1
    # the page opens on the dataset with the most entries (ties: alphabetical), one table that fits
    default = min(counts, key=lambda d: (-counts[d], d)) if counts else ""
    morphs = [m for m in MORPHOLOGIES if any(m in it["morphology"] for it in items)]
    morphs += sorted({m for it in items for m in it["morphology"]} - set(morphs))
    return {"columns": [{"key": k, "label": h, "digits": d} for k, h, d in COLUMNS],
            "morph_columns": [{"key": k, "label": h, "digits": d} for k, h, d in MORPH_COLUMNS],
            "datasets": sorted({r["dataset"] for r in rows}), "default_dataset": default, "morphologies": morphs,
            "rank_metric": RANK_METRIC, "lower_better": list(LOWER_IS_BETTER), "entries": items,
            "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _finite(obj: Any) -> Any:
    """Copy of ``obj`` with NaN/inf floats replaced by None (strict JSON for the browser)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_for_script(obj: Any) -> str:
    text = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=str)
    # never let embedded text close the script element or open a comment
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(entries: Sequence[Entry]) -> str:
    """The self-contained leaderboard page (inline CSS, JS and data; no network)."""
    template = (ASSETS / "index.template.html").read_text(encoding="utf-8")
    css = (ASSETS / "leaderboard.css").read_text(encoding="utf-8")
    js = (ASSETS / "leaderboard.js").read_text(encoding="utf-8")
    data = _json_for_script(page_data(entries))
    return (template.replace("/*CSS*/", css).replace("/*JS*/", js).replace("{{DATA}}", data)
            .replace("{{N_ENTRIES}}", html.escape(str(len(entries)))))


def build(entries_dir: str | os.PathLike = DEFAULT_ROOT / "entries",
          out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``README.md`` and ``index.html`` from the entries.

    Parameters
    ----------
    entries_dir : path
        Folder of entry files.
    out_dir : path, optional
        Where the pages go (default: the parent of ``entries_dir``).

    Returns
    -------
    dict
        ``{'markdown': path, 'html': path}``.
    """
    entries_dir = Path(entries_dir)
    out = Path(out_dir) if out_dir is not None else entries_dir.parent
    entries = load_entries(entries_dir)
    paths = {"markdown": out / "README.md", "html": out / "index.html"}
    write_text(paths["markdown"], markdown(entries))
    write_text(paths["html"], render_html(entries))
    for p in paths.values():
        _readable(p)
    return paths
