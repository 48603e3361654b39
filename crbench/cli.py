"""The ``crbench`` command.

Each subcommand lives in its own module under :mod:`crbench.commands` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches and turns
crbench errors (:class:`~crbench.errors.CRBenchError`: the user's input is at fault) into one
clear line (a traceback only with ``--debug``). Any other exception is a bug in crbench or in a
plugin: it keeps its traceback, followed by a line asking to report it. A SIGTERM (``kill``, a batch
scheduler's time limit) unwinds like Ctrl-C, so atomic writes remove their temporary files
(:func:`crbench.termination.exit_cleanly_on_sigterm`), and the command exits with 143.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import traceback
from typing import Sequence

from . import __version__
from .errors import CRBenchError
from .termination import SIGTERM_EXIT_STATUS, Terminated, exit_cleanly_on_sigterm

__all__ = ["SIGTERM_EXIT_STATUS", "Terminated", "build_parser", "exit_cleanly_on_sigterm", "main"]


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
    installed = exit_cleanly_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("crbench: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("crbench: terminated (SIGTERM); partial outputs removed", file=sys.stderr)
        return SIGTERM_EXIT_STATUS
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
    finally:
        if installed:  # an in-process caller (tests, notebooks) gets the default action back
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
