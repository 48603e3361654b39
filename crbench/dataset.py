"""A dataset on disk: a folder of per-sample FITS files, an instance table and a ``dataset.json`` card.

Layout::

    NAME/
      dataset.json        card: name, version, recipe, parameters, seed, provenance, splits,
                          content_hash, files, labelled, statistics, crbench version
      samples/<id>.fits   one file per sample (see :mod:`crbench.fitsio`)
      instances.csv       every CR instance of every sample (sample_id column added)

Samples load lazily: :meth:`Dataset.load` opens one file (memory-mapped) when asked.

Safety rules:

- Sample ids are one safe path component (:data:`SAMPLE_ID_PATTERN`, no ``..``), checked when a
  dataset is written and for every id of every split when one is opened, so no card can make
  crbench read or write outside ``samples/``.
- ``files`` records each sample file's size and modification time at build time;
  :meth:`Dataset.open` compares them (cheap), so an edited or rebuilt sample is a clear error.
  :func:`verify_dataset` (``crbench datasets verify NAME``) recomputes the full content hash.

Why this module is over 400 lines: the folder format and the checks that keep it honest (id safety,
file records, the overwrite guard, content hashing, verification) are one concept; the checks are
short functions that only make sense next to the writer and reader they guard.
- ``labelled`` (default true when absent) says every sample carries a truth mask (``CRMASK``).
  Negative controls are labelled: their ``CRMASK`` is all zero. A dataset without any truth mask is
  written with ``labelled: false``; one that mixes labelled and unlabelled samples is refused.
- :func:`write_dataset` never replaces a non-empty folder that is not a crbench dataset, and
  replaces an existing dataset only with ``overwrite=True``.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from . import __version__
from .atomic import atomic_dir, write_json
from .errors import DatasetError
from .fitsio import read_sample, write_sample
from .jsonfile import read_json
from .hashing import file_sha256  # noqa: F401  (re-exported: crbench.dataset.file_sha256)
from .sample import Sample

CARD_NAME = "dataset.json"
SAMPLES_DIR = "samples"
SPLITS = ("train", "val", "test")
#: Columns ``instances.csv`` must have (others may follow).
INSTANCE_COLUMNS = ("sample_id", "id", "morphology", "pixels")


def _check_splits(splits: Any, card_path: Path) -> None:
    """The card's ``splits`` must map split names to lists of sample ids."""
    if not isinstance(splits, dict):
        raise DatasetError(f"{card_path}: 'splits' must be an object mapping split names to lists of sample ids "
                           f"(e.g. {{\"test\": [\"s0\"]}}), got a {type(splits).__name__}")
    for name, ids in splits.items():
        if not isinstance(ids, list):
            raise DatasetError(f"{card_path}: split {name!r} must be a list of sample ids, got a {type(ids).__name__}")

#: What a sample id may look like: one path component, no ``..``, no leading dot.
SAMPLE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_OVERWRITE_OK: contextvars.ContextVar[Path | None] = contextvars.ContextVar("crbench_overwrite_ok", default=None)


def check_sample_id(sample_id: Any, where: str) -> str:
    """Return ``sample_id`` if it is a safe file stem, else raise :class:`DatasetError`.

    Parameters
    ----------
    sample_id : str
        The id to check.
    where : str
        What to name in the error (a dataset name or a card path).
    """
    if not isinstance(sample_id, str) or not SAMPLE_ID_PATTERN.fullmatch(sample_id) or ".." in sample_id:
        raise DatasetError(f"{where}: sample id {sample_id!r} is not allowed; ids must match "
                           "[A-Za-z0-9][A-Za-z0-9._-]* without '..' (one file name inside samples/)")
    return sample_id


def file_stat(path: str | os.PathLike) -> dict[str, int]:
    """``{'size': bytes, 'mtime_ns': modification time}`` of a file (what the card's ``files`` records)."""
    st = os.stat(path)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def sample_fingerprint(path: str | os.PathLike) -> str:
    """A cheap identity of one sample file's current content: hash of its name, size and mtime."""
    p = Path(path)
    st = file_stat(p)
    return hashlib.sha256(f"{p.name}\0{st['size']}\0{st['mtime_ns']}".encode()).hexdigest()[:16]


def check_dataset_destination(root: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse to build into ``root`` when that would destroy something.

    A missing or empty folder is fine; an existing crbench dataset (it has ``dataset.json``) only
    with ``overwrite=True``; any other non-empty path never.

    Raises
    ------
    DatasetError
        Naming the folder and what to do.
    """
    root = Path(root)
    if not root.exists() and not root.is_symlink():
        return
    if root.is_symlink():
        raise DatasetError(f"{root}: is a symbolic link; building would replace the link, not its target - "
                           "pass the target folder itself")
    if not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder; choose another output folder")
    if not any(root.iterdir()):
        return
    if not (root / CARD_NAME).is_file():
        raise DatasetError(f"{root}: folder is not empty and is not a crbench dataset (no {CARD_NAME}); "
                           "refusing to replace it - choose a new or empty output folder")
    if not overwrite:
        raise DatasetError(f"{root}: a dataset already exists there; pass --overwrite (overwrite=True) "
                           "to replace it")


@contextlib.contextmanager
def allow_overwrite(root: str | os.PathLike):
    """Let :func:`write_dataset` calls inside the block replace the existing dataset at ``root``
    (used by :func:`crbench.recipes.build_dataset` with ``overwrite=True``, since recipes call
    :func:`write_dataset` themselves)."""
    token = _OVERWRITE_OK.set(Path(root).resolve())
    try:
        yield
    finally:
        _OVERWRITE_OK.reset(token)


def content_hash(sample_files: Iterable[Path]) -> str:
    """Hash of a dataset's content: sha256 over sorted (file name, file sha256) pairs."""
    h = hashlib.sha256()
    for p in sorted(sample_files, key=lambda p: p.name):
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


@dataclass
class Dataset:
    """A crbench dataset folder.

    Use :meth:`open` to read one and :func:`write_dataset` to create one.
    """

    root: Path
    card: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | os.PathLike, *, check_files: bool = True) -> "Dataset":
        """Open a dataset folder, checking its card, its sample ids and (cheaply) its sample files.

        Parameters
        ----------
        root : path-like
            The dataset folder.
        check_files : bool
            Compare every sample file's size and modification time with the card's ``files``
            record (see :meth:`check_files`).

        Raises
        ------
        DatasetError
            If the folder or ``dataset.json`` is missing, the card is not valid JSON, a split names
            an unsafe sample id, or a sample file changed since the build.
        """
        root = Path(root)
        card_path = root / CARD_NAME
        if not card_path.exists():
            raise DatasetError(f"{root}: not a crbench dataset (no {CARD_NAME}); build it with "
                               "'crbench datasets build NAME'")
        card = read_json(card_path, DatasetError, "a dataset card")
        if not isinstance(card, dict):
            raise DatasetError(f"{card_path}: expected a JSON object, got {type(card).__name__}")
        for key in ("name", "splits", "content_hash"):
            if key not in card:
                raise DatasetError(f"{card_path}: card lacks the {key!r} field")
        _check_splits(card["splits"], card_path)
        for ids in card["splits"].values():
            for sid in ids:
                check_sample_id(sid, str(card_path))
        ds = cls(root=root, card=card)
        if check_files:
            ds.check_files()
        return ds

    @property
    def labelled(self) -> bool:
        """Whether every sample must carry a truth mask (card ``labelled``, default true)."""
        return bool(self.card.get("labelled", True))

    def check_files(self) -> None:
        """Compare each sample file's size and mtime with the card's ``files`` record (no-op for
        cards built before that field existed).

        Raises
        ------
        DatasetError
            Naming the first missing or changed file and the commands that fix it.
        """
        files = self.card.get("files")
        if not files:
            return
        for sid in self.ids():
            path = self.sample_path(sid)
            want = files.get(sid)
            try:
                got = file_stat(path)
            except FileNotFoundError:
                raise DatasetError(f"{path}: sample file is missing; rebuild the dataset with "
                                   f"'crbench datasets build {self.name} --overwrite'") from None
            if want is None or got["size"] != want.get("size") or got["mtime_ns"] != want.get("mtime_ns"):
                raise DatasetError(
                    f"{path}: sample file changed since the dataset was built (size or modification time "
                    f"differ from {CARD_NAME}); run 'crbench datasets verify {self.root}' to check its content "
                    f"hash, or rebuild with 'crbench datasets build {self.name} --overwrite'")

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def version(self) -> str:
        return str(self.card.get("version", "0"))

    @property
    def content_hash(self) -> str:
        return str(self.card["content_hash"])

    @property
    def splits(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.card["splits"].items()}

    def ids(self, split: str | None = None) -> list[str]:
        """Sample ids of one split (``None`` or ``'all'`` for every sample, in split order)."""
        splits = self.splits
        if split in (None, "all"):
            return [i for s in splits.values() for i in s]
        if split not in splits:
            raise DatasetError(f"dataset {self.name!r} has no split {split!r}; it has {sorted(splits)}")
        return splits[split]

    def sample_path(self, sample_id: str) -> Path:
        """The FITS file of ``sample_id`` (the id is checked to be a safe file stem)."""
        check_sample_id(sample_id, f"dataset {self.name!r}")
        return self.root / SAMPLES_DIR / f"{sample_id}.fits"

    def load(self, sample_id: str, *, load_companions: bool = True) -> Sample:
        """Load one sample by id."""
        return read_sample(self.sample_path(sample_id), load_companions=load_companions)

    def check_labelled(self, sample: Sample) -> Sample:
        """Return ``sample``, or raise when the dataset is labelled and the sample has no truth mask.

        Scoring an unlabelled sample as if it had no CRs would change every metric silently, so a
        sample without ``CRMASK`` in a labelled dataset is an error. Datasets whose card says
        ``labelled: false`` score every sample as CR-free (false-positive rates only).

        Raises
        ------
        DatasetError
            Naming the sample file.
        """
        if sample.truth is None and self.labelled:
            raise DatasetError(f"{self.sample_path(sample.id)}: sample {sample.id!r} has no truth mask (CRMASK) "
                               f"but dataset {self.name!r} is labelled; rebuild it, or mark the card "
                               "'labelled: false' to score every sample as CR-free")
        return sample

    def iter_samples(self, split: str | None = None, *, load_companions: bool = True) -> Iterator[Sample]:
        """Yield the samples of ``split`` one at a time."""
        for sid in self.ids(split):
            yield self.load(sid, load_companions=load_companions)

    def groups(self) -> dict[str, str]:
        """Bootstrap groups (sample id -> group); each sample its own group unless the card says so."""
        groups = self.card.get("groups") or {}
        return {sid: str(groups.get(sid, sid)) for sid in self.ids()}

    def instances(self) -> pd.DataFrame:
        """Every CR instance of the dataset, with a ``sample_id`` column.

        Raises
        ------
        DatasetError
            If ``instances.csv`` is unreadable or lacks one of :data:`INSTANCE_COLUMNS`.
        """
        path = self.root / "instances.csv"
        if not path.exists():
            return pd.DataFrame(columns=["sample_id", "id", "morphology", "generator", "pixels", "charge", "saturated"])
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not a readable CSV table ({type(exc).__name__}); rebuild the dataset") from exc
        missing = [c for c in INSTANCE_COLUMNS if c not in table.columns]
        if missing:
            raise DatasetError(f"{path}: lacks the column(s) {missing}; expected at least {list(INSTANCE_COLUMNS)} "
                               "(rebuild the dataset)")
        return table

    def __len__(self) -> int:
        return len(self.ids())

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self)} samples, hash={self.content_hash[:12]})"


def write_dataset(
    root: str | os.PathLike,
    samples: Iterable[Sample],
    *,
    name: str,
    splits: dict[str, list[str]],
    version: str = "1",
    recipe: str | None = None,
    parameters: dict[str, Any] | None = None,
    seed: int | None = None,
    provenance: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    statistics: bool = True,
    progress: bool = False,
    overwrite: bool | None = None,
) -> Dataset:
    """Write samples and a card to ``root`` atomically (the folder appears whole or not at all).

    Parameters
    ----------
    root : path-like
        Destination folder: missing, empty, or (with ``overwrite``) an existing crbench dataset.
    samples : iterable of Sample
        The samples; each id must appear in exactly one split.
    name, version, recipe, parameters, seed, provenance
        Card fields.
    splits : dict
        Split name -> list of sample ids.
    extra : dict, optional
        More card fields (e.g. ``groups``, ``label_quality``).
    statistics : bool
        Compute class-imbalance statistics into the card.
    progress : bool
        Show a progress bar.
    overwrite : bool, optional
        Replace an existing dataset at ``root``. ``None`` (default) allows it only inside
        :func:`allow_overwrite` for that folder. A non-empty folder that is not a crbench dataset is
        never replaced.

    Raises
    ------
    DatasetError
        On an unsafe or duplicate sample id, a destination that must not be replaced, or a mix of
        labelled and unlabelled samples.
    """
    from .stats import class_imbalance_statistics

    root = Path(root)
    if overwrite is None:
        ok = _OVERWRITE_OK.get()
        overwrite = ok is not None and ok == root.resolve()
    check_dataset_destination(root, overwrite)
    all_ids = [i for ids in splits.values() for i in ids]
    for sid in all_ids:
        check_sample_id(sid, f"dataset {name!r}")
    if len(set(all_ids)) != len(all_ids):
        raise DatasetError(f"dataset {name!r}: a sample id appears in more than one split")
    instance_tables = []
    per_sample_stats = []
    written: set[str] = set()
    has_truth: dict[bool, str] = {}
    with atomic_dir(root) as tmp:
        (tmp / SAMPLES_DIR).mkdir()
        it = samples
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(samples, total=len(all_ids), desc=f"writing {name}", unit="sample")
        for sample in it:
            check_sample_id(sample.id, f"dataset {name!r}")
            if sample.id not in all_ids:
                raise DatasetError(f"dataset {name!r}: sample {sample.id!r} is in no split")
            has_truth.setdefault(sample.truth is not None, sample.id)
            if len(has_truth) > 1:
                raise DatasetError(f"dataset {name!r}: sample {has_truth[False]!r} has no truth mask but "
                                   f"sample {has_truth[True]!r} has one; label every sample (an all-zero "
                                   "mask for negatives) or none")
            write_sample(sample, tmp / SAMPLES_DIR / f"{sample.id}.fits")
            written.add(sample.id)
            if sample.instances is not None and len(sample.instances):
                t = sample.instances.copy()
                t.insert(0, "sample_id", sample.id)
                instance_tables.append(t)
            if statistics:
                per_sample_stats.append(sample_statistics_row(sample))
        missing = set(all_ids) - written
        if missing:
            raise DatasetError(f"dataset {name!r}: splits name samples that were not written: {sorted(missing)[:5]}")
        if instance_tables:
            pd.concat(instance_tables, ignore_index=True).to_csv(tmp / "instances.csv", index=False)
        card: dict[str, Any] = {
            "name": name,
            "version": version,
            "recipe": recipe or name,
            "parameters": parameters or {},
            "seed": seed,
            "provenance": provenance or [],
            "splits": splits,
            "n_samples": len(all_ids),
            "content_hash": content_hash((tmp / SAMPLES_DIR).glob("*.fits")),
            "files": {sid: file_stat(tmp / SAMPLES_DIR / f"{sid}.fits") for sid in all_ids},
            "labelled": has_truth.get(False) is None,
            "crbench_version": __version__,
        }
        if statistics:
            card["statistics"] = class_imbalance_statistics(per_sample_stats)
        if extra:
            card.update(extra)
        write_json(tmp / CARD_NAME, card)
    return Dataset.open(root)


def sample_statistics_row(sample: Sample) -> dict[str, Any]:
    """Per-sample numbers that :func:`crbench.stats.class_imbalance_statistics` aggregates."""
    from .stats import sample_statistics

    return sample_statistics(sample)


def update_card(dataset: Dataset, **fields: Any) -> Dataset:
    """Add or replace card fields (atomically) and return the reopened dataset."""
    card = dict(dataset.card)
    card.update(fields)
    write_json(dataset.root / CARD_NAME, card)
    return Dataset.open(dataset.root, check_files=False)


def verify_dataset(dataset: Dataset | str | os.PathLike, *, refresh: bool = False) -> str:
    """Recompute a dataset's content hash from its sample files and compare it with the card.

    Parameters
    ----------
    dataset : Dataset or path-like
        The dataset (or its folder).
    refresh : bool
        When the content is intact but file sizes/times differ from the card's ``files`` record
        (e.g. after a copy that did not keep modification times), rewrite that record.

    Returns
    -------
    str
        The verified content hash.

    Raises
    ------
    DatasetError
        When a split names a missing file, ``samples/`` holds files no split names, or the hash
        differs from the card's (the dataset was edited or is being rebuilt).
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset, check_files=False)
    ids = ds.ids()
    files = [ds.sample_path(sid) for sid in ids]
    for p in files:
        if not p.is_file():
            raise DatasetError(f"{p}: sample file is missing; rebuild with "
                               f"'crbench datasets build {ds.name} --overwrite'")
    on_disk = {p.name for p in (ds.root / SAMPLES_DIR).glob("*.fits")}
    extra = sorted(on_disk - {p.name for p in files})
    if extra:
        raise DatasetError(f"{ds.root / SAMPLES_DIR}: holds {len(extra)} file(s) that no split names "
                           f"(first {extra[0]}); rebuild with 'crbench datasets build {ds.name} --overwrite'")
    stats_before = {sid: file_stat(p) for sid, p in zip(ids, files)}
    got = content_hash(files)
    if got != ds.content_hash:
        raise DatasetError(f"{ds.root}: content hash {got[:16]} does not match the card's "
                           f"{ds.content_hash[:16]}; the samples were modified - rebuild with "
                           f"'crbench datasets build {ds.name} --overwrite'")
    stats_after = {sid: file_stat(p) for sid, p in zip(ids, files)}
    if stats_after != stats_before:
        raise DatasetError(f"{ds.root}: sample files changed while being verified; try again")
    if refresh and ds.card.get("files") != stats_after:
        update_card(ds, files=stats_after)
    return got
