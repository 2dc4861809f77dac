"""The fast registry readers give the frames of the reference readers.

XLSX: calamine (what :func:`geo.ingest.read_registry` uses) against openpyxl (the reader
before); CSV: pyarrow's parser against pandas' C parser (the reader before), including
the files pyarrow must hand back (empty lines, ragged rows, line breaks in values, GBK).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

import geo.ingest as ingest
from geo.ingest import _read_table, read_registry

DATA = Path(__file__).resolve().parents[1] / "data"


def _reference_xlsx(data: bytes) -> pd.DataFrame:
    """The reader before: openpyxl, every cell as text, blanks ''."""
    frame = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl")
    return frame.astype(object).where(frame.notna(), "").map(str)


def _reference_csv(text: str, sep: str = ",") -> pd.DataFrame:
    """The reader before: pandas' C parser on the decoded text."""
    frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                        skip_blank_lines=False)
    return frame.astype(object).where(frame.notna(), "").map(str)


def _same(fast: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(fast.columns) == [str(c) for c in reference.columns]
    assert fast.shape == reference.shape
    assert fast.astype(object).to_numpy().tolist() == reference.to_numpy().tolist()


def _mixed_workbook() -> bytes:
    """CJK text, USCC codes stored as text, numbers, blank cells, dates and times."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["统一社会信用代码", "企业名称", "行业", "地址", "经度", "纬度", "坐标系",
               "投产日期", "检查时间", "燃煤锅炉蒸吨", "备注"])
    ws.append(["91440114101209137K", "花都裕隆电池有限公司（1厂）", 1713,
               "广东省广州市花都区新华街道东风路152号", 113.348755, 23.488712, "WGS84",
               dt.date(2020, 1, 2), dt.datetime(2021, 3, 4, 5, 6, 7), 0.1, True])
    ws.append(["044011410120913700", "ＡＢＣ　全角纸业", "C2221", None, "113.1°", None, "",
               dt.datetime(2019, 12, 31), dt.time(8, 30), 1e20, False])
    ws.append([None, None, None, None, None, None, None, None, None, None, None])
    ws.append(["914401", "潮阳长青纸业有限公司", 3011.0, " ", 1.10, 2.5e-7, "GCJ-02",
               "2020-01-02", None, 12345678901234567890, "=1+1"])
    ws.cell(row=3, column=8).number_format = "yyyy-mm-dd"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.mark.parametrize("source", ["registry_small.xlsx", "mixed"])
def test_calamine_reads_what_openpyxl_reads(source: str) -> None:
    data = (DATA / source).read_bytes() if source != "mixed" else _mixed_workbook()
    _same(_read_table(data, "registry.xlsx"), _reference_xlsx(data))


def test_read_registry_same_with_either_xlsx_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (DATA / "registry_small.xlsx").read_bytes()
    fast = read_registry(data, filename="r.xlsx")
    monkeypatch.setattr(ingest, "XLSX_ENGINE", "openpyxl")
    ref = read_registry(data, filename="r.xlsx")
    pd.testing.assert_frame_equal(fast.accepted, ref.accepted)
    pd.testing.assert_frame_equal(fast.rejected, ref.rejected)


CSVS = {
    "plain": "名称,行业,经度\n花都电池,铅蓄电池,113.3\n潮阳纸业,造纸,\n",
    "quoted": '名称,说明,经度\n"甲,乙",合成样例数据,"1""2"\nＡ,,NaN\n',
    "crlf_no_final_newline": "名称,经度\r\n甲,113\r\n乙,NA",
    "leading_zero_codes": "代码,经度\n0123,1.50\n007,1e3\n",
    "empty_line": "名称,经度\n甲,1\n\n乙,2\n",
    "ragged": "名称,经度,纬度\n甲,1\n乙,2,3\n",
    "newline_in_value": '名称,地址\n甲,"第一行\n第二行"\n乙,x\n',
    "tab": "名称\t行业\n甲\t造纸\n",
    "whitespace_line": "名称,经度\n甲,1\n  \n乙,2\n",
}


@pytest.mark.parametrize("case", sorted(CSVS))
def test_pyarrow_csv_reads_what_pandas_reads(case: str) -> None:
    text = CSVS[case]
    sep = "\t" if case == "tab" else ","
    for data in (text.encode("utf-8"), b"\xef\xbb\xbf" + text.encode("utf-8"),
                 text.encode("gb18030")):
        _same(_read_table(data, "r.csv"), _reference_csv(text, sep))


def test_row_numbers_count_empty_lines() -> None:
    """An empty line still counts: the rejected row is named by its line in the file."""
    text = "企业名称,行业,经度,纬度\n甲,造纸,113.3,23.1\n\n,造纸,113.3,23.1\n"
    res = read_registry(text.encode("utf-8"), filename="r.csv")
    assert res.rejected["row"].tolist() == [4]
    assert res.source_rows == 2


@pytest.mark.parametrize("case", sorted(CSVS))
def test_pyarrow_path_taken_only_where_it_is_exact(case: str) -> None:
    """Files pyarrow would read differently go to pandas' parser (the cases above)."""
    handed_back = {"empty_line", "ragged", "newline_in_value", "whitespace_line"}
    fast = ingest._read_csv_pyarrow(CSVS[case].encode("utf-8"))
    assert (fast is None) == (case in handed_back)
    assert ingest._read_csv_pyarrow(CSVS[case].encode("gb18030")) is None  # not UTF-8
