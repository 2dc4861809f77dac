"""``basinwatch serve --workers N``: uvicorn gets an importable app factory that builds the
app from the environment in each worker process (issue 15)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    import uvicorn

    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.setenv("BASINWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BASINWATCH_DATABASE_URL", str(tmp_path / "store.gpkg"))
    monkeypatch.delenv("BASINWATCH_ACCESS_LOG", raising=False)
    return calls


def test_workers_get_an_importable_factory(captured: list, tmp_path: Path) -> None:
    res = runner.invoke(app, ["serve", "--workers", "2", "--no-sample-if-empty"])
    assert res.exit_code == 0, res.output
    target, kw = captured[0]
    assert kw["workers"] == 2 and kw["factory"] is True
    module, _, name = target.partition(":")
    factory = getattr(importlib.import_module(module), name)
    built = factory()  # what each worker process runs: settings from BASINWATCH_*
    assert built.state.store.path == tmp_path / "store.gpkg"
    assert "/collections/{collectionId}/items" in built.openapi()["paths"]


def test_one_worker_serves_in_process(captured: list) -> None:
    res = runner.invoke(app, ["serve", "--no-sample-if-empty"])
    assert res.exit_code == 0, res.output
    target, kw = captured[0]
    assert not isinstance(target, str) and "workers" not in kw


def test_workers_must_be_positive(captured: list) -> None:
    res = runner.invoke(app, ["serve", "--workers", "0"])
    assert res.exit_code == 2 and not captured


@pytest.mark.slow
def test_export_job_is_answered_by_every_worker(tmp_path: Path) -> None:
    """A real ``serve --workers 2``: the job's polls and its download reach either worker
    (each request on a new connection), and every one is answered. With the job state in
    one worker's memory, about half of them were 404."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from api.store import get_store
    from api.testing import make_enterprises

    store = get_store(tmp_path / "store.gpkg")
    store.init()
    store.load_enterprises(make_enterprises(), loaded_by="test", source_name="t.csv",
                           source_sha256="0" * 64)
    store.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASINWATCH_")}
    env.update({"BASINWATCH_DATA_DIR": str(tmp_path / "data"),
                "BASINWATCH_DATABASE_URL": str(tmp_path / "store.gpkg"),
                "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0"})
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("basinwatch")), "serve", "--port", str(port),
             "--workers", "2", "--no-sample-if-empty"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:  # both workers up: the parent prints nothing per worker, so poll
            assert server.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "server did not answer within 300 s"
            try:
                if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        job = httpx.post(f"{base}/exports/jobs", params={"format": "xlsx"}, timeout=30)
        assert job.status_code == 202, job.text
        jid = job.json()["id"]
        states = []
        for _ in range(40):
            with httpx.Client() as fresh:  # a new connection: any worker may take it
                r = fresh.get(f"{base}/exports/jobs/{jid}", timeout=30)
            assert r.status_code == 200, r.text
            states.append(r.json()["state"])
        assert states[-1] == "done" or "done" in states
        with httpx.Client() as fresh:
            body = fresh.get(f"{base}/exports/jobs/{jid}/file", timeout=30)
        assert body.status_code == 200 and body.content[:2] == b"PK"  # a zip: the workbook
        assert "attachment" in body.headers["content-disposition"]
    finally:
        server.terminate()
        server.wait(timeout=30)
