"""Plain-text rendering of result tables for the terminal."""
from __future__ import annotations

import math

import pandas as pd

SHORT_COLUMNS = ["detector", "dataset", "split", "n_images", "cr_pixel_fraction", "roc_auc", "pauc_1e-3", "ap",
                 "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "precision_at_recall_0.95",
                 "best_dice", "seconds_per_mpix"]
#: Columns measured at the operating point: not reached together when ``op_status`` says so.
OP_METRIC_PREFIXES = ("op_", "recall_", "residual_charge", "fp_components", "source_flag", "fpr_sources", "fpr_sky")
NOT_REACHED_TEXT = "not reached"


def _cell(value, status) -> str | float:
    if isinstance(value, float) and math.isnan(value) and isinstance(status, str) and status.startswith("not reached"):
        return NOT_REACHED_TEXT
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def format_table(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """Format the main result columns with 4 significant digits; a metric that is NaN because it was
    not reached (its ``<column>_status`` or the row's ``op_status``) prints as ``not reached``."""
    cols = [c for c in (columns or SHORT_COLUMNS) if c in table.columns]
    out = table[cols].copy().astype(object)
    for c in cols:
        for i in range(len(table)):
            status = table[f"{c}_status"].iloc[i] if f"{c}_status" in table.columns else None
            if (not isinstance(status, str) and "op_status" in table.columns
                    and c.startswith(OP_METRIC_PREFIXES) and c not in ("op_rule", "op_chosen_on")):
                status = table["op_status"].iloc[i]
            out.iloc[i, out.columns.get_loc(c)] = _cell(table[c].iloc[i], status)
    return out.to_string(index=False)


def format_timings(timings: dict[str, float], total: float | None = None) -> str:
    """Wall-clock seconds per step (e.g. per detector), one line each, and the total.

    Parameters
    ----------
    timings : dict of str to float
        Step name -> seconds, in the order to print.
    total : float, optional
        Total seconds (default: the sum of ``timings``).
    """
    width = max([len(k) for k in timings] + [len("total")])
    lines = ["time (wall clock)"]
    lines += [f"  {name:<{width}s} {sec:7.1f} s" for name, sec in timings.items()]
    lines.append(f"  {'total':<{width}s} {sum(timings.values()) if total is None else total:7.1f} s")
    return "\n".join(lines)
