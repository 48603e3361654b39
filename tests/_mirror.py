"""Where the tests find the real-data mirror, and what they do when it is absent.

The mirror (a copy of the files listed in ``crbench/registry``, with a ``SHA256SUMS``) is found at
``$CRBENCH_TEST_MIRROR`` when that is set, else at ``../shared/data/real`` next to the repository.
Without it, tests that need it skip locally with the reason, and fail under CI (``$CI`` set), so
that a CI run cannot pass while silently leaving the real-data tests out.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "CRBENCH_TEST_MIRROR"


def in_ci() -> bool:
    """True when the environment variable ``CI`` is set to anything but empty/0/false/no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def mirror_path() -> Path:
    """The mirror's expected location (it may not exist)."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data" / "real"


def mirror_missing_reason() -> str | None:
    """None when the mirror is usable, else one line saying where it was looked for."""
    path = mirror_path()
    if (path / "SHA256SUMS").is_file():
        return None
    how = f"${ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else f"default location (set ${ENV_VAR} to override)"
    return f"real-data mirror absent: no SHA256SUMS in {path} ({how})"


def require_mirror() -> Path:
    """Return the mirror path; skip the calling test locally, fail it under CI, when it is absent."""
    reason = mirror_missing_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason}; CI must provide the mirror", pytrace=False)
        pytest.skip(reason)
    return mirror_path()


MIRROR = mirror_path()
