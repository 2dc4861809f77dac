"""Read an enterprise registry (CSV or XLSX) into the ingest frame of ``geo/schema.py``.

Steps, all vectorised over the whole table:

1. read bytes; XLSX through openpyxl, CSV decoded as UTF-8 (BOM allowed) or GB18030 with
   the delimiter (comma or tab) sniffed from the header line;
2. map headers to canonical columns with the aliases of ``layers/data/registry.toml``;
   a missing required column raises :class:`~geo.errors.MissingColumnError`;
3. normalise text (NFKC folds full-width characters), match ``行业`` to the 12 industries,
   canonicalise ``坐标系``, parse coordinates and numeric attributes;
4. coordinate sanity against the province bounds: swapped lon/lat are exchanged,
   zero/blank or out-of-province coordinates fall back to the address when there is one;
5. USCC check (GB 32100-2015) and duplicates become data issues, not rejections.

Every source row ends up either in ``accepted`` or in ``rejected`` (with a reason code
from ``layers/data/issues.toml`` and a message naming row, field and expected values).
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import pandas as pd

from geo._unique import by_unique, nfkc
from geo.crs import CRS_NAMES, normalise_crs_name
from geo.equipment import parse_attribute, registry_units
from geo.errors import MissingColumnError, ReferenceDataError, RegistryFormatError
from geo.schema import INGEST_COLUMNS, ISSUE_SEP, REJECTED_COLUMNS
from geo.uscc import normalise_uscc, validate_uscc
from layers.catalog import industries, read_data_toml

__all__ = [
    "IngestResult",
    "read_registry",
    "registry_spec",
    "issue_catalog",
    "issue_message",
    "issue_detail",
    "MESSAGE_SEP",
    "describe_issues",
    "match_industry",
    "industry_codes",
    "numeric_columns",
    "province_bounds",
]

logger = logging.getLogger(__name__)

_XLSX_MAGIC: Final = b"PK\x03\x04"
_XLS_MAGIC: Final = b"\xd0\xcf\x11\xe0"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
#: Share of control bytes (other than tab/CR/LF) in the first 8 KiB above which a
#: "CSV" is a binary file (a text registry has none).
_BINARY_SHARE: Final = 0.01
_PLAIN_NUMBER: Final = r"-?[0-9]+(?:\.[0-9]+)?"  # ASCII: to_numeric reads no other digits
_COORD_JUNK: Final = r"[°º度′″'\"\sENenWwSs东西南北经纬]"
_CODE_RE: Final = r"^\s*[A-Za-z]?(\d{3,4})(?:\.0+)?(?![\d.])"
_BRACKET_RE: Final = re.compile(r"\(.*\)$")
#: Separator of the Chinese and the English part of every rejection message.
MESSAGE_SEP: Final = " | "


@dataclass
class IngestResult:
    """Outcome of :func:`read_registry`.

    Attributes
    ----------
    accepted
        ``INGEST_COLUMNS`` plus the optional numeric columns of ``registry.toml``.
    rejected
        ``REJECTED_COLUMNS``; one row per unusable source row.
    source_rows
        Data rows in the file (fully blank lines excluded);
        ``len(accepted) + len(rejected) == source_rows``.
    units
        Implicit equipment units of accepted rows, from the registry columns registry.toml
        marks ``implicit_unit`` (高炉容积 -> a blast furnace), joined by ``enterprise_row``.
    issue_details
        One row per cell behind a ``numeric_invalid`` data issue of an accepted row:
        ``row``, ``code``, ``field`` (the header as written in the file), ``value`` (the
        cell) and ``message`` ("中文 | English", naming row, field and value).
    """

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    source_rows: int
    units: pd.DataFrame | None = None
    issue_details: pd.DataFrame | None = None


# --------------------------------------------------------------------------- catalogs


@cache
def registry_spec() -> dict[str, Any]:
    """The parsed ``layers/data/registry.toml`` (columns, numeric attributes, bounds)."""
    spec = read_data_toml("registry.toml")
    for key in ("columns", "numeric", "bounds"):
        if key not in spec:
            raise ReferenceDataError(f"registry.toml has no [{key}] section.")
    return spec


@cache
def issue_catalog() -> dict[str, dict[str, str]]:
    """Codes of ``layers/data/issues.toml`` -> ``{kind, message_zh, message_en}``."""
    raw = read_data_toml("issues.toml")
    try:
        return {code: dict(item) for code, item in raw["issue"].items()}
    except (KeyError, AttributeError) as exc:
        raise ReferenceDataError(f"issues.toml is malformed: {exc}") from exc


def issue_message(code: str, **fields: object) -> str:
    """Chinese and English message of an issue code, ``"中文 | English"`` (:data:`MESSAGE_SEP`).

    Parameters
    ----------
    code
        A key of ``issues.toml``.
    **fields
        Placeholder values (``row``, ``field``, ``value``, ``accepted``, ``bounds``).
    """
    try:
        item = issue_catalog()[code]
    except KeyError:
        raise ReferenceDataError(f"issues.toml has no code '{code}'.") from None
    zh, en = item["message_zh"].format(**fields), item["message_en"].format(**fields)
    return f"{zh}{MESSAGE_SEP}{en}"


def issue_detail(code: str, **fields: object) -> str:
    """``"中文 | English"`` text of one cell behind a data issue (``detail_zh``/``detail_en``).

    Parameters
    ----------
    code
        A key of ``issues.toml`` that has ``detail_zh`` and ``detail_en`` templates.
    **fields
        Placeholder values (``row``, ``field``, ``value``).
    """
    item = issue_catalog().get(code, {})
    if "detail_zh" not in item or "detail_en" not in item:
        raise ReferenceDataError(f"issues.toml has no detail_zh/detail_en for '{code}'.")
    return f"{item['detail_zh'].format(**fields)}{MESSAGE_SEP}{item['detail_en'].format(**fields)}"


def describe_issues(codes: str) -> str:
    """Chinese text of a ``;``-separated ``data_issues`` cell (unknown codes kept as is)."""
    catalog = issue_catalog()
    parts = [c for c in codes.split(ISSUE_SEP) if c]
    return "；".join(catalog.get(c, {}).get("message_zh", c) for c in parts)


def province_bounds() -> tuple[float, float, float, float]:
    """``(lon_min, lat_min, lon_max, lat_max)`` of the province from ``registry.toml``."""
    b = registry_spec()["bounds"]
    return float(b["lon_min"]), float(b["lat_min"]), float(b["lon_max"]), float(b["lat_max"])


def numeric_columns() -> tuple[str, ...]:
    """Names of the optional numeric attribute columns ``read_registry`` may add."""
    return tuple(registry_spec()["numeric"])


def _norm_header(value: object) -> str:
    text = unicodedata.normalize("NFKC", str(value)).strip().lower()
    text = re.sub(r"\s+", "", text)
    stripped = _BRACKET_RE.sub("", text)
    return stripped or text


@cache
def _header_lookup() -> dict[str, str]:
    spec = registry_spec()
    lookup: dict[str, str] = {}
    for section in ("columns", "numeric", "attributes"):
        for canonical, item in spec.get(section, {}).items():
            for alias in [canonical, *item.get("aliases", [])]:
                lookup.setdefault(_norm_header(alias), canonical)
    return lookup


def _norm_key(values: pd.Series) -> pd.Series:
    return values.str.normalize("NFKC").str.lower().str.replace(r"\s+", "", regex=True)


@cache
def _industry_lookup() -> tuple[dict[str, tuple[str, str]], str]:
    lookup: dict[str, tuple[str, str]] = {}
    for ind in industries():
        keys = [ind.id, ind.name_zh, ind.name_en, *ind.aliases, *ind.codes]
        for key in keys:
            norm = re.sub(r"\s+", "", unicodedata.normalize("NFKC", key).lower())
            lookup.setdefault(norm, (ind.id, ind.name_zh))
    accepted = "、".join(ind.name_zh for ind in industries())
    accepted += "（或其英文名/别名，或 GB/T 4754-2017 行业代码如 1713、C1713）"
    return lookup, accepted


@cache
def _industry_accepted_en() -> str:
    names = ", ".join(ind.name_en for ind in industries())
    return f"{names} (or a Chinese name or alias, or a GB/T 4754-2017 code such as 1713 or C1713)"


def match_industry(values: pd.Series) -> pd.DataFrame:
    """Match registry ``行业`` cells to the 12 key industries.

    Parameters
    ----------
    values
        Raw cells: Chinese or English name, alias, or a GB/T 4754-2017 code
        (``1713``, ``C1713``, ``1713.0``, ``C1713 棉印染精加工``).

    Returns
    -------
    pandas.DataFrame
        Same index, columns ``industry_id``, ``industry`` (Chinese name) and
        ``industry_code`` (the GB/T 4754-2017 class code: the registry's own when the cell
        gave one, else the industry's only class code, else ``''``; see
        :func:`industry_codes`); ``''`` when the value is none of the 12.
    """
    lookup, _ = _industry_lookup()
    text = values.astype(object).where(values.notna(), "").astype(str)
    key = _norm_key(text)
    code = text.str.normalize("NFKC").str.extract(_CODE_RE, expand=False)
    id_of = {k: v[0] for k, v in lookup.items()}
    name_of = {v[0]: v[1] for v in lookup.values()}
    ids = key.map(id_of).astype(object)
    by_code = code.map(id_of).astype(object)
    from_code = ids.isna() & by_code.notna()
    ids = ids.where(ids.notna(), by_code)
    ids = ids.where(ids.notna(), "").astype(str)
    names = ids.map(name_of).astype(object)
    names = names.where(names.notna(), "").astype(str)
    given = code.where(from_code | code.map(id_of).eq(ids), "").fillna("").astype(str)
    return pd.DataFrame(
        {"industry_id": ids, "industry": names, "industry_code": industry_codes(ids, given)}
    )


def industry_codes(industry_id: pd.Series, given: pd.Series | None = None) -> pd.Series:
    """GB/T 4754-2017 class code of each row, where it is known.

    Parameters
    ----------
    industry_id
        Industry ids (``layers/data/industries.toml``).
    given
        Codes the registry gave (``''`` where none); they win over the catalog.

    Returns
    -------
    pandas.Series
        ``given`` where present, else the industry's class code when the catalog lists
        exactly one (cement 3011, tanning 1910, ...), else ``''`` (steel, paper, dyeing and
        ceramics span several classes: a name alone does not say which).
    """
    single = {ind.id: ind.codes[0] for ind in industries() if len(ind.codes) == 1}
    # one look-up per distinct id, then a gather: a 1M-row export reads this per request
    codes, uniques = pd.factorize(industry_id)  # missing -> -1, the table's last entry
    table = np.array([single.get(str(u), "") for u in uniques] + [""], dtype=object)
    out = pd.Series(table[codes], index=industry_id.index, dtype=object)
    if given is not None:
        given = given.astype(object).where(given.notna(), "").astype(str)
        out = given.where(given.ne(""), out)
    return out


# --------------------------------------------------------------------------- reading


def _read_source(
    source: str | Path | IO[bytes] | bytes, filename: str | None
) -> tuple[bytes, str]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            return path.read_bytes(), filename or path.name
        except OSError as exc:
            raise RegistryFormatError(f"Cannot read registry file {path}: {exc}") from exc
    if isinstance(source, bytes):
        return source, filename or ""
    data = source.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data, filename or str(getattr(source, "name", ""))


def _is_binary(data: bytes) -> bool:
    """True for bytes that are no text file: NUL bytes or many control characters."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    control = sum(head.count(bytes([b])) for b in range(32) if b not in (9, 10, 13))
    return control > _BINARY_SHARE * max(len(head), 1)


def _decode(data: bytes, name: str = "") -> str:
    """UTF-16 (with BOM), UTF-8 or GB18030 text; else an error naming the line that fails."""
    if data.startswith(_UTF16_BOMS):  # Excel's "Unicode text" export
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    where: list[str] = []
    line = 0
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            where.append(f"{encoding.upper()}: line {line}, byte 0x{data[exc.start]:02X}")
    raise RegistryFormatError(
        f"The CSV registry {name or '(upload)'} is neither UTF-8 nor GBK/GB18030 text "
        f"({'; '.join(where)}): expected UTF-8 or GBK/GB18030 text, or an .xlsx workbook; "
        f"save it as UTF-8 CSV. 登记文件第{line}行既不是 UTF-8 也不是 GBK/GB18030 编码："
        "请另存为 UTF-8 CSV 或 .xlsx。"
    )


#: XLSX reader: calamine (Rust) reads the same cells as openpyxl several times faster
#: (ARCHITECTURE.md "Reading registries"); openpyxl stays the fallback.
XLSX_ENGINE: Final = "calamine"
#: An empty line inside a CSV (pyarrow drops it, which would shift the row numbers the
#: messages name): such files go through pandas' own parser.
_EMPTY_LINE: Final = re.compile(rb"\n\r?\n")


def _read_xlsx(data: bytes, name: str, sheet: str | int | None) -> pd.DataFrame:
    try:
        return pd.read_excel(
            io.BytesIO(data), dtype=str, engine=XLSX_ENGINE,
            sheet_name=0 if sheet is None else sheet,
        )
    except Exception as exc:  # the readers raise many types for corrupt files
        raise RegistryFormatError(
            f"Cannot read the XLSX registry {name}: {exc}; expected a complete .xlsx "
            "workbook (a ZIP archive): the file may be truncated or damaged, save it again "
            "from Excel. 无法读取 XLSX 登记文件：文件可能不完整或已损坏，请用 Excel 重新保存。"
        ) from exc


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    """CSV bytes -> frame of strings; pyarrow's parser when the bytes allow it.

    pyarrow reads UTF-8 only, skips empty lines (which would shift the row numbers the
    messages name) and rejects ragged rows that pandas' parser pads: such files, and any
    file pyarrow refuses, are decoded (UTF-8 or GB18030) and read by pandas' C parser, so
    both paths give the same frame and the same errors.
    """
    if not data.startswith(_UTF16_BOMS) and _is_binary(data):
        raise RegistryFormatError(
            f"The registry {name or '(upload)'} is a binary file, not a text CSV: expected "
            "a UTF-8 or GBK/GB18030 CSV (comma or tab separated) or an .xlsx workbook. "
            "登记文件是二进制文件，不是文本 CSV：请另存为 UTF-8 CSV 或 .xlsx。"
        )
    fast = _read_csv_pyarrow(data)
    if fast is not None:
        return fast
    text = _decode(data, name)
    if not text.strip():
        raise RegistryFormatError(f"The registry {name or '(upload)'} is empty.")
    try:
        return pd.read_csv(
            io.StringIO(text), sep=_separator(text), dtype=str, keep_default_na=False,
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise RegistryFormatError(_csv_parse_message(text, name, exc)) from exc


def _read_csv_pyarrow(data: bytes) -> pd.DataFrame | None:
    """The CSV read by pyarrow, or ``None`` where its frame could differ from pandas' parser.

    ``None`` for UTF-16 or non-UTF-8 bytes, empty lines inside the file, ragged rows, and
    line breaks inside quoted values (one record per line is checked: pyarrow splits its
    work at line ends).
    """
    if data.startswith(_UTF16_BOMS):
        return None
    body = data.removeprefix(b"\xef\xbb\xbf").strip(b"\r\n")
    head = body[:65536].decode("utf-8", errors="ignore")
    if not head.strip() or _EMPTY_LINE.search(body):
        return None
    try:
        frame = pd.read_csv(io.BytesIO(body), sep=_separator(head), dtype=str,
                            keep_default_na=False, engine="pyarrow")
    except Exception:  # noqa: BLE001 - not UTF-8, ragged rows: pandas' parser decides
        return None
    return frame if body.count(b"\n") == len(frame) else None


def _separator(text: str) -> str:
    """Tab when the header line has more tabs than commas, else comma."""
    header = text.lstrip().splitlines()[0]
    return "\t" if header.count("\t") > header.count(",") else ","


def _read_table(data: bytes, name: str, *, sheet: str | int | None = 0) -> pd.DataFrame:
    """The file's first (or ``sheet``) table, every cell a string (``''`` when blank)."""
    suffix = Path(name).suffix.lower()
    if data.startswith(_XLS_MAGIC) or suffix == ".xls":
        raise RegistryFormatError(
            "Old Excel .xls files are not supported: save the registry as .xlsx or UTF-8 CSV."
        )
    if data.startswith(_XLSX_MAGIC) or suffix in (".xlsx", ".xlsm"):
        frame = _read_xlsx(data, name, sheet)
    else:
        frame = _read_csv(data, name)
    frame.columns = [str(c) for c in frame.columns]
    return frame.astype("str").fillna("")


def _unclosed_quote_line(text: str) -> int | None:
    """1-based line of a double quote that is never closed, or None (error path only)."""
    start, open_ = 0, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.count('"') % 2:
            start = start if open_ else number
            open_ = not open_
    return start if open_ else None


def _csv_parse_message(text: str, name: str, exc: Exception) -> str:
    """What is wrong with a CSV pandas cannot tokenise, naming the line."""
    line = _unclosed_quote_line(text)
    if line is not None:
        return (
            f"Cannot parse the CSV registry {name}: line {line} opens a quote (\") that is "
            "never closed; expected every quoted field to end with a closing quote. "
            f"登记文件第{line}行的引号（\"）没有闭合，请补上或删去该引号。"
        )
    return (f"Cannot parse the CSV registry {name}: {exc}; expected one record per line, "
            "each with as many fields as the header.")


def _header_unit(raw: object) -> str:
    """The unit in a header's trailing bracket (``容积(m³)`` -> ``m³``), else ``''``."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(raw)).strip())
    m = re.match(r"^.+\((.*)\)$", text)
    return m.group(1) if m else ""


def _map_headers(frame: pd.DataFrame, lookup: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """Source header -> canonical column for the headers ``lookup`` (normalised header ->
    column; default: the registry's) knows; two headers meaning one column are an error."""
    lookup = _header_lookup() if lookup is None else lookup
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for raw in frame.columns:
        canonical = lookup.get(_norm_header(raw))
        if canonical is None:
            continue
        if canonical in seen:
            raise RegistryFormatError(
                f"Columns '{seen[canonical]}' and '{raw}' both mean '{canonical}': keep one."
            )
        seen[canonical] = str(raw)
        mapping[str(raw)] = canonical
    return mapping


def _check_required(present: set[str], found: list[str]) -> None:
    cols = registry_spec()["columns"]
    for canonical, item in cols.items():
        if item.get("required") == "yes" and canonical not in present:
            raise MissingColumnError(
                f"{item['label_zh']} ({canonical})", tuple(item["aliases"]), found
            )
    if "address" not in present and not {"lon", "lat"} <= present:
        accepted = tuple(cols["address"]["aliases"]) + ("经度+纬度", "lon+lat")
        raise MissingColumnError("地址 (address) 或 经度+纬度 (lon+lat)", accepted, found)


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse numbers (``°``, units, full-width digits allowed); returns (value, unparseable).

    Plain decimals (most cells) are converted directly; the rest are cleaned first.
    """
    plain = values.astype(str).str.fullmatch(_PLAIN_NUMBER).to_numpy(dtype=bool)
    if plain.all():
        return pd.to_numeric(values).astype("float64"), pd.Series(False, index=values.index)
    if plain.any():
        number = pd.Series(np.nan, index=values.index, dtype="float64")
        number[plain] = pd.to_numeric(values[plain]).astype("float64")
        bad = pd.Series(False, index=values.index)
        number[~plain], bad[~plain] = _parse_messy_numbers(values[~plain])
        return number, bad
    return _parse_messy_numbers(values)


def _parse_messy_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    text = values.str.normalize("NFKC").str.strip()
    cleaned = text.str.replace(_COORD_JUNK, "", regex=True)
    number = pd.to_numeric(cleaned.where(cleaned.ne(""), np.nan), errors="coerce")
    number = number.astype("float64")
    return number, text.ne("") & number.isna()


def _in_bounds(lon: pd.Series, lat: pd.Series) -> pd.Series:
    lon_min, lat_min, lon_max, lat_max = province_bounds()
    return lon.between(lon_min, lon_max) & lat.between(lat_min, lat_max)


def _join_issues(index: pd.Index, flags: Iterable[tuple[str, pd.Series]]) -> pd.Series:
    out = pd.Series("", index=index, dtype=object)
    for code, mask in flags:
        mask = mask.reindex(index, fill_value=False).astype(bool)
        out = out.where(~mask, out + ISSUE_SEP + code)
    return out.str.lstrip(ISSUE_SEP)


# --------------------------------------------------------------------------- public


def read_registry(
    path_or_buffer: str | Path | IO[bytes] | bytes, *, filename: str | None = None
) -> IngestResult:
    """Read and validate an enterprise registry.

    Parameters
    ----------
    path_or_buffer
        Path, binary file object or bytes of a CSV (UTF-8 or GBK, comma or tab) or XLSX.
    filename
        Original file name when reading a buffer (its suffix picks the format; XLSX is
        also recognised by content).

    Returns
    -------
    IngestResult
        Accepted rows (``INGEST_COLUMNS`` + optional numeric columns), rejected rows with
        reasons, and the number of source rows.

    Raises
    ------
    MissingColumnError
        If 企业名称, 行业, or both 地址 and 经度/纬度 are missing.
    RegistryFormatError
        If the file cannot be parsed, or two headers mean the same column.
    """
    data, name = _read_source(path_or_buffer, filename)
    raw = _read_table(data, name)
    mapping = _map_headers(raw)
    _check_required(set(mapping.values()), [str(c) for c in raw.columns])
    table = raw[list(mapping)].rename(columns=mapping)
    table.index = pd.RangeIndex(2, len(table) + 2, name="row")
    blank = table.apply(lambda c: by_unique(c, lambda u: u.str.strip().eq(""))).all(axis=1)
    if blank.any():
        logger.info("skipping %d fully blank line(s) of %s", int(blank.sum()), name)
    table = table[~blank]
    n = len(table)
    if n == 0:
        raise RegistryFormatError(
            f"The registry {name or '(upload)'} has a header row but no data rows: expected "
            "one enterprise per row below the header. 登记文件只有表头，没有企业数据行。"
        )
    idx = table.index

    normalised: dict[str, pd.Series] = {}

    def col(key: str) -> pd.Series:
        """A column normalised for matching (NFKC folds full-width forms)."""
        if key not in table:
            return pd.Series("", index=idx, dtype=object)
        if key not in normalised:
            normalised[key] = by_unique(table[key], lambda u: nfkc(u).str.strip())
        return normalised[key]

    def text(key: str) -> pd.Series:
        """A column as the registry wrote it (surrounding blanks removed): kept for output."""
        if key in table:
            return table[key].str.strip()
        return pd.Series("", index=idx, dtype=object)

    cols = registry_spec()["columns"]
    name_s, address = text("name"), text("address")
    has_addr = address.ne("")

    # industry
    ind = by_unique(col("industry"), match_industry)
    bad_industry = ind["industry_id"].eq("")

    # coordinate system: normalise each distinct value once
    crs_raw = col("crs")
    crs_names: dict[str, str | None] = {}
    for value in crs_raw.unique():
        try:
            crs_names[value] = normalise_crs_name(re.sub(r"\.0+$", "", value))
        except ValueError:
            crs_names[value] = None
    crs_in = crs_raw.map(crs_names)
    bad_crs_name = crs_in.isna()

    # coordinates
    has_coord_cols = "lon" in table and "lat" in table
    lon, lon_bad = by_unique(col("lon"), _parse_numbers)
    lat, lat_bad = by_unique(col("lat"), _parse_numbers)
    unparseable = lon_bad | lat_bad
    blank_coords = lon.isna() | lat.isna() | lon.eq(0) | lat.eq(0)
    swapped = ~blank_coords & ~_in_bounds(lon, lat) & _in_bounds(lat, lon)
    lon, lat = lon.where(~swapped, lat), lat.where(~swapped, lon)
    outside = ~blank_coords & ~_in_bounds(lon, lat)
    bad_crs = bad_crs_name & ~blank_coords & ~outside

    # rejection: first failing check wins
    bounds = "经度{0}–{2}，纬度{1}–{3}".format(*province_bounds())
    checks: list[tuple[str, pd.Series, str]] = [
        ("name_missing", name_s.eq(""), cols["name"]["label_zh"]),
        ("industry_unknown", bad_industry, cols["industry"]["label_zh"]),
        ("crs_unknown", bad_crs, cols["crs"]["label_zh"]),
        ("no_location", blank_coords & ~has_addr, "经度/纬度"),
        ("outside_guangdong", outside & ~has_addr, "经度/纬度"),
    ]
    reason = pd.Series("", index=idx, dtype=object)
    field = pd.Series("", index=idx, dtype=object)
    for code, mask, label in reversed(checks):
        reason = reason.where(~mask, code)
        field = field.where(~mask, label)
    rejected_mask = reason.ne("")
    uscc = normalise_uscc(col("uscc"))

    _, industry_accepted = _industry_lookup()
    crs_accepted = "、".join(CRS_NAMES) + "（空白=WGS84）"
    accepted_en = {
        "industry_unknown": _industry_accepted_en(),
        "crs_unknown": ", ".join(CRS_NAMES) + " (blank = WGS84)",
    }
    values = {
        "name_missing": name_s,
        "industry_unknown": col("industry"),
        "crs_unknown": crs_raw,
        "no_location": col("lon") + "," + col("lat"),
        "outside_guangdong": lon.astype(str) + "," + lat.astype(str),
    }
    accepted_text = {"industry_unknown": industry_accepted, "crs_unknown": crs_accepted}
    rej_idx = idx[rejected_mask.to_numpy()]
    messages = [
        issue_message(
            reason[r], row=r, field=field[r], value=values[reason[r]][r],
            accepted=accepted_text.get(reason[r], ""),
            accepted_en=accepted_en.get(reason[r], ""), bounds=bounds,
        )
        for r in rej_idx
    ]
    rejected = pd.DataFrame(
        {
            "row": np.asarray(rej_idx, dtype=np.int64),
            "uscc": uscc[rej_idx].to_numpy(dtype=object),
            "name": name_s[rej_idx].to_numpy(dtype=object),
            "field": field[rej_idx].to_numpy(dtype=object),
            "reason": reason[rej_idx].to_numpy(dtype=object),
            "message": np.asarray(messages, dtype=object),
            "source": "registry",
        },
        columns=list(REJECTED_COLUMNS),
    )

    # accepted rows and their data issues
    keep = ~rejected_mask
    fallback = (blank_coords | outside) & has_addr
    lon_in = lon.where(~fallback)
    lat_in = lat.where(~fallback)
    dup = keep & uscc.ne("") & uscc.where(keep).duplicated(keep="first")
    uscc_issue = validate_uscc(uscc)
    numeric: dict[str, pd.Series] = {}
    numeric_flags: dict[str, pd.Series] = {}
    numeric_bad = pd.Series(False, index=idx)
    for key in registry_spec()["numeric"]:
        if key in table:
            numeric[key], numeric_flags[key] = by_unique(col(key), _parse_numbers)
            numeric_bad |= numeric_flags[key]
    attributes: dict[str, pd.Series] = {}
    attribute_bad = pd.Series(False, index=idx)
    for key, item in registry_spec().get("attributes", {}).items():
        if key in table:
            attributes[key], err = by_unique(col(key), lambda u, i=item: parse_attribute(u, i))
            attribute_bad |= err.ne("")
    keyed = table.assign(uscc=uscc, name=name_s)
    units, unit_bad = registry_units(keyed, _units_of_headers(mapping))
    numeric_bad |= pd.Series(idx.isin(unit_bad), index=idx)
    details = _numeric_details(keyed, mapping, numeric_flags, unit_bad, keep)
    issues = _join_issues(
        idx,
        [
            *((code, uscc_issue.eq(code)) for code in ("uscc_missing", "uscc_length",
                                                       "uscc_charset", "uscc_check_digit")),
            ("uscc_duplicate", dup),
            ("lonlat_swapped", swapped),
            ("coordinates_unparseable", unparseable & fallback),
            ("coordinates_missing", blank_coords & ~unparseable & has_addr & has_coord_cols),
            ("coordinates_out_of_province", outside & has_addr),
            ("numeric_invalid", numeric_bad),
            ("attribute_invalid", attribute_bad),
        ],
    )
    accepted = pd.DataFrame(
        {
            "row": idx.to_numpy(dtype=np.int64),
            "uscc": uscc,
            "name": name_s,
            "industry_id": ind["industry_id"],
            "industry": ind["industry"],
            "industry_code": ind["industry_code"],
            "address": address,
            "lon_in": lon_in,
            "lat_in": lat_in,
            "crs_in": crs_in.where(lon_in.notna() & crs_in.notna(), "WGS84"),
            "park_claimed": text("park"),
            "data_issues": issues,
            **numeric,
            **attributes,
        },
        index=idx,
    )[keep]
    accepted = accepted[[*INGEST_COLUMNS, *numeric, *attributes]].reset_index(drop=True)
    units = units[units["enterprise_row"].isin(accepted["row"])].reset_index(drop=True)
    for key in ("uscc", "data_issues"):
        accepted[key] = accepted[key].astype(str)
    for key in numeric:
        accepted[key] = accepted[key].astype("float64")
    logger.info(
        "read %s: %d rows, %d accepted, %d rejected", name or "(upload)", n, len(accepted),
        len(rejected),
    )
    assert len(accepted) + len(rejected) == n
    return IngestResult(accepted=accepted, rejected=rejected, source_rows=n, units=units,
                        issue_details=details)


_DETAIL_COLUMNS: Final = ("row", "code", "field", "value", "message")


def _numeric_details(
    table: pd.DataFrame, mapping: dict[str, str], flags: dict[str, pd.Series],
    unit_bad: pd.Index, keep: pd.Series,
) -> pd.DataFrame:
    """The cells behind ``numeric_invalid`` of kept rows: row, field as written, value.

    A cell is named when it is no number, or when :func:`geo.equipment.registry_units`
    cannot read it as the size of its ``implicit_unit`` (a wrong unit, out of range); that
    is re-checked column by column on the few rows it refused.
    """
    header = {canonical: raw for raw, canonical in mapping.items()}
    units = _units_of_headers(mapping)
    spec = registry_spec()["numeric"]
    parts = []
    for key, bad in flags.items():
        cell = table[key].str.strip()
        refused = table.index.isin(unit_bad) & cell.ne("")
        if spec[key].get("implicit_unit") and refused.any():
            _, rows = registry_units(table.loc[refused, ["uscc", "name", key]], units)
            bad = bad | pd.Series(table.index.isin(rows), index=table.index)
        bad = bad & keep
        if bad.any():
            parts.append(pd.DataFrame({"row": cell.index[bad], "field": header[key],
                                       "value": cell[bad].to_numpy(dtype=object)}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "row" else object)
                             for c in _DETAIL_COLUMNS})
    out = pd.concat(parts, ignore_index=True).sort_values("row", kind="stable")
    out["code"] = "numeric_invalid"
    out["message"] = [issue_detail("numeric_invalid", row=r, field=f, value=v)
                      for r, f, v in zip(out["row"], out["field"], out["value"], strict=True)]
    logger.info("%d numeric cell(s) are not numbers and were left blank", len(out))
    out["row"] = out["row"].astype(np.int64)
    return out[list(_DETAIL_COLUMNS)].reset_index(drop=True)


def _units_of_headers(mapping: dict[str, str]) -> dict[str, str]:
    """Canonical column -> the unit written in its original header's bracket."""
    return {canonical: _header_unit(raw) for raw, canonical in mapping.items()}

