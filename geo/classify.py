"""Spatial classification: district, city, basin, region and park of every point.

Vectorised over points with :class:`geo.cellindex.CellIndex` grid indexes: a point in a
cell wholly inside (or outside) a polygon is answered by a table lookup, and only points in
boundary cells are tested exactly with :func:`shapely.contains_xy` -- the answers equal a
plain ``contains_xy`` per polygon. A CellIndex needs non-overlapping polygons, so each
layer (and each set of boundary bands) is split into groups whose interiors do not overlap
(greedy colouring of the overlap graph); a point's polygon is the lowest-indexed hit over
the groups, and hits in two groups flag "more than one". Indexes are built once per
reference frame and cached by a fingerprint of its geometries (registry layers for the
process, injected frames least-recently-used).

``needs_review`` marks rows whose answer hangs on an imprecise location:

* the point lies within the layer's stated accuracy (``accuracy_m``) of a basin, region or
  park boundary (a boundary band precomputed per polygon in a metric CRS);
* a coarse geocode (``geocode_precision`` town/district/city) whose unit straddles a
  basin, region or park boundary;
* the enterprise claims a park (``park_claimed``) but is not inside any park polygon;
* the point falls inside more than one polygon of the same kind.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.cellindex import CellIndex
from geo.errors import CRSMismatchError, ReferenceDataError
from geo.schema import ISSUE_SEP, TEXT_DTYPE

__all__ = ["classify", "classify_point", "LAYER_KINDS", "REVIEW_REASONS"]

logger = logging.getLogger(__name__)

#: Reference layer kinds classify needs, as passed to ``layers.registry.load_group``.
LAYER_KINDS = ("district", "basin", "region", "park")

#: Review reason codes, in the order they are written into ``review_reasons``.
REVIEW_REASONS = (
    "near_basin_boundary",
    "near_region_boundary",
    "near_park_boundary",
    "coarse_geocode_straddles_basin",
    "coarse_geocode_straddles_region",
    "coarse_geocode_straddles_park",
    "multiple_basins",
    "multiple_regions",
    "multiple_parks",
    "park_claim_unverified",
)

#: Layer kind -> registry layer id to ask for ``accuracy_m`` when a row's own id is unknown.
_GROUP_LAYER = {"district": "districts", "basin": "basins", "region": "guangfo", "park": "parks"}
#: ``park_claimed`` values that mean "no park".
_NO_PARK = frozenset({"", "无", "否", "-", "/", "—", "none", "no", "n/a", "nan", "false", "0"})
_WGS84 = CRS.from_epsg(4326)


_STR = TEXT_DTYPE
#: Injected reference frames whose indexes are kept (least recently used dropped first).
_CACHE_SIZE = 16
#: DE-9IM: interior of a intersects interior of b / exterior of b.
_II, _IE = "T********", "**T******"


# --------------------------------------------------------------------------- helpers
def _is_wgs84(crs: Any) -> bool:
    if crs is None:
        return False
    c = CRS.from_user_input(crs)
    return c.to_epsg() == 4326 or c.equals(_WGS84, ignore_axis_order=True)


def _check_crs(frame: gpd.GeoDataFrame, what: str) -> None:
    if frame.crs is None:
        raise CRSMismatchError(
            f"{what} has no CRS: coordinates must be WGS84 longitude/latitude. If they are, "
            f"call .set_crs('EPSG:4326'); otherwise .set_crs(<their CRS>).to_crs('EPSG:4326')."
        )
    if not _is_wgs84(frame.crs):
        raise CRSMismatchError(
            f"{what} is in {frame.crs.to_string()}, but classification works in EPSG:4326 "
            f"(WGS84 lon/lat): call .to_crs('EPSG:4326') first. GCJ-02/BD-09 coordinates "
            f"must be converted with geo.crs before building the GeoDataFrame."
        )


class _PointIndex:
    """Points sorted by x, for bbox-prefiltered point-in-polygon tests."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        valid = np.isfinite(x) & np.isfinite(y)
        idx = np.flatnonzero(valid)
        order = idx[np.argsort(x[idx])]
        self.order = order
        self.xs = x[order]
        self.ys = y[order]

    def inside(self, geom: shapely.Geometry) -> np.ndarray:
        """Original row positions of the points inside ``geom`` (boundary excluded)."""
        if geom is None or shapely.is_empty(geom):
            return np.empty(0, dtype=np.intp)
        minx, miny, maxx, maxy = shapely.bounds(geom)
        lo = int(np.searchsorted(self.xs, minx, side="left"))
        hi = int(np.searchsorted(self.xs, maxx, side="right"))
        ys = self.ys[lo:hi]
        cand = np.flatnonzero((ys >= miny) & (ys <= maxy)) + lo
        if cand.size == 0:
            return np.empty(0, dtype=np.intp)
        shapely.prepare(geom)
        hit = shapely.contains_xy(geom, self.xs[cand], self.ys[cand])
        return self.order[cand[hit]]


def _utm_for(geom: shapely.Geometry) -> CRS:
    lon = (shapely.bounds(geom)[0] + shapely.bounds(geom)[2]) / 2
    lat = (shapely.bounds(geom)[1] + shapely.bounds(geom)[3]) / 2
    zone = int(math.floor((lon + 180) / 6)) + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@lru_cache(maxsize=256)
def _boundary_band(geom: shapely.Geometry, distance_m: float) -> shapely.Geometry | None:
    """Polygon of the points within ``distance_m`` of ``geom``'s boundary (EPSG:4326)."""
    if distance_m <= 0 or geom is None or shapely.is_empty(geom):
        return None
    utm = _utm_for(geom)
    s = gpd.GeoSeries([geom], crs=_WGS84).to_crs(utm)
    band = s.boundary.buffer(distance_m, quad_segs=4).to_crs(_WGS84)
    return band.iloc[0]


def _layer_accuracy(kind: str, frame: gpd.GeoDataFrame) -> np.ndarray:
    """Per-polygon accuracy in metres: ``accuracy_m`` column, else the layer registry."""
    if "accuracy_m" in frame.columns:
        return pd.to_numeric(frame["accuracy_m"], errors="coerce").fillna(0).to_numpy(float)
    try:
        from layers import registry
    except ImportError:  # pragma: no cover - registry not installed yet
        logger.warning("layers.registry unavailable: no boundary band for %s", kind)
        return np.zeros(len(frame))
    out = np.zeros(len(frame))
    for i, lid in enumerate(frame["id"].astype(str)):
        for cand in (lid, _GROUP_LAYER[kind]):
            try:
                out[i] = float(registry.layer_info(cand).provenance.accuracy_m or 0)
                break
            except (LookupError, AttributeError, TypeError, ValueError):
                continue  # unknown id or no accuracy: try the group layer
    return out


def _checked(kind: str, frame: Any) -> gpd.GeoDataFrame:
    """``frame`` validated as reference layer ``kind`` (type, CRS, columns), index reset."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise ReferenceDataError(f"Reference layer '{kind}' is not a GeoDataFrame.")
    _check_crs(frame, f"Reference layer '{kind}'")
    need = ("code", "name_zh", "city_code", "city_zh") if kind == "district" else ("id",)
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ReferenceDataError(
            f"Reference layer '{kind}' lacks columns {missing}; has {list(frame.columns)}."
        )
    return frame.reset_index(drop=True)


def _load_layers(
    injected: Mapping[str, gpd.GeoDataFrame] | None,
) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, _KindIndex]]:
    """Reference frames by kind and their (cached) indexes."""
    frames: dict[str, gpd.GeoDataFrame] = {}
    indexes: dict[str, _KindIndex] = {}
    for kind in LAYER_KINDS:
        if injected is not None and kind in injected:
            frames[kind] = _checked(kind, injected[kind])
            indexes[kind] = _kind_index(kind, frames[kind], from_registry=False)
        else:
            from layers import registry

            frames[kind], indexes[kind] = _registry_layer(kind, registry.shared_group(kind))
    return frames, indexes


#: kind -> (the registry's shared frame, its checked copy, its index): skips re-checking
#: and re-fingerprinting the same cached frame on every call (point look-ups).
_registry_layers: dict[str, tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, _KindIndex]] = {}


def _registry_layer(kind: str, shared: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, _KindIndex]:
    """Checked frame and index of a registry layer, reused while the registry's frame is."""
    hit = _registry_layers.get(kind)
    if hit is not None and hit[0] is shared:
        return hit[1], hit[2]
    frame = _checked(kind, shared)
    index = _kind_index(kind, frame, from_registry=True)
    _registry_layers[kind] = (shared, frame, index)
    return frame, index


def _overlap_groups(geoms: np.ndarray) -> list[np.ndarray]:
    """Split polygon positions into groups whose interiors do not overlap (greedy colouring).

    Missing/empty geometries go to the first group (they never match anything).
    """
    n = len(geoms)
    usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) if n else np.zeros(0, bool)
    pos = np.flatnonzero(usable)
    colour = np.zeros(n, dtype=np.intp)
    if pos.size > 1:
        sub = geoms[pos]
        i, j = shapely.STRtree(sub).query(sub)  # bbox candidates
        keep = i < j
        i, j = i[keep], j[keep]
        hit = shapely.relate_pattern(sub[i], sub[j], _II) if i.size else np.zeros(0, bool)
        neighbours: dict[int, set[int]] = {}
        for a, b in zip(pos[i[hit]].tolist(), pos[j[hit]].tolist(), strict=True):
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
        for a in sorted(neighbours):  # loop over overlapping polygons only, never rows
            taken = {int(colour[b]) for b in neighbours[a] if b < a}
            colour[a] = next(c for c in range(len(taken) + 1) if c not in taken)
    return [np.flatnonzero(colour == c) for c in range(int(colour.max(initial=0)) + 1)]


@dataclass(frozen=True, eq=False)
class _LayerIndex:
    """Exact point-in-polygon answers for a layer whose polygons may overlap.

    One :class:`CellIndex` per group of mutually non-overlapping polygons; ``members[k]``
    maps positions in group ``k`` back to positions in the layer.
    """

    indexes: tuple[CellIndex, ...]
    members: tuple[np.ndarray, ...]
    size: int

    @classmethod
    def build(cls, geoms: np.ndarray) -> _LayerIndex:
        geoms = np.asarray(geoms, dtype=object)
        groups = _overlap_groups(geoms) if len(geoms) else []
        return cls(
            indexes=tuple(CellIndex.build(geoms[g]) for g in groups),
            members=tuple(groups),
            size=len(geoms),
        )

    def assign(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lowest polygon position containing each point (-1 = none), and a 'more than one'
        flag -- as testing every polygon with ``contains_xy`` in layer order."""
        which = np.full(len(x), -1, dtype=np.intp)
        hits = np.zeros(len(x), dtype=np.int8)
        for index, members in zip(self.indexes, self.members, strict=True):
            pos = index.lookup(x, y)
            rows = np.flatnonzero(pos >= 0)
            if not rows.size:
                continue
            if not hits.any():  # first group with hits: no comparison needed
                which[rows] = members[pos[rows]]
            else:
                cand = members[pos[rows]]
                cur = which[rows]
                which[rows] = np.where((cur < 0) | (cand < cur), cand, cur)
            hits[rows] += 1
        return which, hits > 1

    def covers_any(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether some polygon contains each point."""
        flag = np.zeros(len(x), dtype=bool)
        for index in self.indexes:
            flag |= index.lookup(x, y) >= 0
        return flag


@dataclass(frozen=True, eq=False)
class _KindIndex:
    """Cached indexes of one reference frame: its polygons and its boundary bands."""

    polygons: _LayerIndex
    bands: _LayerIndex


def _build_kind_index(kind: str, frame: gpd.GeoDataFrame) -> _KindIndex:
    geoms = frame.geometry.to_numpy()
    polygons = _LayerIndex.build(geoms)
    if kind == "district":
        bands = _LayerIndex.build(np.zeros(0, dtype=object))
    else:
        dist = _layer_accuracy(kind, frame)
        band_geoms = [_boundary_band(g, float(d)) for g, d in zip(geoms, dist, strict=True)]
        bands = _LayerIndex.build(np.array([b for b in band_geoms if b is not None], dtype=object))
    logger.debug(
        "%s index: %d polygons in %d group(s), %d band group(s)",
        kind, polygons.size, len(polygons.indexes), len(bands.indexes),
    )
    return _KindIndex(polygons=polygons, bands=bands)


_cache_lock = threading.Lock()
#: Serialises classify(): shared prepared geometries are not safe for concurrent first use.
_classify_lock = threading.Lock()
_index_cache: OrderedDict[tuple[str, bool, str], _KindIndex] = OrderedDict()


def _fingerprint(kind: str, frame: gpd.GeoDataFrame, exact: bool) -> str:
    """Hash of what an index depends on: geometries and boundary accuracies.

    ``exact`` hashes every coordinate (~10 ms for all layers); otherwise per-polygon bounds
    and vertex counts. Registry frames are hashed exactly too: a switch of a layer's
    active version (``layers.versions``) may keep bounds and vertex counts, and the hash is
    computed only when the registry hands out a new frame (once per switch).
    """
    geoms = frame.geometry.to_numpy()
    h = hashlib.blake2b(digest_size=20)
    h.update(np.asarray(shapely.get_type_id(geoms), dtype=np.int64).tobytes())
    h.update(np.asarray(shapely.get_num_coordinates(geoms), dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(shapely.bounds(geoms)).tobytes())
    if exact:
        h.update(np.ascontiguousarray(shapely.get_coordinates(geoms)).tobytes())
    if kind != "district":
        h.update(_layer_accuracy(kind, frame).tobytes())
    return h.hexdigest()


def _kind_index(kind: str, frame: gpd.GeoDataFrame, from_registry: bool) -> _KindIndex:
    """Cached index of a reference frame (built on first use, kept for the process).

    Registry layers stay cached; of injected frames the ``_CACHE_SIZE`` most recently used.
    """
    key = (kind, from_registry, _fingerprint(kind, frame, exact=True))
    with _cache_lock:
        hit = _index_cache.get(key)
        if hit is not None:
            _index_cache.move_to_end(key)
            return hit
    built = _build_kind_index(kind, frame)
    with _cache_lock:
        _index_cache[key] = built
        injected = [k for k in _index_cache if not k[1]]
        for old in injected[: max(len(injected) - _CACHE_SIZE, 0)]:
            del _index_cache[old]
    return built


def _take_str(values: list[str] | np.ndarray, which: np.ndarray) -> pd.arrays.StringArray:
    """``values[which]`` as a str array, '' where ``which`` is -1."""
    table = pd.array([*map(str, values), ""], dtype=_STR)
    return table.take(np.where(which >= 0, which, len(table) - 1))


def _near_boundary_subset(
    index: _PointIndex, frame: gpd.GeoDataFrame, dist_m: np.ndarray, n: int
) -> np.ndarray:
    """Rows of ``index`` within ``dist_m`` of a polygon boundary (for small row subsets)."""
    flag = np.zeros(n, dtype=bool)
    pairs = zip(frame.geometry.values, dist_m, strict=True)
    for band in (_boundary_band(g, float(d)) for g, d in pairs):
        if band is not None:
            flag[index.inside(band)] = True
    return flag


def _straddle_matrix(units: np.ndarray, polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(interior∩interior, interior∩exterior) matrices of units × polygons, bbox-pruned."""
    ii = np.zeros((len(units), len(polys)), dtype=bool)
    ie = np.ones((len(units), len(polys)), dtype=bool)
    if len(units) == 0 or len(polys) == 0:
        return ii, ie
    ub, pb = shapely.bounds(units), shapely.bounds(polys)
    overlap = (
        (ub[:, None, 0] <= pb[None, :, 2])
        & (ub[:, None, 2] >= pb[None, :, 0])
        & (ub[:, None, 1] <= pb[None, :, 3])
        & (ub[:, None, 3] >= pb[None, :, 1])
    )
    ui, pj = np.nonzero(overlap)
    if ui.size:
        ii[ui, pj] = shapely.relate_pattern(units[ui], polys[pj], _II)
        ie[ui, pj] = shapely.relate_pattern(units[ui], polys[pj], _IE)
    return ii, ie


def _coarse_straddle(
    gdf: gpd.GeoDataFrame,
    x: np.ndarray,
    y: np.ndarray,
    district: np.ndarray,
    districts: gpd.GeoDataFrame,
    polys: dict[str, gpd.GeoDataFrame],
    town_radius_m: float | None,
) -> dict[str, np.ndarray]:
    """Per kind, rows whose coarse geocode unit straddles a polygon of that kind."""
    n = len(gdf)
    out = {k: np.zeros(n, dtype=bool) for k in polys}
    if "geocode_precision" not in gdf.columns:
        return out
    prec = gdf["geocode_precision"].astype("str").to_numpy()
    is_town, is_district, is_city = prec == "town", prec == "district", prec == "city"
    if not (is_town.any() or is_district.any() or is_city.any()):
        return out

    # town: a circle of the gazetteer radius around the point crosses a boundary
    radius = None
    if "geocode_accuracy_m" in gdf.columns:
        radius = pd.to_numeric(gdf["geocode_accuracy_m"], errors="coerce").to_numpy(float)
    elif town_radius_m is not None:
        radius = np.full(n, float(town_radius_m))
    if radius is not None and is_town.any():
        # one band per distinct radius (rounded up to 50 m) and polygon
        r_round = np.ceil(np.nan_to_num(radius, nan=0.0) / 50.0) * 50.0
        for r in np.unique(r_round[is_town]):
            rows = is_town & (r_round == r)
            sub = _PointIndex(np.where(rows, x, np.nan), np.where(rows, y, np.nan))
            for kind, frame in polys.items():
                out[kind] |= _near_boundary_subset(sub, frame, np.full(len(frame), r), n)
    elif is_town.any():
        logger.info("no town geocode radius: treating town geocodes like district geocodes")
        is_district = is_district | is_town

    # work on integer district / city indices (-1 = none), never on per-row strings
    codes = pd.Index(districts["code"].astype(str))
    city_of, city_codes = pd.factorize(districts["city_code"].astype(str))
    city_of = np.append(city_of, -1)  # district -1 -> city -1
    unit_d = district.copy()
    unit_c = city_of[district]
    if "geocode_unit_code" in gdf.columns:
        g_codes, g_uniq = pd.factorize(gdf["geocode_unit_code"].astype("str").str.strip())
        as_d = np.append(codes.get_indexer(pd.Index(g_uniq)), -1)[g_codes]
        as_c = np.append(pd.Index(city_codes).get_indexer(pd.Index(g_uniq)), -1)[g_codes]
        unit_d = np.where(as_d >= 0, as_d, unit_d)
        unit_c = np.where(as_d >= 0, city_of[as_d], np.where(as_c >= 0, as_c, unit_c))
    # only districts some coarse row stands for (directly, or through its city)
    need = np.zeros(len(codes), dtype=bool)
    need[np.unique(unit_d[is_district & (unit_d >= 0)])] = True
    need |= np.isin(city_of[:-1], np.unique(unit_c[is_city & (unit_c >= 0)]))
    sel = np.flatnonzero(need)
    geoms = districts.geometry.to_numpy()[sel]
    for kind, frame in polys.items():
        ii = np.zeros((len(codes), len(frame)), dtype=bool)
        ie = np.ones((len(codes), len(frame)), dtype=bool)
        ii[sel], ie[sel] = _straddle_matrix(geoms, frame.geometry.to_numpy())
        d_straddle = (ii & ie).any(axis=1)
        # a city straddles when its interior meets some polygon and leaves it somewhere
        c_ii = np.zeros(len(city_codes), dtype=bool)
        c_ie = np.zeros(len(city_codes), dtype=bool)
        np.logical_or.at(c_ii, city_of[:-1], ii.any(axis=1))
        np.logical_or.at(c_ie, city_of[:-1], ie.any(axis=1))
        c_straddle = c_ii & c_ie
        out[kind] |= is_district & np.append(d_straddle, False)[unit_d]
        out[kind] |= is_city & np.append(c_straddle, False)[unit_c]
    return out


def _park_claimed(gdf: gpd.GeoDataFrame) -> np.ndarray:
    if "park_claimed" not in gdf.columns:
        return np.zeros(len(gdf), dtype=bool)
    s = gdf["park_claimed"]
    if pd.api.types.is_bool_dtype(s):
        return s.fillna(False).to_numpy(bool)
    codes, uniques = pd.factorize(s)
    yes = np.array(
        [str(u).strip().lower() not in _NO_PARK for u in uniques] + [False], dtype=bool
    )
    return yes[codes]


# --------------------------------------------------------------------------- public
def classify(
    gdf: gpd.GeoDataFrame,
    *,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    town_radius_m: float | None = None,
) -> gpd.GeoDataFrame:
    """Add district, city, basin, region, park and review flags to geocoded points.

    Parameters
    ----------
    gdf
        Point GeoDataFrame in EPSG:4326 (output of :func:`geo.geocoding.geocode`).
        Optional columns used: ``geocode_precision`` (absent = all precise),
        ``geocode_unit_code`` (district/city code a coarse geocode stands for),
        ``geocode_accuracy_m`` (radius of a town geocode), ``park_claimed``.
    layers
        Reference frames by kind (``district``, ``basin``, ``region``, ``park``), EPSG:4326.
        Kinds not given are loaded with ``layers.registry.load_group``. Districts need
        ``code, name_zh, city_code, city_zh``; the others ``id`` (and optionally
        ``accuracy_m``, else the registry's ``provenance.accuracy_m``).
    town_radius_m
        Radius of town-precision geocodes when ``geocode_accuracy_m`` is absent; without
        either, town geocodes are checked like district geocodes.

    Returns
    -------
    A copy of ``gdf`` with :data:`geo.schema.CLASSIFY_COLUMNS`; ids are '' where none.
    Points in no district get ``district == ''`` (the pipeline rejects them).

    Raises
    ------
    CRSMismatchError
        If ``gdf`` or a reference layer has no CRS or is not EPSG:4326.

    Notes
    -----
    Thread-safe: GEOS builds a prepared geometry's internal index lazily on first use, so
    concurrent queries on the shared, cached reference geometries could race (seen as a
    segfault under Dask's threaded workers). Calls are serialised by a module lock; run
    processes, not threads, for parallel throughput.
    """
    with _classify_lock:
        return _classify(gdf, layers=layers, town_radius_m=town_radius_m)


def _classify(
    gdf: gpd.GeoDataFrame,
    *,
    layers: Mapping[str, gpd.GeoDataFrame] | None,
    town_radius_m: float | None,
) -> gpd.GeoDataFrame:
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise TypeError("classify() needs a GeoDataFrame with point geometry.")
    _check_crs(gdf, "The enterprise frame")
    n = len(gdf)
    geom = gdf.geometry.to_numpy()
    if n and not np.all(
        shapely.is_missing(geom) | (shapely.get_type_id(geom) == shapely.GeometryType.POINT)
    ):
        raise TypeError("classify() needs point geometry; call .centroid or geocode first.")
    x = np.asarray(shapely.get_x(geom), dtype=float)
    y = np.asarray(shapely.get_y(geom), dtype=float)

    cols = _attribute_columns(gdf, x, y, layers, town_radius_m)
    out = gdf.copy(deep=False)  # only whole columns are set below: gdf is never modified
    for name, values in cols.items():
        out[name] = values
    logger.debug("classified %d points", n)
    return out


def classify_point(lon: float, lat: float) -> dict[str, Any]:
    """:func:`classify` of one precise WGS84 point against the bundled layers, as a dict.

    The same answer as ``classify`` on a one-row frame, without building frames (point
    look-ups on the API's hot path).
    """
    x = np.array([lon], dtype=float)
    y = np.array([lat], dtype=float)
    with _classify_lock:
        cols = _attribute_columns(_ONE_ROW, x, y, None, None)
    return {
        name: bool(values[0]) if name == "needs_review" else str(values[0])
        for name, values in cols.items()
    }


#: A one-row frame with no attributes: a precise point with no park claim.
_ONE_ROW = pd.DataFrame(index=range(1))


def _attribute_columns(
    gdf: pd.DataFrame,
    x: np.ndarray,
    y: np.ndarray,
    layers: Mapping[str, gpd.GeoDataFrame] | None,
    town_radius_m: float | None,
) -> dict[str, Any]:
    """The CLASSIFY_COLUMNS of points ``x``/``y``; ``gdf`` supplies geocode/park columns."""
    ref, indexes = _load_layers(layers)
    n = len(x)
    districts = ref["district"]
    d_which, _ = indexes["district"].polygons.assign(x, y)
    cols: dict[str, Any] = {
        "city": _take_str(districts["city_zh"].tolist(), d_which),
        "district": _take_str(districts["name_zh"].tolist(), d_which),
        "district_code": _take_str(districts["code"].tolist(), d_which),
    }
    flags: dict[str, np.ndarray] = {}
    polys = {k: ref[k] for k in ("basin", "region", "park")}
    for kind, col in (("basin", "basin_id"), ("region", "region_id"), ("park", "park_id")):
        which, multi = indexes[kind].polygons.assign(x, y)
        cols[col] = _take_str(polys[kind]["id"].tolist(), which)
        flags[f"multiple_{kind}s"] = multi
        flags[f"near_{kind}_boundary"] = indexes[kind].bands.covers_any(x, y)
        if kind == "park":
            flags["park_claim_unverified"] = _park_claimed(gdf) & (which < 0)

    coarse = _coarse_straddle(gdf, x, y, d_which, districts, polys, town_radius_m)
    for kind, flag in coarse.items():
        flags[f"coarse_geocode_straddles_{kind}"] = flag

    # pack the flags and build the reason strings once per distinct combination
    bits = np.zeros(n, dtype=np.uint32)
    for i, code in enumerate(REVIEW_REASONS):
        bits |= flags[code].astype(np.uint32) << np.uint32(i)
    combo, uniq = pd.factorize(bits)
    texts = [
        ISSUE_SEP.join(c for i, c in enumerate(REVIEW_REASONS) if (int(u) >> i) & 1)
        for u in uniq
    ]
    cols["needs_review"] = bits > 0
    cols["review_reasons"] = pd.array(texts or [""], dtype=_STR).take(np.asarray(combo))
    return cols
