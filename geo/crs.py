"""Coordinate systems used by Chinese registries, converted to WGS84.

Registries mix four systems (see ``../shared/domain.md``):

* ``WGS84`` (EPSG:4326) and ``CGCS2000`` (EPSG:4490): the official datum; the two agree
  to centimetres at map scale, so CGCS2000 is passed through unchanged.
* ``GCJ02``: the obfuscated datum of Amap, Tencent and Google China, offset 100-700 m.
* ``BD09``: Baidu's datum, a further rotation and shift on top of GCJ-02.

The forward WGS84 -> GCJ-02 formula is public; there is no closed inverse, so
:func:`gcj02_to_wgs84` iterates the forward formula (fixed-point) until the round trip is
below :data:`INVERSE_TOLERANCE_DEG` (about 1 cm). Everything is vectorised over numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from geo.errors import UnknownCRSError

__all__ = [
    "CRS_NAMES",
    "normalise_crs_name",
    "wgs84_to_gcj02",
    "gcj02_to_wgs84",
    "gcj02_to_bd09",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "wgs84_to_bd09",
    "to_wgs84",
    "from_wgs84",
]

FloatArray = NDArray[np.float64]

# Krasovsky 1940 ellipsoid parameters used by the GCJ-02 formula.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323
_BD_X_PI: Final = np.pi * 3000.0 / 180.0

INVERSE_TOLERANCE_DEG: Final = 1e-9  # ~0.1 mm; the loop stops well before MAX_ITER
MAX_ITER: Final = 30

#: Canonical names and the spellings accepted for each (case-insensitive).
CRS_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "WGS84": ("wgs84", "wgs-84", "wgs 84", "epsg:4326", "4326", "gps", ""),
    "CGCS2000": ("cgcs2000", "cgcs 2000", "epsg:4490", "4490", "国家2000", "2000国家大地坐标系"),
    "GCJ02": ("gcj02", "gcj-02", "gcj", "火星坐标", "高德", "amap", "腾讯", "tencent"),
    "BD09": ("bd09", "bd-09", "bd09ll", "baidu", "百度"),
}
_LOOKUP: Final = {alias: name for name, aliases in CRS_NAMES.items() for alias in aliases}


def normalise_crs_name(value: object) -> str:
    """Return the canonical CRS name (``WGS84``, ``CGCS2000``, ``GCJ02`` or ``BD09``).

    Parameters
    ----------
    value
        A registry's ``坐标系`` cell; blank or missing means WGS84.

    Raises
    ------
    UnknownCRSError
        If the value names none of the four systems.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "WGS84"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)  # an EPSG code read from a numeric Excel column, e.g. 4326.0
    key = str(value).strip().lower()
    try:
        return _LOOKUP[key]
    except KeyError:
        raise UnknownCRSError(str(value)) from None


def _offsets(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset in degrees at WGS84 ``lon``/``lat`` (the public forward formula)."""
    x = lon - 105.0
    y = lat - 35.0
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Shift WGS84 coordinates to GCJ-02 (exact public formula, vectorised)."""
    lon_a, lat_a = _as_arrays(lon, lat)
    dlon, dlat = _offsets(lon_a, lat_a)
    return lon_a + dlon, lat_a + dlat


def _invert(
    forward: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: FloatArray,
    lat: FloatArray,
    start: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray]:
    """Solve ``forward(x, y) == (lon, lat)`` by fixed-point iteration from ``start``."""
    x, y = start[0].copy(), start[1].copy()
    for _ in range(MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x -= ex
        y -= ey
        worst = np.nanmax(np.abs(np.concatenate([ex.ravel(), ey.ravel()])), initial=0.0)
        if worst < INVERSE_TOLERANCE_DEG:
            break
    return x, y


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Invert :func:`wgs84_to_gcj02` by fixed-point iteration (sub-millimetre, vectorised).

    The offset field is smooth (gradient ~1e-5), so each iteration gains about five
    decimal digits; three or four iterations reach the tolerance.
    """
    glon, glat = _as_arrays(lon, lat)
    return _invert(wgs84_to_gcj02, glon, glat, (glon, glat))


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Shift GCJ-02 coordinates to Baidu BD-09 (exact public formula)."""
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Invert :func:`gcj02_to_bd09` by fixed-point iteration (sub-millimetre)."""
    blon, blat = _as_arrays(lon, lat)
    return _invert(gcj02_to_bd09, blon, blat, (blon - 0.0065, blat - 0.006))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Baidu BD-09 to WGS84 (through GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 to Baidu BD-09 (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def to_wgs84(
    lon: ArrayLike, lat: ArrayLike, crs: ArrayLike | str
) -> tuple[FloatArray, FloatArray]:
    """Convert coordinates given in a per-row (or single) CRS name to WGS84.

    Parameters
    ----------
    lon, lat
        Coordinates in degrees.
    crs
        One canonical name for all rows, or an array of canonical names
        (see :func:`normalise_crs_name`), one per row.

    Returns
    -------
    tuple of ndarray
        WGS84 longitude and latitude.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    names = np.broadcast_to(np.asarray(crs, dtype=object), lon_a.shape)
    out_lon, out_lat = lon_a.copy(), lat_a.copy()
    for name, convert in (("GCJ02", gcj02_to_wgs84), ("BD09", bd09_to_wgs84)):
        mask = names == name
        if mask.any():
            out_lon[mask], out_lat[mask] = convert(lon_a[mask], lat_a[mask])
    unknown = ~np.isin(names, list(CRS_NAMES))
    if unknown.any():
        raise UnknownCRSError(str(names[unknown][0]))
    return out_lon, out_lat


def from_wgs84(
    lon: ArrayLike, lat: ArrayLike, crs: str
) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 coordinates to ``crs`` (one canonical name for all rows)."""
    lon_a, lat_a = _as_arrays(lon, lat)
    if crs in ("WGS84", "CGCS2000"):
        return lon_a.copy(), lat_a.copy()
    if crs == "GCJ02":
        return wgs84_to_gcj02(lon_a, lat_a)
    if crs == "BD09":
        return wgs84_to_bd09(lon_a, lat_a)
    raise UnknownCRSError(crs)
