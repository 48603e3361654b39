"""The CI skip guard (tests/_ci_skip_guard.py) and the mirror rule (tests/_mirror.py), run in pytester."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).resolve().parent

SKIPPING = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("optional thing missing")
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project whose conftest loads the guard exactly as tests/conftest.py does."""
    pytester.syspathinsert(TESTS_DIR)
    pytester.makeconftest("from _ci_skip_guard import pytest_configure  # noqa: F401\n")
    monkeypatch.delenv("CI", raising=False)
    return pytester


def test_skip_passes_locally(inner: pytest.Pytester) -> None:
    inner.makepyfile(SKIPPING)
    result = inner.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK


def test_skip_fails_the_session_in_ci(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    inner.makepyfile(SKIPPING)
    result = inner.runpytest()
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skips not allowed in CI*",
                                 "*test_skips: optional thing missing",
                                 "*1 test(s) skipped without an allowed reason*"])


def test_collection_skip_fails_the_session_in_ci(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    inner.makepyfile("import pytest\npytest.importorskip('no_such_module_xyz')\n\ndef test_x():\n    pass\n")
    result = inner.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skips not allowed in CI*", "*no_such_module_xyz*"])


def test_xfail_and_clean_runs_pass_in_ci(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    inner.makepyfile("import pytest\n\n@pytest.mark.xfail(reason='known')\ndef test_x():\n    assert False\n\n"
                     "def test_y():\n    pass\n")
    result = inner.runpytest()
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_ci_false_is_not_ci(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    inner.makepyfile(SKIPPING)
    assert inner.runpytest().ret == pytest.ExitCode.OK


MIRROR_USER = """
from _mirror import require_mirror

def test_needs_mirror():
    require_mirror()
"""


def test_missing_mirror_skips_locally_with_reason(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("CRBENCH_TEST_MIRROR", str(tmp_path / "no-mirror"))
    inner.makepyfile(MIRROR_USER)
    result = inner.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*real-data mirror absent: no SHA256SUMS in {tmp_path / 'no-mirror'}*"])


def test_missing_mirror_fails_in_ci(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("CRBENCH_TEST_MIRROR", str(tmp_path / "no-mirror"))
    inner.makepyfile(MIRROR_USER)
    result = inner.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*real-data mirror absent*CI must provide the mirror*"])


def test_mirror_found_through_environment_variable(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "SHA256SUMS").write_text("")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("CRBENCH_TEST_MIRROR", str(tmp_path / "m"))
    inner.makepyfile(MIRROR_USER)
    inner.runpytest().assert_outcomes(passed=1)
