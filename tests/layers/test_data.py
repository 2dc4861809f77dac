"""Checks of the bundled reference geometries (layers/data/*.geojson)."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from layers.registry import layer_info, list_layers, load_group, load_layer

# Guangdong Albers equal-area CRS (same parameters as layers/build/_common.py, restated so
# the test does not trust the build code).
ALBERS = "+proj=aea +lat_0=23 +lon_0=113.5 +lat_1=21 +lat_2=25 +ellps=WGS84 +units=m"
BASINS = ("lianjiang", "maozhou", "shima", "danshui")
#: Published basin areas, km² (sources in layers/build/sources/basin_outlines.toml).
PUBLISHED_KM2 = {"lianjiang": 1353.0, "maozhou": 388.0, "shima": 1249.0, "danshui": 1308.0}
STANDARDS = {
    "lianjiang": "DB44/2051-2017",
    "maozhou": "DB44/2130-2018",
    "shima": "DB44/2050-2017",
    "danshui": "DB44/2050-2017",
}
FILE_LAYERS = [i.id for i in list_layers() if i.file is not None]


def km2(geom: shapely.Geometry) -> float:
    return float(gpd.GeoSeries([geom], crs="EPSG:4326").to_crs(ALBERS).area.iloc[0]) / 1e6


@pytest.fixture(scope="module")
def districts() -> gpd.GeoDataFrame:
    return load_layer("districts")


@pytest.fixture(scope="module")
def cities() -> gpd.GeoDataFrame:
    return load_layer("cities")


@pytest.fixture(scope="module")
def province(districts: gpd.GeoDataFrame) -> shapely.Geometry:
    return shapely.coverage_union_all(districts.geometry.values)


@pytest.fixture(scope="module")
def basins() -> gpd.GeoDataFrame:
    return load_group("basin").set_index("id")


@pytest.mark.parametrize("layer_id", FILE_LAYERS)
def test_layer_valid_wgs84_nonempty(layer_id: str) -> None:
    gdf = load_layer(layer_id)
    assert len(gdf) > 0
    assert gdf.crs.to_epsg() == 4326
    assert gdf.is_valid.all()
    assert not gdf.is_empty.any()
    assert set(gdf.geom_type) == {layer_info(layer_id).geometry_type}
    minx, miny, maxx, maxy = gdf.total_bounds  # inside the province box of domain.md
    assert 109.6 <= minx and maxx <= 117.4 and 20.1 <= miny and maxy <= 25.6


def test_cities_and_districts(districts: gpd.GeoDataFrame, cities: gpd.GeoDataFrame) -> None:
    assert len(cities) == 21
    assert len(districts) == 124
    assert districts["code"].str.fullmatch(r"44\d{4}").all()
    assert districts["code"].is_unique and cities["code"].is_unique
    assert set(districts["city_code"]) == set(cities["code"])
    # Dongguan and Zhongshan are one unit each: the city code is the district code.
    for code in ("441900", "442000"):
        assert districts.loc[districts["city_code"] == code, "code"].tolist() == [code]


def test_city_is_union_of_its_districts(
    districts: gpd.GeoDataFrame, cities: gpd.GeoDataFrame
) -> None:
    dissolved = districts.dissolve("city_code").geometry
    city = cities.set_index("code").geometry.loc[dissolved.index]
    diff = city.symmetric_difference(dissolved, align=False).to_crs(ALBERS).area / 1e6
    assert diff.max() < 0.01


def test_districts_do_not_overlap(districts: gpd.GeoDataFrame) -> None:
    assert shapely.coverage_is_valid(districts.geometry.values)
    total = districts.to_crs(ALBERS).area.sum() / 1e6
    assert 170_000 < total < 190_000  # Guangdong is about 179,800 km² of land


@pytest.mark.parametrize(
    ("lon", "lat", "code", "name"),
    [
        (116.38, 23.27, "440514", "潮南区"),  # 陈店
        (116.165, 23.295, "445281", "普宁市"),  # 流沙, Puning's seat
        (113.325, 23.138, "440106", "天河区"),  # Tianhe sports centre, Guangzhou
        (113.110, 23.030, "440604", "禅城区"),  # 祖庙, Foshan
        (113.750, 23.020, "441900", "东莞市"),  # Dongguan city centre
        (114.057, 22.543, "440304", "福田区"),  # Futian civic centre, Shenzhen
    ],
)
def test_known_point_in_district(
    districts: gpd.GeoDataFrame, lon: float, lat: float, code: str, name: str
) -> None:
    hit = districts[districts.contains(shapely.Point(lon, lat))]
    assert hit["code"].tolist() == [code]
    assert hit["name_zh"].tolist() == [name]


@pytest.mark.parametrize("basin_id", BASINS)
def test_basin_area_and_standard(basins: gpd.GeoDataFrame, basin_id: str) -> None:
    row = basins.loc[basin_id]
    area = km2(row.geometry)
    assert abs(area / PUBLISHED_KM2[basin_id] - 1) <= 0.10
    assert row["published_area_km2"] == PUBLISHED_KM2[basin_id]
    assert row["area_km2"] == pytest.approx(area, rel=0.01)
    assert row["standard"] == STANDARDS[basin_id]


def test_basins_do_not_overlap(basins: gpd.GeoDataFrame) -> None:
    for i, a in enumerate(BASINS):
        for b in BASINS[i + 1 :]:
            inter = shapely.intersection(basins.geometry[a], basins.geometry[b])
            assert km2(inter) < 1.0, (a, b)


@pytest.mark.parametrize("basin_id", BASINS)
def test_basin_on_land_in_province(
    basins: gpd.GeoDataFrame, province: shapely.Geometry, basin_id: str
) -> None:
    outside = shapely.difference(basins.geometry[basin_id], province)
    assert km2(outside) < 0.5


@pytest.mark.parametrize(
    ("lon", "lat", "basin_id"),
    [
        (116.38, 23.27, "lianjiang"),  # 陈店
        (116.17, 23.30, "lianjiang"),  # 流沙
        (113.936, 22.748, "maozhou"),  # 光明区 (wholly in the basin)
        (114.05, 22.72, "shima"),  # 观澜
        (114.46, 22.80, "danshui"),  # 淡水
        (113.325, 23.138, None),  # Tianhe, Guangzhou: no priority basin
        (114.057, 22.543, None),  # Futian, Shenzhen: drains to the Shenzhen River
    ],
)
def test_known_point_in_basin(
    basins: gpd.GeoDataFrame, lon: float, lat: float, basin_id: str | None
) -> None:
    hits = basins.index[basins.contains(shapely.Point(lon, lat))].tolist()
    assert hits == ([basin_id] if basin_id else [])


def test_parks_serve_lianjiang_and_lie_in_their_district(
    basins: gpd.GeoDataFrame, districts: gpd.GeoDataFrame
) -> None:
    parks = load_layer("parks")
    assert set(parks["id"]) == {
        "chaonan_dyeing_park",
        "chaoyang_dyeing_park",
        "puning_dyeing_park",
    }
    assert (parks["basin"] == "lianjiang").all()
    # 潮南's published site (陇田/井都 junction) sits on the approximate basin's south edge
    assert parks.intersects(basins.geometry["lianjiang"]).all()
    by_code = districts.set_index("code").geometry
    inside = [g.within(by_code[c])
              for g, c in zip(parks.geometry, parks["district_code"], strict=True)]
    assert all(inside)
    areas = parks.to_crs(ALBERS).area / 1e6
    assert areas.between(0.5, 5.0).all()


def test_guangfo_along_guangzhou_foshan_border(cities: gpd.GeoDataFrame) -> None:
    zone = load_layer("guangfo").geometry.iloc[0]
    by_name = cities.set_index("name_zh").geometry
    gz, fs = by_name["广州市"], by_name["佛山市"]
    assert km2(shapely.intersection(zone, gz)) > 100
    assert km2(shapely.intersection(zone, fs)) > 100
    assert km2(shapely.difference(zone, shapely.union(gz, fs))) < 0.01
    border = shapely.intersection(gz.boundary, fs.boundary)
    assert border.length > 0.5  # degrees: the shared border is >50 km long
    assert shapely.buffer(zone, 1e-6).covers(border)
    # ~5 km either side: far from the border is outside
    assert not zone.contains(shapely.Point(113.80, 23.30))  # 增城/黄埔 side of Guangzhou
