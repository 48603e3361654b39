"""The ``crbench`` command.

Each subcommand lives in its own module under :mod:`crbench.commands` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches and turns
crbench errors (:class:`~crbench.errors.CRBenchError`: the user's input is at fault) into one
clear line (a traceback only with ``--debug``). Any other exception is a bug in crbench or in a
plugin: it keeps its traceback, followed by a line asking to report it.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from typing import Sequence

from . import __version__
from .errors import CRBenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crbench",
        description="crbench: benchmark and datasets for cosmic-ray detection in astronomical images.",
    )
    parser.add_argument("--version", action="version", version=f"crbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import crbench.commands as commands

    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"crbench.commands.{mod.name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crbench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("crbench: interrupted", file=sys.stderr)
        return 130
    except CRBenchError as exc:
        if args.debug:
            raise
        print(f"crbench: error: {exc}", file=sys.stderr)
        return 1
    except Exception:  # a bug, not a user error: keep the traceback
        if args.debug:
            raise
        traceback.print_exc()
        print("crbench: internal error (a bug in crbench or in a plugin, not in your input); please report "
              "it on the project's issue tracker with the traceback above", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
