"""Exports of the enforcement list for any filter: xlsx, csv, geojson, gpkg, zipped shp.

CSV is streamed as it is formatted (:func:`geo.export.enforcement_csv_chunks`, chunks of
rows; the file never exists as a whole). The other formats are written by
:func:`geo.export.export` (Excel: :func:`geo.export.write_xlsx`) into a temporary
directory and streamed from disk, with the right content type and an RFC 6266
``filename*`` (Chinese names survive); the file is deleted after the response is sent. After
either, the server gives the memory of the export back to the system
(:func:`api.memory.release_memory`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from api.geometry import query_polygon
from api.memory import release_memory
from api.ogc import content_disposition
from api.routers.collections import feature_query_from_request
from api.routers.deps import ReadDep, StoreDep
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
#: Query parameters of an export that are not enterprise filters.
_NOT_FILTERS = ("format", "f", "within", "area_label", "lang", "v")


def export_filename(fmt: str, params: dict[str, str], *, area_label: str | None = None,
                    within: bool = False) -> str:
    """``执法清单_<area>_<filters in Chinese>.<suffix>``, e.g.
    ``执法清单_练江流域_印染_关停退出.xlsx`` (ids become names; a CQL2 filter is "筛选")."""
    from api.export_jobs import describe_filters

    own = {k: v for k, v in params.items() if k not in _NOT_FILTERS}
    rows = describe_filters({k: v for k, v in own.items() if k != "filter"},
                            area_label=area_label, within=within)
    area = [text for name, text in rows if name == "区域"]
    rest = [text.replace("、", "+") for name, text in rows if name not in ("区域", "筛选条件")]
    parts = list(dict.fromkeys(area + rest + (["筛选"] if "filter" in own else [])))
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
    fmt = _format(format)
    from geo.export import enforcement_csv_chunks, export

    frame, name, notes, prov = _selection(request, store, fmt, within)
    headers = {"Content-Disposition": content_disposition(name)}
    big = len(frame) >= RELEASE_ROWS
    if fmt == "csv":
        log.info("export csv: %d rows (streamed)", len(frame))
        chunks = enforcement_csv_chunks(frame)
        del frame
        return StreamingResponse(chunks, media_type=MEDIA_TYPES[fmt][0], headers=headers,
                                 background=BackgroundTask(release_memory) if big else None)
    tmp = Path(tempfile.mkdtemp(prefix="basinwatch-export-"))
    try:
        target = tmp / f"enforcement_list{MEDIA_TYPES[fmt][1]}"
        if fmt == "xlsx" and len(frame) >= CHILD_ROWS:
            path = _xlsx_in_child(frame, target, notes, prov)
        elif fmt == "xlsx":
            from geo.export import write_xlsx

            path = write_xlsx(frame, target, notes=notes, provenance=prov)
        else:
            path = export(frame, fmt, target, provenance=prov)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("export %s: %d rows", fmt, len(frame))
    del frame
    if big:
        release_memory()  # the frame and the writer's buffers, before the file is sent
    return FileResponse(path, media_type=MEDIA_TYPES[fmt][0], headers=headers,
                        background=BackgroundTask(_cleanup, tmp, big))


def _cleanup(folder: Path, release: bool = True) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if release:
        release_memory()


#: Rows from which an export gives memory back afterwards (:func:`api.memory.release_memory`).
#: Its full garbage collection walks every tracked object of the process (the store's 1M
#: shapely points: ~0.25 s holding the GIL), a cost a small export's buffers do not repay.
RELEASE_ROWS = 50_000


#: Rows from which ``GET /exports/enforcement`` writes Excel in a child process: the
#: pure-Python writer would otherwise hold this worker's GIL for seconds and stall every
#: other request it serves (the request thread only waits, without the GIL).
CHILD_ROWS = 20_000


def _xlsx_in_child(frame: Any, target: Path, notes: Any, prov: Any) -> Path:
    """:func:`geo.export.write_xlsx` in a spawned process; this thread waits for it."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from geo.export import write_xlsx

    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
            return Path(pool.submit(write_xlsx, frame, target, notes=notes,
                                    provenance=prov).result())
    except BrokenProcessPool:
        # e.g. the child was killed (memory): write here rather than fail the download
        log.warning("xlsx writer process died; writing %d rows in this worker", len(frame))
        return Path(write_xlsx(frame, target, notes=notes, provenance=prov))


def _format(format: str) -> str:  # noqa: A002
    fmt = _ALIASES.get(format.lower(), format.lower())
    if fmt not in MEDIA_TYPES:
        raise ExportError(f"format: expected one of {', '.join(MEDIA_TYPES)}, got '{format}'.")
    return fmt


def _jobs(request: Request) -> Path:
    """The export jobs folder of this server (shared by its workers)."""
    from api.export_jobs import jobs_root

    return jobs_root(request.app.state.settings.data_dir)


def _selection(request: Request, store: StoreDep, fmt: str, within: str | None):  # noqa: ANN202
    """(rows, Chinese file name, 说明 rows, provenance) of an export request."""
    from api.export_jobs import describe_filters

    src = get_source(store, ENTERPRISES)
    params = {k: v for k, v in request.query_params.items() if k not in _NOT_FILTERS}
    q = feature_query_from_request(request, src, limit=None, offset=0, ignore=_NOT_FILTERS)
    area = query_polygon(request, within, param="within")  # bounded (api.geometry)
    if area is not None:
        q = dataclasses.replace(q, within=area)
    frame = src.query(q).features.drop(columns=[FID])
    label = request.query_params.get("area_label") or None
    name = export_filename(fmt, params, area_label=label, within=area is not None)
    notes = [("导出内容", "执法清单（" + MEDIA_TYPES[fmt][1].lstrip(".").upper() + "）"),
             *describe_filters(params, area_label=label, within=area is not None),
             ("企业数", str(len(frame)))]
    if area is not None:
        notes.append(("区域范围（WKT，WGS84）", area.wkt[:30000]))
    loads = store.loads()
    if loads:
        rec = loads[0]
        notes.append(("数据版本", f"第 {rec.load_id} 次载入，{rec.loaded_at:%Y-%m-%d %H:%M} "
                                  f"UTC，来源 {rec.source_name}"))
    prov_params = dict(params)
    if area is not None:
        prov_params["within"] = "区域"
    return frame, name, notes, load_provenance(store, len(frame), prov_params)


@router.post("/jobs", summary="Start an export with progress (written in the background)",
             status_code=202)
def start_export(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    format: Annotated[str, Query(description="xlsx | csv | geojson | gpkg | shp")] = "xlsx",  # noqa: A002
    within: Annotated[str | None, Query(description="WKT or GeoJSON polygon (WGS84)")] = None,
) -> JSONResponse:
    """Select the rows like ``GET /exports/enforcement`` and start writing them; poll
    ``/exports/jobs/{id}`` for ``done`` / ``total`` rows, then fetch ``.../file``."""
    from api.export_jobs import start_job

    fmt = _format(format)
    frame, name, notes, prov = _selection(request, store, fmt, within)
    job = start_job(frame, fmt, name, notes, root=_jobs(request), provenance=prov)
    return JSONResponse(job.to_dict(), status_code=202)


@router.get("/jobs/{job_id}", summary="Progress of an export job")
def export_progress(request: Request, job_id: str, _: ReadDep) -> JSONResponse:
    """``{"state": "running" | "done" | "failed", "done": rows, "total": rows, ...}``."""
    from api.export_jobs import get_job

    return JSONResponse(get_job(job_id, root=_jobs(request)).to_dict())


@router.get("/jobs/{job_id}/file", summary="The file of a finished export job",
            response_class=FileResponse)
def export_file(request: Request, job_id: str, _: ReadDep) -> Response:
    """The written file, streamed from disk with its Chinese name (deleted after)."""
    from api.export_jobs import forget, get_job

    job = get_job(job_id, root=_jobs(request))
    if job.state != "done" or job.path is None:
        return JSONResponse({"code": "Conflict", "description":
                             f"export job {job_id} is {job.state}; poll /exports/jobs/{job_id}."},
                            status_code=409)
    return FileResponse(job.path, media_type=MEDIA_TYPES[job.fmt][0],
                        headers={"Content-Disposition": content_disposition(job.filename)},
                        background=BackgroundTask(forget, job))

