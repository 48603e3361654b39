"""Physical cosmic-ray simulator: instrument presets, CR physics, and astronomical scenes.

Submodules
----------
presets
    :class:`~data_recipes.sim.presets.InstrumentPreset` and :data:`~data_recipes.sim.presets.PRESETS`.
physics
    :func:`~data_recipes.sim.physics.simulate_crs` -> :class:`~data_recipes.sim.physics.CRLayer`.
scenes
    Sky, stars, galaxies, field types and multi-exposure samples.
"""
from __future__ import annotations

from .presets import PRESETS, InstrumentPreset, get_preset  # noqa: F401
