"""``crbench detectors list``."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("detectors", help="list registered detectors",
                       description="Detectors registered under the crbench.detectors entry-point group.")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lp = dsub.add_parser("list", help="list registered detectors and whether they import here")
    lp.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from crbench.detectors.registry import available_detectors, load_detector_class
    from crbench.errors import RegistryError

    for name, target in available_detectors().items():
        try:
            cls = load_detector_class(name)
            requires = ",".join(getattr(cls, "requires", ("image",)))
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            print(f"{name:18s} requires={requires:16s} {doc}")
        except RegistryError as exc:
            print(f"{name:18s} unavailable: {exc}")
    return 0
