"""Real-data recipes: multi-exposure labelling of real frames, negative controls, simulated twins,
real CR footprint injection and converters for the published sets.

Each recipe module lists its recipes in ``RECIPES``; pyproject.toml registers them through the
``crbench.recipes`` entry-point group.
"""
