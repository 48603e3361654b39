"""``crbench leaderboard submit|build``."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="submit results to the leaderboard and build its pages",
                       description="Accept result files into leaderboard/entries/ (validated, provenance "
                                   "checked) and build leaderboard/README.md and leaderboard/index.html.")
    lsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = lsub.add_parser("submit", help="validate a results file and add its runs as entries",
                         description="Validate RESULTS against the results schema and check its provenance "
                                     "(no training on a test split or on the scored data, no failed samples, "
                                     "one content hash per dataset version); write one entry per run.")
    sp.add_argument("results", nargs="+", metavar="RESULTS", help="results.json file(s) or folders holding one")
    sp.add_argument("--entries", default="leaderboard/entries", help="entries folder (default leaderboard/entries)")
    sp.add_argument("--replace-dataset", action="store_true",
                    help="drop old entries of a dataset version whose content hash differs")
    sp.add_argument("--build", action="store_true", help="rebuild the pages afterwards")
    sp.set_defaults(func=run_submit)

    bp = lsub.add_parser("build", help="write README.md and index.html from the entries")
    bp.add_argument("--entries", default="leaderboard/entries", help="entries folder (default leaderboard/entries)")
    bp.add_argument("--out", default=None, help="output folder (default: the entries folder's parent)")
    bp.set_defaults(func=run_build)


def run_submit(args: argparse.Namespace) -> int:
    from crbench.leaderboard import build, submit

    for path in args.results:
        for p in submit(path, args.entries, replace_dataset=args.replace_dataset):
            print(f"accepted {p}")
    if args.build:
        for p in build(args.entries).values():
            print(f"wrote {p}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from crbench.leaderboard import build, load_entries

    paths = build(args.entries, args.out)
    n = len(load_entries(args.entries))
    for p in paths.values():
        print(f"wrote {p}")
    print(f"{n} entries from {Path(args.entries)}")
    return 0
