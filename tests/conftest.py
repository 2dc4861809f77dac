"""Shared fixtures: the bundled sample registry run once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_file(tmp_path: Path):
    """Copy a file from ``tests/data`` to a temporary folder and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copy(DATA / name, target)
        return target

    return copy


@pytest.fixture(autouse=True)
def _layer_versions_root(tmp_path_factory, monkeypatch):
    """Every test sees its own, empty layer-versions root (never ./basinwatch-data)."""
    from layers import versions

    monkeypatch.setenv(versions.VERSIONS_ENV, str(tmp_path_factory.mktemp("layer-versions")))
    versions.set_root(None)
    yield
    versions.set_root(None)


@pytest.fixture(scope="session")
def sample_result():
    """The pipeline run on the bundled synthetic sample (read-only: do not mutate)."""
    from datetime import date

    from geo.pipeline import run_pipeline

    return run_pipeline(as_of=date(2019, 6, 30))


# --- Under CI=true a skipped test fails the run -------------------------------------------
# Every test must run in CI: a skip there hides a missing install step or a broken import.
# The only skips allowed are listed here, each with its reason (node id prefix -> reason).
ALLOWED_CI_SKIPS: dict[str, str] = {}

_ci_skips: list[str] = []


def _ci_enforced() -> bool:
    import os

    return os.environ.get("CI", "").lower() == "true"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect skipped (and xfailed) tests not listed in ``ALLOWED_CI_SKIPS``."""
    if not (_ci_enforced() and report.skipped):
        return
    if any(report.nodeid.startswith(prefix) for prefix in ALLOWED_CI_SKIPS):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    _ci_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn a run with unlisted skips into a failure under CI."""
    if _ci_skips and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Name each skip that failed the CI run."""
    if _ci_skips:
        terminalreporter.section("skips are failures under CI=true (tests/conftest.py)")
        for line in _ci_skips:
            terminalreporter.write_line(line)
