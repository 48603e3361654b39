"""benchmarks/cross_domain.py: harness numbers per (weights, test set), reuse of stored runs, clear errors."""
from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("torch")

from _torch_threads import _one_torch_thread  # noqa: E402,F401  (autouse fixture)

from crbench.harness import evaluate  # noqa: E402

from _scripts import load_script  # noqa: E402


def _load():
    return load_script("benchmarks/cross_domain.py")


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from baselines.unet.train import train_model
    from crbench.recipes import build_dataset

    root = tmp_path_factory.mktemp("xd")
    ds = build_dataset("sim-ground-small", root / "ground", n_images=10, shape=(96, 96), progress=False)
    w = train_model("unet-nogate", ds, minutes=None, steps=3, seed=0, out=root / "w", progress=False,
                    loss="bce", width=4, levels=2, val_crop=0, max_val_images=1)
    return ds, w


def test_cells_are_the_harness_numbers_and_runs_are_reused(tiny_setup, tmp_path, capsys):
    ds, w = tiny_setup
    mod = _load()
    args = ["--weights", f"tiny={w}", "--test-sets", str(ds.root), "--bootstrap", "20",
            "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o"), "--budget-plot", str(tmp_path / "b.png")]
    assert mod.main(args) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| tiny |"))
    cell = [c.strip() for c in row.strip("|").split("|")][2]
    from crbench.detectors.registry import get_detector

    ref = evaluate(get_detector("unet-nogate", weights=str(w)), ds, split="test", bootstrap=20, per_cr=False,
                   sources=False, on_error="raise", progress=False).runs[0]["summary"]
    ap_txt, tpr_txt = (x.strip() for x in cell.split("/"))
    assert float(ap_txt) == pytest.approx(100 * ref["ap"], abs=0.051)
    if tpr_txt != "not reached":
        assert float(tpr_txt) == pytest.approx(100 * ref["tpr_at_fpr_5e-4"], abs=0.051)
    assert (tmp_path / "o" / "cross_domain.csv").is_file() and (tmp_path / "b.png").stat().st_size > 1000
    assert (tmp_path / "b.pdf").is_file()
    assert re.match(r"best_mean_ap: tiny \d\.\d{4}$", out.strip().splitlines()[-1])
    stored = tmp_path / "r" / "tiny" / ds.name / "results.json"
    mtime = stored.stat().st_mtime_ns
    assert mod.main(args) == 0  # same weights, same build: the stored run is reused, not rescored
    assert stored.stat().st_mtime_ns == mtime
    assert json.loads(stored.read_text())["runs"][0]["summary"]["ap"] == pytest.approx(ref["ap"])


def test_bad_weights_arguments_are_clear(tmp_path):
    mod = _load()
    with pytest.raises(SystemExit, match="expected LABEL=PATH"):
        mod.parse_weights(["no-equals-sign"])
    with pytest.raises(SystemExit, match="no weight file at"):
        mod.parse_weights([f"x={tmp_path / 'missing.pt'}"])
