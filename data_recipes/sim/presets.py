"""Instrument presets for the physical cosmic-ray simulator.

Every number has a source comment: ``docs/physics.md#instrument-presets`` (the project's fact sheet, which cites the
instrument handbooks and papers), ``measured`` (from the frames in ``shared/data/real``) or
``UNSOURCED`` (a plausible engineering guess; change it when a source turns up).

Rates are split by generator: ``muon`` (minimum-ionising straight tracks: muons on the ground,
galactic-cosmic-ray protons in space), ``electron`` (multiply scattered low-energy electrons:
worms), ``alpha`` (short, dense, round spots) and ``snowball`` (IR only).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from crbench.errors import RegistryError

from .confusers import DefectModel
from .cte import CTEModel


@dataclass(frozen=True)
class InstrumentPreset:
    """Detector, optics and radiation environment of one instrument.

    Attributes
    ----------
    name : str
        Registry key (``'hst-acs-wfc'``, ...).
    instrument : str
        Human-readable instrument name stored in sample ``meta['instrument']``.
    detector : str
        ``'ccd'`` (saturation bleeds along columns) or ``'hgcdte'`` (IR array: no bleeding,
        inter-pixel capacitance, up-the-ramp reads).
    pixel_pitch_um : float
        Pixel pitch in micrometres.
    thickness_um : float
        Depth of the charge-collecting layer in micrometres.
    diffusion_sigma_um : float
        Lateral charge-diffusion sigma for charge released at the far side of the layer; charge
        released at depth z diffuses by ``diffusion_sigma_um * sqrt(z / thickness)``.
    pixel_scale : float
        Arcseconds per pixel.
    gain : float
        e-/ADU.
    read_noise : float
        e- per read (per CDS pair for CCDs).
    saturation : float
        Full well in e- (pixel value at which it saturates).
    muon_rate, electron_rate, alpha_rate, snowball_rate : float
        Events per cm^2 per second for each generator.
    incidence : str
        ``'isotropic'`` (space: p(theta) ~ cos sin) or ``'cos3'`` (ground: p(theta) ~ cos^3 sin).
    charge_scale : float
        Multiplier on the silicon energy-loss model (1 for silicon; calibrates HgCdTe).
    ipc : float
        Inter-pixel capacitance coupling to each 4-neighbour (diagonals get ipc/4); 0 for CCDs.
    psf : str
        ``'moffat'``, ``'gaussian'`` or ``'core-halo'`` (a diffraction-limited core plus a Moffat halo,
        convolved with the CCD's pixel response: ``psf_core_fwhm``, ``psf_core_fraction``,
        ``prf_kernel``; :func:`data_recipes.sim.scenes.render_points`).
    psf_fwhm : float
        PSF full width at half maximum in pixels.
    moffat_beta : float
        Moffat beta (ignored for Gaussian PSFs).
    sky_rate : float
        Sky background in e-/s/pixel.
    dark_rate : float
        Dark current in e-/s/pixel.
    exptime : float
        Default exposure time in seconds.
    ramp_groups : int
        Groups per up-the-ramp integration (0 = no ramp).
    defects : DefectModel, optional
        Hot, warm and bad-column pixels (:mod:`data_recipes.sim.confusers`); None = a perfect detector.
    psf_core_fwhm, psf_core_fraction : float
        ``'core-halo'`` PSF only: FWHM (px) of the Gaussian that stands for the Airy core, and the share
        of the light in it; the rest is the Moffat halo of ``psf_halo_fwhm`` and ``moffat_beta``.
    psf_halo_fwhm : float
        ``'core-halo'`` PSF only: FWHM (px) of the halo.
    prf_kernel : tuple of 9 floats, optional
        ``'core-halo'`` PSF only: 3x3 pixel response function (charge diffusion) the PSF is convolved
        with, row by row; None = none.
    cte : CTEModel, optional
        Parallel charge-transfer inefficiency and the residual its pipeline correction leaves
        (:mod:`data_recipes.sim.cte`); None = perfect transfer.
    gc_stars_per_area : float, optional
        Stars of a 'gc' field per 256x256 (a scene setting the confuser versions tune); None = the
        scenes' default (:data:`data_recipes.sim.scenes.GC_STARS_PER_AREA`).
    gal_knots_per_area : float, optional
        Star-forming knots of a 'gal' field per 256x256 of disk (tuned like ``gc_stars_per_area``); None =
        :data:`data_recipes.sim.scenes.GAL_KNOTS_PER_AREA`.
    default_shape : tuple of int
        Native frame shape (H, W) used where a recipe wants "a full frame".
    notes : str
        Free text on provenance.
    """

    name: str
    instrument: str
    detector: str
    pixel_pitch_um: float
    thickness_um: float
    diffusion_sigma_um: float
    pixel_scale: float
    gain: float
    read_noise: float
    saturation: float
    muon_rate: float
    electron_rate: float = 0.0
    alpha_rate: float = 0.0
    snowball_rate: float = 0.0
    incidence: str = "isotropic"
    charge_scale: float = 1.0
    ipc: float = 0.0
    psf: str = "moffat"
    psf_fwhm: float = 2.0
    moffat_beta: float = 2.5
    sky_rate: float = 1.0
    dark_rate: float = 0.0
    exptime: float = 100.0
    ramp_groups: int = 0
    default_shape: tuple[int, int] = (2048, 2048)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    defects: DefectModel | None = None
    psf_core_fwhm: float = 0.0
    psf_core_fraction: float = 0.0
    psf_halo_fwhm: float = 0.0
    prf_kernel: tuple[float, ...] | None = None
    cte: CTEModel | None = None
    gc_stars_per_area: float | None = None
    gal_knots_per_area: float | None = None

    @property
    def pixel_area_cm2(self) -> float:
        """Area of one pixel in cm^2."""
        return (self.pixel_pitch_um * 1e-4) ** 2

    @property
    def total_rate(self) -> float:
        """All CR events per cm^2 per second."""
        return self.muon_rate + self.electron_rate + self.alpha_rate + self.snowball_rate

    @property
    def diffusion_sigma_px(self) -> float:
        """Maximum diffusion sigma in pixels."""
        return self.diffusion_sigma_um / self.pixel_pitch_um

    def with_(self, **changes: Any) -> "InstrumentPreset":
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    def meta(self) -> dict[str, Any]:
        """The sample-meta fields this preset defines."""
        return {
            "gain": float(self.gain),
            "read_noise": float(self.read_noise),
            "saturation": float(self.saturation),
            "instrument": self.instrument,
            "pixel_scale": float(self.pixel_scale),
            "psf_fwhm": float(self.psf_fwhm),
            "preset": self.name,
            "detector": self.detector,
        }


PER_MIN = 1.0 / 60.0

#: ACS/WFC detector defects (docs/physics.md#confusers). The flag threshold 0.08 e-/s is the ACS
#: hot-pixel definition (approximate, ACS Instrument Handbook); the fractions are UNSOURCED and TUNED so
#: that LACosmic's EX/GC/GAL ordering follows the deepCR paper (README, "Confusers").
ACS_DEFECTS = DefectModel(hot_fraction=0.01, hot_rate=(0.08, 1.0), warm_fraction=0.003, warm_rate=(0.01, 0.08),
                          columns_per_mpix=2.0, column_rate=0.05)

PRESETS: dict[str, InstrumentPreset] = {
    "hst-acs-wfc": InstrumentPreset(
        name="hst-acs-wfc",
        instrument="HST ACS/WFC (simulated)",
        detector="ccd",
        pixel_pitch_um=15.0,          # docs/physics.md#instrument-presets (ACS handbook)
        # UNSOURCED and TUNED: ACS/WFC CCDs are thinned, backside-illuminated SITe devices (ACS handbook);
        # no source found for their thickness (docs/physics.md#instrument-presets: "~15 um (unsourced)") or diffusion (docs/physics.md#instrument-presets:
        # ~4 um, uncited). 11 um / 6 um were tuned to the handbook hit statistics under the retired 1-sigma
        # truth; they are kept, not re-tuned to the seed5-grow2.5 rule (benchmarks/simulation_realism.py
        # prints the residuals under both rules and for the 15 um / 4 um of docs/physics.md#instrument-presets).
        thickness_um=11.0,
        diffusion_sigma_um=6.0,
        pixel_scale=0.05,             # docs/physics.md#instrument-presets (ACS handbook)
        gain=2.0,                     # docs/physics.md#instrument-presets (ACS handbook)
        read_noise=4.0,               # docs/physics.md#instrument-presets (~4 e-)
        saturation=80000.0,           # ~ACS/WFC full well; deepCR masks > 70,000 e- (docs/anchors.md#deepcr-data)
        muon_rate=1.2,                # docs/physics.md#rates: ~1.2 /cm^2/s in low Earth orbit (WFPC1 handbook)
        electron_rate=0.06,           # UNSOURCED: secondary electrons, 5% of the primary rate
        alpha_rate=0.005,             # UNSOURCED
        incidence="isotropic",        # docs/physics.md#incidence (space)
        psf="moffat",
        psf_fwhm=2.0,                 # ~0.1" at F606W (approximate)
        moffat_beta=2.5,              # UNSOURCED
        sky_rate=0.1,                 # ~22.6 mag/arcsec^2 zodiacal sky in F606W (derived, approximate)
        dark_rate=0.01,               # UNSOURCED (order of ACS/WFC dark + warm pixels)
        exptime=1000.0,
        default_shape=(2048, 4096),   # one WFC chip
        notes="ACS/WFC Instrument Handbook: 1.5-3% of pixels hit per 1000 s, 4-5 px per hit, median ~1000 e-",
        defects=ACS_DEFECTS,
    ),
    "decam": InstrumentPreset(
        name="decam",
        instrument="DECam (simulated)",
        detector="ccd",
        pixel_pitch_um=15.0,          # docs/physics.md#instrument-presets
        thickness_um=250.0,           # docs/physics.md#instrument-presets (fully depleted LBNL CCDs)
        diffusion_sigma_um=8.0,       # docs/physics.md#charge-diffusion
        pixel_scale=0.263,            # docs/physics.md#instrument-presets
        gain=4.0,                     # docs/physics.md#instrument-presets
        read_noise=7.0,               # docs/physics.md#instrument-presets
        saturation=150000.0,          # UNSOURCED (order of the DECam full well)
        muon_rate=2.0 * PER_MIN,      # UNSOURCED split of the ~5 /cm^2/min total of docs/physics.md#rates (altitude 2200 m)
        electron_rate=2.7 * PER_MIN,  # UNSOURCED: radioactivity-driven worms, rest of the ~5 /cm^2/min
        alpha_rate=0.3 * PER_MIN,     # UNSOURCED
        incidence="cos3",             # docs/physics.md#incidence (ground)
        psf="moffat",
        psf_fwhm=3.8,                 # 1.0" seeing (typical, approximate)
        moffat_beta=2.5,              # UNSOURCED
        sky_rate=20.0,                # UNSOURCED (r-band dark sky, order of magnitude)
        exptime=90.0,
        default_shape=(4096, 2048),
    ),
    "lsst": InstrumentPreset(
        name="lsst",
        instrument="LSST-like camera (simulated)",
        detector="ccd",
        pixel_pitch_um=10.0,          # docs/physics.md#instrument-presets
        thickness_um=100.0,           # docs/physics.md#instrument-presets: "~100 um (unsourced)"
        diffusion_sigma_um=3.5,       # docs/physics.md#charge-diffusion: ~3-4 um
        pixel_scale=0.2,              # docs/physics.md#instrument-presets
        gain=1.5,                     # docs/physics.md#instrument-presets (~1.5)
        read_noise=6.0,               # docs/physics.md#instrument-presets (~6)
        saturation=100000.0,          # UNSOURCED
        muon_rate=1.0 * PER_MIN,      # docs/physics.md#rates: ~1 /cm^2/min
        electron_rate=1.0 * PER_MIN,  # UNSOURCED
        alpha_rate=0.1 * PER_MIN,     # UNSOURCED
        incidence="cos3",
        psf="moffat",
        psf_fwhm=3.5,                 # 0.7" seeing (typical)
        moffat_beta=2.5,              # UNSOURCED
        sky_rate=30.0,                # UNSOURCED
        exptime=30.0,
        default_shape=(4000, 4072),
    ),
    "ground-small": InstrumentPreset(
        name="ground-small",
        instrument="MicroObservatory-like 6-inch (simulated)",
        detector="ccd",
        pixel_pitch_um=13.6,          # derived: 650x500 frames = 2x2-binned 1317x1035 KAF-1400-class CCD with
                                      # 6.8 um pixels (docs/physics.md#instrument-presets: 6.8-9 um); 5.21"/px x 13.6 um gives a
                                      # 540 mm focal length, as a 6-inch f/3.5 needs (9 um would need 360 mm)
        thickness_um=17.0,            # calibrated: median real labelled CR charge on microobs-hatp32
                                      # (1,375 e-, first 40 frames) vs simulated under the same truth rule
                                      # (benchmarks/sim_vs_real.py; KS 0.12); was 40 um (UNSOURCED)
        diffusion_sigma_um=6.0,       # calibrated: real CR size distribution, same run (KS 0.12)
        pixel_scale=5.2,              # measured: IM_SCALE = 5.21 in the MicroObservatory headers
        gain=39.4,                    # measured: crbench's labelling (photon-transfer slope of frame residual
                                      # variance vs sky level, 142 frames), 95% [37.9, 41.0] e-/ADU
        read_noise=38.0,              # measured: same fit, variance floor at the darkest frames
        saturation=147000.0,          # measured: 12-bit ADC (4095 ADU) minus bias 352 ADU, times gain 39.4
        muon_rate=1.0 * PER_MIN,      # docs/physics.md#rates: ~1 /cm^2/min at sea level
        electron_rate=0.5 * PER_MIN,  # UNSOURCED
        alpha_rate=0.05 * PER_MIN,    # UNSOURCED
        incidence="cos3",
        psf="gaussian",
        psf_fwhm=1.4,                 # UNSOURCED: MANIFEST.md notes undersampled stars
        sky_rate=2.8,                 # measured: median sky 197 e- per 60 s frame (first 40 frames, gain 39.4,
                                      # sky + dark: there are no darks); the 2.8 / 0.5 split is UNSOURCED
        dark_rate=0.5,                # UNSOURCED (warm CCD, 271 K)
        exptime=60.0,                 # measured: EXPTIME = 60
        default_shape=(500, 650),     # measured: 650 x 500 frames
    ),
    "jwst-nircam": InstrumentPreset(
        name="jwst-nircam",
        instrument="JWST NIRCam-like (simulated)",
        detector="hgcdte",
        pixel_pitch_um=18.0,          # docs/physics.md#instrument-presets
        thickness_um=8.0,             # UNSOURCED (HgCdTe absorber); charge_scale calibrates the deposit
        diffusion_sigma_um=6.5,       # UNSOURCED; with IPC gives 7-9 px per hit (docs/physics.md#charge-diffusion)
        pixel_scale=0.031,            # NIRCam short-wavelength channel (approximate)
        gain=2.0,                     # docs/physics.md#instrument-presets (~2)
        read_noise=10.0,              # docs/physics.md#instrument-presets (~10 e- per read)
        saturation=65000.0,           # UNSOURCED (order of the H2RG well)
        muon_rate=3.3,                # docs/physics.md#rates: 2.3-4.3 /cm^2/s measured
        electron_rate=0.2,            # UNSOURCED
        snowball_rate=1.0 / 20.0 / (2048 * 18e-4) ** 2,  # docs/physics.md#rates: ~1 per 20 s per 2Kx2K detector
        incidence="isotropic",
        charge_scale=7.0,             # calibrated so the median hit is ~5200 e- (docs/physics.md#instrument-presets); HgCdTe vs Si
        ipc=0.015,                    # docs/physics.md#charge-diffusion: "a few % to each neighbour"
        psf="gaussian",
        psf_fwhm=2.0,                 # approximate (NIRCam SW at 2 um)
        sky_rate=0.2,                 # UNSOURCED
        dark_rate=0.005,              # UNSOURCED
        exptime=300.0,
        ramp_groups=8,
        default_shape=(2048, 2048),
    ),
}


def get_preset(name: "str | InstrumentPreset") -> InstrumentPreset:
    """Look up a preset by name (a preset object is returned unchanged).

    Raises
    ------
    RegistryError
        If ``name`` is not a known preset.
    """
    if isinstance(name, InstrumentPreset):
        return name
    if name not in PRESETS:
        raise RegistryError(f"unknown instrument preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------------------------
# the next confuser version of the ACS recipes (not yet a standard build)
# --------------------------------------------------------------------------------------------

#: ACS/WFC pixel response function (charge diffusion) at 4000 A, centre of the field: ACS Instrument
#: Handbook, section 5.6.1. The handbook's kernels at longer wavelengths are sharper; the 4000 A one
#: is the one quoted here (docs/physics.md#confusers).
ACS_WFC_PRF_4000A = (0.04, 0.11, 0.04, 0.11, 0.40, 0.11, 0.04, 0.11, 0.04)
#: FWHM (px) of the Gaussian standing for the Airy core at F606W: 1.03 lambda / D = 1.03 x 606 nm /
#: 2.4 m = 0.054", at 0.05"/px (derived).
ACS_F606W_CORE_FWHM = 1.07
#: Share of the light in the core and FWHM (px) of the Moffat halo (beta = the preset's 2.5): TUNED so
#: that the encircled energy within 0.125" radius is 0.81, against the 75% requirement / 80% goal at
#: 632.8 nm of the ACS ground verification (Hartig 2001; docs/physics.md#confusers).
ACS_CORE_FRACTION = 0.75
ACS_HALO_FWHM = 6.0
#: ACS/WFC parallel CTE (ArCTIc's late-epoch trap species) with the residual of the pipeline's
#: pixel-based correction (2-3%: Massey et al. 2010, 2014); docs/physics.md#confusers.
ACS_CTE = CTEModel()

#: Scene crowding of v3: the sharp core turns stars and compact knots into LACosmic false positives, so
#: with v2's 300 GC stars and 1,500 GAL knots per 256x256 LACosmic's TPR@5e-4 fell to 65.7% (GC) and 16.0%
#: (GAL) against 74.1% (EX). TUNED (benchmarks/confuser_versions.py, README "Confusers v3") so that the
#: deepCR paper's ordering GC >= EX > GAL holds again: 40 GC stars and 200 GAL knots per 256x256.
ACS_V3_GC_STARS = 40.0
ACS_V3_GAL_KNOTS = 200.0

#: Confuser versions of the ACS recipes: v2 = the previous standard (v2) builds; v3 = v2 plus the sharp PSF
#: core and the residual CTE trails, with the scene crowding retuned (the standard ACS builds since standard v3).
CONFUSER_VERSIONS = ("v2", "v3")


def with_confusers(preset: InstrumentPreset, version: str) -> InstrumentPreset:
    """The preset with the confusers of ``version`` (:data:`CONFUSER_VERSIONS`).

    ``'v2'`` returns the preset unchanged. ``'v3'`` (ACS/WFC only) renders point sources with the
    ``'core-halo'`` PSF (:data:`ACS_F606W_CORE_FWHM`, :data:`ACS_CORE_FRACTION`, :data:`ACS_HALO_FWHM`,
    :data:`ACS_WFC_PRF_4000A`), reads frames out through :data:`ACS_CTE` and sets the scene crowding
    :data:`ACS_V3_GC_STARS` and :data:`ACS_V3_GAL_KNOTS`.

    Raises
    ------
    RegistryError
        If ``version`` is unknown or v3 is asked of a preset other than ACS/WFC.
    """
    if version not in CONFUSER_VERSIONS:
        raise RegistryError(f"confusers={version!r} is invalid; expected one of {', '.join(CONFUSER_VERSIONS)}")
    if version == "v2":
        return preset
    if preset.name != "hst-acs-wfc":
        raise RegistryError(f"confusers='v3' is defined for the ACS/WFC preset only, not {preset.name!r}")
    return preset.with_(psf="core-halo", psf_core_fwhm=ACS_F606W_CORE_FWHM, psf_core_fraction=ACS_CORE_FRACTION,
                        psf_halo_fwhm=ACS_HALO_FWHM, prf_kernel=ACS_WFC_PRF_4000A, cte=ACS_CTE,
                        gc_stars_per_area=ACS_V3_GC_STARS, gal_knots_per_area=ACS_V3_GAL_KNOTS)
