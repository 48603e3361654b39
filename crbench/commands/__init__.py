"""Subcommands of the ``crbench`` CLI, one module each (``add_parser`` + ``run``)."""
