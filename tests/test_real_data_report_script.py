"""benchmarks/real_data_report.py refuses a series too short to give its test frames companion exposures."""
from __future__ import annotations

import pytest
from _mirror import MIRROR, require_mirror
from _scripts import load_script


def test_too_few_frames_is_a_usage_error_naming_the_frame(tmp_path, monkeypatch, capsys):
    require_mirror()
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRBENCH_MIRROR", str(MIRROR))
    report = load_script("benchmarks/real_data_report.py", "real_data_report_under_test")
    # 4 frames leave one test frame without companions: the median comparison cannot run on it, and the
    # report said so only through a DetectorError traceback halfway through its output
    with pytest.raises(SystemExit) as exc:
        report.main(["--n-images", "4", "--detectors", "median"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--n-images 4" in err and "no companion exposures" in err and "hatp32-" in err
