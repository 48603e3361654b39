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
                                     "one dataset build per dataset name, summary numbers matching the curve, "
                                     "plain names); write one entry per run.")
    sp.add_argument("results", nargs="+", metavar="RESULTS", help="results.json file(s) or folders holding one")
    sp.add_argument("--entries", default="leaderboard/entries", help="entries folder (default leaderboard/entries)")
    sp.add_argument("--replace-dataset", action="store_true",
                    help="list the entries scored on another build (content hash or version) of a submitted "
                         "dataset; with --yes, delete them and accept the submission")
    sp.add_argument("--yes", action="store_true",
                    help="confirm --replace-dataset: delete the listed entries (without it nothing is deleted "
                         "and the command exits with status 1)")
    sp.add_argument("--build", action="store_true", help="rebuild the pages afterwards")
    sp.set_defaults(func=run_submit)

    bp = lsub.add_parser("build", help="write README.md and index.html from the entries")
    bp.add_argument("--entries", default="leaderboard/entries", help="entries folder (default leaderboard/entries)")
    bp.add_argument("--out", default=None, help="output folder (default: the entries folder's parent)")
    bp.set_defaults(func=run_build)


def run_submit(args: argparse.Namespace) -> int:
    import sys

    from crbench.leaderboard import build, check_submission, submit

    if args.replace_dataset and not args.yes:
        doomed = []
        for path in args.results:
            doomed += check_submission(path, args.entries, replace_dataset=True).replaced
        for p in sorted(set(doomed)):
            print(f"would delete {p}")
        print(f"--replace-dataset: {len(set(doomed))} entr{'y' if len(set(doomed)) == 1 else 'ies'} of another "
              "dataset build would be deleted; nothing was changed; pass --yes as well to delete "
              f"{'them' if doomed else 'nothing'} and accept the submission", file=sys.stderr)
        return 1
    for path in args.results:
        if args.replace_dataset:
            for p in check_submission(path, args.entries, replace_dataset=True).replaced:
                print(f"deleting {p} (another build of its dataset)")
        for p in submit(path, args.entries, replace_dataset=args.replace_dataset):
            print(f"accepted {p}")
    if args.build:
        for p in build(args.entries).values():
            print(f"wrote {p}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from crbench.errors import UsageError
    from crbench.leaderboard import build, load_entries

    entries = Path(args.entries)
    if not entries.is_dir():
        what = "is not a folder" if entries.exists() else "does not exist"
        raise UsageError(f"--entries {entries}: {what}; expected the leaderboard's entries folder "
                         "(created by 'crbench leaderboard submit')")
    paths = build(args.entries, args.out)
    n = len(load_entries(args.entries))
    for p in paths.values():
        print(f"wrote {p}")
    print(f"{n} entries from {Path(args.entries)}")
    return 0
