"""The sim-to-real gap: each detector's score on real data against its simulated twin."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..results import Results
from .style import PALETTE, _figsize, _finite_or_nan, _style, save_figure

# ------------------------------------------------------------------------------ sim-to-real gap

def plot_sim_to_real_gap(real: Results, sim: Results, stem: str | os.PathLike, *,
                         metric: str = "tpr_at_fpr_5e-4", width: str = "single") -> list[Path]:
    """Dumbbell chart: each detector's score on real data against its score on the simulated twin.

    Detectors are matched by name; 95% intervals (``<metric>_lo``/``_hi`` summary columns) are drawn
    when present. Detectors are sorted by the gap (real minus simulated).

    Raises
    ------
    ValueError
        If no detector appears in both results.
    """
    def table(res: Results) -> dict[str, dict]:
        return {r["detector"]: r["summary"] for r in res.runs}

    t_real, t_sim = table(real), table(sim)
    names = [n for n in t_sim if n in t_real]
    if not names:
        raise UsageError(f"no detector is in both results (real: {sorted(t_real)}, simulated: {sorted(t_sim)})")
    real_ds = real.runs[0]["dataset"]
    sim_ds = sim.runs[0]["dataset"]
    vals = {n: (_finite_or_nan(t_sim[n].get(metric)), _finite_or_nan(t_real[n].get(metric))) for n in names}
    names.sort(key=lambda n: (vals[n][1] - vals[n][0]) if np.isfinite(vals[n][1] - vals[n][0]) else -np.inf)
    plt = _style()
    fig, ax = plt.subplots(figsize=_figsize(width, 0.25 + 0.13 * len(names)))
    for i, n in enumerate(names):
        s, r = vals[n]
        ax.plot([s, r], [i, i], color="#999999", lw=1.0, zorder=1)
        for summ, v, kw in ((t_sim[n], s, {"marker": "o", "mfc": "white", "mec": PALETTE[0]}),
                            (t_real[n], r, {"marker": "o", "mfc": PALETTE[1], "mec": PALETTE[1]})):
            lo, hi = _finite_or_nan(summ.get(f"{metric}_lo")), _finite_or_nan(summ.get(f"{metric}_hi"))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [i, i], color=kw["mec"], lw=2.5, alpha=0.35, zorder=2, solid_capstyle="butt")
            ax.plot([v], [i], ls="none", ms=5, zorder=3, **kw)
        if np.isfinite(s) and np.isfinite(r):
            right = max([s, r] + [v for v in (_finite_or_nan(t_sim[n].get(f"{metric}_hi")),
                                             _finite_or_nan(t_real[n].get(f"{metric}_hi"))) if np.isfinite(v)])
            ax.annotate(f"{r - s:+.3f}", (right, i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=6.5, color="#333333")
    ax.plot([], [], "o", mfc="white", mec=PALETTE[0], label=f"simulated twin ({sim_ds})")
    ax.plot([], [], "o", mfc=PALETTE[1], mec=PALETTE[1], label=f"real ({real_ds})")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    finite = [v for pair in vals.values() for v in pair if np.isfinite(v)]
    lo = min(finite) if finite else 0.0
    ax.set_xlim(max(0.0, lo - 0.1), 1.08)
    ax.grid(axis="y", visible=False)
    pretty = {"tpr_at_fpr_5e-4": "TPR at pixel FPR 5e-4", "tpr_at_fpr_1e-4": "TPR at pixel FPR 1e-4",
              "ap": "Average precision", "roc_auc": "ROC AUC", "best_dice": "Best Dice"}
    ax.set_xlabel(f"{pretty.get(metric, metric)}  (numbers: real \u2212 simulated)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths

