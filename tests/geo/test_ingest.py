"""Tests for geo.ingest.read_registry on real CSV (UTF-8, GBK) and XLSX files."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from geo.errors import MissingColumnError, RegistryFormatError
from geo.ingest import (
    describe_issues,
    match_industry,
    numeric_columns,
    province_bounds,
    read_registry,
)
from geo.schema import INGEST_COLUMNS, REJECTED_COLUMNS
from geo.uscc import make_uscc

DATA = Path(__file__).resolve().parents[1] / "data"
HEADER = "统一社会信用代码,企业名称,行业,地址,经度,纬度,坐标系,所在园区"
U1, U2, U3 = make_uscc(1), make_uscc(2), make_uscc(3)


def _write(tmp_path: Path, lines: list[str], *, name: str = "r.csv", enc: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes("\n".join(lines).encode(enc))
    return path


def _issues(result_row: pd.Series) -> set[str]:
    return set(filter(None, result_row["data_issues"].split(";")))


@pytest.fixture
def sample_files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("registry_small.csv", "registry_small_gbk.csv", "registry_small.xlsx"):
        out[name] = Path(shutil.copy(DATA / name, tmp_path / name))
    return out


@pytest.mark.parametrize(
    "name", ["registry_small.csv", "registry_small_gbk.csv", "registry_small.xlsx"]
)
def test_sample_files_read_identically(sample_files: dict[str, Path], name: str) -> None:
    res = read_registry(sample_files[name])
    assert res.source_rows == 4
    assert len(res.accepted) + len(res.rejected) == res.source_rows
    acc = res.accepted.set_index("row")
    assert list(res.accepted.columns[: len(INGEST_COLUMNS)]) == list(INGEST_COLUMNS)
    assert "coal_boiler_tph" in res.accepted
    # row 2: dyeing in GCJ02, kept as given
    assert acc.loc[2, "industry_id"] == "dyeing" and acc.loc[2, "crs_in"] == "GCJ02"
    assert acc.loc[2, "lon_in"] == pytest.approx(116.42)
    assert acc.loc[2, "coal_boiler_tph"] == 10.0
    assert acc.loc[2, "park_claimed"].startswith("潮南")
    # row 3: GB/T 4754 code with letter, swapped coordinates, wrong check digit
    assert acc.loc[3, "industry"] == "造纸"
    assert (acc.loc[3, "lon_in"], acc.loc[3, "lat_in"]) == pytest.approx((113.89, 22.78))
    assert _issues(acc.loc[3]) == {"lonlat_swapped", "uscc_check_digit"}
    # row 4: unknown industry rejected
    rej = res.rejected.set_index("row")
    assert rej.loc[4, "reason"] == "industry_unknown" and rej.loc[4, "field"] == "行业"
    # row 5: duplicate of row 2's code, code '1713.0', zeros -> address
    assert acc.loc[5, "industry_id"] == "dyeing"
    assert np.isnan(acc.loc[5, "lon_in"])
    assert _issues(acc.loc[5]) == {"uscc_duplicate", "coordinates_missing"}


def test_buffer_with_filename(sample_files: dict[str, Path]) -> None:
    data = sample_files["registry_small.xlsx"].read_bytes()
    res = read_registry(io.BytesIO(data), filename="upload.xlsx")
    assert len(res.accepted) == 3


def test_xlsx_with_numeric_cells(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["企业名称", "行业代码", "经度", "纬度", "坐标系"])
    ws.append(["甲", 1713, 113.9, 22.78, "WGS84"])
    ws.append(["乙", 3011.0, 23.1, 113.3, None])
    ws.append([None, None, None, None, None])  # blank line: not a registry row
    ws.append(["丙", "陶瓷", 0, 0, None])
    path = tmp_path / "numeric.xlsx"
    wb.save(path)
    res = read_registry(path)
    acc = res.accepted.set_index("row")
    assert acc.loc[2, "industry_id"] == "dyeing"
    assert acc.loc[3, "industry_id"] == "cement" and "lonlat_swapped" in _issues(acc.loc[3])
    rej = res.rejected.set_index("row")
    assert rej.loc[5, "reason"] == "no_location"  # row numbers keep the blank line
    assert res.source_rows == 3


def test_industry_matching_forms() -> None:
    values = pd.Series(["印染", "Textile dyeing", "纺织染整", "1752", "C1713", "1713.0",
                        "C3071 建筑陶瓷制品制造", "ｃ３０１１", " steel ", "2640", "", None])
    got = match_industry(values)["industry_id"].tolist()
    assert got == ["dyeing", "dyeing", "dyeing", "dyeing", "dyeing", "dyeing", "ceramics",
                   "cement", "steel", "", "", ""]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("统一社会信用代码,行业,地址", "企业名称"),
        ("企业名称,地址,经度,纬度", "行业"),
        ("企业名称,行业,经度", "地址"),
    ],
)
def test_missing_column(tmp_path: Path, header: str, missing: str) -> None:
    path = _write(tmp_path, [header, ",".join(["x"] * len(header.split(",")))])
    with pytest.raises(MissingColumnError, match=missing) as info:
        read_registry(path)
    assert missing in info.value.column


def test_english_headers_and_coordinates_only(tmp_path: Path) -> None:
    path = _write(tmp_path, ["Name,Industry,Lon,Lat", "A,cement,113.5°,２２.９"])
    res = read_registry(path)
    assert res.accepted.loc[0, "lon_in"] == pytest.approx(113.5)
    assert res.accepted.loc[0, "lat_in"] == pytest.approx(22.9)
    assert res.accepted.loc[0, "address"] == "" and res.accepted.loc[0, "crs_in"] == "WGS84"
    assert res.accepted.loc[0, "data_issues"] == "uscc_missing"


def test_ambiguous_headers(tmp_path: Path) -> None:
    path = _write(tmp_path, ["企业名称,名称,行业,地址", "a,b,水泥,x"])
    with pytest.raises(RegistryFormatError, match="企业名称"):
        read_registry(path)


def test_xls_and_empty_rejected(tmp_path: Path) -> None:
    with pytest.raises(RegistryFormatError, match="xlsx"):
        read_registry(b"\xd0\xcf\x11\xe0" + b"\0" * 100, filename="old.xls")
    with pytest.raises(RegistryFormatError, match="empty"):
        read_registry(b"  \n", filename="e.csv")


def test_bad_input_rows(tmp_path: Path) -> None:
    lines = [
        HEADER,
        f"{U1},甲,印染,汕头市潮南区陈店镇,116.42,23.25,火星坐标系,",  # 2 bad CRS
        f"{U2},乙,水泥,,0,0,,",  # 3 zero, no address
        f"{U3},丙,水泥,东莞市长安镇,,,,",  # 4 blank, address
        f"{make_uscc(4)},丁,水泥,,121.5,31.2,,",  # 5 Shanghai, no address
        f"{make_uscc(5)},戊,水泥,深圳市光明区,121.5,31.2,,",  # 6 Shanghai, address
        f"{make_uscc(6)}, ,水泥,深圳市光明区,113.9,22.7,,",  # 7 blank name
        f"{U1},己,水泥,深圳市光明区,113.9,22.7,,",  # 8 duplicate of row 2 (rejected)
        f"{U1},庚,水泥,深圳市光明区,113.9,22.7,bd09,",  # 9 duplicate of row 8
        "91440300ABCDEFGHIJ,辛,水泥,深圳市光明区,abc,22.7,,",  # 10 bad charset, unparseable
    ]
    res = read_registry(_write(tmp_path, lines))
    assert res.source_rows == 9
    assert len(res.accepted) + len(res.rejected) == res.source_rows
    assert list(res.rejected.columns) == list(REJECTED_COLUMNS)
    rej = res.rejected.set_index("row")
    acc = res.accepted.set_index("row")
    assert rej.loc[2, "reason"] == "crs_unknown" and rej.loc[2, "field"] == "坐标系"
    assert "火星坐标系" in rej.loc[2, "message"] and "GCJ02" in rej.loc[2, "message"]
    assert rej.loc[3, "reason"] == "no_location"
    assert rej.loc[5, "reason"] == "outside_guangdong" and "第5行" in rej.loc[5, "message"]
    assert rej.loc[7, "reason"] == "name_missing" and rej.loc[7, "field"] == "企业名称"
    assert _issues(acc.loc[4]) == {"coordinates_missing"}
    assert _issues(acc.loc[6]) == {"coordinates_out_of_province"}
    assert np.isnan(acc.loc[6, "lon_in"]) and acc.loc[6, "crs_in"] == "WGS84"
    # the first accepted holder of a code is not a duplicate; later ones are
    assert "uscc_duplicate" not in _issues(acc.loc[8])
    assert "uscc_duplicate" in _issues(acc.loc[9]) and acc.loc[9, "crs_in"] == "BD09"
    assert _issues(acc.loc[10]) == {"uscc_charset", "coordinates_unparseable"}
    assert "统一社会信用代码" in describe_issues(acc.loc[10, "data_issues"])


def test_unknown_industry_message_names_row_field_and_values(tmp_path: Path) -> None:
    res = read_registry(_write(tmp_path, [HEADER, f"{U1},甲,化工,深圳市光明区,,,,"]))
    msg = res.rejected.loc[0, "message"]
    assert res.rejected.loc[0, "row"] == 2
    assert "第2行" in msg and "行业" in msg and "化工" in msg
    assert all(zh in msg for zh in ("钢铁", "印染", "陶瓷"))


def test_gbk_tab_file(tmp_path: Path) -> None:
    lines = [HEADER.replace(",", "\t"), f"{U1}\t潮阳印染厂\t棉印染精加工\t汕头市潮阳区谷饶镇\t\t\t\t"]
    res = read_registry(_write(tmp_path, lines, enc="gbk"))
    assert res.accepted.loc[0, "name"] == "潮阳印染厂"
    assert res.accepted.loc[0, "address"] == "汕头市潮阳区谷饶镇"


def test_bounds_and_numeric_columns_come_from_data() -> None:
    lon_min, lat_min, lon_max, lat_max = province_bounds()
    assert lon_min < 113.3 < lon_max and lat_min < 23.1 < lat_max  # Guangzhou inside
    assert not (lon_min < 121.5 < lon_max)  # Shanghai outside
    assert "coal_boiler_tph" in numeric_columns()


def test_vectorised_scale(tmp_path: Path) -> None:
    n = 5000
    df = pd.DataFrame({
        "统一社会信用代码": [make_uscc(i) for i in range(n)],
        "企业名称": [f"企业{i}" for i in range(n)],
        "行业": np.where(np.arange(n) % 2, "印染", "1713"),
        "经度": 113.0 + np.arange(n) / n,
        "纬度": 23.0,
    })
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    res = read_registry(path)
    assert len(res.accepted) == n and res.accepted["data_issues"].eq("").all()


# ---------------------------------------------------------------- files a new user tries


def test_binary_file_is_named_as_such(tmp_path: Path) -> None:
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"\x00" * 20_000)
    with pytest.raises(RegistryFormatError, match="binary file") as err:
        read_registry(nul)
    assert len(err.value.msg) < 400  # no wall of "found columns"
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    with pytest.raises(RegistryFormatError, match="binary file"):
        read_registry(png)


def test_utf16_text_export_is_read(tmp_path: Path) -> None:
    """Excel's "Unicode text" export: UTF-16 with BOM, tab separated (NUL bytes, not binary)."""
    text = "企业名称\t行业\t地址\n潮南某印染厂\t印染\t汕头市潮南区陈店镇\n"
    path = tmp_path / "unicode.txt"
    path.write_bytes(text.encode("utf-16"))
    res = read_registry(path)
    assert res.accepted["name"].tolist() == ["潮南某印染厂"]


@pytest.mark.parametrize("name, body", [
    ("header.csv", HEADER + "\n"),
    ("header_blank_lines.csv", HEADER + "\n,,,,,,,\n\n"),
])
def test_header_only_registry_is_an_error(tmp_path: Path, name: str, body: str) -> None:
    path = _write(tmp_path, [body], name=name)
    with pytest.raises(RegistryFormatError, match="no data rows") as err:
        read_registry(path)
    assert name in err.value.msg


def test_header_only_xlsx_is_an_error(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(HEADER.split(","))
    wb.save(tmp_path / "h.xlsx")
    with pytest.raises(RegistryFormatError, match="no data rows"):
        read_registry(tmp_path / "h.xlsx")


def test_missing_column_message_is_bounded(tmp_path: Path) -> None:
    cols = [f"列{i}" for i in range(500)]
    path = _write(tmp_path, [",".join(cols), ",".join("x" * 500)])
    with pytest.raises(MissingColumnError) as err:
        read_registry(path)
    assert "列19" in err.value.msg and "列20," not in err.value.msg and "480 more" in err.value.msg


def test_registry_text_is_kept_as_written(tmp_path: Path) -> None:
    name = "潮南某印染有限公司（1厂）　Ａ座"  # full-width brackets, ideographic space, Ａ
    park = "潮南纺织印染环保综合处理中心（一期）"
    address = "汕头市潮南区陈店镇１２号"
    path = _write(tmp_path, [HEADER, f"{U1}, {name} ,印染,{address},,,,{park}"])
    row = read_registry(path).accepted.iloc[0]
    assert row["name"] == name.strip() and row["park_claimed"] == park
    assert row["address"] == address


def test_industry_code_kept_from_the_registry(tmp_path: Path) -> None:
    import tomllib

    from layers.catalog import data_path

    with data_path("industries.toml").open("rb") as fh:
        codes = {i["id"]: i["codes"] for i in tomllib.load(fh)["industry"]}
    lines = [HEADER]
    cells = ["C1723 化纤织物染整精加工", "1713.0", "印染", "水泥", "3041"]
    for i, cell in enumerate(cells):
        lines.append(f"{make_uscc(10 + i)},厂{i},{cell},汕头市潮南区陈店镇,,,,")
    got = read_registry(_write(tmp_path, lines)).accepted
    assert got["industry_id"].tolist() == ["dyeing", "dyeing", "dyeing", "cement", "flat_glass"]
    assert got["industry_code"].tolist() == ["1723", "1713", "", codes["cement"][0], "3041"]


def test_rejection_messages_are_bilingual_with_one_separator(tmp_path: Path) -> None:
    from geo.ingest import MESSAGE_SEP

    lines = [HEADER, f"{U1},,印染,汕头市,,,,", f"{U2},某厂,化工,汕头市,,,,",
             f"{U3},某厂,印染,,116.4,23.3,火星坐标系,", f"{make_uscc(4)},某厂,印染,,0,0,,",
             f"{make_uscc(5)},某厂,印染,,100.1,40.2,,"]
    rej = read_registry(_write(tmp_path, lines)).rejected
    assert len(rej) == 5
    for msg in rej["message"]:
        zh, en = msg.split(MESSAGE_SEP)  # exactly one separator
        assert " / " not in msg
        assert zh.startswith("第") and en.startswith("row ")
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in en.split("field ")[0])
    industry = rej.loc[rej["reason"] == "industry_unknown", "message"].iloc[0]
    assert "Textile dyeing" in industry.split(MESSAGE_SEP)[1]  # English hint in English


# ------------------------------------------- paths with no test before issue 16 (each fails
# on a mutant: the condition removed or the message reverted to one without row and encoding)


def test_latitude_zero_alone_is_no_location(tmp_path: Path) -> None:
    """纬度 0 with a valid 经度 is a blank coordinate (Excel writes 0 for an empty cell), not a
    point on the equator: no address -> rejected ``no_location`` naming the row; with an
    address -> located from the address, flagged ``coordinates_missing``."""
    lines = [HEADER,
             f"{U1},甲,印染,,116.42,0,,",                      # row 2: lat 0, no address
             f"{U2},乙,印染,汕头市潮南区陈店镇,116.42,0,,",     # row 3: lat 0, address
             f"{U3},丙,印染,,0,23.25,,"]                        # row 4: lon 0, no address
    res = read_registry(_write(tmp_path, lines))
    rej = res.rejected.set_index("row")
    assert sorted(rej.index) == [2, 4]
    assert (rej["reason"] == "no_location").all() and (rej["field"] == "经度/纬度").all()
    assert "第2行" in rej.loc[2, "message"] and "row 2" in rej.loc[2, "message"]
    assert "116.42,0" in rej.loc[2, "message"] or "为空或为0" in rej.loc[2, "message"]
    acc = res.accepted.set_index("row")
    assert list(acc.index) == [3]
    assert _issues(acc.loc[3]) == {"coordinates_missing"}
    assert np.isnan(acc.loc[3, "lon_in"]) and np.isnan(acc.loc[3, "lat_in"])


def test_numeric_invalid_is_flagged_blanked_and_kept(tmp_path: Path) -> None:
    """A numeric attribute that is no number is left blank and flagged on its row; the row
    is kept and its other numbers are read (nothing silently dropped or guessed)."""
    lines = ["企业名称,行业,经度,纬度,燃煤锅炉蒸吨,年产能",
             "甲,印染,116.42,23.25,约十蒸吨,50000",   # row 2: not a number
             "乙,印染,116.42,23.25,12.5,",             # row 3: fine, blank is no issue
             "丙,印染,116.42,23.25,１０,"]             # row 4: full-width digits are a number
    acc = read_registry(_write(tmp_path, lines)).accepted.set_index("row")
    acc["data_issues"] = acc["data_issues"].str.replace("uscc_missing", "")  # no USCC column
    assert _issues(acc.loc[2]) == {"numeric_invalid"}
    assert np.isnan(acc.loc[2, "coal_boiler_tph"]) and acc.loc[2, "annual_output_t"] == 50000
    assert _issues(acc.loc[3]) == set() and acc.loc[3, "coal_boiler_tph"] == 12.5
    assert _issues(acc.loc[4]) == set() and acc.loc[4, "coal_boiler_tph"] == 10
    assert "数值" in describe_issues(acc.loc[2, "data_issues"])


def test_file_in_an_undeclared_encoding_names_line_and_encodings(tmp_path: Path) -> None:
    """A Windows-1252 file (neither UTF-8 nor GB18030): the error names the file, the line
    of the first byte neither encoding accepts, and the encodings expected."""
    path = tmp_path / "latin.csv"
    path.write_bytes("name,industry,lon,lat\nA,dyeing,116.4,23.2\nSociété,dyeing,116.4,23.2\n"
                     .encode("cp1252"))
    with pytest.raises(RegistryFormatError) as err:
        read_registry(path)
    msg = str(err.value)
    assert "latin.csv" in msg and "line 3" in msg and "第3行" in msg
    assert "UTF-8" in msg and "GB18030" in msg and "0xE9" in msg


def test_truncated_xlsx_is_a_clear_error(tmp_path: Path, data_file) -> None:
    full = data_file("registry_small.xlsx").read_bytes()
    path = tmp_path / "cut.xlsx"
    path.write_bytes(full[: len(full) // 2])  # a download cut short: the zip directory is gone
    with pytest.raises(RegistryFormatError) as err:
        read_registry(path)
    msg = str(err.value)
    assert "cut.xlsx" in msg and "XLSX" in msg
    assert "expected a complete .xlsx workbook" in msg


def test_unbalanced_quote_names_the_line(tmp_path: Path) -> None:
    lines = ["企业名称,行业,经度,纬度", "甲,印染,116.4,23.2", '"乙,印染,116.4,23.2',
             "丙,印染,116.4,23.2"]
    with pytest.raises(RegistryFormatError) as err:
        read_registry(_write(tmp_path, lines, name="quote.csv"))
    msg = str(err.value)
    assert "quote.csv" in msg and "line 3" in msg and "第3行" in msg
    assert "quote" in msg.split("quote.csv", 1)[1]  # says what is wrong: the quote


def test_numeric_invalid_names_the_column_and_the_value(tmp_path: Path) -> None:
    """Each cell behind ``numeric_invalid`` is listed with its row, the header as written in
    the file and the cell (bilingual message): which of several numeric columns failed is
    not left for the user to guess. A wrong unit in an implicit-unit column (500 kg as a
    blast-furnace volume) is named too; a rejected row gets no data-issue detail."""
    lines = ["企业名称,行业,经度,纬度,燃煤锅炉蒸吨,年产能,高炉容积(立方米)",
             "甲,印染,116.42,23.25,约十蒸吨,50000,",       # row 2: boiler column
             "乙,钢铁,116.42,23.25,12.5,abc,500 kg",       # row 3: output and volume
             "丙,印染,116.42,23.25,１０,,",                 # row 4: fine
             ",印染,116.42,23.25,x,,"]                      # row 5: rejected (no name)
    res = read_registry(_write(tmp_path, lines))
    got = res.issue_details
    assert list(got.columns) == ["row", "code", "field", "value", "message"]
    assert list(zip(got["row"], got["field"], got["value"], strict=True)) == [
        (2, "燃煤锅炉蒸吨", "约十蒸吨"), (3, "年产能", "abc"), (3, "高炉容积(立方米)", "500 kg")]
    assert set(got["code"]) == {"numeric_invalid"}
    zh, en = got.loc[0, "message"].split(" | ")
    assert "第2行" in zh and "燃煤锅炉蒸吨" in zh and "约十蒸吨" in zh
    assert "row 2" in en and "燃煤锅炉蒸吨" in en and "'约十蒸吨'" in en
    acc = res.accepted.set_index("row")
    assert "numeric_invalid" in _issues(acc.loc[3]) and "numeric_invalid" not in _issues(acc.loc[4])


def test_no_numeric_issue_gives_an_empty_detail_table(tmp_path: Path) -> None:
    res = read_registry(_write(tmp_path, ["企业名称,行业,经度,纬度,燃煤锅炉蒸吨",
                                          "甲,印染,116.42,23.25,10"]))
    assert res.issue_details is not None and res.issue_details.empty
    assert list(res.issue_details.columns) == ["row", "code", "field", "value", "message"]
