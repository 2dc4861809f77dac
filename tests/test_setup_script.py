"""``scripts/test.sh`` stops at a failing set-up step, with that step's message.

The README's test command once hid a missing PostGIS extension: ``eval "$(start_postgis.sh)"``
swallowed the exit status and the real cause surfaced only as dozens of indirect test errors.
These tests run the script's set-up steps for real (``BASINWATCH_SETUP_ONLY=1``, apt
disabled) with one capability broken, and check that the script exits non-zero, names the
broken step, and never reaches the tests.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pgdata() -> Path:
    """A cluster directory the ``postgres`` user can reach (pytest's tmp dirs are 0700)."""
    return Path("/tmp") / f"bw-setup-test-{uuid.uuid4().hex[:8]}"


def _run_setup(tmp_path: Path, pgdata: Path, *, fake: dict[str, str] | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/test.sh`` set-up only, with ``fake`` commands first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in (fake or {}).items():
        exe = bindir / name
        exe.write_text("#!/bin/sh\n" + body + "\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    run_env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BASINWATCH_", "PG"))}
    run_env.update({"PATH": f"{bindir}:{os.environ['PATH']}", "BASINWATCH_SETUP_ONLY": "1",
                    "BASINWATCH_NO_APT": "1", "PGDATA_DIR": str(pgdata),
                    "PGPORT": str(_free_port())})
    run_env.update(env or {})
    return subprocess.run(["bash", str(ROOT / "scripts" / "test.sh")], env=run_env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_broken_browser_stops_before_anything_else(tmp_path: Path, pgdata: Path) -> None:
    proc = _run_setup(tmp_path, pgdata, fake={"chromium": "exit 1"})
    assert proc.returncode != 0
    assert "chromium installed but cannot render a page headless" in proc.stderr
    assert "== python environment" not in proc.stdout
    assert "set-up complete" not in proc.stdout


def test_broken_load_generator_is_named(tmp_path: Path, pgdata: Path) -> None:
    proc = _run_setup(tmp_path, pgdata, fake={"wrk": "echo 'usage: wrk'; exit 1"})
    assert proc.returncode != 0
    assert "wrk installed but 'wrk --version' prints no version" in proc.stderr


def test_postgis_that_cannot_start_stops_the_script(tmp_path: Path, pgdata: Path) -> None:
    # the cluster's port is taken: start_postgis.sh fails, and test.sh must say so and stop
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run_setup(tmp_path, pgdata, env={"PGPORT": str(port)})
    assert proc.returncode != 0
    assert "could not start PostGIS" in proc.stderr
    assert "set-up complete" not in proc.stdout
    assert not pgdata.exists()  # the half-started cluster was removed


def test_setup_passes_when_everything_works(tmp_path: Path, pgdata: Path) -> None:
    # the control case: the same run with nothing broken reaches the end of set-up
    proc = _run_setup(tmp_path, pgdata)
    assert proc.returncode == 0, proc.stderr
    assert "set-up complete" in proc.stdout
    assert not pgdata.exists()  # and stopped its cluster on exit


def test_missing_chinese_font_stops_the_setup(tmp_path: Path, pgdata: Path) -> None:
    proc = _run_setup(tmp_path, pgdata, fake={"fc-list": "exit 0"})
    assert proc.returncode != 0
    assert "fonts-noto-cjk" in proc.stderr  # named as missing (apt off) or as not working
    assert "== python environment" not in proc.stdout
