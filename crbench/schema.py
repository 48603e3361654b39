"""Validation of results files against the versioned JSON Schema ``schemas/results.schema.json``.

Every error names the file and the JSON path at fault, for example::

    results.json: $.runs[0].provenance.dataset: 'content_hash' is a required property

The schema checks structure and types; :func:`validate_results` adds the checks a schema cannot
express (curve arrays of equal length, rates within [0, 1], run and summary agreeing).
"""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from .errors import FormatError

SCHEMA_FILE = Path(__file__).parent / "schemas" / "results.schema.json"
#: Major version of the results format this crbench reads.
SUPPORTED_MAJOR = 1
#: Errors listed in one message at most.
MAX_ERRORS = 8

_CURVE_KEYS = ("fpr", "tpr", "precision", "recall", "thresholds")
_RATE_KEYS = ("fpr", "tpr", "precision", "recall", "tpr_lo", "tpr_hi", "precision_lo", "precision_hi")


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The results JSON Schema (draft 2020-12) as a dict."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def json_path(parts: Iterable[Any]) -> str:
    """Render a sequence of keys and indices as a JSONPath such as ``$.runs[0].curve.fpr``."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.isidentifier():
            out += f".{p}"
        else:
            out += f"[{json.dumps(p)}]"
    return out


@functools.lru_cache(maxsize=1)
def _validator():
    """A validator of the schema with number arrays checked as arrays only.

    jsonschema spends about 0.5 ms per curve point checking each item of ``$defs/numbers``;
    :func:`_number_array_errors` checks those items in one pass instead (same messages).
    """
    import copy

    import jsonschema

    schema = copy.deepcopy(load_schema())
    schema["$defs"]["numbers"] = {"type": "array"}
    return jsonschema.Draft202012Validator(schema)


def _number_array_errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Items of the curve arrays (``$defs/numbers``) that are neither numbers nor null."""
    found = []
    arrays = [k for k, v in load_schema()["$defs"]["curve"]["properties"].items()
              if v.get("$ref") == "#/$defs/numbers"]
    for i, run in enumerate(obj.get("runs") or []):
        curve = run.get("curve") if isinstance(run, dict) else None
        if not isinstance(curve, dict):
            continue
        for k in arrays:
            vals = curve.get(k)
            if not isinstance(vals, list):
                continue
            for j, v in enumerate(vals):
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    msg = f"{v!r} is not of type 'number', 'null'"
                    if len(msg) > 200:
                        msg = msg[:200] + "..."
                    found.append((json_path(["runs", i, "curve", k, j]), msg))
                    break
    return found


def _schema_errors(obj: Any) -> list[tuple[str, str]]:
    validator = _validator()
    found = _number_array_errors(obj) if isinstance(obj, dict) else []
    for err in validator.iter_errors(obj):
        msg = err.message
        if len(msg) > 200:
            msg = msg[:200] + "..."
        found.append((json_path(err.absolute_path), msg))
    return sorted(set(found))


def _semantic_errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for i, run in enumerate(obj.get("runs") or []):
        if not isinstance(run, dict):
            continue
        curve = run.get("curve")
        if isinstance(curve, dict):
            lengths = {k: len(curve[k]) for k in _CURVE_KEYS if isinstance(curve.get(k), list)}
            for k in ("tpr_lo", "tpr_hi", "precision_lo", "precision_hi"):
                if isinstance(curve.get(k), list):
                    lengths[k] = len(curve[k])
            if len(set(lengths.values())) > 1:
                found.append((json_path(["runs", i, "curve"]),
                              f"curve arrays differ in length: {lengths}; they must be equal"))
            for k in _RATE_KEYS:
                vals = curve.get(k)
                if not isinstance(vals, list):
                    continue
                for j, v in enumerate(vals):
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
                            and not (-1e-9 <= v <= 1 + 1e-9):
                        found.append((json_path(["runs", i, "curve", k, j]),
                                      f"{v!r} is outside [0, 1]; rates and precisions must lie in [0, 1]"))
                        break
        summary = run.get("summary")
        if isinstance(summary, dict):
            for key in ("detector", "dataset", "split"):
                if key in summary and key in run and summary[key] != run[key]:
                    found.append((json_path(["runs", i, "summary", key]),
                                  f"{summary[key]!r} disagrees with the run's {key} {run[key]!r}"))
        prov = run.get("provenance")
        if isinstance(prov, dict) and isinstance(prov.get("dataset"), dict):
            ds = prov["dataset"]
            for key, run_key in (("name", "dataset"), ("split", "split")):
                if key in ds and run_key in run and ds[key] != run[run_key]:
                    found.append((json_path(["runs", i, "provenance", "dataset", key]),
                                  f"{ds[key]!r} disagrees with the run's {run_key} {run[run_key]!r}"))
    return found


def results_errors(obj: Any) -> list[tuple[str, str]]:
    """All problems of a parsed results object as ``(json_path, message)`` pairs (empty = valid)."""
    if isinstance(obj, dict) and isinstance(obj.get("schema_version"), str):
        major = obj["schema_version"].split(".")[0]
        if major.isdigit() and int(major) != SUPPORTED_MAJOR:
            return [("$.schema_version", f"results format version {obj['schema_version']!r} is not supported; "
                                         f"this crbench reads {SUPPORTED_MAJOR}.x (upgrade crbench)")]
    errors = _schema_errors(obj)
    if isinstance(obj, dict):
        errors += _semantic_errors(obj)
    return errors


def validate_results(obj: Any, source: str | os.PathLike = "<results>") -> None:
    """Validate a parsed results object.

    Parameters
    ----------
    obj : object
        The parsed JSON of a results file.
    source : str or path
        File name used in the message.

    Raises
    ------
    FormatError
        Listing up to :data:`MAX_ERRORS` problems, each as ``FILE: JSONPATH: what is wrong``.
    """
    errors = results_errors(obj)
    if not errors:
        return
    lines = [f"{source}: {path}: {msg}" for path, msg in errors[:MAX_ERRORS]]
    more = f"\n... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
    raise FormatError(f"{source}: not a valid crbench results file ({len(errors)} problem(s)):\n"
                      + "\n".join(lines) + more)
