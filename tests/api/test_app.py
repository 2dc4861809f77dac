"""The HTTP API over both stores: OGC core, CQL2, spatial queries, errors, auth."""

from __future__ import annotations

import sys
import types

import geopandas as gpd
import pytest
import shapely

from api.testing import READER_KEY
from geo.schema import ENFORCEMENT_COLUMNS

ITEMS = "/collections/enterprises/items"


def _names(body: dict) -> list[str]:
    return [ft["properties"]["name"] for ft in body["features"]]


def test_landing_and_conformance(loaded_client) -> None:  # noqa: ANN001
    body = loaded_client.get("/").json()
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels.keys()
    assert loaded_client.get(rels["service-desc"]).json()["openapi"].startswith("3.0")
    conf = loaded_client.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("ogcapi-features-1/1.0/conf/core") for c in conf)
    assert any(c.endswith("conf/cql2-text") for c in conf)
    html = loaded_client.get("/", params={"f": "html"})
    assert html.headers["content-type"].startswith("text/html") and "<html" in html.text


def test_collection_metadata(loaded_client, enterprises: gpd.GeoDataFrame) -> None:  # noqa: ANN001
    ids = [c["id"] for c in loaded_client.get("/collections").json()["collections"]]
    assert "enterprises" in ids
    doc = loaded_client.get("/collections/enterprises").json()
    assert doc["extent"]["spatial"]["bbox"][0] == pytest.approx(list(enterprises.total_bounds))
    assert any(link["rel"] == "items" for link in doc["links"])
    qa = loaded_client.get("/collections/enterprises/queryables").json()
    assert set(ENFORCEMENT_COLUMNS) <= set(qa["properties"])


def test_items_paging_follows_next_links(loaded_client, enterprises) -> None:  # noqa: ANN001
    url, seen, pages = ITEMS + "?limit=4", [], 0
    while url:
        r = loaded_client.get(url)
        assert r.headers["content-type"] == "application/geo+json"
        body = r.json()
        assert body["numberMatched"] == len(enterprises)
        assert body["numberReturned"] == len(body["features"])
        seen += _names(body)
        pages += 1
        url = next((ln["href"] for ln in body["links"] if ln["rel"] == "next"), None)
    assert seen == enterprises["name"].tolist() and pages == 2


def test_items_bbox_and_property_filters(loaded_client, enterprises) -> None:  # noqa: ANN001
    body = loaded_client.get(ITEMS, params={"bbox": "116,23,117,24"}).json()
    assert _names(body) == enterprises.cx[116:117, 23:24]["name"].tolist()
    body = loaded_client.get(ITEMS, params={"verdict": "shutdown", "industry": "印染"}).json()
    exp = enterprises.loc[(enterprises.verdict == "shutdown") & (enterprises.industry == "印染")]
    assert _names(body) == exp["name"].tolist()
    geom = shapely.geometry.shape(body["features"][0]["geometry"])
    assert geom.equals(exp.geometry.iloc[0])


def test_items_cql2_filter(loaded_client, enterprises) -> None:  # noqa: ANN001
    cql = "industry IN ('印染','造纸') AND NOT verdict = 'shutdown'"
    body = loaded_client.get(ITEMS, params={"filter": cql, "filter-lang": "cql2-text"}).json()
    exp = enterprises.loc[enterprises.industry.isin(["印染", "造纸"])
                          & (enterprises.verdict != "shutdown")]
    assert _names(body) == exp["name"].tolist() and body["numberMatched"] == len(exp)


def test_single_feature(loaded_client, enterprises) -> None:  # noqa: ANN001
    ft = loaded_client.get(ITEMS + "/2").json()
    assert ft["id"] == 2 and ft["properties"]["name"] == enterprises.iloc[1]["name"]
    r = loaded_client.get(ITEMS + "/999")
    assert r.status_code == 404 and "999" in r.json()["description"]


def test_items_csv_and_html(loaded_client, enterprises) -> None:  # noqa: ANN001
    import io

    import pandas as pd

    r = loaded_client.get(ITEMS, params={"f": "csv", "verdict": "basin_standard"})
    assert r.headers["content-type"].startswith("text/csv")
    df = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert df["name"].tolist() == enterprises.loc[enterprises.verdict == "basin_standard",
                                                   "name"].tolist()
    html = loaded_client.get(ITEMS, params={"f": "html"}).text
    assert all(name in html for name in enterprises["name"])


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"filter": "verdict ="}, "filter"),
        ({"filter": "colour = 'red'"}, "colour"),
        ({"filter-lang": "cql2-json", "filter": "a=1"}, "filter-lang"),
        ({"colour": "red"}, "colour"),
        ({"f": "xml"}, "f"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(loaded_client, params, needle) -> None:  # noqa: ANN001
    r = loaded_client.get(ITEMS, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"code", "description"} and needle in body["description"]


def test_unknown_collection_is_404(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get("/collections/atlantis/items")
    assert r.status_code == 404 and "atlantis" in r.json()["description"]


def test_within_polygon_with_counts(loaded_client, enterprises) -> None:  # noqa: ANN001
    poly = shapely.box(116.0, 23.0, 117.0, 24.0)
    r = loaded_client.post("/query/within", json=shapely.geometry.mapping(poly))
    assert r.status_code == 200, r.text
    body = r.json()
    inside = enterprises.loc[enterprises.intersects(poly)]
    assert _names(body) == inside["name"].tolist()
    assert body["counts"]["verdict"] == inside["verdict"].value_counts().to_dict()
    assert body["counts"]["industry"] == inside["industry"].value_counts().to_dict()
    bad = loaded_client.post("/query/within", json={"type": "Point", "coordinates": [1, 2]})
    assert bad.status_code == 400 and "Polygon" in bad.json()["description"]


def test_within_polygon_in_gcj02(loaded_client, enterprises) -> None:  # noqa: ANN001
    from geo.crs import from_wgs84

    poly = shapely.box(116.0, 23.0, 117.0, 24.0)
    gcj = shapely.transform(poly, lambda xy: __import__("numpy").column_stack(
        from_wgs84(xy[:, 0], xy[:, 1], "GCJ02")))
    body = loaded_client.post("/query/within", params={"crs": "GCJ02"},
                              json=shapely.geometry.mapping(gcj)).json()
    assert _names(body) == enterprises.loc[enterprises.intersects(poly), "name"].tolist()


def test_radius(loaded_client, enterprises) -> None:  # noqa: ANN001
    first = enterprises.iloc[0]
    body = loaded_client.get("/query/radius", params={
        "lon": first.lon, "lat": first.lat, "radius_m": 5_000}).json()
    # 0.02 degrees (~2.5 km) apart: the two Chaonan dyeing works, nothing else within 5 km
    assert _names(body) == enterprises["name"].iloc[:2].tolist()
    assert body["counts"]["industry"] == {"印染": 2}
    r = loaded_client.get("/query/radius", params={"lon": 116, "lat": 23, "radius_m": -1})
    assert r.status_code == 400 and "radius_m" in r.json()["description"]
    r = loaded_client.get("/query/radius", params={"lon": 116, "lat": 23, "radius_m": 10,
                                                   "crs": "Mars2000"})
    assert r.status_code == 400 and "Mars2000" in r.json()["description"]


def test_reads_can_be_closed(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(read_open=False)
    r = client.get(ITEMS)
    assert r.status_code == 401 and "X-API-Key" in r.json()["description"]
    assert client.get(ITEMS, headers={"X-API-Key": "wrong-key-0123456789"}).status_code == 401
    ok = client.get(ITEMS, headers={"X-API-Key": READER_KEY})
    assert ok.status_code == 200 and ok.json()["numberMatched"] == len(enterprises)
    bearer = client.get(ITEMS, headers={"Authorization": f"Bearer {READER_KEY}"})
    assert bearer.status_code == 200


def test_reference_layer_collections(make_client, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    polys = gpd.GeoDataFrame(
        {"id": ["lianjiang", "maozhou"], "name_zh": ["练江流域", "茅洲河流域"]},
        geometry=[shapely.box(116, 23, 117, 24), shapely.box(113.8, 22.6, 114.0, 22.9)],
        crs="EPSG:4326",
    )
    fake = types.ModuleType("layers.registry")
    fake.list_layers = lambda: [{"id": "basins", "title_zh": "重点流域", "title_en": "Basins"}]
    fake.layer_info = lambda lid: {"id": lid, "title_zh": "重点流域", "title_en": "Basins"}
    fake.load_layer = lambda lid: polys
    monkeypatch.setitem(sys.modules, "layers.registry", fake)
    client = make_client()
    ids = [c["id"] for c in client.get("/collections").json()["collections"]]
    assert ids == ["basins", "enterprises"]
    body = client.get("/collections/basins/items", params={"filter": "name_zh LIKE '练江%'"}).json()
    assert [ft["id"] for ft in body["features"]] == ["lianjiang"]
    ft = client.get("/collections/basins/items/maozhou").json()
    assert ft["properties"]["name_zh"] == "茅洲河流域"
    doc = client.get("/collections/basins").json()
    assert doc["extent"]["spatial"]["bbox"][0] == pytest.approx(list(polys.total_bounds))


#: Landmarks with known district and basin (tests/layers/test_data.py, from the published
#: basin outlines and district boundaries), and what the plan requires of dyeing there:
#: 表2 第6项 练江流域 印染 outside the planned parks must exit (shutdown); 茅洲河 印染 and
#: 造纸 meet the basin standard DB44/2130-2018; Tianhe (Guangzhou) is in no priority basin.
LANDMARKS = [
    # lon, lat, city, district, district_code, basin_id, dyeing verdict, dyeing standard
    (116.38, 23.27, "汕头市", "潮南区", "440514", "lianjiang", "shutdown", None),  # 陈店
    (116.17, 23.30, "揭阳市", "普宁市", "445281", "lianjiang", "shutdown", None),  # 流沙
    (113.936, 22.748, "深圳市", "光明区", "440311", "maozhou", "basin_standard",
     "DB44/2130-2018"),  # 光明区, wholly in the Maozhou basin
    (113.325, 23.138, "广州市", "天河区", "440106", "", "no_action", None),  # 天河体育中心
]


@pytest.mark.parametrize(("lon", "lat", "city", "district", "code", "basin", "dyeing", "std"),
                         LANDMARKS, ids=["chendian", "liusha", "guangming", "tianhe"])
def test_point_query_at_landmarks(loaded_client, enterprises, lon, lat, city, district,  # noqa: ANN001
                                  code, basin, dyeing, std) -> None:
    """/query/point against landmarks of known place and plan requirement (not against
    the function the endpoint calls)."""
    r = loaded_client.get("/query/point", params={"lon": lon, "lat": lat})
    assert r.status_code == 200, r.text
    body = r.json()
    loc = body["location"]
    assert (loc["city"], loc["district"], loc["district_code"], loc["basin_id"]) == (
        city, district, code, basin)
    assert (loc["lon"], loc["lat"]) == (lon, lat)
    by_industry = {i["industry_id"]: i for i in body["industries"]}
    assert len(by_industry) == 12
    assert by_industry["dyeing"]["verdict"] == dyeing
    if std:
        assert std in by_industry["dyeing"]["standards"]
        assert std in by_industry["paper"]["standards"]
    assert body["district_enterprises"]["district_code"] == code
    # the six fixture rows carry no district code: none is counted in any district
    assert (enterprises["district_code"] == "").all()
    assert sum(body["district_enterprises"]["industry"].values()) == 0


def test_point_query_rejects_bad_points(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get("/query/point", params={"lon": 200, "lat": 23})
    assert r.status_code == 400 and "lon" in r.json()["description"]
    r = loaded_client.get("/query/point", params={"lon": 108.32, "lat": 22.82})  # Nanning
    assert r.status_code in (400, 422) and "Guangdong" in r.text


def test_api_serves_units_deadlines_and_status(make_client, store, tmp_path) -> None:  # noqa: ANN001
    """A registry XLSX with its 设备清单 sheet, uploaded and loaded: the items carry the
    flagged units, the deadline and its status; the queryables and the filter know them."""
    import openpyxl

    from api.testing import EDITOR_KEY

    wb = openpyxl.Workbook()
    wb.active.append(["统一社会信用代码", "企业名称", "行业", "经度", "纬度"])
    wb.active.append(["", "深圳某印染厂", "印染", 114.25, 22.72])
    ws = wb.create_sheet("设备清单")
    ws.append(["企业名称", "设备编号", "设备类型", "锅炉蒸吨(t/h)"])
    ws.append(["深圳某印染厂", "1号锅炉", "燃煤锅炉", 6])
    wb.save(tmp_path / "名录.xlsx")
    client = make_client()
    with (tmp_path / "名录.xlsx").open("rb") as fh:
        resp = client.post("/registry?load=true", headers={"X-API-Key": EDITOR_KEY},
                           files={"file": ("名录.xlsx", fh)})
    assert resp.status_code == 201, resp.text
    assert resp.json()["units"] == 1
    items = client.get("/collections/enterprises/items").json()["features"]
    props = items[0]["properties"]
    assert props["units"].startswith("1号锅炉（限期整改") and props["unit_count"] == 1
    assert props["deadline"] == "2019-12-31"
    assert props["deadline_status"] in ("pending", "overdue")  # as of the day the test runs
    q = client.get("/collections/enterprises/queryables").json()["properties"]
    assert {"deadline", "deadline_status", "units", "price_measures"} <= set(q)
    hits = client.get("/collections/enterprises/items",
                      params={"filter": "deadline_status IN ('pending','overdue')",
                              "filter-lang": "cql2-text"}).json()
    assert hits["numberMatched"] == 1
