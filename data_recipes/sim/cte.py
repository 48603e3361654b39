"""Charge-transfer inefficiency (CTE trails) of a radiation-damaged CCD, and what a pipeline leaves of it.

Radiation damage creates charge traps in the silicon. During read-out every charge packet is clocked
through the pixels between it and the serial register; traps on the way capture electrons and release
them a few transfers later, into the packets that follow. A pixel therefore loses charge and leaves a
trail on the side away from the register (docs/physics.md#confusers). Trails of warm pixels, CRs and
stars are sharp, column-aligned features: to a single-frame detector a trailed warm pixel is a short
track.

The model is the volume-driven, instant-capture trap model of Massey et al. (2010, MNRAS 401, 371;
2014, MNRAS 439, 887) with the ACS/WFC trap species that ArCTIc's documentation lists (three species,
release time scales 0.74, 7.70 and 37.0 transfers, densities 0.60, 1.60 and 1.4 traps per pixel,
full well 84,700 e-, well-fill power 0.478; late-epoch ACS values), computed in the "express"
approximation: the traps seen by a packet are treated as ``transfers`` copies of one trap site whose
occupancy is tracked along the column. Per species ``s`` and per packet of ``n`` e-:

- release: the trapped electrons ``t_s`` empty by ``1 - exp(-1 / tau_s)`` per dwell and join the packet
  now at the traps;
- capture: the packet fills the traps up to the volume it occupies, ``v(n) = (n / full_well) ** beta``,
  i.e. it loses ``max(density_s * transfers * v(n) - t_s, 0)`` e- (never more than it holds).

Trapped charge is counted in electrons, so read-out conserves charge (what is still trapped after the
last row is the trail beyond the frame). Against a transfer-by-transfer simulation (each pixel site with
its own traps) the express read-out keeps the same share of a hit's charge within 0.01 and puts the same
charge in its first 10 trail pixels within 8% (``tests/test_cte.py``).

The model is deterministic (no trapping noise), so the effect of one charge layer (a CR) is exactly the
difference of the read-out with and without it.

Pipelines correct CTE (ACS ``_flc`` files, CALACS's pixel-based correction); Massey et al. (2010)
report trails reduced ~30-fold and Massey et al. (2014) 98 per cent of the trailing corrected. The
residual is modelled as that fraction of the trail and of the loss: ``observed = original + residual *
(trailed - original)``; ``residual = 1`` is an uncorrected (``_flt``-like) frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crbench.errors import CRBenchError


@dataclass(frozen=True)
class CTEModel:
    """Trap species, well and chip geometry of a CCD's parallel CTE.

    Parameters
    ----------
    densities : tuple of float
        Traps per pixel of each species (over the pixel's full volume).
    release_timescales : tuple of float
        e-folding release time of each species, in parallel transfers.
    full_well : float
        Full well (e-) of the volume model.
    well_fill_power : float
        ``beta``: a packet of ``n`` e- fills ``(n / full_well) ** beta`` of the pixel volume.
    chip_rows : int
        Rows between the far edge of the chip and its serial register; a frame is a cut-out placed at a
        random distance from the register (:func:`draw_cte_geometry`).
    residual : float
        Share of the trailing (and of the loss) left after the pipeline's correction: 1 = uncorrected.
    """

    densities: tuple[float, ...] = (0.60, 1.60, 1.40)
    release_timescales: tuple[float, ...] = (0.74, 7.70, 37.0)
    full_well: float = 84700.0
    well_fill_power: float = 0.478
    chip_rows: int = 2048
    residual: float = 0.03

    def __post_init__(self) -> None:
        if len(self.densities) != len(self.release_timescales) or not self.densities:
            raise CRBenchError("CTEModel: densities and release_timescales must be non-empty and of one length")
        if any(d < 0 for d in self.densities) or any(t <= 0 for t in self.release_timescales):
            raise CRBenchError("CTEModel: densities must be >= 0 and release_timescales > 0 transfers")
        if self.full_well <= 0 or not 0 < self.well_fill_power <= 1:
            raise CRBenchError("CTEModel: full_well must be > 0 and well_fill_power in (0, 1]")
        if not 0.0 <= self.residual <= 1.0:
            raise CRBenchError(f"CTEModel.residual must be in [0, 1], got {self.residual!r}")
        if self.chip_rows < 1:
            raise CRBenchError("CTEModel.chip_rows must be >= 1")

    def with_residual(self, residual: float) -> "CTEModel":
        """The same traps with another correction residual."""
        return CTEModel(self.densities, self.release_timescales, self.full_well, self.well_fill_power,
                        self.chip_rows, float(residual))

    def to_dict(self) -> dict[str, object]:
        """Plain values for the dataset card."""
        return {"densities_per_pixel": list(self.densities),
                "release_timescales_transfers": list(self.release_timescales),
                "full_well_e": self.full_well, "well_fill_power": self.well_fill_power,
                "chip_rows": self.chip_rows, "correction_residual": self.residual,
                "model": "volume-driven instant capture, express approximation (Massey et al. 2010, 2014; "
                         "ArCTIc ACS/WFC trap species)"}


@dataclass(frozen=True)
class CTEGeometry:
    """Where a frame sits on its chip: ``offset`` rows between the frame's register-side edge and the
    register, and ``register_at_top`` (the register is beyond the frame's last row rather than its first)."""

    offset: int
    register_at_top: bool


def draw_cte_geometry(rng: np.random.Generator, n_rows: int, model: CTEModel) -> CTEGeometry:
    """Place a frame of ``n_rows`` rows at a random distance from the register, on either side."""
    free = max(0, int(model.chip_rows) - int(n_rows))
    return CTEGeometry(offset=int(rng.integers(0, free + 1)), register_at_top=bool(rng.integers(0, 2)))


def read_out(charge: np.ndarray, model: CTEModel, geometry: CTEGeometry) -> np.ndarray:
    """The frame after parallel read-out through the traps (no correction, see :func:`observed_after_cte`).

    Parameters
    ----------
    charge : ndarray (H, W)
        Charge in each pixel before read-out (e-).
    model : CTEModel
    geometry : CTEGeometry

    Returns
    -------
    ndarray (H, W), float64
        The charge each pixel delivers. Charge is conserved except what is still in the traps after
        the last row (the trail beyond the frame).
    """
    q = np.asarray(charge, dtype=np.float64)
    if q.ndim != 2:
        raise CRBenchError(f"CTE read-out: expected a 2-D frame, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise CRBenchError("CTE read-out: the frame has NaN or inf pixels")
    rows = q[::-1] if geometry.register_at_top else q
    h, w = rows.shape
    dens = np.asarray(model.densities, dtype=np.float64)[:, None]              # (S, 1)
    keep = np.exp(-1.0 / np.asarray(model.release_timescales, dtype=np.float64))[:, None]
    beta, well = float(model.well_fill_power), float(model.full_well)
    # the chip's rows between the frame and the register were read first, at the sky level of the
    # frame's first rows: the traps start in the equilibrium that level keeps, not empty
    first_cap = dens * float(geometry.offset + 1)
    trapped = first_cap * _equilibrium_fill(np.median(rows[: min(h, 8)], axis=0), first_cap, keep, beta, well)
    out = np.empty_like(rows)
    for y in range(h):                      # readout order: the row nearest the register first
        cap = dens * float(geometry.offset + y + 1)                            # traps on the path (e- at full volume)
        released = trapped * (1.0 - keep)                                      # e-, into this packet
        trapped = trapped - released
        packet = rows[y] + released.sum(axis=0)
        volume = (np.maximum(packet, 0.0) / well) ** beta
        wanted = np.maximum(cap * volume[None, :] - trapped, 0.0)              # (S, W) e- the empty traps take
        total = wanted.sum(axis=0)
        scale = np.where(total > packet, np.maximum(packet, 0.0) / np.where(total > 0, total, 1.0), 1.0)
        taken = wanted * scale[None, :]
        trapped = trapped + taken
        out[y] = packet - taken.sum(axis=0)
    return out[::-1] if geometry.register_at_top else out


def _equilibrium_fill(sky: np.ndarray, cap: np.ndarray, keep: np.ndarray, beta: float, well: float,
                      iterations: int = 50) -> np.ndarray:
    """Trap fill (S, W) that a steady stream of ``sky`` packets keeps: each packet takes back what the traps
    release, ``R = v(sky + R) * sum_s cap_s (1 - keep_s)``, solved by fixed-point iteration (a contraction:
    the volume's slope ``beta v / n`` keeps the map's slope well below 1 for any realistic sky)."""
    sky = np.maximum(np.asarray(sky, dtype=np.float64), 0.0)
    rate = (cap * (1.0 - keep)).sum(axis=0)                                    # scalar per column
    released = np.zeros_like(sky)
    for _ in range(iterations):
        released = rate * ((sky + released) / well) ** beta
    return np.broadcast_to(((sky + released) / well) ** beta, (cap.shape[0], sky.shape[0])).copy()


def observed_after_cte(charge: np.ndarray, model: CTEModel, geometry: CTEGeometry) -> np.ndarray:
    """The frame as a CTE-corrected pipeline delivers it: ``charge + residual * (read_out - charge)``."""
    q = np.asarray(charge, dtype=np.float64)
    if model.residual == 0.0:
        return q.copy()
    return q + model.residual * (read_out(q, model, geometry) - q)


def layer_after_cte(total: np.ndarray, layer: np.ndarray, model: CTEModel, geometry: CTEGeometry,
                    total_observed: np.ndarray | None = None) -> np.ndarray:
    """What one charge ``layer`` (e.g. the CRs) contributes to the observed frame: the observed frame
    with it minus the observed frame without it (exact for the deterministic, non-linear trap model)."""
    with_layer = observed_after_cte(total, model, geometry) if total_observed is None else total_observed
    return with_layer - observed_after_cte(np.asarray(total, dtype=np.float64) - layer, model, geometry)


def extend_labels_along_trails(labels: np.ndarray, charge: np.ndarray, geometry: CTEGeometry,
                               max_length: int = 200) -> np.ndarray:
    """Give trail pixels (positive ``charge``, no label) the label of the pixel that trailed into them:
    the nearest labelled pixel on their register side in the same column, at most ``max_length`` rows away."""
    lab = np.asarray(labels)
    rows = lab[::-1] if geometry.register_at_top else lab
    ch = np.asarray(charge)[::-1] if geometry.register_at_top else np.asarray(charge)
    out = rows.copy()
    last = np.zeros(rows.shape[1], dtype=rows.dtype)
    age = np.full(rows.shape[1], max_length + 1)
    for y in range(rows.shape[0]):
        here = rows[y] > 0
        last = np.where(here, rows[y], last)
        age = np.where(here, 0, age + 1)
        fill = (~here) & (ch[y] > 0) & (age <= max_length) & (last > 0)
        out[y] = np.where(fill, last, rows[y])
    return out[::-1] if geometry.register_at_top else out
