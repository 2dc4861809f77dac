"""The storage interface every provider implements, and the value types it exchanges.

A store holds the current enterprise list (``ENFORCEMENT_COLUMNS`` of :mod:`geo.schema`,
EPSG:4326 points, plus an integer feature id ``fid``) and the history of loads. Reference
layers are bundled data and are not stored (see :mod:`layers.registry`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from api.store.geojson import FeaturePage, json_values, point_features_from_arrays
from geo.errors import InvalidQueryError, RegistryError
from geo.schema import ENFORCEMENT_COLUMNS

__all__ = [
    "FID",
    "GEOMETRY",
    "INTEGER_COLUMNS",
    "FLOAT_COLUMNS",
    "BOOL_COLUMNS",
    "TEXT_COLUMNS",
    "FeatureQuery",
    "QueryResult",
    "LoadRecord",
    "Store",
    "prepare_enterprises",
    "check_columns",
    "POINT_COLUMNS",
    "AuditEntry",
    "CancelHook",
    "parse_bool",
    "bbox_boxes",
]

log = logging.getLogger(__name__)

#: Feature id column (1-based, assigned at load, stable within one load).
FID = "fid"
#: Geometry column name in both providers.
GEOMETRY = "geometry"
#: Columns of :meth:`Store.points` (the lean path of the web map).
POINT_COLUMNS: tuple[str, ...] = ("fid", "lon", "lat", "verdict")
INTEGER_COLUMNS: tuple[str, ...] = ("row", "unit_count")
FLOAT_COLUMNS: tuple[str, ...] = ("lon", "lat")
BOOL_COLUMNS: tuple[str, ...] = ("needs_review",)
TEXT_COLUMNS: tuple[str, ...] = tuple(
    c for c in ENFORCEMENT_COLUMNS if c not in INTEGER_COLUMNS + FLOAT_COLUMNS + BOOL_COLUMNS
)


@dataclass(frozen=True)
class FeatureQuery:
    """A provider-neutral query over the enterprise list.

    Attributes
    ----------
    bbox
        ``(minx, miny, maxx, maxy)`` in WGS84 degrees; features intersecting it.
    properties
        Column -> accepted values (OR within a column, AND across columns).
    cql
        A parsed CQL2 AST (``pygeofilter.ast.Node``) or None.
    within
        A WGS84 (multi)polygon; features intersecting it.
    near
        ``(lon, lat, radius_m)``: features within ``radius_m`` metres (geodesic, WGS84
        ellipsoid) of the point.
    limit, offset
        Page of the result, ordered by ``fid``; ``limit=None`` returns all.
    """

    bbox: tuple[float, float, float, float] | None = None
    properties: Mapping[str, Sequence[str]] = field(default_factory=dict)
    cql: Any = None
    within: BaseGeometry | None = None
    near: tuple[float, float, float] | None = None
    limit: int | None = None
    offset: int = 0

    def unpaged(self) -> FeatureQuery:
        """The same query without limit and offset."""
        return FeatureQuery(
            bbox=self.bbox, properties=self.properties, cql=self.cql,
            within=self.within, near=self.near,
        )


@dataclass
class QueryResult:
    """One page of matching features and the total number matched."""

    features: gpd.GeoDataFrame
    number_matched: int


@dataclass(frozen=True)
class LoadRecord:
    """One version of the enterprise list."""

    load_id: int
    loaded_at: datetime
    loaded_by: str
    source_name: str
    source_sha256: str
    accepted: int
    rejected: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "load_id": self.load_id,
            "loaded_at": self.loaded_at.isoformat(),
            "loaded_by": self.loaded_by,
            "source_name": self.source_name,
            "source_sha256": self.source_sha256,
            "accepted": self.accepted,
            "rejected": self.rejected,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One write (or refused write attempt) in the audit log."""

    actor: str
    role: str
    action: str
    target: str
    outcome: str
    client: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    entry_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.entry_id,
            "at": self.at.isoformat() if self.at else None,
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "client": self.client,
            "detail": dict(self.detail),
        }


class CancelHook(Protocol):
    """What a store needs of a request's cancellation token."""

    def add_callback(self, fn: Callable[[], None]) -> object:
        """Call ``fn`` (from another thread) when the request is cancelled."""

    def remove_callback(self, handle: object) -> None:
        """Forget a callback registered by :meth:`add_callback`."""


def prepare_enterprises(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Check and normalise an enterprise frame before it is stored.

    Returns a copy with exactly ``fid`` + ``ENFORCEMENT_COLUMNS`` + geometry, typed as the
    stores expect (text columns without nulls), EPSG:4326.

    Raises
    ------
    RegistryError
        If a column is missing, the CRS is not EPSG:4326 or a geometry is not a point.
    """
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.crs is None:
        raise RegistryError("Enterprises must be a GeoDataFrame with crs EPSG:4326.")
    if gdf.crs.to_epsg() != 4326:
        raise RegistryError(
            f"Enterprises must be in EPSG:4326, got {gdf.crs}; call .to_crs('EPSG:4326')."
        )
    missing = [c for c in ENFORCEMENT_COLUMNS if c not in gdf.columns]
    if missing:
        raise RegistryError(f"Enterprise frame lacks columns {', '.join(missing)}.")
    geom = gdf.geometry
    bad = ~(geom.geom_type.eq("Point")) | geom.is_empty
    if bad.any():
        first = gdf.loc[bad].iloc[0]
        raise RegistryError(
            f"Enterprise geometry must be a non-empty point; row {first['row']} is "
            f"{geom[bad].iloc[0].geom_type if geom[bad].iloc[0] is not None else 'missing'}."
        )
    out = pd.DataFrame({FID: range(1, len(gdf) + 1)}, index=gdf.index)
    for col in ENFORCEMENT_COLUMNS:
        s = gdf[col]
        if col in INTEGER_COLUMNS:
            out[col] = pd.to_numeric(s, errors="coerce").astype("Int64")
        elif col in FLOAT_COLUMNS:
            out[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        elif col in BOOL_COLUMNS:
            out[col] = s.fillna(False).astype(bool)
        else:
            out[col] = s.astype("string").fillna("").astype(object)
    res = gpd.GeoDataFrame(out, geometry=geom.values, crs="EPSG:4326")
    res = res.rename_geometry(GEOMETRY) if res.geometry.name != GEOMETRY else res
    return res.reset_index(drop=True)


def _frame_features(gdf: gpd.GeoDataFrame, columns: Sequence[str] | None,
                    ) -> list[dict[str, Any]]:
    """GeoJSON point features of a store frame (``fid`` as id)."""
    geoms = np.asarray(gdf.geometry.values)
    names = [c for c in gdf.columns if c != gdf.geometry.name] if columns is None else columns
    return point_features_from_arrays(
        gdf[FID].tolist(), shapely.get_x(geoms).tolist(), shapely.get_y(geoms).tolist(),
        names, [json_values(gdf[c]).tolist() for c in names])


def parse_bool(value: object, column: str) -> bool:
    """``true``/``1`` or ``false``/``0`` (any case) as a bool; anything else is a 400.

    Raises
    ------
    InvalidQueryError
        Naming the column and the accepted values.
    """
    low = str(value).strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise InvalidQueryError(f"{column}: expected true or false, got '{str(value)[:40]}'.")


def bbox_boxes(
    bbox: tuple[float, float, float, float],
) -> list[tuple[float, float, float, float]]:
    """One box, or two when ``minx > maxx`` (the box crosses the antimeridian)."""
    minx, miny, maxx, maxy = bbox
    if minx <= maxx:
        return [bbox]
    return [(minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy)]


def check_columns(columns: Sequence[str], *, param: str) -> None:
    """Raise :class:`InvalidQueryError` naming ``param`` if a column is not queryable."""
    known = set(ENFORCEMENT_COLUMNS) | {FID}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise InvalidQueryError(
            f"{param}: unknown property {', '.join(unknown)}; expected one of "
            f"{', '.join(ENFORCEMENT_COLUMNS)}."
        )



def version_of_loads(loads: Sequence[LoadRecord]) -> tuple[Any, ...]:
    """The data version named by a load history (newest first): the newest load's id,
    time, source digest and accepted count; ``(None,)`` before the first load."""
    if not loads:
        return (None,)
    rec = loads[0]
    return (rec.load_id, rec.loaded_at.isoformat(), rec.source_sha256, rec.accepted)

class Store(ABC):
    """Where the enterprise list and its load history live."""

    #: Short provider name shown by the API (``gpkg`` or ``postgis``).
    provider: str = ""
    #: Time limit of one read statement (PostGIS), seconds; None = the server's default.
    query_timeout_s: float | None = None

    @abstractmethod
    def init(self) -> None:
        """Create or migrate the schema; idempotent."""

    @abstractmethod
    def load_enterprises(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        loaded_by: str,
        source_name: str,
        source_sha256: str,
        rejected: int = 0,
    ) -> LoadRecord:
        """Replace the enterprise list atomically and record the load.

        On any failure the previous list and history stay intact.
        """

    @abstractmethod
    def query(self, q: FeatureQuery) -> QueryResult:
        """Features matching ``q`` (ordered by fid) and the number matched."""

    @abstractmethod
    def get(self, fid: int) -> gpd.GeoDataFrame:
        """The feature with that fid (an empty frame if there is none)."""

    @abstractmethod
    def counts(self, q: FeatureQuery, column: str) -> dict[str, int]:
        """Number of matching features per value of ``column``."""

    def data_version(self) -> tuple[Any, ...]:
        """What changes whenever the stored list does (caches are keyed by it): here the
        newest load record; a store that also rewrites the list in place extends it."""
        return version_of_loads(self.loads())

    def data_version_nowait(self) -> tuple[Any, ...] | None:
        """:meth:`data_version` when it is known without I/O or waiting for a lock (the
        lean tile path, :mod:`api.tilefast`, asks on the event loop), else None (here:
        always None; the embedded store answers from its cached read)."""
        return None

    @abstractmethod
    def loads(self) -> list[LoadRecord]:
        """Load history, newest first."""

    @abstractmethod
    def extent(self) -> tuple[float, float, float, float] | None:
        """Bounding box of the current list, or None when empty."""

    def geojson_page(self, q: FeatureQuery, columns: Sequence[str] | None = None,
                     ) -> FeaturePage:
        """The page of ``q`` as GeoJSON features (CRS84) with only ``columns`` as properties
        (all when None): the fast path of ``/collections/enterprises/items``.

        Providers override it to skip the GeoDataFrame; this default goes through
        :meth:`query`.
        """
        res = self.query(q)
        return FeaturePage(_frame_features(res.features, columns), len(res.features),
                           res.number_matched)

    def geojson_feature(self, fid: int, columns: Sequence[str] | None = None,
                        ) -> dict[str, Any] | None:
        """The feature with that fid as a GeoJSON feature dict (None if there is none)."""
        feats = _frame_features(self.get(fid).iloc[:1], columns)
        return feats[0] if feats else None

    def counts_many(self, q: FeatureQuery, columns: Sequence[str]) -> dict[str, dict[str, int]]:
        """:meth:`counts` for several columns at once (providers answer in one pass)."""
        return {c: self.counts(q, c) for c in columns}

    def points(self, q: FeatureQuery) -> pd.DataFrame:
        """Only ``fid``, ``lon``, ``lat`` (of the geometry) and ``verdict`` of the matching
        features, ordered by fid, paging ignored: the lean path of map aggregation."""
        feats = self.query(q.unpaged()).features
        geom = feats.geometry
        return pd.DataFrame({
            FID: feats[FID].to_numpy(dtype="int64"),
            "lon": geom.x.to_numpy(dtype="float64") if len(feats) else [],
            "lat": geom.y.to_numpy(dtype="float64") if len(feats) else [],
            "verdict": feats["verdict"].astype(str).to_numpy(dtype=object),
        }, columns=list(POINT_COLUMNS))

    # -- consistency: one version per request ------------------------------------------------
    #: True when :meth:`release` of a pinned view does blocking I/O (run it in a thread).
    release_blocks: bool = False

    def pinned(self, *, cancel: CancelHook | None = None) -> Store:
        """A read view of the current version: every read through it (queries, counts,
        points, history) answers from that version even if a load commits meanwhile.

        Creating the view does no I/O. Writes through it go to the store itself, and reads
        after a write through the view see that write. Call :meth:`release` when done. ``cancel`` lets a departed client cancel a running
        statement.
        """
        return self

    def release(self) -> None:  # noqa: B027 - optional hook
        """End a view made by :meth:`pinned` (no-op on the store itself)."""

    def configure(self, *, query_timeout_s: float | None = None) -> None:
        """Apply service limits (PostGIS: ``statement_timeout`` of every read)."""
        self.query_timeout_s = query_timeout_s

    # -- audit log ---------------------------------------------------------------------------
    def record_audit(self, entry: AuditEntry) -> None:
        """Append one entry to the audit log (see :func:`api.audit.record_write`)."""
        raise NotImplementedError

    def audit_entries(self, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """Audit log, newest first."""
        raise NotImplementedError

    def warm(self) -> None:  # noqa: B027 - optional hook
        """Read the current list and build indexes now, so no request pays for it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
