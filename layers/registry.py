"""The layer registry: metadata from ``layers/data/layers.toml`` and the bundled geometries.

Each layer has a stable id (``cities``, ``districts``, ``lianjiang``, ``maozhou``, ``shima``,
``danshui``, ``guangfo``, ``parks``, ``enterprises``), a kind, titles, a style and popup
fields for the web map, and provenance including ``accuracy_m``, the positional uncertainty
:mod:`geo.classify` uses to flag enterprises near a boundary.

Geometry files are read once with pyogrio and cached; every call returns a copy, so callers
may modify what they get.

Versions (:mod:`layers.versions`): the geometry and provenance of a layer are those of its
**active version** -- the bundled file unless an imported version was activated. Every
public function first compares :func:`layers.versions.state_token` with the one its caches
were built under and drops them when the versions manifest changed (a switch made by
another process included), so classification, the map and the collections follow a switch
without a restart. :func:`active_versions` says which version of every layer is in use, for
results to record.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Literal

import geopandas as gpd
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo.errors import LayerNotFoundError, ReferenceDataError
from layers import versions
from layers.catalog import data_path, read_data_toml
from layers.versions import BUNDLED, LayerVersion

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
    version: str | None = Field(
        None, description="active version (bundled, v1, ...); None for run-time layers"
    )


#: Style and popup of a layer created by an import under a new id, by kind.
_NEW_STYLE: dict[str, LayerStyle] = {
    "basin": LayerStyle(color="#0570b0", fillColor="#74a9cf", weight=2.0, fillOpacity=0.25),
    "region": LayerStyle(color="#ce1256", fillColor="#df65b0", weight=2.0, fillOpacity=0.2,
                         dashArray="6 4"),
    "park": LayerStyle(color="#8c510a", fillColor="#f6e8c3", weight=2.0, fillOpacity=0.5),
    "district": LayerStyle(color="#888888", fillColor="#ffffff", weight=0.8, fillOpacity=0.0),
}

_state: tuple[str, int, int] | None = None


def _sync() -> None:
    """Drop the caches that depend on active versions when the manifest changed."""
    global _state
    token = versions.state_token()
    if token != _state:
        _registry.cache_clear()
        _shared_group.cache_clear()
        _state = token


@cache
def _toml_registry() -> dict[str, LayerInfo]:
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


def bundled_layer_ids() -> list[str]:
    """Ids of the layers with bundled geometry (``layers.toml`` entries with a file)."""
    return [i.id for i in _toml_registry().values() if i.file is not None]


def _provenance_of(rec: LayerVersion) -> Provenance:
    return Provenance(
        source=rec.source, method=rec.method, accuracy_m=rec.accuracy_m,
        date=rec.date or rec.created_at[:10], licence=rec.licence,
        attribution=rec.attribution or rec.source,
    )


@cache
def _registry() -> dict[str, LayerInfo]:
    """``layers.toml`` with each layer's active version (and provenance) applied."""
    manifest = versions.read_manifest()
    out: dict[str, LayerInfo] = {}
    for lid, info in _toml_registry().items():
        if info.file is None:
            out[lid] = info
            continue
        vid = manifest.active.get(lid, BUNDLED)
        if vid == BUNDLED:
            out[lid] = info.model_copy(update={"version": BUNDLED})
        else:
            rec = versions.get_version(lid, vid)
            out[lid] = info.model_copy(update={"version": vid, "provenance": _provenance_of(rec)})
    for new in manifest.new_layers:  # imported under a new id: listed once activated
        vid = manifest.active.get(new.id)
        if vid is None or new.id in out:
            continue
        rec = versions.get_version(new.id, vid)
        out[new.id] = LayerInfo(
            id=new.id, kind=new.kind, title_zh=new.title_zh, title_en=new.title_en,  # type: ignore[arg-type]
            file=rec.file, feature_id=None, geometry_type="MultiPolygon",
            style=_NEW_STYLE[new.kind],
            popup_fields=[PopupField(field="name_zh", label_zh="名称", label_en="Name")],
            provenance=_provenance_of(rec), version=vid,
        )
    return out


def list_layers() -> list[LayerInfo]:
    """All registered layers with their active version and that version's provenance.

    ``layers.toml`` order (including ``enterprises``), then the layers created by imports.
    """
    _sync()
    return list(_registry().values())


def layer_info(layer_id: str) -> LayerInfo:
    """Metadata of one layer.

    Raises
    ------
    LayerNotFoundError
        If no layer has that id; the message lists the known ids.
    """
    _sync()
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


@cache
def _read_version(path: str, sha256: str) -> gpd.GeoDataFrame:
    """An imported version's GeoPackage (immutable: cached by path and fingerprint)."""
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several types for a broken file
        raise ReferenceDataError(f"Cannot read layer version {path}: {exc}") from exc
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        raise ReferenceDataError(f"{path} must be in EPSG:4326 (WGS84), found {gdf.crs}.")
    return gdf


def load_layer(layer_id: str) -> gpd.GeoDataFrame:
    """Geometries of a layer's active version, EPSG:4326 (a copy of a cached read).

    For basin and region ids the single feature ``feature_id`` of the shared file is
    returned. An imported version is read from its GeoPackage (full resolution: display
    simplification happens only in the map).

    Raises
    ------
    LayerNotFoundError
        If no layer has that id.
    ReferenceDataError
        If the layer has no file (``enterprises``) or the file is missing or malformed.
    """
    info = layer_info(layer_id)
    if info.version not in (None, BUNDLED):
        rec = versions.get_version(layer_id, info.version)
        return _read_version(str(versions.version_path(rec)), rec.sha256).copy()
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


def shared_group(kind: LayerKind) -> gpd.GeoDataFrame:
    """:func:`load_group` without the copy: one cached frame per kind, for hot paths.

    Callers must not modify it (``geo.classify`` only reads it). A new frame object is
    returned after a version switch; ``attrs["layer_versions"]`` lists the
    ``layer@version`` labels it is made of.
    """
    _sync()
    return _shared_group(kind)


@cache
def _shared_group(kind: LayerKind) -> gpd.GeoDataFrame:
    infos = [i for i in list_layers() if i.kind == kind and i.file is not None]
    if not infos:
        kinds = sorted({i.kind for i in list_layers() if i.file is not None})
        raise LayerNotFoundError(f"kind={kind}", kinds)
    frames = [load_layer(i.id) for i in infos]
    if len(frames) == 1:
        out = frames[0]
    else:
        out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=_WGS84)
    out.attrs["layer_versions"] = [f"{i.id}@{i.version}" for i in infos]
    return out


def active_versions() -> dict[str, LayerVersion]:
    """The version of every layer with geometry that classification uses now.

    Returns
    -------
    Layer id -> :class:`layers.versions.LayerVersion` (``version``, content fingerprint
    ``sha256``, source, licence, accuracy, who and when), in :func:`list_layers` order.
    Results record this (e.g. ``{k: v.label for k, v in active_versions().items()}``) to
    state which boundary versions they were computed with.
    """
    out: dict[str, LayerVersion] = {}
    for info in list_layers():
        if info.version is None:
            continue
        if info.version == BUNDLED:
            out[info.id] = _bundled_record(info.id)
        else:
            out[info.id] = versions.get_version(info.id, info.version)
    return out


@cache
def _bundled_record(layer_id: str) -> LayerVersion:
    from layers.build._common import area_km2

    info = _toml_registry()[layer_id]
    frame = load_bundled(layer_id)
    geoms = frame.geometry.to_numpy()
    prov = info.provenance
    return LayerVersion(
        layer_id=layer_id, version=BUNDLED, kind=info.kind, file=None,
        sha256=versions.content_sha256(frame), feature_count=len(frame),
        area_km2=round(float(area_km2(geoms).sum()), 3),
        vertices=int(shapely.get_num_coordinates(geoms).sum()),
        source=prov.source, licence=prov.licence, accuracy_m=prov.accuracy_m,
        method=prov.method, attribution=prov.attribution, date=prov.date,
        created_by="BasinWatch (bundled with the package)", created_at=prov.date,
    )


def load_bundled(layer_id: str) -> gpd.GeoDataFrame:
    """The bundled geometry of a layer, whatever version is active (a copy).

    Raises
    ------
    LayerNotFoundError
        If the layer has no bundled geometry.
    """
    info = _toml_registry().get(layer_id)
    if info is None or info.file is None:
        raise LayerNotFoundError(layer_id, bundled_layer_ids())
    gdf = _read(info.file)
    if info.feature_id is not None:
        gdf = gdf[gdf["id"] == info.feature_id]
    return gdf.reset_index(drop=True).copy()


@cache
def province_bounds() -> tuple[float, float, float, float]:
    """``(lon_min, lat_min, lon_max, lat_max)`` of Guangdong from the cities layer."""
    minx, miny, maxx, maxy = (float(v) for v in load_layer("cities").total_bounds)
    return minx, miny, maxx, maxy
