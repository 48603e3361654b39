"""Built-in dataset recipes.

Each recipe module lists its recipes in a module-level ``RECIPES`` list; pyproject.toml names those
lists in the ``crbench.recipes`` entry-point group, so crbench finds the built-ins the same way it
finds a third-party plugin's recipes (crbench itself never imports this package).
"""
