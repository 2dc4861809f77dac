"""Collections and features (OGC API – Features Part 1 core, Part 3 CQL2 text filter)."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.ogc import CRS84, GEOJSON, features_to_geojson, now_iso, pick_format, render, url_for
from api.routers.deps import ReadDep, SettingsDep, StoreDep
from api.sources import Source, check_property, get_source, list_sources
from api.store import FeatureQuery
from api.store.cql import parse_cql
from geo.errors import GeoError, InvalidQueryError

__all__ = ["router", "parse_bbox", "feature_query_from_request"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/collections", tags=["collections"])

FParam = Annotated[str | None, Query(description="json | html | csv")]
CollectionId = Annotated[str, Path(description="Collection id, e.g. enterprises or lianjiang")]
_RESERVED = {"bbox", "limit", "offset", "f", "filter", "filter-lang", "filter-crs", "datetime",
             "bbox-crs", "crs"}


class FeatureNotFoundError(GeoError, KeyError):
    """No feature with that id."""

    http_status = 404

    def __str__(self) -> str:
        return self.msg


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` (or 6 numbers with heights) -> 4-tuple of floats."""
    if text is None or text == "":
        return None
    parts = text.split(",")
    try:
        nums = [float(p) for p in parts]
    except ValueError as exc:
        raise InvalidQueryError(
            f"bbox: expected 4 comma-separated numbers minLon,minLat,maxLon,maxLat; got '{text}'."
        ) from exc
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise InvalidQueryError(
            f"bbox: expected 4 comma-separated numbers minLon,minLat,maxLon,maxLat; got '{text}'."
        )
    if nums[1] > nums[3] or not (-90 <= nums[1] <= 90 and -90 <= nums[3] <= 90):
        raise InvalidQueryError(f"bbox: expected minLat <= maxLat within [-90, 90]; got '{text}'.")
    if nums[0] > nums[2]:
        raise InvalidQueryError(
            f"bbox: boxes crossing the antimeridian are not supported; got '{text}'."
        )
    return (nums[0], nums[1], nums[2], nums[3])


def feature_query_from_request(
    request: Request, source: Source, *, limit: int | None, offset: int,
    ignore: tuple[str, ...] = (),
) -> FeatureQuery:
    """Build the store query from ``bbox``, ``filter`` and property parameters.

    Every other query parameter must be a property of ``source`` (OGC: unknown parameters
    are a 400), except those named in ``ignore``.
    """
    params = request.query_params
    crs = params.get("bbox-crs") or params.get("filter-crs")
    if crs and crs not in (CRS84, "EPSG:4326", "http://www.opengis.net/def/crs/EPSG/0/4326"):
        raise InvalidQueryError(f"bbox-crs/filter-crs: only {CRS84} is supported, got '{crs}'.")
    lang = params.get("filter-lang")
    if lang and lang != "cql2-text":
        raise InvalidQueryError(f"filter-lang: expected cql2-text, got '{lang}'.")
    cql_text = params.get("filter")
    props: dict[str, list[str]] = {}
    for key in params:
        if key in _RESERVED or key in ignore:
            continue
        check_property(source, key)
        props[key] = [v for raw in params.getlist(key) for v in raw.split(",")]
    return FeatureQuery(
        bbox=parse_bbox(params.get("bbox")),
        properties=props,
        cql=parse_cql(cql_text) if cql_text else None,
        limit=limit,
        offset=offset,
    )


def _collection_doc(request: Request, src: Source) -> dict[str, Any]:
    ext = src.extent()
    base = f"/collections/{src.id}"
    return {
        "id": src.id,
        "title": src.title,
        "description": src.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {"spatial": {"bbox": [list(ext) if ext else [-180, -90, 180, 90]],
                               "crs": CRS84}},
        "links": [
            {"href": url_for(request, base), "rel": "self", "type": "application/json",
             "title": src.title},
            {"href": url_for(request, base + "/items"), "rel": "items", "type": GEOJSON,
             "title": "Features as GeoJSON"},
            {"href": url_for(request, base + "/items", {"f": "html"}), "rel": "items",
             "type": "text/html", "title": "Features as HTML"},
            {"href": url_for(request, base + "/items", {"f": "csv"}), "rel": "items",
             "type": "text/csv", "title": "Features as CSV"},
            {"href": url_for(request, base + "/queryables"),
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
             "type": "application/schema+json", "title": "Queryables"},
        ],
    }


@router.get("", summary="Feature collections")
def collections(request: Request, store: StoreDep, _: ReadDep, f: FParam = None) -> Response:
    """Every reference layer and the enterprise list."""
    fmt = pick_format(request, f)
    docs = [_collection_doc(request, s) for s in list_sources(store)]
    body = {
        "links": [{"href": url_for(request, "/collections"), "rel": "self",
                   "type": "application/json", "title": "Collections"}],
        "collections": docs,
    }
    if fmt == "html":
        body = {"collections": [{"href": d["links"][1]["href"] + "?f=html", "title": d["title"]}
                                for d in docs]}
    return render(request, body, "json" if fmt == "csv" else fmt, title="Collections")


@router.get("/{collection_id}", summary="One collection")
def collection(
    request: Request, collection_id: CollectionId, store: StoreDep, _: ReadDep, f: FParam = None
) -> Response:
    """Metadata, extent and links of one collection."""
    fmt = pick_format(request, f)
    src = get_source(store, collection_id)
    return render(request, _collection_doc(request, src), "json" if fmt == "csv" else fmt,
                  title=src.title)


@router.get("/{collection_id}/queryables", summary="Queryable properties")
def queryables(
    request: Request, collection_id: CollectionId, store: StoreDep, _: ReadDep
) -> Response:
    """JSON Schema of the properties usable in ``filter`` and as query parameters."""
    src = get_source(store, collection_id)
    props: dict[str, Any] = {name: {"type": t} for name, t in src.properties.items()}
    props["geometry"] = {"$ref": "https://geojson.org/schema/Geometry.json"}
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": url_for(request, f"/collections/{src.id}/queryables"),
        "type": "object",
        "title": src.title,
        "properties": props,
    }
    return render(request, body, "json", title=src.title, media_type="application/schema+json")


@router.get(
    "/{collection_id}/items",
    summary="Features",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}, "text/html": {}, "text/csv": {}}}},
)
def items(
    request: Request,
    collection_id: CollectionId,
    store: StoreDep,
    settings: SettingsDep,
    _: ReadDep,
    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat (CRS84)")] = None,
    limit: Annotated[int | None, Query(ge=1, description="page size")] = None,
    offset: Annotated[int, Query(ge=0, description="features to skip")] = 0,
    filter: Annotated[str | None, Query(description="CQL2 text, e.g. verdict='shutdown'")] = None,  # noqa: A002
    filter_lang: Annotated[str | None, Query(alias="filter-lang")] = None,
    f: FParam = None,
) -> Response:
    """Features of a collection: ``bbox``, ``limit``/``offset`` paging with ``next`` links,
    property filters (``verdict=shutdown&industry=印染``) and a CQL2 ``filter``."""
    del bbox, filter, filter_lang  # read from request.query_params (all parameters at once)
    fmt = pick_format(request, f)
    src = get_source(store, collection_id)
    page = min(limit or settings.default_limit, settings.max_limit)
    if fmt == "csv" and limit is None:
        page = settings.max_limit
    q = feature_query_from_request(request, src, limit=page, offset=offset)
    res = src.query(q)
    feats = features_to_geojson(res.features, src.id_column)
    path = f"/collections/{src.id}/items"
    params = dict(request.query_params)
    links = [
        {"href": url_for(request, path, params), "rel": "self", "type": GEOJSON,
         "title": "This page"},
        {"href": url_for(request, f"/collections/{src.id}"), "rel": "collection",
         "type": "application/json", "title": src.title},
    ]
    if offset + len(feats) < res.number_matched:
        links.append({"href": url_for(request, path, {**params, "offset": offset + page,
                                                      "limit": page}),
                      "rel": "next", "type": GEOJSON, "title": "Next page"})
    if offset > 0:
        links.append({"href": url_for(request, path, {**params, "offset": max(offset - page, 0),
                                                      "limit": page}),
                      "rel": "prev", "type": GEOJSON, "title": "Previous page"})
    body = {
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": res.number_matched,
        "numberReturned": len(feats),
        "timeStamp": now_iso(),
        "links": links,
    }
    return render(request, body, fmt, title=src.title, media_type=GEOJSON,
                  frame=res.features, filename=f"{src.id}.csv")


@router.get(
    "/{collection_id}/items/{feature_id}",
    summary="One feature",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}, "text/html": {}}}},
)
def item(
    request: Request,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(description="Feature id (fid for enterprises)")],
    store: StoreDep,
    _: ReadDep,
    f: FParam = None,
) -> Response:
    """One feature by id."""
    fmt = pick_format(request, f)
    src = get_source(store, collection_id)
    frame = src.get(feature_id)
    if len(frame) == 0:
        raise FeatureNotFoundError(
            f"featureId: no feature '{feature_id}' in collection '{src.id}'."
        )
    feat = features_to_geojson(frame.iloc[:1], src.id_column)[0]
    base = f"/collections/{src.id}"
    feat["links"] = [
        {"href": url_for(request, f"{base}/items/{feature_id}"), "rel": "self", "type": GEOJSON},
        {"href": url_for(request, base), "rel": "collection", "type": "application/json"},
    ]
    return render(request, feat, fmt, title=f"{src.title} {feature_id}", media_type=GEOJSON,
                  frame=frame.iloc[:1], filename=f"{src.id}_{feature_id}.csv")
