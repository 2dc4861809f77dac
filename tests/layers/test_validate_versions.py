"""Import validation, versions, activation and rollback, and classification following them.

Oracles: geodesic areas from ``pyproj.Geod`` (the importer uses an Albers projection), plain
``shapely.contains_xy`` on the imported rings for point-in-polygon answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import shapely
from pyproj import Geod

from geo.pipeline import locate
from layers import registry, versions
from layers.importer import ImportRejectedError, import_layer
from layers.versions import VersionError
from tests.layers.conftest import WGS84_RING, frame

GEOD = Geod(ellps="WGS84")


def geodesic_km2(geom: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def write_geojson(path: Path, ring: list[tuple[float, float]], **props: object) -> Path:
    frame(ring, "EPSG:4326", **props).to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def test_import_stores_an_inactive_version_with_provenance(tmp_path: Path) -> None:
    src = write_geojson(tmp_path / "shima_survey.geojson", WGS84_RING, name="测绘")
    out = import_layer(src, kind="basin", layer_id="shima", created_by="tester",
                       source="东莞市水务局 2024 测绘", licence="政府内部使用", accuracy_m=5)
    rec = out.version
    assert rec is not None and rec.label == "shima@v1"
    assert (rec.source, rec.licence, rec.accuracy_m, rec.created_by) == (
        "东莞市水务局 2024 测绘", "政府内部使用", 5.0, "tester")
    assert rec.created_at and rec.source_file == "shima_survey.geojson"
    assert len(rec.source_sha256 or "") == 64
    # area: the importer's equal-area projection against the geodesic oracle
    assert rec.area_km2 == pytest.approx(geodesic_km2(shapely.Polygon(WGS84_RING)), rel=2e-3)
    assert versions.version_path(rec).exists()
    assert registry.layer_info("shima").version == "bundled"  # not active until chosen
    assert registry.active_versions()["shima"].version == "bundled"


def test_missing_licence_and_accuracy_are_recorded_as_warnings(tmp_path: Path) -> None:
    src = write_geojson(tmp_path / "a.geojson", WGS84_RING)
    rec = import_layer(src, kind="basin", layer_id="shima", created_by="t").version
    assert rec is not None and rec.licence == "not stated" and rec.accuracy_m == 1000.0
    assert any("licence not stated" in w for w in rec.warnings)
    assert any("accuracy not stated" in w for w in rec.warnings)


BOWTIE = [(114.0, 22.80), (114.04, 22.84), (114.04, 22.80), (114.0, 22.84), (114.0, 22.80)]


def test_invalid_polygon_is_refused_then_repaired_with_consent(tmp_path: Path) -> None:
    src = write_geojson(tmp_path / "bowtie.geojson", BOWTIE)
    with pytest.raises(ImportRejectedError) as exc:
        import_layer(src, kind="basin", layer_id="shima", created_by="t")
    check = next(c for c in exc.value.outcome.report.checks if c.code == "validity")
    assert check.level == "error" and "--repair" in check.message
    assert "Self-intersection" in check.data["reasons"][0]
    assert versions.versions_of("shima") == []  # nothing stored
    # the two triangles the repair keeps, measured geodesically
    tri = shapely.Polygon([(114.0, 22.8), (114.02, 22.82), (114.0, 22.84)])
    tri2 = shapely.Polygon([(114.04, 22.84), (114.02, 22.82), (114.04, 22.8)])
    expected = geodesic_km2(tri) + geodesic_km2(tri2)
    assert check.data["area_after_km2"] == pytest.approx(expected, rel=3e-3)
    assert check.data["area_change_km2"] == pytest.approx(
        check.data["area_after_km2"] - check.data["area_before_km2"], abs=1e-4)
    out = import_layer(src, kind="basin", layer_id="shima", created_by="t", repair=True)
    assert out.version is not None and out.version.repaired
    assert out.version.area_km2 == pytest.approx(expected, rel=3e-3)
    assert shapely.is_valid(out.frame.geometry.iloc[0])


def test_layer_outside_the_province_is_refused(tmp_path: Path) -> None:
    changsha = [(112.9, 28.1), (113.0, 28.1), (113.0, 28.2), (112.9, 28.2), (112.9, 28.1)]
    src = write_geojson(tmp_path / "hunan.geojson", changsha)
    with pytest.raises(ImportRejectedError, match="outside Guangdong"):
        import_layer(src, kind="basin", layer_id="shima", created_by="t")


def test_published_area_and_overlap_are_reported(tmp_path: Path) -> None:
    # a square straddling the bundled shima/danshui divide near 平湖/横岗
    ring = [(114.10, 22.62), (114.30, 22.62), (114.30, 22.75), (114.10, 22.75), (114.10, 22.62)]
    src = write_geojson(tmp_path / "x.geojson", ring)
    area = geodesic_km2(shapely.Polygon(ring))
    rep = import_layer(src, kind="basin", layer_id="shima", created_by="t",
                       published_area_km2=round(area * 1.25, 1), store=False).report
    pub = next(c for c in rep.checks if c.code == "published_area")
    assert pub.level == "warning" and pub.data["deviation"] == pytest.approx(-0.2, abs=2e-3)
    overlap = next(c for c in rep.checks if c.code == "overlap")
    danshui = registry.load_layer("danshui").geometry.iloc[0]
    oracle = geodesic_km2(shapely.intersection(shapely.Polygon(ring), danshui))
    assert overlap.level == "warning"
    assert overlap.data["overlaps"]["danshui"] == pytest.approx(oracle, rel=5e-3)
    assert versions.versions_of("shima") == []  # store=False wrote nothing


def test_activation_switches_classification_and_rollback_is_one_call(tmp_path: Path) -> None:
    inside_new = (114.03, 22.82)     # in the imported ring
    zhangmutou = (114.08, 22.915)    # in the bundled shima, outside the ring
    assert locate(*zhangmutou)["location"]["basin_id"] == "shima"
    src = write_geojson(tmp_path / "s.geojson", WGS84_RING)
    rec = import_layer(src, kind="basin", layer_id="shima", created_by="t", accuracy_m=5).version
    assert rec is not None
    versions.activate("shima", rec.version, by="t")
    assert registry.layer_info("shima").provenance.accuracy_m == 5.0
    assert locate(*inside_new)["location"]["basin_id"] == "shima"
    assert locate(*zhangmutou)["location"]["basin_id"] == ""
    assert registry.shared_group("basin").attrs["layer_versions"][2] == "shima@v1"
    assert registry.active_versions()["shima"].sha256 == rec.sha256
    back = versions.rollback("shima", by="t")
    assert (back.previous, back.version, back.action) == ("v1", "bundled", "rollback")
    assert locate(*zhangmutou)["location"]["basin_id"] == "shima"
    assert [v.version for v in versions.versions_of("shima")] == ["v1"]  # older versions stay
    hist = versions.read_manifest().history
    assert [(a.action, a.version) for a in hist] == [("activate", "v1"), ("rollback", "bundled")]


def test_unknown_version_and_rollback_without_history() -> None:
    with pytest.raises(VersionError, match="has no version 'v9'.*bundled"):
        versions.activate("shima", "v9", by="t")
    with pytest.raises(VersionError, match="never been switched"):
        versions.rollback("shima", by="t")


def test_cache_follows_a_switch_with_identical_bounds_and_vertex_count(tmp_path: Path) -> None:
    # two squares, same bbox and vertex count; B has its bottom-edge vertex pushed inwards
    a = [(114.0, 22.80), (114.03, 22.80), (114.06, 22.80), (114.06, 22.84), (114.0, 22.84),
         (114.0, 22.80)]
    b = [(114.0, 22.80), (114.03, 22.83), (114.06, 22.80), (114.06, 22.84), (114.0, 22.84),
         (114.0, 22.80)]
    pt = (114.03, 22.81)  # inside A, in B's notch
    assert shapely.contains_xy(shapely.Polygon(a), *pt)
    assert not shapely.contains_xy(shapely.Polygon(b), *pt)
    va = import_layer(write_geojson(tmp_path / "a.geojson", a), kind="basin", layer_id="shima",
                      created_by="t", accuracy_m=1).version
    vb = import_layer(write_geojson(tmp_path / "b.geojson", b), kind="basin", layer_id="shima",
                      created_by="t", accuracy_m=1).version
    assert va and vb and va.vertices == vb.vertices
    versions.activate("shima", va.version, by="t")
    assert locate(*pt)["location"]["basin_id"] == "shima"
    versions.activate("shima", vb.version, by="t")
    assert locate(*pt)["location"]["basin_id"] == ""


def test_another_process_sees_the_switch(tmp_path: Path) -> None:
    src = write_geojson(tmp_path / "s.geojson", WGS84_RING)
    rec = import_layer(src, kind="basin", layer_id="shima", created_by="t").version
    assert rec is not None
    versions.activate("shima", rec.version, by="t")
    env = dict(os.environ, BASINWATCH_LAYERS_DIR=str(versions.versions_root()))
    out = subprocess.run([sys.executable, "-m", "api.cli", "locate", "114.08", "22.915"],
                         capture_output=True, text=True, env=env, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert json.loads(out.stdout)["location"]["basin_id"] == ""


def test_park_feature_replacement_keeps_the_other_parks(tmp_path: Path) -> None:
    ring = [(116.53, 23.16), (116.55, 23.16), (116.55, 23.175), (116.53, 23.175), (116.53, 23.16)]
    src = write_geojson(tmp_path / "p.geojson", ring)
    out = import_layer(src, kind="park", layer_id="parks", feature="chaonan_dyeing_park",
                       created_by="t", accuracy_m=10, source="控规图", licence="内部")
    parks = out.frame.set_index("id")
    assert set(parks.index) == set(registry.load_bundled("parks")["id"])
    assert parks.loc["chaonan_dyeing_park", "accuracy_m"] == 10
    assert parks.loc["chaonan_dyeing_park", "district"] == "潮南区"
    assert shapely.equals(parks.loc["chaonan_dyeing_park", "geometry"].geoms[0],
                          shapely.Polygon(ring).normalize())


def test_outputs_state_the_imported_version_they_used(tmp_path: Path) -> None:
    import hashlib

    from geo.provenance import layer_versions

    before = {lv.id: lv for lv in layer_versions()}
    assert before["shima"].version == "bundled"
    src = write_geojson(tmp_path / "s.geojson", WGS84_RING)
    rec = import_layer(src, kind="basin", layer_id="shima", created_by="t", accuracy_m=5).version
    versions.activate("shima", rec.version, by="t")
    now = {lv.id: lv for lv in layer_versions()}
    assert now["shima"].version == rec.version
    gpkg = versions.version_path(rec)
    assert now["shima"].sha256 == hashlib.sha256(gpkg.read_bytes()).hexdigest()
    assert now["danshui"] == before["danshui"]  # other layers untouched
    versions.rollback("shima", by="t")
    assert {lv.id: lv for lv in layer_versions()}["shima"] == before["shima"]
