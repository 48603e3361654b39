"""Pytest plugin: under CI (``$CI`` set), a skipped test fails the session.

A skip hides a test that did not run; locally that is fine (a missing optional package, no mirror),
but in CI it lets a run pass without the checks it claims. Under CI this plugin records every
skip (test or collection) whose reason matches none of :data:`ALLOWED_CI_SKIPS`, lists them in the
terminal summary and sets the exit status to "tests failed". Expected failures (xfail) are not skips.
Registered from ``tests/conftest.py``.
"""
from __future__ import annotations

import re

import pytest

from _mirror import in_ci

#: Regular expressions of skip reasons tolerated in CI (searched in the reason). Keep it empty:
#: when something cannot run in CI, install it there or mark the test out of the CI run explicitly.
ALLOWED_CI_SKIPS: tuple[str, ...] = ()


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class CISkipGuard:
    """Collects unexplained skips and turns them into a failed session."""

    def __init__(self, allowed: tuple[str, ...] = ALLOWED_CI_SKIPS) -> None:
        self.allowed = [re.compile(p) for p in allowed]
        self.offenders: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = _reason(report)
        if not any(p.search(reason) for p in self.allowed):
            self.offenders.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.offenders and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.offenders:
            return
        terminalreporter.section("skips not allowed in CI", sep="=", red=True, bold=True)
        for nodeid, reason in self.offenders:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"CI is set: {len(self.offenders)} test(s) skipped without an allowed reason "
                              "(tests/_ci_skip_guard.py ALLOWED_CI_SKIPS); the session fails.")


def pytest_configure(config: pytest.Config) -> None:
    """Register the guard when running under CI."""
    if in_ci() and not config.pluginmanager.has_plugin("crbench-ci-skip-guard"):
        config.pluginmanager.register(CISkipGuard(), "crbench-ci-skip-guard")
