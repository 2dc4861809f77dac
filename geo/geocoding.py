"""Place ingested enterprises on the map (WGS84 points) with a stated precision.

Rows with coordinates are converted to WGS84 from their own ``crs_in`` (precision
``coordinates``). Address-only rows go to a geocoding provider: a :class:`BaseGeocoder`
subclass looked up by name in a registry of dotted paths (pygeoapi-style plugins). The
default provider ``offline`` is :class:`geo._gazetteer.OfflineGeocoder`; online services
are registered names only and refuse to run until configured (BasinWatch is offline).
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.crs import to_wgs84
from geo.errors import GeocodeError
from geo.schema import GEOCODE_COLUMNS, REJECTED_COLUMNS

__all__ = [
    "GEOCODER_OUTPUT_COLUMNS",
    "BaseGeocoder",
    "UnconfiguredOnlineGeocoder",
    "register_geocoder",
    "list_geocoders",
    "get_geocoder",
    "geocode",
]

logger = logging.getLogger(__name__)

#: Columns a provider's :meth:`BaseGeocoder.geocode` returns.
GEOCODER_OUTPUT_COLUMNS: Final = (
    "lon", "lat", "geocode_precision", "geocode_unit", "geocode_unit_code",
)

_PROVIDERS: dict[str, str] = {
    "offline": "geo._gazetteer.OfflineGeocoder",
    "amap": "geo.geocoding.UnconfiguredOnlineGeocoder",
    "baidu": "geo.geocoding.UnconfiguredOnlineGeocoder",
    "tianditu": "geo.geocoding.UnconfiguredOnlineGeocoder",
}


class BaseGeocoder(ABC):
    """Interface of a geocoding provider.

    Subclasses set :attr:`name` and implement :meth:`geocode`.
    """

    name: str = "base"

    @abstractmethod
    def geocode(self, addresses: pd.Series) -> pd.DataFrame:
        """Geocode addresses.

        Parameters
        ----------
        addresses
            Address strings.

        Returns
        -------
        pandas.DataFrame
            Same index as ``addresses``, columns :data:`GEOCODER_OUTPUT_COLUMNS`: ``lon``,
            ``lat`` (WGS84, NaN when not found), ``geocode_precision`` (``town`` |
            ``district`` | ``city``, ``''`` when not found), ``geocode_unit`` (name of the
            unit the point stands for) and ``geocode_unit_code`` (its division code).
        """


class UnconfiguredOnlineGeocoder(BaseGeocoder):
    """Placeholder for online services (Amap, Baidu, Tianditu): refuses to run."""

    name = "online"

    def __init__(self, **kwargs: Any) -> None:
        raise GeocodeError(
            "online providers are not configured: BasinWatch geocodes offline; use "
            "provider='offline' or register a configured provider with register_geocoder()."
        )

    def geocode(self, addresses: pd.Series) -> pd.DataFrame:  # pragma: no cover
        """Never reached: construction fails."""
        raise GeocodeError("online providers are not configured")


def register_geocoder(name: str, dotted_path: str) -> None:
    """Register (or replace) a provider: ``name`` -> ``"package.module.ClassName"``."""
    if "." not in dotted_path:
        raise GeocodeError(f"Provider path '{dotted_path}' must be 'package.module.ClassName'.")
    _PROVIDERS[name] = dotted_path


def list_geocoders() -> dict[str, str]:
    """Registered provider names and their dotted paths."""
    return dict(_PROVIDERS)


def get_geocoder(name: str = "offline", **kwargs: Any) -> BaseGeocoder:
    """Instantiate a registered provider.

    Parameters
    ----------
    name
        A registered name (see :func:`list_geocoders`).
    **kwargs
        Passed to the provider's constructor.

    Raises
    ------
    GeocodeError
        Unknown name, unimportable path, not a :class:`BaseGeocoder`, or (online
        providers) not configured.
    """
    try:
        path = _PROVIDERS[name]
    except KeyError:
        raise GeocodeError(
            f"Unknown geocoding provider '{name}': expected one of {', '.join(_PROVIDERS)}."
        ) from None
    module_name, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise GeocodeError(f"Provider '{name}' ({path}) cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseGeocoder)):
        raise GeocodeError(f"Provider '{name}' ({path}) is not a BaseGeocoder subclass.")
    return cls(**kwargs)


def _geocode_failed_message(row: object, address: str) -> str:
    from geo.ingest import issue_message  # ingest imports layers catalogs; keep lazy

    return issue_message("geocode_failed", row=row, field="地址", value=address)


def geocode(
    df: pd.DataFrame, *, provider: str | BaseGeocoder = "offline"
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Locate ingested rows as WGS84 points.

    Parameters
    ----------
    df
        Ingest output (``geo/schema.py`` ``INGEST_COLUMNS``).
    provider
        Provider name or instance for address-only rows.

    Returns
    -------
    located : geopandas.GeoDataFrame
        Rows that could be placed: input columns + ``GEOCODE_COLUMNS`` +
        ``geocode_unit_code``, EPSG:4326 point geometry.
    rejected : pandas.DataFrame
        ``REJECTED_COLUMNS`` rows with reason ``geocode_failed``.
    """
    frame = df.reset_index(drop=True)
    n = len(frame)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    precision = np.full(n, "", dtype=object)
    unit = np.full(n, "", dtype=object)
    unit_code = np.full(n, "", dtype=object)

    lon_in = pd.to_numeric(frame["lon_in"], errors="coerce").to_numpy(dtype=np.float64)
    lat_in = pd.to_numeric(frame["lat_in"], errors="coerce").to_numpy(dtype=np.float64)
    has_xy = ~(np.isnan(lon_in) | np.isnan(lat_in))
    if has_xy.any():
        crs = frame["crs_in"].fillna("WGS84").replace("", "WGS84").to_numpy(dtype=object)
        lon[has_xy], lat[has_xy] = to_wgs84(lon_in[has_xy], lat_in[has_xy], crs[has_xy])
        precision[has_xy] = "coordinates"

    address = frame["address"].fillna("").astype(str).str.strip()
    to_geocode = ~has_xy & address.ne("").to_numpy()
    if to_geocode.any():
        geocoder = get_geocoder(provider) if isinstance(provider, str) else provider
        found = geocoder.geocode(address[to_geocode])
        missing = [c for c in GEOCODER_OUTPUT_COLUMNS if c not in found]
        if missing or len(found) != int(to_geocode.sum()):
            raise GeocodeError(
                f"Provider '{geocoder.name}' returned {len(found)} rows with columns "
                f"{list(found.columns)}; expected {int(to_geocode.sum())} rows with "
                f"{list(GEOCODER_OUTPUT_COLUMNS)}."
            )
        lon[to_geocode] = found["lon"].to_numpy(dtype=np.float64)
        lat[to_geocode] = found["lat"].to_numpy(dtype=np.float64)
        precision[to_geocode] = found["geocode_precision"].fillna("").to_numpy(dtype=object)
        unit[to_geocode] = found["geocode_unit"].fillna("").to_numpy(dtype=object)
        unit_code[to_geocode] = found["geocode_unit_code"].fillna("").to_numpy(dtype=object)
        logger.info(
            "geocoded %d of %d address-only rows with '%s'",
            int((~np.isnan(lon[to_geocode])).sum()), int(to_geocode.sum()), geocoder.name,
        )

    placed = ~(np.isnan(lon) | np.isnan(lat))
    precision[~placed] = ""
    failed = frame[~placed]
    rejected = pd.DataFrame(
        {
            "row": failed["row"].to_numpy(),
            "uscc": failed["uscc"].to_numpy(dtype=object),
            "name": failed["name"].to_numpy(dtype=object),
            "field": np.full(len(failed), "地址", dtype=object),
            "reason": np.full(len(failed), "geocode_failed", dtype=object),
            "message": np.asarray(
                [_geocode_failed_message(r, a) for r, a in
                 zip(failed["row"], address[~placed], strict=True)],
                dtype=object,
            ),
        },
        columns=list(REJECTED_COLUMNS),
    )

    out = frame[placed].copy()
    out["lon"] = lon[placed]
    out["lat"] = lat[placed]
    out["geocode_precision"] = precision[placed].astype(str)
    out["geocode_unit"] = unit[placed].astype(str)
    out["geocode_unit_code"] = unit_code[placed].astype(str)
    located = gpd.GeoDataFrame(
        out.reset_index(drop=True),
        geometry=gpd.points_from_xy(lon[placed], lat[placed]),
        crs="EPSG:4326",
    )
    assert all(c in located for c in GEOCODE_COLUMNS)
    return located, rejected
