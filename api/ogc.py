"""OGC API – Features helpers shared by the routers: links, CRS, GeoJSON, CSV and HTML
bodies, and the completion of the OpenAPI document (statuses, limits, per-collection
parameters) that clients such as GDAL read."""

from __future__ import annotations

import functools
import html
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import shapely
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from geo.errors import InvalidQueryError

__all__ = [
    "CRS84",
    "SUPPORTED_CRS",
    "parse_crs",
    "transform_frame",
    "bbox_to_crs84",
    "complete_openapi",
    "GEOJSON",
    "OPENAPI_JSON",
    "CONFORMANCE",
    "FORMATS",
    "pick_format",
    "url_for",
    "features_to_geojson",
    "point_features",
    "to_openapi_30",
    "render",
    "json_response",
    "frame_csv",
    "content_disposition",
]

log = logging.getLogger(__name__)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: CRS of OGC API – Features Part 2 this server answers in: URI -> pyproj name. EPSG:4326
#: and EPSG:4490 (CGCS2000) have latitude first; CGCS2000 agrees with WGS84 to centimetres
#: (see geo.crs), so it differs from EPSG:4326 by name only.
SUPPORTED_CRS: dict[str, str] = {
    CRS84: "OGC:CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326": "EPSG:4326",
    "http://www.opengis.net/def/crs/EPSG/0/4490": "EPSG:4490",
    "http://www.opengis.net/def/crs/EPSG/0/3857": "EPSG:3857",
}
GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
FORMATS = ("json", "html", "csv")
#: Every accepted value of ``f`` (case-sensitive), as declared in the OpenAPI document.
FORMAT_VALUES = ("json", "html", "csv", "geojson")
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]


def pick_format(request: Request, f: str | None) -> str:
    """``json``, ``html`` or ``csv`` from the ``f`` parameter, else the Accept header."""
    if f is not None:
        if f not in FORMAT_VALUES:
            raise InvalidQueryError(f"f: expected one of {', '.join(FORMAT_VALUES)}, "
                                    f"got '{f[:40]}'.")
        return "json" if f == "geojson" else f
    accept = request.headers.get("accept", "")
    if "text/html" in accept and "json" not in accept:
        return "html"
    return "json"


def url_for(request: Request, path: str, params: Mapping[str, Any] | None = None) -> str:
    """Absolute URL of ``path`` on this server, with query parameters.

    The base is :func:`api.security.public_base`: never an untrusted Host header.
    """
    from api.security import public_base

    base = public_base(request)
    url = base + path
    if params:
        url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
    return url


def features_to_geojson(gdf: gpd.GeoDataFrame, id_column: str) -> list[dict[str, Any]]:
    """GeoJSON features of ``gdf`` with ``id`` from ``id_column`` (kept in properties too).

    Point frames (the enterprise list) are built column-wise by :func:`point_features`;
    other geometries go through geopandas' GeoJSON writer.
    """
    if len(gdf) == 0:
        return []
    fast = point_features(gdf, id_column)
    return fast if fast is not None else _features_via_json(gdf, id_column)


def _features_via_json(gdf: gpd.GeoDataFrame, id_column: str) -> list[dict[str, Any]]:
    frame = gdf.copy()
    for col in frame.columns:
        if col != frame.geometry.name and isinstance(frame[col].dtype, pd.api.extensions.ExtensionDtype):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    doc = json.loads(frame.to_json(na="null", show_bbox=False, drop_id=True, to_wgs84=False))
    feats: list[dict[str, Any]] = doc["features"]
    ids = frame[id_column].tolist()
    return [{"type": "Feature", "id": fid, **{k: v for k, v in ft.items() if k != "type"}}
            for fid, ft in zip(ids, feats, strict=True)]


def _plain(values: pd.Series) -> list[object]:
    """Column values as JSON-ready Python scalars, missing values (NaN, NA) as None."""
    missing = values.isna().to_numpy()
    out = values.astype(object).tolist() if values.dtype != object else values.tolist()
    if missing.any():
        for i in np.flatnonzero(missing):
            out[i] = None
    return out


def point_features(gdf: gpd.GeoDataFrame, id_column: str) -> list[dict[str, object]] | None:
    """GeoJSON features of a point frame built column-wise, without a JSON round trip.

    The same features as geopandas' GeoJSON writer (``type``, ``id``,
    ``properties`` with missing values as null, ``geometry``) for frames whose geometries
    are all non-empty points; ``None`` for any other frame (use the general path then).
    """
    geoms = np.asarray(gdf.geometry.values)
    if len(gdf) == 0 or not np.all(
        shapely.get_type_id(geoms) == shapely.GeometryType.POINT
    ) or shapely.is_empty(geoms).any():
        return None
    xs = shapely.get_x(geoms).tolist()
    ys = shapely.get_y(geoms).tolist()
    names = [c for c in gdf.columns if c != gdf.geometry.name]
    cols = [_plain(gdf[c]) for c in names]
    ids = _plain(gdf[id_column])
    return [
        {"type": "Feature", "id": fid, "properties": dict(zip(names, row, strict=True)),
         "geometry": {"type": "Point", "coordinates": [x, y]}}
        for fid, x, y, row in zip(ids, xs, ys, zip(*cols, strict=True), strict=True)
    ]



def frame_csv(gdf: pd.DataFrame) -> bytes:
    """Attribute table (no geometry column) as UTF-8 CSV with a BOM (opens in Excel).

    Text a spreadsheet would run as a formula gets a leading ``'``
    (:func:`geo.export.neutralise_frame`), as in every BasinWatch CSV.
    """
    from geo.export import CSV_LINE_END, neutralise_frame

    df = pd.DataFrame(gdf)
    if isinstance(gdf, gpd.GeoDataFrame):
        geom = gdf.geometry
        df = df.drop(columns=[geom.name])
        if "lon" not in df.columns and len(gdf) and (geom.geom_type == "Point").all():
            df["lon"], df["lat"] = geom.x.to_numpy(), geom.y.to_numpy()
    buf = io.StringIO()
    neutralise_frame(df).to_csv(buf, index=False, lineterminator=CSV_LINE_END)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _html_value(value: Any) -> str:
    if isinstance(value, dict | list):
        if isinstance(value, dict) and "href" in value:
            return f'<a href="{html.escape(str(value["href"]))}">{html.escape(str(value.get("title") or value.get("rel") or value["href"]))}</a>'
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "<ul>" + "".join(f"<li>{_html_value(v)}</li>" for v in value) + "</ul>"
        return html.escape(json.dumps(value, ensure_ascii=False)[:2000])
    return html.escape("" if value is None else str(value))


def _html_page(title: str, body: dict[str, Any]) -> str:
    rows: list[str] = []
    feats: Sequence[dict[str, Any]] = body.get("features", []) if isinstance(body, dict) else []
    for key, value in body.items():
        if key == "features":
            continue
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{_html_value(value)}</td></tr>")
    table = ""
    if feats:
        cols = list(feats[0].get("properties", {}).keys())
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["id", *cols])
        body_rows = "".join(
            "<tr>" + f"<td>{_html_value(ft.get('id'))}</td>"
            + "".join(f"<td>{_html_value(ft['properties'].get(c))}</td>" for c in cols)
            + "</tr>"
            for ft in feats
        )
        table = f"<h2>要素 Features</h2><table border='1'><tr>{head}</tr>{body_rows}</table>"
    return (
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<table border='1'>{''.join(rows)}</table>{table}</body></html>"
    )


def render(
    request: Request,
    body: dict[str, Any],
    fmt: str,
    *,
    title: str,
    media_type: str = "application/json",
    frame: pd.DataFrame | None = None,
    filename: str = "data.csv",
) -> Response:
    """Respond with ``body`` as JSON, an HTML page, or ``frame`` as CSV."""
    if fmt == "html":
        return HTMLResponse(_html_page(title, body))
    if fmt == "csv":
        if frame is None:
            raise InvalidQueryError("f: csv is only available for feature lists; use f=json.")
        return Response(
            frame_csv(frame), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": content_disposition(filename)},
        )
    return json_response(body, media_type=media_type)


def json_response(
    body: Any, *, status_code: int = 200, media_type: str = "application/json"
) -> Response:
    """JSON via orjson: ~10x faster than the standard library on 1,000-feature pages,
    and NaN becomes ``null`` (valid JSON) instead of a bare ``NaN``."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
        status_code=status_code, media_type=media_type,
    )


def content_disposition(filename: str, *, disposition: str = "attachment") -> str:
    """RFC 6266 header value: ASCII ``filename`` fallback plus UTF-8 ``filename*``."""
    fallback = "".join(ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_"
                       for ch in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def now_iso() -> str:
    """Current UTC time, ISO 8601 with a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_openapi_30(node: Any) -> Any:
    """Rewrite FastAPI's OpenAPI 3.1 JSON-Schema constructs as OpenAPI 3.0.3.

    OGC API – Features Part 1 asks for OpenAPI 3.0: ``anyOf [X, null]`` becomes ``X`` with
    ``nullable``, numeric ``exclusiveMinimum``/``Maximum`` become booleans beside
    ``minimum``/``maximum``, ``const`` an ``enum``, schema ``examples`` an ``example``, and
    ``contentMediaType`` (uploads) ``format: binary``.
    """
    if isinstance(node, list):
        return [to_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_openapi_30(value) for key, value in node.items()}
    variants = out.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out = {**rest[0], **out}
        elif len(rest) == 1:
            out["allOf"] = rest
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        out["nullable"] = len(types) < len(out["type"]) or out.get("nullable", False)
        out["type"] = types[0] if len(types) == 1 else types
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[plain] = value
            out[bound] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list) and "schema" not in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if "contentMediaType" in out:
        out.pop("contentMediaType")
        out["format"] = "binary"
    return out


# -- OGC API – Features Part 2: CRS ---------------------------------------------------------
def parse_crs(value: str | None, *, param: str) -> str:
    """The supported CRS URI ``value`` names (default CRS84).

    Raises
    ------
    InvalidQueryError
        Naming ``param`` and the supported URIs.
    """
    if value is None:
        return CRS84
    uri = value.strip()
    if uri.startswith("[") and uri.endswith("]"):  # safe CURIE, e.g. [EPSG:4326]
        auth, _, code = uri[1:-1].partition(":")
        uri = (CRS84 if auth.upper() == "OGC" and code.upper() == "CRS84"
               else f"http://www.opengis.net/def/crs/{auth.upper()}/0/{code}")
    if uri.startswith("https://"):
        uri = "http://" + uri[len("https://"):]
    if uri not in SUPPORTED_CRS:
        raise InvalidQueryError(
            f"{param}: expected one of {', '.join(SUPPORTED_CRS)}, got '{value}'."
        )
    return uri


@functools.cache
def _transformer(src: str, dst: str) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(SUPPORTED_CRS[src], SUPPORTED_CRS[dst])


def transform_frame(gdf: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """A copy of a CRS84 frame with coordinates in ``crs`` (axis order of that CRS)."""
    if crs == CRS84 or len(gdf) == 0:
        return gdf
    tr = _transformer(CRS84, crs)
    geoms = shapely.transform(np.asarray(gdf.geometry.values),
                              lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    out = gdf.copy()
    out[gdf.geometry.name] = gpd.GeoSeries(geoms, index=gdf.index, crs=None)
    return out.set_crs(None, allow_override=True)


def bbox_to_crs84(bbox: tuple[float, float, float, float], crs: str,
                  ) -> tuple[float, float, float, float]:
    """A bbox given in ``crs`` (its axis order) as minLon, minLat, maxLon, maxLat."""
    if crs == CRS84:
        return bbox
    tr = _transformer(crs, CRS84)
    a, b, c, d = tr.transform_bounds(*bbox, densify_pts=21)
    if not all(math.isfinite(v) for v in (a, b, c, d)):
        raise InvalidQueryError(f"bbox: cannot be transformed from {crs}.")
    return (a, b, c, d)


# -- the OpenAPI document --------------------------------------------------------------------
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "description"],
    "properties": {"code": {"type": "string", "description": "stable OGC exception code"},
                   "description": {"type": "string"}},
}
_ERROR_STATUSES = {
    "400": "Bad parameter or limit exceeded (OGC exception naming the parameter or limit)",
    "401": "A key or session is required",
    "403": "The key's role does not allow this",
    "404": "No such resource",
    "406": "No representation in an accepted media type",
    "413": "Body or upload larger than its limit",
    "414": "Request line too long",
    "429": "Rate limit or busy geometry workers; see Retry-After",
    "500": "Unexpected error (reported with a reference in the server log)",
    "503": "Service unavailable",
}


def _error_response(text: str) -> dict[str, Any]:
    return {"description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                                 "Exception"}}}}


def complete_openapi(doc: dict[str, Any], app: Any, settings: Any) -> dict[str, Any]:
    """Declare what FastAPI cannot know: every error status of every operation with the
    OGC exception schema, ``limit``'s default and maximum from the settings (one
    ``$ref``-ed component), the
    ``filter-lang`` and CRS enums, and one ``/collections/{id}/items`` path per collection
    with its properties as query parameters (GDAL pushes ``-where`` down through these)."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Exception"] = _ERROR_SCHEMA
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            responses.pop("422", None)
            for status, text in _ERROR_STATUSES.items():
                responses.setdefault(status, _error_response(text))
            for param in op.get("parameters", []):
                _tune_parameter(param, settings)
            _describe_security(op, path, method, settings)
    _add_collection_paths(doc, app)
    _limit_by_reference(doc)
    return doc


def _limit_by_reference(doc: dict[str, Any]) -> None:
    """Declare ``limit`` once, as ``#/components/parameters/limit``, and refer to it.

    The OGC API – Features Part 1 OpenAPI fragments do this, and GDAL's OAPIF driver
    (``DeterminePageSizeFromAPI`` in recent releases; not Debian 12's 3.6) reads the page
    size only through such a ``$ref``: with it, it asks for
    ``min(max(1000, default), maximum)`` features per page.
    """
    params = doc.setdefault("components", {}).setdefault("parameters", {})
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            plist = op.get("parameters", [])
            for i, param in enumerate(plist):
                if param.get("name") != "limit" or param.get("in") != "query":
                    continue
                # Only operations whose limit is the same declaration share it: /cases
                # and /query/* page differently and keep their own bounds.
                if params.setdefault("limit", param) == param:
                    plist[i] = {"$ref": "#/components/parameters/limit"}


def _tune_parameter(param: dict[str, Any], settings: Any) -> None:
    name, schema = param.get("name"), param.setdefault("schema", {})
    if param.get("in") != "query":
        return
    if schema.pop("x-bw-limit", False):
        schema.update({"type": "integer", "minimum": 1, "maximum": settings.max_limit,
                       "default": settings.default_limit})
        schema.pop("nullable", None)
    elif name == "filter-lang":
        schema.update({"type": "string", "enum": ["cql2-text", "cql-text"],
                       "default": "cql2-text"})
        schema.pop("nullable", None)
    elif name in ("crs", "bbox-crs") and schema.get("x-bw-crs"):
        schema.update({"type": "string", "format": "uri", "enum": list(SUPPORTED_CRS),
                       "default": CRS84})
        schema.pop("nullable", None)
    elif name == "f" and "enum" not in schema:  # the OGC routers' f (others declare theirs)
        schema.update({"type": "string", "enum": list(FORMAT_VALUES)})
        schema.pop("nullable", None)
    elif name == "filter-crs":
        schema.update({"type": "string", "format": "uri", "enum": [CRS84], "default": CRS84})
        schema.pop("nullable", None)
    elif schema.pop("x-bw-properties", False):
        schema.update({"type": "array", "items": {"type": "string"}})
        schema.pop("nullable", None)
        param.update({"style": "form", "explode": False})
    schema.pop("x-bw-crs", None)


def _describe_security(op: dict[str, Any], path: str, method: str, settings: Any) -> None:
    sec = op.get("security")
    if not sec:
        return
    # reads are open unless BASINWATCH_READ_OPEN=false: the key is then optional ({});
    # uploads and administration always need one
    writes = path.startswith("/admin") or (path == "/registry" and method == "post")
    if settings.read_open and not writes:
        if {} not in sec:
            sec.append({})


def _add_collection_paths(doc: dict[str, Any], app: Any) -> None:
    """``/collections/<id>/items`` for each collection, with its properties as parameters."""
    from api.sources import list_sources

    generic = doc.get("paths", {}).get("/collections/{collectionId}/items", {}).get("get")
    if generic is None:
        return
    try:
        sources = list_sources(app.state.store)
    except Exception as exc:  # noqa: BLE001 - the document must still be served
        log.warning("OpenAPI: collection paths skipped (%s)", exc)
        return
    for src in sources:
        op = json.loads(json.dumps(generic))
        op["operationId"] = f"getItems_{src.id}"
        op["summary"] = f"Features of {src.id}"
        params = [p for p in op.get("parameters", []) if p.get("name") != "collectionId"]
        for p in params:
            if p.get("name") == "properties" and p.get("in") == "query":
                p["schema"] = {"type": "array",
                               "items": {"type": "string", "enum": list(src.properties)}}
        for prop, kind in src.properties.items():
            schema: dict[str, Any] = {"type": kind}
            params.append({
                "name": prop, "in": "query", "required": False, "schema": schema,
                "style": "form", "explode": False,
                "description": f"Only features whose {prop} equals this value "
                               "(comma-separated values: any of them).",
            })
        op["parameters"] = params
        doc["paths"][f"/collections/{src.id}/items"] = {"get": op}
