"""Interactive API documentation from vendored Swagger UI (works offline; no CDN)."""

from __future__ import annotations

import html
from pathlib import Path

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from api.ogc import OPENAPI_JSON

__all__ = ["router", "install", "DOCS_STATIC", "STATIC_DIR"]

router = APIRouter(tags=["landing"])

#: URL path of the vendored Swagger UI files.
DOCS_STATIC = "/static/docs"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "docs"

_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API</title>
<link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
<link rel="stylesheet" href="{static}/swagger-ui.css"></head>
<body><div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/docs-init.js"></script></body></html>"""


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> Response:
    """The OpenAPI 3.0 document, as ``application/vnd.oai.openapi+json;version=3.0``."""
    return Response(orjson.dumps(request.app.openapi()), media_type=OPENAPI_JSON)


@router.get("/docs", summary="API documentation (HTML)", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI on ``/openapi.json``, from files served by this server."""
    root = request.scope.get("root_path", "").rstrip("/")
    title = request.app.state.settings.title
    return HTMLResponse(_PAGE.format(title=html.escape(title), static=root + DOCS_STATIC,
                                     spec=html.escape(root + "/openapi.json")))


def install(app: FastAPI) -> None:
    """Mount the vendored files at :data:`DOCS_STATIC`."""
    app.mount(DOCS_STATIC, StaticFiles(directory=STATIC_DIR), name="docs-static")
