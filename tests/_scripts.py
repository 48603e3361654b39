"""Import a script of ``benchmarks/`` or ``leaderboard/`` (not a package) as a module, for its tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, module_name: str | None = None) -> ModuleType:
    """Execute ``REPO_ROOT/relative_path`` as a fresh module and return it."""
    path = REPO_ROOT / relative_path
    spec = importlib.util.spec_from_file_location(module_name or path.stem, path)
    assert spec is not None and spec.loader is not None, f"cannot import {path}"
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
