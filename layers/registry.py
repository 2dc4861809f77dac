"""The layer registry: metadata from ``layers/data/layers.toml`` and the bundled geometries.

Each layer has a stable id (``cities``, ``districts``, ``lianjiang``, ``maozhou``, ``shima``,
``danshui``, ``guangfo``, ``parks``, ``enterprises``), a kind, titles, a style and popup
fields for the web map, and provenance including ``accuracy_m``, the positional uncertainty
:mod:`geo.classify` uses to flag enterprises near a boundary.

Geometry files are read once with pyogrio and cached; every call returns a copy, so callers
may modify what they get.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Literal

import geopandas as gpd
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo.errors import LayerNotFoundError, ReferenceDataError
from layers.catalog import data_path, read_data_toml

__all__ = [
    "LayerKind",
    "LayerStyle",
    "PopupField",
    "Provenance",
    "LayerInfo",
    "list_layers",
    "layer_info",
    "load_layer",
    "load_group",
    "shared_group",
    "province_bounds",
]

logger = logging.getLogger(__name__)

LayerKind = Literal["city", "district", "basin", "region", "park", "enterprise"]
_WGS84 = "EPSG:4326"


class LayerStyle(BaseModel):
    """Leaflet path style of a layer (folium ``style_function`` keys)."""

    model_config = ConfigDict(extra="forbid")

    color: str
    fillColor: str  # noqa: N815 - Leaflet's key
    weight: float = 1.0
    fillOpacity: float = Field(0.2, ge=0.0, le=1.0)  # noqa: N815 - Leaflet's key
    dashArray: str | None = None  # noqa: N815 - Leaflet's key


class PopupField(BaseModel):
    """A property shown in the map popup, with its Chinese and English labels."""

    model_config = ConfigDict(extra="forbid")

    field: str
    label_zh: str
    label_en: str


class Provenance(BaseModel):
    """Where a layer comes from and how far its boundaries can be trusted."""

    model_config = ConfigDict(extra="forbid")

    source: str
    method: str
    accuracy_m: float = Field(ge=0.0)
    date: str
    licence: str
    attribution: str


class LayerInfo(BaseModel):
    """One ``[[layer]]`` entry of ``layers.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: LayerKind
    title_zh: str
    title_en: str
    file: str | None = None
    feature_id: str | None = None
    geometry_type: str
    style: LayerStyle
    popup_fields: list[PopupField]
    provenance: Provenance


@cache
def _registry() -> dict[str, LayerInfo]:
    raw = read_data_toml("layers.toml")
    try:
        infos = [LayerInfo.model_validate(item) for item in raw["layer"]]
    except (KeyError, ValidationError) as exc:
        raise ReferenceDataError(f"layers.toml is malformed: {exc}") from exc
    out: dict[str, LayerInfo] = {}
    for info in infos:
        if info.id in out:
            raise ReferenceDataError(f"layers.toml lists layer id '{info.id}' twice.")
        out[info.id] = info
    return out


def list_layers() -> list[LayerInfo]:
    """All registered layers, in ``layers.toml`` order (including ``enterprises``)."""
    return list(_registry().values())


def layer_info(layer_id: str) -> LayerInfo:
    """Metadata of one layer.

    Raises
    ------
    LayerNotFoundError
        If no layer has that id; the message lists the known ids.
    """
    reg = _registry()
    try:
        return reg[layer_id]
    except KeyError:
        raise LayerNotFoundError(layer_id, list(reg)) from None


@cache
def _read(name: str) -> gpd.GeoDataFrame:
    path = data_path(name)
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several types for a broken file
        raise ReferenceDataError(f"Cannot read reference layer {path}: {exc}") from exc
    crs = gdf.crs
    if crs is None or not (crs.to_epsg() == 4326 or crs.equals("OGC:CRS84")):
        raise ReferenceDataError(f"{path} must be in EPSG:4326 (WGS84), found {crs}.")
    gdf = gdf.set_crs(_WGS84, allow_override=True)  # CRS84 and 4326 differ in axis order only
    logger.debug("read %s: %d features", path, len(gdf))
    return gdf


def load_layer(layer_id: str) -> gpd.GeoDataFrame:
    """Geometries of a layer as a GeoDataFrame in EPSG:4326 (a copy of a cached read).

    For basin and region ids the single feature ``feature_id`` of the shared file is
    returned.

    Raises
    ------
    LayerNotFoundError
        If no layer has that id.
    ReferenceDataError
        If the layer has no file (``enterprises``) or the file is missing or malformed.
    """
    info = layer_info(layer_id)
    if info.file is None:
        raise ReferenceDataError(
            f"Layer '{layer_id}' has no bundled file: it is built at run time "
            "(classify a registry to get it)."
        )
    gdf = _read(info.file)
    if info.feature_id is not None:
        if "id" not in gdf.columns:
            raise ReferenceDataError(f"{info.file} has no 'id' column for layer '{layer_id}'.")
        gdf = gdf[gdf["id"] == info.feature_id]
        if gdf.empty:
            raise ReferenceDataError(
                f"{info.file} has no feature with id '{info.feature_id}' (layer '{layer_id}')."
            )
    return gdf.reset_index(drop=True).copy()


def load_group(kind: LayerKind) -> gpd.GeoDataFrame:
    """All features of the layers of one kind, e.g. ``load_group("basin")`` -> 4 basins.

    Basin, region and park frames carry an ``id`` column; district frames ``code``,
    ``name_zh``, ``city_code``, ``city_zh``; city frames ``code``, ``name_zh``.

    Raises
    ------
    LayerNotFoundError
        If no layer with a file has that kind.
    """
    return shared_group(kind).copy()


@cache
def shared_group(kind: LayerKind) -> gpd.GeoDataFrame:
    """:func:`load_group` without the copy: one cached frame per kind, for hot paths.

    Callers must not modify it (``geo.classify`` only reads it).
    """
    ids = [i.id for i in list_layers() if i.kind == kind and i.file is not None]
    if not ids:
        kinds = sorted({i.kind for i in list_layers() if i.file is not None})
        raise LayerNotFoundError(f"kind={kind}", kinds)
    frames = [load_layer(i) for i in ids]
    if len(frames) == 1:
        return frames[0]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=_WGS84)


@cache
def province_bounds() -> tuple[float, float, float, float]:
    """``(lon_min, lat_min, lon_max, lat_max)`` of Guangdong from the cities layer."""
    minx, miny, maxx, maxy = (float(v) for v in load_layer("cities").total_bounds)
    return minx, miny, maxx, maxy
