"""Reading boundary files: every format and CRS the importer accepts, with real files.

Oracles are independent of the importer: the EPSG:4547 coordinates of a point on the 114E
central meridian are (500000, meridian arc), the arc from a closed series; other projected
coordinates come from PROJ pipelines spelled out in the fixtures; GCJ-02/BD-09 from the
published forward formulas written out in ``conftest.py``.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from layers.imports import (
    BoundaryFileError,
    MissingCRSError,
    TransformationRequiredError,
    read_boundary_file,
)
from tests.layers.conftest import (
    WGS84_RING,
    frame,
    gcj_to_bd,
    meridian_arc,
    ring_of,
    wgs_to_gcj,
    zip_shapefile,
)

TOL_DEG = 1e-8  # ~1 mm


def assert_same_vertices(got: np.ndarray, want: list[tuple[float, float]], tol: float) -> None:
    """Every expected vertex has an imported vertex within ``tol`` degrees (ring order free)."""
    got = np.asarray(got)[:, :2]
    for x, y in want:
        d = np.hypot(got[:, 0] - x, got[:, 1] - y).min()
        assert d < tol, f"vertex ({x}, {y}) missing: nearest {d:.2e} deg away"


def test_epsg4547_oracle_on_the_central_meridian(ring_4547) -> None:
    # (114E, 22.80N) lies on the CM: x is the false easting, y the meridian arc
    x, y = ring_4547[0]
    assert x == pytest.approx(500000.0, abs=1e-6)
    assert y == pytest.approx(meridian_arc(22.80), abs=0.001)


def test_gbk_zipped_shapefile_in_cgcs2000_gauss_kruger(tmp_path: Path, ring_4547) -> None:
    shp = tmp_path / "石马河.shp"
    frame(ring_4547, "EPSG:4547", 名称="石马河流域", 备注="惠州 潼湖").to_file(
        shp, encoding="GBK", engine="pyogrio")
    assert (tmp_path / "石马河.cpg").read_text().strip() == "GBK"
    raw = (tmp_path / "石马河.dbf").read_bytes()
    assert "石马河流域".encode("gbk") in raw  # really GBK bytes on disk
    res = read_boundary_file(zip_shapefile(shp))
    assert res.format == "Shapefile (zip)" and res.source_crs.startswith("EPSG:4547")
    assert res.frame.crs.to_epsg() == 4326
    assert res.frame["名称"].iloc[0] == "石马河流域" and res.frame["备注"].iloc[0] == "惠州 潼湖"
    assert_same_vertices(ring_of(res.frame), WGS84_RING, TOL_DEG)
    assert "China 2000 taken as WGS 84" in res.transformation


def test_gbk_shapefile_without_cpg_is_detected(tmp_path: Path, ring_4547) -> None:
    shp = tmp_path / "basin.shp"
    frame(ring_4547, "EPSG:4547", 名称="淡水河流域").to_file(shp, encoding="GBK", engine="pyogrio")
    res = read_boundary_file(zip_shapefile(shp, drop=(".cpg",)))
    assert res.frame["名称"].iloc[0] == "淡水河流域"
    assert any("GB18030" in n for n in res.notes)


def test_shapefile_without_prj_is_refused_asking_for_crs(tmp_path: Path, ring_4547) -> None:
    shp = tmp_path / "noprj.shp"
    frame(ring_4547, "EPSG:4547", name="x").to_file(shp, engine="pyogrio")
    archive = zip_shapefile(shp, drop=(".prj",))
    with pytest.raises(MissingCRSError, match=r"\.prj.*--crs"):
        read_boundary_file(archive)
    res = read_boundary_file(archive, crs="EPSG:4547")
    assert_same_vertices(ring_of(res.frame), WGS84_RING, TOL_DEG)
    assert any("--crs" in n for n in res.notes)


def test_crs_contradicting_the_prj_is_refused(tmp_path: Path, ring_4547) -> None:
    shp = tmp_path / "a.shp"
    frame(ring_4547, "EPSG:4547", name="x").to_file(shp, engine="pyogrio")
    with pytest.raises(BoundaryFileError, match="declares EPSG:4547"):
        read_boundary_file(zip_shapefile(shp), crs="EPSG:4326")


def test_geopackage_in_cgcs2000_geographic(tmp_path: Path, wgs84_ring) -> None:
    path = tmp_path / "b.gpkg"
    frame(wgs84_ring, "EPSG:4490", name_zh="测试").to_file(path, layer="b", engine="pyogrio")
    res = read_boundary_file(path)
    assert res.source_crs.startswith("EPSG:4490")
    assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-12)


def test_geojson_is_wgs84_by_specification(tmp_path: Path, wgs84_ring) -> None:
    path = tmp_path / "c.geojson"
    frame(wgs84_ring, "EPSG:4326", name_zh="测试").to_file(path, driver="GeoJSON",
                                                            engine="pyogrio")
    res = read_boundary_file(path)
    assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-9)


@pytest.mark.parametrize("suffix,driver", [(".kml", "KML"), (".kmz", "LIBKML")])
def test_kml_and_kmz(tmp_path: Path, wgs84_ring, suffix: str, driver: str) -> None:
    path = tmp_path / f"d{suffix}"
    frame(wgs84_ring, "EPSG:4326", 名称="园区").to_file(path, driver=driver, engine="pyogrio")
    if suffix == ".kmz":
        assert zipfile.is_zipfile(path)
    res = read_boundary_file(path)
    assert res.format == driver.replace("LIB", "").replace("KML", "KMZ" if suffix == ".kmz"
                                                                 else "KML")
    assert res.frame["名称"].iloc[0] == "园区"
    assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-9)
    assert not shapely.has_z(res.frame.geometry.iloc[0])


def test_csv_with_wkt_in_gb18030(tmp_path: Path, wgs84_ring) -> None:
    wkt = shapely.Polygon(wgs84_ring).wkt
    path = tmp_path / "e.csv"
    pd.DataFrame({"名称": ["潮南印染中心"], "WKT": [wkt]}).to_csv(path, index=False,
                                                                 encoding="gb18030")
    with pytest.raises(MissingCRSError, match="--crs"):
        read_boundary_file(path)
    res = read_boundary_file(path, crs="WGS84")
    assert res.frame["名称"].iloc[0] == "潮南印染中心"
    assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-12)


def test_csv_bad_wkt_names_the_line(tmp_path: Path, wgs84_ring) -> None:
    path = tmp_path / "f.csv"
    good = shapely.Polygon(wgs84_ring).wkt
    pd.DataFrame({"name": ["a", "b", "c"], "wkt": [good, "POLYGON ((114 22", good]}).to_csv(
        path, index=False)
    with pytest.raises(BoundaryFileError, match=r"line\(s\) 3\b"):
        read_boundary_file(path, crs="WGS84")


def test_gcj02_file_is_corrected_with_the_projects_conversion(tmp_path: Path) -> None:
    gcj = [wgs_to_gcj(x, y) for x, y in WGS84_RING]
    assert math.dist(gcj[0], WGS84_RING[0]) > 0.003  # a real offset (~500 m)
    path = tmp_path / "g.geojson"
    frame(gcj, "EPSG:4326", name="amap").to_file(path, driver="GeoJSON", engine="pyogrio")
    res = read_boundary_file(path, crs="GCJ02")
    assert res.source_crs == "GCJ02"
    assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-7)  # < 1 cm


def test_bd09_file(tmp_path: Path) -> None:
    bd = [gcj_to_bd(*wgs_to_gcj(x, y)) for x, y in WGS84_RING]
    path = tmp_path / "h.csv"
    pd.DataFrame({"wkt": [shapely.Polygon(bd).wkt]}).to_csv(path, index=False)
    res = read_boundary_file(path, crs="BD09")
    assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-7)


def _xian_ring(towgs84: str) -> list[tuple[float, float]]:
    """WGS84 -> Xian 1980 3-degree GK 114E through an explicit pipeline (inverse Helmert)."""
    tr = Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        "+step +proj=cart +ellps=WGS84 "
        f"+step +inv +proj=helmert +convention=position_vector +{_helmert(towgs84)} "
        "+step +inv +proj=cart +ellps=IAU76 "
        "+step +proj=tmerc +lat_0=0 +lon_0=114 +k=1 +x_0=500000 +y_0=0 +ellps=IAU76"
    )
    xs, ys = tr.transform([p[0] for p in WGS84_RING], [p[1] for p in WGS84_RING])
    return list(zip(xs, ys, strict=True))


def _helmert(towgs84: str) -> str:
    v = towgs84.split(",")
    return f"x={v[0]} +y={v[1]} +z={v[2]} +rx={v[3]} +ry={v[4]} +rz={v[5]} +s={v[6]}"


#: Illustrative 7 parameters (Xian 1980 -> WGS84 order of magnitude; a bureau states its own).
TOWGS84 = "24.0,-123.0,-94.0,0.02,-0.25,-0.13,1.1"


@pytest.mark.parametrize("epsg,name", [("EPSG:2383", "Xian 1980"), ("EPSG:2435", "Beijing 1954")])
def test_xian80_and_beijing54_need_a_stated_transformation(
    tmp_path: Path, epsg: str, name: str
) -> None:
    ring = _xian_ring(TOWGS84)
    shp = tmp_path / "x.shp"
    frame(ring, epsg, name="x").to_file(shp, engine="pyogrio")
    archive = zip_shapefile(shp)
    with pytest.raises(TransformationRequiredError, match=f"{name}.*--towgs84"):
        read_boundary_file(archive)
    if name == "Xian 1980":  # the oracle pipeline uses the Xian 1980 (IAU 1976) ellipsoid
        res = read_boundary_file(archive, towgs84=TOWGS84)
        assert "+towgs84=" in res.transformation
        assert_same_vertices(ring_of(res.frame), WGS84_RING, 1e-8)
        # a null shift would have been wrong by tens of metres: the stated one matters
        null = read_boundary_file(archive, towgs84="0,0,0,0,0,0,0")
        shift = np.abs(ring_of(null.frame)[:, :2] - ring_of(res.frame)[:, :2]).max()
        assert shift > 1e-4


def test_projected_coordinates_declared_as_lonlat_are_refused(tmp_path: Path, ring_4547) -> None:
    path = tmp_path / "p.csv"
    pd.DataFrame({"wkt": [shapely.Polygon(ring_4547).wkt]}).to_csv(path, index=False)
    with pytest.raises(BoundaryFileError, match="look projected"):
        read_boundary_file(path, crs="WGS84")


def test_unsupported_suffix_and_zip_without_shp(tmp_path: Path) -> None:
    bad = tmp_path / "a.dwg"
    bad.write_bytes(b"x")
    with pytest.raises(BoundaryFileError, match="unsupported file type '.dwg'"):
        read_boundary_file(bad)
    empty = tmp_path / "b.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no shapefile")
    with pytest.raises(BoundaryFileError, match="exactly one .shp"):
        read_boundary_file(empty)
