"""``lacosmic``: LACosmic (van Dokkum 2001) through astroscrappy, swept over ``sigclip``.

astroscrappy only returns a boolean mask, so the detector declares a sweep of ``sigclip`` values
(loosest first) and the harness ranks each pixel by how many steps flag it.

astroscrappy's ``inmask`` gets the instrument's dead, hot and other bad pixels only (never the
benchmark's evaluation ignore mask, which a detector does not see); saturated pixels are left to
astroscrappy's own ``satlevel`` handling, which masks saturated stars but not saturated CRs.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from crbench.detectors.base import SweepDetector
from crbench.errors import DetectorError, UsageError
from crbench.observation import DQ_ALL, DQ_SATURATED, Observation

#: Instrument-mask bits passed to astroscrappy as ``inmask`` (saturation is handled by ``satlevel``).
INMASK_BITS = DQ_ALL & ~DQ_SATURATED

#: Default sweep: 16 log-spaced sigclip values from 2.5 (loose) to 40 (strict).
DEFAULT_SWEEP = tuple(float(x) for x in np.round(np.geomspace(2.5, 40.0, 16), 3))


class LACosmicDetector(SweepDetector):
    """LACosmic via ``astroscrappy.detect_cosmics``, fed each observation's gain, read noise,
    saturation level, sky and instrument bad pixels (``inmask``).

    Parameters
    ----------
    sigclip : sequence of float
        The sweep of Laplacian-to-noise thresholds, loosest (smallest) first.
    sigfrac : float
        Neighbour-growth fraction of ``sigclip`` (astroscrappy default 0.3).
    objlim : float
        Minimum contrast between the Laplacian and the fine-structure image (default 5.0;
        deepCR used 2 / 3.5 / 5 for EX / GC / GAL fields).
    niter : int
        LACosmic iterations (default 4).
    sepmed : bool
        Separable median filter (astroscrappy default True; ~3x faster).
    loose_niter : int, optional
        Iterations for the loose steps, those with ``sigclip < loose_below`` (default: ``niter``
        at every step). Fewer iterations where the sweep is loosest trade a small change of the
        curve for speed; README, "Standard datasets", reports the measured difference.
    loose_below : float, optional
        The sigclip below which ``loose_niter`` applies (required with ``loose_niter``).
    """

    name = "lacosmic"
    version = "2"  # 2: inmask is the instrument mask, no longer the evaluation ignore mask

    def __init__(self, sigclip: Sequence[float] = DEFAULT_SWEEP, sigfrac: float = 0.3, objlim: float = 5.0,
                 niter: int = 4, sepmed: bool = True, fsmode: str = "median", loose_niter: int | None = None,
                 loose_below: float | None = None) -> None:
        sweep = tuple(sorted(float(s) for s in np.atleast_1d(sigclip)))
        if not sweep or sweep[0] <= 0:
            raise ValueError(f"lacosmic: sigclip sweep must be positive values, got {sigclip!r}")
        params: dict[str, Any] = dict(sigclip=list(sweep), sigfrac=float(sigfrac), objlim=float(objlim),
                                      niter=int(niter), sepmed=bool(sepmed), fsmode=str(fsmode))
        if loose_niter is not None or loose_below is not None:
            # recorded only when set, so the default detector keeps its parameters and cache keys
            if loose_niter is None or loose_below is None:
                raise UsageError(f"lacosmic: loose_niter and loose_below go together, got loose_niter={loose_niter!r} "
                                 f"and loose_below={loose_below!r}")
            if int(loose_niter) != loose_niter or not 1 <= int(loose_niter) <= int(niter):
                raise UsageError(f"lacosmic: loose_niter must be an integer from 1 to niter={niter}, got "
                                 f"{loose_niter!r}")
            if not float(loose_below) > 0:
                raise UsageError(f"lacosmic: loose_below must be a positive sigclip, got {loose_below!r}")
            params.update(loose_niter=int(loose_niter), loose_below=float(loose_below))
        super().__init__(**params)

    def niter_at(self, value: float) -> int:
        """LACosmic iterations run at sweep step ``sigclip = value``."""
        p = self._params
        if p.get("loose_niter") is not None and float(value) < p["loose_below"]:
            return int(p["loose_niter"])
        return int(p["niter"])

    def sweep_values(self) -> Sequence[float]:
        return self._params["sigclip"]

    def mask(self, obs: Observation, value: float) -> np.ndarray:
        import astroscrappy

        p = self._params
        gain = obs.gain if obs.gain > 0 else 1.0
        # astroscrappy works in ADU with gain and read noise in e-: convert the e- image back.
        data = np.ascontiguousarray(obs.image, dtype=np.float32) / np.float32(gain)
        sky = obs.meta.get("sky")
        inbkg = None
        if sky is not None and np.isscalar(sky) and np.isfinite(sky):
            inbkg = np.full(data.shape, float(sky) / gain, dtype=np.float32)  # type: ignore[arg-type]  # a finite scalar
        inmask = obs.bad_pixels(INMASK_BITS)
        if inmask is not None and not inmask.any():
            inmask = None
        satlevel = obs.saturation / gain if np.isfinite(obs.saturation) else 1e12
        try:
            mask, _ = astroscrappy.detect_cosmics(
                data, inmask=inmask, inbkg=inbkg, sigclip=float(value), sigfrac=p["sigfrac"],
                objlim=p["objlim"], gain=float(gain), readnoise=max(obs.read_noise, 1e-3),
                satlevel=float(satlevel), niter=self.niter_at(value), sepmed=p["sepmed"], cleantype="meanmask",
                fsmode=p["fsmode"], verbose=False)
        except Exception as exc:  # astroscrappy raises plain ValueErrors
            raise DetectorError(f"lacosmic failed on sample {obs.id!r} at sigclip={value}: {exc}") from exc
        return mask
