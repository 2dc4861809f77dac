"""Exports of the enforcement list: CSV, GeoJSON, GeoPackage, Excel, zipped Shapefile.

Machine-readable files (CSV, GeoJSON, GeoPackage, Shapefile) use the English snake_case
columns of :data:`geo.schema.ENFORCEMENT_COLUMNS` in that order and the stable verdict ids.
The Excel workbook is for officials: Chinese headers and sheet names from
``layers/data/labels.toml`` and verdicts shown with their Chinese labels from the rules
catalog.

Every writer is atomic: it writes a temporary file in the destination directory and moves
it into place with :func:`os.replace`, so a failed export never leaves a half-written file.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import pandas as pd

from geo.errors import ExportError, ReferenceDataError
from geo.schema import ENFORCEMENT_COLUMNS, LIST_SEP, REJECTED_COLUMNS

__all__ = [
    "FORMATS",
    "export",
    "export_all",
    "write_enforcement_csv",
    "write_geojson",
    "write_gpkg",
    "write_rejected_csv",
    "write_shapefile_zip",
    "write_xlsx",
    "shapefile_field_names",
    "catalog_verdict_labels",
]

logger = logging.getLogger(__name__)

#: Formats accepted by :func:`export`, with the file suffix each one writes.
FORMATS: Final[Mapping[str, str]] = {
    "csv": ".csv",
    "geojson": ".geojson",
    "xlsx": ".xlsx",
    "gpkg": ".gpkg",
    "shp": ".zip",
}

#: Byte width of a DBF text field; longer UTF-8 values are cut at a character boundary.
_DBF_MAX_BYTES: Final = 254
_CSV_ENCODING: Final = "utf-8-sig"  # the BOM makes Excel open Chinese text correctly
_WGS84: Final = "EPSG:4326"
_FILE_MODE: Final = 0o644


# --------------------------------------------------------------------------- labels


def _labels() -> dict[str, Any]:
    from layers.catalog import read_data_toml

    return read_data_toml("labels.toml")


def catalog_verdict_labels() -> dict[str, str]:
    """Chinese verdict labels from the rules catalog, strongest verdict first.

    Returns
    -------
    dict
        Verdict id -> Chinese label (``layers.catalog.verdict_labels('zh')``).
    """
    from layers.catalog import verdict_labels

    return dict(verdict_labels("zh"))


def shapefile_field_names() -> dict[str, str]:
    """Column -> DBF field name (at most 10 characters) used by :func:`write_shapefile_zip`.

    Raises
    ------
    ReferenceDataError
        If ``labels.toml`` lacks a column, or a name is too long or duplicated.
    """
    mapping = {str(k): str(v) for k, v in _labels().get("shapefile_fields", {}).items()}
    missing = [c for c in ENFORCEMENT_COLUMNS if c not in mapping]
    too_long = [v for v in mapping.values() if len(v) > 10]
    if missing or too_long or len(set(mapping.values())) != len(mapping):
        raise ReferenceDataError(
            "labels.toml [shapefile_fields] must map every enforcement column to a unique "
            f"name of at most 10 characters; missing {missing}, too long {too_long}."
        )
    return {c: mapping[c] for c in ENFORCEMENT_COLUMNS}


# --------------------------------------------------------------------------- helpers


@contextmanager
def _atomic_target(path: str | os.PathLike[str], *, create: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    ``create=False`` hands over a name that does not exist yet (GDAL drivers create it).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".part{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(name)
    if not create:
        tmp.unlink()
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600
        os.replace(tmp, final)
    except OSError as exc:
        raise ExportError(f"Cannot write {final}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("wrote %s", final)


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ExportError(
            f"Cannot export the {what}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(required)} (see geo.schema)."
        )


def _enforcement_frame(gdf: pd.DataFrame) -> pd.DataFrame:
    """The enforcement columns in contract order, without geometry."""
    _check_columns(gdf, ENFORCEMENT_COLUMNS, "enforcement list")
    return pd.DataFrame(gdf.loc[:, list(ENFORCEMENT_COLUMNS)])


def _as_bool(series: pd.Series) -> pd.Series:
    return series.eq(True).astype(bool)


def _bool_text(series: pd.Series, true: str, false: str) -> pd.Series:
    return _as_bool(series).map({True: true, False: false})


def _geo_frame(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Enforcement columns + geometry in WGS84, ``needs_review`` as a real boolean."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ExportError("Cannot export a geographic format from a frame without geometry.")
    if gdf.crs is None:
        raise ExportError(
            "The enforcement list has no CRS; set it with .set_crs('EPSG:4326') before export."
        )
    frame = _enforcement_frame(gdf)
    frame["needs_review"] = _as_bool(frame["needs_review"])
    out = gpd.GeoDataFrame(frame, geometry=gdf.geometry.values, crs=gdf.crs)
    return out if out.crs.equals(_WGS84) else out.to_crs(_WGS84)


def _write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    with _atomic_target(path) as tmp:
        df.to_csv(tmp, index=False, encoding=_CSV_ENCODING, lineterminator="\n")
    return Path(path)


# --------------------------------------------------------------------------- writers


def write_enforcement_csv(gdf: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``enforcement_list.csv``: UTF-8 with BOM, English header, ids as values.

    Parameters
    ----------
    gdf
        Enforcement list with every column of :data:`geo.schema.ENFORCEMENT_COLUMNS`.
    path
        Destination file.

    Returns
    -------
    Path
        The written file. ``needs_review`` is written as ``true``/``false``.
    """
    frame = _enforcement_frame(gdf)
    frame["needs_review"] = _bool_text(frame["needs_review"], "true", "false")
    return _write_csv(frame, path)


def write_rejected_csv(rejected: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``rejected_rows.csv`` (UTF-8 with BOM) with :data:`REJECTED_COLUMNS`.

    Parameters
    ----------
    rejected
        Rejected registry rows from :func:`geo.ingest.read_registry`.
    path
        Destination file.
    """
    _check_columns(rejected, REJECTED_COLUMNS, "rejected rows")
    return _write_csv(pd.DataFrame(rejected.loc[:, list(REJECTED_COLUMNS)]), path)


def write_geojson(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write RFC 7946 GeoJSON (WGS84 lon/lat) with pyogrio.

    Parameters
    ----------
    gdf
        Enforcement list (any CRS; reprojected to EPSG:4326).
    path
        Destination file.
    """
    frame = _geo_frame(gdf)
    with _atomic_target(path, create=False) as tmp:
        frame.to_file(
            tmp,
            driver="GeoJSON",
            engine="pyogrio",
            layer_options={"RFC7946": "YES", "WRITE_NAME": "NO"},
        )
    return Path(path)


def write_gpkg(
    gdf: gpd.GeoDataFrame, path: str | os.PathLike[str], layer: str = "enterprises"
) -> Path:
    """Write a GeoPackage with one point layer (default ``enterprises``).

    Parameters
    ----------
    gdf
        Enforcement list (any CRS; reprojected to EPSG:4326).
    path
        Destination file; an existing file is replaced as a whole.
    layer
        Layer name inside the GeoPackage.
    """
    frame = _geo_frame(gdf)
    with _atomic_target(path, create=False) as tmp:
        frame.to_file(tmp, driver="GPKG", layer=layer, engine="pyogrio")
    return Path(path)


def write_shapefile_zip(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a zipped ESRI Shapefile (UTF-8 ``.cpg``) plus ``fields.csv``.

    DBF field names are limited to 10 characters: the column -> field mapping comes from
    ``labels.toml`` [shapefile_fields] (see :func:`shapefile_field_names`) and is also
    written into the zip as ``fields.csv`` (column, field, Chinese label). Text longer than
    254 bytes is cut at a character boundary (the DBF limit); CSV/GeoPackage keep it whole.
    ``needs_review`` is written as ``true``/``false``.

    Parameters
    ----------
    gdf
        Enforcement list (any CRS; reprojected to EPSG:4326).
    path
        Destination ``.zip`` file.
    """
    fields = shapefile_field_names()
    frame = _geo_frame(gdf)
    frame["needs_review"] = _bool_text(frame["needs_review"], "true", "false")
    for col in frame.columns.drop(frame.geometry.name):
        if pd.api.types.is_string_dtype(frame[col]) or frame[col].dtype == object:
            encoded = frame[col].astype("string").str.encode("utf-8")
            long = encoded.str.len().gt(_DBF_MAX_BYTES).fillna(False)
            if long.any():
                logger.warning(
                    "shapefile: %d value(s) of %r cut to %d bytes", long.sum(), col, _DBF_MAX_BYTES
                )
                cut = encoded[long].str[:_DBF_MAX_BYTES].str.decode("utf-8", errors="ignore")
                frame.loc[long, col] = cut
    frame = frame.rename(columns=fields)
    labels = _labels().get("columns", {})
    mapping = pd.DataFrame(
        {
            "column": list(fields),
            "field": list(fields.values()),
            "label_zh": [labels.get(c, "") for c in fields],
        }
    )
    stem = Path(path).stem or "enforcement_list"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(path).parent, prefix=f".{stem}.") as work:
        shp = Path(work) / f"{stem}.shp"
        frame.to_file(shp, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
        cpg = shp.with_suffix(".cpg")
        if not cpg.exists():  # older GDAL: write it ourselves
            cpg.write_text("UTF-8", encoding="ascii")
        mapping.to_csv(Path(work) / "fields.csv", index=False, encoding=_CSV_ENCODING)
        with _atomic_target(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(work).iterdir()):
                zf.write(part, arcname=part.name)
    return Path(path)


def _display_frame(df: pd.DataFrame, verdicts: Mapping[str, str]) -> pd.DataFrame:
    """Chinese view of the enforcement columns for Excel."""
    labels = _labels()
    words = labels["words"]
    zones = labels["zones"]
    out = df.copy()
    out["verdict"] = out["verdict"].map(lambda v: verdicts.get(v, v))
    out["needs_review"] = _bool_text(out["needs_review"], words["yes"], words["no"])
    for col in ("basin_id", "region_id"):
        out[col] = out[col].map(lambda v: zones.get(v, v))
    out["geocode_precision"] = out["geocode_precision"].map(
        lambda v: labels["precision"].get(v, v)
    )
    out["review_reasons"] = _codes_text(out["review_reasons"], labels["review_reasons"])
    out["data_issues"] = _codes_text(out["data_issues"], _issue_texts())
    out = out.astype(object).where(out.notna(), None)
    return out.rename(columns=labels["columns"])


def _issue_texts() -> dict[str, str]:
    from geo.ingest import issue_catalog

    return {code: entry.get("message_zh", code) for code, entry in issue_catalog().items()}


def _codes_text(cells: pd.Series, texts: Mapping[str, str]) -> pd.Series:
    """Chinese text of ``;``-separated code cells, translated once per distinct cell."""
    codes = cells.fillna("").astype(str)
    distinct = codes.unique()
    translated = {
        cell: "；".join(texts.get(c, c) for c in cell.split(LIST_SEP) if c) for cell in distinct
    }
    return codes.map(translated)


def _summary_tables(
    df: pd.DataFrame, verdicts: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts by zone x verdict and by industry x verdict (Chinese labels)."""
    labels = _labels()
    words = labels["words"]
    zones: dict[str, str] = labels["zones"]
    order = list(verdicts) + sorted(set(df["verdict"].dropna()) - set(verdicts))
    onehot = pd.get_dummies(pd.Categorical(df["verdict"], categories=order)).astype(int)
    onehot.index = df.index
    vcols = [verdicts.get(v, v) for v in order]
    onehot.columns = vcols

    zone_rows = []
    in_any = pd.Series(False, index=df.index)
    for zid, zname in zones.items():
        member = df["basin_id"].eq(zid) | df["region_id"].eq(zid)
        in_any |= member
        zone_rows.append(pd.Series(onehot[member].sum(), name=zname))
    zone_rows.append(pd.Series(onehot[~in_any].sum(), name=words["outside_zones"]))
    zone_rows.append(pd.Series(onehot.sum(), name=words["total"]))
    by_zone = pd.DataFrame(zone_rows)
    by_zone[words["total"]] = by_zone[vcols].sum(axis=1)
    by_zone = by_zone.rename_axis(words["zone"]).reset_index()

    industry = df["industry"].fillna(words["unknown"]).replace("", words["unknown"])
    by_ind = onehot.groupby(industry, sort=False).sum()
    try:
        from layers.catalog import industries

        rank = {ind.name_zh: i for i, ind in enumerate(industries())}
    except ReferenceDataError:  # pragma: no cover - bundled file missing
        rank = {}
    by_ind = by_ind.loc[sorted(by_ind.index, key=lambda n: (rank.get(n, len(rank)), n))]
    by_ind.loc[words["total"]] = by_ind.sum()
    by_ind[words["total"]] = by_ind[vcols].sum(axis=1)
    by_ind = by_ind.rename_axis(words["industry"]).reset_index()
    return by_zone, by_ind


def _text_width(values: pd.Series) -> int:
    """Display width of the longest value (CJK characters count double)."""
    text = values.dropna().astype(str)
    if text.empty:
        return 0
    wide = text.str.count(r"[\u2e80-\u9fff\uff00-\uffef]")
    return int((text.str.len() + wide).max())


def _write_table(ws: Any, df: pd.DataFrame, start_row: int = 1, *, autofilter: bool) -> None:
    """Write ``df`` with a bold header at ``start_row`` and size the columns."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    for j, col in enumerate(df.columns, start=1):
        ws.cell(row=start_row, column=j, value=str(col)).font = bold
    for i, values in enumerate(df.itertuples(index=False, name=None), start=start_row + 1):
        for j, value in enumerate(values, start=1):
            if value is not None:
                ws.cell(row=i, column=j, value=value)
    last = get_column_letter(max(len(df.columns), 1))
    if autofilter:
        ws.auto_filter.ref = f"A{start_row}:{last}{start_row + len(df)}"
    for j, col in enumerate(df.columns, start=1):
        letter = get_column_letter(j)
        width = max(_text_width(pd.Series([str(col)])), _text_width(df[col])) + 2
        current = ws.column_dimensions[letter].width or 0
        ws.column_dimensions[letter].width = max(current, min(max(width, 6), 60))


def write_xlsx(
    gdf: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    verdict_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write the Excel workbook for officials (Chinese headers and labels).

    Sheets: 汇总 (counts by basin/region x verdict and by industry x verdict), 全部企业 (all
    enterprises), then one sheet per priority basin/region that has enterprises (names from
    ``labels.toml`` [zones]). Header rows are bold and frozen, data sheets have an
    autofilter, column widths follow the content.

    Parameters
    ----------
    gdf
        Enforcement list with every column of :data:`geo.schema.ENFORCEMENT_COLUMNS`.
    path
        Destination ``.xlsx`` file.
    verdict_labels
        Verdict id -> Chinese label; default: the rules catalog
        (:func:`catalog_verdict_labels`).
    """
    from openpyxl import Workbook

    df = _enforcement_frame(gdf)
    verdicts = (
        dict(verdict_labels) if verdict_labels is not None else catalog_verdict_labels()
    )
    labels = _labels()
    by_zone, by_ind = _summary_tables(df, verdicts)
    display = _display_frame(df, verdicts)

    wb = Workbook()
    ws = wb.active
    ws.title = labels["sheets"]["summary"]
    _write_table(ws, by_zone, autofilter=True)
    _write_table(ws, by_ind, start_row=len(by_zone) + 3, autofilter=False)
    ws.freeze_panes = "B2"

    sheets = [(labels["sheets"]["all"], display)]
    for zid, zname in labels["zones"].items():
        member = (df["basin_id"].eq(zid) | df["region_id"].eq(zid)).to_numpy()
        if member.any():
            sheets.append((zname, display[member]))
    for title, frame in sheets:
        sheet = wb.create_sheet(title)
        _write_table(sheet, frame, autofilter=True)
        sheet.freeze_panes = "A2"

    with _atomic_target(path) as tmp:
        wb.save(tmp)
    return Path(path)


# --------------------------------------------------------------------------- dispatch


def export(
    gdf: gpd.GeoDataFrame,
    fmt: str,
    path: str | os.PathLike[str],
    *,
    verdict_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write the enforcement list in one format.

    Parameters
    ----------
    gdf
        Enforcement list.
    fmt
        One of :data:`FORMATS`: ``csv``, ``geojson``, ``xlsx``, ``gpkg``, ``shp`` (zip).
    path
        Destination file.
    verdict_labels
        Passed to :func:`write_xlsx`.

    Raises
    ------
    ExportError
        If ``fmt`` is not an accepted format.
    """
    key = str(fmt).lower().lstrip(".")
    if key == "xlsx":
        return write_xlsx(gdf, path, verdict_labels=verdict_labels)
    writers: dict[str, Callable[[Any, str | os.PathLike[str]], Path]] = {
        "csv": write_enforcement_csv,
        "geojson": write_geojson,
        "gpkg": write_gpkg,
        "shp": write_shapefile_zip,
    }
    if key not in writers:
        raise ExportError(
            f"Unknown export format '{fmt}': expected one of {', '.join(FORMATS)}."
        )
    return writers[key](gdf, path)


def export_all(
    result_gdf: gpd.GeoDataFrame,
    rejected: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    verdict_labels: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write every standard output into ``out_dir``.

    Files: ``enforcement_list.csv``, ``.geojson``, ``.xlsx``, ``.gpkg`` and
    ``rejected_rows.csv``.

    Returns
    -------
    dict
        Keys ``csv``, ``geojson``, ``xlsx``, ``gpkg``, ``rejected`` -> written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        fmt: export(
            result_gdf, fmt, out / f"enforcement_list{FORMATS[fmt]}", verdict_labels=verdict_labels
        )
        for fmt in ("csv", "geojson", "xlsx", "gpkg")
    }
    paths["rejected"] = write_rejected_csv(rejected, out / "rejected_rows.csv")
    return paths
