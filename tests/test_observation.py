"""A detector sees observations (what a telescope delivers), never evaluation data."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from crbench.detectors import Detector, get_detector
from crbench.detectors.base import masks_to_rank_score
from crbench.errors import DetectorError, FormatError
from crbench.harness import run_detector
from crbench.observation import DQ_DEAD, DQ_HOT, DQ_OTHER, DQ_SATURATED, Observation
from crbench.sample import Sample

from conftest import make_sample

EVALUATION_FIELDS = ("truth", "ignore", "labels", "instances", "sources")


def _halo_frame(shape=(128, 128), seed: int = 3) -> Sample:
    """CRs each surrounded by an ignore ring (an unresolved halo), plus a dead column and a hot
    pixel in the instrument mask."""
    s = make_sample("halo", shape=shape, seed=seed, n_crs=20, n_exposures=2)
    ring = ndimage.binary_dilation(s.truth, iterations=2) & ~s.truth
    s.ignore = s.ignore | ring
    dq = np.zeros(shape, np.uint8)
    dq[:, shape[1] - 20] = DQ_DEAD
    dq[50, 10] = DQ_HOT
    s.dqmask = dq
    return s.validate()


def _answers_changed(s: Sample) -> Sample:
    """The same observation with every evaluation field replaced."""
    h, w = s.shape
    ignore = np.zeros((h, w), bool)
    ignore[:, : w // 2] = True  # half the image
    ignore |= ndimage.binary_dilation(s.truth, iterations=3) & ~s.truth
    return dataclasses.replace(
        s, truth=np.zeros((h, w), bool), ignore=ignore, labels=np.zeros((h, w), np.int32),
        instances=s.instances.iloc[:0].copy(), sources=np.ones((h, w), bool),
        meta={**s.meta, "label_confidence": "changed", "n_crs": 0})


# ---------------------------------------------------------------- (a) answers do not reach detectors
@pytest.mark.parametrize("name,params", [
    ("lacosmic", {"sigclip": [3.0, 6.0, 12.0]}),
    ("median", {}),
    ("attention-unet", {}),
])
def test_score_map_is_bit_identical_when_evaluation_data_change(name, params):
    if name == "attention-unet":
        pytest.importorskip("torch")
    det = get_detector(name, **params)
    s = _halo_frame(shape=(96, 96))
    a, _ = run_detector(det, s)
    b, _ = run_detector(det, _answers_changed(s))
    assert np.array_equal(a, b)
    assert a.any()


# ---------------------------------------------------------------- (b) lacosmic is astroscrappy, no ignore
def test_lacosmic_equals_astroscrappy_without_the_ignore_mask():
    import astroscrappy

    s = _halo_frame()
    sweep = [3.0, 5.0, 9.0, 20.0]
    det = get_detector("lacosmic", sigclip=sweep)
    gain = s.meta["gain"]
    data = s.image / np.float32(gain)
    inbkg = np.full(s.shape, s.meta["sky"] / gain, np.float32)
    inmask = (s.dqmask & (DQ_DEAD | DQ_HOT)) > 0
    direct = []
    for v in sweep:
        m, _ = astroscrappy.detect_cosmics(
            data, inmask=inmask, inbkg=inbkg, sigclip=v, sigfrac=0.3, objlim=5.0, gain=gain,
            readnoise=s.meta["read_noise"], satlevel=s.meta["saturation"] / gain, niter=4, sepmed=True,
            cleantype="meanmask", fsmode="median", verbose=False)
        assert np.array_equal(det.mask(s.observation(), v), m), f"sigclip={v}"
        direct.append(m)
    score, _ = run_detector(det, s)
    assert np.array_equal(score, masks_to_rank_score(direct))
    # the frame exercises the defect: CRs are found, although every one borders ignored pixels
    assert score[s.truth].mean() > 2


# ---------------------------------------------------------------- (c) truth is unreachable, sample immutable
class _Peeker(Detector):
    name = "peeker"

    def __init__(self, field: str) -> None:
        super().__init__(field=field)

    def score(self, obs):
        return np.asarray(getattr(obs, self.params()["field"]), dtype=np.float32)


@pytest.mark.parametrize("field", EVALUATION_FIELDS)
def test_detector_reading_an_evaluation_field_fails(field):
    s = make_sample()
    with pytest.raises(AttributeError):
        getattr(s.observation(), field)
    with pytest.raises(DetectorError, match=f"AttributeError.*{field}"):
        run_detector(_Peeker(field), s)


def test_observation_meta_is_filtered_and_read_only():
    s = make_sample()
    s.meta.update({"label_confidence": "multi-exposure", "n_crs": 6, "truth_nsigma": 3.0})
    obs = s.observation()
    assert obs.gain == 2.0 and obs.read_noise == 5.0 and obs.saturation == 60000.0
    assert obs.instrument == "test" and obs.exptime == 100.0
    assert not {"label_confidence", "n_crs", "truth_nsigma"} & set(obs.meta)
    with pytest.raises(TypeError):
        obs.meta["gain"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.image = np.zeros(s.shape, np.float32)  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        obs.truth = s.truth  # type: ignore[attr-defined]


class _Vandal(Detector):
    name = "vandal"

    def score(self, obs):
        try:
            obs.image[:] = 0.0
        except ValueError:
            pass
        else:  # pragma: no cover - reached only when the image is writeable
            raise AssertionError("the observation image is writeable")
        for arr in (obs.image, obs.exposures, obs.dqmask):
            arr.flags.writeable = True  # a copy: allowed, but it is not the sample's array
            arr[...] = 0
        return np.zeros(obs.shape, np.float32)


def test_detector_cannot_alter_the_sample():
    s = make_sample()
    s.dqmask = np.full(s.shape, DQ_HOT, np.uint8)
    before = (s.image.copy(), s.exposures.copy(), s.dqmask.copy())
    run_detector(_Vandal(), s)
    assert np.array_equal(s.image, before[0])
    assert np.array_equal(s.exposures, before[1])
    assert np.array_equal(s.dqmask, before[2])


def test_score_map_that_is_the_image_is_returned_writeable():
    class Identity(Detector):
        name = "identity"

        def score(self, obs):
            return obs.image

    out, _ = run_detector(Identity(), make_sample())
    out += 1.0  # the harness owns its score maps


# ---------------------------------------------------------------- (d) FITS: DQMASK and format versions
def test_fits_round_trip_keeps_the_instrument_mask(tmp_path):
    from crbench.fitsio import FORMAT_VERSION, read_sample, write_sample

    s = _halo_frame(shape=(64, 64))
    s.dqmask[3, 4] |= DQ_SATURATED
    write_sample(s, tmp_path / "halo.fits")
    with fits.open(tmp_path / "halo.fits") as hdul:
        assert hdul[0].header["CRBFMT"] == FORMAT_VERSION == 2
        assert hdul["DQMASK"].data.dtype == np.uint8
    back = read_sample(tmp_path / "halo.fits")
    assert back.dqmask.dtype == np.uint8 and np.array_equal(back.dqmask, s.dqmask)
    assert np.array_equal(back.ignore, s.ignore)  # the evaluation mask stays separate
    assert np.array_equal(back.observation().dqmask, s.dqmask)


def _write_format1(sample: Sample, path) -> None:
    """A file as crbench wrote it before DQMASK: no CRBFMT card, no DQMASK extension."""
    from crbench.fitsio import write_sample

    write_sample(sample, path)
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul if h.name != "DQMASK"]
    del hdus[0].header["CRBFMT"]
    fits.HDUList(hdus).writeto(path, overwrite=True)


def test_format1_file_opens_with_a_one_time_note(tmp_path):
    from crbench.fitsio import FormatNote, read_sample

    s = _halo_frame(shape=(64, 64))
    for i in range(2):
        _write_format1(dataclasses.replace(s, id=f"old{i}"), tmp_path / f"old{i}.fits")
    with pytest.warns(FormatNote, match="format 1 dataset: no instrument mask; detectors get none"):
        old = read_sample(tmp_path / "old0.fits")
    assert old.dqmask is None and old.observation().dqmask is None
    assert np.array_equal(old.ignore, s.ignore) and np.array_equal(old.image, s.image)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FormatNote)
        read_sample(tmp_path / "old1.fits")  # same folder: noted once


def test_newer_format_is_a_clear_error(tmp_path):
    from crbench.fitsio import read_sample, write_sample

    write_sample(make_sample(), tmp_path / "s0.fits")
    with fits.open(tmp_path / "s0.fits", mode="update") as hdul:
        hdul[0].header["CRBFMT"] = 99
    with pytest.raises(FormatError, match=r"s0\.fits: sample format version 99 .*newer"):
        read_sample(tmp_path / "s0.fits")


def test_dqmask_must_be_a_uint8_bit_field():
    from crbench.errors import SampleError

    s = make_sample()
    s.dqmask = np.zeros(s.shape, bool)
    with pytest.raises(SampleError, match="sample 's0': dqmask must be a uint8 bit field"):
        s.validate()


# ---------------------------------------------------------------- recipes write instrument masks only
def test_simulated_instrument_mask_is_saturation_from_the_readout_not_the_truth():
    from data_recipes.sim.presets import get_preset
    from data_recipes.sim.scenes import simulate_sample

    s = simulate_sample(np.random.default_rng(0), "gc", "hst-acs-wfc", field="gc", shape=(192, 192),
                        n_exposures=1)
    p = get_preset("hst-acs-wfc")
    assert s.dqmask is not None and s.dqmask.dtype == np.uint8
    # saturation from the readout, plus the ACS preset's flagged hot pixels and bad columns (v2)
    assert set(np.unique(s.dqmask)) <= {0, DQ_SATURATED, DQ_HOT, DQ_OTHER, DQ_SATURATED | DQ_HOT,
                                         DQ_SATURATED | DQ_OTHER, DQ_HOT | DQ_OTHER}
    saturated = s.image >= p.saturation - p.gain
    assert saturated.any()  # the gc field saturates star cores
    assert np.array_equal((s.dqmask & DQ_SATURATED) > 0, saturated)
    # unsaturated CR pixels never carry the saturation bit
    assert not (s.dqmask[s.truth & ~saturated] & DQ_SATURATED).any()
    # the defect bits are those of the preset's defect model, not of the truth
    assert ((s.dqmask & DQ_HOT) > 0).mean() < 3 * p.defects.hot_fraction


def test_observation_build_copies_and_filters():
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    obs = Observation.build("x", img, meta={"gain": 2, "truth_nsigma": 3})
    img[0, 0] = 99
    assert obs.image[0, 0] == 0 and obs.image.dtype == np.float32 and not obs.image.flags.writeable
    assert dict(obs.meta) == {"gain": 2} and obs.shape == (3, 4) and obs.dqmask is None


def test_observation_pickles_read_only():
    import pickle

    s = make_sample()
    s.meta["label_confidence"] = "x"
    obs = pickle.loads(pickle.dumps(s.observation()))
    assert np.array_equal(obs.image, s.image) and not obs.image.flags.writeable
    assert obs.gain == 2.0 and "label_confidence" not in obs.meta
    with pytest.raises(TypeError):
        obs.meta["gain"] = 1.0  # type: ignore[index]
