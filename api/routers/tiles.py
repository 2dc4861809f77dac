"""OGC API – Tiles (Part 1: core, tileset, tilesets-list, geodata-tilesets; MVT) for the
enterprise list, on the WebMercatorQuad tile matrix set of OGC 17-083r4.

- ``/tileMatrixSets`` and ``/tileMatrixSets/WebMercatorQuad`` (JSON definition);
- ``/collections/enterprises/tiles`` (tilesets) and ``.../tiles/WebMercatorQuad`` (tileset
  metadata with the URL template);
- ``/collections/enterprises/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}``:
  a Mapbox Vector Tile (``application/vnd.mapbox-vector-tile``), filtered with the same
  property / ``filter`` (CQL2) / ``within`` parameters as the items route. An empty tile is
  a 200 with an empty body (a valid MVT with no layers).

QGIS: Layer > Add Layer > Vector Tile > New Generic Connection, URL
``http://HOST/collections/enterprises/tiles/WebMercatorQuad/{z}/{y}/{x}`` (row = y,
col = x), min zoom 0, max zoom 22; the style at ``.../tiles/WebMercatorQuad/style.json``.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.ogc import CONFORMANCE, url_for
from api.routers.deps import ReadDep, StoreDep
from api.tilecache import GZIP_MIN_BYTES, etag_of
from api.tilefast import remember_query
from api.tiles import (
    BIN,
    BUFFER,
    EXTENT,
    LAYER,
    MAX_ZOOM,
    TILES,
    cached_tile,
    tile_key,
    warm_tiles_soon,
)

__all__ = ["router", "install", "MVT", "TILES_CONFORMANCE", "tile_matrix_set"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
#: Conformance classes this router adds to ``/conformance``.
TILES_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]
_ORIGIN = 20037508.3427892
_CELL0 = 156543.03392804097  # metres per pixel at zoom 0 (2 * pi * 6378137 / 256)
_SCALE0 = 559082264.0287178  # scale denominator at zoom 0 (0.28 mm pixels)


def tile_matrix_set() -> dict[str, Any]:
    """The WebMercatorQuad definition (OGC 17-083r4, JSON encoding)."""
    return {
        "id": TMS_ID,
        "title": "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "orderedAxes": ["E", "N"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": [
            {
                "id": str(z),
                "scaleDenominator": _SCALE0 / 2 ** z,
                "cellSize": _CELL0 / 2 ** z,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-_ORIGIN, _ORIGIN],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2 ** z,
                "matrixHeight": 2 ** z,
            }
            for z in range(MAX_ZOOM + 1)
        ],
    }


def _verdicts() -> list[tuple[str, str, str]]:
    from layers.catalog import rules

    return [(v.id, v.label_zh, v.colour) for v in rules().verdicts]


def _tile_template(request: Request) -> str:
    return url_for(request, f"/collections/enterprises/tiles/{TMS_ID}") + \
        "/{tileMatrix}/{tileRow}/{tileCol}"


@router.get("/tileMatrixSets", summary="Tile matrix sets")
def tile_matrix_sets(request: Request, _: ReadDep) -> JSONResponse:
    """The one tile matrix set the tiles use."""
    return JSONResponse({"tileMatrixSets": [{
        "id": TMS_ID, "title": "Google Maps Compatible for the World", "uri": TMS_URI,
        "links": [{"href": url_for(request, f"/tileMatrixSets/{TMS_ID}"), "rel": "self",
                   "type": "application/json"}],
    }]})


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="A tile matrix set definition")
def tile_matrix_set_doc(
    _: ReadDep, tileMatrixSetId: Annotated[str, Path()]  # noqa: N803 - OGC name
) -> JSONResponse:
    """The WebMercatorQuad definition."""
    _check_tms(tileMatrixSetId)
    return JSONResponse(tile_matrix_set())


def _check_tms(tms: str) -> None:
    from geo.errors import LayerNotFoundError

    if tms != TMS_ID:
        raise LayerNotFoundError(tms, [TMS_ID])


def _tileset(request: Request) -> dict[str, Any]:
    base = f"/collections/enterprises/tiles/{TMS_ID}"
    return {
        "title": "企业（按处置结论） / Enterprises by verdict",
        "description": (
            f"Every matching enterprise, binned to {BIN // 16} px (tile extent {EXTENT}, "
            f"buffer {BUFFER}): one point per bin and verdict with properties verdict and "
            "n (enterprises in the bin); feature id = fid where n = 1. Query parameters of "
            "/collections/enterprises/items (properties, filter, within) filter the tiles."
        ),
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "links": [
            {"href": url_for(request, base), "rel": "self", "type": "application/json"},
            {"href": url_for(request, f"/tileMatrixSets/{TMS_ID}"),
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
             "type": "application/json"},
            {"href": _tile_template(request), "rel": "item", "type": MVT, "templated": True},
            {"href": url_for(request, base + "/style.json"), "rel": "describedby",
             "type": "application/vnd.mapbox.style+json", "title": "Verdict colours"},
        ],
        "layers": [{"id": LAYER, "dataType": "vector", "geometryType": "points",
                    "minTileMatrix": "0", "maxTileMatrix": str(MAX_ZOOM),
                    "propertiesSchema": {"type": "object", "properties": {
                        "verdict": {"type": "string",
                                    "enum": [v for v, _l, _c in _verdicts()]},
                        "n": {"type": "integer", "minimum": 1}}}}],
    }


@router.get("/collections/enterprises/tiles", summary="Vector tilesets of the enterprises")
def tilesets(request: Request, _: ReadDep) -> JSONResponse:
    """The enterprise tileset (WebMercatorQuad)."""
    ts = _tileset(request)
    return JSONResponse({"tilesets": [{k: ts[k] for k in
                                       ("title", "dataType", "crs", "tileMatrixSetURI",
                                        "links")}],
                         "links": [{"href": url_for(request, "/collections/enterprises/tiles"),
                                    "rel": "self", "type": "application/json"}]})


@router.get(f"/collections/enterprises/tiles/{TMS_ID}/style.json",
            summary="A Mapbox GL style for the enterprise tiles (QGIS, MapLibre)")
def tile_style(request: Request, _: ReadDep) -> JSONResponse:
    """Circles coloured by verdict, sized by n."""
    colours: list[Any] = ["match", ["get", "verdict"]]
    for vid, _label, colour in _verdicts():
        colours += [vid, colour]
    colours.append("#cccccc")
    return JSONResponse({
        "version": 8,
        "name": "BasinWatch enterprises by verdict",
        "sources": {"basinwatch": {"type": "vector", "tiles": [
            _tile_template(request).replace("{tileMatrix}", "{z}")
            .replace("{tileRow}", "{y}").replace("{tileCol}", "{x}")],
            "minzoom": 0, "maxzoom": MAX_ZOOM}},
        "layers": [{
            "id": "enterprises", "type": "circle", "source": "basinwatch",
            "source-layer": LAYER,
            "paint": {"circle-color": colours,
                      "circle-radius": ["min", 12, ["+", 2.5, ["*", 0.9, ["sqrt", ["get", "n"]]]]],
                      "circle-stroke-color": "#333333", "circle-stroke-width": 0.5},
        }],
    })


@router.get(f"/collections/enterprises/tiles/{TMS_ID}", summary="The enterprise tileset")
def tileset(request: Request, _: ReadDep) -> JSONResponse:
    """Tileset metadata with the tile URL template."""
    return JSONResponse(_tileset(request))


@router.get(
    "/collections/enterprises/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A vector tile of the enterprises",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def tile(
    request: Request,
    store: StoreDep,
    _: ReadDep,
    tileMatrixSetId: Annotated[str, Path()],  # noqa: N803 - OGC names
    tileMatrix: Annotated[int, Path(ge=0, le=MAX_ZOOM)],  # noqa: N803
    tileRow: Annotated[int, Path(ge=0)],  # noqa: N803
    tileCol: Annotated[int, Path(ge=0)],  # noqa: N803
    f: Annotated[str | None, Query(description="mvt")] = None,
    px: Annotated[int, Query(description="display size the tile is binned for: 256 (the "
                                         "WebMercatorQuad default), 512 or 1024 (4 px bins "
                                         "each)")] = 256,
) -> Response:
    """MVT of the matching enterprises in the tile (layer ``enterprises``).

    The ETag names the data version, filters and tile, so a revalidation is answered 304
    without cutting the tile; the bytes come from the tile cache (gzip when accepted)."""
    from api.routers.webmap import map_query

    t0 = time.perf_counter()
    _check_tms(tileMatrixSetId)
    if f not in (None, "mvt"):
        from geo.errors import InvalidQueryError

        raise InvalidQueryError(f"f: tiles are available as 'mvt' only, got '{f}'.")
    q = map_query(request, store)
    verdicts = [v for v, _l, _c in _verdicts()]
    key = tile_key(store, q, tileMatrix, tileCol, tileRow, verdicts, px)
    headers, not_modified = tile_headers(request, key, t0)
    if not_modified is not None:
        return not_modified
    hits = TILES.hits
    hit = cached_tile(store, q, tileMatrix, tileCol, tileRow, verdicts, px, key=key)
    cached = TILES.hits > hits  # approximate under concurrency: for Server-Timing only
    body = hit.body
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = TILES.gzipped(key, hit)
        headers["Content-Encoding"] = "gzip"
    # the query string is valid for this store version: the lean path may answer the
    # next tiles of it from the cache (api.tilefast)
    remember_query(key, request.scope.get("query_string", b"").decode("latin-1"))
    if not cached and getattr(request.app.state, "warm_tiles", False):
        warm_tiles_soon(request.app.state.store, verdicts)  # a new load: once per version
    headers["Server-Timing"] = _timing(t0, "cache" if cached else "cut")
    return Response(body, media_type=MVT, headers=headers)


def tile_headers(request: Request, key: tuple[Any, ...],
                 t0: float) -> tuple[dict[str, str], Response | None]:
    """A tile's caching headers (ETag, Cache-Control, Vary), and the 304 answer when the
    client already holds it (``If-None-Match``); shared by the route and the lean path."""
    etag = etag_of(key)
    headers = {"ETag": etag, "Cache-Control": _cache_control(request, key),
               "Vary": "Accept-Encoding"}
    if _matches(request.headers.get("if-none-match"), etag):
        headers["Server-Timing"] = _timing(t0, "not modified")
        return headers, Response(status_code=304, headers=headers)
    return headers, None


def _timing(t0: float, desc: str) -> str:
    """Server-Timing of the tile (read by the map benchmark through Resource Timing)."""
    return f'tile;dur={(time.perf_counter() - t0) * 1000:.1f};desc="{desc}"'



def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or a list of (weak-compared) entity tags."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _cache_control(request: Request, key: tuple[Any, ...]) -> str:
    """A URL naming the current data version (``v=<version tag>`` of ``/map/meta``, as the
    page asks) cannot change: kept a day; any other URL is revalidated every time (a 304
    costs no tile)."""
    from api.tiles import version_tag

    v = request.query_params.get("v")
    if v is not None and v == version_tag(key[2]):
        return "private, max-age=86400"
    return "private, no-cache"


def install(app: FastAPI) -> None:
    """Include the routes and declare the Tiles conformance classes (the lean path of
    cached tiles, :class:`api.tilefast.LeanTiles`, is added by ``create_app`` as the
    innermost middleware)."""
    for uri in TILES_CONFORMANCE:
        if uri not in CONFORMANCE:
            CONFORMANCE.append(uri)
    app.include_router(router)
