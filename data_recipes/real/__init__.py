"""Real-data recipes: multi-exposure labelling of real frames, negative controls, simulated twins,
real CR footprint injection and converters for the published sets.

Importing this package registers its recipes: every non-underscore submodule is imported.
"""
from __future__ import annotations

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
