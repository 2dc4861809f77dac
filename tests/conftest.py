"""Shared fixtures: the bundled sample registry run once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # tests/test_ci_skips.py runs the CI-skip hook on throwaway files

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


@pytest.fixture
def fresh_classify_caches():
    """geo.classify's module caches empty before and after the test: the uncached build
    paths run (and a mutant of them cannot hide behind an answer cached earlier)."""
    from geo import classify as cl

    def clear() -> None:
        cl._boundary_band.cache_clear()
        cl._index_cache.clear()
        cl._registry_layers.clear()

    clear()
    yield
    clear()


@pytest.fixture(scope="session")
def sample_result():
    """The pipeline run on the bundled synthetic sample (read-only: do not mutate)."""
    from datetime import date

    from geo.pipeline import run_pipeline

    return run_pipeline(as_of=date(2019, 6, 30))


# --- Under CI=true a skipped test fails the run -------------------------------------------
# Every test must run in CI: a skip there hides a missing install step or a broken import.
# Outside CI a missing tool (PostGIS, chromium, gdal-bin) skips with its reason; under CI=true
# the same skip fails the run, with no per-test flag. The only skips allowed under CI are
# listed in ONE place, tests/ci_skips.toml (node id prefix = "reason"), read below.
# Skips raised while collecting a module (module-level importorskip) count too.
CI_SKIPS_FILE = Path(__file__).resolve().parent / "ci_skips.toml"


def allowed_ci_skips() -> dict[str, str]:
    """Node-id prefixes whose skips are allowed under CI, each with its reason."""
    import tomllib

    if not CI_SKIPS_FILE.exists():
        return {}
    table = tomllib.loads(CI_SKIPS_FILE.read_text(encoding="utf-8")).get("allowed", {})
    empty = [k for k, v in table.items() if not str(v).strip()]
    if empty:
        raise pytest.UsageError(f"{CI_SKIPS_FILE.name}: allowed skips need a reason: {empty}")
    return {str(k): str(v) for k, v in table.items()}


ALLOWED_CI_SKIPS: dict[str, str] = allowed_ci_skips()


def _ci_enforced() -> bool:
    import os

    return os.environ.get("CI", "").lower() == "true"


_ci_skips: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _ci_skips.clear()


def _record_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (_ci_enforced() and report.skipped):
        return
    if any(report.nodeid.startswith(prefix) for prefix in ALLOWED_CI_SKIPS):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    _ci_skips.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect skipped (and xfailed) tests not listed in ``tests/ci_skips.toml``."""
    _record_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module skipped while collecting (module-level ``importorskip``) counts as a skip."""
    _record_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn a run with unlisted skips into a failure under CI (also when nothing else ran)."""
    if _ci_skips and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Name each skip that failed the CI run."""
    if _ci_skips:
        terminalreporter.section("skips are failures under CI=true (tests/conftest.py)")
        for line in _ci_skips:
            terminalreporter.write_line(line)
