"""geo.export helpers the round-trip tests of test_export.py do not reach, each checked
against an independent reader (``csv`` module, openpyxl) and answers written by hand.

Written for mutation testing (issue 16): ``write_units_csv``, the 设备清单 sheet
(``_units_display``), the openpyxl table writer used by ``geo.caselists``
(``_write_table``, ``_text_width``, ``_write_notes``) and the CSV path of columns that
mix kinds (``_is_missing``). Small frames, no real layers, files only under tmp_path.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from _export_fixtures import VERDICT_LABELS, enforcement_frame

from geo import export as ex
from geo.errors import ExportError
from geo.provenance import Provenance
from geo.schema import UNIT_COLUMNS
from layers.catalog import read_data_toml

LABELS = read_data_toml("labels.toml")
ISSUES = read_data_toml("issues.toml")["issue"]


def _units() -> pd.DataFrame:
    """Three units: one per source, a formula-like name, missing cells, an extra measure."""
    return pd.DataFrame(
        {
            "enterprise_row": [2, 2, 7],
            "uscc": ["91440500MA4UXXXX1A", "91440500MA4UXXXX1A", "91440600MA4XXXXX5E"],
            "name": ["潮南某印染有限公司", "潮南某印染有限公司", "=HYPERLINK(\"x\")"],
            "industry": ["印染", "印染", "钢铁"],
            "source": ["registry", "equipment", "equipment"],
            "source_row": [None, 4, 9],
            "unit_id": ["", "1号定型机", "1号转炉"],
            "unit_type": ["", "stenter", "converter"],
            "unit_type_zh": ["", "定型机", "转炉"],
            "measures": ["", "", "30 t"],
            "verdict": ["shutdown", "rectify", "no_action"],
            "rule_ids": ["r1", "r2;r3", ""],
            "reasons": ["停产", "整改", ""],
            "deadline": ["", "2019-12-31", ""],
            "deadline_status": ["immediate", "pending", ""],
            "needs_review": [True, False, None],
            "review_reasons": ["near_basin_boundary;multiple_parks", "", None],
            "data_issues": ["numeric_invalid", "", "no_such_code"],
            "furnace_volume_m3": [np.nan, 450.0, 30.5],
        }
    )


def _csv_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    return list(csv.reader(io.StringIO(text, newline="")))


# --------------------------------------------------------------------------- units CSV


def test_units_csv_read_back_with_the_csv_module(tmp_path: Path) -> None:
    units = _units()
    path = ex.write_units_csv(units, tmp_path / "u.csv")
    assert path == tmp_path / "u.csv"
    rows = _csv_rows(path)
    assert rows[0] == [*UNIT_COLUMNS, "furnace_volume_m3"]
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(body) == 3
    assert [r["needs_review"] for r in body] == ["true", "false", "false"]
    assert [r["name"] for r in body] == ["潮南某印染有限公司", "潮南某印染有限公司",
                                         "'=HYPERLINK(\"x\")"]
    assert [r["source"] for r in body] == ["registry", "equipment", "equipment"]  # ids
    assert [r["rule_ids"] for r in body] == ["r1", "r2;r3", ""]
    assert [r["review_reasons"] for r in body] == ["near_basin_boundary;multiple_parks", "", ""]
    assert [r["source_row"] for r in body] == ["", "4", "9"]
    assert [r["furnace_volume_m3"] for r in body] == ["", "450", "30.5"]
    assert [r["enterprise_row"] for r in body] == ["2", "2", "7"]
    # the caller's frame is not changed
    assert units["needs_review"].tolist() == [True, False, None]


def test_units_csv_missing_column_is_named_and_nothing_written(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="equipment units.*unit_type_zh") as err:
        ex.write_units_csv(_units().drop(columns="unit_type_zh"), tmp_path / "u.csv")
    assert "expected enterprise_row, uscc" in str(err.value)
    assert not (tmp_path / "u.csv").exists()


# --------------------------------------------------------------------------- units sheet


def _sheet(path: Path, title: str) -> list[list[object]]:
    wb = openpyxl.load_workbook(path)
    return [list(r) for r in wb[title].iter_rows(values_only=True)]


def test_units_sheet_is_translated_by_hand_written_labels(tmp_path: Path) -> None:
    path = ex.write_xlsx(enforcement_frame(), tmp_path / "e.xlsx",
                         verdict_labels=VERDICT_LABELS, units=_units())
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[-2:] == ["设备清单", LABELS["sheets"]["notes"]]
    rows = _sheet(path, "设备清单")
    header = rows[0]
    assert header == [LABELS["unit_columns"][c] for c in UNIT_COLUMNS]  # no measure column
    got = [dict(zip(UNIT_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert len(got) == 3
    assert [g["verdict"] for g in got] == ["停产退出", "限期整改", "无需处置"]
    assert [g["needs_review"] for g in got] == ["是", "否", "否"]
    assert [g["source"] for g in got] == ["企业名录", "设备清单", "设备清单"]
    assert [g["deadline_status"] for g in got] == ["立即", "期限内", None]
    assert [g["review_reasons"] for g in got] == [
        "距流域边界小于图层精度；落在多个园区图斑内", None, None]
    assert [g["data_issues"] for g in got] == [
        ISSUES["numeric_invalid"]["message_zh"], None, "no_such_code"]
    assert [g["rule_ids"] for g in got] == ["r1", "r2;r3", None]
    assert [g["source_row"] for g in got] == [None, 4, 9]
    assert [g["enterprise_row"] for g in got] == [2, 2, 7]
    assert got[2]["name"] == "'=HYPERLINK(\"x\")"  # text, never a formula
    assert got[1]["unit_type_zh"] == "定型机"


def test_no_units_sheet_without_units(tmp_path: Path) -> None:
    path = ex.write_xlsx(enforcement_frame(), tmp_path / "e.xlsx",
                         verdict_labels=VERDICT_LABELS, units=_units().iloc[:0])
    assert "设备清单" not in openpyxl.load_workbook(path).sheetnames


# --------------------------------------------------------------------------- openpyxl table


@pytest.mark.parametrize(
    ("values", "width"),
    [
        ([], 0),
        ([None, np.nan], 0),
        (["ab", "abcd", None], 4),
        (["中文"], 4),  # CJK counts double
        (["a中b"], 4),
        (["\u2e80", "\u2e7f"], 2),  # first wide code point; the one before is narrow
        (["\u9fff"], 2),
        (["\ua000"], 1),  # just after the CJK range
        (["\uff00"], 2),
        (["\uffef"], 2),
        (["\ufff0"], 1),  # just after the full-width forms
        ([12345], 5),  # numbers by their text
    ],
)
def test_text_width(values: list[object], width: int) -> None:
    assert ex._text_width(pd.Series(values, dtype=object)) == width


def test_write_table_cells_header_filter_and_widths() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    df = pd.DataFrame(
        {
            "名称": ["某厂某厂某厂某厂", "=1+1", None],
            "n": [1, 2.5, None],
            "long": ["x" * 80, "y", "z"],
        }
    ).astype(object).where(lambda d: d.notna(), None)
    ws.column_dimensions["B"].width = 0  # openpyxl's default is 13
    ex._write_table(ws, df, start_row=3, autofilter=True)
    header = [ws.cell(row=3, column=j).value for j in (1, 2, 3)]
    assert header == ["名称", "n", "long"]
    assert all(ws.cell(row=3, column=j).font.bold for j in (1, 2, 3))
    assert not ws.cell(row=4, column=1).font.bold
    assert [ws.cell(row=r, column=1).value for r in (4, 5, 6)] == ["某厂某厂某厂某厂", "=1+1", None]
    assert ws.cell(row=5, column=1).data_type == "s"  # text, not a formula
    assert [ws.cell(row=r, column=2).value for r in (4, 5, 6)] == [1, 2.5, None]
    assert ws.cell(row=4, column=2).data_type == "n"
    assert ws.cell(row=2, column=1).value is None  # nothing above start_row
    assert ws.max_row == 6 and ws.max_column == 3
    assert ws.auto_filter.ref == "A3:C6"
    # width = longest display width (header included) + 2, between 6 and 60
    assert ws.column_dimensions["A"].width == 18  # 8 CJK characters = 16 + 2
    assert ws.column_dimensions["B"].width == 6  # "2.5" = 3 + 2 -> at least 6
    assert ws.column_dimensions["C"].width == 60  # 80 + 2 -> at most 60


def test_write_table_keeps_a_wider_column_and_no_filter() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 3
    df = pd.DataFrame({"标题很长的列名": ["a"], "b": ["中文中文中文"]})
    ex._write_table(ws, df, autofilter=False)
    assert ws.auto_filter.ref is None
    assert [ws.cell(row=1, column=1).value, ws.cell(row=2, column=1).value] == [
        "标题很长的列名", "a"]
    assert ws.column_dimensions["A"].width == 30  # wider than 7 * 2 + 2 = 16: kept
    assert ws.column_dimensions["B"].width == 14  # 6 CJK = 12 + 2


@pytest.mark.parametrize(("n", "calls"), [(0, []), (999, [999]), (1000, [1000]),
                                          (2500, [1000, 1000, 500]), (2000, [1000, 1000])])
def test_write_table_progress_every_thousand_rows(n: int, calls: list[int]) -> None:
    wb = openpyxl.Workbook()
    seen: list[int] = []
    ex._write_table(wb.active, pd.DataFrame({"a": range(n)}), autofilter=True,
                    progress=seen.append)
    assert seen == calls
    assert wb.active.auto_filter.ref == f"A1:A{n + 1}"
    assert wb.active.cell(row=n + 1, column=1).value == (n - 1 if n else "a")


def test_write_table_of_a_frame_without_columns() -> None:
    wb = openpyxl.Workbook()
    ex._write_table(wb.active, pd.DataFrame(), autofilter=True)
    assert wb.active.auto_filter.ref == "A1:A1"


def _provenance() -> Provenance:
    return Provenance(
        registry_name="名录.xlsx", registry_sha256="ab" * 32, as_of=date(2020, 1, 1),
        generated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), accepted=1234,
        rejected=2, source_rows=1236, catalogs={"rules": "2024-01"}, layers=(),
        generator="basinwatch test", note="",
    )


def test_write_notes_sheet_layout() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ex._write_notes(ws, _provenance(), [("筛选", "=cmd"), ("范围", "练江")])
    words, prov = LABELS["words"], LABELS["provenance"]
    assert ws.cell(row=1, column=1).value == prov["title"]
    assert ws.cell(row=1, column=1).font.bold
    assert ws.cell(row=2, column=1).value is None
    assert [ws.cell(row=3, column=j).value for j in (1, 2)] == ["项目", "内容"]
    rows = [(ws.cell(row=r, column=1).value, ws.cell(row=r, column=2).value)
            for r in range(4, ws.max_row + 1)]
    # extra rows first (formula made inert), then the provenance rows written by hand
    expected = [
        ("筛选", "'=cmd"), ("范围", "练江"),
        (prov["generator"], "basinwatch test"),
        (prov["generated_at"], "2026-01-02 03:04:05+00:00"),
        (prov["registry_file"], "名录.xlsx"),
        (prov["registry_sha256"], "ab" * 32),
        (prov["as_of"], "2020-01-01"),
        (prov["source_rows"], "1,236"),
        (prov["accepted"], "1,234"),
        (prov["rejected"], "2"),
        (f"{prov['catalog']} rules", "2024-01"),
    ]
    n = len(expected)
    assert rows[:n] == expected
    assert rows[n] == (None, None)  # one blank row
    assert rows[n + 1:] == [(words["review_note"], None), (words["formula_note"], None)]
    assert ws.auto_filter.ref is None


def test_write_notes_without_extra_rows() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ex._write_notes(wb.active, _provenance())
    assert ws.cell(row=4, column=1).value == LABELS["provenance"]["generator"]


# --------------------------------------------------------------------------- mixed columns


def test_csv_of_a_column_mixing_kinds_writes_text_and_blanks() -> None:
    df = pd.DataFrame({"mixed": pd.Series([1, "a", None, np.nan, pd.NA, [1, 2], 2.5],
                                          dtype=object),
                       "n": range(7)})
    text = b"".join(bytes(c) for c in ex.csv_chunks(df)).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["mixed", "n"]
    assert [r[0] for r in rows[1:]] == ["1", "a", "", "", "", "[1, 2]", "2.5"]
    assert [r[1] for r in rows[1:]] == [str(i) for i in range(7)]


def test_is_missing() -> None:
    assert all(ex._is_missing(v) for v in (None, np.nan, pd.NA, pd.NaT))
    assert not any(ex._is_missing(v) for v in ("", 0, "nan", [1, 2]))


# --------------------------------------------------------------------------- Shapefile zip


def _read_zip(path: Path) -> tuple[list[str], dict[str, str], list[dict[str, str]], dict]:
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        cpg = zf.read(f"{path.stem}.cpg").decode("ascii")
        fields = list(csv.DictReader(io.StringIO(zf.read("fields.csv").decode("utf-8-sig"))))
        prov = json.loads(zf.read("provenance.json").decode("utf-8"))
    return names, {"cpg": cpg}, fields, prov


def test_shapefile_zip_members_field_labels_and_provenance(tmp_path: Path, caplog) -> None:
    import logging

    import pyogrio

    gdf = enforcement_frame()
    gdf["district_code"] = pd.Series(["=1+1", 440311, "-2", "", None, 7], dtype=object)
    gdf.loc[1, "reasons"] = "练" * 100  # 300 bytes in UTF-8
    prov = _provenance().with_counts(accepted=len(gdf), verdict_counts={"shutdown": 1})
    target = tmp_path / "a" / "b" / "名单.zip"  # folders that do not exist yet
    with caplog.at_level(logging.WARNING, logger="geo.export"):
        path = ex.write_shapefile_zip(gdf, target, provenance=prov)
    assert path == target
    names, extra, fields, record = _read_zip(path)
    assert names == sorted(["fields.csv", "provenance.json", "名单.cpg", "名单.dbf",
                            "名单.prj", "名单.shp", "名单.shx"])
    assert extra["cpg"].strip().upper().replace("-", "") == "UTF8"
    assert list(fields[0]) == ["column", "field", "label_zh"]
    by_column = {f["column"]: f for f in fields}
    assert by_column["name"]["field"] == "name" and by_column["name"]["label_zh"] == "企业名称"
    assert by_column["needs_review"]["field"] == LABELS["shapefile_fields"]["needs_review"]
    for col, f in by_column.items():
        assert f["label_zh"] == LABELS["columns"].get(col, col), col
    assert record["registry"]["file"] == "名录.xlsx"  # the provenance given, not "now"
    assert record["counts"]["accepted"] == len(gdf)
    assert caplog.messages == ["shapefile: 1 value(s) of 'reasons' cut to 254 bytes"]
    with __import__("zipfile").ZipFile(path) as zf:
        zf.extractall(tmp_path / "x")
    got = pyogrio.read_dataframe(tmp_path / "x" / "名单.shp", encoding="UTF-8")
    # a column mixing numbers and text is made safe like a text column
    assert got["dist_code"].tolist()[:3] == ["'=1+1", "440311", "'-2"]
    assert got.loc[1, "reasons"] == "练" * 84  # 252 bytes: whole characters only
    assert got.loc[0, "reasons"] == gdf.loc[0, "reasons"][:84]
    # nothing left beside the zip (the scratch folder is removed)
    assert sorted(p.name for p in target.parent.iterdir()) == ["名单.zip"]


def test_shapefile_scratch_files_go_next_to_the_target(tmp_path: Path, monkeypatch) -> None:
    """The temporary Shapefile is written in the destination folder, not in $TMPDIR."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    path = ex.write_shapefile_zip(enforcement_frame(), tmp_path / "out" / "e.zip")
    assert path.is_file()
