"""Fixtures of the API tests: tiny enterprise frames and a store per provider.

The ``store`` fixture is parametrised over the embedded GeoPackage store and PostGIS. The
PostGIS parameter needs ``BASINWATCH_TEST_DATABASE_URL``; it is skipped when the server is
unreachable; under CI=true that skip fails the run (tests/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest

from api.store import Store, get_store
from api.testing import ADMIN_KEY, EDITOR_KEY, READER_KEY, make_enterprises

@pytest.fixture
def enterprises() -> gpd.GeoDataFrame:
    """Six enterprises across four industries, five verdicts and two basins."""
    return make_enterprises()


def _postgis_url() -> str:
    url = os.environ.get("BASINWATCH_TEST_DATABASE_URL", "")
    reason = ""
    if not url:
        reason = "BASINWATCH_TEST_DATABASE_URL is not set"
    else:
        import sqlalchemy

        try:
            eng = sqlalchemy.create_engine(url)
            with eng.connect() as conn:
                conn.exec_driver_sql("SELECT postgis_version()")
            eng.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
            reason = f"PostGIS at {url} is unreachable: {exc}"
    if reason:
        pytest.skip(reason)
    return url


def open_store(kind: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh, initialised store of the given kind; cleaned up after."""
    if kind == "gpkg":
        store = get_store(tmp_path / "store.gpkg")
        store.init()
        yield store
        store.close()
        return
    url = _postgis_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = get_store(url, schema=schema)
    store.init()
    try:
        yield store
    finally:
        store.close()
        import sqlalchemy

        eng = sqlalchemy.create_engine(url)
        with eng.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        eng.dispose()


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each provider."""
    yield from open_store(request.param, tmp_path)




def _test_client_class() -> type:
    import warnings

    with warnings.catch_warnings():
        # starlette deprecates its httpx-based TestClient in favour of httpx2 (not installed)
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient


@pytest.fixture
def make_client(store: Store, tmp_path: Path):  # noqa: ANN201
    """Factory: a TestClient on an app over ``store`` (keyword args go to Settings)."""
    from api.app import create_app
    from api.settings import Settings

    client_cls = _test_client_class()
    apps = []

    def make(*, run_pipeline=None, **settings):  # noqa: ANN001, ANN003, ANN202
        opts = {"data_dir": tmp_path, "api_keys": {EDITOR_KEY: "editor", READER_KEY: "viewer",
                                                    ADMIN_KEY: "admin"}}
        opts.update(settings)
        app = create_app(Settings(**opts), store=store, run_pipeline=run_pipeline)
        apps.append(app)
        return client_cls(app)

    yield make
    for app in apps:  # geometry worker processes started by requests
        app.state.geometry_workers.close()


@pytest.fixture
def loaded_client(make_client, store: Store, enterprises: gpd.GeoDataFrame):  # noqa: ANN001, ANN201
    """A TestClient over a store holding the six sample enterprises."""
    store.load_enterprises(enterprises, loaded_by="fixture", source_name="样例.csv",
                           source_sha256="f" * 64)
    return make_client()


@pytest.fixture
def make_app(store: Store, tmp_path: Path):  # noqa: ANN201
    """Factory: the app over ``store`` (keyword args go to Settings), for live servers."""
    from api.app import create_app
    from api.settings import Settings

    apps = []

    def make(*, run_pipeline=None, **settings):  # noqa: ANN001, ANN003, ANN202
        opts = {"data_dir": tmp_path, "api_keys": {EDITOR_KEY: "editor", READER_KEY: "viewer",
                                                    ADMIN_KEY: "admin"}}
        opts.update(settings)
        app = create_app(Settings(**opts), store=store, run_pipeline=run_pipeline)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.geometry_workers.close()
