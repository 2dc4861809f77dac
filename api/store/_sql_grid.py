"""In-database point-in-polygon on a cell grid: the SQL of :func:`classify_in_database`.

The reference polygons are cut into the cells of a square grid (``ST_SquareGrid``, cell
``i, j`` = ``[i*r, (i+1)*r) x [j*r, (j+1)*r)``). A point finds its cell by arithmetic
(``floor(x / r)``) and a hash join, with no geometry function per row; only points in
cells crossed by a polygon boundary are tested against the polygon's piece in that cell
(a few vertices). The answers equal :func:`geo.classify.classify` (GEOS ``contains``:
boundary excluded, the lowest-positioned polygon wins):

* a cell is *inside* a polygon when the cell grown by ``margin`` lies in the polygon's
  interior (``ST_ContainsProperly``), *outside* when the grown cell does not meet it;
  the margin (1e-6 degrees) dwarfs the rounding of ``floor(x / r)``, so a point always
  lies in the grown cell of the key it computes;
* per kind and cell the answer is *decided* when no boundary polygon precedes the first
  polygon the cell is inside of (grid table ``bw_ref_grid``: decided position, -1 none,
  NULL undecided); undecided cells list their candidate polygons in ``bw_ref_cells``, each
  with its piece (``ST_ClipByBox2D`` to the grown cell) and the piece's boundary;
* a piece's clip edges lie ``margin`` outside the cell, so a point in the cell is in the
  piece exactly when it is in the polygon, unless it lies within ``eps`` (1e-9 degrees,
  0.1 mm) of the polygon boundary: clipping moves the cut edges by ~1e-14 degrees, and
  PostGIS's point-in-polygon shortcut is not robust that close to an edge. Those points
  (points on an edge or a vertex, in practice) are decided by GEOS ``ST_Relate`` against the
  whole polygon with the ``contains`` pattern, exactly as in process.

A point sits in one cell only (``floor``), so a point on a cell line -- the cut lines of
the pieces -- is counted once; several polygons of one kind reduce to the lowest position.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CELL_DEG", "MARGIN_DEG", "NEAR_DEG", "build_sql", "grid_join_sql", "position_sql",
           "positions_sql", "undecided_sql"]

#: Grid cell size (degrees, ~1.1 km): ~15 % of the points fall in boundary cells.
CELL_DEG = 0.01
#: The cell grown by this much must be inside (or clear of) a polygon to decide it.
MARGIN_DEG = 1e-6
#: Points nearer than this to a polygon boundary are decided by GEOS on the whole polygon.
NEAR_DEG = 1e-9
#: GEOS DE-9IM pattern of "a contains b".
CONTAINS = "T*****FF*"

#: Points' coordinates are clamped to this range (degrees) before the integer cell key.
_CLAMP = 1000.0


def build_sql(tables: Mapping[int, str]) -> list[str]:
    """Statements (re)building ``bw_ref_shapes``, ``bw_ref_cells`` and ``bw_ref_grid``.

    ``tables`` maps a kind number (its column ``k<n>`` in the grid) to its reference table
    (columns ``pos`` and ``geom``).
    """
    r, m = repr(CELL_DEG), repr(MARGIN_DEG)
    shapes = " UNION ALL ".join(
        f"SELECT {k}::smallint AS kind, pos, geom FROM {t}" for k, t in tables.items()
    )
    kinds = ", ".join(
        f"CASE WHEN bool_or(kind = {k}) THEN max(pos) FILTER (WHERE kind = {k}) ELSE -1 END"
        f" AS k{k}" for k in tables
    )
    return [
        "DROP TABLE IF EXISTS bw_ref_grid, bw_ref_cells, bw_ref_shapes CASCADE",
        f"CREATE TABLE bw_ref_shapes AS {shapes}",
        "ALTER TABLE bw_ref_shapes ADD PRIMARY KEY (kind, pos)",
        # GEOS's exact answer for points at the boundary (a function, so plans stay parallel)
        f"""CREATE OR REPLACE FUNCTION bw_ref_contains(k smallint, p integer, g geometry)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT ST_Relate(s.geom, g, '{CONTAINS}') FROM bw_ref_shapes s
   WHERE s.kind = k AND s.pos = p $$""",
        # every (polygon, cell) whose grown cell meets the polygon, inside or not
        f"""CREATE TEMP TABLE _bw_pairs ON COMMIT DROP AS
SELECT s.kind, s.pos, c.i, c.j, ST_Expand(c.geom, {m}) AS box,
       ST_ContainsProperly(s.geom, ST_Expand(c.geom, {m})) AS inside
FROM bw_ref_shapes s CROSS JOIN LATERAL ST_SquareGrid({r}, ST_Expand(s.geom, {m})) c
WHERE ST_Intersects(s.geom, ST_Expand(c.geom, {m}))""",
        # per kind and cell: the first polygon the cell is inside of, if any
        """CREATE TEMP TABLE _bw_first ON COMMIT DROP AS
SELECT kind, i, j, min(pos) FILTER (WHERE inside) AS first_in
FROM _bw_pairs GROUP BY kind, i, j""",
        # candidates of undecided cells: boundary polygons before the first inside one
        # (and that one); a decided cell is one with no such boundary polygon
        """CREATE TEMP TABLE _bw_cand ON COMMIT DROP AS
SELECT p.kind, p.pos, p.i, p.j, p.inside, p.box
FROM _bw_pairs p JOIN _bw_first f USING (kind, i, j)
WHERE p.pos <= coalesce(f.first_in, 2147483647)""",
        """CREATE TEMP TABLE _bw_decided ON COMMIT DROP AS
SELECT kind, i, j, CASE WHEN bool_and(inside) THEN min(pos) END AS pos
FROM _bw_cand GROUP BY kind, i, j""",
        """CREATE TABLE bw_ref_cells AS
SELECT c.kind, c.i, c.j, c.pos, q.piece, ST_Boundary(q.piece) AS edge
FROM _bw_cand c JOIN _bw_decided d USING (kind, i, j)
JOIN bw_ref_shapes s ON s.kind = c.kind AND s.pos = c.pos
CROSS JOIN LATERAL (SELECT CASE WHEN c.inside THEN NULL
                    ELSE ST_ClipByBox2D(s.geom, c.box::box2d) END AS piece) q
WHERE d.pos IS NULL""",
        # decided position per kind (-1: no polygon of the kind, NULL: see bw_ref_cells)
        f"CREATE TABLE bw_ref_grid AS SELECT i, j, {kinds} FROM _bw_decided GROUP BY i, j",
        "ALTER TABLE bw_ref_grid ADD PRIMARY KEY (i, j)",
        "CREATE INDEX ix_bw_ref_cells_ij ON bw_ref_cells (i, j)",
        "ANALYZE bw_ref_shapes",
        "ANALYZE bw_ref_cells",
        "ANALYZE bw_ref_grid",
    ]


def _key(axis: str, alias: str) -> str:
    """The integer cell key of ``alias.geometry`` along ``axis`` (``ST_X`` / ``ST_Y``)."""
    return (f"floor(least(greatest({axis}({alias}.geometry), -{_CLAMP}), {_CLAMP}) / "
            f"{CELL_DEG!r})::int")


def grid_join_sql(alias: str = "e") -> str:
    """``LEFT JOIN`` of ``bw_ref_grid g`` on the cell of ``alias.geometry``."""
    return (f"LEFT JOIN bw_ref_grid g ON g.i = {_key('ST_X', alias)} "
            f"AND g.j = {_key('ST_Y', alias)}")


def undecided_sql(kinds: list[int]) -> str:
    """Return a query of ``fid, u<n>...``: for the enterprises in undecided cells, the lowest
    position per kind of a candidate polygon whose interior contains the point."""
    eps = repr(NEAR_DEG)
    und = ", ".join(f"min(c.pos) FILTER (WHERE c.kind = {k}) AS u{k}" for k in kinds)
    return f"""
SELECT q.fid, {und}
FROM enterprises q JOIN bw_ref_cells c
  ON c.i = {_key('ST_X', 'q')} AND c.j = {_key('ST_Y', 'q')}
WHERE c.piece IS NULL OR CASE
    WHEN ST_DWithin(c.edge, q.geometry, {eps})
    THEN bw_ref_contains(c.kind, c.pos, q.geometry)
    ELSE ST_Intersects(c.piece, q.geometry) END
GROUP BY q.fid"""


def position_sql(kind: int) -> str:
    """The polygon position of kind ``kind`` (-1 or NULL: none) over ``g`` and ``u``: the
    joins of :func:`grid_join_sql` and of :func:`undecided_sql`'s rows on ``fid``."""
    return f"CASE WHEN g.i IS NULL THEN -1 ELSE coalesce(g.k{kind}, u.u{kind}) END"


def positions_sql(kinds: list[int]) -> str:
    """Return a query of ``fid, k<n>...``: each enterprise's polygon position per kind.

    NULL or -1 is none; from ``bw_ref_grid`` and, for points in undecided cells,
    ``bw_ref_cells``.
    """
    pos = ", ".join(f"{position_sql(k)} AS k{k}" for k in kinds)
    return f"""
SELECT e.fid, {pos}
FROM enterprises e
{grid_join_sql("e")}
LEFT JOIN ({undecided_sql(kinds)}) u ON u.fid = e.fid"""
