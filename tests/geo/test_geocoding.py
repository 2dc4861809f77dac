"""Tests for geo.geocoding and the offline gazetteer provider (geo._gazetteer)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from geo._gazetteer import OfflineGeocoder, load_towns, parse_addresses
from geo.crs import wgs84_to_gcj02
from geo.errors import GeocodeError
from geo.geocoding import (
    BaseGeocoder,
    geocode,
    get_geocoder,
    list_geocoders,
    register_geocoder,
)
from geo.ingest import read_registry
from geo.schema import GEOCODE_COLUMNS, REJECTED_COLUMNS

# Tiny inline reference layers (boxes roughly where the units are; WGS84).
DISTRICTS = gpd.GeoDataFrame(
    {
        "code": ["440311", "440306", "440514", "440513", "441900"],
        "name_zh": ["光明区", "宝安区", "潮南区", "潮阳区", "东莞市"],
        "city_code": ["440300", "440300", "440500", "440500", "441900"],
        "city_zh": ["深圳市", "深圳市", "汕头市", "汕头市", "东莞市"],
    },
    geometry=[box(113.85, 22.70, 114.0, 22.85), box(113.75, 22.50, 113.95, 22.85),
              box(116.2, 23.05, 116.6, 23.3), box(116.3, 23.2, 116.7, 23.4),
              box(113.5, 22.65, 114.25, 23.15)],
    crs="EPSG:4326",
)
CITIES = gpd.GeoDataFrame(
    {"code": ["440300", "440500", "441900"], "name_zh": ["深圳市", "汕头市", "东莞市"]},
    geometry=[box(113.75, 22.45, 114.6, 22.85), box(116.2, 23.05, 116.9, 23.5),
              box(113.5, 22.65, 114.25, 23.15)],
    crs="EPSG:4326",
)
# the same town name in two districts, to check matching respects the district
TOWNS = pd.DataFrame(
    {
        "name_zh": ["公明街道", "沙井街道", "和平镇", "和平镇", "长安镇"],
        "district_code": ["440311", "440306", "440513", "440514", "441900"],
        "district_zh": ["光明区", "宝安区", "潮阳区", "潮南区", "东莞市"],
        "city_zh": ["深圳市", "深圳市", "汕头市", "汕头市", "东莞市"],
        "lon": [113.895, 113.83, 116.55, 116.45, 113.80],
        "lat": [22.785, 22.735, 23.24, 23.20, 22.815],
    }
)


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import geo.geocoding

    monkeypatch.setattr(geo.geocoding, "_PROVIDERS", dict(geo.geocoding._PROVIDERS))


@pytest.fixture
def geocoder() -> OfflineGeocoder:
    return OfflineGeocoder(districts=DISTRICTS, cities=CITIES, towns=TOWNS)


def test_town_precision_respects_district(geocoder: OfflineGeocoder) -> None:
    addresses = pd.Series(
        ["汕头市潮阳区和平镇工业路", "汕头市潮南区和平镇", "广东省深圳市光明区公明街道1号",
         "东莞市长安镇振安路", "深圳宝安区沙井"],
        index=[10, 11, 12, 13, 14],
    )
    out = geocoder.geocode(addresses)
    assert out.index.tolist() == [10, 11, 12, 13, 14]
    assert (out["geocode_precision"] == "town").all()
    # 和平镇 exists in both districts: each address gets its own district's town
    assert out.loc[10, "lon"] == 116.55 and out.loc[11, "lon"] == 116.45
    assert out.loc[10, "geocode_unit_code"] == "440513"
    assert out.loc[11, "geocode_unit_code"] == "440514"
    # cpca does not know 光明区 (post-2018): found through the districts layer
    assert out.loc[12, "geocode_unit"] == "公明街道"
    assert out.loc[12, "geocode_unit_code"] == "440311"
    # a city without districts (东莞) and a short town name right after the district
    assert out.loc[13, "geocode_unit"] == "长安镇"
    assert out.loc[14, "geocode_unit"] == "沙井街道"


def test_district_and_city_precision(geocoder: OfflineGeocoder) -> None:
    out = geocoder.geocode(pd.Series(["深圳市光明区华夏路8号", "汕头市某某大道", "潮南区不存在镇"]))
    assert out["geocode_precision"].tolist() == ["district", "city", "district"]
    assert out.loc[0, "geocode_unit"] == "光明区" and out.loc[0, "geocode_unit_code"] == "440311"
    assert out.loc[1, "geocode_unit"] == "汕头市" and out.loc[1, "geocode_unit_code"] == "440500"
    # representative points lie inside their polygons
    pts = gpd.points_from_xy(out["lon"], out["lat"])
    assert DISTRICTS.geometry[0].contains(pts[0]) and CITIES.geometry[1].contains(pts[1])


def test_unknown_addresses_not_placed(geocoder: OfflineGeocoder) -> None:
    out = geocoder.geocode(pd.Series(["随便写的", "北京市朝阳区建国路", ""]))
    assert out["lon"].isna().all() and (out["geocode_precision"] == "").all()


def test_parse_addresses_empty_and_fallback() -> None:
    assert parse_addresses(pd.Series([], dtype=object)).empty
    parsed = parse_addresses(pd.Series(["无法解析的文字"]))
    assert parsed.loc[0, "remainder"] == "无法解析的文字" and parsed.loc[0, "city"] == ""


def _ingested() -> pd.DataFrame:
    glon, glat = wgs84_to_gcj02(113.9, 22.78)
    return pd.DataFrame(
        {
            "row": [2, 3, 4, 5],
            "uscc": ["", "", "", ""],
            "name": ["甲", "乙", "丙", "丁"],
            "industry_id": ["dyeing"] * 4,
            "industry": ["印染"] * 4,
            "address": ["", "汕头市潮阳区和平镇", "深圳市光明区华夏路", "火星基地"],
            "lon_in": [float(glon), np.nan, np.nan, np.nan],
            "lat_in": [float(glat), np.nan, np.nan, np.nan],
            "crs_in": ["GCJ02", "WGS84", "WGS84", "WGS84"],
            "park_claimed": [""] * 4,
            "data_issues": [""] * 4,
        }
    )


def test_geocode_frame(geocoder: OfflineGeocoder) -> None:
    located, rejected = geocode(_ingested(), provider=geocoder)
    assert located.crs.to_epsg() == 4326
    assert all(c in located for c in GEOCODE_COLUMNS) and "geocode_unit_code" in located
    assert located["row"].tolist() == [2, 3, 4]
    assert located["geocode_precision"].tolist() == ["coordinates", "town", "district"]
    # GCJ-02 input converted back to WGS84
    assert located.loc[0, "lon"] == pytest.approx(113.9, abs=1e-7)
    assert located.loc[0, "lat"] == pytest.approx(22.78, abs=1e-7)
    assert (located.geometry.x == located["lon"]).all()
    assert list(rejected.columns) == list(REJECTED_COLUMNS)
    assert rejected["row"].tolist() == [5] and rejected.loc[0, "reason"] == "geocode_failed"
    assert "火星基地" in rejected.loc[0, "message"] and rejected.loc[0, "field"] == "地址"


def test_geocode_pipeline_from_file(tmp_path: Path, geocoder: OfflineGeocoder) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "企业名称,行业,地址,经度,纬度,坐标系\n"
        "甲,印染,汕头市潮南区和平镇,116.45,23.2,百度\n"
        "乙,印染,深圳市光明区公明街道,0,0,\n"
        "丙,印染,无名地方,,,\n",
        encoding="utf-8",
    )
    ing = read_registry(path)
    located, rejected = geocode(ing.accepted, provider=geocoder)
    assert len(located) + len(rejected) == ing.source_rows
    assert located["geocode_precision"].tolist() == ["coordinates", "town"]
    assert located.loc[0, "lon"] < 116.45  # BD-09 shifted back west
    assert rejected["row"].tolist() == [4]


def test_provider_registry() -> None:
    assert list_geocoders()["offline"].endswith("OfflineGeocoder")
    with pytest.raises(GeocodeError, match="online providers are not configured"):
        get_geocoder("amap")
    with pytest.raises(GeocodeError, match="Unknown geocoding provider"):
        get_geocoder("nope")
    register_geocoder("_test_bad", "geo.schema.INGEST_COLUMNS")
    with pytest.raises(GeocodeError, match="not a BaseGeocoder"):
        get_geocoder("_test_bad")


class _FixedGeocoder(BaseGeocoder):
    name = "fixed"

    def __init__(self, *, lon: float = 113.0) -> None:
        self.lon = lon

    def geocode(self, addresses: pd.Series) -> pd.DataFrame:
        return pd.DataFrame(
            {"lon": self.lon, "lat": 23.0, "geocode_precision": "city",
             "geocode_unit": "x", "geocode_unit_code": "1"},
            index=addresses.index,
        )


def test_registered_custom_provider_used_by_name() -> None:
    register_geocoder("_test_fixed", f"{__name__}._FixedGeocoder")
    assert get_geocoder("_test_fixed", lon=114.0).lon == 114.0
    located, rejected = geocode(_ingested(), provider="_test_fixed")
    assert len(located) == 4 and rejected.empty
    assert (located.loc[1:, "lon"] == 113.0).all()


def test_default_offline_provider_with_bundled_layers() -> None:
    g = get_geocoder("offline")
    assert isinstance(g, OfflineGeocoder)
    out = g.geocode(pd.Series(["揭阳市普宁市流沙东街道", "深圳市龙华区观澜街道"]))
    assert (out["geocode_precision"] == "town").all()
    assert out["geocode_unit_code"].tolist() == ["445281", "440309"]


def test_bundled_towns_file() -> None:
    towns = load_towns()
    assert towns["lon"].between(109.6, 117.4).all() and towns["lat"].between(20.1, 25.6).all()
    assert not towns.duplicated(["name_zh", "district_code"]).any()
    assert {"accuracy_m", "source"} <= set(towns.columns)
