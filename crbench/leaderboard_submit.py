"""Leaderboard submissions: the checks a results file must pass and the entry files it becomes.

:func:`submit` validates a results file against the schema, checks its provenance (no detector
trained on a test split or on the data it is scored on, no failed samples, one content hash per
dataset version) and writes one entry per run into ``leaderboard/entries/*.json``;
:func:`load_entries` reads them back. Rendering the pages is :mod:`crbench.leaderboard_render`.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_text
from .errors import CRBenchError
from .leaderboard_checks import (SubmissionError, name_problems, read_submission,
                                 summary_problems)
from .metrics.operating import same_operating_point
from .results import read_results_json
from .schema import validate_results

#: Default leaderboard folder (relative to the working directory).
DEFAULT_ROOT = Path("leaderboard")
#: Curve points kept per entry (the page embeds every curve).
CURVE_POINTS = 300
#: Package versions shown when two builds of a dataset differ (from the results' ``meta.versions``).
BUILD_VERSIONS = ("crbench", "numpy", "astropy")
#: Keys of ``provenance.dataset`` describing how the dataset was built, shown when builds differ.
BUILD_PARAMETERS = ("recipe", "parameters", "seed", "build")
#: Operating-point rule of leaderboard entries (as the harness records it in ``summary.op_rule``).
STANDARD_OP_RULE = "fpr:5e-4"

#: Datasets kept off the leaderboard, with the reason given to a submission that names one.
EXCLUDED_DATASETS: dict[str, str] = {
    "kast-science": ("its labels come from one frame and a smoothing model (no second exposure of the field), so "
                     "neither the common multi-exposure truth rule nor the independent label-quality estimates "
                     "(negative deviations against companions, recurrence, held-back frames) apply, and it keeps "
                     "only peak SNR >= 10 components: every detector scored 0.92-1.00, which ranks nothing"),
}


def standard_conventions() -> dict[str, str]:
    """The scoring conventions every leaderboard entry must use (crbench's defaults)."""
    from .conventions import resolve_conventions

    d = resolve_conventions(None).to_dict()
    return {k: d[k] for k in ("dilation", "ignore", "pooling", "halo")}


# ----------------------------------------------------------------------------------------- checks

def training_conflicts(run: dict[str, Any]) -> list[tuple[int, str]]:
    """Reasons a run may not be ranked because of its training data.

    A detector is refused when it was trained on any test split (``'X/test'``), or on the data
    it is scored on (``'D'``, ``'D/all'`` or ``'D/S'`` for dataset ``D``, split ``S``). ``':'``
    separates dataset and split as well as ``'/'`` (``'sim-basic:train'``).

    Returns
    -------
    list of (index into trained_on, reason)
    """
    trained = run.get("provenance", {}).get("detector", {}).get("trained_on", []) or []
    out = []
    for j, item in enumerate(trained):
        parts = re.split(r"[/:]", str(item).strip(), maxsplit=1)
        name, split = parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")
        if split == "test":
            out.append((j, f"detector {run['detector']!r} was trained on a test split ({item!r}); "
                           "test splits may never be used for training"))
        elif name == run["dataset"] and split in ("", "all", run["split"]):
            out.append((j, f"detector {run['detector']!r} was trained on {item!r}, the data it is scored on "
                           f"({run['dataset']}/{run['split']})"))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def entry_filename(run: dict[str, Any]) -> str:
    """File name of a run's entry: ``<dataset>__<split>__<detector>__<params hash>.json``."""
    h = run.get("provenance", {}).get("detector", {}).get("params_hash") or "nohash"
    return f"{_slug(run['dataset'])}__{_slug(run['split'])}__{_slug(run['detector'])}__{_slug(h)[:12]}.json"


def thin_curve(curve: dict[str, Any], max_points: int = CURVE_POINTS) -> dict[str, Any]:
    """Keep at most ``max_points`` curve points, spread evenly in log FPR and in recall.

    Scalars and arrays of another length are kept as they are.
    """
    keys = [k for k, v in curve.items() if isinstance(v, list)]
    n = len(curve.get("fpr", []))
    if n <= max_points:
        return dict(curve)
    fpr = np.asarray(curve["fpr"], dtype=float)
    rec = np.asarray(curve.get("recall", curve.get("tpr")), dtype=float)
    half = max_points // 2
    idx = {0, n - 1}
    lf = np.log10(np.clip(np.nan_to_num(fpr, nan=1.0), 1e-9, 1.0))
    for target in np.linspace(np.nanmin(lf), np.nanmax(lf), half):
        idx.add(int(np.nanargmin(np.abs(lf - target))))
    r = np.nan_to_num(rec, nan=0.0)
    for target in np.linspace(r.min(), r.max(), half):
        idx.add(int(np.argmin(np.abs(r - target))))
    keep = sorted(idx)
    out = dict(curve)
    for k in keys:
        if len(curve[k]) == n:
            out[k] = [curve[k][i] for i in keep]
    return out


def _round(x: Any, digits: int = 6) -> Any:
    """``x`` to ``digits`` significant digits (keeps entry files small and their diffs readable)."""
    if isinstance(x, float) and math.isfinite(x) and x != 0.0:
        return float(f"{x:.{digits}g}")
    return x


_NUM = r"(?:-?[0-9][0-9.eE+-]*|NaN|-?Infinity|null)"
_NUM_ARRAY = re.compile(r"\[\n\s+(" + _NUM + r"(?:,\n\s+" + _NUM + r")*)\n\s*\]")


def entry_json(entry: dict[str, Any]) -> str:
    """Indented JSON with arrays of numbers kept on one line (small files, readable diffs)."""
    from .atomic import _json_default

    text = json.dumps(entry, indent=2, default=_json_default)
    return _NUM_ARRAY.sub(lambda m: "[" + re.sub(r",\n\s+", ", ", m.group(1)) + "]", text) + "\n"


def _entry_for(run: dict[str, Any], meta: dict[str, Any], source: str) -> dict[str, Any]:
    run = json.loads(json.dumps(run, default=str))  # deep copy, JSON types only
    run["curve"] = {k: ([_round(x) for x in v] if isinstance(v, list) else v)
                    for k, v in thin_curve(run["curve"]).items()}
    ds = run["provenance"].get("dataset", {})
    ds.pop("path", None)  # local paths mean nothing to readers of the leaderboard
    execution = run["provenance"].get("execution")
    if isinstance(execution, dict) and execution.get("cache"):
        execution["cache"] = "local"
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta = dict(meta)
    meta["submitted"] = now
    meta["submitted_from"] = f"{Path(source).parent.name}/{Path(source).name}"
    return {"schema_version": meta.get("schema_version", "1.0"), "meta": meta, "runs": [run]}


@dataclass
class Entry:
    """One accepted run on the leaderboard."""

    path: Path
    run: dict[str, Any]
    meta: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.run["dataset"], self.run["split"])


def load_entries(entries_dir: str | os.PathLike) -> list[Entry]:
    """Read and validate every ``*.json`` entry in ``entries_dir`` (sorted by file name).

    Raises
    ------
    FormatError
        If an entry is not a valid results file (naming the file and JSON path).
    """
    entries_dir = Path(entries_dir)
    if not entries_dir.is_dir():
        return []
    out = []
    for p in sorted(entries_dir.glob("*.json")):
        obj = read_results_json(p)
        for run in obj["runs"]:
            out.append(Entry(p, run, obj.get("meta", {})))
    return out


@dataclass
class SubmissionPlan:
    """What :func:`submit` would do with a results file that passed every check."""

    #: The results file read.
    source: Path
    #: Its parsed, validated content.
    obj: dict[str, Any]
    #: Entries of another build of a submitted dataset, deleted when the submission is accepted
    #: with ``replace_dataset=True`` (empty otherwise).
    replaced: list[Path]


def _build_label(ds: dict[str, Any], meta: dict[str, Any]) -> str:
    raw_versions = meta.get("versions")
    versions: dict[str, Any] = raw_versions if isinstance(raw_versions, dict) else {}
    soft = ", ".join(f"{k} {versions.get(k, meta.get('crbench_version') if k == 'crbench' else None) or '?'}"
                     for k in BUILD_VERSIONS)
    text = f"content hash {ds.get('content_hash')}, version {ds.get('version')!r}, made with {soft}"
    params = {k: ds[k] for k in BUILD_PARAMETERS if k in ds}
    if params:
        text += f", build parameters {json.dumps(params, sort_keys=True, default=str)[:300]}"
    return text


def _same_build(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("content_hash") == b.get("content_hash") and a.get("version") == b.get("version")


def _dataset_problems(ds: dict[str, Any], verified: dict[str, str]) -> list[str]:
    """Problems with the scored dataset: not the pinned standard build, or (when the folder the results
    name is here) sample files whose full content hash differs from the one the results quote."""
    from .standard import pinned

    out = []
    pin = pinned(str(ds.get("name")))
    if pin is not None and pin.get("content_hash") != ds.get("content_hash"):
        out.append(f"dataset {ds.get('name')!r} build {str(ds.get('content_hash'))[:12]} is not the standard build "
                   f"{str(pin.get('content_hash'))[:12]} pinned in crbench/registry/standard.json; the leaderboard "
                   f"takes standard builds only ('crbench datasets build {ds.get('name')}' or 'crbench datasets "
                   "download')")
    path = ds.get("path")
    if path and (Path(path) / "dataset.json").is_file():
        if path not in verified:
            from .dataset import Dataset, verify_dataset

            try:
                verified[path] = verify_dataset(Dataset.open(path, check_files=False))
            except CRBenchError as exc:
                verified[path] = f"error: {exc}"
        got = verified[path]
        if got != ds.get("content_hash"):
            out.append(f"the dataset folder {path} does not hash to the content hash the results quote "
                       f"({str(ds.get('content_hash'))[:12]}): {got[:200]}")
    return out


def check_submission(results_path: str | os.PathLike, entries_dir: str | os.PathLike = DEFAULT_ROOT / "entries", *,
                     replace_dataset: bool = False) -> SubmissionPlan:
    """Run every check of :func:`submit` without writing or deleting anything.

    Parameters
    ----------
    results_path : path
        ``results.json`` or a folder holding one.
    entries_dir : path
        The leaderboard's ``entries`` folder.
    replace_dataset : bool
        Plan to delete the entries of another build of a submitted dataset instead of refusing.

    Returns
    -------
    SubmissionPlan
        The parsed file and the entries that accepting it would delete.

    Raises
    ------
    FormatError, SubmissionError
        As :func:`submit`.
    """
    p = Path(results_path)
    if p.is_dir():
        p = p / "results.json"
    obj = read_submission(p)
    entries_dir = Path(entries_dir)
    existing = load_entries(entries_dir)
    meta = obj.get("meta", {})
    problems = []
    stale: set[Path] = set()
    seen: dict[str, dict[str, Any]] = {}
    verified: dict[str, str] = {}
    for i, run in enumerate(obj["runs"]):
        where = f"{p}: $.runs[{i}]"
        problems += name_problems(run, where)
        for j, why in training_conflicts(run):
            problems.append(f"{where}.provenance.detector.trained_on[{j}]: {why}")
        conv = run["provenance"].get("conventions") or {}
        for key, want in standard_conventions().items():
            if conv.get(key) != want:
                problems.append(f"{where}.provenance.conventions.{key}: {conv.get(key)!r}; the "
                                f"leaderboard compares detectors under the crbench protocol ({key}={want!r}); "
                                "score again without --protocol/--dilation/--ignore/--pooling")
        if conv.get("pooling") == "pooled":  # per-image summaries are means, not functions of the curve
            problems += summary_problems(run, where)
        rule = run["summary"].get("op_rule")
        if rule is not None and not same_operating_point(rule, STANDARD_OP_RULE):
            problems.append(f"{where}.summary.op_rule: {rule!r}; leaderboard entries use the operating "
                            f"point {STANDARD_OP_RULE!r} (the default of crbench evaluate)")
        failed = run["provenance"].get("failed_samples") or {}
        if failed:
            problems.append(f"{where}.provenance.failed_samples: detector {run['detector']!r} failed on "
                            f"{len(failed)} sample(s) ({', '.join(sorted(failed)[:5])}); leaderboard entries "
                            "must score every sample")
        ds = run["provenance"]["dataset"]
        if ds.get("name") in EXCLUDED_DATASETS:
            problems.append(f"{where}.provenance.dataset: dataset {ds['name']!r} is not on the leaderboard: "
                            f"{EXCLUDED_DATASETS[ds['name']]}")
        problems.extend(f"{where}.provenance.dataset: {why}" for why in _dataset_problems(ds, verified))
        first = seen.setdefault(ds["name"], ds)
        if not _same_build(first, ds):
            problems.append(f"{where}.provenance.dataset: dataset {ds['name']!r} appears with two builds in one "
                            f"file ({first.get('content_hash')} and {ds.get('content_hash')})")
        # one build (content hash and version) per dataset name, whatever the version string says
        for e in existing:
            eds = e.run["provenance"]["dataset"]
            if eds["name"] != ds["name"] or _same_build(eds, ds):
                continue
            if replace_dataset:
                stale.add(e.path)
                continue
            problems.append(
                f"{where}.provenance.dataset: dataset {ds['name']!r} differs from the build the leaderboard "
                f"ranks: submitted {_build_label(ds, meta)}; the leaderboard's entries ({e.path.name}) used "
                f"{_build_label(eds, e.meta)}; score against the same build of the dataset (compare the "
                "versions above), or pass --replace-dataset to list the entries that would be deleted")
            break
        target = entries_dir / entry_filename(run)
        old = next((e for e in existing if e.path == target), None)
        if old is not None and old.path not in stale and not _same_build(old.run["provenance"]["dataset"], ds):
            problems.append(f"{where}: would overwrite {target.name}, an entry scored on another build of "
                            f"{ds['name']!r}; entries of another build are never overwritten")
    if problems:
        raise SubmissionError(f"{p}: submission refused ({len(problems)} problem(s)):\n" + "\n".join(problems))
    return SubmissionPlan(p, obj, sorted(stale))


def submit(results_path: str | os.PathLike, entries_dir: str | os.PathLike = DEFAULT_ROOT / "entries", *,
           replace_dataset: bool = False) -> list[Path]:
    """Accept every run of a results file onto the leaderboard.

    Nothing is written unless every run passes.

    Parameters
    ----------
    results_path : path
        ``results.json`` or a folder holding one (at most
        :data:`~crbench.leaderboard_checks.MAX_SUBMISSION_BYTES`).
    entries_dir : path
        The leaderboard's ``entries`` folder.
    replace_dataset : bool
        If a dataset on the leaderboard was scored on another build (content hash or version)
        than the submitted run, delete the old entries of that dataset instead of refusing
        (:func:`check_submission` lists them first; the CLI asks for ``--yes``).

    Returns
    -------
    list of Path
        The entry files written (an entry for the same detector, parameters, dataset build and
        split is replaced).

    Raises
    ------
    FormatError
        If the file is not a valid results file.
    SubmissionError
        If the file is too large or too deeply nested, a name is not a leaderboard name, a summary
        number does not match the submitted curve, a detector was trained on a test split or on
        the evaluated data, a run used other conventions or operating point than the crbench
        protocol, has failed samples, or the dataset build differs from entries already accepted.
    """
    plan = check_submission(results_path, entries_dir, replace_dataset=replace_dataset)
    entries_dir = Path(entries_dir)
    for old in plan.replaced:
        old.unlink(missing_ok=True)
    written = []
    for run in plan.obj["runs"]:
        entry = _entry_for(run, plan.obj.get("meta", {}), str(plan.source))
        target = entries_dir / entry_filename(run)
        validate_results(entry, target)
        write_text(target, entry_json(entry))
        _readable(target)
        written.append(target)
    return written


def _readable(path: Path) -> None:
    """World-readable like any published page (atomic writes create owner-only files)."""
    try:
        os.chmod(path, 0o644)
    except OSError:  # pragma: no cover - e.g. a file system without permissions
        pass
