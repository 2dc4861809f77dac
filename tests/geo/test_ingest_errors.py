"""Registry reading: unreadable sources fail with an error naming the file and the cause.

Oracles: the bytes are built here (UTF-16 with a broken tail, Latin-1 text that is neither
UTF-8 nor GB18030, a corrupt XLSX, a missing path), so the expected failure is known
without running the code under test.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from geo.errors import ReferenceDataError, RegistryFormatError
from geo.ingest import issue_message, read_registry


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A path that does not exist is a RegistryFormatError naming it."""
    missing = tmp_path / "不存在.csv"
    with pytest.raises(RegistryFormatError, match="不存在.csv"):
        read_registry(missing)


def test_undecodable_csv_says_which_encodings_are_expected() -> None:
    """Bytes that are valid in neither UTF-8 nor GB18030 are refused, naming both."""
    data = "name,lon,lat\n".encode() + bytes([0x80, 0x20, 0xFF, 0x0A]) * 3
    with pytest.raises(RegistryFormatError, match="UTF-8.*GB18030"):
        read_registry(data, filename="r.csv")


def test_broken_utf16_falls_back_and_is_refused() -> None:
    """A UTF-16 BOM followed by an odd number of bytes is not silently read."""
    data = b"\xff\xfe" + "名称".encode("utf-16-le") + b"\x00\xd8\x41"
    with pytest.raises(RegistryFormatError):
        read_registry(io.BytesIO(data), filename="r.csv")


def test_corrupt_xlsx_names_the_file() -> None:
    """A ZIP header without a workbook is a RegistryFormatError naming the file."""
    data = b"PK\x03\x04" + b"\x00" * 200
    with pytest.raises(RegistryFormatError, match="bad.xlsx"):
        read_registry(data, filename="bad.xlsx")


def test_unknown_issue_code_is_a_reference_data_error() -> None:
    """issue_message refuses a code issues.toml does not define, naming it."""
    with pytest.raises(ReferenceDataError, match="no_such_code"):
        issue_message("no_such_code")


# ------------------------------------------------- messages and readers, pinned (mutation run)
# Expected texts are written out here from the messages' specification (issues.toml, the
# error texts the API shows); each case failed on a surviving mutant of geo/ingest.py.


def test_describe_issues_joins_chinese_texts_and_keeps_unknown_codes() -> None:
    from geo.ingest import describe_issues

    assert describe_issues("uscc_missing;;lonlat_swapped;no_such_code") == (
        "缺少统一社会信用代码；经纬度填反，已交换；no_such_code")
    assert describe_issues("") == ""


def test_undecodable_upload_message_in_full() -> None:
    """Bytes without a name; the first line is empty, the bad byte 0x81 is on line 3."""
    data = b"\nname\n\x81\xff\n"
    with pytest.raises(RegistryFormatError) as err:
        read_registry(data)
    assert str(err.value) == (
        "The CSV registry (upload) is neither UTF-8 nor GBK/GB18030 text "
        "(UTF-8-SIG: line 3, byte 0x81; GB18030: line 3, byte 0x81): expected UTF-8 or "
        "GBK/GB18030 text, or an .xlsx workbook; save it as UTF-8 CSV. "
        "登记文件第3行既不是 UTF-8 也不是 GBK/GB18030 编码：请另存为 UTF-8 CSV 或 .xlsx。")


@pytest.mark.parametrize(("text", "line"), [
    ('a,b\n"c,d\ne,f\n', 2),            # opened on line 2, never closed
    ('a,"b"\n"c,d\n', 2),               # a balanced pair on line 1 opens nothing
    ('"a\nb"\n"c\n', 3),                # closed on line 2, opened again on line 3
    ('a,b\n"c","d"\n', None),           # balanced
    ("a,b\nc,d\n", None),               # no quote at all
    ('a,"""b\n', 1),                    # three quotes: one left open
])
def test_unclosed_quote_line(text: str, line: int | None) -> None:
    from geo.ingest import _unclosed_quote_line

    assert _unclosed_quote_line(text) == line


def test_csv_parse_messages_in_full() -> None:
    from geo.ingest import _csv_parse_message

    quote = _csv_parse_message('a,b\n"c,d\n', "q.csv", ValueError("x"))
    assert quote == (
        'Cannot parse the CSV registry q.csv: line 2 opens a quote (") that is never closed; '
        "expected every quoted field to end with a closing quote. "
        '登记文件第2行的引号（"）没有闭合，请补上或删去该引号。')
    other = _csv_parse_message("a,b\nc,d,e\n", "r.csv", ValueError("Expected 2 fields"))
    assert other == ("Cannot parse the CSV registry r.csv: Expected 2 fields; expected one "
                     "record per line, each with as many fields as the header.")


def test_corrupt_xlsx_message_says_what_to_do() -> None:
    with pytest.raises(RegistryFormatError) as err:
        read_registry(b"PK\x03\x04" + b"\x00" * 200, filename="bad.xlsx")
    msg = str(err.value)
    assert msg.startswith("Cannot read the XLSX registry bad.xlsx: ")
    assert msg.endswith(
        "; expected a complete .xlsx workbook (a ZIP archive): the file may be truncated or "
        "damaged, save it again from Excel. 无法读取 XLSX 登记文件：文件可能不完整或已损坏，"
        "请用 Excel 重新保存。")


@pytest.mark.parametrize(("data", "binary"), [
    (b"a" * 1000 + b"\x00", True),            # one NUL byte is enough
    (b"a" * 1000 + b"\x01", False),           # one control byte in 1001 is under 1 %
    (b"a" * 99 + b"\x01", False),             # exactly 1 %: not over the share
    (b"a" * 98 + b"\x01\x01", True),          # 2 %
    (b"name,lon\r\n" * 200, False),           # CRLF line ends are text
    (b"name\tlon\n" * 200, False),            # tabs are text
    (b"a" * 8192 + b"\x00", False),           # only the first 8 KiB are looked at
    (b"", False),
])
def test_is_binary(data: bytes, binary: bool) -> None:
    from geo.ingest import _is_binary

    assert _is_binary(data) is binary


@pytest.mark.parametrize(("text", "sep"), [
    ("企业名称\t行业\t地址\n", "\t"),
    ("\n\n企业名称\t行业\n", "\t"),            # leading blank lines are skipped
    ("企业名称,行业\t地址,备注\n", ","),      # 1 tab, 2 commas
    ("企业名称\n甲\n", ","),                  # one column: comma
    ("a\tb,c\n", ","),                        # a tie is a comma
])
def test_separator(text: str, sep: str) -> None:
    from geo.ingest import _separator

    assert _separator(text) == sep


def _two_sheet_workbook() -> bytes:
    import datetime

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "企业名录"
    ws.append(["企业名称", "年产能", "日期", "是否"])
    ws.append(["甲", 50000, datetime.date(2019, 7, 15), True])
    ws.append(["乙", None, None, False])
    eq = wb.create_sheet("设备清单")
    eq.append(["设备类型"])
    eq.append(["高炉"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_read_table_picks_the_sheet_and_keeps_cells_as_written() -> None:
    """First sheet by default (also for ``sheet=None``), a named or numbered one on request;
    cells as the user sees them: 50000 not 50000.0 beside a blank, TRUE as True, not 1.0."""
    from geo.ingest import _read_table

    data = _two_sheet_workbook()
    for sheet in (0, None):
        first = _read_table(data, "r.xlsx", sheet=sheet)
        assert first.values.tolist() == [["甲", "50000", "2019-07-15 00:00:00", "True"],
                                         ["乙", "", "", "False"]]
    assert _read_table(data, "r.xlsx").columns.tolist() == ["企业名称", "年产能", "日期", "是否"]
    for sheet in ("设备清单", 1):
        assert _read_table(data, "r.xlsx", sheet=sheet).values.tolist() == [["高炉"]]
