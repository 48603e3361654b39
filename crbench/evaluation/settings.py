"""The settings of an evaluation, grouped and validated in one :class:`EvaluationSettings`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import default_cache_dir
from ..conventions import Conventions, resolve_conventions
from ..errors import UsageError
from ..metrics.operating import parse_operating_point

#: Default rule of the operating point: threshold at this FPR on the validation split.
DEFAULT_OPERATING_POINT = "fpr:5e-4"


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything besides the detectors and the dataset that determines an evaluation.

    Parameters
    ----------
    split : str
        ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
    protocol : str, optional
        ``'crbench'`` (default), ``'deepcr'`` or ``'cosmic-conn'``; ``dilation``, ``ignore``,
        ``pooling`` and ``halo`` override single conventions (see :mod:`crbench.conventions`).
    n_bins : int, optional
        Number of score bins for continuous scores (default 32768).
    on_error : {'continue', 'raise'}
        On a detector failure (exception, bad output, timeout), record the sample as failed and go on
        (default), or raise.
    progress : bool
        Show a tqdm progress bar.
    out : path, optional
        Folder to write ``results.csv``, ``results.json`` and ``results_by_morphology.csv`` into.
    operating_point : str
        ``'fpr:<target>'`` (default ``'fpr:5e-4'``) or ``'dice'``: the rule choosing the threshold at
        which per-CR and source metrics are reported. Both rules' thresholds are always recorded.
    operating_split : str or None
        Split on which the threshold is chosen (default ``'val'``), then applied unchanged; ``None``,
        an empty split, ``split`` itself (or ``'all'``), or ``'val'`` on a dataset without one choose it
        in-sample. Any other name the dataset lacks is an error.
    per_cr, sources : bool
        Compute per-CR/per-morphology metrics and false positives on sources.
    bootstrap : int
        Bootstrap replicates for 95% intervals (0 = none), resampling images, or the dataset card's
        ``groups`` (exposure groups) when it has them.
    seed : int
        Bootstrap seed.
    cache : bool, path or None
        Resumable per-sample record cache: ``True`` = ``<data dir>/cache/records``, a path = there,
        ``None``/``False`` = off. Detectors with ``cacheable = False`` are never cached.
    workers : int
        Local worker processes (one thread each).
    scheduler : str, optional
        Address of a running dask.distributed scheduler.
    client : distributed.Client, optional
        A dask client to run on (takes precedence over ``workers`` and ``scheduler``).
    timeout : float, optional
        Seconds a detector may spend on one sample; a sample running over is recorded as failed.
    overwrite : bool
        Replace result files already in ``out`` (otherwise an existing results folder is refused
        before anything is computed).

    Raises
    ------
    UsageError
        On a bad ``on_error``, ``timeout``, ``bootstrap``, ``workers`` or ``operating_point``, or
        conventions that do not exist.
    """

    split: str = "test"
    protocol: str | None = None
    dilation: str | None = None
    ignore: str | None = None
    pooling: str | None = None
    n_bins: int | None = None
    on_error: str = "continue"
    halo: str | None = None
    progress: bool = True
    out: str | os.PathLike[str] | None = None
    operating_point: str = DEFAULT_OPERATING_POINT
    operating_split: str | None = "val"
    per_cr: bool = True
    sources: bool = True
    bootstrap: int = 0
    seed: int = 0
    cache: bool | str | os.PathLike[str] | None = None
    workers: int = 1
    scheduler: str | None = None
    client: Any = None
    timeout: float | None = None
    overwrite: bool = False
    conventions: Conventions = field(init=False, repr=False)
    rule: str = field(init=False, repr=False)
    target_fpr: float | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.on_error not in ("continue", "raise"):
            raise UsageError(f"on_error must be 'continue' or 'raise', got {self.on_error!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.bootstrap < 0:
            raise UsageError(f"bootstrap must be >= 0 replicates (0 = no intervals), got {self.bootstrap!r}")
        if self.workers < 1:
            raise UsageError(f"workers must be >= 1, got {self.workers}")
        rule, target = parse_operating_point(self.operating_point)
        conventions = resolve_conventions(self.protocol, dilation=self.dilation, ignore=self.ignore,
                                          pooling=self.pooling, halo=self.halo)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "target_fpr", target)
        object.__setattr__(self, "conventions", conventions)

    @property
    def cache_root(self) -> Path | None:
        """Folder of the record cache, or None when caching is off."""
        if self.cache is True:
            return default_cache_dir()
        return Path(self.cache) if self.cache else None

    @property
    def uses_dask(self) -> bool:
        """Whether records are computed on dask (a client or a scheduler address)."""
        return self.client is not None or bool(self.scheduler)
