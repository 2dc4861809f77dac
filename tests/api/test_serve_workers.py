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
