"""Pin the content hashes of freshly built standard sets in ``crbench/registry/standard.json``.

For maintainers, after a change that moves a standard build (a new standard version): build the
sets (``crbench datasets build NAME --overwrite``), then::

    CRBENCH_DATA_DIR=/path/to/data python leaderboard/pin_standard.py NAME [NAME ...]

Each set is re-hashed from its files first (a build whose files do not match its card is refused),
and must be a standard build (card ``size: standard``). Other sets' entries, and the archive
entry of a set whose hash did not move, are kept. When the standard version of a set changes
(e.g. v2 -> v3), the old pin is kept under ``previous`` (``crbench.standard.previous_pins``), so
weights trained on the old build still name a pinned build. The registry is rewritten atomically.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crbench.atomic import write_text
from crbench.dataset import Dataset, verify_dataset
from crbench.errors import CRBenchError
from crbench.recipes import data_dir
from crbench.standard import library_versions

REGISTRY = ROOT / "crbench" / "registry" / "standard.json"


def pin(names: list[str], registry: Path = REGISTRY) -> dict[str, str]:
    """Pin each named standard build of the data dir; returns ``{name: 'kept' | 'moved <old> -> <new>' | 'new'}``."""
    reg = json.loads(registry.read_text(encoding="utf-8"))
    sets = reg.setdefault("sets", {})
    said: dict[str, str] = {}
    for name in names:
        ds = Dataset.open(data_dir() / "datasets" / name)
        if ds.card.get("size") != "standard":
            raise CRBenchError(f"{name}: the build in {ds.root} is not a standard build (size={ds.card.get('size')!r})")
        verify_dataset(ds)
        old = sets.get(name, {})
        if old.get("content_hash") == ds.content_hash:
            said[name] = "kept"
            continue
        said[name] = f"moved {str(old.get('content_hash'))[:12]} -> {ds.content_hash[:12]}" if old else "new"
        entry = {"standard": ds.card.get("standard"), "content_hash": ds.content_hash, "n_samples": len(ds),
                 "versions": library_versions(), "archive": None}
        previous = dict(old.get("previous", {}))
        if old and old.get("standard") != entry["standard"]:
            # a new standard version: the old pin stays on record, so what was trained or scored on it
            # (weight sidecars pin their training builds) can still be checked and rebuilt
            previous[str(old.get("standard"))] = {k: old[k] for k in ("content_hash", "n_samples", "versions")
                                                  if k in old}
            said[name] += f" (standard {old.get('standard')} kept as previous)"
        previous.pop(str(entry["standard"]), None)
        if previous:
            entry["previous"] = previous
        sets[name] = entry
    write_text(registry, json.dumps(reg, indent=1) + "\n")
    return said


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", help="standard set names, built in $CRBENCH_DATA_DIR/datasets")
    args = p.parse_args(argv)
    try:
        for name, what in pin(args.names).items():
            print(f"{name}: {what}")
    except CRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
