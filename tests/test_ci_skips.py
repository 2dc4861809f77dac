"""Under CI=true a skip fails the run (the hook in tests/conftest.py), except allowed ones.

The hook is tested on throwaway test files with pytester, running the repository's own
``tests/conftest.py`` and a ``ci_skips.toml`` allow list beside it; the last test shows the
real case: PostGIS unreachable is a skip locally and a failure under CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFTEST = (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
MODULE = """
import pytest

def test_runs():
    pass

def test_skipped():
    pytest.skip("tool X is not installed")

def test_allowed():
    pytest.skip("needs hardware CI has not")
"""
ALLOW = '[allowed]\n"test_mod.py::test_allowed" = "needs hardware CI has not"\n'


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".toml", ci_skips=ALLOW)
    return pytester


def test_skip_passes_outside_ci(project: pytest.Pytester,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    project.makepyfile(test_mod=MODULE)
    res = project.runpytest("-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, skipped=2)
    assert res.ret == 0


def test_unlisted_skip_fails_under_ci_listed_one_does_not(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    project.makepyfile(test_mod=MODULE)
    res = project.runpytest("-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, skipped=2)
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    res.stdout.fnmatch_lines(["*skips are failures under CI=true*",
                              "test_mod.py::test_skipped: *tool X is not installed*"])
    assert "test_mod.py::test_allowed" not in res.stdout.str()


def test_only_allowed_skips_pass_under_ci(project: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    project.makepyfile(test_mod=MODULE)
    res = project.runpytest("-p", "no:cacheprovider", "-k", "not test_skipped")
    res.assert_outcomes(passed=1, skipped=1, deselected=1)
    assert res.ret == 0


def test_module_level_importorskip_fails_under_ci(project: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a skip raised while collecting is no test report: the hook must see it too
    monkeypatch.setenv("CI", "true")
    project.makepyfile(test_mod=MODULE,
                       test_dep="import pytest\npytest.importorskip('no_such_module_bw')\n"
                                "def test_x():\n    pass\n")
    res = project.runpytest("-p", "no:cacheprovider", "test_dep.py")
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    res.stdout.fnmatch_lines(["test_dep.py: *no_such_module_bw*"])


def test_allowed_skip_needs_a_reason(project: pytest.Pytester,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    project.makefile(".toml", ci_skips='[allowed]\n"test_mod.py::test_allowed" = " "\n')
    project.makepyfile(test_mod=MODULE)
    res = project.runpytest("-p", "no:cacheprovider")
    assert res.ret != 0
    assert "allowed skips need a reason" in res.stderr.str() + res.stdout.str()


def _unreachable_postgis(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(BASINWATCH_TEST_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:9/none",
               **extra)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/api/test_store.py::test_empty_store"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_unreachable_postgis_skips_locally_and_fails_under_ci() -> None:
    local = _unreachable_postgis()
    assert local.returncode == 0, local.stdout
    assert "1 passed, 1 skipped" in local.stdout
    ci = _unreachable_postgis(CI="true")
    assert ci.returncode == 1, ci.stdout
    assert "skips are failures under CI=true" in ci.stdout
    assert "test_empty_store[postgis]" in ci.stdout and "unreachable" in ci.stdout
