"""``crbench detectors list``: registered detectors, whether each loads here, and what it is."""
from __future__ import annotations

import argparse
import re
from typing import Any

#: Errors that mean "this detector cannot be loaded here" (missing optional package, weights, ...).
LOAD_ERRORS: tuple[type[Exception], ...] = (ImportError, OSError)


def _load_errors() -> tuple[type[Exception], ...]:
    """What loading a detector may raise for a reason its user can fix (crbench's errors included)."""
    from crbench.errors import CRBenchError

    return (CRBenchError, *LOAD_ERRORS)


def add_parser(sub) -> None:
    p = sub.add_parser("detectors", help="list registered detectors",
                       description="Detectors registered under the crbench.detectors entry-point group.")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lp = dsub.add_parser("list", help="list registered detectors, whether they load here, and what they are",
                         description="Instantiates every registered detector with its default parameters and "
                                     "prints 'ok' or the one-line reason it cannot load here, and a description.")
    lp.set_defaults(func=run_list)


def load_detector(name: str) -> tuple[Any, str | None]:
    """Instantiate registered detector ``name`` with default parameters.

    Parameters
    ----------
    name : str
        A registered detector name.

    Returns
    -------
    detector, reason : Detector or None, str or None
        The instance and ``None``, or ``None`` and the one-line reason it cannot load here (a
        missing optional package, missing weights, an import failure, any error of its constructor).
    """
    from crbench.detectors.registry import get_detector

    try:
        return get_detector(name), None
    except _load_errors() as exc:
        return None, " ".join(str(exc).split()) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a third-party plugin's constructor may raise anything
        return None, f"detector {name!r} failed to initialise: {type(exc).__name__}: {' '.join(str(exc).split())}"


_ROLE = re.compile(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")


def plain_description(cls: type) -> str:
    """One plain-text sentence describing a detector class.

    Its ``description`` attribute when it has one, else the first sentence of its docstring with
    reStructuredText markup (````literal````, ``:class:`~a.B```) reduced to plain text.
    """
    text = getattr(cls, "description", None)
    if not isinstance(text, str) or not text.strip():
        doc = cls.__doc__ or ""
        text = doc.strip().split("\n\n", 1)[0]
    text = " ".join(text.split())
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if "." in m.group(1) else m.group(1), text)
    text = text.replace("``", "")
    m = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.(?=\s+[A-Z]|$)", text)
    return text[: m.start() + 1] if m else text


def run_list(args: argparse.Namespace) -> int:
    from crbench.detectors.registry import available_detectors, load_detector_class

    for name in available_detectors():
        det, reason = load_detector(name)
        try:
            desc = plain_description(type(det) if det is not None else load_detector_class(name))
        except _load_errors():
            desc = ""
        if det is not None:
            requires = ",".join(getattr(det, "requires", ("image",)))
            print(f"{name:18s} ok  {desc} (needs {requires})")
        else:
            print(f"{name:18s} unavailable: {reason}")
            if desc:
                print(f"{'':18s} {desc}")
    return 0
