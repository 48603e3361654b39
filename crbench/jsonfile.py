"""Reading a JSON file with one clear error per way it can be broken (the one JSON reader)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import CRBenchError


def read_json(path: str | os.PathLike, error: type[CRBenchError], what: str) -> Any:
    """Parse the JSON file ``path``.

    Parameters
    ----------
    path : path-like
        The file.
    error : CRBenchError subclass
        Raised, naming ``path``, when the file is not UTF-8 JSON or is nested too deeply to parse.
    what : str
        What the file should be (``'a dataset card'``), named in the nesting error.

    Returns
    -------
    Any
        The parsed value.
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{p}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise error(f"{p}: JSON nested too deeply to be {what}") from None
