"""The lean item route: ``GET /collections/enterprises/items/{fid}`` on the event loop.

At ~500 requests/s most of an ``items/{id}`` request is FastAPI's machinery, not the read: route matching over every route of the app, dependency resolution
(pinned store view, settings, caller), pydantic validation of the path and query, the
thread-pool hop of the ``def`` handler and, on PostGIS, SQLAlchemy's pool around one
primary-key statement. :class:`LeanItems` is a plain ASGI middleware, innermost of the app's middleware
beside :class:`api.tilefast.LeanTiles` (inside the limits, CORS, security-header,
access-log and gzip middleware, so those apply to it exactly as to the route), that answers
the request itself when, and only when, it is exactly the plain case:

- the path is ``/collections/enterprises/items/<digits>`` naming a possible fid (the
  route's own test, ``api.routers.collections._fid``), with no ``root_path``;
- the query string is empty, ``f=json`` or ``f=geojson``; without ``f``, the ``Accept``
  header does not ask for HTML (the route's :func:`api.ogc.pick_format`). ``crs``,
  ``properties``, ``f=html``/``csv``, any other or repeated parameter take the route;
- the caller is admitted to read (the same :func:`api.auth.resolve_caller` and test as
  :func:`api.routers.deps.require_read`; an unknown key raises and a refused caller goes to
  the route, which answers the 401/403);
- the store answers ``geojson_feature_async`` and the feature exists. PostGIS
  (:meth:`~api.store.postgis.PostGISStore.geojson_feature_async`): the route's statement,
  sent through an autocommit psycopg ``AsyncConnection`` with the same ``statement_timeout``
  and search path, cancelled when the client goes away. The embedded store
  (:meth:`~api.store.gpkg.GeoPackageStore.geojson_feature_async`): the route's feature from
  the version in memory, only while the file's stamp still matches it and its fid index and
  JSON columns are built (else the route reads it in its thread).

Anything else, an unknown fid (the route's 404) and any exception pass the request on to
the app unchanged. The answer is built by the route's own code (the feature from the same
row function, :func:`api.routers.collections.item_links`, :func:`api.ogc.json_response`,
``Content-Crs``): the same status, body bytes and headers (tests/api/test_itemfast.py
compares them through gzip).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LeanItems", "LEAN_STATS", "PREFIX", "ENABLED", "QUERIES"]

log = logging.getLogger(__name__)

#: Path prefix of the features the lean path may answer.
PREFIX = "/collections/enterprises/items/"

#: Off: every item request takes the FastAPI route (tests, benchmarks compare).
ENABLED = True

#: The query strings answered here (GeoJSON in CRS84, every property); others: the route.
QUERIES = (b"", b"f=json", b"f=geojson")

#: Requests answered by the lean path and passed on to the app (tests, benchmarks).
LEAN_STATS = {"served": 0, "passed": 0}


def _feature_id(path: str) -> str | None:
    """The ``{featureId}`` of an enterprise item path when it is ASCII digits, else None."""
    if not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX):]
    if not rest or not rest.isascii() or not rest.isdigit():
        return None
    return rest


class LeanItems:
    """ASGI middleware answering plain enterprise ``items/{fid}`` requests without the
    FastAPI route (see the module documentation); everything else goes to ``app``.

    Parameters
    ----------
    app
        The application (the rest of the middleware stack and the router).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (ENABLED and scope["type"] == "http" and scope["method"] == "GET"
                and not scope.get("root_path")
                and scope["path"].startswith(PREFIX)
                and scope.get("query_string", b"") in QUERIES):
            try:
                response = await self._answer(scope)
            except Exception:  # noqa: BLE001 - the route answers (or refuses) it instead
                log.debug("lean item path passed %s on", scope["path"], exc_info=True)
                response = None
            if response is not None:
                LEAN_STATS["served"] += 1
                await response(scope, receive, send)
                return
            LEAN_STATS["passed"] += 1
        await self.app(scope, receive, send)

    @staticmethod
    async def _answer(scope: Scope) -> Response | None:
        from api.auth import resolve_caller
        from api.ogc import CRS84, GEOJSON, json_response
        from api.routers.collections import _fid, _with_crs, item_links
        from api.settings import Role
        from api.sources import ENTERPRISES

        feature_id = _feature_id(scope["path"])
        fid = _fid(feature_id) if feature_id is not None else None
        if feature_id is None or fid is None:
            return None
        app = scope.get("app")
        state = getattr(app, "state", None)
        store = getattr(state, "store", None)
        settings = getattr(state, "settings", None)
        read = getattr(store, "geojson_feature_async", None)
        if read is None or settings is None:
            return None
        request = Request(scope)
        if not scope.get("query_string"):  # no f: the Accept header picks (pick_format)
            accept = request.headers.get("accept", "")
            if "text/html" in accept and "json" not in accept:
                return None
        caller = resolve_caller(request, settings)  # an unknown key raises: the route's 401
        if caller.role is None:
            if not settings.read_open:
                return None
        elif not caller.role.allows(Role.viewer):
            return None
        cancel: Any = scope.get("state", {}).get("cancel")
        feat = await read(fid, None, cancel=cancel)
        if feat is None:
            return None  # the route's 404
        feat["links"] = item_links(request, ENTERPRISES, feature_id)
        return _with_crs(json_response(feat, media_type=GEOJSON), CRS84)
