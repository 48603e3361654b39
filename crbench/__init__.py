"""crbench: a benchmark and dataset suite for cosmic-ray detection in astronomical images."""
from __future__ import annotations

__version__ = "0.1.0"

from .sample import Sample, MORPHOLOGIES  # noqa: E402
from .errors import CRBenchError  # noqa: E402


def __getattr__(name: str):
    # Lazy imports keep `import crbench` light (no matplotlib, no astroscrappy at import time).
    if name == "Dataset":
        from .dataset import Dataset

        return Dataset
    if name == "evaluate":
        from .harness import evaluate

        return evaluate
    if name == "write_dataset":
        from .dataset import write_dataset

        return write_dataset
    raise AttributeError(f"module 'crbench' has no attribute {name!r}")


__all__ = ["Sample", "Dataset", "evaluate", "write_dataset", "MORPHOLOGIES", "CRBenchError", "__version__"]
