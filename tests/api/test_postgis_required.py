"""BASINWATCH_REQUIRE_POSTGIS=1 turns an unreachable PostGIS into a failure, not a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_required_postgis_fails_instead_of_skipping() -> None:
    env = {**os.environ, "BASINWATCH_REQUIRE_POSTGIS": "1",
           "BASINWATCH_TEST_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/api/test_store.py::test_empty_store"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0, res.stdout
    assert "1 passed, 1 error" in res.stdout  # a fixture failure is reported as an error
    assert "BASINWATCH_REQUIRE_POSTGIS=1" in res.stdout


def _without_postgis(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BASINWATCH_REQUIRE_POSTGIS", "BASINWATCH_TEST_DATABASE_URL", "CI")}
    env.update(extra)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/api/test_store.py::test_empty_store"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_missing_postgis_skips_by_default() -> None:
    res = _without_postgis()
    assert res.returncode == 0, res.stdout
    assert "1 passed, 1 skipped" in res.stdout


def test_any_skip_fails_the_run_under_ci() -> None:
    # the conftest hook, not a per-test flag: the same skip is a failure when CI=true
    res = _without_postgis(CI="true")
    assert res.returncode != 0, res.stdout
    assert "1 passed, 1 skipped" in res.stdout
    assert "skips are failures under CI=true" in res.stdout
    assert "test_empty_store[postgis]" in res.stdout
