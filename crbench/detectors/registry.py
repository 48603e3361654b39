"""Detector registry: the ``crbench.detectors`` entry-point group, plus ``module:Class`` specs.

Built-in baselines register through the same entry-point group as third-party packages.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ..errors import CRBenchError, DetectorError, RegistryError
from .base import Detector

GROUP = "crbench.detectors"
_RUNTIME: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector], name: str | None = None) -> type[Detector]:
    """Register a detector class at run time (usable as a decorator)."""
    _RUNTIME[name or cls.name] = cls
    return cls


def available_detectors() -> dict[str, str]:
    """Map of registered detector name -> ``module:Class`` target."""
    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    found.update({n: f"{c.__module__}:{c.__qualname__}" for n, c in _RUNTIME.items()})
    return dict(sorted(found.items()))


def load_detector_class(spec: str) -> type[Detector]:
    """Resolve a registered name or a ``package.module:ClassName`` spec to a detector class.

    Raises
    ------
    RegistryError
        If the name is unknown or the module/class cannot be imported.
    """
    if spec in _RUNTIME:
        return _RUNTIME[spec]
    for ep in entry_points(group=GROUP):
        if ep.name == spec:
            try:
                return ep.load()
            except ImportError as exc:
                raise RegistryError(f"detector {spec!r} is registered but cannot be imported: {exc}; "
                                    "install its extra (see README)") from exc
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = _import_from_cwd(module_name)
        except ImportError as exc:
            raise RegistryError(f"detector spec {spec!r}: cannot import module {module_name!r} ({exc}); "
                                "is its folder on PYTHONPATH?") from exc
        obj: Any = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise RegistryError(f"detector spec {spec!r}: module {module_name!r} has no {attr!r}")
            obj = getattr(obj, part)
        if not (isinstance(obj, type) and hasattr(obj, "score")):
            raise RegistryError(f"detector spec {spec!r} is not a detector class (needs a score method)")
        return obj
    names = ", ".join(available_detectors()) or "none"
    raise RegistryError(f"unknown detector {spec!r}; registered: {names}; or give 'module:ClassName'")


def _import_from_cwd(module_name: str):
    """Import ``module_name``, also looking in the current folder (console scripts do not)."""
    import os
    import sys

    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if cwd in sys.path or not (exc.name and module_name.startswith(exc.name)):
            raise
        sys.path.insert(0, cwd)
        try:
            return importlib.import_module(module_name)
        finally:
            if cwd in sys.path:
                sys.path.remove(cwd)


def get_detector(spec: str | Detector, **params: Any) -> Detector:
    """Return a detector instance from a name, a ``module:Class`` spec, or an instance.

    Raises
    ------
    RegistryError
        If ``spec`` names no detector.
    DetectorError
        If the detector's constructor raises (or calls ``sys.exit``), naming the detector.
    """
    if isinstance(spec, Detector) or (hasattr(spec, "score") and not isinstance(spec, (str, type))):
        return spec  # type: ignore[return-value]
    cls = load_detector_class(spec)
    try:
        det = cls(**params)
    except CRBenchError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's constructor: one clear line, not its traceback
        what = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        given = f" with parameters {params}" if params else ""
        raise DetectorError(f"detector {spec!r} could not be created{given}: its __init__ raised {what}") from exc
    if not getattr(det, "name", None) or det.name == "detector":
        try:
            det.name = spec  # type: ignore[misc]
        except AttributeError:
            pass
    return det
