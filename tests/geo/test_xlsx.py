"""The fast Excel writer (geo.xlsx, geo.export.write_xlsx) read back by two independent
readers, openpyxl and calamine (Rust, via python-calamine), cell by cell against the
source frame; and the package checked with a plain XML parser."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pytest
from _export_fixtures import VERDICT_LABELS, enforcement_frame
from python_calamine import CalamineWorkbook

from geo import export as ex
from geo.xlsx import CHUNK_ROWS, Book
from layers.catalog import read_data_toml

LABELS = read_data_toml("labels.toml")
_RISKY = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}

#: Text that stresses the writer: XML specials, a control character, Excel's own escape,
#: edge white space, line breaks, formulas, CJK, empty text.
TEXT = ['a & b < c > d "q" \'s\'', "ctl\x01x\x1f", "x_x0041_y", " lead", "trail ",
        "two\r\nlines", "=SUM(A1:A2)", "+1", "-2", "@cmd", "练江流域印染企业", ""]


def _source() -> pd.DataFrame:
    n = len(TEXT)
    return pd.DataFrame({
        "文本": TEXT,
        "重复": ["关停退出", "限期整改"] * (n // 2),
        "整数": np.arange(n, dtype="int64") - 3,
        "小数": [1.5, -0.0000001, np.nan, 1e20, 116.5534568, 23.25, 0.0, -5.0, 2.0, 3.0,
                 np.nan, 7.0],
        "日期": pd.to_datetime(["2020-06-01", None, "1999-12-31 12:00:00"] + ["2025-01-31"] *
                               (n - 3), format="ISO8601"),
        "布尔": [True, False] * (n // 2),
        "混合": ["x", 1, 2.5, None, True, dt.date(2021, 1, 2), "=1", np.nan, -3, "z", "",
                 "练"],
        "空": [None] * n,
    })


def _expected_text(value: str) -> str | None:
    """The cell a spreadsheet must show for source text (written rule, not the code)."""
    if value == "":
        return None
    value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "\ufffd", value)
    return "'" + value if value.startswith(_RISKY) else value


def _expected(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, str):
        return _expected_text(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return float(value)


def _openpyxl_rows(path: Path, sheet: str) -> list[list[object]]:
    ws = openpyxl.load_workbook(path)[sheet]
    return [list(r) for r in ws.iter_rows(values_only=True)]


def _calamine_rows(path: Path, sheet: str) -> list[list[object]]:
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet).to_python()
    return [[None if v == "" else v for v in r] for r in rows]


def _same(got: object, want: object) -> bool:
    if isinstance(want, float) and not isinstance(got, bool):
        return isinstance(got, int | float) and got == pytest.approx(want, rel=1e-15)
    if isinstance(want, dt.datetime) and isinstance(got, dt.date):
        got = got if isinstance(got, dt.datetime) else dt.datetime(got.year, got.month, got.day)
    return got == want and type(got) is not bool or got is want


def _compare(rows: list[list[object]], frame: pd.DataFrame, reader: str) -> None:
    assert rows[0][: len(frame.columns)] == list(frame.columns), reader
    assert len(rows) == len(frame) + 1, reader
    for i, (got_row, want_row) in enumerate(
            zip(rows[1:], frame.itertuples(index=False, name=None), strict=True)):
        got_row = list(got_row) + [None] * (len(want_row) - len(got_row))
        for j, (got, raw) in enumerate(zip(got_row, want_row, strict=False)):
            want = _expected(raw)
            assert _same(got, want), (reader, i + 2, frame.columns[j], got, want)


def test_book_cells_round_trip_in_two_readers(tmp_path: Path) -> None:
    frame = _source()
    path = tmp_path / "b.xlsx"
    with Book(path) as book:
        table = book.encode(frame)
        book.add_rows("全部", table)
        book.add_rows("部分", table, np.array([1, 4, 6]))
    for rows, reader in ((_openpyxl_rows(path, "全部"), "openpyxl"),
                         (_calamine_rows(path, "全部"), "calamine")):
        _compare(rows, frame, reader)
    for rows, reader in ((_openpyxl_rows(path, "部分"), "openpyxl"),
                         (_calamine_rows(path, "部分"), "calamine")):
        _compare(rows, frame.iloc[[1, 4, 6]], reader)


def test_book_types_numbers_dates_and_no_formulas(tmp_path: Path) -> None:
    path = tmp_path / "b.xlsx"
    with Book(path) as book:
        book.add_rows("S", book.encode(_source()))
    ws = openpyxl.load_workbook(path)["S"]
    header = [c.value for c in ws[1]]
    kinds = {h: {c.data_type for c in col[1:] if c.value is not None}
             for h, col in zip(header, ws.iter_cols(), strict=False)}
    assert kinds["整数"] == {"n"} and kinds["小数"] == {"n"} and kinds["布尔"] == {"b"}
    assert kinds["日期"] == {"d"}  # a number with a date format, read as a date
    assert kinds["文本"] == {"s"}
    assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert all(c.font.bold for c in ws[1]) and ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:H{len(_source()) + 1}"
    assert ws.column_dimensions["A"].width >= len("练江流域印染企业") * 2


def test_package_is_well_formed_xml_with_consistent_shared_strings(tmp_path: Path) -> None:
    path = tmp_path / "b.xlsx"
    frame = pd.concat([_source()] * 3, ignore_index=True)
    with Book(path) as book:
        table = book.encode(frame)
        book.add_rows("A", table)
        book.add_rows("B", table, np.arange(0, len(frame), 2))
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        xml = {n: ET.fromstring(zf.read(n)) for n in zf.namelist() if n.endswith(".xml")}
    sst = xml["xl/sharedStrings.xml"]
    refs = sum(len(root.findall(".//m:c[@t='s']", _NS)) for name, root in xml.items()
               if name.startswith("xl/worksheets/"))
    assert int(sst.get("count")) == refs
    assert int(sst.get("uniqueCount")) == len(sst.findall("m:si", _NS))
    a = xml["xl/worksheets/sheet1.xml"]
    assert a.find("m:dimension", _NS).get("ref") == f"A1:H{len(frame) + 1}"


def test_rows_are_written_in_chunks(tmp_path: Path) -> None:
    n = CHUNK_ROWS + 7  # crosses a chunk boundary
    frame = pd.DataFrame({"n": np.arange(n), "t": np.where(np.arange(n) % 2, "甲", "乙")})
    seen: list[int] = []
    path = tmp_path / "big.xlsx"
    with Book(path, progress=seen.append) as book:
        book.add_rows("S", book.encode(frame))
    assert seen == [CHUNK_ROWS, 7]
    rows = _calamine_rows(path, "S")
    assert len(rows) == n + 1 and rows[-1] == [n - 1, "甲" if (n - 1) % 2 else "乙"]
    assert [r[0] for r in rows[1:]] == list(range(n))


# ---------------------------------------------------------------- the enforcement workbook


def _workbook_frame() -> pd.DataFrame:
    gdf = enforcement_frame()
    gdf.loc[0, "name"] = "=HYPERLINK(\"http://evil.example\")"
    gdf.loc[1, "name"] = "某 & <厂> \"引号\" \x01"
    gdf.loc[2, "address"] = ""
    return gdf


@pytest.mark.parametrize("reader", ["openpyxl", "calamine"])
def test_enforcement_workbook_matches_the_source(tmp_path: Path, reader: str) -> None:
    gdf = _workbook_frame()
    path = ex.write_xlsx(gdf, tmp_path / "e.xlsx", verdict_labels=VERDICT_LABELS)
    read = _openpyxl_rows if reader == "openpyxl" else _calamine_rows
    names = (openpyxl.load_workbook(path, read_only=True).sheetnames if reader == "openpyxl"
             else CalamineWorkbook.from_path(str(path)).sheet_names)
    zones = LABELS["zones"]
    assert names == [LABELS["sheets"]["summary"], LABELS["sheets"]["all"],
                     *[zones[z] for z in ("lianjiang", "maozhou", "shima", "guangfo")],
                     LABELS["sheets"]["notes"]]
    rows = read(path, LABELS["sheets"]["all"])
    header = rows[0]
    col = {c: header.index(LABELS["columns"][c]) for c in
           ("row", "uscc", "name", "address", "lon", "lat", "verdict", "needs_review")}
    assert [r[col["row"]] for r in rows[1:]] == gdf["row"].tolist()  # numbers stay numbers
    assert [r[col["uscc"]] for r in rows[1:]] == gdf["uscc"].tolist()
    assert [r[col["name"]] for r in rows[1:]] == [_expected_text(v) for v in gdf["name"]]
    assert [r[col["address"]] for r in rows[1:]] == [_expected_text(v) for v in gdf["address"]]
    assert [r[col["lon"]] for r in rows[1:]] == gdf["lon"].tolist()
    assert [r[col["lat"]] for r in rows[1:]] == gdf["lat"].tolist()
    assert [r[col["verdict"]] for r in rows[1:]] == [VERDICT_LABELS[v] for v in gdf["verdict"]]
    assert {r[col["needs_review"]] for r in rows[1:]} == {LABELS["words"]["yes"],
                                                         LABELS["words"]["no"]}
    for zid in ("lianjiang", "maozhou", "shima", "guangfo"):
        zone_rows = read(path, zones[zid])
        members = gdf[(gdf["basin_id"] == zid) | (gdf["region_id"] == zid)]
        assert zone_rows[0] == header
        assert [r[col["uscc"]] for r in zone_rows[1:]] == members["uscc"].tolist(), zid


def test_both_readers_agree_on_every_sheet(tmp_path: Path) -> None:
    path = ex.write_xlsx(_workbook_frame(), tmp_path / "e.xlsx", verdict_labels=VERDICT_LABELS,
                         notes=[("导出内容", "执法清单（XLSX）")])
    a = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    b = pd.read_excel(path, sheet_name=None, engine="calamine")
    assert list(a) == list(b)
    for sheet in a:
        pd.testing.assert_frame_equal(a[sheet], b[sheet], check_dtype=False, obj=sheet)
    notes = a[LABELS["sheets"]["notes"]]
    assert "执法清单（XLSX）" in notes.astype(str).to_numpy()


def test_a_sheet_over_the_excel_row_limit_is_refused_by_name(tmp_path: Path,
                                                            monkeypatch) -> None:  # noqa: ANN001
    import geo.xlsx as gx
    from geo.errors import ExportError

    monkeypatch.setattr(gx, "MAX_ROWS", 4)  # the check, not a million rows
    with Book(tmp_path / "b.xlsx") as book:
        table = book.encode(pd.DataFrame({"n": [1, 2, 3]}))
        book.add_rows("ok", table)  # 3 rows + header: at the limit
        with pytest.raises(ExportError, match="'多'.*4 rows.*at most 3"):
            book.add_rows("多", book.encode(pd.DataFrame({"n": [1, 2, 3, 4]})))


def test_text_longer_than_a_cell_is_cut_to_the_excel_limit(tmp_path: Path) -> None:
    from geo.xlsx import MAX_CELL_CHARS

    path = tmp_path / "b.xlsx"
    with Book(path) as book:
        book.add_rows("S", book.encode(pd.DataFrame({"t": ["练" * (MAX_CELL_CHARS + 5), "短"]})))
    assert _calamine_rows(path, "S")[1:] == [["练" * MAX_CELL_CHARS], ["短"]]


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_neutralise_text_marks_exactly_the_formula_starts(arrow_type: pa.DataType) -> None:
    """Byte-level test against Python's own str.startswith, on a slice (non-zero offset),
    with nulls, empty strings, NUL and multi-byte starts."""
    from geo.xlsx import neutralise_text

    values = ["x", "=SUM(A1)", None, "", "+86", "-5", "@a", "\tb", "\rc", "\nd", "\x00e",
              "潮南", "＝全角", "a=b", "'=quoted", "=", None, "ok"]
    text = pa.array(["pad", "pad", *values], type=arrow_type).slice(2)
    expected = [None if v is None else ("'" + v if v.startswith(_RISKY) else v)
                for v in values]
    out = neutralise_text(text)
    assert out.type == arrow_type
    assert out.to_pylist() == expected
    safe = pa.array(["a", None, "", "潮南"], type=arrow_type)
    assert neutralise_text(safe).to_pylist() == ["a", None, "", "潮南"]
    assert neutralise_text(pa.array([None, ""], type=arrow_type)).to_pylist() == [None, ""]
