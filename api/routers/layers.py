"""Reference-layer versions over HTTP: list, import (editor), impact dry run, switch, roll back.

An adapter over :mod:`layers.importer`, :mod:`layers.impact` and :mod:`layers.versions`;
the same operations as ``basinwatch layers``. Writes need an editor key (the shared
``EditorDep``); the impact of a candidate is computed on the stored enterprise list.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from datetime import date
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from api.app import error_body
from api.ogc import content_disposition
from api.audit import record_write
from api.routers.deps import EditorDep, ReadDep, SettingsDep, StoreDep
from api.store import FeatureQuery, Store
from geo.errors import GeoError, InvalidQueryError

__all__ = ["router", "IMPACT_ROWS", "refresh_store_layers"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/layers", tags=["layers"])

#: Changed enterprises listed in a JSON impact report (counts always cover all).
IMPACT_ROWS = 2_000
_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "geojson": "application/geo+json",
}


class UploadTooLargeError(GeoError, ValueError):
    """The upload exceeds BASINWATCH_MAX_UPLOAD_MB."""

    http_status = 413


def _listing() -> list[dict[str, Any]]:
    from layers.registry import list_layers

    return [{"id": i.id, "kind": i.kind, "title_zh": i.title_zh, "title_en": i.title_en,
             "version": i.version, "provenance": i.provenance.model_dump()}
            for i in list_layers()]


@router.get("", summary="Reference layers with their active version and provenance")
def layers_index(_: ReadDep) -> JSONResponse:
    """Every layer, its active version and that version's provenance."""
    from layers.registry import active_versions

    return JSONResponse({
        "layers": _listing(),
        "active_versions": {k: v.label for k, v in active_versions().items()},
    })


@router.get("/{layer_id}/versions", summary="Versions of a layer and its switch history")
def layer_versions(layer_id: str, _: ReadDep) -> JSONResponse:
    """The bundled and imported versions, which is active, and every switch."""
    from geo.errors import LayerNotFoundError
    from layers import registry, versions

    recs = []
    if layer_id in registry.bundled_layer_ids():
        recs.append(registry._bundled_record(layer_id))
    recs.extend(versions.versions_of(layer_id))
    if not recs:
        raise LayerNotFoundError(layer_id, registry.bundled_layer_ids())
    return JSONResponse({
        "layer_id": layer_id,
        "active": versions.active_version_id(layer_id),
        "versions": [r.model_dump() for r in recs],
        "history": [a.model_dump() for a in versions.read_manifest().history
                    if a.layer_id == layer_id],
    })


def _stored(store: Store) -> Any:
    return store.query(FeatureQuery()).features


def _load_id(store: Store) -> int:
    loads = store.loads()
    return loads[0].load_id if loads else 0


_impacts: dict[tuple[Any, ...], Any] = {}


def _impact(store: Store, layer_id: str, version: str, as_of: date | None) -> Any:
    """The impact report of a candidate on the stored list (memoised per load and state)."""
    from layers.impact import impact
    from layers.versions import state_token

    key = (layer_id, version, _load_id(store), str(as_of), state_token(), id(store))
    hit = _impacts.get(key)
    if hit is None:
        if len(_impacts) >= 8:
            _impacts.pop(next(iter(_impacts)))
        hit = impact(_stored(store), layer_id, version, as_of=as_of)
        _impacts[key] = hit
    return hit


@router.post("/import", summary="Import a boundary file as a new layer version (editor)",
             status_code=201)
def import_layer(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    caller: EditorDep,
    file: Annotated[UploadFile, File(description="zip (Shapefile), gpkg, geojson, kml, kmz, "
                                                 "csv (WKT)")],
    kind: Annotated[Literal["basin", "region", "park", "district"], Form()],
    layer_id: Annotated[str, Form(alias="id", description="layer id, e.g. shima")],
    crs: Annotated[str | None, Form(description="CRS when the file has none")] = None,
    towgs84: Annotated[str | None, Form(description="dx,dy,dz[,rx,ry,rz,ds]")] = None,
    transform: Annotated[str | None, Form(description="PROJ pipeline to WGS84")] = None,
    source: Annotated[str | None, Form()] = None,
    licence: Annotated[str | None, Form()] = None,
    accuracy_m: Annotated[float | None, Form(ge=0)] = None,
    method: Annotated[str | None, Form()] = None,
    repair: Annotated[bool, Form(description="consent to repair invalid geometry")] = False,
    published_area_km2: Annotated[float | None, Form(gt=0)] = None,
    name_zh: Annotated[str | None, Form()] = None,
    feature: Annotated[str | None, Form(description="park id to replace/add")] = None,
    impact: Annotated[bool, Form(description="add the impact summary on the stored list")] = True,
) -> JSONResponse:
    """Validate the file and store it as the next (inactive) version; report and impact."""
    from layers.importer import ImportRejectedError
    from layers.importer import import_layer as run_import

    name = PurePath(file.filename or "").name or "upload"
    limit = settings.max_upload_mb * 1024 * 1024
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(
            f"file: larger than BASINWATCH_MAX_UPLOAD_MB={settings.max_upload_mb} MB."
        )
    with tempfile.TemporaryDirectory(prefix="bw-layer-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            outcome = run_import(
                path, kind=kind, layer_id=layer_id, created_by=f"api:{caller.name}", crs=crs,
                towgs84=towgs84, pipeline=transform, source=source, licence=licence,
                accuracy_m=accuracy_m, method=method, repair=repair,
                published_area_km2=published_area_km2, name_zh=name_zh, feature=feature,
                source_name=name,
            )
        except ImportRejectedError as exc:
            record_write(request, action="layer.import", target=f"layer:{layer_id}",
                         outcome="failed: rejected", detail={"source_name": name})
            body = error_body(400, exc.msg)  # bad input is a 400, like every other
            body["import"] = exc.outcome.to_dict()  # type: ignore[assignment]
            return JSONResponse(body, status_code=400)
    record_write(request, action="layer.import", target=f"layer:{layer_id}",
                 detail={"source_name": name, "version": getattr(outcome.version, "version",
                                                                 None)})
    body = {"import": outcome.to_dict(), "impact": None}
    if impact and outcome.version is not None and store.loads():
        rep = _impact(store, layer_id, outcome.version.version, None)
        body["impact"] = rep.summary()
    return JSONResponse(body, status_code=201)


@router.get("/{layer_id}/versions/{version}/impact",
            summary="Impact dry run of a version on the stored enterprise list")
def version_impact(
    layer_id: str,
    version: str,
    store: StoreDep,
    _: ReadDep,
    format: Annotated[Literal["json", "csv", "xlsx", "geojson"], Query()] = "json",  # noqa: A002
    as_of: Annotated[date | None, Query(description="rule date, YYYY-MM-DD")] = None,
    rows: Annotated[int, Query(ge=0, le=100_000)] = IMPACT_ROWS,
) -> Response:
    """Every stored enterprise whose basin, region, park or verdict would change."""
    from layers.impact import write_impact

    if not store.loads():
        raise InvalidQueryError("the store holds no enterprise list: load a registry first.")
    rep = _impact(store, layer_id, version, as_of)
    if format == "json":
        return JSONResponse(rep.to_dict(rows))
    if format == "geojson":
        body = json.dumps(rep.geojson(), ensure_ascii=False).encode("utf-8")
        return Response(body, media_type=_MEDIA["geojson"])
    with tempfile.TemporaryDirectory(prefix="bw-impact-") as tmp:
        paths = write_impact(rep, tmp)
        payload = paths[format].read_bytes()
    fname = f"影响评估_{layer_id}_{version}.{format}"
    return Response(payload, media_type=_MEDIA[format],
                    headers={"Content-Disposition": content_disposition(fname)})


@router.get("/{layer_id}/versions/{version}/geojson",
            summary="A version's geometry, simplified for display")
def version_geojson(
    layer_id: str,
    version: str,
    _: ReadDep,
    simplify: Annotated[float, Query(ge=0, le=0.05, description="tolerance, degrees")] = 0.0005,
) -> Response:
    """The candidate's features for the map (display only: classification uses all vertices)."""
    from layers.importer import candidate_frame

    frame = candidate_frame(layer_id, version)
    geoms = frame.geometry.to_numpy()
    if simplify > 0:
        geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
    props = [c for c in ("id", "code", "name_zh", "status", "area_km2") if c in frame.columns]
    records = frame[props].astype(object).where(frame[props].notna(), None).to_dict("records")
    feats = [{"type": "Feature", "properties": {**r, "layer_id": layer_id, "version": version},
              "geometry": json.loads(shapely.to_geojson(shapely.set_precision(g, 1e-6)))}
             for r, g in zip(records, geoms, strict=True)]
    buf = io.StringIO()
    json.dump({"type": "FeatureCollection", "features": feats}, buf, ensure_ascii=False)
    return Response(buf.getvalue().encode("utf-8"), media_type=_MEDIA["geojson"])


def refresh_store_layers(store: Store) -> dict[str, int] | None:
    """After a switch, reload the reference tables a PostGIS store classifies with in SQL.

    The in-process engine follows the active versions by itself; PostGIS's copies
    (``load_reference_layers``) would not. Returns the polygons loaded per kind, or None
    for stores without in-database classification.
    """
    loader = getattr(store, "load_reference_layers", None)
    if loader is None:
        return None
    return loader()  # type: ignore[no-any-return]


@router.post("/{layer_id}/activate", summary="Make a version active (editor)")
def activate(
    request: Request,
    layer_id: str,
    store: StoreDep,
    caller: EditorDep,
    version: Annotated[str, Query(description="v2, bundled, ...")],
) -> JSONResponse:
    """Switch the layer to ``version``; classification uses it from the next request on."""
    from layers.versions import activate as do_activate

    rec = do_activate(layer_id, version, by=f"api:{caller.name}")
    record_write(request, action="layer.activate", target=f"layer:{layer_id}",
                 detail={"version": version})
    body = rec.model_dump()
    body["database_reference_layers"] = refresh_store_layers(store)
    return JSONResponse(body)


@router.post("/{layer_id}/rollback", summary="Return to the previously active version (editor)")
def rollback(request: Request, layer_id: str, store: StoreDep,
             caller: EditorDep) -> JSONResponse:
    """Undo the layer's last switch."""
    from layers.versions import rollback as do_rollback

    rec = do_rollback(layer_id, by=f"api:{caller.name}")
    record_write(request, action="layer.rollback", target=f"layer:{layer_id}")
    body = rec.model_dump()
    body["database_reference_layers"] = refresh_store_layers(store)
    return JSONResponse(body)
