"""Exports of the enforcement list for any filter: xlsx, csv, geojson, gpkg, zipped shp.

Files are written by :func:`geo.export.export` into a temporary directory, streamed back
with the right content type and an RFC 6266 ``filename*`` (Chinese names survive), and
deleted after the response is sent.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.ogc import content_disposition
from api.routers.collections import feature_query_from_request
from api.routers.deps import ReadDep, StoreDep
from api.routers.webmap import parse_within
from api.sources import ENTERPRISES, get_source
from api.store.base import FID
from geo.errors import ExportError
from geo.provenance import Provenance

__all__ = ["router", "MEDIA_TYPES", "export_filename", "load_provenance"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/exports", tags=["exports"])

#: Export format -> (media type, file suffix).
MEDIA_TYPES: dict[str, tuple[str, str]] = {
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
    "geojson": ("application/geo+json", ".geojson"),
    "gpkg": ("application/geopackage+sqlite3", ".gpkg"),
    "shp": ("application/zip", ".zip"),
}
_ALIASES = {"shapefile": "shp", "zip": "shp", "json": "geojson", "excel": "xlsx"}
_BASENAME = "执法清单"


def export_filename(fmt: str, params: dict[str, str]) -> str:
    """``执法清单_<filter values>.<suffix>``, e.g. ``执法清单_lianjiang_印染.xlsx``."""
    parts = [v for k, v in sorted(params.items()) if k not in ("format", "f", "filter") and v]
    if "filter" in params:
        parts.append("筛选")
    stem = "_".join([_BASENAME, *parts])
    stem = "".join(ch if ch not in '/\\:*?"<>|' else "-" for ch in stem)[:120]
    return stem + MEDIA_TYPES[fmt][1]


def load_provenance(store: object, rows: int, params: dict[str, str]) -> Provenance:
    """Provenance of an export: the stored load it comes from and the filter applied.

    The store does not keep the rule date of a load, so ``as_of`` is left unknown.
    """
    loads = store.loads()  # type: ignore[attr-defined]
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "-"
    if not loads:
        return Provenance.now(registry_name="", registry_sha256="", as_of=None,
                              accepted=rows, note=f"filter: {shown}")
    rec = loads[0]
    return Provenance.now(
        registry_name=rec.source_name, registry_sha256=rec.source_sha256, as_of=None,
        accepted=rows, rejected=rec.rejected, source_rows=rec.accepted + rec.rejected,
        note=(f"API export of load {rec.load_id} ({rec.loaded_at.isoformat()}, "
              f"{rec.accepted} enterprises); filter: {shown}"),
    )


@router.get(
    "/enforcement",
    summary="Download the enforcement list",
    response_class=FileResponse,
    responses={200: {"content": {m: {} for m, _ in MEDIA_TYPES.values()}}},
)
def enforcement(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    format: Annotated[str, Query(description="xlsx | csv | geojson | gpkg | shp")] = "xlsx",  # noqa: A002
    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat")] = None,
    filter: Annotated[str | None, Query(description="CQL2 text")] = None,  # noqa: A002
    within: Annotated[str | None, Query(description="WKT or GeoJSON polygon (WGS84)")] = None,
) -> FileResponse:
    """The enforcement list filtered like ``/collections/enterprises/items`` (any property,
    e.g. ``basin_id=lianjiang``, ``region_id=guangfo``, ``district=潮南区``, or ``filter``)."""
    del bbox, filter
    fmt = _ALIASES.get(format.lower(), format.lower())
    if fmt not in MEDIA_TYPES:
        raise ExportError(f"format: expected one of {', '.join(MEDIA_TYPES)}, got '{format}'.")
    from geo.export import export

    src = get_source(store, ENTERPRISES)
    params = {k: v for k, v in request.query_params.items() if k not in ("format", "within")}
    if within:
        params["within"] = "区域"
    q = feature_query_from_request(request, src, limit=None, offset=0,
                                   ignore=("format", "within"))
    area = parse_within(within)
    if area is not None:
        q = dataclasses.replace(q, within=area)
    frame = src.query(q).features.drop(columns=[FID])
    tmp = Path(tempfile.mkdtemp(prefix="basinwatch-export-"))
    name = export_filename(fmt, params)
    try:
        path = export(frame, fmt, tmp / f"enforcement_list{MEDIA_TYPES[fmt][1]}",
                      provenance=load_provenance(store, len(frame), params))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("export %s: %d rows", fmt, len(frame))
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[fmt][0],
        headers={"Content-Disposition": content_disposition(name)},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )

