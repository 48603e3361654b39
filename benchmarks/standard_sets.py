"""The README table of the standard datasets: images, Mpix and CRs per class per split, build time, size.

For each standard set (the simulated recipes with standard sizes) built in the data dir
(``$CRBENCH_DATA_DIR/datasets/NAME``), one row per split and one for all splits: images,
megapixels, CRs and CRs per morphology class (:func:`crbench.dataset_info.split_counts`). The build
time is the card's ``build_seconds`` (recorded by ``crbench datasets build``) or, for a card
without it, the ``NAME SECONDS s ... KB`` line of a build log written by
``/usr/bin/time -f "NAME %e s %M KB"`` (``--build-log``); the disk size is the space the folder
takes (like ``du``). A set that is not built gets one row saying so.

Prints the Markdown table and writes ``standard_sets.md`` and ``standard_sets.csv`` into ``--out``
(temporary files, then renamed).

Usage::

    CRBENCH_DATA_DIR=/work/data python benchmarks/standard_sets.py [--out results/standard_sets]
        [--build-log /tmp/build_std.log] [NAME ...]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from crbench.sample import MORPHOLOGIES  # noqa: E402

#: What the table says for a standard set that is not in the data dir.
NOT_BUILT = "not built in this run"
_LOG_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<seconds>[0-9.]+)\s+s\b")


def standard_names() -> list[str]:
    """The standard sets: every simulated recipe with standard sizes."""
    from crbench.standard import load_standard_registry
    from data_recipes.sim_recipes import STANDARD

    # the simulated recipes' standard sizes, then any other pinned standard set (e.g. the ramp set)
    return list(STANDARD) + [n for n in load_standard_registry()["sets"] if n not in STANDARD]


def disk_bytes(folder: str | os.PathLike) -> int:
    """Bytes the files under ``folder`` take on disk (allocated blocks, as ``du`` counts them)."""
    total = 0
    for p in Path(folder).rglob("*"):
        st = p.lstat()
        blocks = getattr(st, "st_blocks", None)
        total += blocks * 512 if blocks is not None else st.st_size
    return total


def build_seconds_from_log(path: str | os.PathLike | None) -> dict[str, float]:
    """``NAME -> seconds`` from the ``NAME SECONDS s ...`` lines of a build log (last one wins)."""
    out: dict[str, float] = {}
    if path is None or not Path(path).exists():
        return out
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LOG_LINE.match(line.strip())
        if m:
            out[m["name"]] = float(m["seconds"])
    return out


def set_rows(name: str, root: Path, logged: dict[str, float]) -> list[dict[str, Any]]:
    """Rows of one standard set: one per split, then ``all`` (or one ``not built`` row)."""
    from crbench.dataset import Dataset
    from crbench.dataset_info import split_counts

    if not (root / "dataset.json").exists():
        return [{"dataset": name, "split": "", "status": NOT_BUILT}]
    ds = Dataset.open(root, check_files=False)
    counts = split_counts(ds)
    seconds = ds.card.get("build_seconds")
    source = "card"
    if seconds is None and name in logged:
        seconds, source = logged[name], "build log"
    size = disk_bytes(root)
    rows = []
    for split, row in counts.iterrows():
        r: dict[str, Any] = {"dataset": name, "split": split, "status": ds.card.get("size", "unknown"),
                             "images": int(row["images"]), "mpix": round(float(row["mpix"]), 4),
                             "crs": int(row["crs"])}
        for m in MORPHOLOGIES:
            r[m] = int(row[m]) if m in row.index else 0
        r["build_seconds"] = float(seconds) if seconds is not None else None
        r["build_time_from"] = source if seconds is not None else "not recorded"
        r["disk_bytes"] = int(size)
        rows.append(r)
    return rows


def standard_table(names: list[str], data_dir: str | os.PathLike,
                   build_log: str | os.PathLike | None = None) -> pd.DataFrame:
    """The table of ``names`` as found under ``data_dir/datasets``."""
    logged = build_seconds_from_log(build_log)
    rows = []
    for name in names:
        rows += set_rows(name, Path(data_dir) / "datasets" / name, logged)
    cols = (["dataset", "split", "status", "images", "mpix", "crs", *MORPHOLOGIES, "build_seconds",
             "build_time_from", "disk_bytes"])
    table = pd.DataFrame(rows).reindex(columns=cols)
    for c in ("images", "crs", *MORPHOLOGIES, "disk_bytes"):
        table[c] = table[c].astype("Int64")  # whole numbers, empty for a set that is not built
    return table


def _fmt_seconds(s: Any) -> str:
    if s is None or pd.isna(s):
        return "not recorded"
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def to_markdown(table: pd.DataFrame) -> str:
    """The README table: one row per split; build time and size on each set's ``all`` row."""
    from crbench.dataset_info import format_mpix

    head = ["set", "split", "images", "Mpix", "CRs", *MORPHOLOGIES, "build time", "disk size"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    prev = None
    for _, r in table.iterrows():
        if r["status"] == NOT_BUILT:
            lines.append(f"| `{r['dataset']}` | {NOT_BUILT} |" + " |" * (len(head) - 2))
            continue
        last = r["split"] == "all"
        cells = [f"`{r['dataset']}`" if r["dataset"] != prev else "", str(r["split"]), str(int(r["images"])),
                 format_mpix(r["mpix"]), str(int(r["crs"]))]
        cells += [str(int(r[m])) for m in MORPHOLOGIES]
        cells += [_fmt_seconds(r["build_seconds"]) if last else "",
                  f"{int(r['disk_bytes']) / 1e6:.0f} MB" if last else ""]  # MB = 10^6 bytes
        lines.append("| " + " | ".join(cells) + " |")
        prev = r["dataset"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="standard sets (default: all of them)")
    p.add_argument("--out", default="results/standard_sets", help="folder for standard_sets.{md,csv}")
    p.add_argument("--build-log", default=None,
                   help="build log with 'NAME SECONDS s ...' lines, for cards without build_seconds")
    args = p.parse_args(argv)
    from crbench.atomic import write_text
    from crbench.recipes import data_dir

    known = standard_names()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"standard_sets: {', '.join(unknown)}: not a standard set; standard sets: {', '.join(known)}",
              file=sys.stderr)
        return 2
    table = standard_table(args.names or known, data_dir(), args.build_log)
    md = to_markdown(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "standard_sets.md", md)
    write_text(out / "standard_sets.csv", table.to_csv(index=False))
    print(md, end="")
    print(f"wrote {out / 'standard_sets.md'} and {out / 'standard_sets.csv'}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
