"""The leaderboard: accepted result files in ``leaderboard/entries/*.json`` and the pages built from them.

Two jobs, two modules, re-exported here (``from crbench.leaderboard import submit, build``):

- :mod:`crbench.leaderboard_submit`: :func:`submit` / :func:`check_submission` (validation and
  provenance checks, with :mod:`crbench.leaderboard_checks`) and the entry files (:class:`Entry`,
  :func:`load_entries`);
- :mod:`crbench.leaderboard_render`: :func:`build` writes ``README.md`` (Markdown tables) and the
  static ``index.html`` from the entries.
"""
from __future__ import annotations

from .leaderboard_checks import MAX_DEPTH, MAX_SUBMISSION_BYTES, SubmissionError
from .leaderboard_render import (ASSETS, COLUMNS, LOWER_IS_BETTER, MORPH_COLUMNS, NO_INTERVAL, OP_COLUMNS,
                                 RANK_METRIC, _fmt, build, markdown, md_text, page_data, ranked_rows, render_html)
from .leaderboard_submit import (BUILD_PARAMETERS, BUILD_VERSIONS, CURVE_POINTS, DEFAULT_ROOT, EXCLUDED_DATASETS, STANDARD_OP_RULE,
                                 Entry, SubmissionPlan, check_submission, entry_filename, entry_json, load_entries,
                                 standard_conventions, submit, thin_curve, training_conflicts)

__all__ = ["ASSETS", "EXCLUDED_DATASETS", "BUILD_PARAMETERS", "BUILD_VERSIONS", "COLUMNS", "CURVE_POINTS", "DEFAULT_ROOT", "Entry",
           "LOWER_IS_BETTER", "MAX_DEPTH", "MAX_SUBMISSION_BYTES", "MORPH_COLUMNS", "NO_INTERVAL", "OP_COLUMNS",
           "RANK_METRIC", "STANDARD_OP_RULE", "SubmissionError", "SubmissionPlan", "_fmt", "build",
           "check_submission", "entry_filename", "entry_json", "load_entries", "markdown", "md_text", "page_data",
           "ranked_rows", "render_html", "standard_conventions", "submit", "thin_curve", "training_conflicts"]
