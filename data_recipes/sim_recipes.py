"""Simulated recipes built on the physical CR simulator (:mod:`data_recipes.sim`).

``sim-hst-acs-ex``, ``sim-hst-acs-gc``, ``sim-hst-acs-gal``
    HST ACS/WFC-like, 1000 s, the three deepCR field types (sparse extragalactic, globular
    cluster, resolved galaxy).
``sim-decam``
    DECam-like, 90 s, thick fully depleted CCD: long tracks and worms, sparse.
``sim-ground-small``
    Small ground telescope matching the MicroObservatory frames in ``shared/data/real`` (650x500,
    5.2"/px, 60 s, 12-bit). CR rate scaled x5 over the sea-level muon rate by default
    (``cr_rate_scale``) so frames carry ~1-2 hits, as the real series shows a few per frame.
``sim-jwst-nircam``
    JWST NIRCam-like HgCdTe array, 300 s, with snowballs, IPC and up-the-ramp groups (``ramp``).

Options (all recipes): ``n_images``, ``shape`` (H, W), ``exposures``, ``exposure_time`` (s),
``seed``, ``cr_rate_scale``; the ACS recipes also ``confusers`` (``v3``, the standard ACS builds' since
standard v3: v2 plus a sharp, diffraction-limited PSF core and residual CTE trails with the crowding
retuned, :func:`data_recipes.sim.presets.with_confusers`; ``v2`` rebuilds the previous standard, as a custom
build with its old content hash). Each sample draws from its own generator
``default_rng([seed, index])``, so the same seed gives the same files and content hash. A standard
profile may end its test split with a block of longer exposures (``long_exposure``: first sample index
and exposure time; the standard ``sim-ground-small``'s rare blobs), recorded in the card's parameters;
asking for an ``exposure_time`` gives every sample that one (a custom build).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crbench.dataset import write_dataset
from crbench.errors import CRBenchError, DatasetError
from crbench.recipes import Recipe

from .sim.physics import TRUTH_RULE
from ._options import image_shape, positive_int, positive_seconds, rate_scale
from .sim.presets import get_preset, with_confusers
from .sim.scenes import SOURCE_NSIGMA

#: name -> (preset, field, defaults, description)
SPECS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "sim-hst-acs-ex": ("hst-acs-wfc", "ex",
                       {"n_images": 16, "shape": (256, 256), "exposures": 3, "exposure_time": 1000.0},
                       "HST ACS/WFC-like, sparse extragalactic field, 1000 s, physical CRs (no download)"),
    "sim-hst-acs-gc": ("hst-acs-wfc", "gc",
                       {"n_images": 16, "shape": (256, 256), "exposures": 3, "exposure_time": 1000.0},
                       "HST ACS/WFC-like, crowded globular-cluster field, 1000 s, physical CRs (no download)"),
    "sim-hst-acs-gal": ("hst-acs-wfc", "gal",
                        {"n_images": 16, "shape": (256, 256), "exposures": 3, "exposure_time": 1000.0},
                        "HST ACS/WFC-like, resolved-galaxy field, 1000 s, physical CRs (no download)"),
    "sim-decam": ("decam", "ex",
                  {"n_images": 12, "shape": (512, 512), "exposures": 3, "exposure_time": 90.0},
                  "DECam-like thick CCD, 90 s: long tracks and worms (no download)"),
    "sim-ground-small": ("ground-small", "ex",
                         {"n_images": 12, "shape": (500, 650), "exposures": 3, "exposure_time": 60.0,
                          "cr_rate_scale": 5.0},
                         "Small ground telescope like the MicroObservatory frames, 60 s, 12-bit (no download)"),
    "sim-jwst-nircam": ("jwst-nircam", "ex",
                        {"n_images": 12, "shape": (256, 256), "exposures": 3, "exposure_time": 300.0},
                        "JWST NIRCam-like HgCdTe, 300 s: snowballs, IPC, up-the-ramp groups (no download)"),
}


#: Version of the standard sizes below; recorded in every standard card.
#: v2 (2026-12-04): ACS frames carry detector defects and the GC/GAL scenes real-like confusers
#: (data_recipes/sim/confusers.py, README "Confusers"); morphology is classified per 8-connected truth
#: component with the IPC ring taken off on IR arrays (crbench/morphology.py). v1 had neither.
STANDARD_VERSION = "v2"
#: Confuser version of the ACS recipes' default builds (standard and small). ``"v3"`` since 2026-12-04:
#: confusers v3 (CTE trails, sharp stellar cores, retuned crowding) are the standard ACS build, version
#: :data:`ACS_V3_STANDARD_VERSION` (the other recipes stay at :data:`STANDARD_VERSION`). The flip moved the
#: pinned hashes; it went with the rebuild, pin and re-scoring listed in docs/confusers_v3/README.md.
ACS_STANDARD_CONFUSERS = "v3"
ACS_V3_STANDARD_VERSION = "v3"


def default_confusers(name: str) -> str:
    """The confuser version recipe ``name`` builds when none is asked for (``'v2'`` outside ACS)."""
    return ACS_STANDARD_CONFUSERS if SPECS[name][0] == "hst-acs-wfc" else "v2"


def recipe_preset(name: str, confusers: str, cr_rate_scale: float = 1.0) -> Any:
    """The instrument preset recipe ``name`` simulates with: its preset under confuser version ``confusers``
    (:func:`data_recipes.sim.presets.with_confusers`), every CR rate scaled by ``cr_rate_scale``.

    Raises :class:`DatasetError` naming the recipe for a confuser version the preset cannot take.
    """
    try:
        preset = with_confusers(get_preset(SPECS[name][0]), confusers)
    except CRBenchError as exc:
        raise DatasetError(f"recipe {name!r}: {exc}") from None
    if cr_rate_scale != 1.0:
        s = float(cr_rate_scale)
        preset = preset.with_(muon_rate=preset.muon_rate * s, electron_rate=preset.electron_rate * s,
                              alpha_rate=preset.alpha_rate * s, snowball_rate=preset.snowball_rate * s)
    return preset


def standard_version(name: str) -> str:
    """The standard version a standard build of recipe ``name`` records (and its registry pin carries): the
    profile's own ``standard_version`` when its sizes moved on their own (:data:`STANDARD`), else the ACS
    confuser version's or :data:`STANDARD_VERSION`."""
    own = STANDARD[name].get("standard_version")
    if own is not None:
        return str(own)
    return ACS_V3_STANDARD_VERSION if default_confusers(name) == "v3" else STANDARD_VERSION

#: Standard v1 sizes: name -> options. Test splits hold >= 16 Mpix and val >= 4 Mpix; rare classes are
#: boosted with more fields or longer exposures (``boost`` says how, recorded in the card), never by
#: copying CRs. ``split_counts`` = (train, val, test) images. Measured counts: README, "Standard datasets".
#: ``standard_version`` (optional) is a profile's own version when its sizes moved without the others:
#: ``sim-jwst-nircam`` v3 (2026-12-05) grew its test split from 16 to 26 fields (the first 36 samples
#: unchanged) so that worms and blobs reach the floor of 500 test CRs; its v2 pin stays under ``previous``.
#: ``sim-decam`` v3 (2026-12-05) grew its test split from 16 to 100 fields the same way (blobs 75 -> 520,
#: worms 466 -> 2,680; train and val unchanged). ``sim-hst-acs-gc`` v4 (2026-12-05) grew its test split from
#: 16 to 115 fields the same way (blobs 69 -> 500, worms 850 -> 5,692; its v3 pin stays under ``previous``),
#: ``sim-hst-acs-ex`` v4 (2026-12-05) from 16 to 132 fields (blobs 74 -> 507, worms 851 -> 7,277), and
#: ``sim-hst-acs-gal`` v4 (2026-12-05) from 16 to 157 fields (blobs 59 -> 503, worms 422 -> 4,664).
#: ``sim-ground-small`` v3 (2026-12-05) grew its test split from 50 to 530 fields the same way (tracks
#: 143 -> 1,532, worms 35 -> 505; its blobs, 2 -> 32, stayed under the floor; train and val unchanged), and
#: its v4 (2026-12-05) appended 160 test fields of 12,000 s (``long_exposure``; blobs 32 -> 521) so that
#: blobs reach the floor too: the first 593 samples are v3's (whose pin stays under ``previous``).
def _acs_v4_profile(n_test: int) -> dict[str, Any]:
    """An ACS set's standard v4 profile: the v3 train and val frames (16, 4) and ``n_test`` test fields, enough
    for its rarest class, blobs, to reach 500 test CRs (counts read off 180-field builds; README)."""
    return {"shape": (1024, 1024), "exposures": 3, "exposure_time": 1000.0, "split_counts": (16, 4, n_test),
            "standard_version": "v4",
            "boost": f"{n_test} test fields ({n_test - 16} more than the 16 of standard v3) so that its rarest "
                     "class, blobs, reaches 500 test CRs"}


STANDARD: dict[str, dict[str, Any]] = {
    "sim-hst-acs-ex": _acs_v4_profile(132),
    "sim-hst-acs-gc": _acs_v4_profile(115),
    "sim-hst-acs-gal": _acs_v4_profile(157),
    "sim-decam": {"shape": (1024, 1024), "exposures": 3, "exposure_time": 900.0, "split_counts": (16, 4, 100),
                  "standard_version": "v3",
                  "boost": "900 s exposures (10x the 90 s small build) for more CRs per frame, and 100 test "
                           "fields (84 more than the other sets) so that its rarest classes, blobs and worms, "
                           "reach 500 test CRs"},
    "sim-ground-small": {"shape": (500, 650), "exposures": 3, "exposure_time": 600.0, "cr_rate_scale": 5.0,
                         "split_counts": (50, 13, 690), "standard_version": "v4",
                         "long_exposure": (593, 12000.0),
                         "boost": "600 s exposures (10x the 60 s small build), CR rate x5 over the sea-level "
                                  "muon rate, 530 test fields of 600 s (480 more than the 50 of standard v2) so "
                                  "that tracks and worms reach 500 test CRs, and 160 more test fields of 12,000 s "
                                  "(samples 593 on; 20x longer, 200x the real 60 s frames) so that blobs, "
                                  "0.13% of the 600 s frames' CRs (nearly all saturated alpha hits), reach 500 "
                                  "test CRs: 20x the hits per field, and the higher sky lifts more of them to "
                                  "saturation (7.5% of alpha hits are blobs against 3.4%)"},
    "sim-jwst-nircam": {"shape": (1024, 1024), "exposures": 3, "exposure_time": 300.0,
                        "split_counts": (16, 4, 26), "standard_version": "v3",
                        "boost": "26 test fields (10 more than the other sets) so that its rarest classes, worms "
                                 "and blobs, reach 500 test CRs"},
}
SIZES = ("standard", "small")


def split_ids(ids: list[str], fractions: tuple[float, float, float] = (0.5, 0.25, 0.25), *,
              counts: tuple[int, int, int] | None = None) -> dict[str, list[str]]:
    """Deterministic train/val/test split of ``ids`` in order.

    With ``counts`` = (n_train, n_val, n_test) the splits take exactly that many ids (they must add up
    to ``len(ids)``); otherwise ``fractions`` apply (each split non-empty when n >= 3). Every
    simulated sample is its own field (its own scene, pointing and exposure group), so no field,
    pointing or exposure group is ever in two splits.
    """
    n = len(ids)
    if counts is not None:
        n_train, n_val, n_test = (int(c) for c in counts)
        if n_train + n_val + n_test != n:
            raise DatasetError(f"split counts {counts} do not add up to the {n} images")
    else:
        n_val = max(1, int(round(n * fractions[1]))) if n >= 3 else 0
        n_test = max(1, int(round(n * fractions[2]))) if n >= 2 else 0
        n_train = n - n_val - n_test
    return {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}


def _check_options(name: str, opts: dict[str, Any]) -> dict[str, Any]:
    out = dict(opts)
    out["n_images"] = positive_int(name, opts, "n_images")
    out["shape"] = image_shape(name, opts)
    out["exposures"] = positive_int(name, opts, "exposures")
    out["exposure_time"] = positive_seconds(name, opts)
    out["seed"] = int(opts["seed"])
    out["cr_rate_scale"] = rate_scale(name, opts)
    return out


def make_builder(name: str):
    """The ``build(out, *, progress, **options)`` function of recipe ``name``."""
    preset_name, field, defaults, _ = SPECS[name]

    def build(out: Path, *, progress: bool = True, **options: Any):
        from .sim.scenes import simulate_sample

        size = options.pop("size", None) or "standard"
        if size not in SIZES:
            raise DatasetError(f"recipe {name!r}: size={size!r} is invalid; expected one of {', '.join(SIZES)}")
        given = {k: v for k, v in options.items() if v is not None}
        confusers = str(given.pop("confusers", default_confusers(name)))
        unknown = set(given) - {"n_images", "shape", "exposures", "exposure_time", "seed", "cr_rate_scale"}
        if unknown:
            raise DatasetError(f"recipe {name!r}: unknown option(s) {sorted(unknown)}; known: size, n_images, "
                               "shape, exposures, exposure_time, seed, cr_rate_scale, confusers")
        profile = dict(STANDARD[name]) if size == "standard" else dict(defaults)
        counts = profile.pop("split_counts", None)
        boost = profile.pop("boost", "none")
        # (first sample index, exposure time): the samples from that index on are longer exposures
        long_block = profile.pop("long_exposure", None)
        one_exposure_time = long_block is not None and "exposure_time" in given
        if one_exposure_time:  # an exposure time asked for is every sample's (a custom build)
            long_block = None
        profile.pop("standard_version", None)  # recorded through standard_version(name)
        if counts is not None:
            profile["n_images"] = int(sum(counts))
        opts = {"seed": 1, "cr_rate_scale": 1.0, **profile}
        opts.update(given)
        # a standard build is exactly the standard profile (the seed included); anything else is custom
        overridden = {k for k, v in given.items() if opts.get(k) != {"seed": 1, "cr_rate_scale": 1.0, **profile}.get(k)}
        if size == "standard" and (overridden or one_exposure_time):
            size, counts = "custom", None
        elif size == "standard" and confusers != default_confusers(name):  # standard profile, other confusers
            size = "custom"
        opts = _check_options(name, opts)
        preset = recipe_preset(name, confusers, opts["cr_rate_scale"])
        prefix = name.removeprefix("sim-")
        ids = [f"{prefix}-{i:04d}" for i in range(opts["n_images"])]
        seed = opts["seed"]

        # filled while the samples are written; write_dataset reads ``extra`` after the last one
        rule_card = {**TRUTH_RULE.to_dict(), "halo_only_crs_dropped": 0}

        def exposure_time(i: int) -> float:
            if long_block is not None and i >= long_block[0]:
                return float(long_block[1])
            return float(opts["exposure_time"])

        def samples():
            for i, sid in enumerate(ids):
                rng = np.random.default_rng([seed, i])
                s = simulate_sample(rng, sid, preset, field=field, shape=opts["shape"],
                                    exptime=exposure_time(i), n_exposures=opts["exposures"],
                                    ramp=preset.ramp_groups > 0, rule=TRUTH_RULE)
                s.meta["preset"] = preset_name
                rule_card["halo_only_crs_dropped"] += int(s.meta.get("halo_only_crs", 0))
                yield s

        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}
        params.update({"preset": preset_name, "field": field, "size": size})
        if long_block is not None and opts["n_images"] > long_block[0]:
            params["long_exposure"] = {"from_sample": int(long_block[0]), "exposure_time": float(long_block[1])}
        if confusers != "v2":  # v2 builds keep the parameters (and cards) they always had
            params["confusers"] = confusers
        size_card = {"size": size, "standard": standard_version(name) if size == "standard" else None,
                     "boost": boost if size == "standard" else None}
        return write_dataset(
            out, samples(), name=name, splits=split_ids(ids, counts=counts), recipe=name, parameters=params, seed=seed,
            progress=progress,
            provenance=[{"origin": "simulated by data_recipes.sim (physical CR model, presets in "
                                   "data_recipes/sim/presets.py)", "sha256": None}],
            extra={**size_card, "truth_rule": rule_card, "truth_definition": {
                "truth": f"truth rule {TRUTH_RULE.name} on significance = CR charge / "
                         "sqrt(read_noise^2 + sky + dark + source) e- (crbench.truth)",
                "halo": f"CR pixels > {TRUTH_RULE.halo_nsigma:g} sigma that fail the rule (HALO extension); "
                        "a CR with only halo pixels is no instance",
                "sources": f"noiseless source flux > {SOURCE_NSIGMA} x sqrt(read_noise^2 + sky + dark) e-",
                "ignore": "pixels saturated by sources (with bleed trails), dilated 7x7",
                "morphology": "geometric class of the 8-connected truth component each CR lies in "
                              "(crbench.morphology.classify_by_component; IPC ring taken off on IR arrays); "
                              "'generator' keeps the simulated particle type",
            }, "confusers": _confusers_card(preset, field, confusers)},
        )

    return build


def _confusers_card(preset: Any, field: str, version: str = "v2") -> dict[str, Any]:
    """What in a simulated frame is sharp but not a CR: the detector defects and the field's confusers
    (a v3 card adds the PSF core and the CTE model; a v2 card is what v2 builds always carried)."""
    from .sim import scenes

    card: dict[str, Any] = {
        "detector_defects": preset.defects.to_dict() if preset.defects is not None else None,
        "defects_rule": "hot pixels and bad columns flagged in DQMASK and ignored by evaluation; warm pixels "
                        "unflagged, in every exposure of a field" if preset.defects is not None else None,
    }
    if field == "gc":
        card["gc_stars_per_256x256"] = scenes.gc_stars_per_area(preset)
    if field == "gal":
        card.update(gal_knots_per_256x256=scenes.gal_knots_per_area(preset),
                    gal_compact_knot_share=scenes.GAL_COMPACT_KNOT_SHARE,
                    gal_knot_flux_x_detection_limit=list(scenes.GAL_KNOT_FLUX),
                    gal_disk_scale_x_frame=list(scenes.GAL_DISK_SCALE),
                    gal_disk_peak_x_background_sigma=list(scenes.GAL_DISK_PEAK))
    if version != "v2":
        card["version"] = version
        card["psf"] = {"model": preset.psf, "core_fwhm_px": preset.psf_core_fwhm,
                       "core_fraction": preset.psf_core_fraction, "halo_fwhm_px": preset.psf_halo_fwhm,
                       "halo_moffat_beta": preset.moffat_beta,
                       "pixel_response_kernel": list(preset.prf_kernel) if preset.prf_kernel else None}
        card["cte"] = preset.cte.to_dict() if preset.cte is not None else None
        card["cte_rule"] = ("frames read out through the traps, then corrected leaving `correction_residual` of "
                            "the trails; the truth is the CR charge as the frame shows it (trail pixels owned "
                            "by the CR that trailed into them)")
    return card


#: This module's recipes; pyproject.toml's ``crbench.recipes`` entry points name this list.
RECIPES: list[Recipe] = []


for _name, (_preset, _field, _defaults, _desc) in SPECS.items():
    RECIPES.append(Recipe(name=_name, description=_desc, kind="simulated", build=make_builder(_name),
                           defaults={"seed": 1, "size": "standard"}))
