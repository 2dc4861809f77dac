"""Collections and features: OGC API – Features Part 1 core, Part 2 CRS, Part 3 filters.

- ``crs`` (answer) and ``bbox-crs`` (request) take CRS84, EPSG:4326 and EPSG:4490 (latitude
  first, as those CRS define) and EPSG:3857; every GeoJSON answer names its CRS in the
  ``Content-Crs`` header.
- ``bbox`` may cross the antimeridian (``minLon > maxLon``).
- Properties are query parameters (``verdict=shutdown,rectify``), typed strictly
  (``needs_review=maybe`` is a 400); ``filter`` is CQL2 text (``filter-lang`` ``cql2-text``
  or GDAL's ``cql-text``), bounded by the service's filter limits.
- ``limit`` defaults to ``BASINWATCH_DEFAULT_LIMIT`` and may not exceed
  ``BASINWATCH_MAX_LIMIT``; ``datetime`` is refused explicitly (no collection has time).
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.ogc import (
    CRS84,
    GEOJSON,
    SUPPORTED_CRS,
    bbox_to_crs84,
    features_to_geojson,
    now_iso,
    parse_crs,
    pick_format,
    render,
    transform_frame,
    url_for,
)
from api.routers.deps import ReadDep, SettingsDep, StoreDep
from api.sources import Source, check_property, get_source, list_sources
from api.store import FeatureQuery
from api.store.cql import parse_cql
from geo.errors import GeoError, InvalidQueryError

__all__ = ["router", "parse_bbox", "feature_query_from_request", "check_values",
           "item_links", "page_body"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/collections", tags=["collections"])

FParam = Annotated[str | None, Query(description="json | html | csv")]
CollectionId = Annotated[str, Path(alias="collectionId",
                                   description="Collection id, e.g. enterprises or basins")]
CrsParam = Annotated[str | None, Query(
    description="CRS of the answer's coordinates (OGC API – Features Part 2); EPSG:4326 and "
                "EPSG:4490 list latitude first.", json_schema_extra={"x-bw-crs": True})]
_RESERVED = {"bbox", "limit", "offset", "f", "filter", "filter-lang", "filter-crs", "datetime",
             "bbox-crs", "crs", "properties"}
PropertiesParam = Annotated[str | None, Query(
    description="Only these properties in each feature, comma-separated (OGC API – "
                "Features Part 6 property selection); empty: no properties.",
    json_schema_extra={"x-bw-properties": True})]
_FILTER_LANGS = ("cql2-text", "cql-text")
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


class FeatureNotFoundError(GeoError, KeyError):
    """No feature with that id."""

    http_status = 404

    def __str__(self) -> str:
        return self.msg


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` (or 6 numbers with heights) -> 4-tuple of floats.

    ``minx > maxx`` is a box crossing the antimeridian (kept as given; the stores split it).
    """
    if text is None or text == "":
        return None
    parts = text.split(",")
    try:
        nums = [float(p) for p in parts]
    except ValueError as exc:
        raise InvalidQueryError(
            f"bbox: expected 4 comma-separated numbers minLon,minLat,maxLon,maxLat; got "
            f"'{text[:100]}'."
        ) from exc
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise InvalidQueryError(
            f"bbox: expected 4 comma-separated numbers minLon,minLat,maxLon,maxLat; got "
            f"'{text[:100]}'."
        )
    return (nums[0], nums[1], nums[2], nums[3])


def _check_lonlat(bbox: tuple[float, float, float, float], text: str) -> None:
    if bbox[1] > bbox[3] or not all(-90 <= v <= 90 for v in (bbox[1], bbox[3])):
        raise InvalidQueryError(f"bbox: expected minLat <= maxLat within [-90, 90]; got "
                                f"'{text[:100]}'.")
    if not all(-180 <= v <= 180 for v in (bbox[0], bbox[2])):
        raise InvalidQueryError(f"bbox: expected longitudes within [-180, 180]; got "
                                f"'{text[:100]}'.")


def check_values(source: Source, name: str, values: list[str]) -> list[str]:
    """Property values checked against the property's type (strict booleans, numbers)."""
    kind = source.properties.get(name, "string")
    for v in values:
        low = v.strip().lower()
        if kind == "boolean" and low not in _TRUE | _FALSE:
            raise InvalidQueryError(f"{name}: expected true or false, got '{v[:40]}'.")
        if kind == "integer":
            try:
                int(v)
            except ValueError:
                raise InvalidQueryError(f"{name}: expected an integer, got '{v[:40]}'.") from None
        if kind == "number":
            try:
                ok = math.isfinite(float(v))
            except ValueError:
                ok = False
            if not ok:
                raise InvalidQueryError(f"{name}: expected a number, got '{v[:40]}'.")
    if kind == "boolean":
        return ["true" if v.strip().lower() in _TRUE else "false" for v in values]
    return values


def feature_query_from_request(
    request: Request, source: Source, *, limit: int | None, offset: int,
    ignore: tuple[str, ...] = (),
) -> FeatureQuery:
    """Build the store query from ``bbox`` (with ``bbox-crs``), ``filter`` and property
    parameters.

    Every other query parameter must be a property of ``source`` (OGC: unknown parameters
    are a 400), except those named in ``ignore``.
    """
    settings = request.app.state.settings
    params = request.query_params
    if params.get("datetime"):
        raise InvalidQueryError(
            f"datetime: collection '{source.id}' has no temporal property; omit datetime "
            "(the load history is at /registry/loads)."
        )
    fcrs = params.get("filter-crs")
    if fcrs is not None and parse_crs(fcrs, param="filter-crs") != CRS84:
        raise InvalidQueryError(f"filter-crs: only {CRS84} is supported, got '{fcrs}'.")
    lang = params.get("filter-lang")
    if lang is not None and lang not in _FILTER_LANGS:
        raise InvalidQueryError(f"filter-lang: expected cql2-text, got '{lang}'.")
    bbox_text = params.get("bbox")
    bbox = parse_bbox(bbox_text)
    if bbox is not None:
        bcrs = parse_crs(params.get("bbox-crs"), param="bbox-crs")
        if bcrs != CRS84:
            if bbox[0] > bbox[2] or bbox[1] > bbox[3]:
                raise InvalidQueryError(f"bbox: expected min <= max in {bcrs}.")
            bbox = bbox_to_crs84(bbox, bcrs)
        _check_lonlat(bbox, bbox_text or "")
    elif params.get("bbox-crs") is not None:
        parse_crs(params.get("bbox-crs"), param="bbox-crs")
    cql_text = params.get("filter")
    props: dict[str, list[str]] = {}
    for key in params:
        if key in _RESERVED or key in ignore:
            continue
        check_property(source, key)
        values = [v for raw in params.getlist(key) for v in raw.split(",")]
        props[key] = check_values(source, key, values)
    cql = None
    if cql_text:
        cql = parse_cql(cql_text, max_chars=settings.max_filter_chars,
                        max_terms=settings.max_filter_terms,
                        max_vertices=settings.max_vertices)
    return FeatureQuery(bbox=bbox, properties=props, cql=cql, limit=limit, offset=offset)


def selected_properties(source: Source, text: str | None) -> list[str] | None:
    """The property names ``properties=`` selects (None: all), each checked.

    Raises
    ------
    InvalidQueryError
        Naming an unknown property and the known ones.
    """
    if text is None:
        return None
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if name not in source.properties:
            raise InvalidQueryError(
                f"properties: unknown property '{name[:40]}'; expected some of "
                f"{', '.join(source.properties)}."
            )
    return names


def _select(feats: list[dict[str, Any]], names: list[str] | None) -> list[dict[str, Any]]:
    if names is not None:
        for ft in feats:
            props = ft["properties"]
            ft["properties"] = {n: props.get(n) for n in names}
    return feats


def _page_size(settings: Any, limit: int | None) -> int:
    if limit is not None and limit > settings.max_limit:
        raise InvalidQueryError(f"limit: at most BASINWATCH_MAX_LIMIT={settings.max_limit}, "
                                f"got {limit}; page with offset or the next links.")
    return limit or settings.default_limit


def _collection_doc(request: Request, src: Source) -> dict[str, Any]:
    ext = src.extent()
    base = f"/collections/{src.id}"
    return {
        "id": src.id,
        "title": src.title,
        "description": src.description,
        "itemType": "feature",
        "crs": list(SUPPORTED_CRS),
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


_HTML_TOO = {200: {"content": {"application/json": {}, "text/html": {}}}}


@router.get("", summary="Feature collections", responses=_HTML_TOO)
def collections(request: Request, store: StoreDep, _: ReadDep, f: FParam = None) -> Response:
    """Every reference layer and the enterprise list."""
    fmt = pick_format(request, f)
    docs = [_collection_doc(request, s) for s in list_sources(store)]
    body: dict[str, Any] = {
        "links": [{"href": url_for(request, "/collections"), "rel": "self",
                   "type": "application/json", "title": "Collections"}],
        "crs": list(SUPPORTED_CRS),
        "collections": docs,
    }
    if fmt == "html":
        body = {"collections": [{"href": d["links"][1]["href"] + "?f=html", "title": d["title"]}
                                for d in docs]}
    return render(request, body, "json" if fmt == "csv" else fmt, title="Collections")


@router.get("/{collectionId}", summary="One collection", responses=_HTML_TOO)
def collection(
    request: Request, collection_id: CollectionId, store: StoreDep, _: ReadDep, f: FParam = None
) -> Response:
    """Metadata, extent, supported CRS and links of one collection."""
    fmt = pick_format(request, f)
    src = get_source(store, collection_id)
    return render(request, _collection_doc(request, src), "json" if fmt == "csv" else fmt,
                  title=src.title)


@router.get(
    "/{collectionId}/queryables",
    summary="Queryable properties",
    responses={200: {"content": {"application/schema+json": {}}}},
)
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
        "additionalProperties": False,
    }
    return render(request, body, "json", title=src.title, media_type="application/schema+json")


def _fid(feature_id: str) -> int | None:
    """The enterprise fid a feature id names (None: no fid can match)."""
    try:
        fid = int(feature_id)
    except ValueError:
        return None
    return fid if 0 < fid < 2**63 else None


def item_links(request: Request, collection_id: str, feature_id: str) -> list[dict[str, str]]:
    """The ``self`` and ``collection`` links of one feature (``items/{featureId}``)."""
    from api.security import public_base

    base = f"{public_base(request)}/collections/{collection_id}"  # url_for, base once
    return [
        {"href": f"{base}/items/{quote(feature_id, safe='')}", "rel": "self",
         "type": GEOJSON},
        {"href": base, "rel": "collection", "type": "application/json"},
    ]


def _with_crs(response: Response, crs: str) -> Response:
    if response.media_type in (GEOJSON, "text/html"):
        response.headers["Content-Crs"] = f"<{crs}>"
    return response


def page_body(request: Request, src: Source, feats: list[dict[str, Any]], *, returned: int,
              matched: int, offset: int, page: int) -> dict[str, Any]:
    """The FeatureCollection of one ``items`` page: features, counts, ``timeStamp`` and the
    ``self``/``collection``/``next``/``prev`` links (the route's and :mod:`api.itemfast`'s).

    Parameters
    ----------
    request
        The request (its query parameters are the ``self`` link's).
    src
        The collection.
    feats
        The page's GeoJSON features.
    returned, matched
        ``numberReturned`` and ``numberMatched``.
    offset, page
        The page's offset and size (the ``next``/``prev`` links).

    Returns
    -------
    dict
        The GeoJSON FeatureCollection.
    """
    path = f"/collections/{src.id}/items"
    params = dict(request.query_params)
    links = [
        {"href": url_for(request, path, params), "rel": "self", "type": GEOJSON,
         "title": "This page"},
        {"href": url_for(request, f"/collections/{src.id}"), "rel": "collection",
         "type": "application/json", "title": src.title},
    ]
    if offset + returned < matched:
        links.append({"href": url_for(request, path, {**params, "offset": offset + page,
                                                      "limit": page}),
                      "rel": "next", "type": GEOJSON, "title": "Next page"})
    if offset > 0:
        links.append({"href": url_for(request, path, {**params, "offset": max(offset - page, 0),
                                                      "limit": page}),
                      "rel": "prev", "type": GEOJSON, "title": "Previous page"})
    return {
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": matched,
        "numberReturned": returned,
        "timeStamp": now_iso(),
        "links": links,
    }


@router.get(
    "/{collectionId}/items",
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
    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat in bbox-crs "
                                                  "(minLon > maxLon crosses the "
                                                  "antimeridian)")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="CRS of bbox",
                                          json_schema_extra={"x-bw-crs": True})] = None,
    crs: CrsParam = None,
    datetime: Annotated[str | None, Query(description="not supported: no collection has a "
                                                      "temporal property (400)")] = None,
    limit: Annotated[int | None, Query(ge=1, description="page size",
                                       json_schema_extra={"x-bw-limit": True})] = None,
    offset: Annotated[int, Query(ge=0, le=10**9, description="features to skip")] = 0,
    filter: Annotated[str | None, Query(description="CQL2 text, e.g. verdict='shutdown'")] = None,  # noqa: A002
    filter_lang: Annotated[str | None, Query(alias="filter-lang")] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs")] = None,
    properties: PropertiesParam = None,
    f: FParam = None,
) -> Response:
    """Features of a collection: ``bbox``, ``limit``/``offset`` paging with ``next`` links,
    property filters (``verdict=shutdown&industry=印染``), a CQL2 ``filter``, ``crs`` and
    ``properties`` (which properties to return)."""
    del bbox, bbox_crs, datetime, filter, filter_lang, filter_crs  # read from query_params
    fmt = pick_format(request, f)
    out_crs = parse_crs(crs, param="crs")
    if fmt == "csv" and out_crs != CRS84:
        raise InvalidQueryError("crs: f=csv lists lon/lat attributes in CRS84 only; use f=json.")
    src = get_source(store, collection_id)
    page = _page_size(settings, limit)
    if fmt == "csv" and limit is None:
        page = settings.max_limit
    q = feature_query_from_request(request, src, limit=page, offset=offset)
    names = selected_properties(src, properties)
    frame = None
    if fmt == "json" and out_crs == CRS84 and src.store is not None:
        # the fast path: GeoJSON straight from the store, no GeoDataFrame per request
        fp = src.store.geojson_page(q, names)
        feats, returned, matched = fp.features, fp.number_returned, fp.number_matched
    else:
        res = src.query(q)
        frame = res.features if names is None else res.features[
            [*names, res.features.geometry.name]]
        feats = _select(features_to_geojson(transform_frame(res.features, out_crs),
                                            src.id_column), names)
        returned, matched = len(feats), res.number_matched
    body = page_body(request, src, feats, returned=returned, matched=matched, offset=offset,
                     page=page)
    return _with_crs(render(request, body, fmt, title=src.title, media_type=GEOJSON,
                            frame=frame, filename=f"{src.id}.csv"), out_crs)


@router.get(
    "/{collectionId}/items/{featureId}",
    summary="One feature",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}, "text/html": {}, "text/csv": {}}}},
)
def item(
    request: Request,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(alias="featureId",
                                    description="Feature id (fid for enterprises)")],
    store: StoreDep,
    _: ReadDep,
    crs: CrsParam = None,
    properties: PropertiesParam = None,
    f: FParam = None,
) -> Response:
    """One feature by id (``properties``: which properties to return)."""
    fmt = pick_format(request, f)
    out_crs = parse_crs(crs, param="crs")
    if fmt == "csv" and out_crs != CRS84:
        raise InvalidQueryError("crs: f=csv lists lon/lat attributes in CRS84 only; use f=json.")
    src = get_source(store, collection_id)
    names = selected_properties(src, properties)
    frame = None
    if fmt == "json" and out_crs == CRS84 and src.store is not None:
        fid = _fid(feature_id)
        feat = src.store.geojson_feature(fid, names) if fid is not None else None
    else:
        frame = src.get(feature_id).iloc[:1]
        feat = (_select(features_to_geojson(transform_frame(frame, out_crs),
                                            src.id_column), names)[0]
                if len(frame) else None)
        if names is not None:
            frame = frame[[*names, frame.geometry.name]]
    if feat is None:
        raise FeatureNotFoundError(
            f"featureId: no feature '{feature_id[:80]}' in collection '{src.id}'."
        )
    feat["links"] = item_links(request, src.id, feature_id)
    return _with_crs(render(request, feat, fmt, title=f"{src.title} {feature_id}",
                            media_type=GEOJSON, frame=frame,
                            filename=f"{src.id}_{feature_id}.csv"), out_crs)
