"""Plain-text rendering of result tables for the terminal."""
from __future__ import annotations

import pandas as pd

SHORT_COLUMNS = ["detector", "dataset", "split", "n_images", "cr_pixel_fraction", "roc_auc", "ap",
                 "tpr_at_fpr_1e-4", "tpr_at_fpr_5e-4", "tpr_at_fpr_1e-3", "precision_at_recall_0.95",
                 "best_dice", "seconds_per_mpix"]


def format_table(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """Format the main result columns with 4 significant digits."""
    cols = [c for c in (columns or SHORT_COLUMNS) if c in table.columns]
    return table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}")


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
