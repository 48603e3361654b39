"""``sim-jwst-nircam-ramps``: JWST NIRCam-like up-the-ramp exposures with per-group jump truth.

The image (SCI) is the rate image of stcal ramp fitting without jump flags times the effective
exposure time, the JWST product image detectors are scored on; ``RAMP`` holds the groups for ramp
detectors; ``JUMPS`` and ``CRFREE`` are evaluation data (:mod:`data_recipes.sim.ramp_samples`).
Needs stcal (extra ``jwst``).

Sizes: ``standard`` (default) 24 images of 1024x1024 (train/val/test 4/4/16: 16 Mpix test),
MEDIUM8 x 8 groups (805 s ramps); ``small`` 6 images of 128x128, same readout. Options:
``n_images``, ``shape``, ``pattern``, ``groups``, ``seed``, ``cr_rate_scale``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crbench.dataset import write_dataset
from crbench.errors import CRBenchError, DatasetError
from crbench.recipes import Recipe

from ._options import image_shape, positive_int, rate_scale

from .sim.physics import TRUTH_RULE
from .sim.presets import get_preset
from .sim.ramps import READOUT_PATTERNS, Readout
from .sim_recipes import split_ids

NAME = "sim-jwst-nircam-ramps"
PRESET = "jwst-nircam"
PROFILES: dict[str, dict[str, Any]] = {
    "standard": {"n_images": 24, "shape": (1024, 1024), "pattern": "MEDIUM8", "groups": 8,
                 "split_counts": (4, 4, 16)},
    "small": {"n_images": 6, "shape": (128, 128), "pattern": "MEDIUM8", "groups": 8, "split_counts": None},
}
#: v2: morphology per 8-connected truth component with the IPC ring taken off (crbench/morphology.py);
#: the same label as the other simulated standard sets (data_recipes/sim_recipes.py).
STANDARD_VERSION = "v2"
_KNOWN = ("n_images", "shape", "pattern", "groups", "seed", "cr_rate_scale")


def _check(opts: dict[str, Any]) -> dict[str, Any]:
    def bad(key: str, expected: str) -> DatasetError:
        return DatasetError(f"recipe {NAME!r}: option {key}={opts.get(key)!r} is invalid; expected {expected}")

    out = dict(opts)
    out["n_images"] = positive_int(NAME, opts, "n_images")
    out["shape"] = image_shape(NAME, opts)
    if str(opts["pattern"]).upper() not in READOUT_PATTERNS:
        raise bad("pattern", "one of " + ", ".join(READOUT_PATTERNS))
    out["pattern"] = str(opts["pattern"]).upper()
    try:
        out["groups"] = int(opts["groups"])
        Readout(out["pattern"], out["groups"])
    except (TypeError, ValueError, CRBenchError):
        raise bad("groups", f"3..{READOUT_PATTERNS[out['pattern']][2]} groups for {out['pattern']}") from None
    out["seed"] = int(opts["seed"])
    out["cr_rate_scale"] = rate_scale(NAME, opts)
    return out


def build(out: Path, *, progress: bool = True, **options: Any):
    """Build ``sim-jwst-nircam-ramps`` into ``out`` (see module docstring)."""
    from crbench.stcal_bridge import stcal_version

    from .sim.ramp_samples import simulate_ramp_sample

    size = options.pop("size", None) or "standard"
    if size not in PROFILES:
        raise DatasetError(f"recipe {NAME!r}: size={size!r} is invalid; expected one of {', '.join(PROFILES)}")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = set(given) - set(_KNOWN)
    if unknown:
        raise DatasetError(f"recipe {NAME!r}: unknown option(s) {sorted(unknown)}; known: size, {', '.join(_KNOWN)}")
    stcal = stcal_version()
    profile = dict(PROFILES[size])
    counts = profile.pop("split_counts")
    base = {"seed": 1, "cr_rate_scale": 1.0, **profile}
    opts = {**base, **given}
    if any(opts[k] != base.get(k) for k in given):
        size, counts = ("custom" if size == "standard" else size), (None if size == "standard" else counts)
    opts = _check(opts)
    if counts is not None and sum(counts) != opts["n_images"]:
        counts = None
    preset = get_preset(PRESET)
    s = opts["cr_rate_scale"]
    if s != 1.0:
        preset = preset.with_(muon_rate=preset.muon_rate * s, electron_rate=preset.electron_rate * s,
                              alpha_rate=preset.alpha_rate * s, snowball_rate=preset.snowball_rate * s)
    readout = Readout(opts["pattern"], opts["groups"])
    ids = [f"jwst-nircam-ramps-{i:04d}" for i in range(opts["n_images"])]
    card = {**TRUTH_RULE.to_dict(), "crs_before_first_read": 0}

    def samples():
        for i, sid in enumerate(ids):
            smp = simulate_ramp_sample(np.random.default_rng([opts["seed"], i]), sid, preset, readout,
                                       shape=opts["shape"], rule=TRUTH_RULE)
            smp.meta["preset"] = PRESET
            card["crs_before_first_read"] += int(smp.meta["crs_before_first_read"])
            yield smp

    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}
    params.update({"preset": PRESET, "size": size, **readout.meta()})
    return write_dataset(
        out, samples(), name=NAME, splits=split_ids(ids, counts=counts), recipe=NAME, parameters=params,
        seed=opts["seed"], progress=progress,
        provenance=[{"origin": "simulated by data_recipes.sim.ramps (NIRCam readout patterns, physical CR model); "
                               f"rate images by stcal {stcal} ramp fitting", "sha256": None}],
        extra={"size": size, "standard": STANDARD_VERSION if size == "standard" else None, "boost": None,
               "stcal_version": stcal, "truth_rule": card, "truth_definition": {
                   "jumps": "JUMPS[k]: the CR charge appearing between groups k and k+1 over "
                            "sqrt(2 rn^2/nframes + rate x group_time + 1/f and reference-pixel variance), "
                            f"truth rule {TRUTH_RULE.name} (crbench.truth) on the pixels that received CR charge; "
                            "saturating CRs are seeds",
                   "truth": "pixels that are truth in at least one group difference (a CR before the first read "
                            "is in every group and is no truth: counted in truth_rule.crs_before_first_read)",
                   "halo": "CR pixels > 1 sigma in some group difference that are not truth",
                   "image": "stcal OLS_C rate without jump flags x (groups - 1) x group time, e-",
                   "rate_clean": "CRFREE: the same fit of the ramp minus its CR charge (evaluation data)",
                   "ignore": "pixels saturated by sources, dilated 7x7",
               }},
    )


#: The recipes of this module (the ``crbench.recipes`` entry point ``ramps`` names this list).
RECIPES: list[Recipe] = [Recipe(name=NAME, description="JWST NIRCam-like up-the-ramp (MEDIUM8 x 8 groups): rate "
                                                      "images from stcal, per-group jump truth (needs stcal; no "
                                                      "download)",
                                kind="simulated", build=build, defaults={"seed": 1, "size": "standard"})]
