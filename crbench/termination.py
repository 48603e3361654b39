"""SIGTERM as a clean unwind, for the ``crbench`` command and the maintainers' scripts.

A SIGTERM (``kill``, a batch scheduler's time limit) kills Python without running ``finally``
blocks, so a write in progress (:func:`crbench.atomic.atomic_path`) would leave its hidden temporary
file beside the target. :func:`exit_cleanly_on_sigterm` turns the signal into :class:`Terminated`
(a :class:`SystemExit` with status 143) raised in the main thread, so the stack unwinds as it does
for Ctrl-C. :func:`run_script` runs a script's ``main()`` that way; every script under
``benchmarks/``, ``leaderboard/`` and ``baselines/`` with a ``__main__`` block uses it.
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Callable, NoReturn

#: Exit status of a process stopped by SIGTERM (the shell's 128 + signal number).
SIGTERM_EXIT_STATUS = 128 + int(signal.SIGTERM)


class Terminated(SystemExit):
    """Raised in the main thread when the process gets SIGTERM (exit status :data:`SIGTERM_EXIT_STATUS`)."""

    def __init__(self) -> None:
        super().__init__(SIGTERM_EXIT_STATUS)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def exit_cleanly_on_sigterm() -> bool:
    """Turn SIGTERM into :class:`Terminated`, raised in the main thread, so that ``finally`` blocks and
    :func:`crbench.atomic.atomic_path` run and no hidden temporary file is left beside its target.

    Installed only from the main thread and only over the default action (an embedding program's own
    handler is kept). Returns whether it was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


def run_script(main: Callable[[], int | None], name: str | None = None) -> NoReturn:
    """Run a script's ``main()`` and exit with its status; a SIGTERM unwinds cleanly.

    Parameters
    ----------
    main : callable
        The script's entry point, called without arguments (it reads ``sys.argv``); returns the exit
        status (``None`` is 0).
    name : str, optional
        The name in the one-line message a SIGTERM prints (default: the script's file name).

    Raises
    ------
    SystemExit
        Always: with ``main``'s status, or with 143 after SIGTERM, once every ``finally`` block (and
        so every atomic write's clean-up) has run.
    """
    installed = exit_cleanly_on_sigterm()
    try:
        status = main()
    except Terminated:
        label = name or Path(sys.argv[0]).name or "script"
        print(f"{label}: terminated (SIGTERM); partial outputs removed", file=sys.stderr)
        raise
    finally:
        if installed:  # an in-process caller gets the default action back
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(status)
