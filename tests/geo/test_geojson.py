"""geo.geojson: the column-wise GeoJSON text, parsed back by ``json`` and by GDAL and
compared with values written by hand."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.geojson import feature_collection_chunks

TEXT = ['q"uote', "back\\slash", "ctl\x01\x1fx", "new\nline", "潮南区", None, "", "tab\t"]


def _frame() -> gpd.GeoDataFrame:
    n = len(TEXT)
    return gpd.GeoDataFrame({
        "name": pd.array(TEXT, dtype="string"),
        "obj": pd.Series(TEXT, dtype=object),
        "value": [1.5, 2.0, np.nan, -0.0, 1e20, np.inf, 1e-7, 123456.1234567],
        "count": np.arange(n, dtype=np.int64),
        "flag": [True, False] * (n // 2),
        "maybe": pd.array([True, None, False, None, True, True, False, None], dtype="boolean"),
        "mixed": pd.Series([1, "a", None, 2.5, True, "b", 3, "c"], dtype=object),
    }, geometry=[shapely.Point(116.123456789, 23.000000049), None, *[
        shapely.Point(113 + i / 10, 22 + i / 10) for i in range(n - 2)]], crs="EPSG:4326")


def _text(frame: gpd.GeoDataFrame, **kw) -> str:  # noqa: ANN003
    return b"".join(feature_collection_chunks(frame, **kw)).decode("utf-8")


def test_values_parse_back_exactly() -> None:
    frame = _frame()
    doc = json.loads(_text(frame, members={"basinwatch:provenance": {"a": 1}}, rows=3))
    assert doc["type"] == "FeatureCollection" and doc["basinwatch:provenance"] == {"a": 1}
    props = [f["properties"] for f in doc["features"]]
    assert [p["name"] for p in props] == TEXT and [p["obj"] for p in props] == TEXT
    expected = [1.5, 2.0, None, -0.0, 1e20, None, 1e-7, 123456.1234567]  # NaN/inf: null
    got = [p["value"] for p in props]
    assert got == expected and all(isinstance(v, float) for v in got if v is not None)
    assert math.copysign(1, got[3]) == -1.0
    assert [p["count"] for p in props] == list(range(len(TEXT)))
    assert [p["flag"] for p in props] == [True, False] * 4
    assert [p["maybe"] for p in props] == [True, None, False, None, True, True, False, None]
    assert [p["mixed"] for p in props] == [1, "a", None, 2.5, True, "b", 3, "c"]
    assert list(props[0]) == list(frame.columns.drop("geometry"))  # column order kept
    geoms = [f["geometry"] for f in doc["features"]]
    assert geoms[0] == {"type": "Point", "coordinates": [116.1234568, 23.0]}  # 7 decimals
    assert geoms[1] is None
    assert [f["type"] for f in doc["features"]] == ["Feature"] * len(TEXT)


def test_gdal_reads_the_same_table(tmp_path) -> None:  # noqa: ANN001
    frame = _frame().drop(columns=["mixed"])
    path = tmp_path / "x.geojson"
    path.write_text(_text(frame, rows=5), encoding="utf-8")
    got = pyogrio.read_dataframe(path)
    assert [None if pd.isna(v) else v for v in got["name"]] == TEXT
    assert got["value"].dtype == np.float64  # 2.0 kept as a real, not an integer field
    assert got["count"].tolist() == list(range(len(TEXT)))
    assert got["flag"].tolist() == [True, False] * 4


def test_empty_frame_is_an_empty_collection() -> None:
    doc = json.loads(_text(_frame().iloc[:0]))
    assert doc == {"type": "FeatureCollection", "features": []}
