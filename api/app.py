"""FastAPI application factory.

``create_app(settings)`` opens the store the settings name, initialises it, mounts one
router per resource, wraps the app in the service's guards (limits, CORS, security headers)
and maps every error to an OGC exception document ``{"code", "description"}`` in one place:
:class:`geo.errors.GeoError` subclasses, request validation errors (always 400, never 422),
HTTP errors, and anything unexpected (a JSON 500 that names no internals).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import Settings
from api.store import FeatureQuery, Store, get_store
from geo.errors import GeoError

__all__ = ["create_app", "app_from_env", "enable_access_log", "error_body", "warm_up",
           "OGC_CODES", "NO_GZIP"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("basinwatch.access")

#: Answers never gzipped: already compressed (zip containers: xlsx, zipped shapefiles;
#: images) or streamed as events. Answers with a Content-Encoding are passed
#: through as they are.
NO_GZIP = (*DEFAULT_EXCLUDED_CONTENT_TYPES,
           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

#: Paths never gzipped: export downloads are large files streamed as they are written;
#: compressing hundreds of MB on the worker would cost more time than it saves on a LAN.
NO_GZIP_PATHS = ("/exports/",)


class _GZip(GZipMiddleware):
    """Starlette's gzip (level 6) except for :data:`NO_GZIP_PATHS`."""

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http" and scope["path"].startswith(NO_GZIP_PATHS):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


#: Stable exception codes by HTTP status (limits use ``LimitExceeded``).
OGC_CODES = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "PayloadTooLarge",
    414: "URITooLong",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "ServerError",
    503: "ServiceUnavailable",
}


def error_body(status: int, description: str, code: str | None = None) -> dict[str, str]:
    """The OGC exception document."""
    return {"code": code or OGC_CODES.get(status, "Error"), "description": description}


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and "json" not in accept


def _geo_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GeoError)
    status = int(getattr(exc, "http_status", 500))
    if status == 422:  # bad input is a 400, whatever the engine's own status says
        status = 400
    if status >= 500:
        log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc.msg)
    headers: dict[str, str] = {}
    if status == 401:
        if _wants_html(request):  # a browser without a session: to the login page
            from urllib.parse import quote

            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{request.scope.get('root_path', '')}/session/login"
                                    f"?next={quote(target, safe='')}", status_code=303)
        headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
    retry = getattr(exc, "retry_after", None)
    if retry:
        headers["Retry-After"] = str(retry)
    code = getattr(exc, "ogc_code", None)
    return JSONResponse(error_body(status, exc.msg, code), status_code=status,
                        headers=headers or None)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            why = (err.get("ctx") or {}).get("error", "")
            parts.append(f"body: not valid JSON ({why}).")
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid value')}")
    return JSONResponse(error_body(400, "; ".join(parts) or "Invalid request."), status_code=400)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = 400 if exc.status_code == 422 else exc.status_code
    detail = str(exc.detail)
    headers = dict(exc.headers or {})
    if status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
        headers["Allow"] = ", ".join(_allowed_methods(request))
    elif status == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}; see /openapi.json."
    return JSONResponse(error_body(status, detail), status_code=status, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (Starlette names only the first)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


def _server_error(request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.exception("unexpected %s on %s %s (ref %s)", type(exc).__name__, request.method,
                  request.url.path, ref)
    return JSONResponse(error_body(500, f"Internal error (reference {ref}); the server log "
                                        "has the details."), status_code=500)


class _AccessLog:
    """One INFO line per request: method, path with query, status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [0]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            qs = scope.get("query_string", b"").decode("latin-1")
            access_log.info("%s %s%s %d %.1f ms", scope["method"], scope["path"],
                            f"?{qs}" if qs else "", status[0],
                            (time.perf_counter() - t0) * 1000)


def _serve_openapi_30(app: FastAPI, settings: Settings) -> None:
    """Make ``/openapi.json`` a valid OpenAPI 3.0.3 document (OGC API Features Part 1)
    that declares every status, limit and per-collection parameter."""
    from api.ogc import complete_openapi, to_openapi_30

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_openapi(to_openapi_30(generate()), app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def warm_up(store: Store) -> None:
    """Load the store's list and indexes and the point-lookup indexes before serving.

    Nothing a request needs is then read lazily: a worker is not busy for seconds on its
    first request (at 1M enterprises the embedded store reads for several seconds). A
    failure is logged and the app still starts (requests then load lazily).
    """
    from geo.pipeline import locate

    try:
        store.warm()
        first = store.query(FeatureQuery(limit=1)).features
        if len(first):
            pt = first.geometry.iloc[0]
            locate(float(pt.x), float(pt.y))  # builds the cached cell indexes and catalogs
    except (GeoError, OSError, ValueError, RuntimeError) as exc:
        log.warning("warm-up failed, serving anyway: %s", exc)


def enable_access_log() -> None:
    """One line per request on standard error (``basinwatch serve --access-log``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False  # one line per request, not one more from the root logger


def app_from_env() -> FastAPI:
    """The app of one ``basinwatch serve --workers N`` process: settings from the
    ``BASINWATCH_*`` environment (and ``.env``), its own store connection and geometry
    workers; ``BASINWATCH_ACCESS_LOG=1`` logs every request."""
    import os

    if os.environ.get("BASINWATCH_ACCESS_LOG") == "1":
        enable_access_log()
    return create_app(Settings())


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    run_pipeline: Callable[..., Any] | None = None,
) -> FastAPI:
    """Build the BasinWatch API.

    Parameters
    ----------
    settings
        Configuration; default read from ``BASINWATCH_*`` environment variables.
    store
        Use this store instead of the one ``settings.database_url`` names.
    run_pipeline
        Replacement for :func:`geo.pipeline.run_pipeline` (tests).
    """
    from api.limits import LimitsMiddleware
    from api.routers import (
        admin,
        cases,
        collections,
        docs,
        exports,
        landing,
        layers,
        monitoring,
        registry,
        session,
        spatial,
        webmap,
    )
    from api.security import ClosedCORSMiddleware, SecurityHeadersMiddleware
    from api.workers import GeometryWorkers

    settings = settings or Settings()
    from api.settings import layers_root
    from layers.versions import set_root

    set_root(layers_root(settings))  # imported layer versions live beside the store's data
    if store is None:
        store = get_store(settings.database_url, data_dir=settings.data_dir)
    store.init()
    store.configure(query_timeout_s=settings.query_timeout_s)
    ready = store
    workers = GeometryWorkers(settings.geometry_workers, settings.geometry_timeout_s,
                              settings.geometry_memory_mb)

    @contextlib.asynccontextmanager
    async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(workers.start)
        await anyio.to_thread.run_sync(warm_up, ready)  # the event loop stays responsive
        # the map's first tiles, cut in the background (after each new load too: the route)
        from api.routers.tiles import _verdicts
        from api.tiles import warm_tiles_soon

        app.state.warm_tiles = True
        warm_tiles_soon(ready, [v for v, _l, _c in _verdicts()])
        try:
            yield
        finally:
            workers.close()

    app = FastAPI(
        title=settings.title,
        version="0.1.0",
        description="OGC API – Features (Part 1 core, GeoJSON, HTML, OpenAPI 3.0; Part 2 "
                    "CRS by reference; Part 3 CQL2 text filter and queryables) over the "
                    "enterprise list and reference layers, plus spatial queries, exports and "
                    "registry upload. Errors are OGC exception documents "
                    "{\"code\", \"description\"}; limits are named in them.",
        openapi_tags=[{"name": t} for t in
                      ("landing", "collections", "spatial", "exports", "registry", "cases",
                       "lists", "calendar", "monitoring", "layers", "session", "admin")],
        lifespan=_lifespan,
        docs_url=None,  # api.routers.docs serves vendored Swagger UI
        redoc_url=None,
        openapi_url=None,  # api.routers.docs serves it with the OpenAPI 3.0 media type
    )
    app.openapi_version = "3.0.3"
    _serve_openapi_30(app, settings)
    app.state.settings = settings
    app.state.store = store
    app.state.run_pipeline = run_pipeline
    app.state.geometry_workers = workers
    app.add_exception_handler(GeoError, _geo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
    webmap.install(app)  # first: "/" serves the map to browsers, the landing page otherwise
    for module in (landing, collections, spatial, exports, registry, cases, monitoring, layers,
                   session,
                   admin, docs):
        app.include_router(module.router)
    docs.install(app)
    # middleware: the last added is the outermost. Innermost: cached enterprise tiles and
    # plain enterprise items/{fid} (PostGIS) answered on the event loop, under every guard
    # below (api.tilefast, api.itemfast)
    from api.itemfast import LeanItems
    from api.tilefast import LeanTiles

    app.add_middleware(LeanTiles)
    app.add_middleware(LeanItems)
    if settings.gzip_min_bytes > 0:
        app.add_middleware(_GZip, minimum_size=settings.gzip_min_bytes, compresslevel=6,
                           exclude_content_types=NO_GZIP)
    app.add_middleware(LimitsMiddleware, settings=settings)
    app.add_middleware(
        ClosedCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["X-API-Key", "Authorization", "Content-Type", "X-CSRF-Token"],
        expose_headers=["Content-Crs", "Content-Disposition", "Retry-After"],
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware, csp=settings.content_security_policy,
                       hsts=bool(settings.base_url and settings.base_url.startswith("https")))
    app.add_middleware(_AccessLog)
    log.info("BasinWatch API on %s store", store.provider)
    return app
