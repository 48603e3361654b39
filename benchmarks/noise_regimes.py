"""Every baseline on a grid of noise regimes: read noise x sky x gain, same real backgrounds, same CRs.

Backgrounds (``--backgrounds``):

- ``real`` (default): clean REAL backgrounds of the MicroObservatory HAT-P-32 series, through the
  same code that builds the ``microobs-hatp32-sim`` twin (:mod:`data_recipes.real.twins`): the series
  is read from the download registry (``$CRBENCH_MIRROR`` for a local mirror), its
  :func:`~data_recipes.real.labelling.fit_series_model` gives the aligned median moved onto a frame
  plus that frame's sky, in electrons (:meth:`SeriesModel.model_in_frame_e`), cropped to the
  rectangle the model covers in every chosen frame (:func:`covered_box`; 438x376 of the 500x650
  frames for the 8 frames with the highest sky). Pixels the real frame saturated (raw ADU at the
  camera's saturation; their true value is unknown) keep their scaled value but are flagged
  saturated (``DQ_SATURATED`` in the sample's instrument mask, as a pipeline flags a full well)
  and ignored in every cell; setting them to the ADC's full scale instead would put 1.3e6 e- into
  the gain-20 cells, beyond any full well. The frames with the highest sky are used: the sky in e-
  rests on a bias estimated as the darkest frame's level, so it is best known, relative to itself,
  where it is brightest. The median of 12-bit frames keeps a residual texture (ADU steps of ~39 e-
  and median noise; printed as ``texture``, relative to the sky): it scales with the sky like the
  rest of the structure, and the companions share it.

  Why the crop and the saturation flags (measured on the first version, which filled uncovered
  pixels with the frame's sky as the twin does but, unlike the twin, did not ignore them, and which
  scaled saturated plateaus without flagging them): the fill cut the stars on the coverage edge (row
  ~458, column ~507) into half-stars with a straight, sharp side, and a saturated star with its
  bleed column became, once scaled below the cell's full scale, an unflagged flat plateau with sharp
  edges. At a sky of 10,000 e- both stood hundreds of sigma above the sky and were the top false
  positives of every single-frame detector: artefacts of the construction that no real frame has.
- ``dataset:PATH``: the median of each sample's image and stored exposures of a built dataset
  (e.g. ``$CRBENCH_DATA_DIR/datasets/microobs-hatp32-sim``), CRs and noise included in that median.

For each cell (read noise ``r`` e-, sky ``s`` e-/px, gain ``g`` e-/ADU) every background is scaled so
that its median is ``s`` (its structure kept: stars scale with it), then observed as the simulator
does: Poisson(background) + the CR charge + Normal(0, r), clipped at a 16-bit ADC's full scale
(``65535 g``) and quantised to the ADU step ``g`` (:func:`crbench.portable.digitise`), stored in
electrons. The CRs are drawn ONCE per background (``data_recipes.sim.physics.simulate_crs``, preset
``--preset``, 60 s, rate x ``--rate-scale``) and injected unchanged in every cell; the truth is that
layer under crbench's truth rule (:mod:`crbench.truth`) with the cell's noise sigma
``sqrt(r^2 + background + g^2/12)`` (read, shot and quantisation noise; the simulator's recipes leave
the quantisation term out, which at 20 e-/ADU is 5.8 e-), so a faint CR can be truth in a
quiet cell and halo in a noisy one. Ignored, as the real labels ignore them: saturated pixels with a
2-px ring around them (``saturation_grow``: bleeding and non-linearity next to a full well;
:func:`grow_saturation`) and an 8-px border (``border``: stars cut by the image edge peak there).
Two companion exposures per sample (the same background, independent noise and independent CRs,
also the same in every cell; not in truth) serve the median detector.

Scoring is crbench's own: each cell is written as a temporary dataset (:func:`crbench.dataset.write_dataset`)
and scored by :func:`crbench.evaluate` (protocol crbench, pooled pixels, halo ignored, operating point
chosen in-sample, no bootstrap). TPR at FPR 5e-4 is "not reached" when the detector's strictest
threshold has a higher FPR (as the leaderboard writes it).

The last lines check issue 18's acceptance: for each learned detector, the cells where a classical
baseline (lacosmic or median) reaches AP >= 0.5 and the learned one scores below that classical AP;
the last two lines are ``cells_where_attention-unet-mixture_below_classical: N`` (the shipped generalist
on a single frame, :data:`HEADLINE`) and ``cells_where_attention-unet-mixture-median_below_classical: N``
(the generalist fused with the median comparison of the same companion exposures,
:data:`HEADLINE_COMPANIONS`).

Usage::

    nice -n 19 python benchmarks/noise_regimes.py [--quick] [--read-noise 2,10,40,100] [--sky 1,100,10000]
        [--gain 0.5,4,20] [--detectors lacosmic,median,...] [--backgrounds real|dataset:PATH]
        [--n-backgrounds 3] [--crop H,W] [--rate-scale 10] [--seed 0] [--bootstrap N]
        [--weights LABEL=PATH ...] [--out DIR]
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

# One native thread per library unless the user set them: astroscrappy's and torch's OpenMP runtimes in one
# process oversubscribe a small or shared machine (set before either loads; as tests/conftest.py does).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crbench.errors import CRBenchError  # noqa: E402
from crbench.observation import DQ_SATURATED, saturation_dqmask  # noqa: E402
from crbench.portable import digitise  # noqa: E402
from crbench.sample import Sample  # noqa: E402

DETECTORS = ("lacosmic", "median", "deepcr", "attention-unet", "unet-nogate", "deepcr-retrained", "cosmic-conn",
             "attention-unet-mixture", "attention-unet-mixture-60", "unet-nogate-mixture", "deepcr-retrained-mixture",
             "attention-unet-mixture-median")
CLASSICAL = ("lacosmic", "median")
HEADLINE = "attention-unet-mixture"  # the shipped generalist on a single frame (issue 18)
#: the shipped generalist given the companion exposures the median comparison uses (baselines.fusion)
HEADLINE_COMPANIONS = "attention-unet-mixture-median"
HEADLINES = (HEADLINE, HEADLINE_COMPANIONS)
DEFAULT_GRID = {"read_noise": (2.0, 10.0, 40.0, 100.0), "sky": (1.0, 100.0, 10000.0), "gain": (0.5, 4.0, 20.0)}
QUICK_GRID = {"read_noise": (5.0, 40.0), "sky": (10.0, 1000.0), "gain": (1.0, 8.0)}
QUICK: dict[str, Any] = {"crop": (96, 128), "n_backgrounds": 2, "rate_scale": 60.0}
EXPTIME = 60.0
ADC_MAX = 65535.0
N_COMPANIONS = 2
TARGET_FPR = 5e-4
AP_CLASSICAL_MIN = 0.5
TPR_KEY = "tpr_at_fpr_5e-4"


class NoiseGridError(CRBenchError, ValueError):
    """A grid value or benchmark option outside its valid range."""


@dataclass(frozen=True)
class Cell:
    """One noise regime: read noise (e-), sky (e- per pixel, the background's median) and gain (e-/ADU)."""

    read_noise: float
    sky: float
    gain: float

    @property
    def name(self) -> str:
        """Short id, e.g. ``rn10-sky100-g4``."""
        return f"rn{self.read_noise:g}-sky{self.sky:g}-g{self.gain:g}"

    @property
    def saturation(self) -> float:
        """Full scale of a 16-bit ADC at this gain (e-)."""
        return ADC_MAX * self.gain

    def sigma(self, background: np.ndarray) -> np.ndarray:
        """Per-pixel noise sigma without CRs: read, shot and quantisation noise (e-)."""
        return np.sqrt(self.read_noise ** 2 + np.maximum(background, 0.0) + self.gain ** 2 / 12.0)


def parse_values(option: str, text: str | Sequence[float]) -> tuple[float, ...]:
    """Comma-separated numbers of ``option`` (or a sequence) as floats; a clear error otherwise."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(float(p) for p in parts if str(p).strip())
    except ValueError:
        raise NoiseGridError(f"--{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise NoiseGridError(f"--{option}: expected at least one value, got {text!r}")
    return values


def make_grid(read_noise: Sequence[float], sky: Sequence[float], gain: Sequence[float]) -> list[Cell]:
    """The cells of read noise x sky x gain, after checking every value.

    Parameters
    ----------
    read_noise, sky, gain : sequence of float
        Read noise >= 0 e-, sky > 0 e- per pixel, gain > 0 e-/ADU (all finite).

    Returns
    -------
    list of Cell
        In read noise, sky, gain order (gain varies fastest).

    Raises
    ------
    NoiseGridError
        Naming the option (``--read-noise``, ``--sky``, ``--gain``) and the bad value.
    """
    checks = (("read-noise", read_noise, False), ("sky", sky, True), ("gain", gain, True))
    for option, values, strict in checks:
        if len(values) == 0:
            raise NoiseGridError(f"--{option}: expected at least one value")
        for v in values:
            ok = math.isfinite(v) and (v > 0 if strict else v >= 0)
            if not ok:
                need = "> 0" if strict else ">= 0"
                raise NoiseGridError(f"--{option}: every value must be finite and {need}, got {v!r}")
    return [Cell(float(r), float(s), float(g)) for r, s, g in itertools.product(read_noise, sky, gain)]


def scale_to_sky(background: np.ndarray, sky: float) -> np.ndarray:
    """``background`` multiplied so that its median is ``sky`` (structure kept; negatives clipped to 0).

    Raises
    ------
    NoiseGridError
        When the background's median is not positive (nothing to scale).
    """
    bg = np.maximum(np.asarray(background, np.float64), 0.0)
    med = float(np.median(bg))
    if not med > 0:
        raise NoiseGridError(f"background has median {med!r}; a background to scale needs a positive median")
    return bg * (float(sky) / med)


def observe(rng: np.random.Generator, background: np.ndarray, cell: Cell, cr_charge: np.ndarray | None) -> np.ndarray:
    """One exposure in e-: Poisson(background) + CR charge + read noise, clipped at full scale, on the ADU grid."""
    img = rng.poisson(np.maximum(background, 0.0)).astype(np.float64)
    if cr_charge is not None:
        img += cr_charge
    img += rng.normal(0.0, cell.read_noise, background.shape)
    img = np.clip(img, None, cell.saturation)
    return digitise(img, cell.gain)


@dataclass
class Injection:
    """What every cell shares for one background: the clean background and its CR layers."""

    id: str
    background: np.ndarray
    primary: Any  # data_recipes.sim.physics.CRLayer of the scored image
    companions: list[Any]  # CR layers of the companion exposures (not in truth)
    #: pixels the real frame saturated (true value unknown): flagged saturated in every cell (None: none)
    saturated: np.ndarray | None = None


def draw_injections(backgrounds: Sequence[np.ndarray], *, preset: str = "ground-small", rate_scale: float = 10.0,
                    seed: int = 0, n_companions: int = N_COMPANIONS,
                    saturated: Sequence[np.ndarray | None] | None = None) -> list[Injection]:
    """Simulate the CRs of every background once (primary and companions), to reuse in every cell.

    Parameters
    ----------
    backgrounds : sequence of ndarray
        Clean backgrounds (e-); only their shapes matter here.
    preset : str
        A :data:`data_recipes.sim.presets.PRESETS` name.
    rate_scale : float
        Multiplier on the preset's CR rates (> 0).
    seed : int
        Seed; background ``i`` uses the stream ``[seed, i]``.
    n_companions : int
        Companion exposures per background.
    saturated : sequence of bool arrays, optional
        Per background, the pixels its real frame saturated (:func:`real_backgrounds_and_saturation`).
    """
    from data_recipes.sim.physics import simulate_crs
    from data_recipes.sim.presets import get_preset

    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise NoiseGridError(f"--rate-scale: must be finite and > 0, got {rate_scale!r}")
    p = get_preset(preset)
    out = []
    for i, bg in enumerate(backgrounds):
        rng = np.random.default_rng([int(seed), i])
        shape = tuple(np.shape(bg))
        layers = [simulate_crs(rng, shape, p, EXPTIME, id_offset=1000 * k, rate_scale=rate_scale, classify=False)
                  for k in range(1 + n_companions)]
        sat = None if saturated is None or saturated[i] is None else np.asarray(saturated[i], bool)
        if sat is not None and sat.shape != shape:
            raise NoiseGridError(f"background {i}: saturation mask of shape {sat.shape}, expected {shape}")
        out.append(Injection(f"bg{i:02d}", np.asarray(bg, np.float64), layers[0], layers[1:], sat))
    return out


def cell_sample(inj: Injection, cell: Cell, rng: np.random.Generator) -> Sample:
    """The sample of one background in one cell: image, truth under the cell's sigma, companions, meta."""
    bg = scale_to_sky(inj.background, cell.sky)
    img = observe(rng, bg, cell, inj.primary.charge)
    exps = [observe(rng, bg, cell, layer.charge) for layer in inj.companions]
    truth, halo = inj.primary.truth_and_halo(cell.sigma(bg))
    dq = saturation_dqmask(img, cell.saturation, tolerance=cell.gain)
    saturated = img >= cell.saturation
    if inj.saturated is not None:
        dq[inj.saturated] |= DQ_SATURATED
        saturated |= inj.saturated
    ignore = edge_mask(img.shape) | grow_saturation(saturated)
    truth, halo = truth & ~ignore, halo & ~ignore
    labels = np.where(truth, inj.primary.labels, 0).astype(np.int32)
    meta = {"gain": cell.gain, "read_noise": cell.read_noise, "sky": cell.sky, "saturation": cell.saturation,
            "exptime": EXPTIME, "cell": cell.name}
    return Sample(id=inj.id, image=img.astype(np.float32), truth=labels > 0, ignore=ignore, labels=labels,
                  halo=halo, exposures=np.stack(exps).astype(np.float32) if exps else None, meta=meta,
                  dqmask=dq).validate()


def edge_mask(shape: tuple[int, ...], width: int | None = None) -> np.ndarray:
    """True within ``width`` px of the image edge (default the real labelling's ``border``, 8 px: the
    twin and the real labels ignore it; stars cut by the edge peak there)."""
    from data_recipes.real.labelling.masks import border_mask
    from data_recipes.real.labelling.params import LabelParams

    return border_mask((int(shape[-2]), int(shape[-1])), LabelParams().border if width is None else int(width))


def grow_saturation(saturated: np.ndarray, steps: int | None = None) -> np.ndarray:
    """``saturated`` grown by ``steps`` 8-connected steps (default the real labelling's
    ``saturation_grow``, 2 px: the ring around a saturated core that the real labels ignore)."""
    from scipy import ndimage

    from data_recipes.real.labelling.params import EIGHT, LabelParams

    n = LabelParams().saturation_grow if steps is None else int(steps)
    sat = np.asarray(saturated, bool)
    return ndimage.binary_dilation(sat, EIGHT, iterations=n) if n > 0 and sat.any() else sat


def cell_samples(injections: Sequence[Injection], cell: Cell, cell_index: int, seed: int = 0) -> list[Sample]:
    """Every background's sample in ``cell`` (noise stream ``[seed, 1, cell_index, i]``)."""
    return [cell_sample(inj, cell, np.random.default_rng([int(seed), 1, int(cell_index), i]))
            for i, inj in enumerate(injections)]


def crop_center(image: np.ndarray, crop: tuple[int, int] | None) -> np.ndarray:
    """The central ``crop`` (H, W) of ``image`` (the whole image when None or larger)."""
    if crop is None:
        return image
    h, w = image.shape[-2:]
    ch, cw = min(int(crop[0]), h), min(int(crop[1]), w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return image[..., y0:y0 + ch, x0:x0 + cw]


def texture(background: np.ndarray) -> float:
    """Pixel-to-pixel scatter of ``background`` around its 3x3 median (the largest 10% of residuals,
    stars, left out), relative to its median."""
    from scipy import ndimage

    r = np.abs(background - ndimage.median_filter(background, 3))
    r = r[r <= np.percentile(r, 90)]
    return float(np.sqrt(np.mean(r ** 2)) / max(float(np.median(background)), 1e-300))


# ------------------------------------------------------------------------------------------------
# I/O: backgrounds, scoring, tables
# ------------------------------------------------------------------------------------------------

def real_backgrounds_and_saturation(n: int, crop: tuple[int, int] | None, series_frames: int | None = None,
                                    progress: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Clean real MicroObservatory backgrounds in e- of the ``n`` frames with the highest sky (see module
    doc), and per background the pixels its real frame saturated (raw ADU >= the camera's saturation).

    Parameters
    ----------
    n : int
        Number of backgrounds.
    crop : (int, int) or None
        Central crop (H, W).
    series_frames : int, optional
        Fit the series model on the first N frames only (default all; fewer than ~30 frames make
        the gain fit fall back to 1 e-/ADU).
    progress : bool
        Progress bars.
    """
    from crbench.download import download
    from data_recipes.real.labelling import LabelParams, fit_series_model
    from data_recipes.real.microobs import DOWNLOAD, SATURATION_ADU, load_series

    cube, _, _ = load_series(download(DOWNLOAD, progress=progress), series_frames, progress=progress)
    model = fit_series_model(cube, params=LabelParams(saturation_adu=SATURATION_ADU), progress=progress)
    sky_e = (np.asarray(model.sky_adu, np.float64) - model.noise.bias) * model.noise.gain
    chosen = [int(i) for i in sorted(np.argsort(-sky_e)[: max(int(n), 1)])]
    ys, xs = covered_box([model.coverage_in_frame(i) for i in chosen])
    bgs = [crop_center(np.asarray(model.model_in_frame_e(i), np.float64)[ys, xs], crop) for i in chosen]
    sats = [crop_center(np.asarray(cube[i] >= SATURATION_ADU)[ys, xs], crop) for i in chosen]
    return bgs, sats


def covered_box(masks: Sequence[np.ndarray]) -> tuple[slice, slice]:
    """The rectangle covered in every mask: the bounding box of their intersection, trimmed (edge row or
    column with the most uncovered pixels first) until every pixel in it is covered.

    Raises
    ------
    NoiseGridError
        When no pixel is covered in every mask.
    """
    common = np.logical_and.reduce([np.asarray(m, bool) for m in masks])
    if not common.any():
        raise NoiseGridError("the series model covers no pixel common to the chosen frames")
    rows, cols = np.flatnonzero(common.any(axis=1)), np.flatnonzero(common.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    while not common[y0:y1, x0:x1].all():
        box = common[y0:y1, x0:x1]
        edges = {"top": (~box[0]).sum(), "bottom": (~box[-1]).sum(), "left": (~box[:, 0]).sum(),
                 "right": (~box[:, -1]).sum()}
        worst = max(edges, key=lambda k: edges[k])
        if worst == "top":
            y0 += 1
        elif worst == "bottom":
            y1 -= 1
        elif worst == "left":
            x0 += 1
        else:
            x1 -= 1
    return slice(y0, y1), slice(x0, x1)


def dataset_backgrounds(path: str | Path, n: int, crop: tuple[int, int] | None) -> list[np.ndarray]:
    """Median of image and exposures of the first ``n`` samples of a built dataset (e-)."""
    from crbench.dataset import Dataset

    ds = Dataset.open(path)
    out = []
    for sid in ds.ids()[: int(n)]:
        s = ds.load(sid)
        stack = [s.image] + ([] if s.exposures is None else list(s.exposures))
        if len(stack) < 3:
            raise NoiseGridError(f"--backgrounds dataset:{path}: sample {sid!r} has {len(stack)} exposures; "
                                 "the median background needs the image and at least 2 companions")
        out.append(crop_center(np.median(np.stack(stack), axis=0).astype(np.float64), crop))
    if not out:
        raise NoiseGridError(f"--backgrounds dataset:{path}: the dataset has no samples")
    return out


def load_detectors(names: Sequence[str], probe: Sample) -> dict[str, Any]:
    """The detectors that load and have their inputs on ``probe``; one line per skipped one."""
    from crbench.detectors.registry import get_detector

    dets = {}
    for name in names:
        try:
            det = get_detector(name)
        except Exception as exc:  # noqa: BLE001 - a baseline that does not load is skipped with a line
            msg = str(exc).splitlines()[0] if str(exc) else ""
            print(f"skipped {name}: {type(exc).__name__}: {msg}")
            continue
        missing = det.missing_inputs(probe.observation())
        if missing:
            print(f"skipped {name}: lacks {missing}")
            continue
        dets[name] = det
    return dets


def score_cell(samples: Sequence[Sample], detectors: dict[str, Any], cell: Cell, workdir: Path,
               bootstrap: int = 0) -> list[dict]:
    """AP and TPR@5e-4 of every detector on one cell, by :func:`crbench.evaluate` on a temporary dataset;
    with ``bootstrap`` replicates (resampling the backgrounds) also the 95% AP interval ``ap_lo``, ``ap_hi``
    (NaN without)."""
    import crbench
    from crbench.dataset import write_dataset

    root = workdir / cell.name
    ds = write_dataset(root, iter(samples), name=f"noise-{cell.name}", splits={"test": [s.id for s in samples]},
                       recipe=None, parameters={"cell": cell.name}, statistics=False)
    res = crbench.evaluate(list(detectors.values()), ds, split="test", operating_split=None, per_cr=False,
                           sources=False, bootstrap=int(bootstrap), progress=False)
    rows = []
    n_truth = int(sum(int(np.count_nonzero(cast(np.ndarray, s.truth))) for s in samples))
    table = res.table
    if len(table) != len(detectors):
        raise CRBenchError(f"cell {cell.name}: {len(table)} result rows for {len(detectors)} detectors")
    for name, (_, r) in zip(detectors, table.iterrows()):
        status = str(r.get(f"{TPR_KEY}_status", "ok") or "ok")
        lo, hi = (float(r.get("ap_lo", float("nan"))), float(r.get("ap_hi", float("nan")))) if bootstrap else \
            (float("nan"), float("nan"))
        rows.append({"cell": cell.name, "read_noise": cell.read_noise, "sky": cell.sky, "gain": cell.gain,
                     "truth_px": n_truth, "detector": name, "ap": float(r["ap"]), "tpr": float(r[TPR_KEY]),
                     "tpr_status": status, "ap_lo": lo, "ap_hi": hi})
    return rows


def fmt_tpr(value: float, status: str) -> str:
    """TPR cell text: 3 decimals, ``not reached`` or ``–``."""
    if math.isfinite(value):
        return f"{value:.3f}"
    return "not reached" if status.startswith("not reached") else "–"


def markdown_table(df: pd.DataFrame, detectors: Sequence[str]) -> str:
    """Rows = cells, columns = ``<detector> AP`` and ``<detector> TPR@5e-4``."""
    head = ["cell", "read noise", "sky", "gain", "truth px"]
    for d in detectors:
        head += [f"{d} AP", f"{d} TPR@5e-4"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for cell, g in df.groupby("cell", sort=False):
        first = g.iloc[0]
        row = [cell, f"{first.read_noise:g}", f"{first.sky:g}", f"{first.gain:g}", str(int(first.truth_px))]
        for d in detectors:
            x = g[g.detector == d]
            if not len(x):
                row += ["–", "–"]
                continue
            x = x.iloc[0]
            row += [f"{x.ap:.3f}" if math.isfinite(x.ap) else "–", fmt_tpr(x.tpr, x.tpr_status)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


#: Short column names of the compact AP table (:func:`ap_table`).
SHORT_NAMES = {"attention-unet-mixture": "attn-mix", "attention-unet-mixture-60": "attn-mix-60",
               "unet-nogate-mixture": "nogate-mix",
               "deepcr-retrained-mixture": "dcr2-32-mix", "attention-unet-mixture-median": "attn-mix+med"}


def ap_table(df: pd.DataFrame, detectors: Sequence[str]) -> str:
    """AP per cell and detector, one row per cell (the README's table): a learned detector's AP carries
    ``*`` when it is below the better classical baseline in a cell where that one reaches AP 0.5."""
    head = ["read noise (e-)", "sky (e-)", "gain (e-/ADU)", "truth px"] + [SHORT_NAMES.get(d, d) for d in detectors]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    flagged = {d: set(below_classical(df, d)) for d in detectors if d not in CLASSICAL}
    for cell, g in df.groupby("cell", sort=False):
        first = g.iloc[0]
        row = [f"{first.read_noise:g}", f"{first.sky:g}", f"{first.gain:g}", str(int(first.truth_px))]
        for d in detectors:
            x = g[g.detector == d]
            ap_d = float(x.iloc[0].ap) if len(x) else float("nan")
            text = f"{ap_d:.2f}" if math.isfinite(ap_d) else "–"
            row.append(text + ("*" if cell in flagged.get(d, ()) else ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def interval_gaps(df: pd.DataFrame, learned: str, classical: Sequence[str] = CLASSICAL,
                  ap_min: float = AP_CLASSICAL_MIN) -> list[dict[str, Any]]:
    """For each cell of :func:`below_classical`, ``learned``'s and the best classical baseline's AP with
    their 95% intervals, and whether the intervals are disjoint (``separated``: the learned upper bound
    below the classical lower bound; NaN intervals without bootstrap are never separated)."""
    out = []
    for cell in below_classical(df, learned, classical, ap_min):
        g = df[df.cell == cell]
        mine = g[g.detector == learned].iloc[0]
        best = g[g.detector.isin(classical)].sort_values("ap", ascending=False).iloc[0]
        lo_c, hi_l = float(best.get("ap_lo", float("nan"))), float(mine.get("ap_hi", float("nan")))
        out.append({"cell": cell, "learned": learned, "ap": float(mine.ap),
                    "ap_lo": float(mine.get("ap_lo", float("nan"))), "ap_hi": hi_l, "classical": str(best.detector),
                    "classical_ap": float(best.ap),
                    "classical_lo": lo_c, "classical_hi": float(best.get("ap_hi", float("nan"))),
                    "separated": bool(math.isfinite(lo_c) and math.isfinite(hi_l) and hi_l < lo_c)})
    return out


def below_classical(df: pd.DataFrame, learned: str, classical: Sequence[str] = CLASSICAL,
                    ap_min: float = AP_CLASSICAL_MIN) -> list[str]:
    """Cells where a classical baseline reaches AP >= ``ap_min`` and ``learned`` scores below it."""
    out = []
    for cell, g in df.groupby("cell", sort=False):
        mine = g[g.detector == learned]
        if not len(mine):
            continue
        ap_l = float(mine.iloc[0].ap)
        cls = g[g.detector.isin(classical) & (g.ap >= ap_min)]
        if len(cls) and (not math.isfinite(ap_l) or ap_l < float(cls.ap.max())):
            out.append(cell)
    return out


def write_outputs(out: Path, df: pd.DataFrame, markdown: str) -> None:
    """``noise_regimes.csv`` and ``noise_regimes.md`` in ``out``, each written atomically."""
    from crbench.atomic import atomic_path, write_text

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "noise_regimes.csv") as tmp:
        df.to_csv(tmp, index=False)
    write_text(out / "noise_regimes.md", markdown + "\n")


def _crop(text: str | None) -> tuple[int, int] | None:
    if text is None or text.strip().lower() in ("", "none", "full"):
        return None
    try:
        h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise NoiseGridError(f"--crop: expected H,W (two integers), got {text!r}") from None
    if h < 16 or w < 16:
        raise NoiseGridError(f"--crop: H and W must be >= 16, got {text!r}")
    return h, w


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    ap_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap_.add_argument("--quick", action="store_true",
                     help="2x2x2 grid, 2 backgrounds cropped to 96x128, CR rate x60 (tests, demos)")
    ap_.add_argument("--read-noise", default=None, help="read noise values, e- (default 2,10,40,100)")
    ap_.add_argument("--sky", default=None, help="sky values, e- per pixel (default 1,100,10000)")
    ap_.add_argument("--gain", default=None, help="gain values, e-/ADU (default 0.5,4,20)")
    ap_.add_argument("--detectors", default=",".join(DETECTORS))
    ap_.add_argument("--weights", action="append", default=[], metavar="LABEL=PATH",
                     help="also score a crbench weight file (its architecture's detector), under LABEL; repeatable "
                          "(e.g. a candidate net against the shipped ones)")
    ap_.add_argument("--backgrounds", default="real", help="'real' (MicroObservatory series) or 'dataset:PATH'")
    ap_.add_argument("--n-backgrounds", type=int, default=None, help="backgrounds per cell (default 3)")
    ap_.add_argument("--series-frames", type=int, default=None,
                     help="series frames the real background model is fitted on (default all 142)")
    ap_.add_argument("--crop", default=None, help="central crop H,W of each background (default full frame)")
    ap_.add_argument("--preset", default="ground-small", help="CR preset of data_recipes.sim")
    ap_.add_argument("--rate-scale", type=float, default=None, help="CR rate multiplier (default 10)")
    ap_.add_argument("--seed", type=int, default=0)
    ap_.add_argument("--bootstrap", type=int, default=0,
                     help="bootstrap replicates over the backgrounds for 95%% AP intervals (default 0: none)")
    ap_.add_argument("--out", default=None, help="folder for noise_regimes.csv and noise_regimes.md")
    args = ap_.parse_args(argv)
    try:
        return _run(args)
    except CRBenchError as exc:
        print(f"noise_regimes: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    base = QUICK_GRID if args.quick else DEFAULT_GRID
    grid = make_grid(parse_values("read-noise", args.read_noise or base["read_noise"]),
                     parse_values("sky", args.sky or base["sky"]), parse_values("gain", args.gain or base["gain"]))
    crop = _crop(args.crop) if args.crop is not None else (QUICK["crop"] if args.quick else None)
    n_bg = args.n_backgrounds or (QUICK["n_backgrounds"] if args.quick else 3)
    if args.bootstrap < 0:
        raise NoiseGridError(f"--bootstrap: expected a number of replicates >= 0, got {args.bootstrap}")
    weight_files = []  # checked before the (slow) backgrounds
    if args.weights:
        from baselines.unet.detector import parse_weight_labels

        weight_files = parse_weight_labels(args.weights)
    if n_bg < 1:
        raise NoiseGridError(f"--n-backgrounds: must be >= 1, got {n_bg}")
    rate = args.rate_scale if args.rate_scale is not None else (QUICK["rate_scale"] if args.quick else 10.0)
    names = [d.strip() for d in args.detectors.split(",") if d.strip()]
    if args.backgrounds == "real":
        frames = args.series_frames
        bgs, sats = real_backgrounds_and_saturation(n_bg, crop, frames)
        source = (f"real MicroObservatory backgrounds (series model on {frames or 'all'} frames; "
                  f"{sum(int(m.sum()) for m in sats)} natively saturated px)")
    elif args.backgrounds.startswith("dataset:"):
        bgs = dataset_backgrounds(args.backgrounds.split(":", 1)[1], n_bg, crop)
        sats = None
        source = f"median of image+exposures of {args.backgrounds.split(':', 1)[1]}"
    else:
        raise NoiseGridError(f"--backgrounds: expected 'real' or 'dataset:PATH', got {args.backgrounds!r}")
    injections = draw_injections(bgs, preset=args.preset, rate_scale=rate, seed=args.seed, saturated=sats)
    tex = np.mean([texture(b) for b in bgs])
    n_crs = sum(len(np.unique(inj.primary.labels[inj.primary.labels > 0])) for inj in injections)
    print(f"# noise regimes: {len(grid)} cells x {len(bgs)} backgrounds {bgs[0].shape}; {source}; "
          f"texture {100 * tex:.2f}% of sky; preset {args.preset} x{rate:g}, {n_crs} CR events (before the truth rule)")
    dets = load_detectors(names, cell_samples(injections, grid[0], 0, args.seed)[0])
    if weight_files:
        from baselines.unet.detector import detector_for_weights

        for label, path in weight_files:
            if label in dets:
                raise NoiseGridError(f"--weights {label}={path}: the label {label!r} is already a detector")
            dets[label] = detector_for_weights(path)
    if not dets:
        print("no detector could be scored")
        return 1
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="crbench-noise-") as tmp:
        for k, cell in enumerate(tqdm(grid, desc="noise cells", unit="cell")):
            rows += score_cell(cell_samples(injections, cell, k, args.seed), dets, cell, Path(tmp),
                               bootstrap=args.bootstrap)
    df = pd.DataFrame(rows)
    md = markdown_table(df, list(dets))
    checks = []
    for d in dets:
        if d in CLASSICAL:
            continue
        cells = below_classical(df, d)
        checks.append(f"{d} below a classical baseline with AP >= {AP_CLASSICAL_MIN:g}: "
                      f"{len(cells)} cell(s){': ' + ', '.join(cells) if cells else ''}")
        if "lacosmic" in dets:  # the single-frame classical baseline alone (median needs companion exposures)
            single = below_classical(df, d, classical=("lacosmic",))
            checks.append(f"{d} below lacosmic (single-frame) with AP >= {AP_CLASSICAL_MIN:g}: "
                          f"{len(single)} cell(s){': ' + ', '.join(single) if single else ''}")
    gap_md = ""
    for head in HEADLINES:
        if not (args.bootstrap and head in dets):
            continue
        gaps = interval_gaps(df, head)
        sep = [g["cell"] for g in gaps if g["separated"]]
        checks.append(f"{head} below a classical baseline with disjoint 95% AP intervals "
                      f"({args.bootstrap} bootstrap replicates over backgrounds): {len(sep)} of {len(gaps)} cell(s)"
                      f"{': ' + ', '.join(sep) if sep else ''}")
        if gaps:
            gap_md += ("\n\n" + f"{head} in the cells where it is below (AP [95% interval]):\n\n"
                       "| cell | " + head + " | best classical | disjoint |\n|---|---|---|---|\n"
                       + "\n".join(f"| {g['cell']} | {g['ap']:.3f} [{g['ap_lo']:.3f}, {g['ap_hi']:.3f}] | "
                                    f"{g['classical']} {g['classical_ap']:.3f} [{g['classical_lo']:.3f}, "
                                    f"{g['classical_hi']:.3f}] | {'yes' if g['separated'] else 'no'} |"
                                    for g in gaps))
    print()
    print(md)
    print(gap_md)
    print()
    for line in checks:
        print(line)
    if args.out:
        compact = ("AP per cell (`*`: below the better classical baseline where that one reaches AP "
                   f"{AP_CLASSICAL_MIN:g}):\n\n" + ap_table(df, list(dets)))
        write_outputs(Path(args.out), df, md + "\n\n" + "\n".join(f"- {c}" for c in checks) + "\n\n" + compact
                      + gap_md)
        print(f"wrote {Path(args.out) / 'noise_regimes.csv'} and noise_regimes.md")
    for head in HEADLINES:  # the single-frame generalist, then (last line) the generalist with companions
        n_below = len(below_classical(df, head)) if head in dets else "n/a (not scored)"
        print(f"cells_where_{head}_below_classical: {n_below}")
    return 0


if __name__ == "__main__":
    from crbench.termination import run_script

    run_script(main)
