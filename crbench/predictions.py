"""Scoring precomputed predictions: one FITS score map per sample id.

For detectors that cannot run here (other languages, GPUs, closed code) a user hands over a
folder of ``<sample_id>.fits`` files, each holding a float score map of the sample's shape in the
primary HDU or the first image extension. :class:`PredictionsDetector` reads them so that the
harness computes every metric exactly as for a live detector.

:func:`check_predictions` validates the whole folder first (unknown ids, missing files, wrong
shapes, non-finite values, unreadable files), naming every file at fault.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .dataset import Dataset
from .detectors.base import Detector
from .errors import DetectorError, FormatError
from .observation import Observation

SUFFIX = ".fits"
#: Files listed in one message at most.
MAX_LISTED = 10


def read_score_map(path: str | os.PathLike) -> np.ndarray:
    """Read a score map from the primary HDU, or the first image extension that holds data.

    Raises
    ------
    FormatError
        If the file cannot be read, holds no 2-D image, or has NaN/inf values (naming the file).
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            data = None
            for hdu in hdul:
                if getattr(hdu, "is_image", False) and hdu.data is not None:
                    data = np.asarray(hdu.data)
                    break
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise FormatError(f"{path}: cannot read FITS file ({type(exc).__name__}: {exc})") from exc
    if data is None:
        raise FormatError(f"{path}: no image data in the primary HDU or any image extension")
    if data.ndim != 2:
        raise FormatError(f"{path}: score map has {data.ndim} dimensions {data.shape}; expected a 2-D (H, W) image")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise FormatError(f"{path}: score map has dtype {data.dtype}; expected numbers")
    data = data.astype(np.float32)
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        raise FormatError(f"{path}: score map has {n_bad} NaN or inf values; scores must be finite everywhere")
    return data


def _sample_shape(ds: Dataset, sample_id: str) -> tuple[int, int]:
    from astropy.io import fits

    hdr = fits.getheader(ds.sample_path(sample_id), "SCI")
    return int(hdr["NAXIS2"]), int(hdr["NAXIS1"])


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def prediction_splits(directory: str | os.PathLike, dataset: Dataset, split: str = "test",
                      operating_split: str = "val") -> str | None:
    """The split the operating point can be chosen on: ``operating_split`` when the folder holds a
    score map for any of its samples (then :func:`check_predictions` requires all of them), else
    None (the threshold is chosen in-sample on ``split``)."""
    directory = Path(directory)
    if operating_split == split or operating_split not in dataset.splits or not directory.is_dir():
        return None
    ids = dataset.ids(operating_split)
    return operating_split if any((directory / f"{s}{SUFFIX}").exists() for s in ids) else None


def check_predictions(directory: str | os.PathLike, dataset: Dataset, split: str = "test",
                      operating_split: str | None = None) -> tuple[float, float]:
    """Validate a predictions folder against a dataset split; return the (min, max) score.

    Parameters
    ----------
    directory : path
        Folder of ``<sample_id>.fits`` score maps.
    dataset : Dataset
        The dataset the predictions are for.
    split : str
        The split scored; the folder must hold exactly its sample ids (plus those of
        ``operating_split``).
    operating_split : str, optional
        A split whose score maps choose the operating point (usually ``'val'``); every one of its
        samples then needs a map too.

    Raises
    ------
    FormatError
        Naming the files with unknown sample ids, the missing files, and every file that is
        unreadable, of the wrong shape or has non-finite values.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: predictions folder not found")
    ids = dataset.ids(split)
    if operating_split is not None and operating_split != split:
        ids = ids + dataset.ids(operating_split)
    wanted = set(ids)
    present = {p.name[: -len(SUFFIX)]: p for p in directory.iterdir()
               if p.is_file() and p.name.endswith(SUFFIX) and not p.name.startswith(".")}
    problems: list[str] = []
    where_scored = f"{dataset.name}/{split}" + (f" and /{operating_split}" if len(ids) > len(dataset.ids(split))
                                                 else "")
    unknown = sorted(f"{s}{SUFFIX}" for s in present if s not in wanted)
    if unknown:
        other = set(dataset.ids()) - wanted
        where = [n for n in unknown if n[: -len(SUFFIX)] in other]
        note = f" ({len(where)} belong to another split)" if where else ""
        problems.append(f"{directory}: {len(unknown)} file(s) with sample ids not in {where_scored}"
                        f"{note}: {_listing(unknown)}")
    missing = [f"{s}{SUFFIX}" for s in ids if s not in present]
    if missing:
        problems.append(f"{directory}: {len(missing)} of {len(ids)} sample(s) of {where_scored} "
                        f"have no score map: {_listing(missing)}")
    lo, hi = np.inf, -np.inf
    for sid in ids:
        if sid not in present:
            continue
        path = present[sid]
        try:
            data = read_score_map(path)
        except FormatError as exc:
            problems.append(str(exc))
            continue
        shape = _sample_shape(dataset, sid)
        if data.shape != shape:
            problems.append(f"{path}: score map has shape {data.shape}; sample {sid!r} of {dataset.name} "
                            f"has shape {shape}")
            continue
        lo, hi = min(lo, float(data.min())), max(hi, float(data.max()))
    if problems:
        raise FormatError(f"predictions in {directory} rejected ({len(problems)} problem(s)):\n"
                          + "\n".join(problems))
    return float(lo), float(hi)


def auto_score_range(lo: float, hi: float) -> tuple[float, float] | None:
    """Score range for binning: ``(0, 1)`` for probabilities, else ``None`` (unbounded, asinh bins)."""
    if lo >= 0.0 and hi <= 1.0:
        return (0.0, 1.0)
    return None


class PredictionsDetector(Detector):
    """Reads precomputed score maps ``<directory>/<sample_id>.fits`` (a detector run elsewhere).

    Parameters
    ----------
    directory : path
        Folder of score maps.
    name : str
        Name shown in results and on the leaderboard.
    version : str
        The submitted detector's version.
    trained_on : sequence of str
        Training data of the submitted detector, as ``'dataset/split'`` strings.
    score_range : (lo, hi) or None
        Bounds of the scores (linear bins), ``None`` for unbounded scores (asinh bins).
    """

    name = "predictions"
    #: Never reuse cached records: the maps behind a folder name can change between runs.
    cacheable = False

    def __init__(self, directory: str | os.PathLike, *, name: str = "predictions", version: str = "1",
                 trained_on: Sequence[str] = (), score_range: tuple[float, float] | None = None) -> None:
        super().__init__(directory=Path(directory).name, source="precomputed predictions")
        self.directory = Path(directory)
        self.name = name  # type: ignore[misc]
        self.version = str(version)  # type: ignore[misc]
        self.trained_on = tuple(trained_on)  # type: ignore[misc]
        self.score_range = (  # type: ignore[misc]
            (float(score_range[0]), float(score_range[1])) if score_range is not None else None)

    def score(self, obs: Observation) -> np.ndarray:
        path = self.directory / f"{obs.id}{SUFFIX}"
        if not path.exists():
            raise DetectorError(f"{path}: no score map for sample {obs.id!r}")
        try:
            data = read_score_map(path)
        except FormatError as exc:
            raise DetectorError(str(exc)) from exc
        if data.shape != obs.shape:
            raise DetectorError(f"{path}: score map has shape {data.shape}; sample {obs.id!r} has shape "
                                f"{obs.shape}")
        return data


def score_predictions(directory: str | os.PathLike, dataset: Any, *, split: str = "test",
                      name: str = "predictions", version: str = "1", trained_on: Sequence[str] = (),
                      score_range: tuple[float, float] | str | None = "auto", progress: bool = True,
                      out: str | os.PathLike | None = None, **conventions: Any):
    """Validate a predictions folder and score it with the harness.

    When the folder also holds maps for the validation split, the operating point is chosen
    there (as for live detectors); otherwise it is chosen in-sample (recorded in the results).

    Parameters
    ----------
    directory : path
        Folder of ``<sample_id>.fits`` score maps.
    dataset : Dataset, folder or recipe name
        The dataset; a recipe name must already be built.
    split, name, version, trained_on
        As for :class:`PredictionsDetector`.
    score_range : (lo, hi), 'auto' or None
        ``'auto'`` picks ``(0, 1)`` when every score lies there, else unbounded bins.
    progress : bool
        Progress bar.
    out : path, optional
        Folder for ``results.csv`` and ``results.json``.
    **conventions
        ``protocol``, ``dilation``, ``ignore``, ``pooling`` passed to :func:`crbench.harness.evaluate`.

    Returns
    -------
    Results
    """
    from .harness import evaluate
    from .recipes import resolve_dataset

    ds = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset, build_missing=False,
                                                                      progress=progress)
    op_split = prediction_splits(directory, ds, split)
    lo, hi = check_predictions(directory, ds, split, operating_split=op_split)
    if isinstance(score_range, str):
        if score_range != "auto":
            raise ValueError(f"score_range must be 'auto', None or (lo, hi), got {score_range!r}")
        score_range = auto_score_range(lo, hi)
    det = PredictionsDetector(directory, name=name, version=version, trained_on=trained_on,
                              score_range=score_range)
    return evaluate([det], ds, split=split, on_error="raise", progress=progress, out=out,
                    operating_split=op_split, **conventions)
