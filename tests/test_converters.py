"""Converters for the published sets, on small fixtures written in exactly their layouts."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crbench.errors import DatasetError, DownloadError, FormatError
from crbench.recipes import build_dataset, get_recipe
from data_recipes.real.converters import convert_cosmic_conn, convert_deepcr


def _deepcr_tree(root: Path) -> dict[str, np.ndarray]:
    """npy_train/F606W/10595/7 (GC), npy_train/F814W/10631/3 (EX), npy_test/F435W/13737/2 (GAL)."""
    rng = np.random.default_rng(0)
    made = {}
    for split, filt, prop, visit, n_k in (("npy_train", "F606W", "10595", "7", 2),
                                          ("npy_train", "F814W", "10631", "3", 1),
                                          ("npy_test", "F435W", "13737", "2", 2)):
        d = root / split / filt / prop / visit
        d.mkdir(parents=True)
        np.save(d / "sky.npy", np.array([100.0 + 10 * k for k in range(n_k)]))
        for k in range(1, n_k + 1):
            for j in range(2):
                arr = np.zeros((3, 256, 256), np.float32)
                arr[0] = rng.normal(100.0 + 10 * (k - 1), 5.0, (256, 256))
                arr[1, 50:52, 60:63] = 1          # a 6-pixel CR
                arr[0, 50:52, 60:63] += 800.0
                arr[1, 200, 10:20] = 1            # a track
                arr[2, 0:4, :] = 1                # an ignored strip
                arr[1, 1, 5] = 1                  # CR inside ignore -> dropped from truth
                np.save(d / f"{k}_{j}.npy", arr)
                made[f"{filt}-{prop}-{visit}-{k}_{j}"] = arr
    return made


def test_deepcr_layout_converts_with_field_types_and_sky(tmp_path):
    made = _deepcr_tree(tmp_path / "src")
    ds = convert_deepcr(tmp_path / "src", tmp_path / "ds", val_fraction=0.0)
    assert len(ds) == len(made) == 10
    assert len(ds.ids("test")) == 4 and len(ds.ids("train")) == 6
    s = ds.load("F606W-10595-7-2_1")
    arr = made["F606W-10595-7-2_1"]
    np.testing.assert_allclose(s.image, arr[0], rtol=1e-6)
    assert s.meta["field_type"] == "GC" and s.meta["sky"] == 110.0 and s.meta["exposure"] == 2
    assert ds.load("F814W-10631-3-1_0").meta["field_type"] == "EX"
    assert ds.load("F435W-13737-2-1_0").meta["field_type"] == "GAL"
    assert s.truth.sum() == 16 and not s.truth[1, 5] and s.ignore[:4].all()
    assert sorted(s.instances["pixels"].tolist()) == [6, 10]
    assert ds.card["field_types"] == {"GC": 4, "EX": 2, "GAL": 4}
    assert ds.card["groups"]["F606W-10595-7-2_1"] == "F606W/10595/7"


def test_deepcr_from_tar_and_two_channel_stamps(tmp_path):
    src = tmp_path / "src"
    d = src / "npy_test" / "F814W" / "9425" / "2"
    d.mkdir(parents=True)
    arr = np.zeros((2, 256, 256), np.float32)
    arr[1, 5, 5] = 1
    np.save(d / "1_0.npy", arr)
    tar = tmp_path / "deepCR.ACS-WFC.test.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(src / "npy_test", arcname="npy_test")
    ds = convert_deepcr(tar, tmp_path / "ds")
    s = ds.load("F814W-9425-2-1_0")
    assert s.truth.sum() == 1 and not s.ignore.any() and s.meta["field_type"] == "EX"


def test_deepcr_bad_layouts_and_pickles(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no deepCR stamps"):
        convert_deepcr(tmp_path / "empty", tmp_path / "ds")
    d = tmp_path / "bad" / "npy_test" / "F606W" / "1" / "1"
    d.mkdir(parents=True)
    np.save(d / "1_0.npy", np.zeros((4, 8, 8)))
    with pytest.raises(FormatError, match=r"1_0\.npy: expected shape \(3, H, W\)"):
        convert_deepcr(tmp_path / "bad", tmp_path / "ds")
    pkl = tmp_path / "field.pkl"
    img = np.zeros((2, 32, 32), np.float32)
    cr = np.zeros((2, 32, 32), bool)
    cr[0, 3, 3] = True
    pkl.write_bytes(pickle.dumps({"single": img, "crmask": cr, "badmask": np.zeros_like(cr), "gain": [2.0],
                                  "type": "GAL", "stacked": img[0], "exposure": 100.0, "sky": 5.0}))
    with pytest.raises(DownloadError, match="refusing to load a pickle"):
        convert_deepcr(pkl, tmp_path / "dsp")
    ds = convert_deepcr(pkl, tmp_path / "dsp", trusted=True)
    assert len(ds) == 2 and ds.load(ds.ids()[0]).truth.sum() == 1


def _cosmic_file(path: Path, n: int = 3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    hdus = [fits.PrimaryHDU(header=fits.Header([("FRMTOTAL", n)]))]
    for j in range(n):
        h = fits.Header([("GAIN", 2.0), ("RDNOISE", 7.0), ("SATURATE", 60000.0), ("MAXLIN", 55000.0),
                         ("FILENAME", f"cpt1m010-fa16-20200101-00{j}"), ("EXPTIME", 120.0)])
        hdus.append(fits.ImageHDU(rng.normal(50, 3, (64, 80)).astype(np.float32), header=h, name="SCI"))
    hdus.append(fits.ImageHDU(np.ones((64, 80), np.uint8), name="VALID_MASK"))
    hdus.append(fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.array([10.0]))], name="CAT"))
    for j in range(n):
        cr = np.zeros((64, 80), np.uint8)
        cr[20 + j, 30:33] = 1
        cr[40, 40] = 1       # on a source: ignored by default
        hdus.append(fits.CompImageHDU(cr, name="CR"))
    for j in range(n):
        ign = np.zeros((64, 80), np.uint8)
        ign[0, :] = 1
        ign[39:42, 39:42] = 4
        ign[10, 10] = 8
        ign[11, 11] = 2
        hdus.append(fits.CompImageHDU(ign, name="IGNORE"))
    fits.HDUList(hdus).writeto(path)


def test_cosmic_conn_layout_keeps_ignore_bits(tmp_path):
    src = tmp_path / "lco"
    src.mkdir()
    for i in range(3):
        _cosmic_file(src / f"seq{i}.fits", seed=i)
    ds = convert_cosmic_conn(src, tmp_path / "ds")
    assert len(ds) == 9
    s = ds.load("seq1-2")
    assert s.exposures.shape == (2, 64, 80)
    assert s.meta["gain"] == 2.0 and s.meta["saturation"] == 120000.0 and s.meta["read_noise"] == 7.0
    assert s.truth.sum() == 3 and s.truth[22, 30:33].all() and not s.truth[40, 40]
    assert s.sources[40, 40] and s.ignore[40, 40] and s.ignore[0].all() and s.ignore[10, 10]
    assert s.meta["ignore_bit_counts"] == {"boundary": 80, "no_data": 1, "sources": 9, "hot_or_single": 1}
    assert ds.card["groups"]["seq1-2"] == "seq1"
    # sources scored instead of ignored when bit 4 is left out
    ds2 = convert_cosmic_conn(src, tmp_path / "ds2", ignore_bits=(1, 2, 8))
    s2 = ds2.load("seq1-2")
    assert s2.truth[40, 40] and not s2.ignore[40, 40] and s2.sources[40, 40]
    with pytest.raises(DatasetError, match="ignore_bits: 16"):
        convert_cosmic_conn(src, tmp_path / "ds3", ignore_bits=(16,))


def test_cosmic_conn_wrong_layout(tmp_path):
    src = tmp_path / "lco"
    src.mkdir()
    fits.HDUList([fits.PrimaryHDU(header=fits.Header([("FRMTOTAL", 3)])), fits.ImageHDU(np.zeros((4, 4)))]) \
        .writeto(src / "short.fits")
    with pytest.raises(FormatError, match="short.fits: expected PRIMARY"):
        convert_cosmic_conn(src, tmp_path / "ds")


def test_converter_recipes_registered_with_real_urls(tmp_path, monkeypatch):
    monkeypatch.delenv("CRBENCH_DEEPCR_SOURCE", raising=False)
    assert get_recipe("deepcr-acswfc").kind == "converted"
    with pytest.raises(DatasetError, match=r"zenodo\.org/record/4295902/files/deepCR\.ACS-WFC\.train\.tar"):
        build_dataset("deepcr-acswfc", tmp_path / "x", progress=False)
    _deepcr_tree(tmp_path / "src")
    ds = build_dataset("deepcr-acswfc", tmp_path / "x", progress=False, source=str(tmp_path / "src"))
    assert len(ds) == 10
    assert ds.card["provenance"][0]["origin"].startswith("https://zenodo.org/record/4295902/files/")


def test_a_deepcr_stamp_whose_name_does_not_parse_is_a_format_error(tmp_path):
    from data_recipes.real.converters import deepcr_sample

    path = tmp_path / "stamp.npy"
    np.save(path, np.zeros((3, 8, 8), np.float32))
    with pytest.raises(FormatError, match="stamp.npy: expected a stamp file named K_J.npy"):
        deepcr_sample(path, "F606W", "10595", "07")
