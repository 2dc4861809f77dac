"""FastAPI application factory.

``create_app(settings)`` opens the store the settings name, initialises it, mounts one
router per resource and maps every :class:`geo.errors.GeoError` (and request validation
errors) to an OGC-style JSON body ``{"code": ..., "description": ...}`` in one place.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.settings import Settings
from api.store import FeatureQuery, Store, get_store
from geo.errors import GeoError

__all__ = ["create_app", "error_body", "warm_up"]

log = logging.getLogger(__name__)

_OGC_CODES = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidInput",
    500: "ServerError",
    503: "ServiceUnavailable",
}


def error_body(status: int, description: str, code: str | None = None) -> dict[str, str]:
    """The OGC exception document."""
    return {"code": code or _OGC_CODES.get(status, "Error"), "description": description}


def _geo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GeoError)
    status = int(getattr(exc, "http_status", 500))
    if status >= 500:
        log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc.msg)
    headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else None
    return JSONResponse(error_body(status, exc.msg, type(exc).__name__), status_code=status,
                        headers=headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid value')}")
    return JSONResponse(error_body(400, "; ".join(parts) or "Invalid request."), status_code=400)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(error_body(exc.status_code, str(exc.detail)),
                        status_code=exc.status_code, headers=exc.headers)


def _serve_openapi_30(app: FastAPI) -> None:
    """Make ``/openapi.json`` a valid OpenAPI 3.0.3 document (OGC API Features Part 1)."""
    from api.ogc import to_openapi_30

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = to_openapi_30(generate())
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
    from api.routers import cases, collections, exports, landing, layers, monitoring, registry
    from api.routers import spatial, webmap

    settings = settings or Settings()
    from api.settings import layers_root
    from layers.versions import set_root

    set_root(layers_root(settings))  # imported layer versions live beside the store's data
    if store is None:
        store = get_store(settings.database_url, data_dir=settings.data_dir)
    store.init()
    ready = store

    @contextlib.asynccontextmanager
    async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(warm_up, ready)  # the event loop stays responsive
        yield
    app = FastAPI(
        title=settings.title,
        version="0.1.0",
        description="OGC API – Features (Part 1 core, GeoJSON, HTML, OpenAPI 3.0; Part 3 "
                    "CQL2 text filter) over the enterprise list and reference layers, plus "
                    "spatial queries, exports and registry upload.",
        openapi_tags=[{"name": t} for t in
                      ("landing", "collections", "spatial", "exports", "registry", "cases",
                       "lists", "calendar", "monitoring", "layers")],
        lifespan=_lifespan,
    )
    app.openapi_version = "3.0.3"
    _serve_openapi_30(app)
    app.state.settings = settings
    app.state.store = store
    app.state.run_pipeline = run_pipeline
    app.add_exception_handler(GeoError, _geo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    webmap.install(app)  # first: "/" serves the map to browsers, the landing page otherwise
    for module in (landing, collections, spatial, exports, registry, cases, monitoring, layers):
        app.include_router(module.router)
    log.info("BasinWatch API on %s store", store.provider)
    return app
