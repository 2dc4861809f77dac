"""CellIndex: the documented structure (class docstring) holds for empty and real inputs.

Oracles: the attribute contract written in ``CellIndex``'s docstring (grid padded to
``(ny + 2, nx + 2)``, CSR candidate lists, one label and one bounds row per polygon),
shapely for bounds and containment, and counts recomputed here from the arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from geo.cellindex import BOUNDARY, NONE, CellIndex

LAYER = [box(0, 0, 4, 4), Polygon([(4, 0), (5, 0), (4.5, 3.7)]), box(5, 0, 6, 1)]


def _check_contract(idx: CellIndex, polys: list, ids: list) -> None:
    n = len(polys)
    assert idx.grid.shape == (idx.ny + 2, idx.nx + 2)
    assert (idx.grid[0] == NONE).all() and (idx.grid[-1] == NONE).all()
    assert (idx.grid[:, 0] == NONE).all() and (idx.grid[:, -1] == NONE).all()
    assert len(idx.cand_ptr) == len(idx.cand_cells) + 1
    assert idx.cand_ptr[0] == 0 and idx.cand_ptr[-1] == len(idx.cand_poly)
    assert (np.diff(idx.cand_ptr) > 0).all()  # every boundary cell has a candidate
    assert (np.diff(idx.cand_cells) > 0).all()  # sorted, unique
    assert idx.bounds.shape == (n, 4)
    assert len(idx.polygons) == n and all(a is b for a, b in zip(idx.polygons, polys, strict=True))
    assert list(idx.ids) == ids
    want_bytes = (idx.grid.nbytes + idx.cand_cells.nbytes + idx.cand_ptr.nbytes
                  + idx.cand_poly.nbytes)
    assert idx.nbytes == want_bytes
    boundary = int((idx.grid == BOUNDARY).sum())
    assert boundary == len(idx.cand_cells)
    assert idx.boundary_share == pytest.approx(boundary / max(idx.nx * idx.ny, 1))


@pytest.mark.parametrize("polys", [[], [Polygon(), None]])
def test_empty_index_contract_and_lookups(polys: list) -> None:
    ids = [f"p{i}" for i in range(len(polys))]
    idx = CellIndex.build(polys, ids=ids)
    _check_contract(idx, polys, ids)
    assert idx.nx == idx.ny == 0 and idx.boundary_share == 0.0
    x = np.array([0.0, 0.5, 1.0, -3.0, np.nan])
    y = np.array([0.0, 0.5, 1.0, 2.0, 1.0])
    assert idx.lookup(x, y).tolist() == [NONE] * 5
    assert [idx.lookup_one(a, b) for a, b in zip(x, y, strict=True)] == [NONE] * 5
    assert idx.lookup_ids(x, y, missing="-").tolist() == ["-"] * 5


@pytest.mark.parametrize("cell_deg", [None, 0.3, 1.0])
def test_real_index_contract(cell_deg: float | None) -> None:
    ids = ["a", "b", "c"]
    idx = CellIndex.build(LAYER, cell_deg=cell_deg, ids=ids)
    _check_contract(idx, LAYER, ids)
    np.testing.assert_array_equal(idx.bounds, shapely.bounds(np.asarray(LAYER, dtype=object)))
    assert (idx.x0, idx.y0) == (0.0, 0.0)  # lower-left corner of the layer's bounds
    # the grid is the smallest one whose cells hold the bounds' far edge (a point at
    # xmax falls in column nx - 1): (nx - 1) * cell <= width < nx * cell
    assert (idx.nx - 1) * idx.cell_deg <= 6.0 < idx.nx * idx.cell_deg
    assert (idx.ny - 1) * idx.cell_deg <= 4.0 < idx.ny * idx.cell_deg


def test_lookups_on_a_layer_away_from_the_origin() -> None:
    # Guangdong-like coordinates: the grid origin is far from (0, 0)
    polys = [shapely.affinity.translate(p, 110.0, 21.0) for p in LAYER]
    idx = CellIndex.build(polys, cell_deg=0.25)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(109.5, 116.5, 3000), rng.uniform(20.5, 25.5, 3000)
    want = np.full(x.shape, NONE)
    for i in range(len(polys) - 1, -1, -1):
        want[shapely.contains_xy(polys[i], x, y)] = i
    assert (want >= 0).sum() > 500
    np.testing.assert_array_equal(idx.lookup(x, y), want)
    one = [idx.lookup_one(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    np.testing.assert_array_equal(one, want)


def test_lookup_ids_keeps_labels_whole() -> None:
    idx = CellIndex.build(LAYER, ids=["广州市越秀区", "440104", "basin-3"])
    x, y = np.array([2.0, 4.5, 5.5, 9.0]), np.array([2.0, 1.0, 0.5, 9.0])
    got = idx.lookup_ids(x, y).tolist()
    assert got == ["广州市越秀区", "440104", "basin-3", ""]  # default for none: empty text
    assert idx.lookup_ids(x, y, missing=None).tolist()[-1] is None
