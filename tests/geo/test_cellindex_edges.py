"""CellIndex at grid lines: boundaries exactly on a cell edge, and a layer whose width is a
hair under a whole number of cells (issue 16, survivors of ``_boundary_pairs``).

Oracle: ``shapely.contains_xy`` per polygon (a point on a boundary is in no polygon) and
the grid contract of the class docstring (a ``NONE`` padding ring on every side).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import box

from geo.cellindex import NONE, CellIndex


def _want(polys: list, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    want = np.full(x.shape, NONE)
    for i in range(len(polys) - 1, -1, -1):
        want[shapely.contains_xy(polys[i], x, y)] = i
    return want


def test_points_on_a_shared_edge_that_lies_on_a_grid_line() -> None:
    # (113.3 - 113.0) / 0.1 is 2.99999999999997 and (22.4 - 22.0) / 0.1 is
    # 3.99999999999999 in floating point: a point on the shared edge lands in the cell
    # left of (below) the grid line, which must be a boundary cell.
    west, east = box(113.0, 22.0, 113.3, 22.6), box(113.3, 22.0, 113.6, 22.6)
    south, north = box(113.0, 22.0, 113.6, 22.4), box(113.0, 22.4, 113.6, 22.6)
    ys = np.linspace(22.01, 22.59, 59)
    for polys, x, y in (
        ([west, east], np.full(ys.shape, 113.3), ys),
        ([south, north], ys - 22.0 + 113.0, np.full(ys.shape, 22.4)),
    ):
        idx = CellIndex.build(polys, cell_deg=0.1)
        assert (idx.x0, idx.y0) == (113.0, 22.0)
        want = _want(polys, x, y)
        assert (want == NONE).all()  # on the shared boundary: in neither polygon
        np.testing.assert_array_equal(idx.lookup(x, y), want)
        assert [idx.lookup_one(a, b) for a, b in zip(x, y, strict=True)] == want.tolist()
        # and just off the edge, on either side
        for dx, dy in ((-1e-9, 0.0), (1e-9, 0.0)) if x[0] == x[-1] else ((0.0, -1e-9),
                                                                         (0.0, 1e-9)):
            np.testing.assert_array_equal(idx.lookup(x + dx, y + dy), _want(polys, x + dx,
                                                                              y + dy))


def test_width_a_hair_under_whole_cells_keeps_the_padding_empty() -> None:
    side = 0.3 - 3e-9  # 2.99999997 cells of 0.1 degree: nx = 3, the far edge near col 3
    poly = box(0.0, 0.0, side, side)
    idx = CellIndex.build([poly], cell_deg=0.1)
    assert (idx.nx, idx.ny) == (3, 3)
    assert (idx.grid[0] == NONE).all() and (idx.grid[-1] == NONE).all()
    assert (idx.grid[:, 0] == NONE).all() and (idx.grid[:, -1] == NONE).all()
    g = np.linspace(-0.05, 0.35, 81)
    x, y = np.meshgrid(g, g)
    x, y = x.ravel(), y.ravel()
    np.testing.assert_array_equal(idx.lookup(x, y), _want([poly], x, y))


def test_polygons_in_another_crs_or_of_another_type_are_refused_by_name() -> None:
    import geopandas as gpd
    import pytest

    from geo.errors import CRSMismatchError, ReferenceDataError

    frame = gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs=4326).to_crs(3857)
    for polys in (frame, frame.geometry):
        with pytest.raises(CRSMismatchError) as err:
            CellIndex.build(polys)
        assert str(err.value) == ("CellIndex needs polygons in EPSG:4326, got EPSG:3857: "
                                  "call .to_crs('EPSG:4326') first.")
    with pytest.raises(ReferenceDataError) as err:
        CellIndex.build([box(0, 0, 1, 1), None, shapely.Point(0, 0)])
    assert str(err.value) == "CellIndex polygon 2 is a Point: expected Polygon or MultiPolygon."
    idx = CellIndex.build(gpd.GeoSeries([box(0, 0, 1, 1)]))  # no CRS: taken as WGS84
    assert idx.lookup_one(0.5, 0.5) == 0
