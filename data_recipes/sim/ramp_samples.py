"""One labelled up-the-ramp sample: scene, CRs, ramp (:mod:`data_recipes.sim.ramps`), and the rate
image from stcal ramp fitting without jump flags (the JWST product image detectors are scored on).

``image``       stcal OLS_C slope without jump flags x ``exptime`` (= (G-1) x group time), e-
``ramp``        the groups (G, H, W), e-
``jumps``       per-group-difference truth (G-1, H, W)
``rate_clean``  stcal slope of the same ramp minus its CR charge, x ``exptime`` (evaluation data)
``truth``       pixels that are truth in at least one group difference; ``halo`` the rest above 1 sigma
``ignore``      pixels saturated by sources, dilated 7x7 (as the other simulated sets)
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from crbench.observation import saturation_dqmask
from crbench.portable import round_table
from crbench.sample import Sample
from crbench.stcal_bridge import fit_rate, stcal_version
from crbench.truth import TruthRule

from .physics import TRUTH_RULE, ipc_ring_px, simulate_crs
from .presets import InstrumentPreset, get_preset
from .ramps import ONEF_SIGMA, REFPIX_SIGMA, Readout, add_showers, full_well, simulate_ramp
from .scenes import IGNORE_DILATE, SOURCE_NSIGMA, background_sigma, make_scene

#: Showers per second per 2048x2048 detector (simple model, UNSOURCED; scaled to the cutout area).
SHOWER_RATE_FULL = 1.0 / 600.0


def simulate_ramp_sample(rng: np.random.Generator, sample_id: str, preset: "InstrumentPreset | str",
                         readout: Readout, *, field: str = "ex", shape: tuple[int, int] = (256, 256),
                         rule: TruthRule = TRUTH_RULE, shower_rate: float = SHOWER_RATE_FULL) -> Sample:
    """Simulate one ramp sample (see module docstring).

    Returns
    -------
    Sample
        With ``ramp``, ``jumps`` and ``rate_clean``; ``meta`` has the readout keys.
    """
    p = get_preset(preset)
    shape = (int(shape[0]), int(shape[1]))
    t_eff = readout.effective_time
    scene = make_scene(rng, shape, p, field, t_eff)
    rate = scene.flux / t_eff + p.sky_rate + p.dark_rate
    expected_end = rate * readout.total_time
    cr = simulate_crs(rng, shape, p, readout.total_time, background=expected_end, classify=False)
    diff_sigma = float(np.sqrt(2 * p.read_noise**2 / readout.nframes + (p.sky_rate + p.dark_rate) * readout.group_time))
    cr = add_showers(rng, cr, shower_rate * shape[0] * shape[1] / 2048**2, readout, diff_sigma)
    sim = simulate_ramp(rng, rate, p, cr, readout, rule)
    fit: dict[str, Any] = dict(read_noise=p.read_noise, group_time=readout.group_time, frame_time=readout.frame_time,
                               nframes=readout.nframes, groupgap=readout.groupgap, saturation=full_well(p) - p.gain)
    image = (fit_rate(sim.groups, **fit) * t_eff).astype(np.float32)
    clean = (fit_rate(sim.groups - sim.cr_groups.astype(np.float32), **fit) * t_eff).astype(np.float32)
    labels = np.where(sim.truth, cr.labels, 0).astype(np.int32)
    table = cr.truth_instances(labels, diffusion_sigma_px=p.diffusion_sigma_px, ipc_ring_px=ipc_ring_px(p))
    src_sat = expected_end >= p.saturation
    ignore = ndimage.binary_dilation(src_sat, structure=np.ones((IGNORE_DILATE, IGNORE_DILATE), bool)) \
        if src_sat.any() else np.zeros(shape, bool)
    sources = (scene.flux - scene.diffuse) > SOURCE_NSIGMA * background_sigma(p, t_eff)
    halo_ids = np.setdiff1d(np.unique(cr.labels[sim.halo]), np.unique(labels))
    meta: dict[str, Any] = p.meta()
    meta.update(readout.meta())
    meta.update({
        "sky": float(p.sky_rate * t_eff), "dark": float(p.dark_rate * t_eff), "exptime": float(t_eff),
        "field": field, "truth_rule": rule.name, "halo_only_crs": int(np.count_nonzero(halo_ids)),
        "source_nsigma": SOURCE_NSIGMA, "n_exposures": 1, "simulator": "data_recipes.sim.ramps",
        "crs_before_first_read": int(len(sim.before_first_read)), "image_product": "rate x exptime (stcal OLS_C, no jump flags)",
        "saturation": full_well(p), "onef_sigma": ONEF_SIGMA, "refpix_sigma": REFPIX_SIGMA, "stcal_version": stcal_version(),
    })
    last = sim.groups[-1]
    return Sample(id=sample_id, image=image, truth=labels > 0, ignore=ignore, labels=labels,
                  instances=round_table(table), sources=sources, halo=sim.halo, ramp=sim.groups, meta=meta,
                  dqmask=saturation_dqmask(last, fit["saturation"]), jumps=sim.jumps,
                  rate_clean=clean).validate()
