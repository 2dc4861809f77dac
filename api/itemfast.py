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

Plain feature PAGES are answered the same way (PostGIS only): ``GET
/collections/enterprises/items`` whose query parameters are each given once and are only
``limit`` and ``offset`` (plain ASCII digits, no leading zero; ``limit`` from 1 to
``BASINWATCH_MAX_LIMIT``), ``f=json``/``f=geojson`` (or no ``f`` and no HTML ``Accept``)
and properties of the collection (``verdict=shutdown``, comma lists, in any order). The
query is the route's (:func:`api.routers.collections.feature_query_from_request`, whose
400s raise and so take the route); the page comes from
:meth:`~api.store.postgis.PostGISStore.geojson_page_async` (the route's SQL texts, count
memo and features on the async pool; None, so the route, if a load committed between page
and count) and the body from :func:`api.routers.collections.page_body` (links, counts,
``timeStamp``) and :func:`api.ogc.render`. ``bbox``, ``crs``, ``properties``, ``filter``,
``sortby``, ``datetime``, any other or repeated parameter take the route
(tests/api/test_pagefast.py).

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

__all__ = ["LeanItems", "LEAN_STATS", "PREFIX", "PAGES", "ENABLED", "QUERIES"]

log = logging.getLogger(__name__)

#: Path prefix of the features the lean path may answer.
PREFIX = "/collections/enterprises/items/"

#: Path of the feature pages the lean path may answer (PostGIS).
PAGES = "/collections/enterprises/items"

#: Query parameters of a lean page besides the collection's properties.
_PAGE_PARAMS = frozenset({"limit", "offset", "f"})

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


def _json_accepted(request: Request) -> bool:
    """Without ``f``, whether the Accept header leaves JSON (:func:`api.ogc.pick_format`)."""
    accept = request.headers.get("accept", "")
    return not ("text/html" in accept and "json" not in accept)


def _reader(request: Request, settings: Any) -> bool:
    """Whether the caller may read (:func:`api.routers.deps.require_read`'s test); an
    unknown key raises (the route's 401)."""
    from api.auth import resolve_caller
    from api.settings import Role

    caller = resolve_caller(request, settings)
    if caller.role is None:
        return bool(settings.read_open)
    return caller.role.allows(Role.viewer)


def _count_param(text: str | None) -> int | None:
    """``limit``/``offset`` as the route reads it when it is plain ASCII digits (at most
    ten, no leading zero), else None (the route validates it)."""
    if (text is None or not text.isascii() or not text.isdigit() or len(text) > 10
            or (len(text) > 1 and text[0] == "0")):
        return None
    return int(text)


def _store_reader(scope: Scope, method: str) -> tuple[Any, Any, Any]:
    """The app's store, its settings and the store's async reader ``method`` (None where
    the app, the store or the reader is missing: the route answers then)."""
    state = getattr(scope.get("app"), "state", None)
    store = getattr(state, "store", None)
    return store, getattr(state, "settings", None), getattr(store, method, None)


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
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (ENABLED and path and scope["method"] == "GET" and not scope.get("root_path")
                and ((path.startswith(PREFIX) and scope.get("query_string", b"") in QUERIES)
                     or path == PAGES)):
            try:
                response = await (self._answer(scope) if path != PAGES
                                  else self._answer_page(scope))
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
    async def _answer_page(scope: Scope) -> Response | None:
        from api.ogc import CRS84, GEOJSON, render
        from api.routers.collections import (
            _page_size,
            _with_crs,
            feature_query_from_request,
            page_body,
        )
        from api.sources import ENTERPRISES, get_source

        store, settings, read = _store_reader(scope, "geojson_page_async")
        if read is None or settings is None:
            return None
        request = Request(scope)
        src = get_source(store, ENTERPRISES)
        params = request.query_params
        keys = [k for k, _ in params.multi_items()]
        if len(keys) != len(set(keys)):
            return None  # a repeated parameter: the route
        for key in keys:
            if key not in _PAGE_PARAMS and key not in src.properties:
                return None  # bbox, crs, properties, filter, sortby, unknown: the route
        f = params.get("f")
        if f is None:
            if not _json_accepted(request):
                return None
        elif f not in ("json", "geojson"):
            return None
        limit = _count_param(params.get("limit"))
        offset = _count_param(params.get("offset"))
        if ((limit is None and "limit" in params) or limit == 0
                or (offset is None and "offset" in params)):
            return None  # the route's 422
        if limit is not None and limit > settings.max_limit:
            return None  # the route's 400
        offset = offset or 0
        if offset > 10**9:
            return None
        if not _reader(request, settings):
            return None
        page = _page_size(settings, limit)
        q = feature_query_from_request(request, src, limit=page, offset=offset)  # a 400 raises
        cancel: Any = scope.get("state", {}).get("cancel")
        fp = await read(q, None, cancel=cancel)
        if fp is None:
            return None  # a filter or a load between page and count: the route
        body = page_body(request, src, fp.features, returned=fp.number_returned,
                         matched=fp.number_matched, offset=offset, page=page)
        return _with_crs(render(request, body, "json", title=src.title, media_type=GEOJSON),
                         CRS84)

    @staticmethod
    async def _answer(scope: Scope) -> Response | None:
        from api.ogc import CRS84, GEOJSON, json_response
        from api.routers.collections import _fid, _with_crs, item_links
        from api.sources import ENTERPRISES

        feature_id = _feature_id(scope["path"])
        fid = _fid(feature_id) if feature_id is not None else None
        if feature_id is None or fid is None:
            return None
        _, settings, read = _store_reader(scope, "geojson_feature_async")
        if read is None or settings is None:
            return None
        request = Request(scope)
        if not scope.get("query_string") and not _json_accepted(request):
            return None
        if not _reader(request, settings):
            return None
        cancel: Any = scope.get("state", {}).get("cancel")
        feat = await read(fid, None, cancel=cancel)
        if feat is None:
            return None  # the route's 404
        feat["links"] = item_links(request, ENTERPRISES, feature_id)
        return _with_crs(json_response(feat, media_type=GEOJSON), CRS84)
