"""Storage providers behind one interface: embedded GeoPackage (default) and PostGIS.

``get_store(url)`` picks the provider from the URL: ``postgresql+psycopg://...`` (or
``postgresql://``, ``postgis://``) selects PostGIS; a path, ``gpkg:`` / ``file:`` URL or
None selects the embedded GeoPackage store.
"""

from __future__ import annotations

import logging
from pathlib import Path

from api.store.base import FeatureQuery, LoadRecord, QueryResult, Store, prepare_enterprises

__all__ = [
    "Store",
    "FeatureQuery",
    "QueryResult",
    "LoadRecord",
    "prepare_enterprises",
    "get_store",
    "DEFAULT_GPKG_NAME",
]

log = logging.getLogger(__name__)

DEFAULT_GPKG_NAME = "basinwatch.gpkg"


def get_store(url: str | Path | None = None, *, data_dir: str | Path | None = None,
              schema: str | None = None) -> Store:
    """Open the store a URL names (not yet initialised: call ``.init()``).

    Parameters
    ----------
    url
        ``postgresql+psycopg://user@host:port/db`` for PostGIS; a ``.gpkg`` path or
        ``gpkg:///path`` for the embedded store; None for ``data_dir/basinwatch.gpkg``.
    data_dir
        Directory of the default embedded store (default ``./basinwatch-data``).
    schema
        PostGIS only: schema to work in.
    """
    text = "" if url is None else str(url)
    if text.startswith(("postgresql", "postgis://", "postgres://")):
        from api.store.postgis import PostGISStore

        if text.startswith(("postgresql://", "postgres://", "postgis://")):
            text = "postgresql+psycopg://" + text.split("://", 1)[1]
        return PostGISStore(text, schema=schema)
    from api.store.gpkg import GeoPackageStore

    if not text:
        return GeoPackageStore(Path(data_dir or "basinwatch-data") / DEFAULT_GPKG_NAME)
    for prefix in ("gpkg://", "file://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return GeoPackageStore(Path(text))
