"""CellIndex must agree with an exact shapely.contains_xy pass for every point."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from geo.cellindex import BOUNDARY, NONE, CellIndex
from geo.errors import CRSMismatchError, ReferenceDataError
from layers.catalog import DATA_DIR


def exact(polys: list | np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reference answer: index of the polygon whose contains_xy is true, else -1."""
    out = np.full(x.shape, -1, dtype=np.intp)
    for i in range(len(polys) - 1, -1, -1):
        out[shapely.contains_xy(polys[i], x, y)] = i
    return out


def vertices_and_midpoints(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points exactly on the boundaries: all vertices plus edge midpoints."""
    coords, ring = shapely.get_coordinates(
        shapely.get_rings(shapely.get_parts(polys)), return_index=True
    )
    same = ring[1:] == ring[:-1]
    mid = (coords[:-1][same] + coords[1:][same]) / 2
    pts = np.vstack([coords, mid])
    return pts[:, 0], pts[:, 1]


def random_points(bounds: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = bounds
    dx, dy = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05  # some points beyond the bounds
    return rng.uniform(xmin - dx, xmax + dx, n), rng.uniform(ymin - dy, ymax + dy, n)


# tiny inline layer: a square with a hole holding an enclave, a multipolygon, a triangle
_HOLED = Polygon(box(0, 0, 4, 4).exterior.coords, [box(1, 1, 2, 2).exterior.coords])
_ENCLAVE = box(1, 1, 2, 2)
_MULTI = MultiPolygon([box(5, 0, 6, 1), box(5.5, 2, 7, 3.3)])
_TRI = Polygon([(4, 0), (5, 0), (4.5, 3.7)])
INLINE = [_HOLED, _ENCLAVE, _MULTI, _TRI]


@pytest.mark.parametrize("cell_deg", [None, 0.37, 1.0, 3.0])
def test_inline_layer_matches_exact(cell_deg: float | None) -> None:
    idx = CellIndex.build(INLINE, cell_deg=cell_deg)
    polys = np.asarray(INLINE, dtype=object)
    x, y = random_points(shapely.total_bounds(polys), 20_000, seed=1)
    np.testing.assert_array_equal(idx.lookup(x, y), exact(INLINE, x, y))
    # every point of the hole is in the enclave, not in the holed square
    assert (idx.lookup(np.array([1.5]), np.array([1.5])) == [1]).all()


@pytest.mark.parametrize("cell_deg", [None, 0.25, 0.5])
def test_points_on_vertices_and_edges_follow_contains_xy(cell_deg: float | None) -> None:
    polys = np.asarray(INLINE, dtype=object)
    idx = CellIndex.build(INLINE, cell_deg=cell_deg)
    x, y = vertices_and_midpoints(polys)
    got = idx.lookup(x, y)
    np.testing.assert_array_equal(got, exact(INLINE, x, y))
    # the rule: a point on a boundary is not contained
    assert (got == NONE).all()
    # grid lines fall exactly on polygon edges here (box edges at multiples of the cell)
    gx, gy = np.meshgrid(np.arange(0, 7.01, 0.25), np.arange(0, 4.01, 0.25))
    np.testing.assert_array_equal(
        idx.lookup(gx.ravel(), gy.ravel()), exact(INLINE, gx.ravel(), gy.ravel())
    )


def test_lookup_one_matches_lookup() -> None:
    idx = CellIndex.build(INLINE, cell_deg=0.3)
    x, y = random_points(np.array([0, 0, 7, 4]), 2_000, seed=2)
    bx, by = vertices_and_midpoints(np.asarray(INLINE, dtype=object))
    x, y = np.concatenate([x, bx, [np.nan, 1.0, np.inf]]), np.concatenate([y, by, [1.0, np.nan, 2]])
    vec = idx.lookup(x, y)
    one = np.array([idx.lookup_one(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)])
    np.testing.assert_array_equal(one, vec)


def test_nan_inf_and_outside_points_get_none() -> None:
    idx = CellIndex.build(INLINE)
    x = np.array([np.nan, 1.5, np.inf, -np.inf, 0.5, -100.0, 1e300, 0.5])
    y = np.array([0.5, np.nan, 0.5, 0.5, np.inf, 0.5, 0.5, 0.5])
    got = idx.lookup(x, y)
    np.testing.assert_array_equal(got[:7], np.full(7, NONE))
    assert got[7] == 0  # the finite control point is found


def test_shape_is_preserved_and_ids_are_mapped() -> None:
    idx = CellIndex.build(INLINE, ids=["holed", "enclave", "multi", "tri"])
    x = np.array([[0.5, 1.5], [5.5, 100.0]])
    y = np.array([[0.5, 1.5], [0.5, 0.0]])
    assert idx.lookup(x, y).shape == (2, 2)
    assert idx.lookup_ids(x, y, missing=None).tolist() == [["holed", "enclave"], ["multi", None]]


def test_empty_input_and_empty_geometries() -> None:
    empty = CellIndex.build([])
    assert empty.lookup(np.array([1.0]), np.array([1.0])).tolist() == [NONE]
    assert empty.lookup(np.array([]), np.array([])).shape == (0,)
    assert empty.lookup_one(1.0, 1.0) == NONE
    idx = CellIndex.build([Polygon(), None, box(0, 0, 1, 1)])
    assert idx.lookup(np.array([0.5, 1.5]), np.array([0.5, 0.5])).tolist() == [2, NONE]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ReferenceDataError, match="polygon 1"):
        CellIndex.build([box(0, 0, 1, 1), shapely.Point(0, 0)])
    with pytest.raises(CRSMismatchError, match="EPSG:4326"):
        CellIndex.build(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs="EPSG:3857"))
    with pytest.raises(ReferenceDataError, match="ids"):
        CellIndex.build(INLINE, ids=[1, 2])
    with pytest.raises(ReferenceDataError, match="cell_deg"):
        CellIndex.build(INLINE, cell_deg=0)


def test_grid_codes_are_consistent() -> None:
    idx = CellIndex.build(INLINE, cell_deg=0.2)
    inner = idx.grid[1:-1, 1:-1]
    # padding ring is NONE, boundary cells are exactly the CSR cells
    assert (idx.grid[0] == NONE).all() and (idx.grid[:, -1] == NONE).all()
    assert (idx.grid.ravel()[idx.cand_cells] == BOUNDARY).all()
    assert (inner == BOUNDARY).sum() == len(idx.cand_cells)
    # interior cells: the centre lies in the stored polygon
    rows, cols = np.nonzero(inner >= 0)
    cx, cy = idx.x0 + (cols + 0.5) * idx.cell_deg, idx.y0 + (rows + 0.5) * idx.cell_deg
    np.testing.assert_array_equal(exact(INLINE, cx, cy), inner[rows, cols])


REAL_LAYERS = ["districts", "basins", "parks"]


@pytest.mark.parametrize("layer", REAL_LAYERS)
def test_real_layer_matches_exact_on_100k_points(layer: str) -> None:
    path = DATA_DIR / f"{layer}.geojson"  # shipped with the package: missing is a failure
    gdf = gpd.read_file(path)
    polys = gdf.geometry.values
    idx = CellIndex.build(gdf)
    x, y = random_points(gdf.total_bounds, 100_000, seed=3)
    ref = exact(polys, x, y)
    got = idx.lookup(x, y)
    np.testing.assert_array_equal(got, ref)
    assert (ref >= 0).any()  # the sample actually hits polygons
    # boundary points of the first few polygons
    bx, by = vertices_and_midpoints(polys[:5])
    np.testing.assert_array_equal(idx.lookup(bx, by), exact(polys, bx, by))
