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
    with pytest.raises(ExportError) as err:
        ex.write_units_csv(_units().drop(columns="unit_type_zh"), tmp_path / "u.csv")
    assert str(err.value).startswith(
        "Cannot export the equipment units: missing column(s) unit_type_zh; expected "
        "enterprise_row, uscc,")
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
    ws.column_dimensions["C"].width = 0
    df = pd.DataFrame({"标题很长的列名": ["a"], "b": ["中文中文中文"], "表头比值长很多": ["x"]})
    ex._write_table(ws, df, autofilter=False)
    assert ws.auto_filter.ref is None
    assert [ws.cell(row=1, column=1).value, ws.cell(row=2, column=1).value] == [
        "标题很长的列名", "a"]
    assert ws.column_dimensions["A"].width == 30  # wider than 7 * 2 + 2 = 16: kept
    assert ws.column_dimensions["B"].width == 14  # 6 CJK = 12 + 2
    assert ws.column_dimensions["C"].width == 16  # the header is the widest: 7 CJK


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
        raw_fields = zf.read("fields.csv")
        assert raw_fields.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
        fields = list(csv.DictReader(io.StringIO(raw_fields.decode("utf-8-sig"))))
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


# --------------------------------------------------------------------------- DBF field names


def _with_fields(monkeypatch, fields: dict[str, str] | None) -> None:
    labels = dict(LABELS)
    labels.pop("shapefile_fields")
    if fields is not None:
        labels["shapefile_fields"] = fields
    monkeypatch.setattr(ex, "_labels", lambda: labels)


def test_shapefile_field_names_of_a_custom_table(monkeypatch) -> None:
    _with_fields(monkeypatch, {"a": "ten_chars_", "b": "b", "c": "c"})
    assert ex.shapefile_field_names(["b", "a"]) == {"b": "b", "a": "ten_chars_"}


@pytest.mark.parametrize(
    ("fields", "wanted", "message"),
    [
        (None, ["a"], "missing ['a'], too long []"),  # no [shapefile_fields] at all
        ({"a": "a"}, ["a", "b"], "missing ['b'], too long []"),
        ({"a": "a", "b": "eleven_char"}, ["a"], "missing [], too long ['eleven_char']"),
        ({"a": "x", "b": "x"}, ["a"], "missing [], too long []"),  # duplicate name
    ],
)
def test_shapefile_field_names_refuses_a_bad_table(monkeypatch, fields, wanted,
                                                    message) -> None:
    from geo.errors import ReferenceDataError

    _with_fields(monkeypatch, fields)
    with pytest.raises(ReferenceDataError) as err:
        ex.shapefile_field_names(wanted)
    assert str(err.value) == (
        "labels.toml [shapefile_fields] must map every output column to a unique name of "
        f"at most 10 characters; {message}."
    )


# --------------------------------------------------------------------------- CSV chunks


def _parse(chunks) -> list[list[str]]:  # noqa: ANN001
    text = b"".join(bytes(c) for c in chunks).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("rows", [1, 2, 5, 6, 100])
def test_csv_chunks_split_rows_but_not_the_file(rows: int) -> None:
    df = pd.DataFrame({"k": [f"r{i}" for i in range(5)], "v": [0.5, -5.0, 1e21, 3, np.nan]})
    chunks = [bytes(c) for c in ex.csv_chunks(df, rows=rows)]
    assert chunks[0] == b"\xef\xbb\xbfk,v\r\n"  # header alone first
    assert len(chunks) == 1 + -(-5 // rows)
    assert all(not c.startswith(b"\xef\xbb\xbf") for c in chunks[1:])
    got = _parse(chunks)
    assert got == [["k", "v"], ["r0", "0.5"], ["r1", "-5"], ["r2", "1e+21"], ["r3", "3"],
                   ["r4", ""]]


def test_csv_chunks_of_an_empty_frame_is_the_header() -> None:
    assert [bytes(c) for c in ex.csv_chunks(pd.DataFrame({"a": [], "b": []}))] == [
        b"\xef\xbb\xbfa,b\r\n"]


def test_csv_duplicate_names_null_and_geometry_columns() -> None:
    import geopandas as gpd
    import shapely

    df = gpd.GeoDataFrame(pd.DataFrame([[1, "x", None], [2, "=y", None]],
                                       columns=["a", "a", "empty"]),
                          geometry=[shapely.Point(1, 2), None])
    got = _parse(ex.csv_chunks(df))
    assert got == [["a", "a", "empty", "geometry"], ["1", "x", "", "POINT (1 2)"],
                   ["2", "'=y", "", ""]]


# --------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(("fmt", "magic"), [("CSV", b"\xef\xbb\xbfrow,"), (".csv", b"\xef\xbb"),
                                            ("XLSX", b"PK\x03\x04"), (".GeoJSON", b"{")])
def test_export_format_names_ignore_case_and_a_dot(tmp_path: Path, fmt: str,
                                                   magic: bytes) -> None:
    path = ex.export(enforcement_frame(), fmt, tmp_path / "out.bin",
                     verdict_labels=VERDICT_LABELS)
    assert path == tmp_path / "out.bin"
    assert path.read_bytes().startswith(magic)


def test_export_unknown_format_message(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as err:
        ex.export(enforcement_frame(), "KML", tmp_path / "e.kml")
    assert str(err.value) == (
        "Unknown export format 'KML': expected one of csv, geojson, xlsx, gpkg, shp.")


def test_export_passes_labels_provenance_and_rejected_to_xlsx(tmp_path: Path) -> None:
    from _export_fixtures import rejected_frame

    labels = dict(VERDICT_LABELS, shutdown="关停（测试）")
    path = ex.export(enforcement_frame(), "xlsx", tmp_path / "e.xlsx", verdict_labels=labels,
                     provenance=_provenance().with_counts(accepted=6),
                     rejected=rejected_frame())
    wb = openpyxl.load_workbook(path)
    assert LABELS["sheets"]["rejected"] in wb.sheetnames
    values = {c for row in wb[LABELS["sheets"]["all"]].iter_rows(values_only=True) for c in row}
    assert "关停（测试）" in values
    notes = [r for r in wb[LABELS["sheets"]["notes"]].iter_rows(values_only=True)]
    assert (LABELS["provenance"]["registry_file"], "名录.xlsx") in notes


def test_export_passes_provenance_to_geo_formats(tmp_path: Path) -> None:
    import json

    prov = _provenance().with_counts(accepted=6)
    path = ex.export(enforcement_frame(), "geojson", tmp_path / "e.geojson", provenance=prov)
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body[ex.GEOJSON_PROVENANCE_MEMBER]["registry"]["file"] == "名录.xlsx"


# --------------------------------------------------------------------------- provenance


def test_provenance_counts_follow_the_catalog_order_then_the_rest() -> None:
    frame = pd.DataFrame({"verdict": ["zzz_custom", "no_action", "shutdown", "aaa_custom",
                                      "no_action"]})
    order = list(ex.catalog_verdict_labels())
    got = ex._provenance_for(frame, None)
    assert got.accepted == 5 and got.registry_name == "" and got.as_of is None
    want = [v for v in order if v in ("no_action", "shutdown")] + ["aaa_custom", "zzz_custom"]
    assert list(got.verdict_counts) == want
    assert dict(got.verdict_counts) == {"no_action": 2, "shutdown": 1, "aaa_custom": 1,
                                        "zzz_custom": 1}
    given = _provenance()  # accepted 1234: counts redone for this frame, source kept
    sub = ex._provenance_for(frame, given)
    assert sub.accepted == 5 and sub.registry_name == "名录.xlsx"
    assert dict(sub.verdict_counts) == dict(got.verdict_counts)
    same = given.with_counts(accepted=5, verdict_counts={"x": 9})
    assert ex._provenance_for(frame, same) is same  # already counts this frame
    assert ex._provenance_for(pd.DataFrame({"a": [1]}), None).verdict_counts == {}


# --------------------------------------------------------------------------- export_all


def test_export_all_progress_sidecar_and_units(tmp_path: Path) -> None:
    import hashlib
    import json

    from _export_fixtures import rejected_frame

    calls: list[tuple[str, int, bool]] = []
    paths = ex.export_all(enforcement_frame(), rejected_frame(), tmp_path / "o",
                          verdict_labels=VERDICT_LABELS, units=_units(),
                          progress=lambda s, n, done=False: calls.append((s, n, done)))
    stages = {"csv": 6, "geojson": 6, "xlsx": 6, "gpkg": 6, "units": 3, "rejected": 2}
    # one writer at a time (workers=1): each file announced, then reported done; the
    # sidecar, which lists the others, last
    pairs = [calls[i:i + 2] for i in range(0, len(calls), 2)]
    assert all(a[:2] == b[:2] and (a[2], b[2]) == (False, True) for a, b in pairs)
    assert sorted(a[:2] for a, _ in pairs[:-1]) == sorted(stages.items())
    assert pairs[-1] == [("provenance", 6, False), ("provenance", 6, True)]
    assert list(paths) == ["csv", "geojson", "xlsx", "gpkg", "units", "rejected",
                           "provenance"]
    assert paths["units"].name == "enforcement_units.csv"
    assert "设备清单" in openpyxl.load_workbook(paths["xlsx"]).sheetnames
    side = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    assert side["counts"]["rejected"] == 2 and side["counts"]["accepted"] == 6
    files = {f["name"]: f for f in side["files"]}
    assert list(files) == [p.name for k, p in paths.items() if k != "provenance"]
    for key, p in paths.items():
        if key != "provenance":
            assert files[p.name]["bytes"] == p.stat().st_size
            assert files[p.name]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert paths["provenance"].read_text(encoding="utf-8").endswith("}\n")


def test_export_all_keeps_a_given_rejected_count_and_refuses_a_file(tmp_path: Path) -> None:
    import json

    from _export_fixtures import rejected_frame

    import sqlite3

    prov = _provenance().with_counts(accepted=6)  # rejected=2 given
    prov = __import__("dataclasses").replace(prov, rejected=40)
    labels = dict(VERDICT_LABELS, shutdown="关停（测试）")
    paths = ex.export_all(enforcement_frame(), rejected_frame(), tmp_path / "o",
                          verdict_labels=labels, provenance=prov)
    side = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    assert side["counts"]["rejected"] == 40 and side["registry"]["file"] == "名录.xlsx"
    assert "units" not in paths
    # every file carries the provenance given, the workbook the labels and rejected rows
    body = json.loads(paths["geojson"].read_text(encoding="utf-8"))
    assert body[ex.GEOJSON_PROVENANCE_MEMBER]["registry"]["file"] == "名录.xlsx"
    import xml.etree.ElementTree as ET

    with sqlite3.connect(paths["gpkg"]) as db:
        (meta,) = db.execute("SELECT metadata FROM gpkg_metadata").fetchone()
        (description,) = db.execute("SELECT description FROM gpkg_contents").fetchone()
    item = next(e for e in ET.fromstring(meta).iter("MDI")
                if e.get("key") == ex.GPKG_PROVENANCE_KEY)
    assert json.loads(item.text or "")["registry"]["file"] == "名录.xlsx"
    assert description == (f"{LABELS['provenance']['title']}: 名录.xlsx, "
                           "2026-01-02T03:04:05+00:00")
    wb = openpyxl.load_workbook(paths["xlsx"])
    assert LABELS["sheets"]["rejected"] in wb.sheetnames
    cells = {c for row in wb[LABELS["sheets"]["all"]].iter_rows(values_only=True) for c in row}
    assert "关停（测试）" in cells
    notes = list(wb[LABELS["sheets"]["notes"]].iter_rows(values_only=True))
    assert (LABELS["provenance"]["registry_file"], "名录.xlsx") in notes
    assert (LABELS["provenance"]["rejected"], "40") in notes
    (tmp_path / "f").write_text("x", encoding="utf-8")
    with pytest.raises(ExportError, match="it is a file; expected a folder"):
        ex.export_all(enforcement_frame(), rejected_frame(), tmp_path / "f")


def test_write_xlsx_progress_counts_every_sheet_row(tmp_path: Path) -> None:
    from _export_fixtures import rejected_frame

    seen: list[tuple[int, int]] = []
    ex.write_xlsx(enforcement_frame(), tmp_path / "e.xlsx", verdict_labels=VERDICT_LABELS,
                  rejected=rejected_frame(), units=_units(),
                  progress=lambda done, total: seen.append((done, total)))
    # 6 enterprises + 5 in the basin/region sheets (2 lianjiang, 1 each maozhou, shima,
    # guangfo) + 2 rejected rows + 3 units
    total = 6 + 5 + 2 + 3
    assert seen and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (total, total)


def test_provenance_sidecar_is_indented_utf8_json(tmp_path: Path) -> None:
    import hashlib
    import json

    data = tmp_path / "数据.csv"
    data.write_bytes(b"a,b\r\n1,2\r\n")
    path = ex.write_provenance(_provenance(), tmp_path / "p.json", files=[data])
    raw = path.read_bytes()
    assert "名录.xlsx".encode() in raw and b"\\u" not in raw  # UTF-8, not \u escapes
    text = raw.decode("utf-8")
    assert text.startswith('{\n  "generator": "basinwatch test",\n')  # 2-space indent
    assert text.endswith("\n}\n")
    body = json.loads(text)
    assert body["files"] == [{"name": "数据.csv", "bytes": 10,
                              "sha256": hashlib.sha256(b"a,b\r\n1,2\r\n").hexdigest()}]
    assert json.loads(ex.write_provenance(_provenance(), tmp_path / "q.json")
                      .read_text(encoding="utf-8"))["files"] == []


def test_shapefile_zip_writes_the_cpg_when_gdal_does_not(tmp_path: Path, monkeypatch) -> None:
    """Older GDAL wrote no .cpg: the zip then gets the same one a current GDAL writes."""
    import zipfile

    import geopandas as gpd

    normal = ex.write_shapefile_zip(enforcement_frame(), tmp_path / "a" / "e.zip")
    with zipfile.ZipFile(normal) as zf:
        gdal_cpg = zf.read("e.cpg")
    real = gpd.GeoDataFrame.to_file

    def old_gdal(self, filename, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        real(self, filename, *args, **kwargs)
        Path(filename).with_suffix(".cpg").unlink()

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", old_gdal)
    path = ex.write_shapefile_zip(enforcement_frame(), tmp_path / "b" / "e.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.read("e.cpg") == gdal_cpg == b"UTF-8"


def test_rejected_csv_missing_column_message(tmp_path: Path) -> None:
    from _export_fixtures import rejected_frame

    with pytest.raises(ExportError) as err:
        ex.write_rejected_csv(rejected_frame().drop(columns="reason"), tmp_path / "r.csv")
    assert str(err.value).startswith(
        "Cannot export the rejected rows: missing column(s) reason; expected row, uscc,")


def test_gpkg_layer_is_called_enterprises_by_default(tmp_path: Path) -> None:
    import sqlite3

    path = ex.export(enforcement_frame(), "gpkg", tmp_path / "e.gpkg")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT table_name, description FROM gpkg_contents").fetchall()
    assert [r[0] for r in rows] == ["enterprises"]
    # no registry named: a dash in its place
    assert rows[0][1].startswith(f"{LABELS['provenance']['title']}: -, ")


def test_units_as_categoricals_write_the_same_csv_and_sheet(tmp_path: Path) -> None:
    """``compact_text`` on the units (what ``basinwatch run`` does): same CSV bytes, same
    设备清单 cells."""
    from _export_fixtures import rejected_frame

    plain, small = _units(), ex.compact_text(_units(), max_share=1.0)
    assert isinstance(small["verdict"].dtype, pd.CategoricalDtype)
    ex.write_units_csv(plain, tmp_path / "a.csv")
    ex.write_units_csv(small, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    sheets = []
    for name, units in (("a", plain), ("b", small)):
        path = ex.write_xlsx(enforcement_frame(), tmp_path / f"{name}.xlsx", units=units,
                             rejected=rejected_frame())
        wb = openpyxl.load_workbook(path, read_only=True)
        sheets.append({ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)]
                       for ws in wb.worksheets if ws.title != "说明"})
        wb.close()
    assert sheets[0] == sheets[1]


def _kinds(frame: pd.DataFrame) -> dict[str, bool]:
    return {c: isinstance(frame[c].dtype, pd.CategoricalDtype) for c in frame.columns}


def test_compact_text_which_columns_become_categorical() -> None:
    """Which text columns ``compact_text`` turns into Categoricals, thresholds worked out by
    hand: distinct values (NaN counted) at most ``max(int(rows * share), 1)``, checked on
    the first 20,000 rows first and then on the whole column; other dtypes untouched."""
    s = lambda v: pd.Series(v, dtype="str")  # noqa: E731
    # 200 rows, default share 0.01: at most 2 distinct values
    f = pd.DataFrame({"two": s(["a", "b"] * 100), "three": s(["a", "b", "c", "c"] * 50),
                      "ints": [1, 2] * 100, "after": s(["x"] * 200)})
    out = ex.compact_text(f)
    assert _kinds(out) == {"two": True, "three": False, "ints": False, "after": True}
    assert out["ints"].dtype == np.int64
    pd.testing.assert_frame_equal(out.astype(object), f.astype(object))
    # a column skipped by the first-rows check does not stop the columns after it
    g = pd.DataFrame({"many": s([str(i) for i in range(200)]), "one": s(["x"] * 200)})
    assert _kinds(ex.compact_text(g)) == {"many": False, "one": True}
    # 20,100 rows, share 1/10050: the first 20,000 rows allow 1 distinct value, the whole 2
    n, share = 20_100, 1 / 10_050
    head2 = ["x", "y"] + ["x"] * (n - 2)             # 2 in the first rows: skipped
    nan_first = [np.nan] + ["a"] * (n - 1)             # NaN counts: 2 in the first rows
    tail3 = ["a"] * 20_000 + ["b", np.nan] * 50       # 1 in the first rows, 3 in all
    tail2 = ["a"] * 20_000 + ["b"] * 100              # 1 in the first rows, 2 in all
    h = pd.DataFrame({"head2": s(head2), "nan_first": s(nan_first), "tail3": s(tail3),
                      "tail2": s(tail2)})
    assert _kinds(ex.compact_text(h, max_share=share)) == {
        "head2": False, "nan_first": False, "tail3": False, "tail2": True}
    # a share so small that one distinct value is the limit everywhere
    assert _kinds(ex.compact_text(h[["tail2"]], max_share=1e-9)) == {"tail2": False}
