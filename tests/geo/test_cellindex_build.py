"""CellIndex.build: grid size, default cell size, code dtype and the build log line
(issue 16, survivors of ``CellIndex.build``).

Oracles written here by hand from ``build``'s docstring and the class docstring: the default
cell is ``max(sqrt(bbox area / DEFAULT_TARGET_CELLS), 1e-4)`` degrees, the grid has
``floor(extent / cell) + 1`` columns/rows plus a ``NONE`` ring, codes use the smallest signed
integer type that holds the polygon count (int8 up to 127 polygons), and containment is
checked against ``shapely.contains_xy``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from geo.cellindex import DEFAULT_TARGET_CELLS, NONE, CellIndex


def _want(polys: list, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    want = np.full(x.shape, NONE)
    for i in range(len(polys) - 1, -1, -1):
        want[shapely.contains_xy(polys[i], x, y)] = i
    return want


def _row(n: int, x0: float = 100.0, y0: float = 30.0, w: float = 0.01) -> list:
    return [box(x0 + i * w, y0, x0 + (i + 1) * w, y0 + w) for i in range(n)]


def test_default_cell_size_and_grid_shape_away_from_the_origin() -> None:
    # bounds 2 x 1 degrees at (100, 30): area 2, cell sqrt(2 / 4e6) degrees
    polys = [box(100.0, 30.0, 101.0, 31.0), box(101.0, 30.0, 102.0, 31.0)]
    idx = CellIndex.build(polys)
    cell = math.sqrt(2.0 / DEFAULT_TARGET_CELLS)
    assert idx.cell_deg == cell
    assert (idx.x0, idx.y0) == (100.0, 30.0)
    assert idx.nx == math.floor(2.0 / cell) + 1 and idx.ny == math.floor(1.0 / cell) + 1
    assert idx.grid.shape == (idx.ny + 2, idx.nx + 2)
    assert abs(idx.nx * idx.ny - DEFAULT_TARGET_CELLS) < 0.01 * DEFAULT_TARGET_CELLS


def test_given_cell_size_grid_shape_away_from_the_origin() -> None:
    polys = [box(113.0, 22.0, 113.5, 22.3)]
    idx = CellIndex.build(polys, cell_deg=0.1)
    assert idx.cell_deg == 0.1
    assert idx.nx == math.floor(0.5 / 0.1) + 1 and idx.ny == math.floor((22.3 - 22.0) / 0.1) + 1
    assert idx.grid.shape == (idx.ny + 2, idx.nx + 2)
    x, y = np.meshgrid(np.linspace(112.9, 113.6, 36), np.linspace(21.9, 22.4, 26))
    np.testing.assert_array_equal(idx.lookup(x.ravel(), y.ravel()),
                                  _want(polys, x.ravel(), y.ravel()))


def test_default_cell_size_has_a_floor_for_tiny_layers() -> None:
    # bbox area 1e-8: sqrt(1e-8 / 4e6) = 5e-8 < 1e-4, so the cell is 1e-4 degrees
    polys = [box(100.0, 30.0, 100.0001, 30.0001)]
    idx = CellIndex.build(polys)
    assert idx.cell_deg == 1e-4
    # a degenerate (zero-area) bbox: area floored at 1e-12, cell still 1e-4
    line_like = [box(100.0, 30.0, 100.5, 30.0 + 1e-13)]
    assert CellIndex.build(line_like).cell_deg == 1e-4


def test_code_dtype_is_the_smallest_signed_type_for_the_polygon_count() -> None:
    for n, dtype in ((1, np.int8), (127, np.int8), (128, np.int16), (300, np.int16)):
        polys = _row(n)
        idx = CellIndex.build(polys, cell_deg=0.01)
        assert idx.grid.dtype == dtype, n
        assert idx.nbytes == (idx.grid.size * np.dtype(dtype).itemsize + idx.cand_cells.nbytes
                              + idx.cand_ptr.nbytes + idx.cand_poly.nbytes)
        x = 100.0 + (np.arange(n) + 0.5) * 0.01
        y = np.full(n, 30.005)
        np.testing.assert_array_equal(idx.lookup(x, y), np.arange(n))


def test_build_logs_its_size_and_boundary_share(caplog: pytest.LogCaptureFixture) -> None:
    polys = [box(0.0, 0.0, 1.0, 1.0), box(1.0, 0.0, 2.0, 1.0)]
    caplog.set_level(logging.DEBUG, logger="geo.cellindex")
    idx = CellIndex.build(polys, cell_deg=0.25)
    share = len(idx.cand_cells) / (idx.nx * idx.ny)
    assert (idx.nx, idx.ny) == (9, 5)
    records = [r for r in caplog.records if r.name == "geo.cellindex"]
    assert [r.getMessage() for r in records] == [
        f"CellIndex: 2 polygons, 9x5 cells of 0.25000°, {100 * share:.2f}% boundary cells"
    ]
    assert records[0].levelno == logging.DEBUG
