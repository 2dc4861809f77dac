"""OGC API – Features Part 1/2/3 details that clients rely on.

Coordinates in other CRS are checked against closed-form oracles (axis swap for EPSG:4326
and EPSG:4490; the spherical Web Mercator formulas for EPSG:3857), not against pyproj.
"""

from __future__ import annotations

import math

import pytest
import shapely

from api.ogc import CRS84, OPENAPI_JSON

ITEMS = "/collections/enterprises/items"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
R = 6378137.0  # EPSG:3857 sphere radius


def _mercator(lon: float, lat: float) -> tuple[float, float]:
    return (R * math.radians(lon), R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))


def test_collection_lists_its_crs(loaded_client) -> None:  # noqa: ANN001
    doc = loaded_client.get("/collections/enterprises").json()
    assert doc["storageCrs"] == CRS84
    assert {CRS84, EPSG + "4326", EPSG + "4490", EPSG + "3857"} <= set(doc["crs"])
    conf = loaded_client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf


@pytest.mark.parametrize("code", ["4326", "4490"])
def test_lat_lon_axis_order(loaded_client, enterprises, code: str) -> None:  # noqa: ANN001
    r = loaded_client.get(ITEMS, params={"crs": EPSG + code, "limit": 100})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Crs"] == f"<{EPSG}{code}>"
    got = [c for f in r.json()["features"] for c in f["geometry"]["coordinates"]]
    want = [c for lon, lat in zip(enterprises.lon, enterprises.lat, strict=True)
            for c in (lat, lon)]
    assert got == pytest.approx(want, abs=1e-9)


def test_web_mercator(loaded_client, enterprises) -> None:  # noqa: ANN001
    r = loaded_client.get(ITEMS + "/1", params={"crs": EPSG + "3857"})
    assert r.headers["Content-Crs"] == f"<{EPSG}3857>"
    x, y = r.json()["geometry"]["coordinates"]
    ex, ey = _mercator(enterprises.lon.iloc[0], enterprises.lat.iloc[0])
    assert (x, y) == pytest.approx((ex, ey), abs=0.01)


def test_default_crs_is_named(loaded_client) -> None:  # noqa: ANN001
    assert loaded_client.get(ITEMS).headers["Content-Crs"] == f"<{CRS84}>"


def test_bbox_crs_in_lat_lon_and_mercator(loaded_client, enterprises) -> None:  # noqa: ANN001
    want = enterprises.cx[116:117, 23:24]["name"].tolist()
    latlon = loaded_client.get(ITEMS, params={"bbox": "23,116,24,117",
                                              "bbox-crs": EPSG + "4326"}).json()
    assert [f["properties"]["name"] for f in latlon["features"]] == want
    (x0, y0), (x1, y1) = _mercator(116, 23), _mercator(117, 24)
    merc = loaded_client.get(ITEMS, params={"bbox": f"{x0},{y0},{x1},{y1}",
                                            "bbox-crs": EPSG + "3857"}).json()
    assert [f["properties"]["name"] for f in merc["features"]] == want


def test_unknown_crs_is_a_400(loaded_client) -> None:  # noqa: ANN001
    for param in ("crs", "bbox-crs"):
        r = loaded_client.get(ITEMS, params={param: EPSG + "2000", "bbox": "1,1,2,2"})
        assert r.status_code == 400 and param in r.json()["description"]


def test_antimeridian_bbox(make_client, store) -> None:  # noqa: ANN001
    from api.testing import make_enterprises

    rows = [("东侧", "dyeing", "印染", "rectify", "", "", 179.5, 10.0),
            ("西侧", "dyeing", "印染", "rectify", "", "", -179.5, 10.0),
            ("中间", "dyeing", "印染", "rectify", "", "", 0.0, 10.0)]
    store.load_enterprises(make_enterprises(rows), loaded_by="t", source_name="a.csv",
                           source_sha256="0")
    body = make_client().get(ITEMS, params={"bbox": "179,5,-179,15"}).json()
    assert sorted(f["properties"]["name"] for f in body["features"]) == ["东侧", "西侧"]


@pytest.mark.parametrize(("value", "status", "n"), [
    ("true", 200, 3), ("false", 200, 3), ("TRUE", 200, 3), ("1", 200, 3), ("0", 200, 3),
    ("maybe", 400, None), ("yes", 400, None), ("", 400, None),
])
def test_boolean_parsing_is_strict(loaded_client, value: str, status: int, n) -> None:  # noqa: ANN001
    r = loaded_client.get(ITEMS, params={"needs_review": value})
    assert r.status_code == status, r.text
    if n is not None:
        assert r.json()["numberMatched"] == n  # the fixture flags every other enterprise
    else:
        assert "needs_review" in r.json()["description"]


def test_datetime_is_refused_explicitly(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get(ITEMS, params={"datetime": "2019-01-01T00:00:00Z"})
    assert r.status_code == 400 and "datetime" in r.json()["description"]


def test_limit_default_and_maximum(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(default_limit=2, max_limit=5)
    assert client.get(ITEMS).json()["numberReturned"] == 2
    assert client.get(ITEMS, params={"limit": 5}).json()["numberReturned"] == 5
    r = client.get(ITEMS, params={"limit": 6})
    assert r.status_code == 400 and "BASINWATCH_MAX_LIMIT=5" in r.json()["description"]
    doc = client.get("/openapi.json").json()
    # declared once and referred to, as GDAL's OAPIF driver (3.9+) needs to size its pages
    for path in ("/collections/{collectionId}/items", "/collections/enterprises/items"):
        params = doc["paths"][path]["get"]["parameters"]
        assert {"$ref": "#/components/parameters/limit"} in params
    limit = doc["components"]["parameters"]["limit"]
    assert (limit["name"], limit["in"]) == ("limit", "query")
    assert (limit["schema"]["default"], limit["schema"]["maximum"]) == (2, 5)
    # routes that page differently keep their own bounds: the declaration must be what
    # the endpoint enforces (schemathesis found /query/within accepting limit=0 and
    # /cases limit=10001 under a shared declaration that said 1..5)
    for path in ("/query/within", "/cases"):
        op = doc["paths"][path]["post" if path == "/query/within" else "get"]
        own = [p for p in op["parameters"] if p.get("name") == "limit"]
        assert len(own) == 1 and own[0]["schema"] != limit["schema"]
    assert client.post("/query/within?limit=0", json={"type": "Polygon", "coordinates": [
        [[116.3, 23.1], [116.6, 23.1], [116.6, 23.4], [116.3, 23.1]]]}).status_code == 200


def test_openapi_declares_filters_for_gdal(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get("/openapi.json")
    assert r.headers["content-type"] == OPENAPI_JSON
    doc = r.json()
    assert "/collections/{collectionId}/items/{featureId}" in doc["paths"]
    assert not any("collection_id" in p for p in doc["paths"])
    op = doc["paths"]["/collections/enterprises/items"]["get"]
    names = {p["name"]: p for p in op["parameters"] if "name" in p}
    assert {"verdict", "industry", "needs_review", "basin_id"} <= names.keys()
    assert names["needs_review"]["schema"]["type"] == "boolean"
    assert "cql2-text" in names["filter-lang"]["schema"]["enum"]
    assert "cql-text" in names["filter-lang"]["schema"]["enum"]  # what GDAL 3.6 looks for
    assert EPSG + "4326" in names["crs"]["schema"]["enum"]


def test_every_operation_documents_its_statuses(loaded_client) -> None:  # noqa: ANN001
    doc = loaded_client.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "422" not in codes, (path, method)
            assert {"400", "401", "403", "404", "413", "414", "429", "500"} <= codes, (path,
                                                                                       method)
            schema = op["responses"]["400"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Exception"}


@pytest.mark.parametrize(("path", "params"), [
    (ITEMS, {"limit": "abc"}),
    ("/query/radius", {"lon": "x", "lat": 23, "radius_m": 10}),
    ("/map/density", {"cell_m": "-1"}),
    ("/admin/audit", {"limit": "0"}),
    ("/nowhere", {}),
])
def test_errors_are_ogc_documents_with_stable_codes(loaded_client, path, params) -> None:  # noqa: ANN001
    r = loaded_client.get(path, params=params)
    assert r.status_code in (400, 401, 404), r.text
    body = r.json()
    assert set(body) == {"code", "description"}
    assert body["code"] in {"InvalidParameterValue", "Unauthorized", "NotFound"}


def test_method_not_allowed_is_an_ogc_document(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.delete(ITEMS)
    assert r.status_code == 405 and r.json()["code"] == "MethodNotAllowed"


def test_geo_errors_use_status_codes_not_class_names(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get("/collections/atlantis/items")
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    r = loaded_client.get("/query/radius", params={"lon": 116, "lat": 23, "radius_m": 10,
                                                   "crs": "Mars2000"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"


def test_huge_feature_id_is_not_found(loaded_client) -> None:  # noqa: ANN001
    for fid in ("99999999999999999999999", "-1", "0", "abc"):
        assert loaded_client.get(f"{ITEMS}/{fid}").status_code == 404


def test_cql_spatial_literal_is_bounded(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(max_vertices=10)
    ring = shapely.get_coordinates(shapely.Point(116.4, 23.2).buffer(0.5, quad_segs=4))
    wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"
    r = client.get(ITEMS, params={"filter": f"S_INTERSECTS(geometry, {wkt})"})
    assert r.status_code == 400 and "BASINWATCH_MAX_VERTICES=10" in r.json()["description"]
