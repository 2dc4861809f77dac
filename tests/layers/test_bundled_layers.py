"""The bundled basins, region and parks against their documentation and published figures.

Areas are recomputed geodesically (``pyproj.Geod``, independent of the build's Albers
projection) and compared with what the data documents: ``area_km2`` and ``district_km2`` in
the GeoJSON and the per-district figures written in ``layers.toml``'s provenance.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
import shapely.ops
from pyproj import Geod

from geo.classify import classify
from geo.rules import apply_rules
from layers.catalog import DATA_DIR, read_data_toml
from layers.registry import load_bundled

GEOD = Geod(ellps="WGS84")
SOURCES = Path(__file__).resolve().parents[2] / "layers" / "build" / "sources"
#: Published areas (km²) and the tolerance asked of the approximations.
PUBLISHED = {"lianjiang": 1353.0, "maozhou": 388.0, "shima": 1249.0, "danshui": 1308.0}
TOLERANCE = 0.10


def geo_km2(geom: shapely.Geometry) -> float:
    if geom is None or geom.is_empty:
        return 0.0
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


@pytest.fixture(scope="module")
def districts() -> gpd.GeoDataFrame:
    return load_bundled("districts").set_index("code")


@pytest.fixture(scope="module")
def basins() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA_DIR / "basins.geojson").set_index("id")


@pytest.fixture(scope="module")
def provenance() -> dict[str, dict[str, object]]:
    return {e["id"]: e["provenance"] for e in read_data_toml("layers.toml")["layer"]}


def _short(name: str) -> str:
    return re.sub(r"(区|市|县)$", "", name)


def _documented(text: str, names: list[str]) -> dict[str, float]:
    """``name 123.4`` pairs for the given short district names in a provenance sentence."""
    out = {}
    for n in names:
        m = re.search(rf"{n} (\d+(?:\.\d+)?)", text)
        if m:
            out[n] = float(m.group(1))
    return out


@pytest.mark.parametrize("basin_id", list(PUBLISHED))
def test_documented_area_and_district_shares_recomputed(
    basin_id: str, basins: gpd.GeoDataFrame, districts: gpd.GeoDataFrame, provenance
) -> None:
    row = basins.loc[basin_id]
    geom = row.geometry
    area = geo_km2(geom)
    assert row["area_km2"] == pytest.approx(area, rel=3e-3)
    assert abs(area / PUBLISHED[basin_id] - 1) <= TOLERANCE
    shares = dict(part.split(":") for part in row["district_km2"].split(";"))
    assert set(shares) == {c for c in row["districts"].split(",")
                           if geo_km2(shapely.intersection(districts.geometry[c], geom)) > 0.05}
    method = str(provenance[basin_id]["method"])
    assert f"{row['area_km2']:,.1f}" in method  # the figure written in layers.toml
    names = {_short(districts.loc[c, "name_zh"]): c for c in shares}
    written = _documented(method, list(names))
    assert set(written) == set(names), method
    for short, code in names.items():
        actual = geo_km2(shapely.intersection(districts.geometry[code], geom))
        assert float(shares[code]) == pytest.approx(actual, rel=5e-3, abs=0.15), code
        assert written[short] == pytest.approx(actual, rel=5e-3, abs=0.15), short
    assert sum(float(v) for v in shares.values()) == pytest.approx(area, rel=5e-3)


def test_shima_is_shared_by_huizhou_and_dongguan_is_not_inflated(
    basins: gpd.GeoDataFrame, districts: gpd.GeoDataFrame
) -> None:
    shima = basins.geometry["shima"]
    by_city = {city: geo_km2(shapely.intersection(shima, districts[
        districts["city_zh"] == city].union_all())) for city in ("深圳市", "东莞市", "惠州市")}
    assert by_city["惠州市"] > 300  # the 潼湖 catchment (494 km², part to the 东江)
    assert by_city["东莞市"] < 700  # was 938 km², inflated to make up the area
    assert 200 < by_city["深圳市"] < 320  # 观澜河 (~190 km²) and the 平湖 tributaries


#: (name, lon, lat, basin) -- 潼湖 from《中国河湖大典》via Wikipedia; the others are the town
#: gazetteer's seats (layers/data/towns.csv), so geocoded addresses land where they should.
PLACES = [
    ("潼湖 (lake)", 114.200, 23.017, "shima"),
    ("沥林镇", None, None, "shima"),
    ("镇隆镇", None, None, "shima"),
    ("凤岗镇", None, None, "shima"),
    ("塘厦镇", None, None, "shima"),
    ("樟木头镇", None, None, "shima"),
    ("清溪镇", None, None, "shima"),
    ("谢岗镇", None, None, "shima"),
    ("常平镇", None, None, "shima"),
    ("桥头镇", None, None, "shima"),
    ("观澜街道", None, None, "shima"),
    ("福城街道", None, None, "shima"),
    ("黄江镇", None, None, None),  # 寒溪水, not the 石马河
    ("淡水街道", None, None, "danshui"),
    ("秋长街道", None, None, "danshui"),
    ("新圩镇", None, None, "danshui"),
    ("龙城街道", None, None, "danshui"),
    ("横岗街道", None, None, "danshui"),
    ("坪地街道", None, None, "danshui"),
    ("坪山街道", None, None, "danshui"),
    ("坑梓街道", None, None, "danshui"),
]


@pytest.mark.parametrize(("name", "lon", "lat", "basin_id"), PLACES)
def test_places_on_the_right_side_of_the_shima_danshui_divide(
    basins: gpd.GeoDataFrame, name: str, lon: float | None, lat: float | None,
    basin_id: str | None,
) -> None:
    if lon is None:
        towns = pd.read_csv(DATA_DIR / "towns.csv").set_index("name_zh")
        lon, lat = float(towns.loc[name, "lon"]), float(towns.loc[name, "lat"])
    hits = basins.index[basins.contains(shapely.Point(lon, lat))].tolist()
    assert hits == ([basin_id] if basin_id else []), name


def test_danshui_in_huicheng_stays_east_of_lilin(
    basins: gpd.GeoDataFrame, districts: gpd.GeoDataFrame
) -> None:
    part = shapely.intersection(basins.geometry["danshui"], districts.geometry["441302"])
    assert part.bounds[0] > 114.33  # was 114.28E, taking the 沥林 seat (114.29E)
    assert geo_km2(part) > 50  # 三栋 ... 紫溪口 along the 西枝江


def test_outline_groups_name_their_sources() -> None:
    with (SOURCES / "basin_outlines.toml").open("rb") as fh:
        src = tomllib.load(fh)
    known = set(src["sources"])
    for basin in src["basin"]:
        for group in basin["groups"]:
            cited = group.get("sources") or next(
                d["sources"] for d in src["divide"] if d["id"] == group["divide"])
            assert cited and set(cited) <= known, (basin["id"], group)
            assert group.get("follows") or group.get("divide")


# --------------------------------------------------------------------------- guangfo
@pytest.fixture(scope="module")
def guangfo_def() -> dict[str, object]:
    with (SOURCES / "regions.toml").open("rb") as fh:
        return next(r for r in tomllib.load(fh)["region"] if r["id"] == "guangfo")


def _border() -> shapely.Geometry:
    cities = load_bundled("cities").set_index("code").geometry
    return shapely.intersection(cities["440100"].boundary, cities["440600"].boundary)


def _geodesic_distance_m(point: shapely.Point, line: shapely.Geometry) -> float:
    """Distance from a point to the nearest vertex of a dense line (the border)."""
    xy = shapely.get_coordinates(line)
    _, _, d = GEOD.inv(np.full(len(xy), point.x), np.full(len(xy), point.y), xy[:, 0], xy[:, 1])
    return float(d.min())


def test_guangfo_definition_is_data(guangfo_def, districts: gpd.GeoDataFrame) -> None:
    zone = load_bundled("guangfo").iloc[0]
    assert zone["buffer_m"] == guangfo_def["width_m"] == 5000
    assert zone["districts"].split(",") == guangfo_def["districts"]
    assert "not a published figure" in guangfo_def["width_reason"]
    for code in ("440607", "440115", "440104", "440105"):  # 三水, 南沙, 越秀, 海珠
        assert geo_km2(shapely.intersection(zone.geometry, districts.geometry[code])) < 0.01
    shares = dict(p.split(":") for p in zone["district_km2"].split(";"))
    for code, km2 in shares.items():
        actual = geo_km2(shapely.intersection(zone.geometry, districts.geometry[code]))
        assert float(km2) == pytest.approx(actual, rel=5e-3, abs=0.01), code


def test_guangfo_chancheng_claim_corrected(provenance, districts: gpd.GeoDataFrame) -> None:
    zone = load_bundled("guangfo").geometry.iloc[0]
    chancheng = districts.geometry["440604"]
    border = _border()
    nearest = shapely.ops.nearest_points(chancheng, border)[0]
    d = _geodesic_distance_m(nearest, shapely.segmentize(border, 0.0005))
    assert 4700 < d < 5000  # just inside the 5 km width at its nearest point
    inside = geo_km2(shapely.intersection(zone, chancheng))
    assert inside < 0.2
    method = str(provenance["guangfo"]["method"])
    assert f"禅城 {inside:.2f}" in method and "was wrong" in method


# --------------------------------------------------------------------------- parks
@pytest.fixture(scope="module")
def park_defs() -> dict[str, dict[str, object]]:
    with (SOURCES / "park_outlines.toml").open("rb") as fh:
        return {p["id"]: p for p in tomllib.load(fh)["park"]}


def test_parks_have_their_published_area_and_position_error(park_defs) -> None:
    parks = load_bundled("parks").set_index("id")
    assert set(parks.index) == set(park_defs)
    for pid, d in park_defs.items():
        published = float(d["area_mu"]) * 10_000 / 15 / 1e6  # 1 亩 = 10000/15 m²
        assert geo_km2(parks.geometry[pid]) == pytest.approx(published, rel=0.01), pid
        assert parks.loc[pid, "accuracy_m"] == d["position_error_m"]
        assert parks.loc[pid, "status"] == "approximate"
    areas = sorted(round(geo_km2(g), 2) for g in parks.geometry)
    assert len(set(areas)) == 3  # no longer one templated 1.72 km² box each
    assert parks.loc["chaonan_dyeing_park", "location"].startswith("潮南区陇田镇与井都镇交界处")


@pytest.mark.parametrize("park_id", ["chaonan_dyeing_park", "puning_dyeing_park",
                                     "chaoyang_dyeing_park"])
def test_plant_in_the_real_park_outside_the_drawn_one_is_flagged(park_defs, park_id) -> None:
    """A dyeing plant in the real park but outside the drawn one is flagged for review.

    The real park may lie up to ``position_error_m`` from the drawn one.
    """
    park = load_bundled("parks").set_index("id").geometry[park_id]
    err = float(park_defs[park_id]["position_error_m"])
    c = park.centroid
    # the real park: the drawn one moved err - 100 m due east (geodesic offset)
    lon2, lat2, _ = GEOD.fwd(c.x, c.y, 90.0, err - 100.0)
    real = shapely.affinity.translate(park, lon2 - c.x, lat2 - c.y)
    plant = real.centroid
    assert real.contains(plant) and not park.contains(plant)
    gdf = gpd.GeoDataFrame({"industry_id": ["dyeing"], "park_claimed": ["是"]},
                           geometry=[plant], crs="EPSG:4326")
    out = apply_rules(classify(gdf))
    assert out["park_id"].iloc[0] == ""
    assert bool(out["needs_review"].iloc[0])
    assert "near_park_boundary" in out["review_reasons"].iloc[0]
