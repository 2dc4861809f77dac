"""geo.ingest step by step, against expectations written by hand (issue 16: the mutation
score of geo/ingest.py).

Oracles: the province bounds of registry.toml (lon 109.6–117.4, lat 20.1–25.6, inclusive:
values exactly on them are inside), the header aliases and issue texts of registry.toml /
issues.toml as written there, USCCs built with the GB 32100-2015 check character, and small
registries whose every verdict (accepted or which rejection, which data issues, in which
order) is worked out here row by row. The module's ``functools.cache`` look-ups are cleared
before every test, so a mutated body is always executed (mutmut forks from a warm process).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import geo.ingest as I
from geo.errors import MissingColumnError, ReferenceDataError, RegistryFormatError
from geo.uscc import uscc_check_char


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    for f in (I.registry_spec, I.issue_catalog, I._header_lookup, I._industry_lookup,
              I._industry_accepted_en):
        f.cache_clear()


def _uscc(k: int) -> str:
    body = f"91440000MA{k:07d}"
    return body + uscc_check_char(body)


def _csv(rows: list[list[object]], header: list[str]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- catalogs


def test_province_bounds_and_numeric_columns() -> None:
    assert I.province_bounds() == (109.6, 20.1, 117.4, 25.6)
    cols = I.numeric_columns()
    assert cols[:4] == ("coal_boiler_tph", "annual_output_t", "furnace_volume_m3",
                        "unit_capacity_mw")
    assert "name" not in cols


def test_issue_detail_and_message() -> None:
    text = I.issue_detail("numeric_invalid", row=7, field="年产能", value="abc")
    zh, en = text.split(I.MESSAGE_SEP)
    assert zh.startswith("第7行：年产能“abc”不是可用的数值")
    assert en.startswith("row 7: field 年产能 'abc' is not a usable number")
    for code in ("no_such_code", "name_missing"):   # unknown / no detail templates
        with pytest.raises(ReferenceDataError, match=f"detail_zh/detail_en for '{code}'"):
            I.issue_detail(code)
    msg = I.issue_message("coordinates_missing")
    assert msg == "坐标为空或为0，改用地址定位 | coordinates blank or zero; located from the address"
    with pytest.raises(ReferenceDataError, match="'nope'"):
        I.issue_message("nope")


def test_describe_issues() -> None:
    assert I.describe_issues("") == ""
    assert I.describe_issues(";coordinates_missing;;odd_code") == (
        "坐标为空或为0，改用地址定位；odd_code")


def test_norm_header_and_lookup() -> None:
    assert I._norm_header("  Ｎａｍｅ ") == "name"
    assert I._norm_header("年 产 能 (吨)") == "年产能"
    assert I._norm_header("(吨)") == "(吨)"                 # nothing left: keep it
    assert I._norm_header(12) == "12"
    look = I._header_lookup()
    assert look["企业名称"] == "name" and look["name"] == "name" and look["x"] == "lon"
    assert look["年产能"] == "annual_output_t" and look["燃煤锅炉"] == "coal_boiler_tph"
    assert look["uscc"] == "uscc" and look["所在园区"] == "park"


def test_header_unit_and_units_of_headers() -> None:
    assert I._header_unit("容积(m³)") == "m3"          # NFKC folds ³
    assert I._header_unit(" 高炉容积 （ 立方米 ） ") == "立方米"
    assert I._header_unit("高炉容积") == ""
    assert I._header_unit("(m3)") == ""                       # no name before the bracket
    assert I._units_of_headers({"高炉容积(m3)": "furnace_volume_m3", "名称": "name"}) == {
        "furnace_volume_m3": "m3", "name": ""}


def test_norm_key() -> None:
    s = pd.Series(["  Ｐａｐｅｒ ", "造 纸", "C 1713"])
    assert I._norm_key(s).tolist() == ["paper", "造纸", "c1713"]


# --------------------------------------------------------------------------- industries


def test_match_industry_forms_and_codes() -> None:
    cells = pd.Series(["造纸", " Cement ", "C1713", "1713.0", "3011", "1910 皮革鞣制加工",
                       "钢铁", "不存在", None, "C9999"])
    out = I.match_industry(cells)
    assert list(out.columns) == ["industry_id", "industry", "industry_code"]
    assert out["industry_id"].tolist() == ["paper", "cement", "dyeing", "dyeing", "cement",
                                           "tanning", "steel", "", "", ""]
    assert out["industry"].tolist() == ["造纸", "水泥", "印染", "印染", "水泥", "制革", "钢铁",
                                        "", "", ""]
    # the registry's own code wins; a name alone gives the code only when it is unique
    assert out["industry_code"].tolist() == ["", "3011", "1713", "1713", "3011", "1910", "",
                                             "", "", ""]
    lookup, accepted = I._industry_lookup()
    assert lookup["paper"] == ("paper", "造纸") and lookup["1713"][0] == "dyeing"
    assert accepted.startswith("钢铁、") and accepted.endswith("如 1713、C1713）")
    en = I._industry_accepted_en()
    assert en.startswith("Steel, Cement, ")
    assert en.endswith("such as 1713 or C1713)")


def test_industry_codes() -> None:
    ids = pd.Series(["cement", "steel", None, "tanning"])
    assert I.industry_codes(ids).tolist() == ["3011", "", "", "1910"]
    given = pd.Series(["3012", "", "3110", None])
    assert I.industry_codes(ids, given).tolist() == ["3012", "", "3110", "1910"]


# --------------------------------------------------------------------------- reading


def test_read_source_kinds(tmp_path: Path) -> None:
    p = tmp_path / "名录.csv"
    p.write_bytes(b"a")
    assert I._read_source(p, None) == (b"a", "名录.csv")
    assert I._read_source(str(p), "x.csv") == (b"a", "x.csv")
    assert I._read_source(b"b", None) == (b"b", "")
    assert I._read_source(b"b", "y.xlsx") == (b"b", "y.xlsx")
    assert I._read_source(io.StringIO("文本"), None) == ("文本".encode(), "")
    buf = io.BytesIO(b"c")
    buf.name = "z.csv"
    assert I._read_source(buf, None) == (b"c", "z.csv")
    assert I._read_source(buf, "w.csv")[1] == "w.csv"
    with pytest.raises(RegistryFormatError, match="Cannot read registry file"):
        I._read_source(tmp_path / "none.csv", None)


def test_separator() -> None:
    assert I._separator("\n\na\tb,c\td\n1,2,3,4,5") == "\t"
    assert I._separator("a,b\tc\n") == ","
    assert I._separator("a\tb,c\n") == ","                 # a tie is a comma
    assert I._separator("abc") == ","


def test_read_table_csv_and_tsv_give_strings() -> None:
    data = "名称,经度\n甲,113.5\n乙,\n".encode()
    f = I._read_table(data, "r.csv")
    assert f.columns.tolist() == ["名称", "经度"]
    assert f.values.tolist() == [["甲", "113.5"], ["乙", ""]]
    tsv = "名称\t经度\n甲\t113.5\n".encode("gb18030")
    assert I._read_table(tsv, "r.txt").values.tolist() == [["甲", "113.5"]]
    blank_line = "名称,经度\n甲,1\n\n乙,2\n".encode()
    assert I._read_table(blank_line, "r.csv").values.tolist() == [["甲", "1"], ["", ""],
                                                                  ["乙", "2"]]
    numeric_header = "1,2\nx,y\n".encode()
    assert I._read_table(numeric_header, "r.csv").columns.tolist() == ["1", "2"]
    for bad in (b"\xd0\xcf\x11\xe0rest", b"name\n"):
        with pytest.raises(RegistryFormatError, match=r"\.xls files are not supported"):
            I._read_table(bad, "r.xls" if bad == b"name\n" else "r.csv")
    with pytest.raises(RegistryFormatError, match="is empty"):
        I._read_table(b"  \n", "r.csv")


def test_read_csv_pyarrow_refuses_what_it_cannot_read_exactly() -> None:
    assert I._read_csv_pyarrow(b"\xff\xfea\x00") is None
    assert I._read_csv_pyarrow(b"\r\n\r\n") is None
    assert I._read_csv_pyarrow(b"a,b\n1,2\n\n3,4\n") is None
    assert I._read_csv_pyarrow(b'a,b\n"x\ny",2\n') is None
    assert I._read_csv_pyarrow(b"a,b\n1,2,3\n") is None
    f = I._read_csv_pyarrow("\ufeff名称,x\r\n甲,01\r\n".encode())
    assert f is not None and f.columns.tolist() == ["名称", "x"]
    assert f.values.tolist() == [["甲", "01"]]
    f = I._read_csv_pyarrow("名称\tx\n甲\tNA\n".encode())
    assert f is not None and f.values.tolist() == [["甲", "NA"]]


# --------------------------------------------------------------------------- headers


def test_map_headers_and_required_columns() -> None:
    frame = pd.DataFrame(columns=["企业名称", "行业 ", "备注", "经度(°)", "LAT"])
    assert I._map_headers(frame) == {"企业名称": "name", "行业 ": "industry",
                                     "经度(°)": "lon", "LAT": "lat"}
    with pytest.raises(RegistryFormatError, match="'名称' and 'name' both mean 'name'"):
        I._map_headers(pd.DataFrame(columns=["名称", "name"]))
    I._check_required({"name", "industry", "address"}, [])
    I._check_required({"name", "industry", "lon", "lat"}, [])
    with pytest.raises(MissingColumnError, match=r"no column for '行业 \(industry\)': "
                       r"expected one of 行业, 行业代码, .*; found columns 名称, 地址\."):
        I._check_required({"name", "address"}, ["名称", "地址"])
    with pytest.raises(MissingColumnError, match="企业名称"):
        I._check_required({"industry", "address"}, [])
    with pytest.raises(MissingColumnError) as err:
        I._check_required({"name", "industry", "lon"}, ["名称", "行业", "经度"])
    assert err.value.column == "地址 (address) 或 经度+纬度 (lon+lat)"
    assert str(err.value).endswith("addr, 经度+纬度, lon+lat; found columns 名称, 行业, 经度.")


# --------------------------------------------------------------------------- numbers


def test_parse_numbers() -> None:
    v, _bad = I._parse_numbers(pd.Series(["1", "10"]))
    assert v.tolist() == [1.0, 10.0] and v.dtype == np.float64     # integers come out float
    v, bad = I._parse_numbers(pd.Series(["1", "-2.5", "10"]))
    assert v.tolist() == [1.0, -2.5, 10.0] and v.dtype == np.float64
    assert bad.tolist() == [False] * 3
    v, bad = I._parse_numbers(pd.Series(["113.5°E", "１２", "", "abc", "7", " 23 ° N "]))
    assert v.iloc[0] == 113.5 and v.iloc[1] == 12.0 and v.iloc[4] == 7.0 and v.iloc[5] == 23.0
    assert math.isnan(v.iloc[2]) and math.isnan(v.iloc[3]) and v.dtype == np.float64
    assert bad.tolist() == [False, False, False, True, False, False]
    # digits other than ASCII that NFKC keeps (Arabic-Indic) are no number pandas reads:
    # flagged, not a ValueError out of read_registry (was: the plain path took them)
    v, bad = I._parse_numbers(pd.Series(["\u0663", "4"]))
    assert math.isnan(v.iloc[0]) and v.iloc[1] == 4.0 and bad.tolist() == [True, False]
    v, bad = I._parse_numbers(pd.Series(["东经113度", "x"]))
    assert v.iloc[0] == 113.0 and math.isnan(v.iloc[1]) and bad.tolist() == [False, True]


def test_in_bounds_is_inclusive() -> None:
    lon = pd.Series([109.6, 117.4, 109.59, 113.0, 113.0, 117.41])
    lat = pd.Series([20.1, 25.6, 23.0, 20.09, 25.61, 23.0])
    assert I._in_bounds(lon, lat).tolist() == [True, True, False, False, False, False]


def test_join_issues() -> None:
    idx = pd.RangeIndex(2, 5)
    out = I._join_issues(idx, [("a", pd.Series([True, False, True], index=idx)),
                               ("b", pd.Series([True], index=[4])),
                               ("c", pd.Series([False, False, False], index=idx))])
    assert out.tolist() == ["a", "", "a;b"]


# --------------------------------------------------------------------------- read_registry


HEADER = ["统一社会信用代码", "企业名称", "行业", "地址", "经度", "纬度", "坐标系", "所在园区",
          "年产能"]


def test_registry_rows_one_by_one() -> None:
    u = [_uscc(k) for k in range(12)]
    rows = [
        [u[0], "甲", "造纸", "", 113.3, 23.1, "", " 某园区 ", "100"],          # 2 fine
        [u[1], "", "造纸", "", 113.3, 23.1, "", "", ""],                    # 3 name_missing
        [u[2], "丙", "玩具", "", 113.3, 23.1, "", "", ""],                  # 4 industry_unknown
        [u[3], "丁", "造纸", "", 113.3, 23.1, "XYZ", "", ""],               # 5 crs_unknown
        [u[4], "戊", "造纸", "", "", "", "", "", ""],                       # 6 no_location
        [u[5], "己", "造纸", "", 120.0, 30.0, "", "", ""],                  # 7 outside
        [u[6], "庚", "水泥", "广州某路", 23.1, 113.3, "gcj-02", "", "1,000"],  # 8 swapped
        [u[7], "辛", "造纸", "广州某路", 0, 23.1, "XYZ", "", ""],            # 9 zero lon
        [u[8], "壬", "造纸", "广州某路", 120.0, 30.0, "百度", "", ""],        # 10 outside+addr
        [u[9], "癸", "造纸", "广州某路", "abc", 23.1, "", "", "１２"],       # 11 unparseable
        [u[0], "子", "造纸", "", 109.6, 20.1, "4326.0", "", ""],            # 12 dup, on bound
        ["", "", "", "", "", "", "", "", ""],                               # 13 blank: skipped
        ["123", "丑", "造纸", "", 117.4, 25.6, "CGCS2000", "", ""],          # 14 bad uscc
    ]
    res = I.read_registry(_csv(rows, HEADER), filename="r.csv")
    assert res.source_rows == 12
    rej = res.rejected
    assert rej["row"].tolist() == [3, 4, 5, 6, 7]
    assert rej["reason"].tolist() == ["name_missing", "industry_unknown", "crs_unknown",
                                      "no_location", "outside_guangdong"]
    assert rej["field"].tolist() == ["企业名称", "行业", "坐标系", "经度/纬度", "经度/纬度"]
    assert rej["uscc"].tolist() == u[1:6] and rej["name"].tolist() == ["", "丙", "丁", "戊", "己"]
    assert (rej["source"] == "registry").all()
    msgs = rej["message"].tolist()
    assert msgs[0].startswith("第3行：") and "企业名称" in msgs[0]
    assert "“玩具”" in msgs[1] and "钢铁、" in msgs[1] and "Steel" in msgs[1]
    assert "“XYZ”" in msgs[2] and "WGS84、CGCS2000、GCJ02、BD09（空白=WGS84）" in msgs[2]
    assert "WGS84, CGCS2000, GCJ02, BD09 (blank = WGS84)" in msgs[2]
    assert msgs[3].startswith("第6行：经度/纬度为空或为0且无地址")
    assert "“120.0,30.0”不在广东省范围（经度109.6–117.4，纬度20.1–25.6）且无地址" in msgs[4]
    assert "row 7: field 经度/纬度 '120.0,30.0' is outside Guangdong" in msgs[4]
    acc = res.accepted
    assert acc["row"].tolist() == [2, 8, 9, 10, 11, 12, 14]
    assert acc["name"].tolist() == ["甲", "庚", "辛", "壬", "癸", "子", "丑"]
    assert acc["industry_id"].tolist() == ["paper", "cement"] + ["paper"] * 5
    assert acc["industry_code"].tolist() == ["", "3011", "", "", "", "", ""]
    assert acc["park_claimed"].tolist() == ["某园区", "", "", "", "", "", ""]
    lon = acc["lon_in"].tolist()
    lat = acc["lat_in"].tolist()
    assert lon[0] == 113.3 and lat[0] == 23.1
    assert lon[1] == 113.3 and lat[1] == 23.1          # swapped back
    assert all(math.isnan(x) for x in lon[2:5] + lat[2:5])   # address fallback
    assert lon[5:] == [109.6, 117.4] and lat[5:] == [20.1, 25.6]
    assert acc["crs_in"].tolist() == ["WGS84", "GCJ02", "WGS84", "WGS84", "WGS84", "WGS84",
                                      "CGCS2000"]
    assert acc["data_issues"].tolist() == [
        "", "lonlat_swapped;numeric_invalid", "coordinates_missing",
        "coordinates_out_of_province", "coordinates_unparseable", "uscc_duplicate",
        "uscc_length",
    ]
    out = acc["annual_output_t"].tolist()
    assert out[0] == 100.0 and math.isnan(out[1]) and out[4] == 12.0
    assert acc["annual_output_t"].dtype == np.float64
    assert acc["uscc"].tolist()[-1] == "123"
    d = res.issue_details
    assert d.columns.tolist() == ["row", "code", "field", "value", "message"]
    assert d[["row", "code", "field", "value"]].values.tolist() == [
        [8, "numeric_invalid", "年产能", "1,000"]]
    assert d["message"].iloc[0].startswith("第8行：年产能“1,000”")
    assert d["row"].dtype == np.int64


def test_duplicate_uscc_only_among_kept_rows() -> None:
    u = _uscc(1)
    rows = [[u, "", "造纸", "", 113.3, 23.1], [u, "乙", "造纸", "", 113.3, 23.1],
            [u, "丙", "造纸", "", 113.3, 23.1], ["", "丁", "造纸", "", 113.3, 23.1],
            ["", "戊", "造纸", "", 113.3, 23.1]]
    res = I.read_registry(_csv(rows, HEADER[:6]), filename="r.csv")
    assert res.rejected["row"].tolist() == [2]
    assert res.accepted["data_issues"].tolist() == ["", "uscc_duplicate", "uscc_missing",
                                                    "uscc_missing"]


def test_coordinates_only_and_address_only_registries() -> None:
    res = I.read_registry(_csv([["甲", "造纸", 113.3, 0]], ["名称", "行业", "lon", "lat"]),
                          filename="r.csv")
    assert res.rejected["reason"].tolist() == ["no_location"]
    res = I.read_registry(_csv([["甲", "造纸", "广州"]], ["名称", "行业", "地址"]),
                          filename="r.csv")
    acc = res.accepted
    assert acc["data_issues"].tolist() == ["uscc_missing"]   # no coordinate columns: no issue
    assert math.isnan(acc["lon_in"].iloc[0]) and acc["crs_in"].tolist() == ["WGS84"]
    assert res.units is not None and len(res.units) == 0


def test_header_only_and_all_blank() -> None:
    with pytest.raises(RegistryFormatError) as err:
        I.read_registry("名称,行业,地址\n".encode())
    assert str(err.value) == ("The registry (upload) has a header row but no data rows: expected "
                              "one enterprise per row below the header. 登记文件只有表头，没有企业数据行。")
    for body in ("名称,行业,地址\n", "名称,行业,地址\n,,\n , ,\n"):
        with pytest.raises(RegistryFormatError, match="has a header row but no data rows"):
            I.read_registry(body.encode(), filename="r.csv")


def test_implicit_unit_and_detail_of_a_refused_cell() -> None:
    header = ["名称", "行业", "地址", "高炉容积(m³)"]
    rows = [["甲", "钢铁", "广州", "300"], ["乙", "钢铁", "广州", "500 kg"], ["丙", "钢铁", "广州", ""],
            ["", "钢铁", "广州", "x"]]
    res = I.read_registry(_csv(rows, header), filename="r.csv")
    assert res.accepted["row"].tolist() == [2, 3, 4]
    assert res.accepted["data_issues"].tolist() == ["uscc_missing",
                                                    "uscc_missing;numeric_invalid",
                                                    "uscc_missing"]
    units = res.units
    assert units["enterprise_row"].tolist() == [2]
    assert units["unit_type"].tolist() == ["blast_furnace"]
    assert units["volume_m3"].tolist() == [300.0]
    d = res.issue_details
    assert d[["row", "field", "value"]].values.tolist() == [[3, "高炉容积(m³)", "500 kg"]]


def test_non_ascii_digits_are_numeric_invalid_not_a_crash() -> None:
    res = I.read_registry(_csv([["甲", "造纸", "广州", "\u0663"]], ["名称", "行业", "地址", "年产能"]),
                          filename="r.csv")
    assert res.accepted["data_issues"].tolist() == ["uscc_missing;numeric_invalid"]


def test_no_detail_table_has_typed_empty_columns() -> None:
    res = I.read_registry(_csv([["甲", "造纸", "广州", "5"]], ["名称", "行业", "地址", "年产能"]),
                          filename="r.csv")
    d = res.issue_details
    assert len(d) == 0 and d.columns.tolist() == ["row", "code", "field", "value", "message"]
    assert d["row"].dtype == np.int64 and d["field"].dtype == object


def test_issue_detail_needs_both_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A code with a Chinese detail template but no English one is a reference-data error
    (issues.toml must give both), not a KeyError."""
    monkeypatch.setattr(I, "issue_catalog", lambda: {"half": {"detail_zh": "第{row}行"}})
    with pytest.raises(ReferenceDataError, match="'half'"):
        I.issue_detail("half", row=2)


def test_decode_without_a_name_says_upload() -> None:
    with pytest.raises(RegistryFormatError, match=r"registry \(upload\) is neither"):
        I._decode("a\n".encode() + b"\x80\xff\n")
    assert I._decode("名称\n".encode("gb18030")) == "名称\n"
    assert I._decode("\ufeff名称".encode()) == "名称"


def test_a_number_the_implicit_unit_refuses_is_named() -> None:
    """A cell that is a number but no usable size of its implicit unit (a mass in kg as a
    blast-furnace volume; a negative volume) is numeric_invalid and named in the details,
    beside a column with no implicit unit that is fine."""
    body = "名称,行业,地址,高炉容积(kg),年产能\n甲,钢铁,广州,500,5\n乙,钢铁,广州,,6\n".encode()
    res = I.read_registry(body, filename="r.csv")
    assert res.accepted["data_issues"].tolist() == ["uscc_missing;numeric_invalid",
                                                    "uscc_missing"]
    assert res.issue_details[["row", "field", "value"]].values.tolist() == [
        [2, "高炉容积(kg)", "500"]]
    assert len(res.units) == 0
    body = "名称,行业,地址,高炉容积\n甲,钢铁,广州,-5\n乙,钢铁,广州,300\n".encode()
    res = I.read_registry(body, filename="r.csv")
    assert res.issue_details[["row", "field", "value"]].values.tolist() == [[2, "高炉容积", "-5"]]
    assert res.units["enterprise_row"].tolist() == [3]
    assert res.units["volume_m3"].tolist() == [300.0]


def test_missing_column_from_a_file_lists_its_headers() -> None:
    with pytest.raises(MissingColumnError, match=r"found columns 名称, 备注, 地址\."):
        I.read_registry("名称,备注,地址\n甲,x,广州\n".encode(), filename="r.csv")


def test_one_coordinate_column_is_no_coordinate_columns() -> None:
    """With an address and only a longitude column, a blank cell is no 'coordinates_missing'
    (the file has no coordinate pair to miss); integer coordinates come out as floats."""
    res = I.read_registry("名称,行业,地址,经度\n甲,造纸,广州,\n".encode(), filename="r.csv")
    assert res.accepted["data_issues"].tolist() == ["uscc_missing"]
    res = I.read_registry("名称,行业,经度,纬度\n甲,造纸,113,23\n".encode(), filename="r.csv")
    assert res.accepted["lon_in"].tolist() == [113.0] and res.accepted["lon_in"].dtype == float


def test_log_lines_name_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="geo.ingest")
    I.read_registry("名称,行业,地址,年产能\n甲,造纸,广州,x\n,,,\n".encode(), filename="r.csv")
    text = [r.getMessage() for r in caplog.records if r.name == "geo.ingest"]
    assert "skipping 1 fully blank line(s) of r.csv" in text
    assert "1 numeric cell(s) are not numbers and were left blank" in text
    assert "read r.csv: 1 rows, 1 accepted, 0 rejected" in text


def test_a_bad_cell_in_any_numeric_column_and_attributes() -> None:
    """numeric_invalid for a bad cell in an earlier numeric column even when a later one is
    fine; an attribute column (经营状态) read to its enum value, an unknown one flagged."""
    body = ("名称,行业,地址,年产能,陶瓷砖年产能,经营状态\n"
            "甲,陶瓷,广州,x,5,在产\n乙,陶瓷,广州,7,5,乱写\n丙,陶瓷,广州,,,\n").encode()
    res = I.read_registry(body, filename="r.csv")
    acc = res.accepted
    assert acc["data_issues"].tolist() == ["uscc_missing;numeric_invalid",
                                           "uscc_missing;attribute_invalid", "uscc_missing"]
    assert acc["status"].tolist()[0] == "operating"
    assert res.issue_details[["row", "field", "value"]].values.tolist() == [[2, "年产能", "x"]]


# ------------------------------------------------------- messages in full (issue 16 gaps)
# Oracle: the texts below, written by hand from what a user must be told (which file,
# what is wrong, what is expected); each is asserted whole, not as a substring.

_BINARY_EN = ("is a binary file, not a text CSV: expected a UTF-8 or GBK/GB18030 CSV (comma "
              "or tab separated) or an .xlsx workbook. 登记文件是二进制文件，不是文本 CSV："
              "请另存为 UTF-8 CSV 或 .xlsx。")


def test_binary_message_in_full_with_and_without_a_name() -> None:
    with pytest.raises(RegistryFormatError) as err:
        I._read_csv(b"\x00\x01\x02" * 100, "r.csv")
    assert str(err.value) == "The registry r.csv " + _BINARY_EN
    with pytest.raises(RegistryFormatError) as err:
        I._read_csv(b"\x00\x01\x02" * 100, "")
    assert str(err.value) == "The registry (upload) " + _BINARY_EN


def test_empty_message_in_full_with_and_without_a_name() -> None:
    for data in (b"  \n", b"\r\n\r\n", b""):
        with pytest.raises(RegistryFormatError) as err:
            I._read_csv(data, "r.csv")
        assert str(err.value) == "The registry r.csv is empty.", data
        with pytest.raises(RegistryFormatError) as err:
            I._read_csv(data, "")
        assert str(err.value) == "The registry (upload) is empty.", data


def test_xls_message_in_full_by_suffix_and_by_content() -> None:
    want = "Old Excel .xls files are not supported: save the registry as .xlsx or UTF-8 CSV."
    for data, name in ((b"\xd0\xcf\x11\xe0rest", "r.csv"), (b"a,b\n1,2\n", "R.XLS"),
                       (b"\xd0\xcf\x11\xe0rest", "")):
        with pytest.raises(RegistryFormatError) as err:
            I._read_table(data, name)
        assert str(err.value) == want, name


def test_xlsx_and_xlsm_chosen_by_suffix_alone() -> None:
    """Text bytes named .xlsx/.xlsm go to the workbook reader (and fail there, naming the
    file), not to the CSV reader, which would read them as a table."""
    for name in ("r.xlsx", "r.XLSM"):
        with pytest.raises(RegistryFormatError) as err:
            I._read_table(b"a,b\n1,2\n", name)
        text = str(err.value)
        assert text.startswith(f"Cannot read the XLSX registry {name}: "), text
        assert text.endswith("expected a complete .xlsx workbook (a ZIP archive): the file may "
                             "be truncated or damaged, save it again from Excel. 无法读取 XLSX "
                             "登记文件：文件可能不完整或已损坏，请用 Excel 重新保存。"), text
    assert I._read_table(b"a,b\n1,2\n", "r.xlsx.csv").values.tolist() == [["1", "2"]]


def test_pandas_path_keeps_cells_as_written() -> None:
    """The GB18030 path (pandas' parser): 'NA', 'null', '007' and '' stay as written."""
    data = "名称,代码,备注,编号\n甲,007,NA,010\n乙,1.50,null,2\n丙,,,3\n".encode("gb18030")
    assert I._read_csv_pyarrow(data) is None  # not UTF-8: the pandas path
    f = I._read_csv(data, "r.csv")
    assert f.columns.tolist() == ["名称", "代码", "备注", "编号"]
    assert f.values.tolist() == [["甲", "007", "NA", "010"], ["乙", "1.50", "null", "2"],
                                 ["丙", "", "", "3"]]
    assert all(isinstance(v, str) for v in f.to_numpy().ravel())


def test_ragged_row_message_names_pandas_error() -> None:
    """A row with more fields than the header (no open quote): pandas' own error text,
    then what was expected."""
    with pytest.raises(RegistryFormatError) as err:
        I._read_csv("名称,代码\n甲,1\n乙,2,3\n".encode(), "r.csv")
    text = str(err.value)
    assert text.startswith("Cannot parse the CSV registry r.csv: "), text
    assert "Expected 2 fields in line 3, saw 3" in text, text
    assert text.endswith("; expected one record per line, each with as many fields as the "
                         "header."), text


def test_read_log_line_names_an_upload_without_a_name(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="geo.ingest")
    I.read_registry("名称,行业,地址\n甲,造纸,广州\n".encode())
    text = [r.getMessage() for r in caplog.records if r.name == "geo.ingest"]
    assert "read (upload): 1 rows, 1 accepted, 0 rejected" in text


def test_a_bad_attribute_before_a_good_one_still_flags_the_row() -> None:
    """经营状态 (status) is read before 排污许可证 (discharge_permit): a bad status with a
    good permit, and a good status with a bad permit, are both attribute_invalid."""
    body = ("名称,行业,地址,经营状态,排污许可证\n"
            "甲,陶瓷,广州,乱写,是\n乙,陶瓷,广州,在产,乱写\n丙,陶瓷,广州,在产,是\n").encode()
    acc = I.read_registry(body, filename="r.csv").accepted
    assert acc["data_issues"].tolist() == ["uscc_missing;attribute_invalid",
                                           "uscc_missing;attribute_invalid", "uscc_missing"]


def test_registry_units_carry_the_cleaned_uscc_and_name() -> None:
    """A coal-boiler size in the registry makes one unit per row; the unit frame names the
    enterprise as the accepted row does (name stripped, the code stripped and upper-cased),
    with a fresh 0..n-1 index and no
    stray index column."""
    body = ("名称,统一社会信用代码,行业,地址,燃煤锅炉蒸吨\n"
            " 甲厂 , 91440300ma5fxxxx3c ,钢铁,广州,10\n乙厂,,钢铁,广州,\n丙厂,,钢铁,广州,20\n"
            ).encode()
    res = I.read_registry(body, filename="r.csv")
    units = res.units
    assert units["name"].tolist() == ["甲厂", "丙厂"]
    assert units["uscc"].tolist() == ["91440300MA5FXXXX3C", ""]
    assert units["enterprise_row"].tolist() == [2, 4]
    assert units.index.tolist() == [0, 1]
    assert "index" not in units.columns and "level_0" not in units.columns
