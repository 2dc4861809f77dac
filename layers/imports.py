"""Read a user's boundary file into WGS84, whatever format and coordinate system it has.

Formats (read with pyogrio/GDAL, CSV with pandas so errors can name the row):

* zipped Shapefile (``.zip`` holding one ``.shp`` with ``.shx``/``.dbf`` and normally
  ``.prj``/``.cpg``), or a bare ``.shp`` next to its siblings; attribute tables in GBK/GB18030
  are decoded from the ``.cpg`` or, without one, detected (UTF-8 first, else GB18030);
* GeoPackage (``.gpkg``), GeoJSON (``.geojson``/``.json``), KML and KMZ;
* CSV with a WKT geometry column (``wkt``, ``geometry``, ``geom``, ``the_geom``, ``shape``,
  ``几何``, ``空间信息``), UTF-8 or GB18030.

Coordinate systems: whatever the file declares (``.prj``, the GeoPackage's SRS), or
``crs=`` when it declares none. GeoJSON and KML are WGS84 by their specifications. A file
with no coordinate system and no ``crs=`` is refused with a message asking for ``--crs``.

* WGS84 and CGCS2000 (EPSG:4490, and CGCS2000 Gauss-Krüger zones such as EPSG:4547)
  reach WGS84 through PROJ; CGCS2000 and WGS84 agree to a few centimetres, and PROJ treats
  them as identical (a "ballpark" null transformation), which this module states in the
  report rather than hides.
* Xi'an 1980 and Beijing 1954 (any datum other than WGS84, CGCS2000 or ITRF) need a
  **stated transformation**: ``towgs84="dx,dy,dz[,rx,ry,rz,ds]"`` (Bursa-Wolf,
  position-vector convention, metres/arc-seconds/ppm, from the surveying bureau) or
  ``pipeline="+proj=pipeline ..."`` (source CRS -> WGS84 lon/lat). Without one the file is
  refused: a null shift would be off by up to ~100 m, and EPSG's published Beijing 1954
  transformations cover other areas (e.g. offshore Pearl River basin only).
* KMZ is read by GDAL's LIBKML driver directly; zips are unpacked to a temp directory.
* GCJ-02 and BD-09 (``crs="GCJ02"``/``"BD09"``, with no or a lon/lat ``.prj``) are
  corrected with the project's own conversion (:mod:`geo.crs`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup

from geo import crs as gcrs
from geo.errors import GeoError, UnknownCRSError

__all__ = [
    "FORMATS",
    "BoundaryFileError",
    "MissingCRSError",
    "TransformationRequiredError",
    "ReadResult",
    "read_boundary_file",
    "parse_crs",
]

logger = logging.getLogger(__name__)

#: Suffix -> format name (what the report calls it).
FORMATS: Final = {
    ".zip": "Shapefile (zip)",
    ".shp": "Shapefile",
    ".gpkg": "GeoPackage",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".kml": "KML",
    ".kmz": "KMZ",
    ".csv": "CSV (WKT)",
}
#: Formats whose specification fixes the CRS to WGS84 lon/lat.
_WGS84_BY_SPEC: Final = {"GeoJSON": "RFC 7946", "KML": "OGC KML 2.2", "KMZ": "OGC KML 2.2"}
#: Names of a WKT column in a CSV (case-insensitive).
WKT_COLUMNS: Final = ("wkt", "geometry", "geom", "the_geom", "shape", "几何", "空间信息")
#: Datums PROJ treats as WGS84 within centimetres (a null transformation is correct).
_WGS84_LIKE_DATUMS: Final = (
    "World Geodetic System 1984", "China 2000", "International Terrestrial",
)
_GUANGDONG: Final = (109.6, 20.1, 117.4, 25.6)
_SHP_PARTS: Final = (".shp", ".shx", ".dbf", ".prj", ".cpg")


class BoundaryFileError(GeoError, ValueError):
    """A boundary file cannot be read or placed on the earth; the message says why."""

    http_status = 422


class MissingCRSError(BoundaryFileError):
    """The file declares no coordinate system and none was given."""


class TransformationRequiredError(BoundaryFileError):
    """The datum has no published transformation to WGS84 in Guangdong; one must be stated."""


@dataclass
class ReadResult:
    """A boundary file read into EPSG:4326, with what was done to get there."""

    frame: gpd.GeoDataFrame
    format: str
    source_name: str
    source_crs: str
    transformation: str
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- CRS
def parse_crs(value: str) -> tuple[str, CRS | None]:
    """A user's ``--crs`` as ``(canonical name, CRS)``.

    ``GCJ02``/``BD09`` give ``(name, None)`` (coordinates are lon/lat in that system);
    ``WGS84``/``CGCS2000`` and anything PROJ understands (``EPSG:4547``, ``4547``, WKT, a
    PROJ string) give ``(authority string or name, CRS)``.

    Raises
    ------
    BoundaryFileError
        If the value names no coordinate system.
    """
    text = str(value).strip()
    try:
        name = gcrs.normalise_crs_name(text)
    except UnknownCRSError:
        name = None
    if name in ("GCJ02", "BD09"):
        return name, None
    if name == "WGS84":
        return "EPSG:4326", CRS.from_epsg(4326)
    if name == "CGCS2000":
        return "EPSG:4490", CRS.from_epsg(4490)
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        crs = CRS.from_user_input(text)
    except CRSError:
        raise BoundaryFileError(
            f"--crs: '{value}' is not a coordinate system; expected WGS84, CGCS2000, GCJ02, "
            "BD09 or an EPSG code such as EPSG:4547 (CGCS2000 3-degree Gauss-Kruger 114E) "
            "or EPSG:2383 (Xian 1980 3-degree Gauss-Kruger 114E)."
        ) from None
    return _crs_label(crs), crs


def _crs_label(crs: CRS) -> str:
    auth = crs.to_authority()
    code = f"{auth[0]}:{auth[1]}" if auth else "custom"
    return f"{code} ({crs.name})"


def _datum_name(crs: CRS) -> str:
    geod = crs.geodetic_crs
    return geod.datum.name if geod is not None and geod.datum is not None else ""


def _is_lonlat(crs: CRS) -> bool:
    return bool(crs.is_geographic) and any(d in _datum_name(crs) for d in _WGS84_LIKE_DATUMS)


def _to_wgs84_transformer(
    crs: CRS, bounds: tuple[float, float, float, float], *, towgs84: str | None,
    pipeline: str | None,
) -> tuple[Transformer, str]:
    """The transformer to WGS84 lon/lat and a sentence describing it."""
    if pipeline:
        try:
            tr = Transformer.from_pipeline(pipeline)
        except ProjError as exc:
            raise BoundaryFileError(f"--transform: PROJ cannot use '{pipeline}': {exc}") from None
        return tr, f"stated PROJ pipeline: {pipeline}"
    if towgs84:
        params = [p.strip() for p in towgs84.split(",")]
        if len(params) not in (3, 7) or not all(re.fullmatch(r"[-+]?\d+(\.\d+)?", p)
                                                for p in params):
            raise BoundaryFileError(
                f"--towgs84: expected 3 or 7 numbers 'dx,dy,dz[,rx,ry,rz,ds]' (m, arc-seconds, "
                f"ppm), got '{towgs84}'."
            )
        with warnings.catch_warnings():  # the PROJ string keeps what a tmerc/longlat needs
            warnings.simplefilter("ignore", UserWarning)
            bound = CRS.from_proj4(f"{crs.to_proj4()} +towgs84={','.join(params)}")
        tr = Transformer.from_crs(bound, "EPSG:4326", always_xy=True)
        return tr, (f"stated Helmert (+towgs84={','.join(params)}, position vector) from "
                    f"{_datum_name(crs) or crs.name} to WGS 84")
    datum = _datum_name(crs)
    if any(d in datum for d in _WGS84_LIKE_DATUMS):
        tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        note = ("" if "World Geodetic System 1984" in datum else
                f"; {datum} taken as WGS 84 (they agree within a few cm; PROJ's null "
                "'ballpark' transformation)")
        return tr, f"{tr.description}{note}"
    # another datum (Xi'an 1980, Beijing 1954, ...): a transformation must be stated. EPSG's
    # published ones for these datums cover other regions (e.g. offshore Pearl River basin
    # only), and a bounding-box test cannot tell land from sea: name them, use none.
    group = TransformerGroup(crs, "EPSG:4326", always_xy=True)
    known = [f"'{t.description.split(' + ')[-2] if ' + ' in t.description else t.description}'"
             f" ({t.area_of_use.name if t.area_of_use else 'area unknown'})"
             for t in group.transformers if "ballpark" not in t.description.lower()]
    listed = f" PROJ knows only {'; '.join(known)}." if known else ""
    raise TransformationRequiredError(
        f"The file's coordinate system {_crs_label(crs)} uses the {datum or 'unknown'} datum, "
        "which has no published transformation to WGS 84 for Guangdong's land area; a null "
        f"shift would be wrong by up to ~100 m.{listed} State the transformation: "
        "--towgs84 dx,dy,dz[,rx,ry,rz,ds] (7-parameter Bursa-Wolf, position vector, from your "
        "surveying bureau) or --transform '+proj=pipeline ...' (source -> WGS 84 lon/lat)."
    )


def _transform(gdf: gpd.GeoDataFrame, fn: Any) -> gpd.GeoDataFrame:
    geoms = shapely.transform(np.asarray(gdf.geometry.values, dtype=object), fn)
    return gpd.GeoDataFrame(gdf.drop(columns=gdf.geometry.name), geometry=geoms,
                            crs="EPSG:4326")


# --------------------------------------------------------------------------- formats
@contextmanager
def _unpacked(path: Path, suffix: str) -> Iterator[Path]:
    """The file to read: ``path`` itself, or the member of a zip/KMZ unpacked to a temp dir."""
    if suffix != ".zip":  # KMZ is read by GDAL's LIBKML driver directly
        yield path
        return
    want = (".shp",)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise BoundaryFileError(f"{path.name}: not a valid zip archive.") from None
    with zf, tempfile.TemporaryDirectory(prefix="bw-import-") as tmp:
        members = [m for m in zf.infolist() if not m.is_dir()
                   and not Path(m.filename).name.startswith(("._", "."))]
        main = [m for m in members if m.filename.lower().endswith(want)]
        if suffix == ".zip" and not main:
            others = [m for m in members if m.filename.lower().endswith(
                (".gpkg", ".geojson", ".json", ".kml", ".csv"))]
            if len(others) == 1:
                main = others
        if len(main) != 1:
            names = ", ".join(m.filename for m in members) or "(empty)"
            raise BoundaryFileError(
                f"{path.name}: expected exactly one {'/'.join(want)} file in the archive, "
                f"found {len(main)} (members: {names})."
            )
        stem = Path(main[0].filename).with_suffix("").as_posix().lower()
        for m in members:  # the main file and its same-stem siblings, flattened
            if Path(m.filename).with_suffix("").as_posix().lower() == stem:
                target = Path(tmp) / Path(m.filename).name
                with zf.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        yield Path(tmp) / Path(main[0].filename).name


def _dbf_encoding(shp: Path, notes: list[str]) -> str | None:
    """Encoding of a Shapefile's attribute table: ``.cpg``, else detected; None = GDAL's."""
    siblings = {p.suffix.lower(): p for p in shp.parent.glob(shp.stem + ".*")}
    missing = [s for s in (".shx", ".dbf") if s not in siblings]
    if missing:
        raise BoundaryFileError(
            f"{shp.name}: the Shapefile lacks its {' and '.join(missing)} file(s); "
            "zip the .shp with its .shx, .dbf, .prj and .cpg."
        )
    if ".cpg" in siblings:
        cpg = siblings[".cpg"].read_text(encoding="ascii", errors="replace").strip()
        notes.append(f"attribute encoding {cpg} (from .cpg)")
        return None
    raw = siblings[".dbf"].read_bytes()
    header_len = int.from_bytes(raw[8:10], "little") if len(raw) > 10 else len(raw)
    body = raw[header_len:]
    if raw[29:30] == b"\x4d":  # language driver id 0x4D: Chinese GBK (cp936)
        notes.append("attribute encoding GBK (from the .dbf language driver id; no .cpg)")
        return "GB18030"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        notes.append("attribute encoding GB18030 (detected: no .cpg, not UTF-8)")
        return "GB18030"
    notes.append("attribute encoding UTF-8 (detected: no .cpg)")
    return "UTF-8"


def _read_csv(path: Path, notes: list[str]) -> tuple[pd.DataFrame, str]:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise BoundaryFileError(f"{path.name}: not UTF-8 or GB18030 text.")
    notes.append(f"CSV encoding {enc}")
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return df, enc


def _csv_frame(path: Path, notes: list[str]) -> gpd.GeoDataFrame:
    df, _ = _read_csv(path, notes)
    cols = {str(c).strip().lower(): c for c in df.columns}
    col = next((cols[c] for c in WKT_COLUMNS if c in cols), None)
    if col is None:
        raise BoundaryFileError(
            f"{path.name}: no WKT geometry column; expected one of {', '.join(WKT_COLUMNS)}, "
            f"found {', '.join(map(str, df.columns)) or '(none)'}."
        )
    texts = df[col].astype(str).str.strip()
    geoms = shapely.from_wkt(texts.to_numpy(), on_invalid="ignore")
    bad = np.flatnonzero(shapely.is_missing(geoms))
    if bad.size:
        rows = ", ".join(str(i + 2) for i in bad[:10])  # +2: header line, 1-based
        raise BoundaryFileError(
            f"{path.name}: column '{col}' is not valid WKT on line(s) {rows}"
            f"{' …' if bad.size > 10 else ''}; expected e.g. 'POLYGON ((114 22.8, ...))'."
        )
    return gpd.GeoDataFrame(df.drop(columns=[col]), geometry=geoms, crs=None)


def _read_any(path: Path, fmt: str, notes: list[str], encoding: str | None,
              layer: str | None) -> tuple[gpd.GeoDataFrame, str | None]:
    if fmt.startswith("CSV"):
        return _csv_frame(path, notes), None
    if fmt.startswith("Shapefile") and path.suffix.lower() == ".shp":
        encoding = encoding or _dbf_encoding(path, notes)
    layers = pyogrio.list_layers(path)
    if layer is None and len(layers) > 1:
        names = [str(n) for n, _ in layers]
        if fmt in ("KML", "KMZ"):  # KML folders: read them all
            frames = [pyogrio.read_dataframe(path, layer=n) for n in names]
            return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True),
                                    crs=frames[0].crs), encoding
        raise BoundaryFileError(
            f"{path.name} holds {len(names)} layers ({', '.join(names)}): choose one with "
            "--layer."
        )
    kwargs: dict[str, Any] = {"layer": layer} if layer else {}
    if encoding:
        kwargs["encoding"] = encoding
    try:
        return pyogrio.read_dataframe(path, **kwargs), encoding
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        raise BoundaryFileError(f"{path.name}: GDAL cannot read it as {fmt}: {exc}") from None


# --------------------------------------------------------------------------- public
def read_boundary_file(
    path: str | os.PathLike[str],
    *,
    crs: str | None = None,
    towgs84: str | None = None,
    pipeline: str | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    source_name: str | None = None,
) -> ReadResult:
    """Read a boundary file and bring its geometries to EPSG:4326 (WGS84 lon/lat).

    Parameters
    ----------
    path
        The file (see the module docstring for formats).
    crs
        Coordinate system of the coordinates when the file declares none (required then,
        except for GeoJSON/KML), or ``GCJ02``/``BD09`` for lon/lat in those systems.
        Contradicting a declared, different CRS is an error.
    towgs84, pipeline
        The stated transformation for datums PROJ cannot place in Guangdong (Xi'an 1980,
        Beijing 1954): Helmert parameters or a PROJ pipeline to WGS84 lon/lat.
    encoding
        Attribute encoding of a Shapefile without ``.cpg`` (default: detected).
    layer
        Layer of a multi-layer GeoPackage.
    source_name
        Name to report (default: the file name).

    Returns
    -------
    ReadResult
        2-D geometries in EPSG:4326, the attributes, the source CRS and the
        transformation used, and notes (encoding, CRS source).

    Raises
    ------
    BoundaryFileError
        Unknown format, unreadable file, bad WKT (names the line), no features.
    MissingCRSError
        No coordinate system in the file and no ``crs``.
    TransformationRequiredError
        A Xi'an 1980 / Beijing 1954 (or similar) file without a stated transformation.
    """
    path = Path(path)
    name = source_name or path.name
    suffix = path.suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise BoundaryFileError(
            f"{name}: unsupported file type '{suffix or '(none)'}'; expected "
            f"{', '.join(sorted(set(FORMATS)))}."
        )
    if not path.exists():
        raise BoundaryFileError(f"{name}: no such file.")
    notes: list[str] = []
    with _unpacked(path, suffix) as inner:
        if suffix == ".zip" and inner.suffix.lower() != ".shp":
            fmt = FORMATS.get(inner.suffix.lower(), fmt)
        gdf, used_encoding = _read_any(inner, fmt, notes, encoding, layer)
    if gdf.empty:
        raise BoundaryFileError(f"{name}: the file has no features.")
    geoms = shapely.force_2d(np.asarray(gdf.geometry.values, dtype=object))
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if missing.size:
        raise BoundaryFileError(
            f"{name}: feature(s) {', '.join(str(i + 1) for i in missing[:10])} have no "
            "geometry; every feature needs a polygon."
        )
    file_crs = gdf.crs
    gdf = gpd.GeoDataFrame(gdf.drop(columns=gdf.geometry.name), geometry=geoms, crs=None)

    declared_name, declared = parse_crs(crs) if crs else (None, None)
    bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    if declared_name in ("GCJ02", "BD09"):
        if file_crs is not None and not _is_lonlat(CRS.from_user_input(file_crs)):
            raise BoundaryFileError(
                f"{name}: --crs {declared_name} means lon/lat coordinates, but the file "
                f"declares {_crs_label(CRS.from_user_input(file_crs))}."
            )
        _check_lonlat_range(name, bounds, declared_name)
        fn = _gcj_bd_fn(declared_name)
        out = _transform(gdf, fn)
        return ReadResult(out, fmt, name, declared_name,
                          f"{declared_name} -> WGS84 with geo.crs (iterative inverse, < 1 cm)",
                          used_encoding, notes)
    if file_crs is not None:
        src = CRS.from_user_input(file_crs)
        if declared is not None and not src.equals(declared, ignore_axis_order=True):
            raise BoundaryFileError(
                f"{name}: the file declares {_crs_label(src)} but --crs says "
                f"{declared_name}; remove --crs, or fix the file's .prj."
            )
        notes.append(f"coordinate system from the file: {_crs_label(src)}")
    elif declared is not None:
        src = declared
        notes.append(f"coordinate system from --crs: {declared_name}")
    elif fmt in _WGS84_BY_SPEC:
        src = CRS.from_epsg(4326)
        notes.append(f"coordinate system WGS84 ({_WGS84_BY_SPEC[fmt]})")
    else:
        what = "a .prj file" if fmt.startswith("Shapefile") else "a coordinate system"
        raise MissingCRSError(
            f"{name} has no {what}, so its coordinates cannot be placed. Pass --crs, e.g. "
            "--crs EPSG:4547 (CGCS2000 3-degree Gauss-Kruger 114E), --crs EPSG:4490 "
            "(CGCS2000 lon/lat), --crs WGS84, --crs GCJ02 (Amap) or --crs BD09 (Baidu)."
        )
    if src.is_geographic:
        _check_lonlat_range(name, bounds, _crs_label(src))
    transformer, how = _to_wgs84_transformer(src, _lonlat_bounds(src, bounds),
                                             towgs84=towgs84, pipeline=pipeline)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1], errcheck=False)
        return np.column_stack([x, y])

    out = _transform(gdf, fn)
    coords = shapely.get_coordinates(np.asarray(out.geometry.values, dtype=object))
    if not np.isfinite(coords).all():
        raise BoundaryFileError(
            f"{name}: some coordinates cannot be transformed from {_crs_label(src)} "
            "(outside the system's area?); check --crs."
        )
    return ReadResult(out, fmt, name, _crs_label(src), how, used_encoding, notes)


def _gcj_bd_fn(name: str) -> Any:
    def fn(xy: np.ndarray) -> np.ndarray:
        lon, lat = gcrs.to_wgs84(xy[:, 0], xy[:, 1], name)
        return np.column_stack([lon, lat])

    return fn


def _check_lonlat_range(name: str, bounds: tuple[float, ...], what: str) -> None:
    minx, miny, maxx, maxy = bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise BoundaryFileError(
            f"{name}: coordinates up to x={maxx:.6g}, y={maxy:.6g} are not longitude/"
            f"latitude as {what} requires; they look projected (metres). Give the "
            "projected system with --crs, e.g. EPSG:4547."
        )


def _lonlat_bounds(crs: CRS, bounds: tuple[float, ...]) -> tuple[float, float, float, float]:
    """Approximate lon/lat bounds of the data (to pick a transformation by area of use)."""
    if crs.is_geographic:
        return bounds  # type: ignore[return-value]
    try:
        geog = crs.geodetic_crs
        tr = Transformer.from_crs(crs, geog, always_xy=True)
        xs, ys = tr.transform([bounds[0], bounds[2]], [bounds[1], bounds[3]])
        return (min(xs), min(ys), max(xs), max(ys))
    except (ProjError, CRSError):
        return _GUANGDONG
