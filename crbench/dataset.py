"""A dataset on disk: a folder of per-sample FITS files, an instance table and a ``dataset.json`` card.

Layout::

    NAME/
      dataset.json        card: name, version, recipe, parameters, seed, provenance, splits,
                          content_hash, statistics, crbench version
      samples/<id>.fits   one file per sample (see :mod:`crbench.fitsio`)
      instances.csv       every CR instance of every sample (sample_id column added)

Samples load lazily: :meth:`Dataset.load` opens one file (memory-mapped) when asked.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from . import __version__
from .atomic import atomic_dir, write_json
from .errors import DatasetError
from .fitsio import read_sample, write_sample
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


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


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
    def open(cls, root: str | os.PathLike) -> "Dataset":
        """Open a dataset folder, checking that its card and sample files exist.

        Raises
        ------
        DatasetError
            If the folder or ``dataset.json`` is missing or the card is not valid JSON.
        """
        root = Path(root)
        card_path = root / CARD_NAME
        if not card_path.exists():
            raise DatasetError(f"{root}: not a crbench dataset (no {CARD_NAME}); build it with "
                               "'crbench datasets build NAME'")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{card_path}: invalid JSON ({exc})") from exc
        except RecursionError:
            raise DatasetError(f"{card_path}: JSON nested too deeply to be a dataset card") from None
        if not isinstance(card, dict):
            raise DatasetError(f"{card_path}: expected a JSON object, got {type(card).__name__}")
        for key in ("name", "splits", "content_hash"):
            if key not in card:
                raise DatasetError(f"{card_path}: card lacks the {key!r} field")
        _check_splits(card["splits"], card_path)
        return cls(root=root, card=card)

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
        return self.root / SAMPLES_DIR / f"{sample_id}.fits"

    def load(self, sample_id: str, *, load_companions: bool = True) -> Sample:
        """Load one sample by id."""
        return read_sample(self.sample_path(sample_id), load_companions=load_companions)

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
) -> Dataset:
    """Write samples and a card to ``root`` atomically (the folder appears whole or not at all).

    Parameters
    ----------
    root : path-like
        Destination folder; replaced if it exists.
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
    """
    from .stats import class_imbalance_statistics

    root = Path(root)
    all_ids = [i for ids in splits.values() for i in ids]
    if len(set(all_ids)) != len(all_ids):
        raise DatasetError(f"dataset {name!r}: a sample id appears in more than one split")
    instance_tables = []
    per_sample_stats = []
    written: set[str] = set()
    with atomic_dir(root) as tmp:
        (tmp / SAMPLES_DIR).mkdir()
        it = samples
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(samples, total=len(all_ids), desc=f"writing {name}", unit="sample")
        for sample in it:
            if sample.id not in all_ids:
                raise DatasetError(f"dataset {name!r}: sample {sample.id!r} is in no split")
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
    return Dataset.open(dataset.root)
