"""geo.export's geographic-frame guard: exact messages (issue 16, survivors of
``_geo_frame``). Oracle: the message texts written here by hand."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from _export_fixtures import enforcement_frame, rejected_frame
from shapely.geometry import Point

from geo import export as E
from geo.parallel import Job, JobStats


def test_geo_frame_needs_a_geodataframe() -> None:
    with pytest.raises(E.ExportError) as e:
        E._geo_frame(pd.DataFrame({"a": [1]}))
    assert str(e.value) == "Cannot export a geographic format from a frame without geometry."


def test_geo_frame_needs_a_crs() -> None:
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(113.0, 22.0)])
    with pytest.raises(E.ExportError) as e:
        E._geo_frame(gdf)
    assert str(e.value) == (
        "The enforcement list has no CRS; set it with .set_crs('EPSG:4326') before export."
    )


def test_write_geojson_rounds_coordinates_to_7_decimals(tmp_path) -> None:
    gdf = enforcement_frame()
    gdf = gdf.set_geometry(gpd.points_from_xy([113.123456789123] * len(gdf),
                                              [22.987654321987] * len(gdf)), crs="EPSG:4326")
    path = E.write_geojson(gdf, tmp_path / "e.geojson")
    doc = json.loads(path.read_text(encoding="utf-8"))
    for f in doc["features"]:
        assert f["geometry"]["coordinates"] == [113.1234568, 22.9876543]


def test_export_all_fills_stats_and_returns_also_paths(tmp_path) -> None:
    extra = tmp_path / "extra.txt"

    def write_extra() -> Path:
        extra.write_text("x", encoding="utf-8")
        return extra

    stats: dict = {}
    paths = E.export_all(enforcement_frame(), rejected_frame(), tmp_path / "o",
                         also=[Job(stage="extra", rows=1, fn=write_extra)], stats=stats)
    assert paths["extra"] == extra and extra.read_text(encoding="utf-8") == "x"
    assert {"csv", "geojson", "xlsx", "gpkg", "rejected", "extra"} <= set(stats)
    assert all(isinstance(s, JobStats) for s in stats.values())


def test_rejection_titles_fall_back_to_the_code() -> None:
    # oracle: issues.toml read here with tomllib; issues without title_zh keep their code
    import tomllib

    raw = tomllib.loads((Path(E.__file__).parents[1] / "layers" / "data" / "issues.toml")
                        .read_text(encoding="utf-8"))["issue"]
    want = {code: item.get("title_zh", code) for code, item in raw.items()}
    assert any("title_zh" not in item for item in raw.values())  # the fallback is used
    assert E._rejection_titles() == want


def test_rejected_summary_by_reason_with_total() -> None:
    import tomllib

    labels = tomllib.loads((Path(E.__file__).parents[1] / "layers" / "data" / "labels.toml")
                           .read_text(encoding="utf-8"))
    words = labels["words"]
    reason, rows, total = words["rejected_reason"], words["rejected_count"], words["total"]
    # no rejected frame: one total row, blank or the given count
    for count, want in ((None, ""), (7, 7)):
        out = E._rejected_summary(None, count)
        assert list(out.columns) == [reason, rows]
        assert out.values.tolist() == [[total, want]]
    # counts by reason, most frequent first; a missing reason is ''; unknown codes kept
    rejected = pd.DataFrame({"reason": ["uscc_missing", "zz_unknown", "zz_unknown", None,
                                        "zz_unknown", "uscc_missing"]})
    out = E._rejected_summary(rejected, None)
    assert list(out.columns) == [reason, rows]
    assert list(out.index) == [0, 1, 2, 3]
    assert out.values.tolist() == [["zz_unknown", 3], ["uscc_missing", 2], ["", 1], [total, 6]]
    assert out[rows].dtype.kind == "i"
