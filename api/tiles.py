"""Mapbox Vector Tiles of the enterprise list (OGC API – Tiles, WebMercatorQuad).

One tile holds every matching enterprise whose Web Mercator position falls in the tile or
its buffer, binned to :data:`BIN` tile units (4 screen pixels on a 256 px tile): one point
feature per occupied bin *and verdict*, with properties ``verdict`` (id) and ``n`` (how
many enterprises share that bin and verdict); a feature with ``n == 1`` carries the
enterprise's ``fid`` as its MVT feature id. Drawing every feature therefore draws every
enterprise at every zoom (enterprises closer than four pixels share a symbol whose count is
known), and a bin's verdict mix is kept, never reduced to its strongest verdict.

Two producers give the same tiles:

- :class:`PointIndex` (any store, used for the embedded GeoPackage store): the store's
  ``points()`` once per load, sorted along a Morton (Z-order) curve at zoom
  :data:`KEY_ZOOM`, so a tile is a few ``searchsorted`` slices; filters become cached
  boolean masks; bins are counted with ``np.bincount`` and the tile is encoded by
  :func:`encode_points` (vectorised protobuf, no per-feature Python).
- :func:`postgis_tile` (PostGIS): the same binning in SQL, encoded by ``ST_AsMVT``.

Either way the encoded bytes are kept in :data:`TILES` under :func:`tile_key` (store, data
version, filters, tile), which also names the tile's ETag.

Spec: Mapbox Vector Tile 2.1 (points: one ``MoveTo`` command, zig-zag parameters);
OGC Two Dimensional Tile Matrix Set 17-083r4 (WebMercatorQuad).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from api.store.base import FID, FeatureQuery, Store
from api.tilecache import GZIP_MIN_BYTES, CachedTile, TileCache
from geo.errors import InvalidQueryError

__all__ = [
    "EXTENT",
    "BUFFER",
    "BIN",
    "LAYER",
    "KEY_ZOOM",
    "AGG_LEVEL",
    "MAX_ZOOM",
    "TILE_PX",
    "tile_bounds_lonlat",
    "encode_points",
    "bin_points",
    "PointIndex",
    "point_index",
    "postgis_tile",
    "render_tile",
    "cached_tile",
    "tile_key",
    "TILES",
    "count_in_view",
    "warm_tiles",
    "warm_tiles_soon",
]

log = logging.getLogger(__name__)

#: Tile coordinate extent (MVT default) and buffer around the tile, in tile units.
EXTENT = 4096
BUFFER = 64
#: Bin edge in tile units: 4 px of a 256 px tile.
BIN = 64
#: Name of the MVT layer.
LAYER = "enterprises"
#: Zoom of the Morton keys of :class:`PointIndex` (tiles up to this zoom are key ranges).
KEY_ZOOM = 20
MAX_ZOOM = 22
#: Level of the pre-aggregated cells (a 4 px bin at zoom AGG_LEVEL - 6); tiles up to zoom
#: AGG_LEVEL - 6 are summed from these cells instead of from single enterprises.
AGG_LEVEL = 18
_BINS_PER_TILE = EXTENT // 64  # 2**6 bins of BIN units across a tile
#: Bytes of encoded tiles kept (all stores and versions; see :mod:`api.tilecache`).
TILE_CACHE_BYTES = 64 << 20
#: Bumped when the tile encoding changes, so ETags of older builds stop matching.
TILE_FORMAT = 1
#: Display sizes a tile may be binned for (``px``): 4 px bins at each, so a 512 px tile is
#: its 4 children and a 1024 px tile its 16 grandchildren (fewer requests per view).
TILE_PX = (256, 512, 1024)
_R = 6378137.0
_MAX_LAT = 85.0511287798066


def _check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidQueryError(f"tileMatrix: expected a zoom level 0..{MAX_ZOOM}, got {z}.")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise InvalidQueryError(
            f"tileRow/tileCol: expected 0..{n - 1} at tileMatrix {z}, got row {y}, col {x}."
        )


def _world_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator position as a fraction of the world (0..1, y down)."""
    lat = np.clip(lat, -_MAX_LAT, _MAX_LAT)
    wx = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0
    s = np.sin(np.radians(lat))
    wy = 0.5 - np.log((1.0 + s) / (1.0 - s)) / (4.0 * math.pi)
    return wx, wy


def tile_bounds_lonlat(z: int, x: int, y: int, *, buffer: float = 0.0) -> tuple[float, ...]:
    """``(west, south, east, north)`` of tile ``z/x/y`` grown by ``buffer`` tile units."""
    n = 1 << z
    pad = buffer / EXTENT

    def lon(tx: float) -> float:
        return max(-180.0, min(180.0, tx / n * 360.0 - 180.0))

    def lat(ty: float) -> float:
        ty = max(0.0, min(float(n), ty))
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ty / n))))

    return (lon(x - pad), lat(y + 1 + pad), lon(x + 1 + pad), lat(y - pad))


# --------------------------------------------------------------------------- encoding


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of non-negative integers: (bytes of all, byte count of each)."""
    v = np.asarray(values, dtype=np.uint64)
    if len(v) == 0:
        return np.zeros(0, np.uint8), np.zeros(0, np.int64)
    nbytes = np.ones(len(v), dtype=np.int64)
    rest = v >> np.uint64(7)
    while rest.any():
        nbytes += rest > 0
        rest >>= np.uint64(7)
    width = int(nbytes.max())
    shifts = (np.arange(width, dtype=np.uint64) * np.uint64(7))[None, :]
    groups = ((v[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    cols = np.arange(width)[None, :]
    groups[cols < (nbytes[:, None] - 1)] |= 0x80
    return groups[cols < nbytes[:, None]], nbytes


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def _concat_rows(parts: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """Per row i, the concatenation of each part's i-th byte run: (bytes, row lengths)."""
    lengths = np.zeros(n, dtype=np.int64)
    for _, lens in parts:
        lengths += lens
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n else np.zeros(0, np.int64)
    out = np.zeros(int(lengths.sum()), dtype=np.uint8)
    offset = starts.copy()
    for data, lens in parts:
        if len(data):
            first = np.concatenate([[0], np.cumsum(lens)[:-1]])
            dest = np.repeat(offset - first, lens) + np.arange(len(data))
            out[dest] = data
        offset += lens
    return out, lengths


def _const(byte_values: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    b = np.frombuffer(byte_values, dtype=np.uint8)
    return np.tile(b, n), np.full(n, len(b), dtype=np.int64)


def _varint(value: int) -> bytes:
    """One protobuf varint (the few scalars of a layer: no array overhead)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2) with a scalar payload."""
    return bytes([(tag << 3) | 2]) + _varint(len(payload)) + payload


def _value_bytes(value: str | int) -> bytes:
    if isinstance(value, str):
        return _field_bytes(1, value.encode("utf-8"))
    return bytes([(5 << 3) | 0]) + _varint(int(value))  # uint_value = 5


def encode_points(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ids: np.ndarray,
    verdict: np.ndarray,
    verdict_names: Sequence[str],
    n: np.ndarray,
    layer: str = LAYER,
    extent: int = EXTENT,
) -> bytes:
    """One MVT tile with one point layer, built from arrays (no per-feature Python).

    Parameters
    ----------
    x, y
        Tile coordinates (integers, may lie in the buffer: negative or >= extent).
    ids
        Feature id per point; 0 writes no id.
    verdict
        Index into ``verdict_names`` per point (property ``verdict``).
    n
        Property ``n`` per point (number of enterprises).
    """
    count = len(x)
    if count == 0:
        return b""
    n = np.asarray(n, dtype=np.int64)
    uniq_n, n_index = np.unique(n, return_inverse=True)
    values = [str(v) for v in verdict_names] + [int(v) for v in uniq_n]
    # tags: key 0 = verdict -> value index verdict; key 1 = n -> len(names) + n_index
    tag_vals = np.stack([np.zeros(count, np.int64), np.asarray(verdict, np.int64),
                         np.ones(count, np.int64), len(verdict_names) + n_index], axis=1)
    tag_bytes, tag_lens = _varints(tag_vals.reshape(-1))
    tag_row = np.add.reduceat(tag_lens, np.arange(0, 4 * count, 4))
    geom_vals = np.stack([np.full(count, 9, np.uint64), _zigzag(x), _zigzag(y)], axis=1)
    geom_bytes, geom_lens = _varints(geom_vals.reshape(-1))
    geom_row = np.add.reduceat(geom_lens, np.arange(0, 3 * count, 3))
    ids = np.asarray(ids, dtype=np.uint64)
    has_id = ids > 0
    id_bytes, id_lens = _varints(ids[has_id])
    id_full = np.zeros(count, np.int64)
    id_full[has_id] = id_lens
    id_tag = (np.full(count, 0x08, np.uint8)[has_id], has_id.astype(np.int64))
    tl_bytes, tl_lens = _varints(tag_row)
    gl_bytes, gl_lens = _varints(geom_row)
    body, body_lens = _concat_rows([
        id_tag, (id_bytes, id_full),
        _const(b"\x12", count), (tl_bytes, tl_lens), (tag_bytes, tag_row),
        _const(b"\x18\x01", count),  # type = POINT
        _const(b"\x22", count), (gl_bytes, gl_lens), (geom_bytes, geom_row),
    ], count)
    fl_bytes, fl_lens = _varints(body_lens)
    features, _ = _concat_rows([_const(b"\x12", count), (fl_bytes, fl_lens),
                                (body, body_lens)], count)
    head = b"\x78\x02" + _field_bytes(1, layer.encode("utf-8"))  # version = 2, name
    tail = (_field_bytes(3, b"verdict") + _field_bytes(3, b"n")
            + b"".join(_field_bytes(4, _value_bytes(v)) for v in values)
            + b"\x28" + _varint(extent))
    layer_bytes = head + features.tobytes() + tail
    return _field_bytes(3, layer_bytes)


def bin_points(
    tx: np.ndarray, ty: np.ndarray, verdict: np.ndarray, fid: np.ndarray, n_verdicts: int,
    weights: np.ndarray | None = None, bin_units: int = BIN,
) -> tuple[np.ndarray, ...]:
    """Count points per (bin, verdict); tile coordinates in, one row per occupied pair out.

    ``weights`` (counts of pre-aggregated rows) default to 1; ``fid`` must then be 0 for
    rows standing for more than one enterprise.

    Returns
    -------
    tuple
        ``(x, y, verdict, n, id)``: bin centres in tile units, verdict index, count, and the
        fid of the single enterprise where ``n == 1`` (0 otherwise).
    """
    b = bin_units
    lo = -BUFFER // b
    side = (EXTENT + 2 * BUFFER) // b
    bx = np.floor(tx / b).astype(np.int64) - lo
    by = np.floor(ty / b).astype(np.int64) - lo
    keep = (bx >= 0) & (bx < side) & (by >= 0) & (by < side)
    bx, by = bx[keep], by[keep]
    v = np.asarray(verdict, dtype=np.int64)[keep]
    key = (by * side + bx) * n_verdicts + v
    size = side * side * n_verdicts
    if weights is None:
        counts = np.bincount(key, minlength=size)
    else:
        counts = np.bincount(key, weights=np.asarray(weights, np.float64)[keep],
                             minlength=size).astype(np.int64)
    fids = np.bincount(key, weights=np.asarray(fid, dtype=np.float64)[keep], minlength=size)
    cells = np.flatnonzero(counts)
    n = counts[cells]
    ids = np.where(n == 1, fids[cells], 0).astype(np.int64)
    vv = cells % n_verdicts
    pos = cells // n_verdicts
    x = (pos % side + lo) * b + b // 2
    y = (pos // side + lo) * b + b // 2
    return x, y, vv, n, ids


# --------------------------------------------------------------------------- in memory


def _part1by1(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                        (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
                        (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _morton(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    return _part1by1(ix) | (_part1by1(iy) << np.uint64(1))


@dataclass
class _Cells:
    """Enterprises counted per (cell at :data:`AGG_LEVEL`, verdict), in Morton order."""

    key: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    verdict: np.ndarray
    n: np.ndarray
    fid: np.ndarray  # the enterprise's fid where n == 1, else 0


@dataclass
class PointIndex:
    """The current enterprise list as arrays sorted along a Z-order curve.

    Built once per load from ``Store.points``; tiles and view counts are array slices.
    """

    version: tuple[Any, ...]
    fid: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    wx: np.ndarray
    wy: np.ndarray
    verdict: np.ndarray
    key: np.ndarray
    verdict_names: tuple[str, ...]
    masks: OrderedDict[tuple[Any, ...], np.ndarray] = dataclasses.field(
        default_factory=OrderedDict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    fid_order: np.ndarray | None = None
    cells: OrderedDict[tuple[Any, ...], _Cells] = dataclasses.field(
        default_factory=OrderedDict)

    @classmethod
    def build(cls, frame: pd.DataFrame, verdict_names: Sequence[str],
              version: tuple[Any, ...]) -> PointIndex:
        """Index a ``fid, lon, lat, verdict`` frame (``Store.points`` output)."""
        lon = frame["lon"].to_numpy(dtype=np.float64)
        lat = frame["lat"].to_numpy(dtype=np.float64)
        wx, wy = _world_xy(lon, lat)
        scale = float(1 << KEY_ZOOM)
        ix = np.clip((wx * scale).astype(np.int64), 0, (1 << KEY_ZOOM) - 1)
        iy = np.clip((wy * scale).astype(np.int64), 0, (1 << KEY_ZOOM) - 1)
        key = _morton(ix, iy)
        order = np.argsort(key, kind="stable")
        lookup = {v: i for i, v in enumerate(verdict_names)}
        names = list(verdict_names)
        labels = frame["verdict"].astype(str).to_numpy(dtype=object)
        uniq, inv = np.unique(labels, return_inverse=True)
        for u in uniq:  # unknown verdicts keep their own name
            if u not in lookup:
                lookup[u] = len(names)
                names.append(str(u))
        codes = np.array([lookup[u] for u in uniq], dtype=np.int16)[inv]
        return cls(version, frame[FID].to_numpy(dtype=np.int64)[order], lon[order],
                   lat[order], wx[order], wy[order], codes[order], key[order], tuple(names))

    def __len__(self) -> int:
        return len(self.fid)

    @staticmethod
    def filter_key(q: FeatureQuery) -> tuple[Any, ...]:
        """Cache key of the non-spatial filters of ``q``."""
        return (tuple(sorted((c, tuple(map(str, a))) for c, a in q.properties.items())),
                repr(q.cql), q.within.wkb if q.within is not None else None)

    def aggregate(self, key: tuple[Any, ...], mask: np.ndarray | None) -> _Cells:
        """The rows (matching ``mask``) counted per cell and verdict; cached per filter."""
        with self.lock:
            hit = self.cells.get(key)
            if hit is not None:
                self.cells.move_to_end(key)
                return hit
        rows = slice(None) if mask is None else np.flatnonzero(mask)
        nv = len(self.verdict_names)
        cell = self.key[rows] >> np.uint64(2 * (KEY_ZOOM - AGG_LEVEL))
        combined = cell * np.uint64(nv) + self.verdict[rows].astype(np.uint64)
        uniq, inv, cnt = np.unique(combined, return_inverse=True, return_counts=True)
        fsum = np.bincount(inv.reshape(-1), weights=self.fid[rows].astype(np.float64),
                           minlength=len(uniq))
        ckey = uniq // np.uint64(nv)
        scale = float(1 << AGG_LEVEL)
        first = np.zeros(len(uniq), dtype=np.int64)
        first[inv.reshape(-1)[::-1]] = np.arange(len(inv))[::-1]  # a row of each cell
        sel = np.arange(len(self.wx))[rows][first] if len(uniq) else first
        cx = np.clip((self.wx[sel] * scale).astype(np.int64), 0, (1 << AGG_LEVEL) - 1)
        cy = np.clip((self.wy[sel] * scale).astype(np.int64), 0, (1 << AGG_LEVEL) - 1)
        out = _Cells(ckey, cx, cy, (uniq % np.uint64(nv)).astype(np.int16),
                     cnt.astype(np.int64), np.where(cnt == 1, fsum, 0).astype(np.int64))
        with self.lock:
            self.cells[key] = out
            while len(self.cells) > 16:
                self.cells.popitem(last=False)
        return out

    def mask(self, store: Store, q: FeatureQuery) -> np.ndarray | None:
        """Rows matching the non-spatial filters of ``q`` (None: every row), cached."""
        if not q.properties and q.cql is None and q.within is None:
            return None
        key = self.filter_key(q)
        with self.lock:
            hit = self.masks.get(key)
            if hit is not None:
                self.masks.move_to_end(key)
                return hit
        fids = store.points(FeatureQuery(properties=q.properties, cql=q.cql,
                                         within=q.within))[FID].to_numpy(dtype=np.int64)
        if self.fid_order is None:
            self.fid_order = np.argsort(self.fid, kind="stable")
        order = self.fid_order
        pos = np.searchsorted(self.fid, fids, sorter=order)
        out = np.zeros(len(self.fid), dtype=bool)
        out[order[np.clip(pos, 0, max(len(order) - 1, 0))]] = True
        with self.lock:
            self.masks[key] = out
            while len(self.masks) > 16:
                self.masks.popitem(last=False)
        return out

    def _ranges(self, z: int, cx: np.ndarray, cy: np.ndarray, keys: np.ndarray | None = None,
                level: int = KEY_ZOOM) -> np.ndarray:
        """Positions in ``keys`` (Morton keys at ``level``; default the rows) of the tiles
        (cx, cy) at zoom ``z <= level``."""
        keys = self.key if keys is None else keys
        shift = np.uint64(2 * (level - z))
        t = _morton(cx, cy)
        a = np.searchsorted(keys, t << shift)
        b = np.searchsorted(keys, (t + np.uint64(1)) << shift)
        lens = (b - a).astype(np.int64)
        total = int(lens.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(lens)[:-1]])
        return np.repeat(a - first, lens) + np.arange(total)

    def _rows(self, z: int, x: int, y: int, keys: np.ndarray | None = None,
              level: int = KEY_ZOOM) -> np.ndarray:
        """Rows that may fall in tile z/x/y or its buffer: the tile's own Morton range plus
        a ring of cells at a finer zoom whose width covers :data:`BUFFER`."""
        if z > KEY_ZOOM:  # the 3 x 3 cells at KEY_ZOOM around it; binning clips the rest
            d = z - KEY_ZOOM
            px, py = x >> d, y >> d
            m = 1 << KEY_ZOOM
            gx, gy = np.meshgrid(np.arange(max(px - 1, 0), min(px + 2, m)),
                                 np.arange(max(py - 1, 0), min(py + 2, m)))
            return self._ranges(KEY_ZOOM, gx.ravel(), gy.ravel())
        own = self._ranges(z, np.array([x]), np.array([y]), keys, level)
        zr = min(z + 6, level)  # 2**6 cells per tile: one cell = 64 units = BUFFER
        d, m = zr - z, 1 << zr
        lo_x, hi_x, lo_y, hi_y = x << d, ((x + 1) << d) - 1, y << d, ((y + 1) << d) - 1
        xs = np.arange(max(lo_x - 1, 0), min(hi_x + 2, m))
        ring_x, ring_y = [], []
        for row in (lo_y - 1, hi_y + 1):  # rows above and below, corners included
            if 0 <= row < m:
                ring_x.append(xs)
                ring_y.append(np.full(len(xs), row))
        inner = np.arange(lo_y, hi_y + 1)
        for col in (lo_x - 1, hi_x + 1):
            if 0 <= col < m:
                ring_x.append(np.full(len(inner), col))
                ring_y.append(inner)
        if not ring_x:
            return own
        ring = self._ranges(zr, np.concatenate(ring_x), np.concatenate(ring_y), keys, level)
        return np.concatenate([own, ring])

    def tile(self, z: int, x: int, y: int, mask: np.ndarray | None,
             filter_key: tuple[Any, ...] = ((), "None", None), tile_px: int = 256) -> bytes:
        """The MVT tile ``z/x/y`` (empty bytes when nothing falls in it), binned for display
        at ``tile_px`` pixels (256, 512 or 1024: 4 px bins each way).

        While a bin is no finer than a cell of :data:`AGG_LEVEL`, the tile is summed from
        the cached cell counts (a cell lies in exactly one bin), beyond from single
        enterprises. Not cached here: :func:`render_tile` keeps the encoded bytes."""
        return self._tile(z, x, y, mask, filter_key, tile_px)

    def _tile(self, z: int, x: int, y: int, mask: np.ndarray | None,
              filter_key: tuple[Any, ...], tile_px: int) -> bytes:
        per_tile = _BINS_PER_TILE * tile_px // 256
        bin_units = EXTENT // per_tile
        level = z + per_tile.bit_length() - 1  # bins are the cells of this level
        if level <= AGG_LEVEL:
            return self._tile_from_cells(z, x, y, self.aggregate(filter_key, mask), level,
                                         per_tile, bin_units)
        rows = self._rows(z, x, y)
        if mask is not None and len(rows):
            rows = rows[mask[rows]]
        if len(rows) == 0:
            return b""
        n = 1 << z
        tx = (self.wx[rows] * n - x) * EXTENT
        ty = (self.wy[rows] * n - y) * EXTENT
        bx, by, v, cnt, ids = bin_points(tx, ty, self.verdict[rows], self.fid[rows],
                                         len(self.verdict_names), bin_units=bin_units)
        return encode_points(bx, by, ids=ids, verdict=v, verdict_names=self.verdict_names,
                             n=cnt)

    def _tile_from_cells(self, z: int, x: int, y: int, cells: _Cells, level: int,
                         per_tile: int, bin_units: int) -> bytes:
        rows = self._rows(z, x, y, cells.key, AGG_LEVEL)
        if len(rows) == 0:
            return b""
        shift = AGG_LEVEL - level
        # bin centre of each cell in tile units (bin_points floors it back to the bin)
        tx = ((cells.cx[rows] >> shift) - x * per_tile) * bin_units + bin_units / 2
        ty = ((cells.cy[rows] >> shift) - y * per_tile) * bin_units + bin_units / 2
        bx, by, v, cnt, ids = bin_points(tx, ty, cells.verdict[rows], cells.fid[rows],
                                         len(self.verdict_names), weights=cells.n[rows],
                                         bin_units=bin_units)
        return encode_points(bx, by, ids=ids, verdict=v, verdict_names=self.verdict_names,
                             n=cnt)

    def count(self, bbox: tuple[float, float, float, float],
              mask: np.ndarray | None) -> dict[str, int]:
        """Matching enterprises per verdict inside ``bbox`` (lon/lat)."""
        w, s, e, nth = bbox
        sel = (self.lon >= w) & (self.lon <= e) & (self.lat >= s) & (self.lat <= nth)
        if mask is not None:
            sel &= mask
        counts = np.bincount(self.verdict[sel].astype(np.int64),
                             minlength=len(self.verdict_names))
        return {name: int(c) for name, c in zip(self.verdict_names, counts, strict=True) if c}


_INDEXES: dict[tuple[Any, ...], PointIndex] = {}
_INDEX_LOCK = threading.Lock()


def _store_id(store: Store) -> tuple[Any, ...]:
    """What names the data behind ``store`` (the same for every per-request view of it):
    the GeoPackage file, or the database URL and schema."""
    origin = getattr(store, "_origin", None) or store
    path = getattr(origin, "path", None)
    if path is not None:
        return (store.provider, str(path))
    url = getattr(origin, "url", None)
    if url is not None:
        return (store.provider, str(url), getattr(origin, "schema", None))
    return (store.provider, id(origin))


def _version_of(store: Store) -> tuple[Any, ...]:
    """The data version (:meth:`api.store.base.Store.data_version`: a new load, and on
    PostGIS an in-database classification, change it); the tile index and the tile cache
    are keyed by it."""
    return store.data_version()


def version_tag(version: tuple[Any, ...]) -> str | None:
    """The data version as the map page's ``v`` URL parameter: the load id, and when the
    version also names the live table (PostGIS: an integer after the load id, which an
    in-database classification changes within one load) that too, as ``<load>.<table>``."""
    if not version or version[0] is None:
        return None
    if len(version) > 1 and isinstance(version[1], int):
        return f"{version[0]}.{version[1]}"
    return str(version[0])


def point_index(store: Store, verdict_names: Sequence[str]) -> PointIndex:
    """The :class:`PointIndex` of the store's current load (built on first use per load,
    shared by every per-request view of the store)."""
    version = _version_of(store)
    sid = (_store_id(store), tuple(verdict_names))
    hit = _INDEXES.get(sid)
    if hit is not None and hit.version == version:
        return hit
    with _INDEX_LOCK:
        hit = _INDEXES.get(sid)
        if hit is not None and hit.version == version:
            return hit
        idx = PointIndex.build(store.points(FeatureQuery()), verdict_names, version)
        _INDEXES[sid] = idx
        log.info("tile index of %d enterprises built", len(idx))
        return idx


# --------------------------------------------------------------------------- PostGIS


def postgis_tile(store: Any, q: FeatureQuery, z: int, x: int, y: int,
                 verdict_names: Sequence[str], tile_px: int = 256) -> bytes:
    """The tile from PostGIS: the same bins, counted in SQL and encoded by ``ST_AsMVT``."""
    del verdict_names  # ST_AsMVT writes the verdict ids as they are stored
    b = BIN * 256 // tile_px
    from sqlalchemy import Integer, and_, func, literal_column, select, text

    from api.store.postgis import enterprises as table

    n = 1 << z
    west, south, east, north = tile_bounds_lonlat(z, x, y, buffer=BUFFER)
    geom = table.c.geometry
    conds = [geom.op("&&")(func.ST_MakeEnvelope(west, south, east, north, 4326)),
             *store._where(dataclasses.replace(q, bbox=None))]  # the items route's filters
    lat = func.greatest(func.least(func.ST_Y(geom), _MAX_LAT), -_MAX_LAT)
    wx = (func.ST_X(geom) + 180.0) / 360.0
    sin = func.sin(func.radians(lat))
    wy = 0.5 - func.ln((1.0 + sin) / (1.0 - sin)) / (4.0 * math.pi)
    bx = func.floor((wx * n - x) * EXTENT / b).label("bx")
    by = func.floor((wy * n - y) * EXTENT / b).label("by")
    pts = select(table.c.fid, table.c.verdict, bx, by).where(and_(*conds)).subquery("pts")
    lo, hi = -BUFFER // b, (EXTENT + BUFFER) // b
    grouped = (
        select(
            func.ST_MakePoint(pts.c.bx * b + b // 2, pts.c.by * b + b // 2)
            .label("geom"),
            literal_column("CASE WHEN count(*) = 1 THEN min(pts.fid) END").label("fid"),
            pts.c.verdict.label("verdict"),
            func.count().cast(Integer).label("n"),
        )
        .where(pts.c.bx >= lo, pts.c.bx < hi, pts.c.by >= lo, pts.c.by < hi)
        .group_by(pts.c.bx, pts.c.by, pts.c.verdict)
        .subquery("t")
    )
    stmt = select(func.ST_AsMVT(text("t.*"), LAYER, EXTENT, "geom", "fid")).select_from(grouped)
    with store.engine.connect() as conn:
        body = conn.execute(stmt).scalar()
    return bytes(body or b"")


# --------------------------------------------------------------------------- dispatch


#: Encoded tiles of every store and version (LRU by bytes): panning back costs nothing.
TILES = TileCache(TILE_CACHE_BYTES)


def tile_key(store: Store, q: FeatureQuery, z: int, x: int, y: int,
             verdict_names: Sequence[str], tile_px: int = 256) -> tuple[Any, ...]:
    """Cache key (and ETag source) of a tile request, after checking it: store, data
    version, verdict list, non-spatial filters, tile and display size."""
    _check_tile(z, x, y)
    if tile_px not in TILE_PX:
        raise InvalidQueryError(f"px: expected 256, 512 or 1024, got {tile_px}.")
    if q.bbox is not None:
        raise InvalidQueryError("bbox: a tile is its own extent; drop the bbox parameter.")
    return (TILE_FORMAT, _store_id(store), _version_of(store), tuple(verdict_names),
            PointIndex.filter_key(q), z, x, y, tile_px)


def cached_tile(store: Store, q: FeatureQuery, z: int, x: int, y: int,
                verdict_names: Sequence[str], tile_px: int = 256,
                key: tuple[Any, ...] | None = None) -> CachedTile:
    """Tile ``z/x/y`` with its ETag, from :data:`TILES` or made now (``key``: the
    :func:`tile_key` already computed for this request)."""
    key = key or tile_key(store, q, z, x, y, verdict_names, tile_px)
    hit = TILES.get(key)
    if hit is not None:
        return hit
    if store.provider == "postgis":
        body = postgis_tile(store, q, z, x, y, verdict_names, tile_px=tile_px)
    else:
        idx = point_index(store, verdict_names)
        body = idx.tile(z, x, y, idx.mask(store, q), idx.filter_key(q), tile_px=tile_px)
    return TILES.put(key, body)


#: Tiles cut ahead after a load (:func:`warm_tiles`): the unfiltered map's tiles with
#: enterprises up to this tile zoom (px=1024: map zoom two more, i.e. up to map zoom 12),
#: low zooms first, within :data:`WARM_BYTES` of the cache. 1M enterprises: ~120 tiles,
#: ~12 MB, ~1 s of CPU.
WARM_MAX_ZOOM = 10
#: The display size of the warmed tiles: the map page's (``tiles.js``).
WARM_PX = 1024
WARM_BYTES = TILE_CACHE_BYTES // 4
#: (store, version, px) -> set once that version's tiles are warmed.
_WARMED: dict[tuple[Any, ...], threading.Event] = {}
_WARM_LOCK = threading.Lock()


def _unmorton(keys: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile columns and rows of Morton keys of zoom ``z``."""
    x = np.zeros(len(keys), dtype=np.int64)
    y = np.zeros(len(keys), dtype=np.int64)
    k = keys.astype(np.uint64)
    for b in range(z):
        x |= ((k >> np.uint64(2 * b)) & np.uint64(1)).astype(np.int64) << b
        y |= ((k >> np.uint64(2 * b + 1)) & np.uint64(1)).astype(np.int64) << b
    return x, y


def warm_tiles(store: Store, verdict_names: Sequence[str], *, max_zoom: int = WARM_MAX_ZOOM,
               tile_px: int | None = None, budget: int = WARM_BYTES,
               wait: bool = False) -> int:
    """Cut the unfiltered tiles holding enterprises, zoom 0 to ``max_zoom`` (low first), into
    :data:`TILES` with their gzip encoding, so the first look at the map after a load is
    answered from the cache (the lean path included) instead of cutting 6-12 dense tiles
    at once. Once per store version; embedded store only (PostGIS cuts in the database).

    ``tile_px`` defaults to :data:`WARM_PX`; with ``wait``, a call finding the version being
    warmed by another thread waits until that is done (benchmarks).

    Returns
    -------
    int
        Tiles cut (0 when this version was warmed already or the store is PostGIS).
    """
    if store.provider == "postgis":
        return 0
    tile_px = tile_px or WARM_PX
    version = _version_of(store)
    sid = _store_id(store)
    with _WARM_LOCK:
        done = _WARMED.get((sid, version, tile_px))
        if done is None:
            done = _WARMED[(sid, version, tile_px)] = threading.Event()
            mine = True
        else:
            mine = False
    if not mine:
        if wait:
            done.wait()
        return 0
    try:
        return _warm(store, verdict_names, version, sid, max_zoom, tile_px, budget)
    finally:
        done.set()


def _warm(store: Store, verdict_names: Sequence[str], version: tuple[Any, ...],
          sid: tuple[Any, ...], max_zoom: int, tile_px: int, budget: int) -> int:
    idx = point_index(store, verdict_names)
    q = FeatureQuery()
    fkey = PointIndex.filter_key(q)
    names = tuple(verdict_names)
    cut, used = 0, 0
    for z in range(max_zoom + 1):
        tiles = np.unique(idx.key >> np.uint64(2 * (KEY_ZOOM - z)))
        for x, y in zip(*_unmorton(tiles, z), strict=True):
            key = (TILE_FORMAT, sid, version, names, fkey, z, int(x), int(y), tile_px)
            hit = TILES.peek(key)
            if hit is None:
                hit = TILES.put(key, idx.tile(z, int(x), int(y), None, fkey, tile_px=tile_px))
                cut += 1
            if len(hit.body) >= GZIP_MIN_BYTES:
                TILES.gzipped(key, hit)
            used += hit.size
            if used > budget:
                log.info("warmed %d tiles (cache budget reached at zoom %d)", cut, z)
                return cut
    log.info("warmed %d tiles up to zoom %d (%.1f MB)", cut, max_zoom, used / 1e6)
    return cut


def warm_tiles_soon(store: Store, verdict_names: Sequence[str]) -> None:
    """:func:`warm_tiles` in a daemon thread (a failure is logged, never raised)."""
    if store.provider == "postgis":
        return
    with _WARM_LOCK:
        if (_store_id(store), _version_of(store), WARM_PX) in _WARMED:
            return

    def work() -> None:
        try:
            warm_tiles(store, verdict_names)
        except Exception:  # noqa: BLE001 - warming is an optimisation only
            log.warning("tile warm-up failed", exc_info=True)

    threading.Thread(target=work, name="basinwatch-tile-warm", daemon=True).start()


def render_tile(store: Store, q: FeatureQuery, z: int, x: int, y: int,
                verdict_names: Sequence[str], tile_px: int = 256) -> bytes:
    """Tile ``z/x/y`` of the enterprises matching ``q`` from whichever store holds them,
    binned for display at ``tile_px`` (256, the WebMercatorQuad default, 512 or 1024)."""
    return cached_tile(store, q, z, x, y, verdict_names, tile_px).body


def count_in_view(store: Store, q: FeatureQuery, bbox: tuple[float, float, float, float],
                  verdict_names: Sequence[str]) -> dict[str, int]:
    """Matching enterprises per verdict in a lon/lat box."""
    if store.provider == "postgis":
        return store.counts(dataclasses.replace(q, bbox=bbox), "verdict")
    idx = point_index(store, verdict_names)
    return idx.count(bbox, idx.mask(store, q))
