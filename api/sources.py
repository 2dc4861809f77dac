"""Feature collections the API serves: the stored enterprise list and the reference layers.

Enterprises are queried in the store (GeoPackage or PostGIS); reference layers are small
bundled GeoDataFrames from :mod:`layers.registry`, queried in memory with the same
:class:`~api.store.FeatureQuery` semantics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd

from api.store import FeatureQuery, QueryResult, Store
from api.store.base import BOOL_COLUMNS, FID, FLOAT_COLUMNS, INTEGER_COLUMNS
from api.store.frame import query_frame
from geo.errors import GeoError, InvalidQueryError, LayerNotFoundError
from geo.schema import ENFORCEMENT_COLUMNS

__all__ = ["Source", "ENTERPRISES", "list_sources", "get_source"]

log = logging.getLogger(__name__)

ENTERPRISES = "enterprises"


def _json_type(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    return "string"


@dataclass
class Source:
    """One collection: metadata plus how to query it."""

    id: str
    title: str
    description: str
    id_column: str
    properties: dict[str, str] = field(default_factory=dict)  # name -> JSON type
    store: Store | None = None
    frame: gpd.GeoDataFrame | None = None

    def query(self, q: FeatureQuery) -> QueryResult:
        """Matching features, paged."""
        if self.store is not None:
            return self.store.query(q)
        assert self.frame is not None
        return query_frame(self.frame, q)

    def get(self, feature_id: str) -> gpd.GeoDataFrame:
        """The feature with that id (empty frame if none)."""
        if self.store is not None:
            try:
                fid = int(feature_id)
            except ValueError:
                fid = -1
            if not 0 < fid < 2**63:  # fids are positive int64: anything else matches nothing
                return self.store.query(FeatureQuery(limit=0)).features
            return self.store.get(fid)
        assert self.frame is not None
        return self.frame.loc[self.frame[self.id_column].astype(str) == str(feature_id)]

    def extent(self) -> tuple[float, float, float, float] | None:
        """WGS84 bounding box."""
        if self.store is not None:
            return self.store.extent()
        assert self.frame is not None
        if len(self.frame) == 0:
            return None
        b = self.frame.total_bounds
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _enterprise_source(store: Store) -> Source:
    props = {FID: "integer"}
    for c in ENFORCEMENT_COLUMNS:
        props[c] = ("integer" if c in INTEGER_COLUMNS else "number" if c in FLOAT_COLUMNS
                    else "boolean" if c in BOOL_COLUMNS else "string")
    return Source(
        id=ENTERPRISES,
        title="企业执法清单 Enterprises with verdicts",
        description="Classified enterprise registry (latest load) with verdicts and reasons.",
        id_column=FID,
        properties=props,
        store=store,
    )


def _meta(info: Any, key: str, default: str = "") -> str:
    if isinstance(info, dict):
        return str(info.get(key, default) or default)
    return str(getattr(info, key, default) or default)


def _layer_ids() -> list[str]:
    try:
        from layers.registry import list_layers
    except ImportError:  # the registry module is not available in this build
        log.warning("layers.registry is unavailable; serving enterprises only")
        return []
    out = []
    for info in list_layers():
        lid = info if isinstance(info, str) else _meta(info, "id")
        if lid and lid != ENTERPRISES:
            out.append(lid)
    return out


def _layer_source(layer_id: str) -> Source:
    from layers.registry import layer_info, load_layer

    info = layer_info(layer_id)
    gdf = load_layer(layer_id)
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs("EPSG:4326")
    id_column = next((c for c in ("id", "code") if c in gdf.columns), None)
    if id_column is None:
        gdf = gdf.assign(id=[str(i) for i in range(1, len(gdf) + 1)])
        id_column = "id"
    props = {c: _json_type(gdf[c].dtype) for c in gdf.columns if c != gdf.geometry.name}
    zh, en = _meta(info, "title_zh"), _meta(info, "title_en")
    title = " ".join(t for t in (zh, en) if t) or _meta(info, "title", layer_id)
    return Source(
        id=layer_id, title=title,
        description=_meta(info, "description") or _meta(info, "source") or title,
        id_column=id_column, properties=props, frame=gdf,
    )


def list_sources(store: Store) -> list[Source]:
    """Every collection: reference layers, then enterprises."""
    sources = []
    for lid in _layer_ids():
        try:
            sources.append(_layer_source(lid))
        except GeoError as exc:
            log.error("layer %s skipped: %s", lid, exc)
    sources.append(_enterprise_source(store))
    return sources


def get_source(store: Store, collection_id: str) -> Source:
    """The collection with that id.

    Raises
    ------
    LayerNotFoundError
        Naming the known collections.
    """
    if collection_id == ENTERPRISES:
        return _enterprise_source(store)
    ids = _layer_ids()
    if collection_id not in ids:
        raise LayerNotFoundError(collection_id, [*ids, ENTERPRISES])
    return _layer_source(collection_id)


def check_property(source: Source, name: str) -> None:
    """Raise :class:`InvalidQueryError` if ``name`` is no property of ``source``."""
    if name not in source.properties:
        raise InvalidQueryError(
            f"{name}: unknown query parameter; expected bbox, limit, offset, f, filter, "
            f"filter-lang or a property of '{source.id}' ({', '.join(source.properties)})."
        )
