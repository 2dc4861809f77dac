"""The lean tile route: cached enterprise tiles answered before FastAPI's machinery.

A map view asks for 6-12 tiles at once, and a tile already in :data:`api.tiles.TILES`
costs its handler 0.3 ms, yet FastAPI's route matching over every route of the app,
dependency resolution (store view, caller), pydantic validation of the path and query and
the thread-pool hop of the ``def`` handler cost several times that per request, and under
load the hop waits for a free core. :class:`LeanTiles` is a plain ASGI middleware,
innermost of the app's middleware (inside the limits, CORS, security-header, access-log and
gzip middleware, so those apply to it exactly as to the route), that answers
``GET /collections/enterprises/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}`` on
the event loop when, and only when, everything the answer depends on is already known:

- the caller is admitted to read (the same :func:`api.auth.resolve_caller`; a refused or
  unknown caller goes to the route, which answers the 401/403 and audits it);
- the store's data version is known without I/O (:meth:`api.store.base.Store.
  data_version_nowait`: the embedded store's file stamp matches its cached read; PostGIS
  reads its version with a statement, so its tiles always take the route);
- the request's query string was served before by the route for this store version
  (:func:`remember_query`): its filters were parsed and validated there, and the lean path
  re-uses the route's cache key part. A new filter, a bad parameter, ``bbox``, ``within``
  etc. therefore always take the route, which answers or refuses it;
- the tile is in the cache (and its gzip encoding too, when the client accepts gzip).

Anything else, and any exception, passes the request on to the app unchanged. The answer
is the route's own: same status (200 or 304 on ``If-None-Match``), body, ``ETag``,
``Cache-Control``, ``Vary``, ``Content-Encoding`` and media type; ``Server-Timing`` says
``desc="cache, lean"``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LeanTiles", "remember_query", "LEAN_STATS", "PREFIX", "ENABLED"]

log = logging.getLogger(__name__)

#: Path prefix of the tiles the lean path may answer (the tile matrix set is part of it).
PREFIX = "/collections/enterprises/tiles/WebMercatorQuad/"

#: Off: every tile request takes the FastAPI route (``map_bench.py --no-lean`` compares).
ENABLED = True

#: Requests answered by the lean path and passed on to the app (tests, benchmarks).
LEAN_STATS = {"served": 0, "passed": 0}

_MEMO_MAX = 512
#: (store id, data version, verdict names, raw query string) -> (filter key, px): the
#: query strings the route has parsed, validated and answered with a 200.
_QUERIES: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
_QUERIES_LOCK = threading.Lock()


def remember_query(key: tuple[Any, ...], query_string: str) -> None:
    """Note that the route answered a tile of cache ``key`` (:func:`api.tiles.tile_key`)
    for ``query_string``: the lean path may answer other tiles of the same store version and
    query string from the cache."""
    _fmt, sid, version, verdicts, fkey, _z, _x, _y, px = key
    memo = (sid, version, verdicts, query_string)
    with _QUERIES_LOCK:
        _QUERIES[memo] = (fkey, px)
        _QUERIES.move_to_end(memo)
        while len(_QUERIES) > _MEMO_MAX:
            _QUERIES.popitem(last=False)


def _known_query(memo: tuple[Any, ...]) -> tuple[Any, int] | None:
    with _QUERIES_LOCK:
        return _QUERIES.get(memo)


def _tile_path(path: str) -> tuple[int, int, int] | None:
    """(tileMatrix, tileRow, tileCol) of a tile path, or None."""
    if not path.startswith(PREFIX):
        return None
    parts = path[len(PREFIX):].split("/")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


class LeanTiles:
    """ASGI middleware answering cached enterprise tiles without the FastAPI route (see the
    module documentation); everything else goes to ``app``.

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
                and scope["path"].startswith(PREFIX)):
            t0 = time.perf_counter()
            try:
                response = self._answer(scope, t0)
            except Exception:  # noqa: BLE001 - the route answers (or refuses) it instead
                log.debug("lean tile path passed %s on", scope["path"], exc_info=True)
                response = None
            if response is not None:
                LEAN_STATS["served"] += 1
                await response(scope, receive, send)
                return
            LEAN_STATS["passed"] += 1
        await self.app(scope, receive, send)

    @staticmethod
    def _answer(scope: Scope, t0: float) -> Response | None:
        from api.auth import resolve_caller
        from api.routers.tiles import MVT, _timing, _verdicts, tile_headers
        from api.tilecache import GZIP_MIN_BYTES
        from api.tiles import MAX_ZOOM, TILE_FORMAT, TILES, _check_tile, _store_id

        zyx = _tile_path(scope["path"])
        if zyx is None:
            return None
        z, row, col = zyx
        if z > MAX_ZOOM:
            return None
        app = scope.get("app")
        state = getattr(app, "state", None)
        store = getattr(state, "store", None)
        settings = getattr(state, "settings", None)
        if store is None or settings is None:
            return None
        request = Request(scope)
        caller = resolve_caller(request, settings)  # an unknown key raises: the route's 401
        if caller.role is None and not settings.read_open:
            return None
        version = store.data_version_nowait()
        if version is None:
            return None
        sid = _store_id(store)
        verdicts = tuple(v for v, _l, _c in _verdicts())
        qs = scope.get("query_string", b"").decode("latin-1")
        known = _known_query((sid, version, verdicts, qs))
        if known is None:
            return None
        fkey, px = known
        _check_tile(z, col, row)
        key = (TILE_FORMAT, sid, version, verdicts, fkey, z, col, row, px)
        headers, not_modified = tile_headers(request, key, t0)
        if not_modified is not None:
            return not_modified
        hit = TILES.peek(key)
        if hit is None:
            return None
        body = hit.body
        if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
            if hit.gz is None:  # compressed once, by the route (in its thread)
                return None
            body = hit.gz
            headers["Content-Encoding"] = "gzip"
        TILES.touch(key)
        headers["Server-Timing"] = _timing(t0, "cache, lean")
        return Response(body, media_type=MVT, headers=headers)
