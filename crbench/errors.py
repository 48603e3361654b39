"""Exception types raised by crbench.

Every error names the file, sample, detector or parameter at fault and says what was expected,
so that a user can act on the one line the CLI prints.
"""
from __future__ import annotations


class CRBenchError(Exception):
    """Base class of every error crbench raises on purpose."""


class SampleError(CRBenchError, ValueError):
    """A sample's arrays are inconsistent (shape, dtype, non-finite values)."""


class FormatError(CRBenchError, ValueError):
    """A file on disk is not a valid crbench file (truncated, corrupt, missing extension)."""


class DetectorError(CRBenchError, RuntimeError):
    """A detector raised, timed out, or returned an invalid score map."""


class DatasetError(CRBenchError, ValueError):
    """A dataset folder or its card is missing or inconsistent."""


class DownloadError(CRBenchError, RuntimeError):
    """A download failed: unreachable source, checksum mismatch or unsafe archive."""


class RegistryError(CRBenchError, KeyError):
    """An unknown detector, recipe or dataset name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class UsageError(CRBenchError, ValueError):
    """A command-line argument or function parameter has a value crbench cannot use."""


class DependencyError(CRBenchError, ImportError):
    """An optional package needed for the requested feature is not installed."""
