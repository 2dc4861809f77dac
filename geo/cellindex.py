"""Precomputed cell index for fast point-in-polygon lookups on a non-overlapping layer.

The layer's bounds are covered by a regular lon/lat grid. Each cell stores

* the polygon index when the cell lies entirely inside exactly one polygon (interior),
* ``BOUNDARY`` (−2) when any polygon boundary touches the cell,
* ``NONE`` (−1) when the cell lies outside every polygon.

A lookup maps points to cells with a few vectorised numpy passes; only points in boundary
cells are tested exactly, with ``shapely.contains_xy`` against the short list of polygons
whose boundary touches that cell (stored as CSR arrays), grouped per polygon.

Boundary rule: the answer equals ``shapely.contains_xy`` exactly. A point lying exactly on a
polygon's boundary (vertex or edge) is *not* contained, so it gets −1 unless it lies in
the interior of another polygon. NaN/inf coordinates get −1. The input polygons must not
overlap (districts, basins, parks); for overlapping input the result for points in the
overlap is unspecified.

How cells are marked: every ring is densified (``shapely.segmentize``) to segments no
longer than one cell, and each segment marks all cells of its bounding box, widened by a
tiny epsilon so that a boundary on a cell edge marks the cells on both sides. Cells with no
boundary are labelled by rasterising the polygons at cell centres (``rasterio``); as no
boundary crosses such a cell, its centre's polygon is the whole cell's polygon.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geo.errors import CRSMismatchError, ReferenceDataError

__all__ = ["BOUNDARY", "NONE", "DEFAULT_TARGET_CELLS", "CellIndex"]

log = logging.getLogger(__name__)

#: Cell code: a polygon boundary touches the cell.
BOUNDARY: Final = -2
#: Cell code / lookup result: no polygon.
NONE: Final = -1
#: Default grid size (cells) when ``cell_deg`` is not given; chosen by measurement on the
#: 124 Guangdong districts (see BENCHMARKS.md): about 2% of points land in boundary cells.
DEFAULT_TARGET_CELLS: Final = 4_000_000
#: Smallest default cell (degrees, about 11 m), so tiny layers do not get absurd grids.
_MIN_CELL_DEG: Final = 1e-4
#: Widening of segment boxes, in cell units, to absorb rounding at cell edges.
_EPS: Final = 1e-7
#: Points per vectorised chunk in lookup().
_CHUNK: Final = 65_536


def _as_polygons(
    polygons: gpd.GeoDataFrame | gpd.GeoSeries | Sequence[Any] | NDArray[Any],
) -> NDArray[Any]:
    if isinstance(polygons, gpd.GeoDataFrame | gpd.GeoSeries):
        crs = polygons.crs
        if crs is not None and crs.to_epsg() != 4326:
            raise CRSMismatchError(
                f"CellIndex needs polygons in EPSG:4326, got {crs.to_string()}: "
                "call .to_crs('EPSG:4326') first."
            )
        geoms = np.asarray(
            polygons.geometry.values if isinstance(polygons, gpd.GeoDataFrame) else polygons.values,
            dtype=object,
        )
    else:
        geoms = np.asarray(list(polygons), dtype=object)
    if geoms.size:
        types = shapely.get_type_id(geoms)
        bad = np.flatnonzero(~np.isin(types, (-1, 3, 6)))  # missing, Polygon, MultiPolygon
        if bad.size:
            i = int(bad[0])
            kind = getattr(geoms[i], "geom_type", type(geoms[i]).__name__)
            raise ReferenceDataError(
                f"CellIndex polygon {i} is a {kind}: expected Polygon or MultiPolygon."
            )
    return geoms


@dataclass(frozen=True, eq=False)
class CellIndex:
    """Grid index answering "which polygon contains this point" for non-overlapping polygons.

    Build with :meth:`CellIndex.build`; query with :meth:`lookup` (arrays) or
    :meth:`lookup_one` (one point).

    Attributes
    ----------
    polygons
        The polygons (object array of shapely geometries, prepared).
    ids
        One label per polygon (defaults to ``0..n-1``).
    x0, y0
        Lower-left corner of the grid (degrees).
    cell_deg
        Cell size (degrees).
    nx, ny
        Grid columns and rows (without the one-cell padding ring).
    grid
        ``(ny + 2, nx + 2)`` cell codes, padded with ``NONE`` on every side.
    cand_ptr, cand_poly
        CSR candidate lists: for a boundary cell with flat (padded) index ``f``, its
        candidate polygons are ``cand_poly[cand_ptr[k]:cand_ptr[k + 1]]`` where ``k`` is the
        rank of ``f`` in ``cand_cells``.
    cand_cells
        Sorted flat (padded) indices of the boundary cells.
    """

    polygons: NDArray[Any]
    ids: NDArray[Any]
    x0: float
    y0: float
    cell_deg: float
    nx: int
    ny: int
    grid: NDArray[np.integer[Any]]
    cand_cells: NDArray[np.int64]
    cand_ptr: NDArray[np.int64]
    cand_poly: NDArray[np.int32]
    bounds: NDArray[np.float64]

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        polygons: gpd.GeoDataFrame | gpd.GeoSeries | Sequence[Any] | NDArray[Any],
        *,
        cell_deg: float | None = None,
        ids: ArrayLike | None = None,
    ) -> CellIndex:
        """Build the index for non-overlapping polygons in EPSG:4326.

        Parameters
        ----------
        polygons
            GeoDataFrame/GeoSeries (CRS EPSG:4326 or unset) or a sequence of shapely
            Polygon/MultiPolygon. Missing/empty geometries never match.
        cell_deg
            Cell size in degrees. Default: the size giving about
            ``DEFAULT_TARGET_CELLS`` cells over the layer's bounds (at least 1e-4°).
        ids
            Optional labels, one per polygon, returned by :meth:`lookup_ids`.

        Returns
        -------
        CellIndex
            The index; lookups return positions into ``polygons``.

        Raises
        ------
        CRSMismatchError
            A GeoDataFrame/GeoSeries in another CRS.
        ReferenceDataError
            A geometry that is not a (multi)polygon, ``ids`` of the wrong length, or a
            non-positive ``cell_deg``.
        """
        geoms = _as_polygons(polygons)
        n = len(geoms)
        ids_arr = np.arange(n) if ids is None else np.asarray(ids)
        if len(ids_arr) != n:
            raise ReferenceDataError(f"CellIndex ids: expected {n} labels, got {len(ids_arr)}.")
        if cell_deg is not None and not (math.isfinite(cell_deg) and cell_deg > 0):
            raise ReferenceDataError(
                f"CellIndex cell_deg: expected a positive number, got {cell_deg}."
            )
        usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) if n else np.zeros(0, bool)
        if not usable.any():
            return cls._empty(geoms, ids_arr, cell_deg or 1.0)
        shapely.prepare(geoms[usable])
        xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(geoms[usable]))
        if cell_deg is None:
            area = max((xmax - xmin) * (ymax - ymin), 1e-12)
            cell_deg = max(math.sqrt(area / DEFAULT_TARGET_CELLS), _MIN_CELL_DEG)
        inv = 1.0 / cell_deg
        nx = int(math.floor((xmax - xmin) * inv)) + 1
        ny = int(math.floor((ymax - ymin) * inv)) + 1
        # the smallest code type keeps the grid in cache: int8 for up to 127 polygons
        dtype = next(t for t in (np.int8, np.int16, np.int32) if n <= np.iinfo(t).max)
        width = nx + 2

        # 1. interior labels by rasterising at cell centres (padded grid, row 0 = south)
        grid = np.full((ny + 2, width), NONE, dtype=dtype)
        grid[1:-1, 1:-1] = _rasterise(geoms, usable, xmin, ymin, cell_deg, nx, ny, dtype)

        # 2. boundary cells + candidate polygons from densified ring segments
        cells, polys = _boundary_pairs(geoms, usable, xmin, ymin, inv, nx, ny, width)
        pair = np.unique(cells * np.int64(n + 1) + polys)
        cells, polys = pair // (n + 1), (pair % (n + 1)).astype(np.int32)
        cand_cells, starts = np.unique(cells, return_index=True)
        cand_ptr = np.append(starts, len(cells)).astype(np.int64)
        grid.ravel()[cand_cells] = BOUNDARY
        idx = cls(
            polygons=geoms,
            ids=ids_arr,
            x0=xmin,
            y0=ymin,
            cell_deg=float(cell_deg),
            nx=nx,
            ny=ny,
            grid=grid,
            cand_cells=cand_cells.astype(np.int64),
            cand_ptr=cand_ptr,
            cand_poly=polys,
            bounds=shapely.bounds(geoms),
        )
        log.debug(
            "CellIndex: %d polygons, %dx%d cells of %.5f°, %.2f%% boundary cells",
            n, nx, ny, cell_deg, 100 * idx.boundary_share,
        )
        return idx

    @classmethod
    def _empty(cls, geoms: NDArray[Any], ids: NDArray[Any], cell_deg: float) -> CellIndex:
        return cls(
            polygons=geoms,
            ids=ids,
            x0=0.0,
            y0=0.0,
            cell_deg=float(cell_deg),
            nx=0,
            ny=0,
            grid=np.full((2, 2), NONE, dtype=np.int16),
            cand_cells=np.zeros(0, np.int64),
            cand_ptr=np.zeros(1, np.int64),
            cand_poly=np.zeros(0, np.int32),
            bounds=np.zeros((len(geoms), 4)),
        )

    # ------------------------------------------------------------------ stats
    @property
    def boundary_share(self) -> float:
        """Share of the grid's cells that are boundary cells."""
        return len(self.cand_cells) / max(self.nx * self.ny, 1)

    @property
    def nbytes(self) -> int:
        """Memory held by the grid and candidate arrays (bytes)."""
        return int(self.grid.nbytes + self.cand_cells.nbytes + self.cand_ptr.nbytes
                   + self.cand_poly.nbytes)

    # ------------------------------------------------------------------ lookups
    def _cells(
        self, x: NDArray[np.float64], y: NDArray[np.float64], out: NDArray[np.intp] | None = None
    ) -> NDArray[np.intp]:
        """Flat padded cell index of each point; NaN/inf/outside map to the NONE padding."""
        inv = 1.0 / self.cell_deg
        fx = np.subtract(x, self.x0)
        fx *= inv
        fx += 1.0
        np.fmax(fx, 0.0, out=fx)  # fmax/fmin drop NaN: NaN -> 0 (padding)
        np.fmin(fx, self.nx + 1.0, out=fx)
        fy = np.subtract(y, self.y0)
        fy *= inv
        fy += 1.0
        np.fmax(fy, 0.0, out=fy)
        np.fmin(fy, self.ny + 1.0, out=fy)
        cell = np.empty(len(fx), np.intp) if out is None else out
        np.copyto(cell, fy, casting="unsafe")  # values >= 0, so truncation == floor
        cell *= self.nx + 2
        cell += fx.astype(np.intp)
        return cell

    def lookup(self, x: ArrayLike, y: ArrayLike) -> NDArray[np.intp]:
        """Polygon index containing each point (−1 for none), exactly as ``contains_xy``.

        Parameters
        ----------
        x, y
            Longitudes and latitudes (WGS84 degrees), same shape.

        Returns
        -------
        numpy.ndarray
            ``intp`` array of polygon positions, −1 where no polygon contains the point
            (outside, on a boundary, NaN).
        """
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if xa.shape != ya.shape:
            raise ValueError(
                f"lookup: x and y must have the same shape, got {xa.shape} and {ya.shape}."
            )
        shape = xa.shape
        xa, ya = xa.ravel(), ya.ravel()
        n = len(xa)
        out = np.empty(n, dtype=np.intp)
        cell = np.empty(n, dtype=np.intp)
        flat = self.grid.ravel()
        # chunks keep the temporaries in cache (about 2x faster than whole-array passes)
        buf = np.empty(min(n, _CHUNK), dtype=self.grid.dtype)
        for s in range(0, n, _CHUNK):
            e = min(s + _CHUNK, n)
            c = self._cells(xa[s:e], ya[s:e], cell[s:e])
            flat.take(c, out=buf[: e - s])
            out[s:e] = buf[: e - s]
        hit = np.flatnonzero(out == BOUNDARY)
        if hit.size:
            out[hit] = self._exact(xa[hit], ya[hit], cell[hit])
        return out.reshape(shape)

    def _exact(
        self, x: NDArray[np.float64], y: NDArray[np.float64], cell: NDArray[np.intp]
    ) -> NDArray[np.intp]:
        """Exact test of points in boundary cells against their cells' candidates."""
        k = np.searchsorted(self.cand_cells, cell)
        start, stop = self.cand_ptr[k], self.cand_ptr[k + 1]
        counts = stop - start
        point = np.repeat(np.arange(len(x)), counts)
        # position of each (point, candidate) pair in cand_poly
        offs = np.arange(len(point)) - np.repeat(np.cumsum(counts) - counts, counts)
        poly = self.cand_poly[np.repeat(start, counts) + offs]
        # bbox prefilter
        b = self.bounds[poly]
        px, py = x[point], y[point]
        keep = (px >= b[:, 0]) & (px <= b[:, 2]) & (py >= b[:, 1]) & (py <= b[:, 3])
        point, poly, px, py = point[keep], poly[keep], px[keep], py[keep]
        result = np.full(len(x), NONE, dtype=np.intp)
        if not len(point):
            return result
        order = np.argsort(poly, kind="stable")
        point, poly, px, py = point[order], poly[order], px[order], py[order]
        uniq, first = np.unique(poly, return_index=True)
        bounds = np.append(first, len(poly))
        # descending polygon order: the lowest index wins should polygons overlap
        for j in range(len(uniq) - 1, -1, -1):
            s, e = bounds[j], bounds[j + 1]
            inside = shapely.contains_xy(self.polygons[uniq[j]], px[s:e], py[s:e])
            result[point[s:e][inside]] = uniq[j]
        return result

    def lookup_one(self, x: float, y: float) -> int:
        """Polygon index containing one point (−1 for none); same rule as :meth:`lookup`.

        Parameters
        ----------
        x, y
            Longitude and latitude (WGS84 degrees).

        Returns
        -------
        int
            Polygon position, or −1.
        """
        fx = (x - self.x0) * (1.0 / self.cell_deg) + 1.0
        fy = (y - self.y0) * (1.0 / self.cell_deg) + 1.0
        if not (0.0 <= fx < self.nx + 1.0 and 0.0 <= fy < self.ny + 1.0):
            return NONE  # outside or NaN
        code = int(self.grid.item(int(fy), int(fx)))
        if code != BOUNDARY:
            return code
        flat = int(fy) * (self.nx + 2) + int(fx)
        k = int(np.searchsorted(self.cand_cells, flat))
        for p in self.cand_poly[self.cand_ptr[k]:self.cand_ptr[k + 1]].tolist():
            bx0, by0, bx1, by1 = self.bounds[p].tolist()
            if bx0 <= x <= bx1 and by0 <= y <= by1 and shapely.contains_xy(self.polygons[p], x, y):
                return int(p)
        return NONE

    def lookup_ids(self, x: ArrayLike, y: ArrayLike, *, missing: Any = "") -> NDArray[Any]:
        """Like :meth:`lookup` but returns the polygons' ``ids`` (``missing`` for none)."""
        labels = np.empty(len(self.ids) + 1, dtype=object)
        labels[:-1] = self.ids
        labels[-1] = missing  # position -1 (NONE): no polygon
        return labels[self.lookup(x, y)]


def _rasterise(
    geoms: NDArray[Any],
    usable: NDArray[np.bool_],
    x0: float,
    y0: float,
    cell: float,
    nx: int,
    ny: int,
    dtype: Any,
) -> NDArray[Any]:
    """Polygon index at each cell centre, rows south→north, NONE elsewhere."""
    from rasterio.features import rasterize
    from rasterio.transform import Affine

    # rasterio rows run north→south; build with a positive y step so row 0 is the south edge
    transform = Affine(cell, 0.0, x0, 0.0, cell, y0)
    shapes = ((g, int(i)) for i, g in zip(np.flatnonzero(usable), geoms[usable], strict=True))
    out = rasterize(
        shapes, out_shape=(ny, nx), transform=transform, fill=NONE, dtype=np.int32,
        all_touched=False,
    )
    return out.astype(dtype)


def _boundary_pairs(
    geoms: NDArray[Any],
    usable: NDArray[np.bool_],
    x0: float,
    y0: float,
    inv: float,
    nx: int,
    ny: int,
    width: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(flat padded cell, polygon) pairs for every cell a ring segment's box touches."""
    poly_idx = np.flatnonzero(usable)
    parts, part_of = shapely.get_parts(geoms[usable], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    rings = shapely.segmentize(rings, 0.999 / inv)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    same = coord_ring[1:] == coord_ring[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    seg_poly = poly_idx[part_of[ring_of[coord_ring[:-1][same]]]]
    lo = (np.minimum(a, b) - (x0, y0)) * inv
    hi = (np.maximum(a, b) - (x0, y0)) * inv
    c0 = np.clip(np.floor(lo[:, 0] - _EPS), 0, nx - 1).astype(np.int64)
    c1 = np.clip(np.floor(hi[:, 0] + _EPS), 0, nx - 1).astype(np.int64)
    r0 = np.clip(np.floor(lo[:, 1] - _EPS), 0, ny - 1).astype(np.int64)
    r1 = np.clip(np.floor(hi[:, 1] + _EPS), 0, ny - 1).astype(np.int64)
    span = int(max((c1 - c0).max(initial=0), (r1 - r0).max(initial=0)))
    cells: list[NDArray[np.int64]] = []
    polys: list[NDArray[np.int64]] = []
    for dr in range(span + 1):  # loops over the ≤3 offsets of a box, not over geometries
        for dc in range(span + 1):
            m = (r0 + dr <= r1) & (c0 + dc <= c1)
            cells.append((r0[m] + dr + 1) * width + (c0[m] + dc + 1))
            polys.append(seg_poly[m])
    return np.concatenate(cells), np.concatenate(polys).astype(np.int64)
