"""Remaining user errors: each gives one ``crbench: error:`` line naming the thing at fault, and
nothing is left behind by a converter build from an archive."""
from __future__ import annotations

import ast
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import crbench.commands.demo as demo
from crbench.cli import main
from crbench.errors import DatasetError, FormatError
from crbench.fitsio import read_sample, write_sample

from conftest import make_sample


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


# ---------------------------------------------------------------------------- plot --out


def test_plot_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "figs.txt").write_text("not a folder")
    results = tmp_path / "results.json"  # never read: the destination is checked first
    line = one_error(capsys, ["plot", str(results), "--out", str(tmp_path / "figs.txt")])
    assert f"--out {tmp_path / 'figs.txt'}: is a file" in line and "expected a folder" in line
    assert "expected a folder (existing or new) for the figures" in line
    line = one_error(capsys, ["plot", str(results), "--out", str(tmp_path / "figs.txt" / "sub")])
    assert f"has the file {tmp_path / 'figs.txt'} on its path" in line


# ---------------------------------------------------------------------------- simulated sizes


@pytest.mark.parametrize("flag,value", [("--n-images", "0"), ("--n-images", "-3"), ("--exposures", "0"),
                                        ("--exposure-time", "0"), ("--exposure-time", "-5"),
                                        ("--exposure-time", "nan")])
@pytest.mark.parametrize("recipe", ["sim-basic", "sim-hst-acs-ex"])
def test_datasets_build_refuses_non_positive_sizes(recipe, flag, value, tmp_path, capsys):
    out = tmp_path / "ds"
    line = one_error(capsys, ["datasets", "build", recipe, "--out", str(out), "--no-progress", flag, value])
    assert f"{flag} {value}" in line and "expected a positive" in line
    assert not out.exists()


@pytest.mark.parametrize("option,value", [("n_images", 0), ("n_images", -1), ("exposures", 0),
                                          ("exposure_time", 0.0), ("exposure_time", -1.0),
                                          ("shape", (8, 8))])
def test_sim_basic_recipe_validates_its_options(option, value, tmp_path):
    from crbench.recipes import build_dataset

    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=rf"recipe 'sim-basic': option {option}=.* is invalid; expected"):
        build_dataset("sim-basic", out, progress=False, **{option: value})
    assert not out.exists()


# ---------------------------------------------------------------------------- META JSON


def _with_meta(path: Path, text: str) -> None:
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul if h.name != "META"]
    meta = fits.BinTableHDU.from_columns(
        [fits.Column(name="json", format=f"{len(text)}A", array=np.array([text]))], name="META")
    fits.HDUList([*hdus, meta]).writeto(path, overwrite=True)


def test_deeply_nested_meta_json_in_a_sample_is_a_format_error(tmp_path):
    path = tmp_path / "s0.fits"
    write_sample(make_sample("s0"), path)
    _with_meta(path, "[" * 200_000 + "]" * 200_000)
    with pytest.raises(FormatError, match=rf"{path}: META extension holds JSON nested too deeply"):
        read_sample(path)


def test_meta_json_that_is_not_an_object_is_a_format_error(tmp_path):
    path = tmp_path / "s0.fits"
    write_sample(make_sample("s0"), path)
    _with_meta(path, "[1, 2]")
    with pytest.raises(FormatError, match=rf"{path}: META extension holds a JSON list; expected a JSON object"):
        read_sample(path)


# ---------------------------------------------------------------------------- converters from archives


def _deepcr_tar(tmp_path: Path, with_stamp: bool = True) -> Path:
    src = tmp_path / "src"
    d = src / "npy_test" / "F814W" / "9425" / "2"
    d.mkdir(parents=True)
    if with_stamp:
        arr = np.zeros((2, 256, 256), np.float32)
        arr[1, 5, 5] = 1
        np.save(d / "1_0.npy", arr)
    tar = tmp_path / "deepCR.ACS-WFC.test.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(src / "npy_test", arcname="npy_test")
    return tar


def test_converter_from_an_archive_leaves_no_extracted_folder(tmp_path):
    from data_recipes.real.converters import convert_deepcr

    tar = _deepcr_tar(tmp_path)
    before = set(tmp_path.iterdir())
    ds = convert_deepcr(tar, tmp_path / "ds")
    assert ds.load("F814W-9425-2-1_0").truth.sum() == 1  # the dataset reads without the extracted copy
    assert set(tmp_path.iterdir()) - before == {tmp_path / "ds"}


def test_failed_converter_from_an_archive_leaves_nothing(tmp_path):
    from data_recipes.real.converters import convert_cosmic_conn, convert_deepcr

    tar = _deepcr_tar(tmp_path, with_stamp=False)
    before = set(tmp_path.iterdir())
    with pytest.raises(FormatError, match="no deepCR stamps"):
        convert_deepcr(tar, tmp_path / "ds")
    with pytest.raises(FormatError, match=rf"{tar}: no FITS sequence files"):
        convert_cosmic_conn(tar, tmp_path / "ds")
    assert set(tmp_path.iterdir()) == before


# ---------------------------------------------------------------------------- leaderboard build


def test_leaderboard_build_refuses_a_missing_entries_folder(tmp_path, capsys):
    missing = tmp_path / "nonexist"
    line = one_error(capsys, ["leaderboard", "build", "--entries", str(missing)])
    assert f"--entries {missing}: does not exist" in line and "expected the leaderboard's entries folder" in line
    (tmp_path / "entries.txt").write_text("")
    line = one_error(capsys, ["leaderboard", "build", "--entries", str(tmp_path / "entries.txt")])
    assert "is not a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entries.txt"]  # no README.md / index.html


# ---------------------------------------------------------------------------- SIGTERM

_TERMINATED_WRITE = """
import os, signal, sys, time
from crbench.atomic import atomic_path
from crbench.termination import exit_cleanly_on_sigterm
assert exit_cleanly_on_sigterm()
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half written")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # never reached when SIGTERM unwinds
"""


def test_sigterm_during_an_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "table.csv"
    proc = subprocess.run([sys.executable, "-c", _TERMINATED_WRITE, str(target)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr  # 128 + SIGTERM, a clean exit rather than death by signal
    assert sorted(p.name for p in target.parent.iterdir()) == []  # neither the target nor its .tmp


def test_crbench_command_exits_143_with_one_line_on_sigterm(monkeypatch, capsys):
    def killed(args):
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not unwind the command")

    monkeypatch.setattr(demo, "run", killed)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process
    try:
        rc = main(["demo"])
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # main() gave the default action back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert rc == 143
    assert capsys.readouterr().err.strip() == "crbench: terminated (SIGTERM); partial outputs removed"


_SCRIPT_KILLED_MID_WRITE = """
import os, signal, sys, time
from crbench.atomic import atomic_path
from crbench.termination import run_script

def main():
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half written")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # never reached when SIGTERM unwinds
    return 0

if __name__ == "__main__":
    run_script(main)
"""


def test_a_script_run_by_run_script_exits_143_with_one_line_and_no_temporary(tmp_path):
    script = tmp_path / "long_job.py"
    script.write_text(_SCRIPT_KILLED_MID_WRITE)
    target = tmp_path / "out" / "table.csv"
    proc = subprocess.run([sys.executable, str(script), str(target)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == "long_job.py: terminated (SIGTERM); partial outputs removed"
    assert sorted(p.name for p in target.parent.iterdir()) == []


def test_run_script_exits_with_the_status_of_main():
    from crbench.termination import run_script

    with pytest.raises(SystemExit) as exc:
        run_script(lambda: 3)
    assert exc.value.code == 3


def _main_block_calls_run_script(tree: ast.Module) -> bool | None:
    """Whether the module's ``if __name__ == "__main__":`` block calls ``run_script`` (None: no such block)."""
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            return any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "run_script"
                       for n in ast.walk(node))
    return None


def test_every_maintainer_script_unwinds_cleanly_on_sigterm():
    # a killed leaderboard or benchmark run must not leave temporaries beside the tables it writes
    root = Path(__file__).resolve().parents[1]
    scripts = [p for d in ("benchmarks", "leaderboard", "baselines") for p in sorted((root / d).rglob("*.py"))]
    verdicts = {p.relative_to(root).as_posix(): _main_block_calls_run_script(ast.parse(p.read_text()))
                for p in scripts}
    with_main = {k: v for k, v in verdicts.items() if v is not None}
    assert len(with_main) >= 20  # benchmarks, leaderboard tools, training and fitting scripts
    assert [k for k, v in with_main.items() if not v] == []
