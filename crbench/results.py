"""Result files: a tidy table (``results.csv``, optional Parquet) and ``results.json`` with curves
and provenance.

The files of one run are written as one step: all into a temporary folder first, then the old
``results.json`` is removed, the tables are renamed into place and ``results.json`` is renamed last.
``results.json`` records the sha256 of each table it was written with (``meta.files``), so an
interrupted save never leaves a pair that looks consistent: either there is no ``results.json``, or
:meth:`Results.load` finds the tables' hashes differ and says so."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .atomic import current_umask, temporary_dir, write_json
from .errors import FormatError
from .hashing import file_sha256
from .jsonfile import read_json
from .schema import validate_results

#: Every file :meth:`Results.save` may write (an existing one means ``out`` holds results).
RESULT_FILES = ("results.json", "results.csv", "results_by_morphology.csv", "results.parquet")


def check_results_destination(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output folder that already holds result files, unless ``overwrite``.

    Raises
    ------
    FormatError
        Naming the folder, the file found, and the flag to pass.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FormatError(f"{out}: exists and is not a folder; choose another --out")
    if overwrite or not out.is_dir():
        return
    found = [n for n in RESULT_FILES if (out / n).exists()]
    if found:
        raise FormatError(f"{out}: already holds results ({found[0]}); pass --overwrite (overwrite=True) to "
                          "replace them, or choose another --out folder")



SCHEMA_VERSION = "1.0"

#: The result-table columns every run has, in order.
TABLE_COLUMNS = [
    "detector", "dataset", "split", "n_images", "cr_pixel_fraction", "roc_auc", "ap",
    "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "tpr_at_fpr_5e-3",
    "precision_at_recall_0.95", "precision_at_recall_0.99", "best_dice", "seconds_per_mpix",
]

#: Columns of ``results_by_morphology.csv``, in order.
MORPHOLOGY_COLUMNS = [
    "detector", "dataset", "split", "morphology", "n_crs", "cr_pixels", "recall_any", "recall_half",
    "recall_charge90", "pixel_tpr_at_fpr_5e-4",
    # Wilson 95% intervals of the per-CR recalls; rankable = at least 30 CRs (crbench.metrics.wilson)
    "recall_any_lo", "recall_any_hi", "recall_half_lo", "recall_half_hi", "recall_charge90_lo",
    "recall_charge90_hi", "rankable",
]


@dataclass
class Results:
    """Results of one or more (detector, dataset, split) runs.

    Attributes
    ----------
    runs : list of dict
        One entry per run: ``detector``, ``dataset``, ``split``, ``summary`` (the table row),
        ``curve`` (``fpr``, ``tpr``, ``precision``, ``recall``, ``thresholds`` lists), and
        ``provenance`` (detector version and parameters, dataset hash, conventions, failures, ...).
    meta : dict
        Run-wide provenance: crbench version, schema version, Python, platform, creation time.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The tidy summary table, one row per run."""
        rows = [r["summary"] for r in self.runs]
        df = pd.DataFrame(rows)
        cols = [c for c in TABLE_COLUMNS if c in df.columns] + [c for c in df.columns if c not in TABLE_COLUMNS]
        return df[cols] if len(df) else pd.DataFrame(columns=TABLE_COLUMNS)

    @property
    def morphology_table(self) -> pd.DataFrame:
        """Per-morphology rows of every run (``results_by_morphology.csv``), columns
        :data:`MORPHOLOGY_COLUMNS`; empty when no run has per-CR results."""
        rows = []
        for r in self.runs:
            for m in r.get("by_morphology") or []:
                row = {"detector": r["detector"], "dataset": r["dataset"], "split": r["split"]}
                row.update(m)
                rows.append(row)
        if not rows:
            return pd.DataFrame(columns=MORPHOLOGY_COLUMNS)
        df = pd.DataFrame(rows)
        for c in MORPHOLOGY_COLUMNS:
            if c not in df.columns:
                df[c] = np.nan
        return df[MORPHOLOGY_COLUMNS]

    def __repr__(self) -> str:
        """A concise summary: how many runs, on which datasets/splits, and each run's key numbers
        (the curves and provenance stay out; see :attr:`table` and :meth:`to_json_obj`)."""
        where = sorted({f"{r.get('dataset')}/{r.get('split')}" for r in self.runs})
        head = (f"Results({len(self.runs)} run{'s' if len(self.runs) != 1 else ''}"
                + (f" on {', '.join(where)}" if where else "") + ")")
        lines = [head]
        for r in self.runs:
            s = r.get("summary") or {}
            nums = []
            for key, label in (("roc_auc", "roc_auc"), ("ap", "ap"), ("tpr_at_fpr_5e-4", "tpr@fpr5e-4"),
                               ("best_dice", "best_dice")):
                v = s.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    nums.append(f"{label}={v:.4g}")
            n = s.get("n_images")
            failed = s.get("n_failed")
            extra = f" ({n} images" + (f", {failed} failed" if failed else "") + ")" if n is not None else ""
            lines.append(f"  {r.get('detector')} on {r.get('dataset')}/{r.get('split')}{extra}: " + " ".join(nums))
        return "\n".join(lines)

    __str__ = __repr__

    def extend(self, other: "Results") -> "Results":
        self.runs.extend(other.runs)
        if not self.meta:
            self.meta = dict(other.meta)
        return self

    def curve(self, detector: str, dataset: str | None = None, split: str | None = None) -> dict[str, Any]:
        for r in self.runs:
            if r["detector"] == detector and dataset in (None, r["dataset"]) and split in (None, r["split"]):
                return r["curve"]
        raise KeyError(f"no run for detector {detector!r} (dataset {dataset}, split {split})")

    def to_json_obj(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "meta": self.meta, "runs": self.runs}

    def save(self, out_dir: str | os.PathLike, *, parquet: bool = False, overwrite: bool = False) -> dict[str, Path]:
        """Write ``results.csv``, ``results.json``, ``results_by_morphology.csv`` (when any run has
        per-morphology rows) and optionally ``results.parquet`` into ``out_dir``, as one step (see
        the module docstring).

        Parameters
        ----------
        out_dir : path-like
            Output folder (created if missing; other files in it are left alone).
        parquet : bool
            Also write ``results.parquet``.
        overwrite : bool
            Replace result files already in ``out_dir`` (refused otherwise).

        Raises
        ------
        FormatError
            When ``out_dir`` already holds results and ``overwrite`` is False.
        """
        out = Path(out_dir)
        check_results_destination(out, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        names = {"csv": "results.csv", "json": "results.json"}
        morph = self.morphology_table
        if len(morph):
            names["by_morphology"] = "results_by_morphology.csv"
        if parquet:
            names["parquet"] = "results.parquet"
        mode = 0o666 & ~current_umask()
        with temporary_dir(out, "results") as tmp:
            self.table.to_csv(tmp / names["csv"], index=False)
            if "by_morphology" in names:
                morph.to_csv(tmp / names["by_morphology"], index=False)
            if parquet:
                self.table.to_parquet(tmp / names["parquet"], index=False)
            obj = self.to_json_obj()
            obj["meta"] = dict(obj["meta"])
            obj["meta"]["files"] = {n: file_sha256(tmp / n) for k, n in names.items() if k != "json"}
            write_json(tmp / names["json"], obj)
            for n in names.values():
                os.chmod(tmp / n, mode)
            # commit: drop the old results.json first (the marker), tables next, results.json last
            (out / "results.json").unlink(missing_ok=True)
            for n in RESULT_FILES:
                if n not in names.values():
                    (out / n).unlink(missing_ok=True)  # stale tables of an earlier run
            for k, n in names.items():
                if k != "json":
                    os.replace(tmp / n, out / n)
            os.replace(tmp / names["json"], out / names["json"])
        return {k: out / n for k, n in names.items()}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Results":
        """Load ``results.json`` (or a folder holding one), validated against the JSON Schema."""
        obj = read_results_json(path)
        p = Path(path)
        folder = p if p.is_dir() else p.parent
        for name, digest in (obj.get("meta", {}).get("files") or {}).items():
            f = folder / name
            if f.name != name or name not in RESULT_FILES:
                continue
            if f.exists() and file_sha256(f) != digest:
                raise FormatError(f"{f}: does not match {folder / 'results.json'} (written by another or an "
                                  "interrupted run); rerun 'crbench evaluate' with --overwrite")
        return cls(runs=list(obj["runs"]), meta=dict(obj.get("meta", {})))


def read_results_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``results.json`` (or a folder holding one); return the parsed object.

    Raises
    ------
    FormatError
        If the file is missing, not JSON, or fails validation (naming the file and JSON path).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.exists():
        raise FormatError(f"{p}: results file not found")
    obj = read_json(p, FormatError, "a results file")
    validate_results(obj, p)
    return obj



def run_meta() -> dict[str, Any]:
    """Run-wide provenance: versions and machine."""
    import datetime

    versions = {"crbench": __version__, "numpy": np.__version__, "pandas": pd.__version__}
    for mod in ("astroscrappy", "astropy", "torch", "deepCR"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "unknown")
    return {
        "crbench_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }
