"""Named evaluation conventions, recorded in every result.

- ``dilation``: ``'none'``; ``'deepcr'`` = the prediction dilated by a 3x3 square for TPR only
  (FPR measured undilated), as deepCR's paper; ``'both'`` = dilated prediction for TPR and FPR.
  Dilating a thresholded mask equals thresholding the 3x3 maximum filter of the score, so every
  threshold of the curve gets the convention exactly.
- ``ignore``: ``'exclude'`` (ignore pixels are in no count) or ``'as-negative'`` (deepCR and
  Cosmic-CoNN: prediction and truth multiplied by 1 - ignore, so ignore pixels become true negatives).
- ``pooling``: ``'pooled'`` (confusion counts summed over images) or ``'per-image'`` (each summary
  number averaged over images).
- ``halo``: what the halo pixels (CR charge above 1 sigma failing the truth rule, :mod:`crbench.truth`)
  count as: ``'ignore'`` (default; left out of every count, like ignore ``'exclude'``),
  ``'negative'`` (non-CR pixels) or ``'positive'`` (CR truth).

The crbench default is ``none / exclude / pooled``: dilation and ignore-as-negative both flatter a
detector (FPR computed on pixels that cannot be wrong, TPR credited for neighbours), and pooled
counts are what every anchor reports.

Details fixed by the hand-computed cases in ``tests/test_conventions.py``:

- with dilation, ignored pixels are removed from the prediction *before* dilating (deepCR removes
  bad pixels from prediction and truth), so an ignored bright pixel never credits its neighbours;
- with ``as-negative``, an ignored pixel is a negative at the lowest score (prediction times
  ``1 - ignore``) and an ignored CR pixel is no positive (truth times ``1 - ignore``);
- per-CR, per-morphology and source metrics are always pooled over instances and sources; the
  ``pooling`` convention applies to the pixel-level summary numbers;
- ``protocol='cosmic-conn'`` also takes Cosmic-CoNN's summary rules (per-image mean Dice over
  ``linspace(0, 1, 51)``, step-rule TPR at FPR, nearest-point precision at recall;
  :mod:`crbench.metrics.protocols`);
- dilating true positives but not false positives (``dilation='deepcr'``) inflates every number
  that mixes the two (AP, precision, Dice): those columns are listed by
  :meth:`Conventions.not_comparable`, recorded in the run's provenance and never ranked on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DILATIONS = ("none", "deepcr", "both")
IGNORES = ("exclude", "as-negative")
POOLINGS = ("pooled", "per-image")
HALOS = ("ignore", "negative", "positive")


@dataclass(frozen=True)
class Conventions:
    """A set of evaluation conventions (see module docstring)."""

    dilation: str = "none"
    ignore: str = "exclude"
    pooling: str = "pooled"
    protocol: str = "crbench"
    halo: str = "ignore"

    def __post_init__(self) -> None:
        for field, allowed in (("dilation", DILATIONS), ("ignore", IGNORES), ("pooling", POOLINGS),
                               ("halo", HALOS)):
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"convention {field}={value!r} is not one of {', '.join(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def not_comparable(self) -> list[str]:
        """Result columns that are not comparable across detectors under these conventions."""
        if self.dilation != "deepcr":
            return []
        return list(NOT_COMPARABLE_UNDER_TP_DILATION)


#: Columns inflated when true positives are dilated and false positives are not.
NOT_COMPARABLE_UNDER_TP_DILATION = ("ap", "precision_at_recall_0.95", "precision_at_recall_0.99", "best_dice",
                                    "op_precision", "op_dice")


#: Presets reproducing the anchors' published protocols (docs/anchors.md#deepcr-protocol,
#: docs/anchors.md#cosmic-conn-protocol).
PROTOCOLS: dict[str, Conventions] = {
    "crbench": Conventions(),
    # deepCR paper and deepCR/evaluate.py: pooled counts, prediction and truth multiplied by (1 - ignore)
    # (ignored pixels are true negatives), TPR after 3x3 dilation, FPR before it.
    "deepcr": Conventions(dilation="deepcr", ignore="as-negative", pooling="pooled", protocol="deepcr"),
    # Cosmic-CoNN: pooled sklearn curves with prediction and truth multiplied by (1 - ignore); its own
    # Dice / TPR-at-FPR / precision-at-recall rules (crbench.metrics.protocols).
    "cosmic-conn": Conventions(dilation="none", ignore="as-negative", pooling="pooled", protocol="cosmic-conn"),
}


def resolve_conventions(protocol: str | None = None, **overrides: Any) -> Conventions:
    """A protocol preset (default ``'crbench'``) with any non-None field overridden."""
    name = protocol or "crbench"
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    base = PROTOCOLS[name].to_dict()
    changed = {k: v for k, v in overrides.items() if v is not None}
    base.update(changed)
    if changed and any(base[k] != PROTOCOLS[name].to_dict()[k] for k in changed):
        base["protocol"] = f"{name}+custom"
    return Conventions(**base)
