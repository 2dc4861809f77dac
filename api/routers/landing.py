"""Landing page and conformance declaration (OGC API – Features Part 1 core)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.ogc import CONFORMANCE, OPENAPI_JSON, pick_format, render, url_for
from api.routers.deps import ReadDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["landing"])

FParam = Annotated[str | None, Query(description="json | html")]


_HTML_TOO = {200: {"content": {"application/json": {}, "text/html": {}}}}


@router.get("/", summary="Landing page", responses=_HTML_TOO)
def landing(request: Request, settings: SettingsDep, _: ReadDep, f: FParam = None) -> Response:
    """Links to the API definition, conformance and the collections."""
    fmt = pick_format(request, f)
    body = {
        "title": settings.title,
        "description": "广东省重点流域落后产能退出执法清单 — OGC API Features, spatial queries, "
                       "exports and registry upload.",
        "links": [
            {"href": url_for(request, "/"), "rel": "self", "type": "application/json",
             "title": "This document"},
            {"href": url_for(request, "/", {"f": "html"}), "rel": "alternate",
             "type": "text/html", "title": "This document as HTML"},
            {"href": url_for(request, "/openapi.json"), "rel": "service-desc",
             "type": OPENAPI_JSON, "title": "API definition (OpenAPI 3.0)"},
            {"href": url_for(request, "/docs"), "rel": "service-doc", "type": "text/html",
             "title": "API documentation"},
            {"href": url_for(request, "/conformance"), "rel": "conformance",
             "type": "application/json", "title": "Conformance classes"},
            {"href": url_for(request, "/collections"), "rel": "data",
             "type": "application/json", "title": "Collections"},
        ],
    }
    return render(request, body, "json" if fmt == "csv" else fmt, title=settings.title)


@router.get("/conformance", summary="Conformance classes", responses=_HTML_TOO)
def conformance(request: Request, _: ReadDep, f: FParam = None) -> Response:
    """The OGC conformance classes this server implements."""
    fmt = pick_format(request, f)
    return render(request, {"conformsTo": CONFORMANCE}, "json" if fmt == "csv" else fmt,
                  title="Conformance")
