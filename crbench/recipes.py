"""Dataset recipes: named builders that write a :class:`~crbench.dataset.Dataset` folder.

Recipes come from the ``crbench.recipes`` entry-point group, built-in ones (the ``data_recipes``
package, declared in pyproject.toml) and third-party ones alike: an entry point's value is a
:class:`Recipe`, an iterable of recipes (a module's ``RECIPES`` list), or a zero-argument callable
returning either. :func:`register_recipe` adds one in-process. crbench never imports the recipe
packages itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from .errors import RegistryError

GROUP = "crbench.recipes"


@dataclass(frozen=True)
class Recipe:
    """A named dataset builder.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``'sim-hst-acs-ex'``.
    description : str
        One line shown by ``crbench datasets list``.
    kind : str
        ``'simulated'``, ``'real'``, ``'injected'`` or ``'converted'``.
    build : callable
        ``build(out_dir: Path, *, progress: bool = True, **options) -> Dataset``.
    defaults : dict
        Default build options (the small default size), recorded in the card.
    requires_download : tuple of str
        Names of registry downloads the recipe reads (empty for pure simulations).
    """

    name: str
    description: str
    kind: str
    build: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    requires_download: tuple[str, ...] = ()


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the registry (replacing one of the same name) and return it."""
    _RECIPES[recipe.name] = recipe
    return recipe


_LOADED_ENTRY_POINTS: set[str] = set()


def recipes_of(obj: Any, origin: str) -> list[Recipe]:
    """The recipes an entry point's value stands for.

    Parameters
    ----------
    obj : Recipe, iterable of Recipe, or callable
        A recipe, an iterable of recipes, or a zero-argument callable returning either.
    origin : str
        Where ``obj`` came from (the entry point), named in the error.

    Returns
    -------
    list of Recipe

    Raises
    ------
    RegistryError
        If ``obj`` (or what it returns) is not a recipe or an iterable of recipes.
    """
    if callable(obj) and not isinstance(obj, Recipe):
        obj = obj()
    items = [obj] if isinstance(obj, Recipe) else list(obj) if isinstance(obj, (list, tuple)) else None
    if items is None or not all(isinstance(r, Recipe) for r in items):
        raise RegistryError(f"entry point {origin} of group {GROUP!r} must give a crbench.recipes.Recipe or a "
                            f"list of them, got {type(obj).__name__}")
    return items


def _load_builtin() -> None:
    """Register the recipes of every ``crbench.recipes`` entry point (each loaded once)."""
    for ep in entry_points(group=GROUP):
        key = f"{ep.name} = {ep.value}"
        if key in _LOADED_ENTRY_POINTS:
            continue
        for recipe in recipes_of(ep.load(), key):
            _RECIPES.setdefault(recipe.name, recipe)
        _LOADED_ENTRY_POINTS.add(key)


def available_recipes() -> dict[str, Recipe]:
    """All registered recipes by name."""
    _load_builtin()
    return dict(sorted(_RECIPES.items()))


def get_recipe(name: str) -> Recipe:
    """Look up a recipe by name, with a clear error listing the known ones."""
    recipes = available_recipes()
    if name not in recipes:
        known = ", ".join(recipes) or (f"none (no {GROUP!r} entry points are installed: rerun "
                                       "'pip install -e .' in the crbench source folder)")
        raise RegistryError(f"unknown dataset recipe {name!r}; known: {known}")
    return recipes[name]


def data_dir() -> Path:
    """crbench's data folder: ``$CRBENCH_DATA_DIR`` or the OS cache dir (``~/.cache/crbench`` on Linux)."""
    env = os.environ.get("CRBENCH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("crbench"))


def default_dataset_path(name: str) -> Path:
    """Where ``crbench datasets build NAME`` writes by default."""
    return data_dir() / "datasets" / name


def build_dataset(name: str, out: str | os.PathLike | None = None, *, progress: bool = True,
                  overwrite: bool = False, **options: Any):
    """Build recipe ``name`` into ``out`` (default: the data dir) and return the Dataset.

    ``out`` must be missing, empty, or (with ``overwrite=True``) an existing crbench dataset; any
    other non-empty folder is refused before anything is built
    (:func:`crbench.dataset.check_dataset_destination`). The card records the build's wall-clock
    time as ``build_seconds`` (outside the content hash, which covers the sample files only).
    """
    import time

    from .dataset import Dataset, allow_overwrite, check_dataset_destination, update_card

    recipe = get_recipe(name)
    opts = dict(recipe.defaults)
    opts.update({k: v for k, v in options.items() if v is not None})
    out_path = Path(out) if out is not None else default_dataset_path(name)
    check_dataset_destination(out_path, overwrite)
    start = time.perf_counter()
    if not overwrite:
        ds = recipe.build(out_path, progress=progress, **opts)
    else:
        with allow_overwrite(out_path):
            ds = recipe.build(out_path, progress=progress, **opts)
    if not isinstance(ds, Dataset):  # a third-party recipe returning something else: leave it alone
        return ds
    return update_card(ds, build_seconds=round(time.perf_counter() - start, 2))


def resolve_dataset(name_or_path: str | os.PathLike, *, build_missing: bool = True, progress: bool = True):
    """Open a dataset from a folder path, or by recipe name from the data dir (building it if absent)."""
    from .dataset import Dataset

    p = Path(name_or_path)
    if (p / "dataset.json").exists():
        return Dataset.open(p)
    name = str(name_or_path)
    default = default_dataset_path(name)
    if (default / "dataset.json").exists():
        return Dataset.open(default)
    if p.exists() and p.is_dir():
        return Dataset.open(p)  # raises the "not a crbench dataset" error
    recipes = available_recipes()
    if name in recipes:
        if not build_missing:
            raise RegistryError(f"dataset {name!r} is not built yet; run 'crbench datasets build {name}'")
        return build_dataset(name, progress=progress)
    raise RegistryError(f"{name!r} is neither a dataset folder nor a known recipe ({', '.join(recipes)})")
