"""Import a boundary file as a new, validated version of a layer (not yet active).

``import_layer`` = read (:mod:`layers.imports`) -> shape the features for the layer kind ->
validate (:mod:`layers.validate`) -> store as the next version (:mod:`layers.versions`).
Nothing is stored when a check fails; activation is a separate, explicit step (after the
impact dry run of :mod:`layers.impact`).

Per kind:

* ``basin`` / ``region`` -- all features are dissolved into one MultiPolygon with
  ``id = layer id``; names, the standard and the published area are kept from the
  layer's bundled feature unless given.
* ``park`` -- one feature per park (``id``/``name_zh`` from the file, ``--field``
  mappings, or generated); with ``feature=`` the file is one park that replaces (or is
  added to) that id in the active version, the other parks kept.
* ``district`` -- one feature per county-level unit with ``code``, ``name_zh``,
  ``city_code``, ``city_zh`` (mapped from common Chinese/GIS column names or ``--field``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.errors import GeoError
from layers import registry, versions
from layers.build._common import area_km2
from layers.imports import BoundaryFileError, ReadResult, read_boundary_file
from layers.validate import ValidationReport, validate_layer
from layers.versions import BUNDLED, LayerVersion, NewLayer

__all__ = ["ImportOutcome", "ImportRejectedError", "import_layer", "candidate_frame",
           "FIELD_ALIASES", "NOT_STATED"]

logger = logging.getLogger(__name__)

NOT_STATED: Final = "not stated"
#: Target column -> column names recognised in a user's file (case-insensitive).
FIELD_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "id": ("id", "park_id", "编号", "code_id"),
    "name_zh": ("name_zh", "name", "名称", "园区名称", "xzqmc", "mc", "name_cn"),
    "name_en": ("name_en", "ename", "英文名"),
    "code": ("code", "adcode", "pac", "xzqdm", "行政区划代码", "区划代码", "dm"),
    "city_code": ("city_code", "citycode", "市代码"),
    "city_zh": ("city_zh", "city", "所属地级市", "地级市"),
}


class ImportRejectedError(GeoError, ValueError):
    """Validation found errors: nothing was stored. ``outcome`` carries the report."""

    http_status = 422

    def __init__(self, outcome: ImportOutcome) -> None:
        self.outcome = outcome
        msgs = "; ".join(c.message for c in outcome.report.errors)
        super().__init__(f"{outcome.read.source_name}: not imported: {msgs}")


@dataclass
class ImportOutcome:
    """What an import read, found and stored."""

    read: ReadResult
    report: ValidationReport
    version: LayerVersion | None
    frame: gpd.GeoDataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the geometries)."""
        return {
            "layer_id": self.report.layer_id,
            "kind": self.report.kind,
            "format": self.read.format,
            "source_name": self.read.source_name,
            "source_crs": self.read.source_crs,
            "transformation": self.read.transformation,
            "encoding": self.read.encoding,
            "notes": self.read.notes,
            "report": self.report.to_dict(),
            "version": self.version.model_dump() if self.version else None,
        }


# --------------------------------------------------------------------------- shaping
def _column(frame: pd.DataFrame, target: str, field_map: dict[str, str]) -> str | None:
    if target in field_map:
        col = field_map[target]
        if col not in frame.columns:
            raise BoundaryFileError(
                f"--field {target}={col}: the file has no column '{col}'; it has "
                f"{', '.join(map(str, frame.columns))}."
            )
        return col
    lower = {str(c).strip().lower(): c for c in frame.columns}
    return next((lower[a] for a in FIELD_ALIASES.get(target, ()) if a in lower), None)


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """GeometryCollections reduced to their polygonal parts (others left to validation)."""
    out = geoms.copy()
    for i in np.flatnonzero(shapely.get_type_id(geoms) == 7):
        parts = shapely.get_parts(geoms[i])
        keep = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        if len(keep):
            out[i] = shapely.union_all(keep)
    return out


def _multi(geom: Any) -> Any:
    if shapely.get_type_id(geom) == 3:
        return shapely.MultiPolygon([geom])
    return geom


def _active_frame(layer_id: str) -> gpd.GeoDataFrame | None:
    try:
        info = registry.layer_info(layer_id)
    except LookupError:
        return None
    return registry.load_layer(layer_id) if info.version is not None else None


def _bundled_props(layer_id: str) -> dict[str, Any]:
    try:
        frame = registry.load_bundled(layer_id)
    except LookupError:
        return {}
    if len(frame) != 1:
        return {}
    row = frame.drop(columns=frame.geometry.name).iloc[0].to_dict()
    return {k: v for k, v in row.items() if k not in ("area_km2", "districts")}


def _shape_single(raw: gpd.GeoDataFrame, layer_id: str, kind: str, names: dict[str, Any]
                  ) -> gpd.GeoDataFrame:
    geom = _multi(shapely.union_all(raw.geometry.to_numpy()))
    props = _bundled_props(layer_id)
    props.update({k: v for k, v in names.items() if v not in (None, "")})
    props["id"] = layer_id
    props.setdefault("name_zh", layer_id)
    props.setdefault("name_en", layer_id)
    props["area_km2"] = round(float(area_km2(np.array([geom], dtype=object))[0]), 1)
    if kind == "basin" and "published_area_km2" in props:
        props["published_area_km2"] = float(props["published_area_km2"])
    return gpd.GeoDataFrame([props], geometry=[geom], crs="EPSG:4326")


def _district_names(geoms: np.ndarray) -> list[str]:
    districts = registry.shared_group("district")
    pts = shapely.point_on_surface(geoms)
    tree = shapely.STRtree(districts.geometry.to_numpy())
    src, dst = tree.query(pts, predicate="within")
    names = [""] * len(geoms)
    for s, d in zip(src, dst, strict=True):
        names[int(s)] = str(districts["name_zh"].iloc[int(d)])
    return names


def _shape_parks(raw: gpd.GeoDataFrame, layer_id: str, field_map: dict[str, str],
                 feature: str | None, accuracy_m: float, names: dict[str, Any]
                 ) -> gpd.GeoDataFrame:
    geoms = raw.geometry.to_numpy()
    if feature is not None:
        versions.check_layer_id(feature)
        geom = _multi(shapely.union_all(geoms))
        old = _active_frame(layer_id)
        base = {} if old is None or feature not in set(old["id"]) else \
            old[old["id"] == feature].drop(columns=old.geometry.name).iloc[0].to_dict()
        base.update({k: v for k, v in names.items() if v not in (None, "")})
        base.update({"id": feature, "status": "imported", "accuracy_m": accuracy_m})
        base.setdefault("name_zh", feature)
        new = gpd.GeoDataFrame([base], geometry=[geom], crs="EPSG:4326")
        if old is not None:
            new = gpd.GeoDataFrame(pd.concat([old[old["id"] != feature], new],
                                             ignore_index=True), crs="EPSG:4326")
        frame = new
    else:
        id_col = _column(raw, "id", field_map)
        name_col = _column(raw, "name_zh", field_map)
        ids = (raw[id_col].astype(str).str.strip().tolist() if id_col
               else [f"{layer_id}_{i + 1}" for i in range(len(raw))])
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise BoundaryFileError(
                f"park ids repeat: {', '.join(dup)}; each park needs its own id."
            )
        frame = gpd.GeoDataFrame({
            "id": ids,
            "name_zh": raw[name_col].astype(str).tolist() if name_col else ids,
            "status": "imported",
            "accuracy_m": accuracy_m,
        }, geometry=[_multi(g) for g in geoms], crs="EPSG:4326")
    frame["district"] = _district_names(frame.geometry.to_numpy())
    frame["area_km2"] = np.round(area_km2(frame.geometry.to_numpy()), 3)
    return frame


def _shape_districts(raw: gpd.GeoDataFrame, field_map: dict[str, str]) -> gpd.GeoDataFrame:
    code_col = _column(raw, "code", field_map)
    name_col = _column(raw, "name_zh", field_map)
    missing = [t for t, c in (("code", code_col), ("name_zh", name_col)) if c is None]
    if missing:
        raise BoundaryFileError(
            f"district layer: no column for {', '.join(missing)}; expected one of "
            + "; ".join(f"{m}: {', '.join(FIELD_ALIASES[m])}" for m in missing)
            + f" (or --field {missing[0]}=COLUMN); found {', '.join(map(str, raw.columns))}."
        )
    codes = raw[code_col].astype(str).str.strip().str[:6]
    bad = np.flatnonzero(~codes.str.fullmatch(r"44\d{4}").to_numpy())
    if bad.size:
        raise BoundaryFileError(
            f"district layer: column '{code_col}' rows {', '.join(str(i + 1) for i in bad[:10])}"
            " are not 6-digit Guangdong adcodes (44xxxx)."
        )
    city_col = _column(raw, "city_code", field_map)
    city_codes = (raw[city_col].astype(str).str[:6] if city_col
                  else codes.str[:4] + "00")
    cities = registry.load_bundled("cities")
    city_names = dict(zip(cities["code"].astype(str), cities["name_zh"], strict=True))
    czh_col = _column(raw, "city_zh", field_map)
    city_zh = (raw[czh_col].astype(str) if czh_col else city_codes.map(city_names).fillna(""))
    return gpd.GeoDataFrame({
        "code": codes.to_numpy(), "name_zh": raw[name_col].astype(str).to_numpy(),
        "city_code": city_codes.to_numpy(), "city_zh": city_zh.to_numpy(),
    }, geometry=[_multi(g) for g in raw.geometry.to_numpy()], crs="EPSG:4326")


def _others(kind: str, layer_id: str) -> gpd.GeoDataFrame | None:
    """Active features of the same kind outside ``layer_id`` (``id`` + geometry)."""
    frames = []
    for info in registry.list_layers():
        if info.kind != kind or info.id == layer_id or info.version is None:
            continue
        f = registry.load_layer(info.id)
        idc = "id" if "id" in f.columns else "code"
        frames.append(gpd.GeoDataFrame({"id": f[idc].astype(str)}, geometry=f.geometry.values,
                                       crs="EPSG:4326"))
    if not frames:
        return None
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")


def candidate_frame(layer_id: str, version: str) -> gpd.GeoDataFrame:
    """The features of one version of a layer (``bundled`` or an imported one)."""
    if version == BUNDLED:
        return registry.load_bundled(layer_id)
    rec = versions.get_version(layer_id, version)
    return registry._read_version(str(versions.version_path(rec)), rec.sha256).copy()


# --------------------------------------------------------------------------- public
def import_layer(
    path: str | os.PathLike[str],
    *,
    kind: str,
    layer_id: str,
    created_by: str,
    crs: str | None = None,
    towgs84: str | None = None,
    pipeline: str | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    source: str | None = None,
    licence: str | None = None,
    accuracy_m: float | None = None,
    method: str | None = None,
    date: str | None = None,
    repair: bool = False,
    published_area_km2: float | None = None,
    name_zh: str | None = None,
    name_en: str | None = None,
    title_zh: str | None = None,
    title_en: str | None = None,
    feature: str | None = None,
    field_map: dict[str, str] | None = None,
    source_name: str | None = None,
    store: bool = True,
) -> ImportOutcome:
    """Read, shape, validate and store a boundary file as the next version of ``layer_id``.

    Parameters
    ----------
    path
        The boundary file (formats: :mod:`layers.imports`).
    kind
        ``basin``, ``region``, ``park`` or ``district``; must match an existing layer id's kind.
    layer_id
        Layer to version (``shima``), or a new id (then ``title_zh`` names it).
    created_by
        Who imports (recorded).
    crs, towgs84, pipeline, encoding, layer
        Passed to :func:`layers.imports.read_boundary_file`.
    source, licence, accuracy_m, method, date
        Provenance. Missing source/licence are recorded as "not stated" with a warning;
        a missing accuracy keeps the active version's, with a warning.
    repair
        Consent to repair invalid geometries (the report states the area change).
    published_area_km2
        Published area to check against (default: the layer's bundled figure).
    name_zh, name_en
        Feature names (basin/region, or the one park of ``feature``).
    title_zh, title_en
        Layer titles for a new layer id.
    feature
        Park id this file replaces (or adds) inside the active park layer.
    field_map
        Target column -> the file's column (``{"code": "XZQDM"}``).
    source_name
        Name of the uploaded file (API uploads are read from a temp path).
    store
        False validates only (the API's preview); nothing is written.

    Returns
    -------
    ImportOutcome
        The read summary, the validation report and the stored (inactive) version.

    Raises
    ------
    ImportRejectedError
        When a validation check is an error (nothing stored; the outcome is attached).
    BoundaryFileError
        When the file cannot be read, has no CRS, or lacks required columns.
    """
    if kind not in ("basin", "region", "park", "district"):
        raise BoundaryFileError(
            f"--kind: expected basin, region, park or district, got '{kind}'."
        )
    versions.check_layer_id(layer_id)
    field_map = dict(field_map or {})
    existing = None
    try:
        existing = registry.layer_info(layer_id)
    except LookupError:
        pass
    new_meta = [n for n in versions.new_layers() if n.id == layer_id]
    known_kind = existing.kind if existing else (new_meta[0].kind if new_meta else None)
    if known_kind is not None and known_kind != kind:
        raise BoundaryFileError(
            f"--kind {kind}: layer '{layer_id}' is a {known_kind} layer; use --kind {known_kind} "
            "or a new --id."
        )
    if existing is not None and existing.version is None:
        raise BoundaryFileError(f"--id {layer_id}: that layer is built at run time, not imported.")
    read = read_boundary_file(path, crs=crs, towgs84=towgs84, pipeline=pipeline,
                              encoding=encoding, layer=layer, source_name=source_name)
    raw = gpd.GeoDataFrame(read.frame.drop(columns=read.frame.geometry.name),
                           geometry=_polygonal(read.frame.geometry.to_numpy()),
                           crs="EPSG:4326")
    warnings: list[str] = []
    if accuracy_m is None:
        accuracy_m = float(existing.provenance.accuracy_m) if existing else 1000.0
        warnings.append(f"accuracy not stated: {accuracy_m:g} m assumed "
                        f"({'the active version' if existing else 'default'}); "
                        "it sets the review band of classification")
    if not source:
        warnings.append("source not stated")
    if not licence:
        warnings.append("licence not stated: the layer must not be redistributed until it is known")
    published = published_area_km2
    if published is None and kind == "basin":
        published = _bundled_props(layer_id).get("published_area_km2")

    # validate the features as read (validity, repair), then shape them for the kind
    ids = _column(raw, "id", field_map)
    check_frame = raw.assign(id=raw[ids].astype(str)) if ids else raw
    others = _others(kind, layer_id) if kind != "district" else None
    active = _active_frame(layer_id) if existing else None
    if feature is not None and active is not None and kind == "park":
        others_park = active[active["id"] != feature][["id", "geometry"]]
        others = (others_park if others is None else gpd.GeoDataFrame(
            pd.concat([others, others_park], ignore_index=True), crs="EPSG:4326"))
        current = active[active["id"] == feature].geometry.to_numpy()
    else:
        current = active.geometry.to_numpy() if active is not None else None
    current_union = shapely.union_all(current) if current is not None and len(current) else None
    checked, report = validate_layer(
        check_frame, layer_id=layer_id, kind=kind, published_area_km2=published,
        others=others, current=current_union, repair=repair,
    )
    frame = checked
    if report.ok:
        names = {"name_zh": name_zh, "name_en": name_en}
        if kind in ("basin", "region"):
            frame = _shape_single(checked, layer_id, kind, names)
        elif kind == "park":
            frame = _shape_parks(checked, layer_id, field_map, feature, accuracy_m, names)
        else:
            frame = _shape_districts(checked, field_map)
    outcome = ImportOutcome(read=read, report=report, version=None, frame=frame)
    if not report.ok:
        raise ImportRejectedError(outcome)
    if not store:
        return outcome
    new_layer = None
    if existing is None and not new_meta:
        new_layer = NewLayer(id=layer_id, kind=kind, title_zh=title_zh or name_zh or layer_id,
                             title_en=title_en or name_en or layer_id)
    provenance = {
        "source": source or NOT_STATED,
        "licence": licence or NOT_STATED,
        "accuracy_m": float(accuracy_m),
        "method": method or (f"imported from {read.source_name} ({read.format}, "
                             f"{read.source_crs}; {read.transformation})"),
        "attribution": source or "",
        "date": date or "",
        "created_by": created_by,
        "source_file": read.source_name,
        "source_sha256": _sha256(path),
        "source_crs": read.source_crs,
        "transformation": read.transformation,
        "repaired": report.repaired,
        "warnings": warnings + report.warnings,
    }
    outcome.version = versions.add_version(
        frame, layer_id=layer_id, kind=kind, provenance=provenance,
        report=outcome.to_dict(), new_layer=new_layer,
    )
    return outcome


def _sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
