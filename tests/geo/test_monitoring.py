"""Monitoring data: reading with row-level rejections, limits, exceedances, lists.

Oracles: the limit values as the standards' texts state them (GB 3544-2008 表2, GB 4287-2012
表2 and its 2015 修改单), hand-computed 超标倍数, and boundaries tested at the boundary.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.errors import MissingColumnError
from geo.monitoring import (
    MONITORING_COLUMNS,
    attach_enterprises,
    exceedance_list,
    judge,
    read_monitoring,
    serious_list,
    summarise,
)

HEADER = "统一社会信用代码,企业名称,排放口名称,监测因子,采样时间,实测浓度(mg/L),计量单位,废水流量\n"


def _enterprises() -> pd.DataFrame:
    rows = [  # uscc, name, industry_id, industry, basin_id
        ("U1", "潮南印染厂", "dyeing", "印染", "lianjiang"),
        ("U2", "东莞纸业", "paper", "造纸", ""),
        ("U3", "佛山印染厂", "dyeing", "印染", ""),
        ("U4", "光明制革厂", "tanning", "制革", "maozhou"),
        ("U5", "韶关钢铁厂", "steel", "钢铁", ""),
        ("U6", "重名厂", "paper", "造纸", ""),
        ("U7", "重名厂", "paper", "造纸", ""),
    ]
    df = pd.DataFrame(rows, columns=["uscc", "name", "industry_id", "industry", "basin_id"])
    df["region_id"] = ""
    df["city"] = "某市"
    df["district"] = "某区"
    df["lon"] = 113.0 + np.arange(len(df)) * 0.1
    df["lat"] = 23.0
    return df


def _samples(rows: list[tuple]) -> pd.DataFrame:
    """(uscc, pollutant, 'YYYY-MM-DD', value[, discharge]) -> accepted monitoring rows."""
    out = pd.DataFrame({
        "row": np.arange(2, len(rows) + 2), "uscc": [r[0] for r in rows], "name": "",
        "outlet": "DW001", "pollutant": [r[1] for r in rows],
        "sampled_at": pd.to_datetime([r[2] for r in rows]),
        "value": [float(r[3]) for r in rows], "unit": "mg/L", "below_detection": False,
        "detection_limit": np.nan, "flow": np.nan,
        "discharge": [r[4] if len(r) > 4 else "direct" for r in rows],
    })
    return out[list(MONITORING_COLUMNS)]


def _judge(rows: list[tuple]) -> pd.DataFrame:
    matched, rejected = attach_enterprises(_samples(rows), _enterprises())
    assert rejected.empty
    return judge(matched)


# --------------------------------------------------------------------------- reading


def test_reads_chinese_headers_and_reports_every_unusable_row(tmp_path: Path) -> None:
    body = (
        "U1,潮南印染厂,DW001,化学需氧量,2019-05-01 08:00,95,mg/L,120\n"
        ",东莞纸业,DW001,COD,2019年5月2日 9时,80,mg/L,\n"
        ",东莞纸业,DW001,氨氮,2019/5/3,0.05L,mg/L,\n"
        ",东莞纸业,DW001,总锑,2019/5/3,ND,mg/L,\n"
        ",东莞纸业,DW001,总锑,2019/5/4,<0.002,mg/L,\n"
        ",东莞纸业,DW001,总锑,2019/5/5,50,μg/L,\n"
        ",,DW001,化学需氧量,2019-06-03,50,mg/L,\n"
        ",东莞纸业,DW001,苯并芘,2019-06-03,50,mg/L,\n"
        ",东莞纸业,DW001,化学需氧量,2019-13-03,50,mg/L,\n"
        ",东莞纸业,DW001,化学需氧量,2019-06-03,约五十,mg/L,\n"
        ",东莞纸业,DW001,化学需氧量,2019-06-04,-3,mg/L,\n"
        ",东莞纸业,DW001,化学需氧量,2019-06-05,3,倍,\n"
        ",东莞纸业,DW001,pH,2019-06-05,7.5,无量纲,\n"
        ",东莞纸业,DW001,pH,2019-06-05,7.6,无量纲,\n"
    )
    path = tmp_path / "监测.csv"
    path.write_text(HEADER + body, encoding="gb18030")  # GBK export, as many systems write
    res = read_monitoring(path)
    assert res.source_rows == 14
    assert len(res.accepted) + len(res.rejected) == 14
    reasons = dict(zip(res.rejected["row"], res.rejected["reason"], strict=True))
    assert reasons == {8: "enterprise_missing", 9: "pollutant_unknown", 10: "time_unparseable",
                       11: "value_unparseable", 12: "value_negative", 13: "unit_incompatible",
                       15: "duplicate_sample"}
    msg = res.rejected.set_index("row")["message"]
    assert "第13行" in msg[13] and "单位" in msg[13] and "mg/L" in msg[13]
    assert "苯并芘" in msg[9] and "化学需氧量" in msg[9]
    acc = res.accepted.set_index("row")
    assert acc.loc[3, "sampled_at"] == pd.Timestamp("2019-05-02 09:00")
    assert acc.loc[4, "below_detection"] and acc.loc[4, "detection_limit"] == 0.05
    assert acc.loc[5, "below_detection"] and np.isnan(acc.loc[5, "detection_limit"])
    assert acc.loc[6, "detection_limit"] == 0.002
    assert acc.loc[7, "value"] == pytest.approx(0.05)  # 50 μg/L = 0.05 mg/L
    assert acc.loc[7, "unit"] == "mg/L" and acc.loc[2, "flow"] == 120


def test_reads_xlsx_the_same_as_csv(tmp_path: Path) -> None:
    rows = [["U1", "潮南印染厂", "DW001", "氨氮", "2019-05-01", "12.5", "mg/L"]]
    cols = ["统一社会信用代码", "企业名称", "排放口", "污染物名称", "监测时间", "排放浓度", "单位"]
    pd.DataFrame(rows, columns=cols).to_excel(tmp_path / "m.xlsx", index=False)
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "m.csv", index=False)
    a = read_monitoring(tmp_path / "m.xlsx").accepted
    b = read_monitoring(tmp_path / "m.csv").accepted
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "pollutant"] == "nh3n" and a.loc[0, "value"] == 12.5


def test_missing_required_column_names_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("企业名称,监测项目,浓度\n厂,COD,1\n", encoding="utf-8")
    with pytest.raises(MissingColumnError, match="监测时间"):
        read_monitoring(tmp_path / "m.csv")


def test_unmatched_and_ambiguous_enterprises_are_rejected_with_reasons() -> None:
    s = _samples([("U1", "cod", "2019-05-01", 1), ("", "cod", "2019-05-01", 1),
                  ("", "cod", "2019-05-01", 1)])
    s.loc[1, "name"] = "不存在厂"
    s.loc[2, "name"] = "重名厂"
    matched, rejected = attach_enterprises(s, _enterprises())
    assert list(matched["uscc"]) == ["U1"] and matched.loc[0, "basin_id"] == "lianjiang"
    assert list(rejected["reason"]) == ["enterprise_not_found", "enterprise_ambiguous"]
    assert "不存在厂" in rejected["message"].iloc[0]


# --------------------------------------------------------------------------- judging


def test_gb4287_cod_boundary_exactly_at_the_limit_complies() -> None:
    """GB 4287-2012 表2 直接排放 COD 80 mg/L: 80 complies, 80.01 exceeds (>, not >=)."""
    j = _judge([("U3", "cod", "2019-05-01", 80), ("U3", "cod", "2019-05-02", 80.01)])
    assert list(j["outcome"]) == ["complies", "exceeds"]
    assert (j["standard"] == "GB 4287-2012").all() and (j["limit"] == 80).all()
    assert j["multiple"].iloc[1] == pytest.approx(0.01 / 80)
    assert j["ratio"].iloc[0] == pytest.approx(1.0)


def test_indirect_discharge_uses_the_2015_amendment_limit() -> None:
    """修改单 (2015-03-27): COD 间接排放 200 (other than park pre-treatment)."""
    j = _judge([("U3", "cod", "2019-05-01", 150, "indirect"),
                ("U3", "cod", "2019-05-01", 201, "indirect")])
    assert list(j["limit"]) == [200, 200]
    assert list(j["outcome"]) == ["complies", "exceeds"]


def test_before_the_national_standard_binds_existing_enterprises_no_limit_applies() -> None:
    """GB 4287-2012 binds existing enterprises from 2015-01-01 (its 表1 is not in the data)."""
    j = _judge([("U3", "cod", "2014-12-31", 500), ("U3", "cod", "2015-01-01", 500)])
    assert list(j["outcome"]) == ["no_limit", "exceeds"]


def test_paper_sub_category_unknown_uses_the_least_strict_value() -> None:
    """GB 3544-2008 表2 COD 100 (制浆) / 90 / 80: without the type, 100 decides."""
    j = _judge([("U2", "cod", "2019-05-01", 95), ("U2", "cod", "2019-05-01", 100.5)])
    assert list(j["limit"]) == [100, 100]
    assert list(j["outcome"]) == ["complies", "exceeds"]
    assert j["multiple"].iloc[1] == pytest.approx(0.005)


def test_ph_range_boundaries() -> None:
    """GB 3544-2008 表2 pH 6~9: 6 and 9 comply, 5.99 and 9.01 exceed."""
    j = _judge([("U2", "ph", "2019-05-01", v) for v in (6.0, 9.0, 5.99, 9.01)])
    assert list(j["outcome"]) == ["complies", "complies", "exceeds", "exceeds"]


def test_unsourced_basin_limit_is_never_compared_but_the_national_floor_is() -> None:
    """练江 dyeing: DB44/2051-2017 applies but is unsourced; GB 4287 COD 80 is the floor."""
    j = _judge([("U1", "cod", "2019-05-01", 79), ("U1", "cod", "2019-05-01", 80),
                ("U1", "cod", "2019-05-01", 120)])
    assert (j["standard"] == "DB44/2051-2017").all()
    assert (j["limit_status"] == "unsourced").all() and j["limit"].isna().all()
    assert list(j["outcome"]) == ["undetermined", "undetermined", "exceeds_floor"]
    assert (j["floor_standard"] == "GB 4287-2012").all()
    assert j["multiple"].iloc[2] == pytest.approx(0.5)  # (120-80)/80, a lower bound
    assert j["multiple"].iloc[:2].isna().all()


def test_unsourced_national_limit_gives_no_exceedance_however_high() -> None:
    """GB 30486-2013 (tanning) values are unsourced; 茅洲河's basin standard does not cover
    tanning, so the national standard applies and nothing is computed."""
    j = _judge([("U4", "cr6", "2019-05-01", 1000.0)])
    assert j.loc[0, "standard"] == "GB 30486-2013"
    assert j.loc[0, "outcome"] == "undetermined" and np.isnan(j.loc[0, "multiple"])


def test_no_standard_in_the_data_means_no_limit() -> None:
    j = _judge([("U5", "cod", "2019-05-01", 1000.0)])
    assert j.loc[0, "outcome"] == "no_limit" and j.loc[0, "limit_status"] == "none"


def test_below_detection_complies_unless_the_detection_limit_is_above_the_limit() -> None:
    s = _samples([("U3", "sb", "2019-05-01", 0), ("U3", "sb", "2019-05-02", 0)])
    s["value"] = np.nan
    s["below_detection"] = True
    s["detection_limit"] = [0.05, 0.2]  # 总锑 limit 0.10 mg/L (修改单 三)
    j = judge(attach_enterprises(s, _enterprises())[0])
    assert list(j["outcome"]) == ["complies", "undetermined"]


# --------------------------------------------------------------------------- summaries


def _year(values: dict[str, list[float]]) -> pd.DataFrame:
    """U3 (dyeing, GB 4287) COD samples on given 'YYYY-MM-DD' dates."""
    rows = [("U3", "cod", d, v) for d, vs in values.items() for v in vs]
    return _judge(rows)


def test_monthly_and_quarterly_counts_and_ratios() -> None:
    j = _year({"2019-01-05": [90, 50], "2019-02-05": [70], "2019-04-05": [100, 100, 10]})
    m = summarise(j, period="M", by=("uscc", "pollutant")).set_index("period")
    assert list(m.index) == ["2019-01", "2019-02", "2019-04"]
    assert list(m["exceedances"]) == [1, 0, 2]
    assert list(m["exceedance_ratio"]) == pytest.approx([0.5, 0.0, 2 / 3])
    assert m.loc["2019-04", "max_multiple"] == pytest.approx(0.25)
    q = summarise(j, period="Q", by=("uscc",)).set_index("period")
    assert list(q["samples"]) == [3, 3] and list(q["exceedances"]) == [1, 2]
    with pytest.raises(ValueError, match="period"):
        summarise(j, period="W")


def test_exceedance_list_covers_the_year_up_to_the_date() -> None:
    j = _year({"2018-12-31": [500], "2019-03-01": [90], "2019-07-01": [160]})
    first = exceedance_list(j, as_of=date(2019, 6, 30))
    assert len(first) == 1 and first.loc[0, "exceedances"] == 1
    assert first.loc[0, "pollutants"] == "化学需氧量（1次，最大超标0.12倍）"
    later = exceedance_list(j, as_of=date(2019, 12, 31))
    assert later.loc[0, "exceedances"] == 2 and later.loc[0, "max_multiple"] == pytest.approx(1.0)
    assert exceedance_list(j, as_of=date(2019, 2, 28)).empty


def test_serious_toxic_threshold_is_a_multiple_of_three_exactly() -> None:
    """总锑 limit 0.10: 0.40 mg/L is 超标3倍 (serious); 0.399 is not."""
    j = _judge([("U3", "sb", "2019-05-01", 0.399), ("U1", "sb", "2019-05-01", 0.40)])
    s = serious_list(j, as_of=date(2019, 12, 31))
    assert list(s["uscc"]) == ["U1"] and s.loc[0, "criteria"] == "toxic_3x"
    assert "法释〔2016〕29号" in s.loc[0, "criteria_zh"]


def test_serious_repeated_needs_three_distinct_months() -> None:
    two = _year({"2019-01-05": [90, 90], "2019-03-05": [90]})
    three = _year({"2019-01-05": [90], "2019-03-05": [90], "2019-09-05": [81]})
    assert serious_list(two, as_of=date(2019, 12, 31)).empty
    s = serious_list(three, as_of=date(2019, 12, 31))
    assert list(s["criteria"]) == ["repeated"]
    # the window is 365 days back from the date: January 2019 falls out on 2020-01-06
    assert serious_list(three, as_of=date(2020, 1, 6)).empty
