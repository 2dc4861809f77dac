"""Raster products: enterprise density surfaces, Cloud-Optimized GeoTIFF, zonal statistics.

Density grids are built in a metric, equal-area CRS (:data:`DEFAULT_DENSITY_CRS`) on a grid
whose origin is a multiple of the cell size, so two runs with the same cell size align cell
for cell and can be differenced. Counting is one :func:`numpy.bincount` over computed
row/column indices; zonal statistics rasterise all zones in one pass and reduce with
grouped numpy reductions.

Cell rule (same as :func:`rasterio.transform.rowcol`): a point at ``(x, y)`` falls in column
``floor((x - west) / cell)`` and row ``floor((north - y) / cell)``, i.e. cells are closed
on the west and north edge and open on the east and south edge.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import rasterio.shutil
import rasterio.warp
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import AlbersEqualAreaConversion
from rasterio.crs import CRS as RioCRS
from rasterio.enums import MergeAlg, Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile

from geo.errors import CRSMismatchError, RasterError

__all__ = [
    "DEFAULT_DENSITY_CRS",
    "NODATA",
    "TOTAL_BAND",
    "MISSING_CATEGORY",
    "MAX_CELLS",
    "OVERLAY_COLORS",
    "DensityRaster",
    "PngOverlay",
    "density",
    "write_cog",
    "read_raster",
    "zonal_stats",
    "density_to_png_overlay",
]

logger = logging.getLogger(__name__)

#: Albers equal-area conic fitted to Guangdong (20.2-25.5 N, 109.7-117.3 E): standard
#: parallels at 21 N and 25 N (the one-sixth rule), central meridian 113.5 E, metres.
#: Equal area means every cell covers the same ground area anywhere in the province, so
#: counts per cell are comparable between Zhanjiang and Shantou; scale error is below 0.1 %
#: inside the province. UTM 49N (EPSG:32649) would distort cell area by up to ~1 % in the
#: east (the Lianjiang basin, 116.4 E, lies 5.4 degrees off its central meridian).
#: Pass ``crs="utm"`` to :func:`density` for ``GeoDataFrame.estimate_utm_crs()`` instead.
#: Built as a named WKT2 CRS (not a bare PROJ string) so GeoTIFF readers such as
#: ``gdalinfo`` and QGIS show "Guangdong Albers equal-area (WGS 84)" instead of "unknown".
DEFAULT_DENSITY_CRS: Final = CRS(
    ProjectedCRS(
        name="Guangdong Albers equal-area (WGS 84)",
        conversion=AlbersEqualAreaConversion(
            latitude_first_parallel=21.0, latitude_second_parallel=25.0,
            latitude_false_origin=23.0, longitude_false_origin=113.5,
        ),
        geodetic_crs=CRS.from_epsg(4326),
    )
)
#: Nodata value of density rasters (counts are never negative).
NODATA: Final = -9999.0
#: Description of the band holding all enterprises (always band 1).
TOTAL_BAND: Final = "total"
#: Band description for rows whose ``by`` value is missing or empty.
MISSING_CATEGORY: Final = "(missing)"
#: Upper bound on cells per band, a guard against a cell size that is far too small.
MAX_CELLS: Final = 25_000_000
#: Default overlay ramp (ColorBrewer YlOrRd, 5 classes), low to high.
OVERLAY_COLORS: Final = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")

_ZONAL_STATS: Final = ("mean", "max", "min", "sum", "count")
_WGS84: Final = CRS.from_epsg(4326)
_WEB_MERCATOR: Final = CRS.from_epsg(3857)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DensityRaster:
    """A multi-band raster held in memory.

    Attributes
    ----------
    array
        ``(bands, rows, cols)`` float32 values; band 1 (index 0) is :data:`TOTAL_BAND`.
    transform
        Affine transform of the upper-left corner, north-up.
    crs
        Coordinate reference system of the grid.
    band_names
        One description per band (``total`` then category values).
    nodata
        Nodata value written to files.
    """

    array: NDArray[np.float32]
    transform: Affine
    crs: CRS
    band_names: tuple[str, ...]
    nodata: float = NODATA

    def __post_init__(self) -> None:
        if self.array.ndim != 3 or self.array.shape[0] != len(self.band_names):
            raise RasterError(
                f"Raster array has shape {self.array.shape}; expected (bands, rows, cols) "
                f"with {len(self.band_names)} bands to match band_names."
            )

    @property
    def cell_size(self) -> float:
        """Cell width in CRS units (cells are square)."""
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` in the raster CRS."""
        _, rows, cols = self.array.shape
        west, north = self.transform.c, self.transform.f
        return (west, north + rows * self.transform.e, west + cols * self.transform.a, north)

    def band(self, band: int | str) -> NDArray[np.float32]:
        """Return one band by 1-based index or by description."""
        return self.array[_band_index(band, self.band_names, self.array.shape[0])]


@dataclass(frozen=True)
class PngOverlay:
    """What ``folium.raster_layers.ImageOverlay`` needs.

    Attributes
    ----------
    image
        ``(rows, cols, 4)`` uint8 RGBA in Web Mercator pixel space (transparent where the
        value is zero or nodata).
    bounds
        ``[[south, west], [north, east]]`` in WGS84 degrees.
    vmax
        The value mapped to the top colour.
    """

    image: NDArray[np.uint8]
    bounds: list[list[float]]
    vmax: float
    png: bytes = field(repr=False, default=b"")

    @property
    def data_url(self) -> str:
        """The PNG as a ``data:`` URL (works offline, no file needed)."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


# ---------------------------------------------------------------------------- density


def density(
    gdf: gpd.GeoDataFrame,
    *,
    cell_m: float = 1000,
    by: str | None = None,
    crs: str | CRS | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    smooth_sigma_cells: float | None = None,
    categories: Sequence[str] | None = None,
) -> DensityRaster:
    """Count enterprises per grid cell, optionally per category and smoothed.

    Parameters
    ----------
    gdf
        Point GeoDataFrame with a CRS (pipeline output is EPSG:4326). Rows with empty or
        missing geometry are skipped (logged).
    cell_m
        Cell size in metres of the target CRS.
    by
        Column to split by (e.g. ``industry_id`` or ``verdict``): one band per value after
        the ``total`` band. Missing values get the band :data:`MISSING_CATEGORY`.
    crs
        Target metric CRS; default :data:`DEFAULT_DENSITY_CRS` (Albers equal-area for
        Guangdong). ``"utm"`` uses ``gdf.estimate_utm_crs()``. Geographic CRSs are refused.
    bounds
        ``(west, south, east, north)`` in the target CRS; snapped outward to multiples of
        ``cell_m``. Points outside are not counted. Default: the points' extent (plus the
        smoothing radius).
    smooth_sigma_cells
        Standard deviation of a Gaussian kernel in cells. The grid is padded by the kernel
        radius before smoothing so no mass is lost; with explicit ``bounds`` the result
        is cropped back, so the total is the smoothed mass inside ``bounds``.
    categories
        Fixed band order for ``by`` (e.g. all industry ids, so runs share bands); a value
        not listed raises :class:`~geo.errors.RasterError`. Default: sorted values found.

    Returns
    -------
    DensityRaster
        float32 counts (``total`` band first), grid origin a multiple of ``cell_m``.
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise RasterError(f"density() needs a GeoDataFrame, got {type(gdf).__name__}.")
    if gdf.crs is None:
        raise CRSMismatchError(
            "The enterprises have no CRS: set it first, e.g. gdf.set_crs('EPSG:4326')."
        )
    if not (isinstance(cell_m, int | float) and math.isfinite(cell_m) and cell_m > 0):
        raise RasterError(f"cell_m must be a positive number of metres, got {cell_m!r}.")
    cell = float(cell_m)
    target = _target_crs(gdf, crs)

    geoms = gdf.geometry
    present = ~(geoms.isna() | geoms.is_empty).to_numpy()
    if not present.all():
        logger.info("density: skipping %d rows without geometry", int((~present).sum()))
    kinds = geoms[present].geom_type.to_numpy()
    bad = np.flatnonzero(kinds != "Point")
    if bad.size:
        label = gdf.index[np.flatnonzero(present)[bad[0]]]
        raise RasterError(
            f"Row {label!r}: geometry is {kinds[bad[0]]}, expected Point "
            f"({bad.size} non-point rows); density counts point locations."
        )
    pts = geoms[present].to_crs(target)
    x = pts.x.to_numpy(dtype=np.float64)
    y = pts.y.to_numpy(dtype=np.float64)

    codes, names = _category_codes(gdf, by, present, categories)
    radius = _kernel_radius(smooth_sigma_cells)

    if bounds is None:
        if x.size == 0:
            raise RasterError("No enterprise has a location: cannot derive the raster extent.")
        west, south, east, north = _snap_extent(x.min(), y.min(), x.max(), y.max(), cell)
        crop = None
    else:
        west, south, east, north = _snap_bounds(bounds, cell)
        crop = (radius, radius)  # rows/cols of padding to strip afterwards
    # pad by the kernel radius so smoothing never pushes mass off the grid
    west, south = west - radius * cell, south - radius * cell
    east, north = east + radius * cell, north + radius * cell
    ncols = round((east - west) / cell)
    nrows = round((north - south) / cell)
    if nrows * ncols > MAX_CELLS:
        raise RasterError(
            f"A {cell:g} m grid over this extent has {nrows} x {ncols} cells (limit "
            f"{MAX_CELLS:,}): use a larger cell size or smaller bounds."
        )

    col = np.floor((x - west) / cell).astype(np.int64)
    row = np.floor((north - y) / cell).astype(np.int64)
    inside = (col >= 0) & (col < ncols) & (row >= 0) & (row < nrows)
    if crop is not None:
        # points in the padding ring are outside the requested bounds
        inside &= (col >= radius) & (col < ncols - radius)
        inside &= (row >= radius) & (row < nrows - radius)
    if not inside.all():
        logger.info("density: %d points outside the extent", int((~inside).sum()))
    ncell = nrows * ncols
    flat = row[inside] * ncols + col[inside]
    ncat = len(names)
    if ncat:
        counts = np.bincount(codes[inside] * ncell + flat, minlength=ncat * ncell)
        cats = counts.reshape(ncat, nrows, ncols).astype(np.float64)
    else:
        cats = np.bincount(flat, minlength=ncell).reshape(1, nrows, ncols).astype(np.float64)

    if radius:
        from scipy.ndimage import gaussian_filter

        assert smooth_sigma_cells is not None
        cats = gaussian_filter(
            cats, sigma=(0, smooth_sigma_cells, smooth_sigma_cells), mode="constant",
            cval=0.0, truncate=_TRUNCATE,
        )
    total = cats.sum(axis=0, keepdims=True) if ncat else cats
    stack = np.concatenate([total, cats]) if ncat else total
    transform = Affine(cell, 0.0, west, 0.0, -cell, north)
    if crop is not None and radius:
        stack = stack[:, radius : nrows - radius, radius : ncols - radius]
        transform = Affine(cell, 0.0, west + radius * cell, 0.0, -cell, north - radius * cell)
    band_names = (TOTAL_BAND, *names)
    logger.debug("density: %s bands, %s cells of %g m", len(band_names), stack.shape[1:], cell)
    return DensityRaster(
        array=np.ascontiguousarray(stack, dtype=np.float32),
        transform=transform,
        crs=target,
        band_names=band_names,
    )


_TRUNCATE: Final = 4.0  # scipy's default kernel truncation, in sigmas


def _kernel_radius(sigma: float | None) -> int:
    if sigma is None or sigma == 0:
        return 0
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise RasterError(f"smooth_sigma_cells must be a positive number, got {sigma!r}.")
    return int(_TRUNCATE * float(sigma) + 0.5)  # scipy.ndimage's kernel radius


def _target_crs(gdf: gpd.GeoDataFrame, crs: str | CRS | None) -> CRS:
    if crs is None:
        return DEFAULT_DENSITY_CRS
    if isinstance(crs, str) and crs.lower() == "utm":
        utm = gdf.estimate_utm_crs()
        if utm is None:
            raise RasterError("Cannot estimate a UTM zone for these points; pass crs=.")
        return CRS(utm)
    try:
        target = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj.exceptions.CRSError
        raise RasterError(f"Unknown raster CRS {crs!r}: {exc}") from exc
    if not target.is_projected or target.axis_info[0].unit_name not in ("metre", "meter"):
        raise RasterError(
            f"Raster CRS {target.name!r} is not a projected CRS in metres: cell sizes are "
            "metres, use e.g. 'EPSG:32649' or the default (crs=None)."
        )
    return target


def _snap_extent(
    minx: float, miny: float, maxx: float, maxy: float, cell: float
) -> tuple[float, float, float, float]:
    """Smallest cell-aligned extent whose half-open cells contain every point."""
    west = math.floor(minx / cell) * cell
    east = (math.floor(maxx / cell) + 1) * cell
    north = math.ceil(maxy / cell) * cell
    south = (math.ceil(miny / cell) - 1) * cell
    return west, south, east, north


def _snap_bounds(
    bounds: tuple[float, float, float, float], cell: float
) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in bounds)
    except (TypeError, ValueError) as exc:
        raise RasterError(
            f"bounds must be (west, south, east, north) numbers, got {bounds!r}."
        ) from exc
    if not (west < east and south < north) or not all(
        map(math.isfinite, (west, south, east, north))
    ):
        raise RasterError(f"bounds {bounds!r} are empty: expected west < east, south < north.")
    return (
        math.floor(west / cell) * cell,
        math.floor(south / cell) * cell,
        math.ceil(east / cell) * cell,
        math.ceil(north / cell) * cell,
    )


def _category_codes(
    gdf: gpd.GeoDataFrame,
    by: str | None,
    present: NDArray[np.bool_],
    categories: Sequence[str] | None,
) -> tuple[NDArray[np.int64], tuple[str, ...]]:
    if by is None:
        return np.zeros(int(present.sum()), dtype=np.int64), ()
    if by not in gdf.columns:
        raise RasterError(
            f"Cannot split density by '{by}': no such column (columns: "
            f"{', '.join(map(str, gdf.columns))})."
        )
    raw = gdf.loc[present, by]
    values = raw.astype("string").str.strip().fillna("").replace("", MISSING_CATEGORY)
    if categories is None:
        names = sorted(set(values.unique()) - {MISSING_CATEGORY})
        if (values == MISSING_CATEGORY).any():
            names.append(MISSING_CATEGORY)
    else:
        names = [str(c) for c in categories]
        unknown = ~values.isin(names)
        if unknown.any():
            first = values.index[np.flatnonzero(unknown.to_numpy())[0]]
            raise RasterError(
                f"Row {first!r}: {by} = {values[first]!r} is not one of the categories "
                f"{', '.join(names)}."
            )
    lookup = pd.Index(names)
    return lookup.get_indexer(values).astype(np.int64), tuple(names)


# --------------------------------------------------------------------------------- I/O


def write_cog(raster: DensityRaster, path: str | os.PathLike[str]) -> Path:
    """Write a raster as a Cloud-Optimized GeoTIFF, atomically.

    Uses GDAL's ``COG`` driver (DEFLATE, 512-pixel tiles, AVERAGE overviews) when the
    bundled GDAL has it, else a tiled GeoTIFF with internal overviews copied first. The
    file is written next to ``path`` under a temporary name and moved into place with
    :func:`os.replace`, so readers never see a half-written file.

    Parameters
    ----------
    raster
        The raster; its CRS, nodata and band names are written.
    path
        Destination ``.tif``.

    Returns
    -------
    Path
        ``path``.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    bands, rows, cols = raster.array.shape
    profile = {
        "driver": "GTiff",
        "count": bands,
        "height": rows,
        "width": cols,
        "dtype": raster.array.dtype.name,
        "crs": RioCRS.from_wkt(raster.crs.to_wkt()),
        "transform": raster.transform,
        "nodata": raster.nodata,
    }
    # GDAL creates the temp file itself, so it gets the usual umask permissions (mkstemp: 0600)
    tmp_name = str(dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp.tif"))
    try:
        with MemoryFile() as mem:
            with mem.open(**profile) as src:
                src.write(raster.array)
                for i, name in enumerate(raster.band_names, start=1):
                    src.set_band_description(i, name)
                if "COG" not in _raster_drivers():
                    factors = _overview_factors(rows, cols)
                    if factors:
                        src.build_overviews(factors, Resampling.average)
            with mem.open() as src:
                if "COG" in _raster_drivers():
                    rasterio.shutil.copy(
                        src, tmp_name, driver="COG", compress="DEFLATE", predictor="YES",
                        blocksize=512, overview_resampling="AVERAGE",
                    )
                else:  # pragma: no cover - GDAL < 3.1
                    rasterio.shutil.copy(
                        src, tmp_name, driver="GTiff", tiled=True, blockxsize=512,
                        blockysize=512, compress="DEFLATE", copy_src_overviews=True,
                    )
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("wrote %s (%d bands, %dx%d)", dest, bands, rows, cols)
    return dest


def _raster_drivers() -> set[str]:
    with rasterio.Env() as env:
        return set(env.drivers())


def _overview_factors(rows: int, cols: int) -> list[int]:
    factors, f = [], 2
    while max(rows, cols) / f >= 256:
        factors.append(f)
        f *= 2
    return factors


def read_raster(path: str | os.PathLike[str]) -> DensityRaster:
    """Read a GeoTIFF (e.g. one from :func:`write_cog`) into a :class:`DensityRaster`.

    Bands without a description are named ``band_<n>``; a file without nodata gets NaN.
    """
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise CRSMismatchError(f"Raster {path} has no CRS: it cannot be placed on a map.")
            array = src.read().astype(np.float32, copy=False)
            names = tuple(d or f"band_{i}" for i, d in enumerate(src.descriptions, start=1))
            nodata = float(src.nodata) if src.nodata is not None else float("nan")
            return DensityRaster(
                array=array,
                transform=src.transform,
                crs=CRS.from_wkt(src.crs.to_wkt()),
                band_names=names,
                nodata=nodata,
            )
    except RasterioIOError as exc:
        raise RasterError(f"Cannot read raster {path}: {exc}") from exc


def _as_raster(raster: DensityRaster | str | os.PathLike[str]) -> DensityRaster:
    return raster if isinstance(raster, DensityRaster) else read_raster(raster)


def _band_index(band: int | str, names: Sequence[str], count: int) -> int:
    if isinstance(band, str):
        if band not in names:
            raise RasterError(f"No band '{band}': bands are {', '.join(names)}.")
        return list(names).index(band)
    if not isinstance(band, int | np.integer) or not 1 <= band <= count:
        raise RasterError(f"band must be 1..{count} or a band name, got {band!r}.")
    return int(band) - 1


# ----------------------------------------------------------------------- zonal stats


def zonal_stats(
    raster: DensityRaster | str | os.PathLike[str],
    zones: gpd.GeoDataFrame,
    *,
    id_field: str = "id",
    band: int | str = 1,
    stats: Sequence[str] = ("mean", "max", "sum", "count"),
) -> pd.DataFrame:
    """Summarise one raster band over polygons (basins, districts, parks, ...).

    Zones are reprojected to the raster CRS and rasterised with the cell-centre rule
    (``all_touched=False``): a cell belongs to a zone when its centre is inside. That keeps
    a partition of zones a partition of cells, so zone sums add up to the raster sum and
    no boundary cell is counted twice; a zone smaller than a cell may get no cell (count
    0, other stats NaN). Non-overlapping zones take one rasterise pass; if zones overlap
    each one is rasterised on its own so every zone gets all its cells.

    Parameters
    ----------
    raster
        A :class:`DensityRaster` or a GeoTIFF path.
    zones
        Polygon GeoDataFrame with a CRS.
    id_field
        Column identifying each zone; copied to the result.
    band
        1-based band index or band description (``"total"``, ``"dyeing"``, ...).
    stats
        Any of ``mean``, ``max``, ``min``, ``sum``, ``count`` (count of valid cells).

    Returns
    -------
    pandas.DataFrame
        One row per zone, in input order: ``id_field`` then the requested stats. Nodata
        and NaN cells are excluded.
    """
    unknown = [s for s in stats if s not in _ZONAL_STATS]
    if unknown or not stats:
        raise RasterError(
            f"Unknown zonal statistic(s) {unknown or '(none)'}: expected any of "
            f"{', '.join(_ZONAL_STATS)}."
        )
    if not isinstance(zones, gpd.GeoDataFrame):
        raise RasterError(f"zones must be a GeoDataFrame, got {type(zones).__name__}.")
    if id_field not in zones.columns:
        raise RasterError(
            f"Zones have no id column '{id_field}' (columns: "
            f"{', '.join(map(str, zones.columns))}); pass id_field=."
        )
    if zones.crs is None:
        raise CRSMismatchError("The zones have no CRS: set it, e.g. zones.set_crs('EPSG:4326').")
    ras = _as_raster(raster)
    values = ras.band(band).astype(np.float64)
    _, rows, cols = ras.array.shape
    geoms = zones.to_crs(ras.crs).geometry.reset_index(drop=True)
    n = len(geoms)
    valid = np.isfinite(values)
    if not math.isnan(ras.nodata):
        valid &= values != ras.nodata
    shape = (rows, cols)

    usable = ~(geoms.isna() | geoms.is_empty).to_numpy()
    ids = np.arange(1, n + 1)[usable]
    shapes = list(zip(geoms[usable], ids.tolist(), strict=True))
    if not shapes:
        zone_idx = np.zeros(0, dtype=np.int64)
        cell_val = np.zeros(0)
    else:
        burn = dict(out_shape=shape, transform=ras.transform, all_touched=False)
        overlap = rasterio.features.rasterize(
            [(g, 1) for g, _ in shapes], fill=0, dtype="uint16",
            merge_alg=MergeAlg.add, **burn,
        )
        if overlap.max(initial=0) <= 1:
            labels = rasterio.features.rasterize(shapes, fill=0, dtype="int32", **burn)
            sel = (labels > 0) & valid
            zone_idx = labels[sel].astype(np.int64)
            cell_val = values[sel]
        else:  # overlapping zones: one pass per zone (unavoidable, each cell counts for each)
            logger.info("zonal_stats: zones overlap, rasterising %d zones one by one", n)
            parts_idx, parts_val = [], []
            for geom, zid in shapes:
                mask = rasterio.features.rasterize([(geom, 1)], fill=0, dtype="uint8", **burn)
                sel = mask.astype(bool) & valid
                parts_idx.append(np.full(int(sel.sum()), zid, dtype=np.int64))
                parts_val.append(values[sel])
            zone_idx = np.concatenate(parts_idx)
            cell_val = np.concatenate(parts_val)

    out = pd.DataFrame({id_field: zones[id_field].to_numpy()})
    count = np.bincount(zone_idx, minlength=n + 1)[1:]
    total = np.bincount(zone_idx, weights=cell_val, minlength=n + 1)[1:]
    empty = count == 0
    for stat in stats:
        if stat == "count":
            out[stat] = count.astype(np.int64)
        elif stat == "sum":
            out[stat] = total
        elif stat == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out[stat] = np.where(empty, np.nan, total / np.maximum(count, 1))
        else:
            init = -np.inf if stat == "max" else np.inf
            acc = np.full(n + 1, init)
            (np.maximum if stat == "max" else np.minimum).at(acc, zone_idx, cell_val)
            out[stat] = np.where(empty, np.nan, acc[1:])
    return out


# ------------------------------------------------------------------------ web overlay


def density_to_png_overlay(
    raster: DensityRaster | str | os.PathLike[str],
    *,
    band: int | str = 1,
    vmax: float | None = None,
    scale: Literal["linear", "sqrt"] = "sqrt",
    colors: Sequence[str] = OVERLAY_COLORS,
    opacity: float = 0.8,
) -> PngOverlay:
    """Colour one band as an RGBA image for a Leaflet/folium ``ImageOverlay``.

    The band is warped to Web Mercator (EPSG:3857, nearest neighbour so cells stay
    crisp) because Leaflet stretches an overlay linearly in Mercator space; the bounds are
    the warped grid's corners in WGS84. Zero and nodata cells are transparent.

    Parameters
    ----------
    raster
        A :class:`DensityRaster` or GeoTIFF path.
    band
        1-based index or description; default the ``total`` band.
    vmax
        Value mapped to the last colour; default the band maximum.
    scale
        ``sqrt`` (default) lifts sparse cells next to dense clusters; ``linear`` otherwise.
    colors
        Hex colour ramp, low to high.
    opacity
        Alpha of non-empty cells, 0-1.

    Returns
    -------
    PngOverlay
        ``image`` (rows, cols, 4) uint8, ``bounds`` ``[[s, w], [n, e]]``, ``png`` bytes and
        ``data_url``. Use ``folium.raster_layers.ImageOverlay(ov.data_url, ov.bounds)``.
    """
    ras = _as_raster(raster)
    src = ras.band(band).astype(np.float32)
    _, rows, cols = ras.array.shape
    src_crs = RioCRS.from_wkt(ras.crs.to_wkt())
    dst_crs = RioCRS.from_epsg(3857)
    west, south, east, north = ras.bounds
    # Mercator grid covering the raster, resolution = one source cell at the centre latitude
    # (computed here: rasterio's calculate_default_transform warns under newer affine)
    mw, ms, me, mn = rasterio.warp.transform_bounds(
        src_crs, dst_crs, west, south, east, north, densify_pts=21
    )
    centre_lat = rasterio.warp.transform(src_crs, "EPSG:4326", [(west + east) / 2],
                                         [(south + north) / 2])[1][0]
    res = ras.cell_size / math.cos(math.radians(centre_lat))
    width = max(1, math.ceil((me - mw) / res))
    height = max(1, math.ceil((mn - ms) / res))
    transform = Affine(res, 0.0, mw, 0.0, -res, mn)
    nodata = ras.nodata if not math.isnan(ras.nodata) else NODATA
    src = np.where(np.isfinite(src), src, nodata).astype(np.float32)
    dst = np.full((height, width), nodata, dtype=np.float32)
    rasterio.warp.reproject(
        src, dst, src_transform=ras.transform, src_crs=src_crs, src_nodata=nodata,
        dst_transform=transform, dst_crs=dst_crs, dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    shown = (dst != nodata) & (dst > 0)
    top = float(vmax) if vmax is not None else float(dst[shown].max(initial=0.0))
    frac = np.zeros_like(dst, dtype=np.float64)
    if top > 0:
        frac = np.clip(np.where(shown, dst, 0.0) / top, 0.0, 1.0)
        if scale == "sqrt":
            frac = np.sqrt(frac)
    ramp = np.array([_hex_rgb(c) for c in colors], dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(ramp))
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    for ch in range(3):
        rgba[..., ch] = np.round(np.interp(frac, stops, ramp[:, ch])).astype(np.uint8)
    rgba[..., 3] = np.where(shown, round(255 * float(np.clip(opacity, 0, 1))), 0)

    mx = np.array([transform.c, transform.c + width * transform.a])
    my = np.array([transform.f + height * transform.e, transform.f])
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(_WEB_MERCATOR, _WGS84, always_xy=True).transform(mx, my)
    bounds = [[float(lat[0]), float(lon[0])], [float(lat[1]), float(lon[1])]]
    return PngOverlay(image=rgba, bounds=bounds, vmax=top, png=_encode_png(rgba))


def _hex_rgb(color: str) -> tuple[int, int, int]:
    h = color.lstrip("#")
    if len(h) != 6:
        raise RasterError(f"Colour {color!r} is not a #rrggbb hex colour.")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _encode_png(rgba: NDArray[np.uint8]) -> bytes:
    """Minimal RGBA PNG encoder (zlib, filter 0 per row); no imaging library needed."""
    height, width, _ = rgba.shape
    raw = np.zeros((height, width * 4 + 1), dtype=np.uint8)
    raw[:, 1:] = rgba.reshape(height, width * 4)

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
