"""Regenerate every leaderboard entry from the current code: build, score, submit, render.

This is the one command behind the committed ``leaderboard/entries`` and pages::

    python leaderboard/regenerate.py --workers 2

It builds each leaderboard dataset (simulated sets at their standard size, real sets from the
verified downloads; ``CRBENCH_MIRROR`` may point at a local mirror), scores every baseline that
loads here with the leaderboard's conventions (crbench protocol, operating point chosen on val,
200 bootstrap replicates), writes the results under ``--results`` and replaces the entries folder
with the new entries in one step, then rebuilds ``leaderboard/README.md`` and ``index.html``.
A detector that cannot load here (an optional package missing) is skipped with one line.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Datasets on the leaderboard: simulated standard sets, then the real sets and their twins.
#: JWST enters through its ramp set, whose image is the stcal rate image (a JWST product); the last-group
#: images of sim-jwst-nircam are not what a JWST user scores, so that set stays off the leaderboard.
SIMULATED = ("sim-hst-acs-ex", "sim-hst-acs-gc", "sim-hst-acs-gal", "sim-decam", "sim-ground-small",
             "sim-jwst-nircam-ramps")
#: kast-science is off the leaderboard (crbench.leaderboard.EXCLUDED_DATASETS says why).
REAL = ("microobs-hatp32", "microobs-hatp32-sim", "microobs-hatp32-footprints")
DETECTORS = ("lacosmic", "median", "deepcr", "attention-unet", "unet-nogate", "deepcr-retrained", "cosmic-conn",
             "stcal-jump", "attention-unet-mixture", "attention-unet-mixture-60", "unet-nogate-mixture",
             "deepcr-retrained-mixture", "attention-unet-mixture-median")


def _scored(out: Path, content_hash: str, det) -> bool:
    """Whether ``out/results.json`` holds a run of ``det`` (same parameters) on this dataset build."""
    import json

    path = out / "results.json"
    if not path.is_file():
        return False
    try:
        run = json.loads(path.read_text())["runs"][0]
        prov = run["provenance"]
        return (prov["dataset"]["content_hash"] == content_hash and prov["detector"]["params_hash"] ==
                det.params_hash() and str(prov["detector"]["version"]) == str(det.version))
    except (KeyError, IndexError, ValueError):
        return False


def keep_other_entries(old: Path, new: Path, datasets: set[str], detectors: set[str]) -> int:
    """Copy the entries in ``old`` whose dataset or detector is outside this run into ``new``.

    Entries are read (and validated) by :func:`crbench.leaderboard_submit.load_entries`, so a corrupt
    entry is an error naming its file rather than something silently carried over.
    """
    from crbench.leaderboard_submit import load_entries

    kept = {e.path for e in load_entries(old)
            if e.run["dataset"] not in datasets or e.run["detector"] not in detectors}
    for path in sorted(kept):
        shutil.copy2(path, new / path.name)
    return len(kept)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="*", default=list(SIMULATED + REAL))
    p.add_argument("--detectors", nargs="*", default=list(DETECTORS))
    p.add_argument("--results", default=str(ROOT / "results" / "leaderboard"),
                   help="folder for the per-run results (default results/leaderboard)")
    p.add_argument("--entries", default=str(ROOT / "leaderboard" / "entries"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-score", action="store_true",
                   help="only submit results already written for the current builds; list the runs that have none")
    p.add_argument("--keep-others", action="store_true",
                   help="keep the committed entries of datasets and detectors this run does not cover (e.g. to add "
                        "the rows of new detectors without re-scoring the others)")
    p.add_argument("--rescore", action="store_true", help="score again even where results of the same dataset "
                                                           "build and detector parameters exist")
    a = p.parse_args(argv)

    from crbench.detectors.registry import get_detector
    from crbench.errors import CRBenchError
    from crbench.harness import evaluate
    from crbench.leaderboard import build, submit
    from crbench.recipes import resolve_dataset

    results_root = Path(a.results)
    new_entries = Path(tempfile.mkdtemp(prefix=".entries.", dir=Path(a.entries).parent))
    timings = []
    missing_runs: list[str] = []
    try:
        if a.keep_others:
            kept = keep_other_entries(Path(a.entries), new_entries, set(a.datasets), set(a.detectors))
            print(f"kept {kept} entries of datasets or detectors outside this run", flush=True)
        for name in a.datasets:
            t0 = time.perf_counter()
            ds = resolve_dataset(name, progress=not a.no_progress)
            print(f"{name}: {len(ds)} samples, content hash {ds.content_hash[:12]} "
                  f"({time.perf_counter() - t0:.0f} s to open or build)", flush=True)
            first = ds.load(ds.ids("test")[0])  # which inputs (exposures, ramp) the set's samples carry
            for det_name in a.detectors:
                try:
                    det = get_detector(det_name)
                except CRBenchError as exc:
                    print(f"  skipping {det_name}: {exc}", flush=True)
                    continue
                missing = det.missing_inputs(first)
                if missing:
                    print(f"  {det_name}: not applicable to {name} (needs {', '.join(missing)})", flush=True)
                    continue
                out = results_root / name / det_name
                if not a.rescore and _scored(out, ds.content_hash, det):
                    print(f"  {det_name}: results for this build and detector already in {out}", flush=True)
                elif a.no_score:
                    print(f"  {det_name}: NOT SCORED on this build (no results in {out})", flush=True)
                    missing_runs.append(f"{name}/{det_name}")
                    continue
                else:
                    t1 = time.perf_counter()
                    try:
                        evaluate(det, ds, split="test", progress=not a.no_progress, out=out, overwrite=True,
                                 bootstrap=a.bootstrap, workers=a.workers, cache=True)
                    except CRBenchError as exc:
                        print(f"  {det_name}: not scored: {exc}", flush=True)
                        continue
                    dt = time.perf_counter() - t1
                    timings.append((name, det_name, dt))
                    print(f"  {det_name}: scored in {dt:.0f} s", flush=True)
                submit(out / "results.json", new_entries)
        old = Path(a.entries)
        backup = old.with_name(f".{old.name}.old")
        if backup.exists():
            shutil.rmtree(backup)
        if old.exists():
            old.rename(backup)
        new_entries.rename(old)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(new_entries, ignore_errors=True)
        raise
    for path in build(a.entries).values():
        print(f"wrote {path}")
    total = sum(t for _, _, t in timings)
    print(f"scored {len(timings)} runs in {total / 60:.1f} min")
    if missing_runs:
        print(f"not scored ({len(missing_runs)}): {', '.join(missing_runs)}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
