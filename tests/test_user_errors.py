"""One clean line for every user error: ``crbench: error: <what, and what was expected>``, no traceback.

Each case is a mistake a user makes (a broken plugin, a hand-edited card, a wrong flag); a bug in
crbench itself, by contrast, keeps its traceback.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crbench.cli import main
from crbench.errors import DetectorError, DownloadError
from crbench.harness import run_detector

from conftest import make_sample

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
import sys
import numpy as np
from crbench.detectors.base import Detector

class BadInit(Detector):
    name = "bad-init"
    def __init__(self):
        raise RuntimeError("cannot find my model file")
    def score(self, sample):
        return sample.image

class Exits(Detector):
    name = "exits"
    def score(self, sample):
        sys.exit(3)

class Marks(Detector):
    """Writes a marker file when it scores: shows whether scoring started."""
    name = "marks"
    marker = None
    def score(self, sample):
        open(self.marker, "w").close()
        return sample.image.astype(np.float32)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module ``userdet`` of user detectors, importable by ``userdet:Class``."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "userdet.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("userdet", None)
    yield folder
    sys.modules.pop("userdet", None)


@pytest.fixture
def copy_of(basic_dataset, tmp_path):
    """A private copy of the session's small dataset, to damage."""
    dst = tmp_path / "ds"
    shutil.copytree(basic_dataset.root, dst)
    return dst


def one_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; assert a nonzero code and a single ``crbench: error:`` line; return it."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("crbench: error: ")
    return lines[0]


EVAL = ["--no-progress", "--bootstrap", "0", "--no-cache"]


def test_detector_whose_init_raises(plugin, basic_dataset, tmp_path, capsys):
    line = one_error(capsys, ["evaluate", "--dataset", str(basic_dataset.root), "--detector", "userdet:BadInit",
                              "--out", str(tmp_path / "r"), *EVAL])
    assert "detector 'userdet:BadInit' could not be created" in line
    assert "RuntimeError: cannot find my model file" in line


def test_splits_given_as_a_list_in_the_card(copy_of, tmp_path, capsys):
    card = json.loads((copy_of / "dataset.json").read_text())
    card["splits"] = [i for ids in card["splits"].values() for i in ids]
    (copy_of / "dataset.json").write_text(json.dumps(card))
    line = one_error(capsys, ["evaluate", "--dataset", str(copy_of), "--detector", "median",
                              "--out", str(tmp_path / "r"), *EVAL])
    assert "dataset.json: 'splits' must be an object mapping split names to lists of sample ids" in line
    assert "got a list" in line


def test_instances_csv_without_its_columns(copy_of, tmp_path, capsys):
    (copy_of / "instances.csv").write_text("a,b\n1,2\n")
    line = one_error(capsys, ["datasets", "info", str(copy_of), "--plot", str(tmp_path / "figs")])
    assert "instances.csv: lacks the column(s) ['sample_id', 'id', 'morphology', 'pixels']" in line


def test_corrupt_deepcr_weights(tmp_path, monkeypatch, basic_dataset, capsys):
    pytest.importorskip("torch")
    deepcr_model = pytest.importorskip("deepCR.model")
    import learned_models

    real_path = learned_models.default_model_path
    fake = tmp_path / "learned_models"
    (fake / "mask").mkdir(parents=True)
    for name in ("ACS-WFC.pth", "ACS-WFC-F435W.pth"):
        (fake / "mask" / name).write_bytes(b"this is not a torch file" * 10)
    monkeypatch.setattr(learned_models, "default_model_path", str(fake))
    monkeypatch.setattr(deepcr_model, "default_model_path", str(fake))
    # the registered model goes through deepCR's own loader
    line = one_error(capsys, ["evaluate", "--dataset", str(basic_dataset.root), "--detector", "deepcr",
                              "--out", str(tmp_path / "r"), *EVAL])
    assert f"cannot load weight file {fake / 'mask' / 'ACS-WFC.pth'}" in line and "corrupt" in line
    # the per-filter weights go through crbench's own torch.load(weights_only=True)
    from baselines.deepcr_detector import load_deepcr

    shutil.copy(Path(real_path) / "mask" / "ACS-WFC.pth", fake / "mask" / "ACS-WFC.pth")
    with pytest.raises(DetectorError, match=r"ACS-WFC-F435W\.pth \(\w+: .*\); the file is corrupt"):
        load_deepcr("ACS-WFC-F435W")


def test_out_pointing_at_a_file_is_refused_before_scoring(plugin, basic_dataset, tmp_path, capsys, monkeypatch):
    import userdet

    marker = tmp_path / "scored"
    monkeypatch.setattr(userdet.Marks, "marker", str(marker))
    (tmp_path / "results.txt").write_text("not a folder")
    line = one_error(capsys, ["evaluate", "--dataset", str(basic_dataset.root), "--detector", "userdet:Marks",
                              "--out", str(tmp_path / "results.txt"), *EVAL])
    assert "--out" in line and "results.txt: is a file" in line and "expected a folder" in line
    assert not marker.exists()  # refused before any detector ran
    line = one_error(capsys, ["evaluate", "--dataset", str(basic_dataset.root), "--detector", "userdet:Marks",
                              "--out", str(tmp_path / "results.txt" / "sub"), *EVAL])
    assert "has the file" in line and not marker.exists()


def _deep_json(path: Path, depth: int = 200_000) -> Path:
    path.write_text("[" * depth + "]" * depth)
    return path


def test_deeply_nested_results_json(tmp_path, capsys):
    deep = _deep_json(tmp_path / "results.json")
    for argv in (["compare", str(deep), str(deep)], ["plot", str(deep), "--out", str(tmp_path / "figs")],
                 ["leaderboard", "submit", str(deep), "--entries", str(tmp_path / "entries")]):
        line = one_error(capsys, argv)
        assert str(deep) in line and ("JSON nested too deeply" in line or "JSON nested deeper than" in line), line


def test_deeply_nested_dataset_card_given_to_score_predictions(tmp_path, capsys):
    ds = tmp_path / "ds"
    ds.mkdir()
    _deep_json(ds / "dataset.json")
    (tmp_path / "preds").mkdir()
    line = one_error(capsys, ["score-predictions", str(tmp_path / "preds"), "--dataset", str(ds),
                              "--out", str(tmp_path / "r"), "--no-progress"])
    assert "dataset.json: JSON nested too deeply" in line


def test_sampleid_header_differing_from_the_file_name(copy_of, tmp_path, capsys):
    path = copy_of / "samples" / "basic-0001.fits"
    fits.setval(path, "SAMPLEID", value="basic-0007")
    # record the edited file in the card, as a dataset written that way would have it
    from crbench.dataset import CARD_NAME, file_stat
    card = json.loads((copy_of / CARD_NAME).read_text())
    card["files"]["basic-0001"] = file_stat(path)
    (copy_of / CARD_NAME).write_text(json.dumps(card))
    line = one_error(capsys, ["evaluate", "--dataset", str(copy_of), "--detector", "median", "--split", "all",
                              "--operating-split", "none", "--out", str(tmp_path / "r"), *EVAL])
    assert f"{path}: header SAMPLEID is 'basic-0007' but the file name says 'basic-0001'" in line


def test_sys_exit_in_a_detector_is_a_detector_error(plugin, basic_dataset, tmp_path, capsys):
    line = one_error(capsys, ["evaluate", "--dataset", str(basic_dataset.root), "--detector", "userdet:Exits",
                              "--out", str(tmp_path / "r"), *EVAL])
    assert "detector 'exits' failed on every sample" in line and "called sys.exit(3)" in line


def test_run_detector_turns_sys_exit_into_detector_error_but_not_ctrl_c():
    from crbench.detectors.base import Detector

    class Exits(Detector):
        name = "exits"

        def score(self, sample):
            sys.exit("bye")

    class Interrupted(Detector):
        name = "interrupted"

        def score(self, sample):
            raise KeyboardInterrupt

    with pytest.raises(DetectorError, match=r"detector 'exits' called sys.exit\('bye'\) on sample 's0'"):
        run_detector(Exits(), make_sample())
    with pytest.raises(KeyboardInterrupt):
        run_detector(Interrupted(), make_sample())


def test_unknown_operating_split_is_an_error(basic_dataset, tmp_path, capsys):
    line = one_error(capsys, ["evaluate", "--dataset", str(basic_dataset.root), "--detector", "median",
                              "--operating-split", "nope", "--out", str(tmp_path / "r"), *EVAL])
    assert "operating split 'nope'" in line and "['test', 'train', 'val']" in line and "'none'" in line
    # 'none' stays the explicit in-sample choice
    assert main(["evaluate", "--dataset", str(basic_dataset.root), "--detector", "median",
                 "--operating-split", "none", "--out", str(tmp_path / "r"), *EVAL]) == 0
    run = json.loads((tmp_path / "r" / "results.json").read_text())["runs"][0]
    assert run["summary"]["op_chosen_on"] == "in-sample"


def test_unreachable_download_message_is_short(tmp_path):
    from crbench import download as dl

    entry = dict(dl.group_files("hsc-cutout")[0], origin_url="http://127.0.0.1:9/hsc_crs.fits")
    with pytest.raises(DownloadError) as err:
        dl.fetch_file(entry, tmp_path, progress=False, mirror="")
    msg = str(err.value)
    assert msg.startswith("hsc_crs.fits: source unreachable (host 127.0.0.1")
    assert "CRBENCH_MIRROR" in msg and "\n" not in msg and len(msg) < 220, msg


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    import crbench.detectors.registry as registry

    def broken():
        raise ValueError("an internal bug")

    monkeypatch.setattr(registry, "available_detectors", broken)
    rc = main(["detectors", "list"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" in err and "ValueError: an internal bug" in err
    assert err.strip().splitlines()[-1].startswith("crbench: internal error") and "report" in err
    assert "crbench: error:" not in err


def test_sys_exit_through_python_dash_m_is_not_silent(plugin, basic_dataset, tmp_path):
    """Through the real entry point, a detector's ``sys.exit(3)`` used to end the run silently with code 3."""
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "crbench.cli", "evaluate", "--dataset", str(basic_dataset.root),
                           "--detector", "userdet:Exits", "--out", str(tmp_path / "r"), *EVAL],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("crbench")]
    assert "Traceback" not in proc.stderr and len(lines) == 1
    assert lines[0].startswith("crbench: error: detector 'exits' failed on every sample")
    assert "called sys.exit(3)" in lines[0]
