"""Tests for geo.raster: density grids, COG output, zonal statistics, web overlay."""

from __future__ import annotations

import json
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Point, box

from geo.errors import CRSMismatchError, RasterError
from geo.raster import (
    DEFAULT_DENSITY_CRS,
    MISSING_CATEGORY,
    NODATA,
    DensityRaster,
    density,
    density_to_png_overlay,
    read_raster,
    write_cog,
    zonal_stats,
)

UTM49 = "EPSG:32649"
X0, Y0 = 500_000.0, 2_500_000.0  # a UTM 49N origin inside Guangdong, a multiple of 1000


def _pts(xy: list[tuple[float, float]], crs: str = UTM49, **cols: list[object]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=[Point(x, y) for x, y in xy], crs=crs)


@pytest.fixture
def four() -> gpd.GeoDataFrame:
    """Four points in UTM 49N, offsets from (X0, Y0) chosen to land in known cells."""
    return _pts(
        [
            (X0 + 250, Y0 + 250),
            (X0 + 750, Y0 + 250),
            (X0 + 1250, Y0 + 1750),
            (X0 + 2000, Y0 + 1000),
        ],
        industry_id=["dyeing", "tannery", "dyeing", None],
    )


# ------------------------------------------------------------------------- density


def test_density_counts_hand_computed(four: gpd.GeoDataFrame) -> None:
    r = density(four, cell_m=1000, crs=UTM49)
    # extent: west X0, east X0+3000 (x=X0+2000 opens a third column), south Y0, north Y0+2000
    assert r.transform == Affine(1000, 0, X0, 0, -1000, Y0 + 2000)
    assert r.band_names == ("total",)
    expected = np.array([[0, 1, 0], [2, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(r.array[0], expected)
    assert r.crs.equals(CRS(UTM49))
    assert r.nodata == NODATA


def test_density_by_category_bands_sum_to_total(four: gpd.GeoDataFrame) -> None:
    r = density(four, cell_m=1000, crs=UTM49, by="industry_id")
    assert r.band_names == ("total", "dyeing", "tannery", MISSING_CATEGORY)
    np.testing.assert_array_equal(r.band("dyeing"), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(r.band("tannery"), [[0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(r.band(MISSING_CATEGORY), [[0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(r.array[1:].sum(axis=0), r.array[0])


def test_density_fixed_categories_order_and_unknown(four: gpd.GeoDataFrame) -> None:
    g = four.iloc[:3]
    r = density(g, cell_m=1000, crs=UTM49, by="industry_id", categories=["tannery", "dyeing", "x"])
    assert r.band_names == ("total", "tannery", "dyeing", "x")
    assert r.band("x").sum() == 0 and r.band("tannery").sum() == 1
    with pytest.raises(RasterError, match="'dyeing' is not one of"):
        density(g, cell_m=1000, crs=UTM49, by="industry_id", categories=["tannery"])


def test_density_explicit_bounds_snap_and_count_only_inside(four: gpd.GeoDataFrame) -> None:
    far = _pts([(X0 + 50_000, Y0)])
    g = gpd.GeoDataFrame(
        {"industry_id": [*four["industry_id"], "dyeing"]},
        geometry=[*four.geometry, *far.geometry],
        crs=UTM49,
    )
    r = density(g, cell_m=1000, crs=UTM49, bounds=(X0 + 100, Y0 + 100, X0 + 1900, Y0 + 1900))
    assert r.bounds == (X0, Y0, X0 + 2000, Y0 + 2000)
    # x = X0+2000 sits on the (open) east edge, the far point is outside: 3 of 5 inside
    x, y = g.geometry.x.to_numpy(), g.geometry.y.to_numpy()
    inside = (x >= X0) & (x < X0 + 2000) & (y > Y0) & (y <= Y0 + 2000)
    assert r.array[0].sum() == inside.sum() == 3


def test_density_grid_aligned_to_cell_multiples_in_default_crs() -> None:
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(113.0, 113.6, 300), rng.uniform(22.6, 23.2, 300)
    g = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    a = density(g, cell_m=500)
    b = density(g.iloc[:40], cell_m=500)
    assert a.crs.equals(DEFAULT_DENSITY_CRS) and a.crs.is_projected
    for r in (a, b):
        assert r.transform.a == 500 and r.transform.e == -500
        assert r.transform.c % 500 == 0 and r.transform.f % 500 == 0
    assert a.array[0].sum() == 300 and b.array[0].sum() == 40
    # every point is counted in the cell rasterio's own rowcol assigns it
    proj = g.to_crs(a.crs)
    rows, cols = rasterio.transform.rowcol(a.transform, proj.geometry.x, proj.geometry.y)
    direct = np.zeros(a.array.shape[1:])
    np.add.at(direct, (np.asarray(rows), np.asarray(cols)), 1)
    np.testing.assert_array_equal(a.array[0], direct)


def test_density_utm_option_and_geographic_crs_refused(four: gpd.GeoDataFrame) -> None:
    g = four.to_crs("EPSG:4326")
    assert density(g, crs="utm").crs.equals(CRS(UTM49))
    with pytest.raises(RasterError, match="not a projected CRS in metres"):
        density(g, crs="EPSG:4326")


def test_density_skips_missing_geometry_and_rejects_polygons(four: gpd.GeoDataFrame) -> None:
    g = four.copy()
    g.loc[1, "geometry"] = None
    assert density(g, crs=UTM49).array[0].sum() == 3
    g.loc[2, "geometry"] = box(X0, Y0, X0 + 10, Y0 + 10)
    with pytest.raises(RasterError, match=r"Row 2: geometry is Polygon, expected Point"):
        density(g, crs=UTM49)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cell_m": 0}, RasterError, "cell_m must be a positive"),
        ({"by": "verdict"}, RasterError, "no such column"),
        ({"smooth_sigma_cells": -1}, RasterError, "smooth_sigma_cells"),
        ({"cell_m": 0.01}, RasterError, "use a larger cell size"),
    ],
)
def test_density_bad_arguments(
    four: gpd.GeoDataFrame, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        density(four.to_crs("EPSG:4326"), **kwargs)  # type: ignore[arg-type]


def test_density_needs_crs(four: gpd.GeoDataFrame) -> None:
    with pytest.raises(CRSMismatchError, match="set_crs"):
        density(four.set_crs(None, allow_override=True))


def test_smoothing_preserves_total_and_spreads_symmetrically(four: gpd.GeoDataFrame) -> None:
    raw = density(four, cell_m=1000, crs=UTM49, by="industry_id")
    sm = density(four, cell_m=1000, crs=UTM49, by="industry_id", smooth_sigma_cells=1.5)
    assert sm.array.shape[0] == raw.array.shape[0]
    np.testing.assert_allclose(sm.array.sum(axis=(1, 2)), raw.array.sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(sm.array[1:].sum(axis=0), sm.array[0], atol=1e-6)
    assert sm.transform.c % 1000 == 0 and sm.transform.f % 1000 == 0  # padding keeps alignment
    one = density(_pts([(X0 + 500, Y0 + 500)]), cell_m=1000, crs=UTM49, smooth_sigma_cells=1)
    band = one.array[0]
    peak = np.unravel_index(np.argmax(band), band.shape)
    assert peak == (band.shape[0] // 2, band.shape[1] // 2)
    np.testing.assert_allclose(band, band[::-1, ::-1], atol=1e-7)
    assert band.max() < 1 and band.sum() == pytest.approx(1, rel=1e-6)


def test_smoothing_with_bounds_keeps_only_mass_inside() -> None:
    g = _pts([(X0 + 500, Y0 + 500)])
    wide = density(g, cell_m=1000, crs=UTM49, bounds=(X0 - 20_000, Y0 - 20_000, X0 + 20_000,
                                                        Y0 + 20_000), smooth_sigma_cells=1)
    assert wide.bounds == (X0 - 20_000, Y0 - 20_000, X0 + 20_000, Y0 + 20_000)
    assert wide.array[0].sum() == pytest.approx(1, rel=1e-6)
    # window with the point in its corner cell: only about a quarter of the kernel stays in
    corner = density(g, cell_m=1000, crs=UTM49, bounds=(X0, Y0, X0 + 10_000, Y0 + 10_000),
                     smooth_sigma_cells=1)
    assert 0.2 < corner.array[0].sum() < 0.5
    # a point just outside the bounds is not counted, even though its kernel would reach in
    outside = density(_pts([(X0 - 500, Y0 + 500)]), cell_m=1000, crs=UTM49,
                      bounds=(X0, Y0, X0 + 10_000, Y0 + 10_000), smooth_sigma_cells=1)
    assert outside.array[0].sum() == 0


# ---------------------------------------------------------------------------- COG I/O


def test_write_cog_roundtrip_crs_nodata_descriptions(four: gpd.GeoDataFrame, tmp_path) -> None:
    r = density(four, cell_m=1000, crs=UTM49, by="industry_id")
    out = write_cog(r, tmp_path / "sub" / "density.tif")
    assert out.exists() and [p.name for p in out.parent.iterdir()] == ["density.tif"]
    plain = tmp_path / "plain"
    plain.touch()
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600
    with rasterio.open(out) as src:
        assert src.crs == rasterio.crs.CRS.from_user_input(UTM49)
        assert src.nodata == NODATA
        assert src.descriptions == r.band_names
        assert src.transform == r.transform
        np.testing.assert_array_equal(src.read(), r.array)
    back = read_raster(out)
    assert back.band_names == r.band_names and back.crs.equals(r.crs)


def test_write_cog_default_crs_roundtrips(tmp_path) -> None:
    g = _pts([(113.3, 23.1), (113.31, 23.12)], crs="EPSG:4326")
    r = density(g)
    back = read_raster(write_cog(r, tmp_path / "d.tif"))
    assert back.crs.equals(DEFAULT_DENSITY_CRS)
    assert back.array[0].sum() == 2


def test_write_cog_is_atomic_on_failure(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "d.tif"
    dest.write_bytes(b"old")
    r = density(_pts([(X0, Y0)]), crs=UTM49)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(rasterio.shutil, "copy", boom)
    with pytest.raises(OSError, match="disk full"):
        write_cog(r, dest)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tif"]


def _gdalinfo() -> str | None:
    exe = shutil.which("gdalinfo")
    if exe is None:
        pytest.skip("gdalinfo not installed (apt-get install gdal-bin)")
    return exe


@pytest.mark.gdal
def test_gdalinfo_reports_cog_with_overviews(tmp_path) -> None:
    exe = _gdalinfo()
    rng = np.random.default_rng(1)
    # 40 x 40 km at 50 m: 800 x 800 cells, large enough for internal overviews
    xs, ys = rng.uniform(X0, X0 + 40_000, 500), rng.uniform(Y0, Y0 + 40_000, 500)
    xy = list(zip(xs, ys, strict=True))
    r = density(_pts(xy), cell_m=50, crs=UTM49, bounds=(X0, Y0, X0 + 40_000, Y0 + 40_000))
    path = write_cog(r, tmp_path / "big.tif")
    info = json.loads(subprocess.run([exe, "-json", str(path)], check=True, capture_output=True,
                                     text=True).stdout)
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    band = info["bands"][0]
    assert band["block"] == [512, 512]
    assert band["noDataValue"] == NODATA
    assert band["description"] == "total"
    assert len(band["overviews"]) >= 1
    assert "32649" in json.dumps(info["coordinateSystem"]) or "UTM zone 49N" in json.dumps(info)


# ---------------------------------------------------------------------------- zonal


@pytest.fixture
def tiny() -> DensityRaster:
    """4 x 4 raster of 1 km cells at (X0, Y0 + 4000), values 0..15, one nodata cell."""
    values = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    values[0, 0, 1] = NODATA
    return DensityRaster(values, Affine(1000, 0, X0, 0, -1000, Y0 + 4000), CRS(UTM49), ("v",))


def test_zonal_stats_two_squares_match_numpy(tiny: DensityRaster) -> None:
    zones = gpd.GeoDataFrame(
        {"id": ["nw", "se"]},
        geometry=[
            box(X0, Y0 + 2000, X0 + 2000, Y0 + 4000),
            box(X0 + 2000, Y0, X0 + 4000, Y0 + 2000),
        ],
        crs=UTM49,
    ).to_crs("EPSG:4326")  # reprojected back to the raster CRS inside zonal_stats
    got = zonal_stats(tiny, zones, stats=("mean", "max", "min", "sum", "count"))
    a = tiny.array[0]
    for zid, block in (("nw", a[0:2, 0:2]), ("se", a[2:4, 2:4])):
        v = block[block != NODATA].astype(np.float64)
        row = got.set_index("id").loc[zid]
        assert row["count"] == v.size
        assert row["sum"] == pytest.approx(v.sum())
        assert row["mean"] == pytest.approx(v.mean())
        assert row["max"] == v.max() and row["min"] == v.min()
    assert list(got.columns) == ["id", "mean", "max", "min", "sum", "count"]
    assert got.loc[0, "count"] == 3  # the nodata cell is excluded


def test_zonal_stats_cell_centre_rule_and_empty_zone(tiny: DensityRaster) -> None:
    zones = gpd.GeoDataFrame(
        {"code": [1, 2]},
        geometry=[
            # touches cells (1, 2) and (1, 3) but holds only the centre of (1, 2)
            box(X0 + 2400, Y0 + 2400, X0 + 3400, Y0 + 2600),
            box(X0 + 100, Y0 + 100, X0 + 400, Y0 + 400),  # inside a cell, no centre
        ],
        crs=UTM49,
    )
    got = zonal_stats(tiny, zones, id_field="code")
    assert got["count"].tolist() == [1, 0]
    assert got.loc[0, "sum"] == tiny.array[0, 1, 2]
    assert np.isnan(got.loc[1, "mean"]) and np.isnan(got.loc[1, "max"])
    assert got.loc[1, "sum"] == 0


def test_zonal_stats_overlapping_zones_each_get_their_cells(tiny: DensityRaster) -> None:
    everything = box(X0, Y0, X0 + 4000, Y0 + 4000)
    zones = gpd.GeoDataFrame(
        {"id": ["all", "west"]},
        geometry=[everything, box(X0, Y0, X0 + 2000, Y0 + 4000)],
        crs=UTM49,
    )
    got = zonal_stats(tiny, zones, stats=("sum", "count"))
    a = tiny.array[0].astype(np.float64)
    valid = a != NODATA
    assert got["count"].tolist() == [valid.sum(), valid[:, :2].sum()]
    assert got["sum"].tolist() == [a[valid].sum(), a[:, :2][valid[:, :2]].sum()]


def test_zonal_stats_partition_sums_to_raster_total(four: gpd.GeoDataFrame, tmp_path) -> None:
    r = density(four, cell_m=1000, crs=UTM49, by="industry_id")
    path = write_cog(r, tmp_path / "d.tif")
    west, south, east, north = r.bounds
    mid = (west + east) / 2
    zones = gpd.GeoDataFrame(
        {"id": ["w", "e"]}, geometry=[box(west, south, mid, north), box(mid, south, east, north)],
        crs=UTM49,
    )
    got = zonal_stats(path, zones, band="dyeing", stats=("sum",))
    assert got["sum"].sum() == r.band("dyeing").sum() == 2


def test_zonal_stats_bad_inputs(tiny: DensityRaster) -> None:
    zones = gpd.GeoDataFrame({"id": [1]}, geometry=[box(X0, Y0, X0 + 1, Y0 + 1)], crs=UTM49)
    with pytest.raises(RasterError, match="median"):
        zonal_stats(tiny, zones, stats=("median",))
    with pytest.raises(RasterError, match="no id column 'name'"):
        zonal_stats(tiny, zones, id_field="name")
    with pytest.raises(RasterError, match="No band 'total'"):
        zonal_stats(tiny, zones, band="total")
    with pytest.raises(RasterError, match="band must be 1..1"):
        zonal_stats(tiny, zones, band=2)
    with pytest.raises(CRSMismatchError):
        zonal_stats(tiny, zones.set_crs(None, allow_override=True))


# ---------------------------------------------------------------------------- overlay


def test_png_overlay_places_the_cell_at_its_location() -> None:
    lon, lat = 116.40, 23.30  # Lianjiang basin, far from the default CRS' central meridian
    g = _pts([(lon, lat)], crs="EPSG:4326")
    r = density(g, cell_m=1000, bounds=None)
    ov = density_to_png_overlay(r)
    (s, w), (n, e) = ov.bounds
    assert s < lat < n and w < lon < e
    assert ov.image.dtype == np.uint8 and ov.image.shape[2] == 4
    opaque = np.argwhere(ov.image[..., 3] > 0)
    assert len(opaque) >= 1
    # pixel centre of the opaque pixels -> lon/lat, via linear Mercator between the bounds
    to_m = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    (mw, me), (ms, mn) = to_m.transform([w, e], [s, n])
    h, wd = ov.image.shape[:2]
    mx = mw + (opaque[:, 1].mean() + 0.5) * (me - mw) / wd
    my = mn - (opaque[:, 0].mean() + 0.5) * (mn - ms) / h
    plon, plat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform(mx, my)
    assert abs(plon - lon) < 0.012 and abs(plat - lat) < 0.012  # about one 1 km cell
    assert ov.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert ov.data_url.startswith("data:image/png;base64,")
    assert ov.vmax == 1


def test_png_overlay_from_file_transparent_where_zero(four: gpd.GeoDataFrame, tmp_path) -> None:
    r = density(four, cell_m=1000, crs=UTM49, by="industry_id", smooth_sigma_cells=1)
    path = write_cog(r, tmp_path / "d.tif")
    ov = density_to_png_overlay(path, band="tannery", scale="linear", vmax=10, opacity=0.5)
    alpha = ov.image[..., 3]
    assert set(np.unique(alpha)) <= {0, 128}
    assert (alpha == 0).any() and (alpha == 128).any()
    assert ov.vmax == 10


@pytest.mark.gdal
def test_geotiff_crs_has_a_name_gdalinfo_shows(tmp_path) -> None:
    """gdalinfo (GDAL's own reader, not rasterio) names the CRS instead of "unknown"."""
    import shutil
    import subprocess

    gdalinfo = shutil.which("gdalinfo")
    if gdalinfo is None:
        pytest.skip("gdalinfo (gdal-bin) is not installed")
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy([116.4, 113.9], [23.3, 22.8]),
                           crs="EPSG:4326")
    path = write_cog(density(pts, cell_m=5000), tmp_path / "d.tif")
    info = subprocess.run([gdalinfo, "-json", str(path)], capture_output=True, text=True,
                          check=True)
    wkt = json.loads(info.stdout)["coordinateSystem"]["wkt"]
    assert wkt.startswith('PROJCRS["Guangdong Albers equal-area (WGS 84)"')
    assert '"unknown"' not in wkt.split("\n", 1)[0]
    assert 'BASEGEOGCRS["WGS 84"' in wkt and "Albers Equal Area" in wkt
    assert 'PARAMETER["Latitude of 1st standard parallel",21' in wkt
    assert 'PARAMETER["Longitude of false origin",113.5' in wkt
