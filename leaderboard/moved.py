"""What moved: leaderboard numbers of an earlier commit next to the current entries.

    python leaderboard/moved.py --before 4e86515 > moved.md

Reads the entries committed at ``--before`` (through ``git show``) and the current
``leaderboard/entries``, and prints a Markdown table of AP and TPR at FPR 5e-4 per dataset and
detector, before and after, with the change. Datasets or detectors present on one side only are
listed with a dash on the other.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = (("ap", "AP"), ("tpr_at_fpr_5e-4", "TPR@5e-4"))


def _summaries(objs: list[dict]) -> dict[tuple[str, str], dict]:
    out = {}
    for obj in objs:
        for run in obj.get("runs", []):
            out[(run["dataset"], run["detector"])] = run["summary"] | {
                "_hash": run["provenance"]["dataset"]["content_hash"][:12]}
    return out


def _old_entries(ref: str) -> list[dict]:
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{ref}:leaderboard/entries"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    return [json.loads(subprocess.run(["git", "show", f"{ref}:leaderboard/entries/{n}"], cwd=ROOT,
                                      capture_output=True, text=True, check=True).stdout) for n in names]


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git commit of the earlier leaderboard")
    p.add_argument("--entries", default=str(ROOT / "leaderboard" / "entries"))
    a = p.parse_args(argv)
    old = _summaries(_old_entries(a.before))
    new = _summaries([json.loads(f.read_text()) for f in sorted(Path(a.entries).glob("*.json"))])
    head = "| dataset | detector | " + " | ".join(f"{n} before | {n} after | change" for _, n in KEYS) + " |"
    print(head)
    print("|" + "---|" * (2 + 3 * len(KEYS)))
    for key in sorted(set(old) | set(new)):
        o, n = old.get(key, {}), new.get(key, {})
        cells = []
        for k, _ in KEYS:
            b, c = o.get(k), n.get(k)
            d = (c - b) if isinstance(b, (int, float)) and isinstance(c, (int, float)) else None
            cells += [_fmt(b), _fmt(c), "-" if d is None or math.isnan(d) else f"{d:+.3f}"]
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
