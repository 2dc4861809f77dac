"""The planners' web map: the page, its vendored assets and the compact data endpoints.

The page (``/map``, and ``/`` for browsers asking for HTML) is a folium/Leaflet shell built
by :func:`layers.webmap.build_app_page`; it embeds no data. Its script reads:

- ``/map/layers/{id}``: a reference layer as simplified GeoJSON (a few properties only);
- ``/map/enterprises``: the enterprises in the view, either as compact points
  ``[fid, lat, lon, verdict_index]`` or, when the view holds more than
  :data:`POINT_LIMIT`, aggregated server-side into screen-sized grid cells;
- ``/collections/enterprises/items/{fid}`` (OGC) for a popup;
- ``/map/search``, ``/map/area`` and ``/map/density`` for search, area statistics and
  the density overlay, and ``/exports/enforcement`` for downloads.

Every data endpoint takes the enterprise property filters of the OGC items route
(``verdict=shutdown,rectify&industry_id=dyeing&basin_id=lianjiang&needs_review=true``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
from typing import Annotated, Any

import numpy as np
import pandas as pd
import shapely
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from api.geometry import query_polygon
from api.routers.collections import feature_query_from_request
from api.routers.deps import ReadDep, SettingsDep, StoreDep
from api.settings import Settings
from api.sources import ENTERPRISES, get_source
from api.store import FeatureQuery
from api.store.base import FID
from geo.errors import InvalidQueryError, LayerNotFoundError

__all__ = [
    "router",
    "install",
    "parse_within",
    "aggregate_grid",
    "POINT_LIMIT",
    "STATIC_PREFIX",
    "map_query",
]

log = logging.getLogger(__name__)

router = APIRouter(tags=["map"])

#: URL path the vendored front-end assets are served under.
STATIC_PREFIX = "/static/map"
#: Views with at most this many matching enterprises get points, else grid cells.
POINT_LIMIT = 3000
#: Grid cell edge in screen pixels for the low-zoom aggregation.
CELL_PX = 64
#: Rows listed by /map/area and /map/search.
AREA_ROWS = 500
SEARCH_ROWS = 20
#: Query parameters of the map endpoints that are not enterprise properties.
_OWN = ("zoom", "within", "q", "cell_m", "simplify", "format", "v", "lang", "paper", "title",
        "layers", "area_label", "px")
#: Reference-layer properties kept in the compact layer GeoJSON.
_LAYER_PROPS = ("id", "code", "name_zh", "city_zh", "standard", "district", "status")


def _verdict_ids() -> list[str]:
    from layers.catalog import rules

    return [v.id for v in rules().verdicts]


def _is_browser(request: Request, f: str | None) -> bool:
    if f is not None:
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


@functools.lru_cache(maxsize=4)
def _page(api_prefix: str, tianditu_token: str, online_tiles: tuple[str, ...] = ()) -> str:
    from geo.raster import OVERLAY_COLORS
    from layers.webmap import build_app_page

    return build_app_page(api_prefix=api_prefix, asset_prefix=api_prefix + STATIC_PREFIX,
                          tianditu_token=tianditu_token or None,
                          density_colors=OVERLAY_COLORS, online_tiles=online_tiles)


def _map_page(request: Request, settings: Settings) -> HTMLResponse:
    prefix = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(_page(prefix, settings.tianditu_token or "", settings.online_tile_ids))


@router.get("/", include_in_schema=False)
def root(request: Request, settings: SettingsDep, caller: ReadDep,
         f: Annotated[str | None, Query()] = None) -> Response:
    """The map for browsers; the OGC landing page (JSON or ``?f=html``) otherwise."""
    if _is_browser(request, f):
        return _map_page(request, settings)
    from api.routers.landing import landing

    return landing(request, settings, caller, f)


@router.get("/map", summary="The web map (HTML)", response_class=HTMLResponse)
def map_page(request: Request, settings: SettingsDep, _: ReadDep) -> HTMLResponse:
    """The interactive map page (Chinese UI); it loads its layers from this API."""
    return _map_page(request, settings)


@functools.lru_cache(maxsize=1)
def _theme_css() -> str:
    from layers.catalog import rules
    from layers.webmap import app_config

    cfg = app_config()
    lines = ["/* BasinWatch map colours, generated from layers/data (layers.toml styles, "
             "rules.toml verdict colours). */"]
    for info in cfg["overlays"]:
        st = info["style"]
        lines.append(f".bw-swatch-{info['id']} {{ border-color: {st.get('color', '#666')}; "
                     f"background: {st.get('fillColor', 'transparent')}; }}")
    for v in rules().verdicts:
        lines.append(f".bw-v-{v.id} {{ background: {v.colour}; }}")
    return "\n".join(lines) + "\n"


@router.get("/map/theme.css", include_in_schema=False)
def map_theme(_: ReadDep) -> Response:
    """Layer and verdict colours as CSS classes (so the page needs no inline style)."""
    return Response(_theme_css(), media_type="text/css",
                    headers={"Cache-Control": "max-age=3600"})


@functools.lru_cache(maxsize=64)
def _layer_geojson(layer_id: str, tolerance: float, versions_state: tuple = ()) -> bytes:
    """Compact GeoJSON of a layer's active version (``versions_state`` keys the cache)."""
    from layers.registry import list_layers, load_layer

    known = [i.id for i in list_layers() if i.id != ENTERPRISES]
    if layer_id not in known:
        raise LayerNotFoundError(layer_id, known)
    gdf = load_layer(layer_id)
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs("EPSG:4326")
    geoms = np.asarray(gdf.geometry.values)
    if tolerance > 0:
        geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
    geoms = shapely.set_precision(geoms, 1e-5)
    props = [c for c in _LAYER_PROPS if c in gdf.columns]
    records = gdf[props].astype(object).where(gdf[props].notna(), None).to_dict("records")
    # label anchor: a point inside each polygon (of the stored, unsimplified geometry)
    anchors = shapely.point_on_surface(np.asarray(gdf.geometry.values))
    ax = np.round(shapely.get_x(anchors), 5)
    ay = np.round(shapely.get_y(anchors), 5)
    for rec, lon, lat in zip(records, ax, ay, strict=True):
        rec["label_at"] = None if np.isnan(lon) else [float(lat), float(lon)]
    feats = [
        {"type": "Feature", "properties": rec, "geometry": shapely.geometry.mapping(g)}
        for rec, g in zip(records, geoms, strict=True)
        if g is not None and not g.is_empty
    ]
    body = {"type": "FeatureCollection", "layer": layer_id, "features": feats}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@router.get("/map/layers/{layer_id}", summary="A reference layer, simplified for display")
def map_layer(
    request: Request,
    layer_id: str,
    _: ReadDep,
    simplify: Annotated[float, Query(ge=0, le=0.05, description="tolerance, degrees")] = 0.002,
) -> Response:
    """GeoJSON of a reference layer with simplified geometry and id/name properties only.

    Revalidated on every use (ETag of the layer versions' state): a switch of the active
    version (``basinwatch layers activate``) reaches browsers at once.
    """
    from layers.versions import state_token

    token = state_token()
    tag = '"' + hashlib.sha1(repr((layer_id, round(simplify, 6), token)).encode()).hexdigest() + '"'
    headers = {"Cache-Control": "no-cache", "ETag": tag}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(_layer_geojson(layer_id, round(simplify, 6), token),
                    media_type="application/geo+json", headers=headers)


def parse_within(text: str | None) -> shapely.Geometry | None:
    """A WGS84 polygon from WKT or a GeoJSON geometry text; ``None`` when empty.

    Raises
    ------
    InvalidQueryError
        If the text is neither, or not a non-empty (multi)polygon.
    """
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        if raw.startswith("{"):
            doc = json.loads(raw)
            geom = shapely.geometry.shape(doc.get("geometry", doc))
        else:
            geom = shapely.from_wkt(raw)
    except Exception as exc:  # json, shapely and GEOS raise several types
        raise InvalidQueryError(
            f"within: expected a WKT or GeoJSON Polygon in WGS84 lon/lat; got '{raw[:80]}' "
            f"({exc})."
        ) from exc
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        kind = "empty geometry" if geom is None or geom.is_empty else geom.geom_type
        raise InvalidQueryError(f"within: expected a Polygon or MultiPolygon, got {kind}.")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidQueryError(f"within: coordinates must be WGS84 lon/lat, got bounds "
                                f"{geom.bounds}.")
    return geom if geom.is_valid else shapely.make_valid(geom)


def map_query(request: Request, store: Any, *, limit: int | None = None) -> FeatureQuery:
    """The store query of a map request: the items route's property / ``filter`` / ``bbox``
    parameters plus ``within`` (WKT or GeoJSON polygon)."""
    src = get_source(store, ENTERPRISES)
    q = feature_query_from_request(request, src, limit=limit, offset=0, ignore=_OWN)
    # bounded: vertex cap, repair in a worker within the time limit (api.geometry)
    within = query_polygon(request, request.query_params.get("within"), param="within")
    return dataclasses.replace(q, within=within) if within is not None else q


def aggregate_grid(
    lon: np.ndarray, lat: np.ndarray, codes: np.ndarray, *, cell_deg: float, n_codes: int
) -> list[list[float]]:
    """Aggregate points into square cells of ``cell_deg`` (vectorised).

    Returns
    -------
    list
        ``[lat, lon, count, code]`` per non-empty cell: the mean position of its points,
        their number and the smallest (strongest) verdict code among them.
    """
    if len(lon) == 0:
        return []
    ix = np.floor(lon / cell_deg).astype(np.int64)
    iy = np.floor(lat / cell_deg).astype(np.int64)
    keys = np.stack([ix, iy], axis=1)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    mean_lon = np.bincount(inverse, weights=lon) / counts
    mean_lat = np.bincount(inverse, weights=lat) / counts
    strongest = np.full(len(counts), n_codes, dtype=np.int64)
    np.minimum.at(strongest, inverse, codes)
    return np.column_stack(
        [np.round(mean_lat, 5), np.round(mean_lon, 5), counts, strongest]
    ).tolist()


@router.get("/map/enterprises", summary="Enterprises in the view: points or grid cells")
def map_enterprises(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    bbox: Annotated[str, Query(description="minLon,minLat,maxLon,maxLat of the view")],
    zoom: Annotated[float, Query(ge=0, le=22, description="map zoom (sets the cell size)")],
) -> JSONResponse:
    """``{"mode": "points", "points": [[fid, lat, lon, v], ...]}`` when the view holds at
    most :data:`POINT_LIMIT` matching enterprises, else ``{"mode": "grid", "cells":
    [[lat, lon, count, v], ...]}``; ``v`` indexes the verdicts strongest first."""
    del bbox
    q = map_query(request, store)
    pts = store.points(q)  # fid, lon, lat, verdict only: no GeoDataFrame of whole rows
    verdicts = _verdict_ids()
    lookup = {v: i for i, v in enumerate(verdicts)}
    verdict = pts["verdict"]
    if isinstance(verdict.dtype, pd.CategoricalDtype):  # map the few labels, then take
        per_label = np.array([lookup.get(str(c), len(verdicts))
                              for c in verdict.cat.categories] + [len(verdicts)],
                             dtype=np.int64)
        codes_arr = per_label[verdict.cat.codes.to_numpy()]
    else:
        codes_arr = verdict.map(lookup).fillna(len(verdicts)).to_numpy(dtype=np.int64)
    lon = pts["lon"].to_numpy(dtype=np.float64)
    lat = pts["lat"].to_numpy(dtype=np.float64)
    frame = pts
    total = len(frame)
    if total <= POINT_LIMIT:
        pts = np.column_stack([frame[FID].to_numpy(dtype=np.float64), np.round(lat, 5),
                               np.round(lon, 5), codes_arr]).tolist()
        body: dict[str, Any] = {"mode": "points", "total": total,
                                "points": [[int(p[0]), p[1], p[2], int(p[3])] for p in pts]}
    else:
        cell = CELL_PX * 360.0 / (256 * 2 ** zoom)
        cells = aggregate_grid(lon, lat, codes_arr, cell_deg=cell, n_codes=len(verdicts))
        body = {"mode": "grid", "total": total, "cell_deg": cell,
                "cells": [[c[0], c[1], int(c[2]), int(c[3])] for c in cells]}
    return JSONResponse(body)


def _like(text: str) -> str:
    return text.replace("'", "''").replace("%", "").replace("_", "")


@router.get("/map/search", summary="Find enterprises by name or USCC")
def map_search(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    q: Annotated[str, Query(min_length=1, max_length=60, description="name part or USCC")],
) -> JSONResponse:
    """Up to 20 enterprises whose name contains ``q`` or whose USCC starts with it."""
    from api.store.cql import parse_cql

    term = _like(q.strip())
    if not term:
        raise InvalidQueryError("q: expected a name or USCC to search for.")
    cql = f"name LIKE '%{term}%'"
    if term.isascii() and term.isalnum():
        cql += f" OR uscc LIKE '{term.upper()}%'"
    base = map_query(request, store, limit=SEARCH_ROWS)
    query = dataclasses.replace(base, cql=parse_cql(cql))
    res = store.query(query)
    f = res.features
    rows = [[int(a), str(b), str(c), str(d), round(float(e), 5), round(float(g), 5)]
            for a, b, c, d, e, g in zip(f[FID], f["name"], f["uscc"], f["verdict"],
                                        f.geometry.y, f.geometry.x, strict=True)]
    return JSONResponse({"total": res.number_matched, "rows": rows})


@router.get("/map/area", summary="Counts and list of the enterprises in an area")
def map_area(request: Request, store: StoreDep, _: ReadDep) -> JSONResponse:
    """Enterprises matching the filters inside ``within`` (WKT/GeoJSON polygon) and/or a
    zone property (``basin_id``, ``district_code``, ...): totals per verdict and industry
    and the first 500 rows ``[fid, name, uscc, industry, verdict, lat, lon]``."""
    q = map_query(request, store, limit=AREA_ROWS)
    res = store.query(q)
    f = res.features
    rows = [[int(a), str(b), str(c), str(d), str(e), round(float(g), 5), round(float(h), 5)]
            for a, b, c, d, e, g, h in zip(f[FID], f["name"], f["uscc"], f["industry"],
                                           f["verdict"], f.geometry.y, f.geometry.x,
                                           strict=True)]
    counts = store.counts_many(q.unpaged(), ("verdict", "industry"))
    return JSONResponse({
        "total": res.number_matched,
        "verdict": counts["verdict"],
        "industry": counts["industry"],
        "rows": rows,
    })


@router.get("/map/density", summary="Enterprise density overlay (PNG data URL + bounds)")
def map_density(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    cell_m: Annotated[float | None, Query(gt=0, le=50_000, description="cell size, m")] = None,
) -> JSONResponse:
    """Density of the matching enterprises as a coloured PNG (``data:`` URL) with its
    ``[[s, w], [n, e]]`` bounds; the cell defaults to about 1/150 of the extent (>= 500 m)."""
    from geo.raster import density, density_to_png_overlay

    floor = request.app.state.settings.min_density_cell_m
    if cell_m is not None and cell_m < floor:
        from api.limits import LimitExceededError

        raise LimitExceededError(f"cell_m: at least BASINWATCH_MIN_DENSITY_CELL_M={floor:g} m, "
                                 f"got {cell_m:g}.")
    frame = store.query(map_query(request, store)).features
    if len(frame) == 0:
        return JSONResponse({"total": 0, "bounds": None, "image": None})
    b = frame.total_bounds
    if cell_m is None:
        span_m = max(b[2] - b[0], b[3] - b[1]) * 111_000
        cell_m = float(max(500.0, math.ceil(span_m / 150 / 100) * 100))
    cells = (math.ceil((b[2] - b[0]) * 111_000 / cell_m) + 1) * (
        math.ceil((b[3] - b[1]) * 111_000 / cell_m) + 1)
    top = request.app.state.settings.max_density_cells
    if cells > top:
        from api.limits import LimitExceededError

        raise LimitExceededError(f"cell_m: {cells:,} cells over these enterprises, more than "
                                 f"BASINWATCH_MAX_DENSITY_CELLS={top:,}; use a larger cell_m "
                                 "or a smaller area.")
    ras = density(frame, cell_m=cell_m)
    ov = density_to_png_overlay(ras)
    return JSONResponse({"total": len(frame), "cell_m": cell_m, "bounds": ov.bounds,
                         "vmax": float(np.nanmax(ras.band(1))), "image": ov.data_url})


def load_meta(store: Any) -> dict[str, Any]:
    """The current load: id, time, source file and row counts, and ``version`` (the data
    version as the tiles' ``v`` parameter: changes with a load and, on PostGIS, with an
    in-database classification)."""
    from api.tiles import version_tag

    loads = store.loads()
    if not loads:
        return {"load_id": None, "loaded_at": None, "source_name": None, "accepted": 0,
                "version": None}
    rec = loads[0].to_dict()
    return {**{k: rec[k] for k in ("load_id", "loaded_at", "source_name", "accepted",
                                   "rejected")}, "version": version_tag(store.data_version())}


@router.get("/map/meta", summary="The data version the map shows")
def map_meta(store: StoreDep, _: ReadDep) -> JSONResponse:
    """``load_id``, ``loaded_at`` (ISO 8601), ``source_name``, ``accepted``, ``rejected`` of
    the current load, and the store provider."""
    return JSONResponse({**load_meta(store), "provider": store.provider})


@router.get("/map/count", summary="Matching enterprises in the view, per verdict")
def map_count(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    bbox: Annotated[str, Query(description="minLon,minLat,maxLon,maxLat of the view")],
) -> JSONResponse:
    """``{"total": n, "verdict": {id: n}}`` for the enterprises matching the filters inside
    the view (the same filters as the tiles and the items route)."""
    from api.routers.collections import parse_bbox
    from api.tiles import count_in_view

    box = parse_bbox(bbox)
    if box is None:
        raise InvalidQueryError("bbox: expected minLon,minLat,maxLon,maxLat of the view.")
    q = dataclasses.replace(map_query(request, store), bbox=None)
    counts = count_in_view(store, q, box, _verdict_ids())
    return JSONResponse({"total": int(sum(counts.values())), "verdict": counts})


def _capacity_columns() -> list[str]:
    from layers.catalog import read_data_toml

    from geo.schema import ENFORCEMENT_COLUMNS

    wanted = read_data_toml("webmap.toml").get("dashboard", {}).get("capacity_columns", [])
    return [c for c in wanted if c in ENFORCEMENT_COLUMNS]


@router.get("/map/dashboard", summary="Counts per basin/region and city by verdict and industry")
def map_dashboard(request: Request, store: StoreDep, _: ReadDep) -> JSONResponse:
    """For the enterprises matching the filters (and ``within``): per priority basin /
    region and per city, the total and the counts by verdict and by industry; the summed
    capacity by verdict for each capacity column the store holds (``null`` when the
    registry has none, see ``[dashboard]`` in ``layers/data/webmap.toml``)."""
    from layers.catalog import read_data_toml

    labels = read_data_toml("labels.toml")
    q = map_query(request, store).unpaged()
    cols = ("verdict", "industry")

    def group(key: str, value: str) -> dict[str, Any]:
        props = dict(q.properties)
        if key in props and value not in props[key]:
            return {"total": 0, "verdict": {}, "industry": {}}
        props[key] = [value]
        c = store.counts_many(dataclasses.replace(q, properties=props), cols)
        return {"total": int(sum(c["verdict"].values())), **c}

    zones = []
    for zid, label in labels["zones"].items():
        key = "region_id" if zid == "guangfo" else "basin_id"
        zones.append({"key": key, "id": zid, "label": label, **group(key, zid)})
    city_counts = store.counts(q, "city")
    cities = [{"key": "city", "id": c, "label": c, **group("city", c)}
              for c in sorted(city_counts, key=lambda k: -city_counts[k]) if c]
    total = store.counts_many(q, cols)
    capacity = None
    cap_cols = _capacity_columns()
    if cap_cols:
        frame = store.query(q).features
        capacity = {c: {str(k): float(v) for k, v in
                        pd.to_numeric(frame[c], errors="coerce").groupby(frame["verdict"])
                        .sum(min_count=1).dropna().items()} for c in cap_cols}
    return JSONResponse({"total": int(sum(total["verdict"].values())), **total,
                         "zones": zones, "cities": cities, "capacity": capacity})


@router.get("/map/print", summary="The current map as a PDF or PNG sheet (A4/A3 landscape)",
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}, "image/png": {}}}})
def map_print(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    bbox: Annotated[str, Query(description="minLon,minLat,maxLon,maxLat of the view")],
    format: Annotated[str, Query(description="pdf | png")] = "pdf",  # noqa: A002
    paper: Annotated[str, Query(description="A4 | A3 (landscape)")] = "A4",
    title: Annotated[str | None, Query(max_length=120)] = None,
    layers: Annotated[str | None, Query(description="visible layer ids, comma-separated")] = None,
    area_label: Annotated[str | None, Query(max_length=120)] = None,
    lang: Annotated[str, Query(description="zh | en")] = "zh",
) -> Response:
    """The view with title, legend, scale bar, north arrow, data version and date, and the
    filters and area in words (see :mod:`layers.printmap`)."""
    from api.export_jobs import describe_filters
    from api.ogc import content_disposition
    from api.routers.collections import parse_bbox
    from layers.catalog import read_data_toml, rules
    from layers.printmap import render_print
    from layers.registry import layer_info, load_layer
    from layers.webmap import APP_BASE_LAYERS, APP_OVERLAYS

    box = parse_bbox(bbox)
    if box is None:
        raise InvalidQueryError("bbox: expected minLon,minLat,maxLon,maxLat of the view.")
    en = lang == "en"
    cfg = read_data_toml("webmap.toml")
    shown = APP_OVERLAYS if layers is None else [x for x in layers.split(",") if x]
    q = map_query(request, store)
    pts = store.points(dataclasses.replace(q, bbox=box)) if (
        layers is None or "enterprises" in shown) else pd.DataFrame(
            columns=["lon", "lat", "verdict"])
    tol = (box[2] - box[0]) / 3000
    reference = []
    for lid in [*APP_BASE_LAYERS, *[x for x in APP_OVERLAYS if x in shown]]:
        info = layer_info(lid)
        frame = load_layer(lid)
        frame = frame.set_geometry(shapely.simplify(np.asarray(frame.geometry.values), tol))
        reference.append((frame, _style(info.style), info.title_en if en else info.title_zh))
    if q.within is not None:
        import geopandas as gpd

        reference.append((gpd.GeoDataFrame(geometry=[q.within], crs="EPSG:4326"),
                          {"color": "#d7301f", "weight": 2.5},
                          area_label or ("Drawn area" if en else "绘制区域")))
    params = {k: v for k, v in request.query_params.items()
              if k not in ("bbox", "format", "paper", "title", "layers", "area_label", "lang",
                           "within", "v")}
    meta = load_meta(store)
    notes = [(("Data version" if en else "数据版本"),
              f"{meta['load_id']} · {str(meta['loaded_at'])[:10]} · {meta['source_name']}"
              if meta["load_id"] is not None else "—"),
             *describe_filters(params, area_label=area_label, within=q.within is not None),
             (("Printed" if en else "出图时间"),
              pd.Timestamp.now(tz="Asia/Shanghai").strftime("%Y-%m-%d %H:%M"))]
    verdicts = [(v.id, v.label_en if en else v.label_zh, v.colour) for v in rules().verdicts]
    ui = cfg["ui_en"] if en else cfg["ui"]
    body = render_print(pts, reference, bbox=box, verdicts=verdicts,
                        title=title or ui["print_default_heading"], notes=notes, fmt=format,
                        paper=paper, lang="en" if en else "zh",
                        dpi=int(cfg.get("print", {}).get("dpi", 200)),
                        papers=cfg.get("print", {}).get("papers"))
    media = "application/pdf" if format.lower() == "pdf" else "image/png"
    name = f"执法地图_{paper}.{format.lower()}"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": content_disposition(name)})


def _style(style: Any) -> dict[str, Any]:
    from layers.webmap import _style_dict

    return _style_dict(style)


def install(app: FastAPI) -> None:
    """Include the map routes (``/`` first, so browsers get the map) and mount the
    vendored assets at :data:`STATIC_PREFIX`."""
    from layers.webmap import static_dir

    from api.routers import tiles

    app.include_router(router)
    tiles.install(app)
    app.mount(STATIC_PREFIX, StaticFiles(directory=static_dir()), name="map-static")
