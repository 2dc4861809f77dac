"""Exports of the enforcement list: CSV, GeoJSON, GeoPackage, Excel, zipped Shapefile.

Machine-readable files (CSV, GeoJSON, GeoPackage, Shapefile) use the English snake_case
columns of :func:`output_columns`: :data:`geo.schema.ENFORCEMENT_COLUMNS` in that order,
with ``industry_code`` (GB/T 4754-2017) after ``industry`` and the registry's optional
numeric attributes at the end when the frame has them. The Excel workbook is for officials:
Chinese headers and sheet names from ``layers/data/labels.toml``, verdicts with their
Chinese labels from the rules catalog.

Every output states its provenance (:class:`geo.provenance.Provenance`): the Excel 说明
sheet, a ``basinwatch:provenance`` member of the GeoJSON FeatureCollection, GeoPackage
dataset metadata (``BASINWATCH_PROVENANCE``), ``provenance.json`` inside the Shapefile zip,
and ``enforcement_list.provenance.json`` next to the files :func:`export_all` writes.

Spreadsheet formulas are neutralised (:func:`neutralise_formulas`) in the formats a
spreadsheet opens (CSV, Excel, Shapefile DBF): text starting with ``=``, ``+``, ``-``,
``@``, tab, carriage return, line feed or NUL gets a leading apostrophe. Numbers stay
numbers; GeoJSON and GeoPackage keep the text exactly as the registry wrote it.

Every writer is atomic: it writes a temporary file in the destination directory and moves
it into place with :func:`os.replace`, so a failed export never leaves a half-written file.
Files get the user's usual permissions (umask).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa

from geo.errors import ExportError, ReferenceDataError
from geo.files import atomic_target
from geo.parallel import Job, JobStats, run_jobs
from geo.provenance import Provenance
from geo.schema import (
    ENFORCEMENT_COLUMNS,
    LIST_SEP,
    OPTIONAL_OUTPUT_COLUMNS,
    REJECTED_COLUMNS,
    UNIT_COLUMNS,
)

__all__ = [
    "FORMATS",
    "COORD_DECIMALS",
    "PROVENANCE_SIDECAR",
    "CSV_LINE_END",
    "csv_chunks",
    "enforcement_csv_chunks",
    "export",
    "export_all",
    "WRITER_COST",
    "compact_text",
    "output_columns",
    "neutralise_formulas",
    "neutralise_frame",
    "write_enforcement_csv",
    "write_geojson",
    "write_gpkg",
    "write_rejected_csv",
    "write_units_csv",
    "write_shapefile_zip",
    "write_xlsx",
    "write_provenance",
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

#: Decimals of lon/lat in every export (1e-7 degree is about 1 cm).
COORD_DECIMALS: Final = 7
#: File name of the provenance sidecar :func:`export_all` writes.
PROVENANCE_SIDECAR: Final = "enforcement_list.provenance.json"
#: Name of the provenance member of the GeoJSON FeatureCollection (RFC 7946 section 6.1).
GEOJSON_PROVENANCE_MEMBER: Final = "basinwatch:provenance"
#: GeoPackage dataset metadata key holding the provenance JSON.
GPKG_PROVENANCE_KEY: Final = "BASINWATCH_PROVENANCE"

#: Byte width of a DBF text field; longer UTF-8 values are cut at a character boundary.
_DBF_MAX_BYTES: Final = 254
_CSV_ENCODING: Final = "utf-8-sig"  # the BOM makes Excel open Chinese text correctly
#: RFC 4180 line break. With it Python's csv writer also quotes a field holding a bare CR
#: (with "\n" alone, a CR inside a name would split the row for other readers).
CSV_LINE_END: Final = "\r\n"
#: Rows formatted at once by :func:`csv_chunks` (bounds the memory of a CSV export).
CSV_CHUNK_ROWS: Final = 100_000
_WGS84: Final = "EPSG:4326"
#: First characters a spreadsheet reads as the start of a formula or a command: OWASP
#: "CSV Injection" (= + - @ tab CR) and ASVS 5.0 V1.2.10 (adds NUL); LF for good measure.
_FORMULA_START: Final = r"^[=+\-@\t\r\n\x00]"
#: Characters XML 1.0 (and so openpyxl) cannot store in a cell.
_XML_ILLEGAL: Final = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


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


def _numeric_columns() -> tuple[str, ...]:
    from geo.ingest import numeric_columns

    return numeric_columns()


def _column_label(column: str) -> str:
    """Chinese header: labels.toml [columns], else the registry.toml label, else the id."""
    labels = _labels()["columns"]
    if column in labels:
        return str(labels[column])
    from geo.ingest import registry_spec

    numeric = registry_spec()["numeric"].get(column)
    return str(numeric["label_zh"]) if numeric else column


def output_columns(frame: pd.DataFrame) -> list[str]:
    """Columns a file export writes for ``frame``, in order.

    :data:`~geo.schema.ENFORCEMENT_COLUMNS`, each column of
    :data:`~geo.schema.OPTIONAL_OUTPUT_COLUMNS` right after its anchor, then the registry's
    numeric attributes (``registry.toml`` [numeric]) that ``frame`` has.
    """
    after: dict[str, list[str]] = {}
    for col, anchor in OPTIONAL_OUTPUT_COLUMNS.items():
        after.setdefault(anchor, []).append(col)
    out: list[str] = []
    for col in ENFORCEMENT_COLUMNS:
        out.append(col)
        out.extend(after.get(col, []))
    out += [c for c in _numeric_columns() if c in frame.columns and c not in out]
    return out


def shapefile_field_names(columns: Sequence[str] | None = None) -> dict[str, str]:
    """Column -> DBF field name (at most 10 characters) used by :func:`write_shapefile_zip`.

    Parameters
    ----------
    columns
        Columns to name; default :data:`~geo.schema.ENFORCEMENT_COLUMNS`.

    Raises
    ------
    ReferenceDataError
        If ``labels.toml`` lacks a column, or a name is too long or duplicated.
    """
    wanted = list(columns) if columns is not None else list(ENFORCEMENT_COLUMNS)
    mapping = {str(k): str(v) for k, v in _labels().get("shapefile_fields", {}).items()}
    missing = [c for c in wanted if c not in mapping]
    too_long = [v for v in mapping.values() if len(v) > 10]
    if missing or too_long or len(set(mapping.values())) != len(mapping):
        raise ReferenceDataError(
            "labels.toml [shapefile_fields] must map every output column to a unique "
            f"name of at most 10 characters; missing {missing}, too long {too_long}."
        )
    return {c: mapping[c] for c in wanted}


# --------------------------------------------------------------------------- helpers


def _str_ops(values: pd.Series) -> Any:
    """``values.str`` for text columns; ``None`` for columns without any string."""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return None
    try:
        return values.str
    except AttributeError:  # an object column holding no strings at all
        return None


def neutralise_formulas(values: pd.Series) -> pd.Series:
    """Text that a spreadsheet would run as a formula, made inert with a leading ``'``.

    Strings starting with ``=``, ``+``, ``-``, ``@``, tab, CR, LF or NUL (OWASP "CSV
    Injection"; ASVS 5.0 V1.2.10) get an apostrophe in front, so Excel, LibreOffice and
    WPS show them as text. Non-string values (numbers, booleans, missing) are unchanged.

    Parameters
    ----------
    values
        Any Series.

    Returns
    -------
    pandas.Series
        Same index and dtype family.
    """
    ops = _str_ops(values)
    if ops is None:
        return values
    risky = ops.contains(_FORMULA_START, regex=True, na=False).astype(bool)
    if not risky.any():
        return values
    out = values.copy()
    out[risky] = "'" + values[risky].astype(str)
    return out


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`neutralise_formulas` on every text column of ``frame`` (a copy)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, gpd.array.GeometryDtype):
            continue
        out[col] = neutralise_formulas(out[col])
    return out


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ExportError(
            f"Cannot export the {what}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(required)} (see geo.schema)."
        )


def _enforcement_frame(gdf: pd.DataFrame) -> pd.DataFrame:
    """The output columns in contract order, without geometry, lon/lat rounded.

    A frame without ``industry_code`` (e.g. read back from a store) gets the code the
    industry catalog knows (:func:`geo.ingest.industry_codes`).
    """
    _check_columns(gdf, ENFORCEMENT_COLUMNS, "enforcement list")
    frame = pd.DataFrame(gdf.loc[:, [c for c in output_columns(gdf) if c in gdf.columns]])
    if "industry_code" not in frame.columns:
        from geo.ingest import industry_codes

        frame.insert(
            frame.columns.get_loc("industry") + 1, "industry_code",
            industry_codes(frame["industry_id"]).to_numpy(),
        )
    for col in ("lon", "lat"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").round(COORD_DECIMALS)
    return frame


def _as_bool(series: pd.Series) -> pd.Series:
    return series.eq(True).astype(bool)


def _bool_text(series: pd.Series, true: str, false: str) -> pd.Series:
    return _as_bool(series).map({True: true, False: false})


def _geo_frame(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Output columns + geometry in WGS84, ``needs_review`` as a real boolean."""
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


def _provenance_for(
    frame: pd.DataFrame, provenance: Provenance | None
) -> Provenance:
    """``provenance`` with the counts of ``frame``, or a record of what is known now."""
    verdicts = catalog_verdict_labels()
    counts = frame["verdict"].value_counts() if "verdict" in frame else pd.Series(dtype=int)
    by_verdict = {v: int(counts[v]) for v in [*verdicts, *sorted(set(counts.index) - set(
        verdicts))] if v in counts.index}
    if provenance is None:
        return Provenance.now(registry_name="", registry_sha256="", as_of=None,
                              accepted=len(frame), verdict_counts=by_verdict)
    if provenance.accepted == len(frame):
        return provenance
    return provenance.with_counts(accepted=len(frame), verdict_counts=by_verdict)


def _write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    return _write_chunks(csv_chunks(df), path)


def _write_chunks(chunks: Iterator[bytes], path: str | os.PathLike[str]) -> Path:
    with atomic_target(path) as tmp, tmp.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
    return Path(path)


def csv_chunks(df: pd.DataFrame, *, rows: int = CSV_CHUNK_ROWS) -> Iterator[bytes]:
    """``df`` as CSV bytes, ``rows`` rows at a time: UTF-8 BOM and header first, CRLF line
    ends, formulas neutralised (:func:`neutralise_formulas`), missing values empty.

    Rows are formatted column-wise by ``pyarrow.csv`` (text quoted, numbers in their
    shortest round-trip form, ``-5.0`` as ``-5``); memory is bounded by one chunk.
    """
    import csv
    import io

    import pyarrow.csv as pacsv

    head = io.StringIO()
    csv.writer(head, lineterminator=CSV_LINE_END).writerow([str(c) for c in df.columns])
    yield head.getvalue().encode(_CSV_ENCODING)
    options = pacsv.WriteOptions(include_header=False, eol=CSV_LINE_END)

    def format_chunk(table: pa.Table) -> pa.Buffer:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, options)  # releases the GIL
        return sink.getvalue()

    # Arrow formats chunk k in a thread while chunk k + 1 is converted here: two cores.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv") as pool:
        pending = None
        for start in range(0, len(df), rows):
            table = _arrow_csv_table(df.iloc[start:start + rows])
            if pending is not None:
                yield memoryview(pending.result())  # no copy
            pending = pool.submit(format_chunk, table)
        if pending is not None:
            yield memoryview(pending.result())


def _arrow_csv_table(df: pd.DataFrame) -> pa.Table:
    """Arrow columns of ``df`` for CSV: text neutralised, other objects as text."""
    from geo.xlsx import neutralise_text

    columns = {}
    for i, col in enumerate(df.columns):
        values = df.iloc[:, i]
        if isinstance(values.dtype, gpd.array.GeometryDtype):
            values = values.to_wkt()
        try:
            arr = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds: written as text
            arr = pa.array(values.map(lambda v: None if _is_missing(v) else str(v)),
                           type=pa.string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if isinstance(arr, pa.DictionaryArray):  # a Categorical: its values
            arr = arr.dictionary_decode()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            arr = neutralise_text(arr)  # large_string (pandas' Arrow strings) kept as is
        elif pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())
        columns[str(col) if str(col) not in columns else f"{col}.{i}"] = arr
    return pa.table(columns)


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


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
        The written file. ``needs_review`` is written as ``true``/``false``; text that a
        spreadsheet would run as a formula starts with ``'`` (:func:`neutralise_formulas`).
        Provenance goes in the sidecar :func:`write_provenance` writes.
    """
    return _write_chunks(enforcement_csv_chunks(gdf), path)


def enforcement_csv_chunks(gdf: pd.DataFrame) -> Iterator[bytes]:
    """The bytes of :func:`write_enforcement_csv`'s file, chunk by chunk (for streaming).

    The frame is checked and prepared before the first chunk is asked for, so a bad frame
    raises here, not in the middle of a response.
    """
    frame = _enforcement_frame(gdf)
    frame["needs_review"] = _bool_text(frame["needs_review"], "true", "false")
    return csv_chunks(frame)


def write_units_csv(units: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``enforcement_units.csv``: one row per equipment unit (UTF-8 with BOM).

    Columns :data:`geo.schema.UNIT_COLUMNS` (the unit's own verdict, rules, reasons,
    deadline and status; ``enterprise_row`` joins it to the enforcement list's ``row``),
    then the unit's measures and attributes in canonical units (equipment.toml).
    """
    _check_columns(units, UNIT_COLUMNS, "equipment units")
    frame = pd.DataFrame(units).copy()
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


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    provenance: Provenance | None = None,
) -> Path:
    """Write RFC 7946 GeoJSON (WGS84 lon/lat, 7 decimals), column-wise (:mod:`geo.geojson`).

    The FeatureCollection carries a ``basinwatch:provenance`` member (an RFC 7946 foreign
    member; GIS software ignores it).

    Parameters
    ----------
    gdf
        Enforcement list (any CRS; reprojected to EPSG:4326).
    path
        Destination file.
    provenance
        Where the list came from; default: what is known now (no registry).
    """
    from geo.geojson import feature_collection_chunks

    frame = _geo_frame(gdf)
    prov = _provenance_for(frame, provenance)
    members = {GEOJSON_PROVENANCE_MEMBER: prov.to_dict()}
    return _write_chunks(
        feature_collection_chunks(frame, members=members, decimals=COORD_DECIMALS), path)


def write_gpkg(
    gdf: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    layer: str = "enterprises",
    *,
    provenance: Provenance | None = None,
) -> Path:
    """Write a GeoPackage with one point layer (default ``enterprises``).

    The provenance JSON is dataset metadata ``BASINWATCH_PROVENANCE`` (``gpkg_metadata``;
    ``ogrinfo`` lists it) and the layer's description names the registry file.

    Parameters
    ----------
    gdf
        Enforcement list (any CRS; reprojected to EPSG:4326).
    path
        Destination file; an existing file is replaced as a whole.
    layer
        Layer name inside the GeoPackage.
    provenance
        Where the list came from; default: what is known now (no registry).
    """
    frame = _geo_frame(gdf)
    prov = _provenance_for(frame, provenance)
    title = _labels()["provenance"]["title"]
    description = f"{title}: {prov.registry_name or '-'}, {prov.generated_at.isoformat()}"
    with atomic_target(path, create=False) as tmp:
        frame.to_file(
            tmp, driver="GPKG", layer=layer, engine="pyogrio", use_arrow=True,
            dataset_metadata={GPKG_PROVENANCE_KEY: prov.to_json()},
            layer_metadata={"DESCRIPTION": description},
        )
    return Path(path)


def write_shapefile_zip(
    gdf: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    provenance: Provenance | None = None,
) -> Path:
    """Write a zipped ESRI Shapefile (UTF-8 ``.cpg``), ``fields.csv`` and ``provenance.json``.

    DBF field names are limited to 10 characters: the column -> field mapping comes from
    ``labels.toml`` [shapefile_fields] (see :func:`shapefile_field_names`) and is also
    written into the zip as ``fields.csv`` (column, field, Chinese label). Text longer than
    254 bytes is cut at a character boundary (the DBF limit); CSV/GeoPackage keep it whole.
    ``needs_review`` is written as ``true``/``false``; formulas are neutralised (spreadsheets
    open DBF files).

    Parameters
    ----------
    gdf
        Enforcement list (any CRS; reprojected to EPSG:4326).
    path
        Destination ``.zip`` file.
    provenance
        Where the list came from; default: what is known now (no registry).
    """
    frame = _geo_frame(gdf)
    prov = _provenance_for(frame, provenance)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    fields = shapefile_field_names(columns)
    frame["needs_review"] = _bool_text(frame["needs_review"], "true", "false")
    for col in columns:
        if pd.api.types.is_string_dtype(frame[col]) or frame[col].dtype == object:
            frame[col] = neutralise_formulas(frame[col])
            encoded = frame[col].astype("string").str.encode("utf-8")
            long = encoded.str.len().gt(_DBF_MAX_BYTES).fillna(False)
            if long.any():
                logger.warning(
                    "shapefile: %d value(s) of %r cut to %d bytes", long.sum(), col, _DBF_MAX_BYTES
                )
                cut = encoded[long].str[:_DBF_MAX_BYTES].str.decode("utf-8", errors="ignore")
                frame.loc[long, col] = cut
    frame = frame.rename(columns=fields)
    mapping = pd.DataFrame(
        {
            "column": list(fields),
            "field": list(fields.values()),
            "label_zh": [_column_label(c) for c in fields],
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
        (Path(work) / "provenance.json").write_text(prov.to_json(), encoding="utf-8")
        with atomic_target(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(work).iterdir()):
                zf.write(part, arcname=part.name)
    return Path(path)


# --------------------------------------------------------------------------- Excel


def _display_frame(df: pd.DataFrame, verdicts: Mapping[str, str], *,
                   safe: bool = True) -> pd.DataFrame:
    """Chinese view of the output columns for Excel (ids translated; with ``safe``,
    formulas inert and XML-illegal characters replaced, else left to the writer)."""
    labels = _labels()
    words = labels["words"]
    zones = labels["zones"]
    omit = [c for c in labels.get("xlsx", {}).get("omit_columns", []) if c in df.columns]
    out = df.drop(columns=omit)
    out["verdict"] = _translate(out["verdict"], verdicts)
    out["needs_review"] = _bool_text(out["needs_review"], words["yes"], words["no"])
    for col in ("basin_id", "region_id"):
        out[col] = _translate(out[col], zones)
    out["geocode_precision"] = _translate(out["geocode_precision"], labels["precision"])
    out["review_reasons"] = _codes_text(out["review_reasons"], labels["review_reasons"])
    out["data_issues"] = _codes_text(out["data_issues"], _issue_texts())
    out = _rule_display(out, labels)
    if safe:
        out = _xlsx_safe(out)
    return out.rename(columns={c: _column_label(c) for c in out.columns})


def _translate(values: pd.Series, texts: Mapping[str, str]) -> pd.Series:
    """``texts[v]`` where ``v`` has a text, else ``v`` (one lookup per distinct value)."""
    mapped = values.map(dict(texts))
    return mapped.where(mapped.notna(), values)


def _xlsx_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Make cells openpyxl can store and Excel will not run.

    Control characters XML cannot hold become U+FFFD, formulas are neutralised, missing
    values become ``None``.
    """
    out = neutralise_frame(frame)
    for col in out.columns:
        ops = _str_ops(out[col])
        if ops is not None:
            cleaned = ops.replace(_XML_ILLEGAL, "\ufffd", regex=True)
            out[col] = cleaned.where(cleaned.notna(), out[col])
    return out.astype(object).where(out.notna(), None)


def _rule_display(out: pd.DataFrame, labels: Mapping[str, Any]) -> pd.DataFrame:
    """Chinese deadline status and price measures (labels.toml, rules catalog)."""
    if "deadline_status" in out:
        status = labels.get("deadline_status", {})
        out["deadline_status"] = _translate(out["deadline_status"], status)
    if "price_measures" in out:
        from layers.catalog import rules

        measures = {m.id: m.label_zh for m in rules().measures}
        out["price_measures"] = _codes_text(out["price_measures"], measures)
    return out


def _units_display(units: pd.DataFrame, verdicts: Mapping[str, str]) -> pd.DataFrame:
    """Chinese view of the per-unit result (the Excel 设备清单 sheet)."""
    labels = _labels()
    words = labels["words"]
    out = pd.DataFrame(units.loc[:, list(UNIT_COLUMNS)]).copy()
    out["verdict"] = _translate(out["verdict"], verdicts)
    out["needs_review"] = _bool_text(out["needs_review"], words["yes"], words["no"])
    out["review_reasons"] = _codes_text(out["review_reasons"], labels["review_reasons"])
    out["data_issues"] = _codes_text(out["data_issues"], _issue_texts())
    out["source"] = out["source"].map({"registry": "企业名录", "equipment": "设备清单"})
    out = _rule_display(out, labels)
    out = out.astype(object).where(out.notna(), None)
    return out.rename(columns=labels.get("unit_columns", {}))


def _issue_texts() -> dict[str, str]:
    from geo.ingest import issue_catalog

    return {code: entry.get("message_zh", code) for code, entry in issue_catalog().items()}


def _rejection_titles() -> dict[str, str]:
    from geo.ingest import issue_catalog

    return {code: entry.get("title_zh", code) for code, entry in issue_catalog().items()}


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


def _rejected_summary(rejected: pd.DataFrame | None, count: int | None) -> pd.DataFrame:
    """Rejected registry rows by reason (Chinese), with a total row."""
    words = _labels()["words"]
    reason, rows = words["rejected_reason"], words["rejected_count"]
    if rejected is None:
        total = "" if count is None else int(count)
        return pd.DataFrame({reason: [words["total"]], rows: [total]})
    titles = _rejection_titles()
    counts = rejected["reason"].fillna("").astype(str).value_counts(sort=True)
    table = pd.DataFrame({reason: [titles.get(c, c) for c in counts.index],
                          rows: counts.to_numpy(dtype=int)})
    total = pd.DataFrame({reason: [words["total"]], rows: [len(rejected)]})
    return pd.concat([table, total], ignore_index=True)


def _text_width(values: pd.Series) -> int:
    """Display width of the longest value (CJK characters count double)."""
    text = values.dropna().astype(str)
    if text.empty:
        return 0
    wide = text.str.count(r"[\u2e80-\u9fff\uff00-\uffef]")
    return int((text.str.len() + wide).max())


def _write_table(ws: Any, df: pd.DataFrame, start_row: int = 1, *, autofilter: bool,
                 progress: Callable[[int], None] | None = None) -> None:
    """Write ``df`` with a bold header at ``start_row`` and size the columns; ``progress(k)``
    is told every 1,000 rows written (and the remainder at the end).

    Values must already be spreadsheet-safe (:func:`_xlsx_safe`); strings are stored as
    text cells, never as formulas.
    """
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    for j, col in enumerate(df.columns, start=1):
        ws.cell(row=start_row, column=j, value=str(col)).font = bold
    for i, values in enumerate(df.itertuples(index=False, name=None), start=start_row + 1):
        for j, value in enumerate(values, start=1):
            if value is not None:
                cell = ws.cell(row=i, column=j, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"
        if progress is not None and (i - start_row) % 1000 == 0:
            progress(1000)
    if progress is not None and len(df) % 1000:
        progress(len(df) % 1000)
    last = get_column_letter(max(len(df.columns), 1))
    if autofilter:
        ws.auto_filter.ref = f"A{start_row}:{last}{start_row + len(df)}"
    for j, col in enumerate(df.columns, start=1):
        letter = get_column_letter(j)
        width = max(_text_width(pd.Series([str(col)])), _text_width(df[col])) + 2
        current = ws.column_dimensions[letter].width or 0
        ws.column_dimensions[letter].width = max(current, min(max(width, 6), 60))


def _write_notes(ws: Any, prov: Provenance,
                 extra: Sequence[tuple[str, str]] | None = None) -> None:
    """The 说明 sheet: ``extra`` rows (an export's filters and area), provenance rows, then
    notes on formulas and review flags."""
    from openpyxl.styles import Font

    labels = _labels()
    words = labels["words"]
    ws.cell(row=1, column=1, value=labels["provenance"]["title"]).font = Font(bold=True)
    table = pd.DataFrame([*(extra or []), *prov.rows_zh(labels["provenance"])],
                         columns=["项目", "内容"])
    _write_table(ws, _xlsx_safe(table), start_row=3, autofilter=False)
    row = 3 + len(table) + 2
    for note in (words["review_note"], words["formula_note"]):
        ws.cell(row=row, column=1, value=note)
        row += 1


def write_xlsx(
    gdf: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    verdict_labels: Mapping[str, str] | None = None,
    provenance: Provenance | None = None,
    rejected: pd.DataFrame | None = None,
    notes: Sequence[tuple[str, str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    units: pd.DataFrame | None = None,
) -> Path:
    """Write the Excel workbook for officials (Chinese headers and labels).

    Sheets: 汇总 (counts by basin/region x verdict, by industry x verdict, and the registry
    rows not used, by reason), 全部企业 (all enterprises), one sheet per priority
    basin/region that has enterprises (names from ``labels.toml`` [zones]), 未采用行 (the
    rejected rows, when given) and 说明 (provenance: registry file and SHA-256, rule date,
    catalog and layer versions, generation time, counts). Header rows are bold and frozen,
    data sheets have an autofilter, column widths follow the content. Text cells are never
    formulas (:func:`neutralise_formulas`).

    Parameters
    ----------
    gdf
        Enforcement list with every column of :data:`geo.schema.ENFORCEMENT_COLUMNS`.
    path
        Destination ``.xlsx`` file.
    verdict_labels
        Verdict id -> Chinese label; default: the rules catalog
        (:func:`catalog_verdict_labels`).
    provenance
        Where the list came from; default: what is known now (no registry).
    rejected
        The registry rows not used (``REJECTED_COLUMNS``); listed by reason in 汇总 and
        row by row in 未采用行.
    notes
        (项目, 内容) rows put first in the 说明 sheet (e.g. the filters and area of an
        export from the map); none by default.
    progress
        ``progress(rows_written, rows_total)`` over all data sheets, every 1,000 rows.
    units
        Per-unit results (``PipelineResult.units``); when given and not empty, a sheet
        设备清单 lists every unit with its own verdict, reasons, deadline and status.
    """
    from geo.xlsx import Book

    df = _enforcement_frame(gdf)
    verdicts = (
        dict(verdict_labels) if verdict_labels is not None else catalog_verdict_labels()
    )
    prov = _provenance_for(df, provenance)
    labels = _labels()
    by_zone, by_ind = _summary_tables(df, verdicts)
    display = _display_frame(df, verdicts, safe=False)  # made safe column-wise in Arrow

    zones = []
    for zid, zname in labels["zones"].items():
        member = np.flatnonzero((df["basin_id"].eq(zid) | df["region_id"].eq(zid)).to_numpy())
        if len(member):
            zones.append((zname, member))
    extra = []
    if rejected is not None:
        _check_columns(rejected, REJECTED_COLUMNS, "rejected rows")
        rej = pd.DataFrame(rejected.loc[:, list(REJECTED_COLUMNS)])
        extra.append((labels["sheets"]["rejected"], rej.rename(columns=labels["rejected_columns"])))
    if units is not None and len(units):
        extra.append((labels.get("sheets_units", {}).get("units", "设备清单"),
                      _units_display(units, verdicts)))
    total = len(display) + sum(len(m) for _, m in zones) + sum(len(f) for _, f in extra)
    done = [0]

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], total)

    with atomic_target(path) as tmp, Book(tmp, progress=step) as book:
        _xlsx_summary(book, by_zone, by_ind, _rejected_summary(rejected, prov.rejected))
        table = book.encode(display)
        del display, df  # encoded: their memory is reused while the rows are written
        book.add_rows(labels["sheets"]["all"], table)
        for zname, member in zones:
            book.add_rows(zname, table, member)
        for title, frame in extra:
            book.add_rows(title, book.encode(frame))
        _xlsx_notes(book, prov, notes)
        book.set_properties({"title": labels["provenance"]["title"],
                             "author": prov.generator, "comments": prov.to_json()})
    return Path(path)


def _xlsx_summary(book: Any, by_zone: pd.DataFrame, by_ind: pd.DataFrame,
                  rejected: pd.DataFrame) -> None:
    """The 汇总 sheet: counts by zone and by industry, rejected rows by reason."""
    labels = _labels()
    words = labels["words"]
    ws = book.add_sheet(labels["sheets"]["summary"])
    widths: dict[int, float] = {}
    book.write_small(ws, by_zone, autofilter=True, widths=widths)
    book.write_small(ws, by_ind, start_row=len(by_zone) + 2, autofilter=False, widths=widths)
    rej_row = len(by_zone) + len(by_ind) + 5  # 0-based
    ws.write_string(rej_row - 1, 0, f"{words['rejected_rows']}（{words['rejected_hint']}）",
                    book.bold)
    book.write_small(ws, rejected, start_row=rej_row, autofilter=False, widths=widths)
    ws.freeze_panes(1, 1)


def _xlsx_notes(book: Any, prov: Provenance, extra: Sequence[tuple[str, str]] | None) -> None:
    """The 说明 sheet (XlsxWriter): like :func:`_write_notes`."""
    labels = _labels()
    words = labels["words"]
    ws = book.add_sheet(labels["sheets"]["notes"])
    ws.write_string(0, 0, labels["provenance"]["title"], book.bold)
    table = pd.DataFrame([*(extra or []), *prov.rows_zh(labels["provenance"])],
                         columns=["项目", "内容"])
    book.write_small(ws, _xlsx_safe(table), start_row=2, autofilter=False)
    row = 2 + len(table) + 2
    for note in (words["review_note"], words["formula_note"]):
        ws.write_string(row, 0, note)
        row += 1


# --------------------------------------------------------------------------- dispatch


def export(
    gdf: gpd.GeoDataFrame,
    fmt: str,
    path: str | os.PathLike[str],
    *,
    verdict_labels: Mapping[str, str] | None = None,
    provenance: Provenance | None = None,
    rejected: pd.DataFrame | None = None,
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
    provenance
        Where the list came from (the formats that hold metadata record it); default: what
        is known now.
    rejected
        Rejected registry rows, listed in the Excel workbook.

    Raises
    ------
    ExportError
        If ``fmt`` is not an accepted format.
    """
    key = str(fmt).lower().lstrip(".")
    if key == "xlsx":
        return write_xlsx(gdf, path, verdict_labels=verdict_labels, provenance=provenance,
                          rejected=rejected)
    if key == "csv":
        return write_enforcement_csv(gdf, path)
    writers: dict[str, Callable[..., Path]] = {
        "geojson": write_geojson,
        "gpkg": write_gpkg,
        "shp": write_shapefile_zip,
    }
    if key not in writers:
        raise ExportError(
            f"Unknown export format '{fmt}': expected one of {', '.join(FORMATS)}."
        )
    return writers[key](gdf, path, provenance=provenance)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_provenance(
    provenance: Provenance, path: str | os.PathLike[str], *, files: Sequence[Path] = ()
) -> Path:
    """Write a ``*.provenance.json`` sidecar.

    It holds the provenance record plus the name, size and SHA-256 of each of ``files``
    (so a copied CSV can be matched to its run).
    """
    body = provenance.to_dict()
    # hashlib releases the GIL on large blocks: the files are hashed on every core (at 1M
    # rows ~1.5 GB of files, 2 CPU s)
    with ThreadPoolExecutor(max_workers=max(min(len(files), os.cpu_count() or 1), 1)) as pool:
        digests = list(pool.map(_sha256_file, files))
    body["files"] = [
        {"name": f.name, "bytes": f.stat().st_size, "sha256": d}
        for f, d in zip(files, digests, strict=True)
    ]
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return Path(path)


#: CPU seconds per million rows of each writer (BENCHMARKS.md, pipeline, 1M rows one
#: process; ``units`` per unit row): how ``export_all`` splits the files between processes.
WRITER_COST: Final[dict[str, float]] = {
    "xlsx": 17.0, "geojson": 11.0, "gpkg": 8.0, "csv": 3.6, "map": 3.2, "units": 2.0,
    "rejected": 1.0,
}


def compact_text(frame: pd.DataFrame, *, max_share: float = 0.01) -> pd.DataFrame:
    """``frame`` with its repeated text columns as pandas Categoricals.

    A 1M-row enforcement list holds ~25 text columns with at most a few dozen distinct
    values (verdicts, districts, rule texts): as strings they are ~1.2 GB, as codes a few
    MB. Every writer of :func:`export_all` and the map write the same files from either
    (tests: ``test_export_parts.py``) and each writes Categoricals a little faster (the
    GeoJSON and Excel writers encode each category once).

    Parameters
    ----------
    frame
        Any frame; it is not changed (the result shares its other columns).
    max_share
        A text column becomes categorical when its distinct values (nulls included) are at
        most this share of its rows (checked on its first 20,000 rows first).

    Returns
    -------
    pandas.DataFrame
        Same class, columns, index and values.
    """
    out = frame.copy(deep=False)
    geometry = getattr(frame, "_geometry_column_name", None)
    for col in out.columns:
        values = out[col]
        if col == geometry or not pd.api.types.is_string_dtype(values.dtype) or isinstance(
                values.dtype, pd.CategoricalDtype):
            continue
        limit = max(int(len(values) * max_share), 1)
        head = values.iloc[:20_000]
        if head.nunique(dropna=False) > max(int(len(head) * max_share), 1):
            continue
        if values.nunique(dropna=False) <= limit:
            out[col] = values.astype("category")
    return out


class _Progress:
    """Adapter of an optional ``progress(stage, rows, done=...)`` callback."""

    def __init__(self, fn: Callable[..., None] | None) -> None:
        self.fn = fn

    def __call__(self, stage: str, rows: int, *, done: bool = False) -> None:
        if self.fn is not None:
            self.fn(stage, rows, done=done)


def export_all(
    result_gdf: gpd.GeoDataFrame,
    rejected: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    verdict_labels: Mapping[str, str] | None = None,
    provenance: Provenance | None = None,
    progress: Callable[..., None] | None = None,
    units: pd.DataFrame | None = None,
    workers: int = 1,
    also: Sequence[Job] = (),
    stats: dict[str, JobStats] | None = None,
    parent_writes: bool = False,
) -> dict[str, Path]:
    """Write every standard output into ``out_dir``.

    Files: ``enforcement_list.csv``, ``.geojson``, ``.xlsx``, ``.gpkg``,
    ``rejected_rows.csv`` and the sidecar ``enforcement_list.provenance.json`` (provenance
    plus the SHA-256 of each file); with ``units``, also ``enforcement_units.csv`` and the
    Excel 设备清单 sheet (the enterprise files carry ``unit_count`` and the named ``units``).

    Parameters
    ----------
    result_gdf, rejected
        The pipeline's enterprises and rejected rows.
    out_dir
        Output folder (created when missing).
    verdict_labels
        Passed to :func:`write_xlsx`.
    provenance
        The run's provenance (:attr:`geo.pipeline.PipelineResult.provenance`).
    progress
        Called as ``progress(fmt, rows)`` before and ``progress(fmt, rows, done=True)``
        after each file (``fmt`` one of csv, geojson, xlsx, gpkg, units, rejected,
        provenance, or an ``also`` job's stage).
    units
        The pipeline's per-unit results (:attr:`geo.pipeline.PipelineResult.units`).
    workers
        Writers run side by side in this many forked processes (:mod:`geo.parallel`);
        ``1`` writes one file after the other in this process. The files are the same.
    also
        Further writers to run with the files (``basinwatch run`` passes the map); their
        paths are returned under their stage names and are not in the provenance sidecar.
    stats
        Filled with each writer's :class:`geo.parallel.JobStats` (seconds, CPU seconds and
        peak RSS where it ran).
    parent_writes
        With ``workers`` > 1, this process writes files too beside ``workers - 1`` forked
        ones, the files split by :data:`WRITER_COST` (``run_jobs(parent_too=True)``).

    Returns
    -------
    dict
        Keys ``csv``, ``geojson``, ``xlsx``, ``gpkg``, ``rejected``, ``provenance`` (and
        ``units``, and each ``also`` stage) -> written paths.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"Cannot write outputs into {out}: it is a file; expected a folder.")
    step = _Progress(progress)
    prov = provenance or _provenance_for(result_gdf, None)
    if prov.rejected is None:
        from dataclasses import replace

        prov = replace(prov, rejected=len(rejected))
    n = len(result_gdf)

    def write(fmt: str) -> Path:
        target = out / f"enforcement_list{FORMATS[fmt]}"
        if fmt == "xlsx":
            return write_xlsx(result_gdf, target, verdict_labels=verdict_labels,
                              provenance=prov, rejected=rejected, units=units)
        return export(result_gdf, fmt, target, verdict_labels=verdict_labels,
                      provenance=prov, rejected=rejected)

    # longest first (a free worker takes the next): xlsx, geojson, gpkg, csv at 200k rows
    jobs = [Job(fmt, n, lambda fmt=fmt: write(fmt), cost=n * WRITER_COST[fmt])
            for fmt in ("xlsx", "geojson", "gpkg")]
    jobs += [*also, Job("csv", n, lambda: write("csv"), cost=n * WRITER_COST["csv"])]
    if units is not None and len(units):
        jobs.append(Job("units", len(units),
                        lambda: write_units_csv(units, out / "enforcement_units.csv"),
                        cost=len(units) * WRITER_COST["units"]))
    jobs.append(Job("rejected", len(rejected),
                    lambda: write_rejected_csv(rejected, out / "rejected_rows.csv"),
                    cost=len(rejected) * WRITER_COST["rejected"]))
    done = run_jobs(jobs, workers=workers, progress=step, parent_too=parent_writes)
    if stats is not None:
        stats.update({stage: st for stage, (_, st) in done.items()})
    order = ["csv", "geojson", "xlsx", "gpkg", "units", "rejected"]
    paths = {stage: done[stage][0] for stage in order if stage in done}
    files = list(paths.values())
    paths.update({job.stage: done[job.stage][0] for job in also})
    step("provenance", len(files))
    paths["provenance"] = write_provenance(prov, out / PROVENANCE_SIDECAR, files=files)
    step("provenance", len(files), done=True)
    return paths
