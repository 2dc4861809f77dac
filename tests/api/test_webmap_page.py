"""The map page and its compact data endpoints (api/routers/webmap.py), no browser."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pytest
import shapely

import api.routers.webmap as webmap
from api.routers.webmap import aggregate_grid, parse_within
from geo.errors import InvalidQueryError

WHOLE = "110,20,118,26"
# around the three Lianjiang sample enterprises (lon 116.17-116.45, lat 23.25-23.30)
LIANJIANG_BOX = "POLYGON((116.1 23.2,116.5 23.2,116.5 23.35,116.1 23.35,116.1 23.2))"


def _inside(enterprises: gpd.GeoDataFrame, wkt: str) -> gpd.GeoDataFrame:
    return enterprises[shapely.intersects(shapely.from_wkt(wkt), enterprises.geometry.values)]


def test_root_serves_the_map_to_browsers_and_the_landing_page_otherwise(loaded_client) -> None:
    page = loaded_client.get("/", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="bw-config"' in page.text and "/basinwatch/boot.js" in page.text
    assert loaded_client.get("/").json()["links"]  # JSON landing page unchanged
    assert "bw-config" not in loaded_client.get("/", params={"f": "html"}).text
    assert loaded_client.get("/map").text == page.text


def test_page_loads_only_assets_the_app_serves(loaded_client) -> None:
    page = loaded_client.get("/map").text
    urls = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', page)
    assert urls, "the page links its JS/CSS"
    for url in urls:
        assert url.startswith("/static/map/") or url == "/map/theme.css", url
        assert loaded_client.get(url).status_code == 200, url
    # no layer data in the page: the enterprises are fetched from the API
    assert "潮南印染一厂" not in page
    theme = loaded_client.get("/map/theme.css")
    assert theme.headers["content-type"].startswith("text/css")
    from layers.catalog import rules

    for v in rules().verdicts:  # verdict colours from the rules catalog, as CSS classes
        assert f".bw-v-{v.id} {{ background: {v.colour}; }}" in theme.text


def test_enterprises_points_follow_bbox_and_filters(loaded_client, enterprises) -> None:
    body = loaded_client.get("/map/enterprises", params={"bbox": WHOLE, "zoom": 8}).json()
    assert body["mode"] == "points" and body["total"] == len(enterprises)
    fids = sorted(p[0] for p in body["points"])
    assert fids == list(range(1, len(enterprises) + 1))
    shut = loaded_client.get("/map/enterprises", params={
        "bbox": WHOLE, "zoom": 8, "verdict": "shutdown,rectify"}).json()
    assert shut["total"] == int(enterprises.verdict.isin(["shutdown", "rectify"]).sum())
    east = loaded_client.get("/map/enterprises", params={"bbox": "116,23,117,24", "zoom": 10})
    assert east.json()["total"] == int((enterprises.lon > 116).sum())


def test_enterprises_aggregate_into_grid_cells_when_many(
    loaded_client, enterprises, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webmap, "POINT_LIMIT", 2)
    body = loaded_client.get("/map/enterprises", params={"bbox": WHOLE, "zoom": 6}).json()
    assert body["mode"] == "grid"
    assert sum(c[2] for c in body["cells"]) == len(enterprises)
    assert len(body["cells"]) < len(enterprises)  # the Lianjiang three share a cell at z6


def test_aggregate_grid_counts_means_and_strongest_verdict() -> None:
    lon = np.array([0.1, 0.3, 1.5])
    lat = np.array([0.2, 0.4, 0.5])
    cells = aggregate_grid(lon, lat, np.array([3, 1, 4]), cell_deg=1.0, n_codes=5)
    assert sorted(cells) == [[0.3, 0.2, 2, 1], [0.5, 1.5, 1, 4]]
    assert aggregate_grid(lon[:0], lat[:0], np.array([], dtype=int), cell_deg=1, n_codes=5) == []


def test_search_by_name_and_uscc(loaded_client, enterprises) -> None:
    by_name = loaded_client.get("/map/search", params={"q": "印染"}).json()
    assert by_name["total"] == int(enterprises.name.str.contains("印染").sum())
    uscc = enterprises.uscc.iloc[3]
    by_code = loaded_client.get("/map/search", params={"q": uscc.lower()}).json()
    assert [r[2] for r in by_code["rows"]] == [uscc]
    assert by_code["rows"][0][1] == enterprises.name.iloc[3]
    assert loaded_client.get("/map/search", params={"q": "%%"}).status_code == 400


def test_area_counts_and_export_of_a_drawn_polygon(loaded_client, enterprises) -> None:
    inside = _inside(enterprises, LIANJIANG_BOX)
    body = loaded_client.get("/map/area", params={"within": LIANJIANG_BOX}).json()
    assert body["total"] == len(inside) == 3
    assert body["verdict"] == inside.verdict.value_counts().to_dict()
    assert sorted(r[1] for r in body["rows"]) == sorted(inside.name)
    csv = loaded_client.get("/exports/enforcement",
                            params={"format": "csv", "within": LIANJIANG_BOX,
                                    "verdict": "basin_standard"})
    assert csv.status_code == 200
    assert len(csv.text.strip().splitlines()) == 1 + int(inside.verdict.eq("basin_standard").sum())
    zone = loaded_client.get("/map/area", params={"basin_id": "maozhou"}).json()
    assert zone["total"] == int(enterprises.basin_id.eq("maozhou").sum())


def test_bad_within_is_a_400_naming_the_parameter(loaded_client) -> None:
    for bad in ("POINT(1 2)", "not wkt", "POLYGON((500 0,501 0,501 1,500 0))"):
        r = loaded_client.get("/map/area", params={"within": bad})
        assert r.status_code == 400 and "within" in r.json()["description"]


def test_parse_within_accepts_geojson_and_wkt() -> None:
    geo = '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}'
    assert parse_within(geo).equals(parse_within("POLYGON((0 0,1 0,1 1,0 0))"))
    assert parse_within("") is None
    with pytest.raises(InvalidQueryError, match="within"):
        parse_within("LINESTRING(0 0,1 1)")


def test_reference_layer_is_simplified_geojson(loaded_client) -> None:
    from layers.registry import load_layer

    full = load_layer("districts")
    body = loaded_client.get("/map/layers/districts").json()
    assert len(body["features"]) == len(full)
    assert set(body["features"][0]["properties"]) <= {"code", "name_zh", "city_zh", "label_at"}
    # each label anchor lies inside its own (full-resolution) district
    by_code = dict(zip(full["code"].astype(str), full.geometry.values, strict=True))
    for feat in body["features"]:
        lat, lon = feat["properties"]["label_at"]
        assert by_code[str(feat["properties"]["code"])].contains(shapely.Point(lon, lat))
    n_full = int(shapely.get_num_coordinates(full.geometry.values).sum())
    n_sent = sum(int(shapely.get_num_coordinates(shapely.geometry.shape(f["geometry"])))
                 for f in body["features"])
    assert n_sent < n_full
    assert loaded_client.get("/map/layers/nope").status_code == 404


def test_density_overlay(loaded_client, enterprises) -> None:
    body = loaded_client.get("/map/density", params={"cell_m": 5000}).json()
    assert body["total"] == len(enterprises)
    (s, w), (n, e) = body["bounds"]
    assert s <= enterprises.lat.min() and n >= enterprises.lat.max()
    assert w <= enterprises.lon.min() and e >= enterprises.lon.max()
    assert body["image"].startswith("data:image/png;base64,")
    none = loaded_client.get("/map/density", params={"verdict": "nope"}).json()
    assert none == {"total": 0, "bounds": None, "image": None}
