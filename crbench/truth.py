"""The truth rule: which pixels of a cosmic ray count as truth, and which are its halo.

One rule serves simulated and real data alike. Its input is a **significance** map: for
simulated data the CR charge of each pixel divided by the local noise sigma of the image without
the CR; for real multi-exposure labelling the deviation of the frame from its aligned companions'
median divided by the expected sigma of that deviation. The rule is Cosmic-CoNN's labelling rule
(seed and growth):

- a **seed** is a CR pixel with significance > ``seed_nsigma`` (default 5);
- **truth** is every CR pixel with significance > ``grow_nsigma`` (default 2.5) that is connected
  (``connectivity`` 8: edges and corners; 4: edges only) through such pixels to a seed;
- the **halo** is every other CR pixel with significance > ``halo_nsigma`` (default 1): charge a
  detector cannot be asked to find pixel by pixel. Evaluation ignores it by default
  (:class:`crbench.conventions.Conventions` ``halo``).

"CR pixel" is the ``cr_present`` mask: in simulation the pixels that received CR charge; in real
labelling the pixels above ``halo_nsigma`` connected to a seed (:func:`present_from_seeds`).

The rule's :meth:`TruthRule.to_dict` is recorded in every dataset card (``truth_rule``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import CRBenchError

#: Version of the rule's definition; bump when :func:`apply_truth_rule` changes meaning.
TRUTH_RULE_VERSION = "1"


class TruthRuleError(CRBenchError, ValueError):
    """A truth rule with inconsistent parameters."""


@dataclass(frozen=True)
class TruthRule:
    """A named, versioned seed-and-growth truth rule (see module docstring).

    Parameters
    ----------
    name : str
        Short name, e.g. ``'seed5-grow2.5'``.
    seed_nsigma : float
        Seed threshold in units of sigma.
    grow_nsigma : float
        Growth threshold (<= ``seed_nsigma``); equal to it gives a plain threshold.
    halo_nsigma : float
        Halo threshold (<= ``grow_nsigma``).
    connectivity : int
        8 (edges and corners) or 4 (edges only).
    max_grow : int or None
        At most this many growth steps from a seed (None: the whole connected region).
    version : str
        Definition version (:data:`TRUTH_RULE_VERSION`).
    """

    name: str = "seed5-grow2.5"
    seed_nsigma: float = 5.0
    grow_nsigma: float = 2.5
    halo_nsigma: float = 1.0
    connectivity: int = 8
    max_grow: int | None = None
    version: str = TRUTH_RULE_VERSION

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8):
            raise TruthRuleError(f"truth rule {self.name!r}: connectivity must be 4 or 8, got {self.connectivity}")
        if not (self.halo_nsigma <= self.grow_nsigma <= self.seed_nsigma):
            raise TruthRuleError(f"truth rule {self.name!r}: need halo_nsigma <= grow_nsigma <= seed_nsigma, got "
                                 f"{self.halo_nsigma}, {self.grow_nsigma}, {self.seed_nsigma}")
        if self.max_grow is not None and self.max_grow < 0:
            raise TruthRuleError(f"truth rule {self.name!r}: max_grow must be >= 0 or None, got {self.max_grow}")

    @property
    def structure(self) -> np.ndarray:
        """The 3x3 connectivity structure."""
        return np.ones((3, 3), bool) if self.connectivity == 8 else ndimage.generate_binary_structure(2, 1)

    def to_dict(self) -> dict[str, Any]:
        """The rule as recorded in a dataset card."""
        d = asdict(self)
        d["definition"] = (f"truth: CR pixels with significance > {self.grow_nsigma:g} sigma, "
                           f"{self.connectivity}-connected to a pixel > {self.seed_nsigma:g} sigma"
                           + ("" if self.max_grow is None else f" within {self.max_grow} growth steps")
                           + f"; halo: other CR pixels > {self.halo_nsigma:g} sigma")
        return d


#: The default rule (Cosmic-CoNN's labelling thresholds).
DEFAULT_RULE = TruthRule()


def seed_grow_rule(seed_nsigma: float, grow_nsigma: float, *, halo_nsigma: float = 1.0, connectivity: int = 8,
                   max_grow: int | None = None) -> TruthRule:
    """A seed-and-growth rule named ``seed{S}-grow{G}`` (``-max{N}`` with a growth limit, ``-c4`` if 4-connected)."""
    name = f"seed{seed_nsigma:g}-grow{grow_nsigma:g}"
    name += "" if max_grow is None else f"-max{max_grow}"
    name += "" if connectivity == 8 else f"-c{connectivity}"
    return TruthRule(name=name, seed_nsigma=float(seed_nsigma), grow_nsigma=float(grow_nsigma),
                     halo_nsigma=min(float(halo_nsigma), float(grow_nsigma)), connectivity=connectivity,
                     max_grow=max_grow)


def threshold_rule(nsigma: float, *, halo_nsigma: float = 1.0, connectivity: int = 8) -> TruthRule:
    """A plain threshold rule: truth = CR pixels above ``nsigma`` (seed = growth = ``nsigma``)."""
    return TruthRule(name=f"threshold{nsigma:g}", seed_nsigma=float(nsigma), grow_nsigma=float(nsigma),
                     halo_nsigma=min(float(halo_nsigma), float(nsigma)), connectivity=connectivity)


def rule_from_dict(d: dict[str, Any]) -> TruthRule:
    """Rebuild a rule recorded by :meth:`TruthRule.to_dict`."""
    keys = ("name", "seed_nsigma", "grow_nsigma", "halo_nsigma", "connectivity", "max_grow", "version")
    return TruthRule(**{k: d[k] for k in keys if k in d})


def _grow(seeds: np.ndarray, allowed: np.ndarray, rule: TruthRule) -> np.ndarray:
    if not seeds.any():
        return seeds.copy()
    if rule.max_grow is None:
        lab, n = ndimage.label(allowed, rule.structure)
        keep = np.unique(lab[seeds & allowed])
        keep = keep[keep > 0]
        return np.isin(lab, keep) | seeds
    if rule.max_grow == 0:
        return seeds.copy()
    return ndimage.binary_dilation(seeds, rule.structure, iterations=rule.max_grow, mask=allowed) | seeds


def apply_truth_rule(significance: np.ndarray, cr_present_mask: np.ndarray | None,
                     rule: TruthRule = DEFAULT_RULE) -> tuple[np.ndarray, np.ndarray]:
    """Truth and halo masks of a significance map under ``rule`` (pure function).

    Parameters
    ----------
    significance : ndarray (H, W)
        CR charge / local noise sigma (simulation) or deviation / expected sigma (real labelling).
        NaN counts as not significant; +inf (e.g. saturated CR pixels) as a seed.
    cr_present_mask : ndarray of bool (H, W) or None
        Pixels that carry CR charge; None: every pixel may.
    rule : TruthRule

    Returns
    -------
    truth, halo : ndarray of bool
        Disjoint masks; both lie inside ``cr_present_mask``.
    """
    sig = np.nan_to_num(np.asarray(significance, dtype=float), nan=-np.inf)
    present = np.ones(sig.shape, bool) if cr_present_mask is None else np.asarray(cr_present_mask, bool)
    if present.shape != sig.shape:
        raise TruthRuleError(f"truth rule {rule.name!r}: cr_present_mask has shape {present.shape} but the "
                             f"significance map has shape {sig.shape}")
    seeds = (sig > rule.seed_nsigma) & present
    truth = _grow(seeds, (sig > rule.grow_nsigma) & present, rule)
    halo = (sig > rule.halo_nsigma) & present & ~truth
    return truth, halo


def present_from_seeds(significance: np.ndarray, rule: TruthRule = DEFAULT_RULE) -> np.ndarray:
    """Where a real CR's charge is, estimated from data: pixels above ``halo_nsigma`` connected to a seed.

    The real-data counterpart of the simulator's "received CR charge" mask.
    """
    sig = np.nan_to_num(np.asarray(significance, dtype=float), nan=-np.inf)
    seeds = sig > rule.seed_nsigma
    region = TruthRule(name="present", seed_nsigma=rule.seed_nsigma, grow_nsigma=rule.halo_nsigma,
                       halo_nsigma=rule.halo_nsigma, connectivity=rule.connectivity)
    return _grow(seeds, sig > rule.halo_nsigma, region)
