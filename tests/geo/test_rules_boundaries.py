"""The plan's thresholds at their boundaries, its exemptions and its deadlines, end to end.

The expectations below are read from the plan's own words (seed 表5, 表2, 表1, 二(一)2),
independently of the catalog: "400立方米及以下" holds at 400 and not above it, "直径3米以下"
does not hold at 3, "超过15年" does not hold at 15, ... Every case is one enterprise with one
unit, written to a registry CSV and an equipment CSV (or an XLSX second sheet) by real
writers, with units as registries write them (header brackets, "5.1万吨/年", "1760毫米").
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from geo.pipeline import run_pipeline
from geo.schema import LIST_SEP
from geo.uscc import uscc_check_char

AS_OF = date(2019, 6, 30)
QUJIANG = (113.60, 24.68)      # 韶关市曲江区: in no basin, region or listed city
GUANGZHOU = (113.48, 23.40)    # 广州市 (outside the 广佛 zone)
SHENZHEN = (114.25, 22.72)     # 深圳市


def _uscc(k: int) -> str:
    body = f"91440000MA{k:07d}"
    return body + uscc_check_char(body)


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def run_units(
    tmp_path: Path, cases: list[tuple[str, dict[str, str]]], *, as_of: date = AS_OF,
    where: tuple[float, float] = QUJIANG, fmt: str = "csv",
) -> Any:
    """One enterprise per case (industry, equipment row as header -> cell); run the pipeline."""
    heads = sorted({h for _i, row in cases for h in row})
    reg_head = ["统一社会信用代码", "企业名称", "行业", "经度", "纬度"]
    reg = [[_uscc(k), f"企业{k}", ind, where[0], where[1]] for k, (ind, _r) in enumerate(cases)]
    eq_head = ["统一社会信用代码", "设备编号", *heads]
    eq = [[_uscc(k), f"U{k}", *(row.get(h, "") for h in heads)]
          for k, (_i, row) in enumerate(cases)]
    if fmt == "xlsx":
        wb = openpyxl.Workbook()
        wb.active.append(reg_head)
        for r in reg:
            wb.active.append(r)
        ws = wb.create_sheet("设备清单")
        ws.append(eq_head)
        for r in eq:
            ws.append(r)
        wb.save(tmp_path / "r.xlsx")
        return run_pipeline(tmp_path / "r.xlsx", as_of=as_of)
    registry = _write(tmp_path / "registry.csv", reg_head, reg)
    equipment = _write(tmp_path / "equipment.csv", eq_head, eq)
    return run_pipeline(registry, equipment=equipment, as_of=as_of)


def _unit(res: Any, k: int) -> Any:
    return res.units.set_index("unit_id").loc[f"U{k}"]


# (industry, equipment row, rule id, fires?) -- thresholds from the plan's text
BOUNDARIES: list[tuple[str, dict[str, str], str, bool]] = [
    # 表5 第1项(1) 400立方米及以下炼铁高炉
    ("钢铁", {"设备类型": "高炉", "容积(m³)": "400"}, "steel_blast_furnace_le_400m3", True),
    ("钢铁", {"设备类型": "高炉", "容积(m³)": "400.5"}, "steel_blast_furnace_le_400m3", False),
    ("钢铁", {"设备类型": "高炉", "容积": "400立方米"}, "steel_blast_furnace_le_400m3", True),
    # 表5 第1项(2)(3) 30吨及以下转炉、电炉
    ("钢铁", {"设备类型": "转炉", "公称容量(吨)": "30"}, "steel_converter_le_30t", True),
    ("钢铁", {"设备类型": "转炉", "公称容量(吨)": "30.1"}, "steel_converter_le_30t", False),
    ("钢铁", {"设备类型": "电炉", "公称容量(吨)": "30", "高合金电弧炉": "否"}, "steel_eaf_le_30t", True),
    ("钢铁", {"设备类型": "电炉", "公称容量(吨)": "31", "高合金电弧炉": "否"}, "steel_eaf_le_30t", False),
    # 表5 第2项(2) 直径3米以下水泥粉磨设备
    ("水泥", {"设备类型": "水泥磨", "直径(米)": "3"}, "cement_mill_diameter_lt_3m", False),
    ("水泥", {"设备类型": "水泥磨", "直径(米)": "2.99"}, "cement_mill_diameter_lt_3m", True),
    ("水泥", {"设备类型": "水泥磨", "直径": "2990毫米"}, "cement_mill_diameter_lt_3m", True),
    ("水泥", {"设备类型": "水泥磨", "直径": "3000mm"}, "cement_mill_diameter_lt_3m", False),
    # 表5 第3项(1) 16万安培以下预焙槽
    ("电解铝", {"设备类型": "预焙槽", "电流强度(kA)": "160"}, "aluminium_prebaked_cell_lt_160ka", False),
    ("电解铝", {"设备类型": "预焙槽", "电流强度(kA)": "159.9"}, "aluminium_prebaked_cell_lt_160ka", True),
    ("电解铝", {"设备类型": "预焙槽", "电流强度": "16万安培"}, "aluminium_prebaked_cell_lt_160ka", False),
    ("电解铝", {"设备类型": "预焙槽", "电流强度": "15.9万安"}, "aluminium_prebaked_cell_lt_160ka", True),
    # 表5 第5项(1)-(3) 化学木浆 5.1万吨/年以下, 非木浆 3.4万吨/年以下, 废纸浆 1万吨/年及以下
    ("造纸", {"设备类型": "化学木浆生产线", "年产能": "51000", "单位": "吨/年"}, "paper_chemical_wood_pulp_lt_51000t", False),
    ("造纸", {"设备类型": "化学木浆生产线", "年产能": "50999", "单位": "吨/年"}, "paper_chemical_wood_pulp_lt_51000t", True),
    ("造纸", {"设备类型": "化学木浆生产线", "年产能": "5.1万吨/年"}, "paper_chemical_wood_pulp_lt_51000t", False),
    ("造纸", {"设备类型": "非木浆生产线", "年产能(万吨/年)": "3.4"}, "paper_non_wood_pulp_lt_34000t", False),
    ("造纸", {"设备类型": "非木浆生产线", "年产能(万吨/年)": "3.39"}, "paper_non_wood_pulp_lt_34000t", True),
    ("造纸", {"设备类型": "废纸制浆生产线", "年产能": "1万吨/年"}, "paper_waste_paper_pulp_le_10000t", True),
    ("造纸", {"设备类型": "废纸制浆生产线", "年产能": "10001", "单位": "吨/年"}, "paper_waste_paper_pulp_le_10000t", False),
    # 表5 第5项(4) 幅宽1.76米及以下并且车速120米/分以下
    ("造纸", {"设备类型": "文化纸生产线", "幅宽(米)": "1.76", "车速(米/分)": "119"}, "paper_culture_paper_narrow_slow", True),
    ("造纸", {"设备类型": "文化纸生产线", "幅宽(米)": "1.76", "车速(米/分)": "120"}, "paper_culture_paper_narrow_slow", False),
    ("造纸", {"设备类型": "文化纸生产线", "幅宽(米)": "1.77", "车速(米/分)": "100"}, "paper_culture_paper_narrow_slow", False),
    ("造纸", {"设备类型": "文化纸生产线", "幅宽": "1760毫米", "车速(米/分)": "119"}, "paper_culture_paper_narrow_slow", True),
    # 表5 第5项(5) 幅宽2米及以下并且车速80米/分以下
    ("造纸", {"设备类型": "箱板纸生产线", "幅宽(米)": "2", "车速(米/分)": "79"}, "paper_board_paper_narrow_slow", True),
    ("造纸", {"设备类型": "箱板纸生产线", "幅宽(米)": "2", "车速(米/分)": "80"}, "paper_board_paper_narrow_slow", False),
    ("造纸", {"设备类型": "箱板纸生产线", "幅宽(米)": "2.01", "车速(米/分)": "79"}, "paper_board_paper_narrow_slow", False),
    # 表5 第7项 生皮5万标张、蓝湿皮3万标张以下
    ("制革", {"设备类型": "制革生产线", "年产能": "50000", "单位": "标张/年", "原料皮": "生皮"}, "tanning_raw_hide_line_lt_50000", False),
    ("制革", {"设备类型": "制革生产线", "年产能": "49999", "单位": "标张/年", "原料皮": "生皮"}, "tanning_raw_hide_line_lt_50000", True),
    ("制革", {"设备类型": "制革生产线", "年产能": "5万标张/年", "原料皮": "生皮"}, "tanning_raw_hide_line_lt_50000", False),
    ("制革", {"设备类型": "制革生产线", "年产能": "40000", "单位": "标张/年", "原料皮": "蓝湿皮"}, "tanning_raw_hide_line_lt_50000", False),
    ("制革", {"设备类型": "制革生产线", "年产能": "30000", "单位": "标张/年", "原料皮": "蓝湿皮"}, "tanning_wet_blue_line_lt_30000", False),
    ("制革", {"设备类型": "制革生产线", "年产能": "29999", "单位": "标张/年", "原料皮": "蓝湿皮"}, "tanning_wet_blue_line_lt_30000", True),
    # 表5 第12项(1) 100万平方米/年以下陶瓷砖、20万件/年以下低档卫生陶瓷
    ("陶瓷", {"设备类型": "陶瓷砖生产线", "年产能": "100万平方米/年"}, "ceramic_tile_line_lt_1m_m2", False),
    ("陶瓷", {"设备类型": "陶瓷砖生产线", "年产能": "999999", "单位": "平方米/年"}, "ceramic_tile_line_lt_1m_m2", True),
    ("陶瓷", {"设备类型": "卫生陶瓷生产线", "年产能": "200000", "单位": "件/年", "产品档次": "低档"}, "ceramics_low_grade_sanitary_lt_200k", False),
    ("陶瓷", {"设备类型": "卫生陶瓷生产线", "年产能": "199999", "单位": "件/年", "产品档次": "低档"}, "ceramics_low_grade_sanitary_lt_200k", True),
    ("陶瓷", {"设备类型": "卫生陶瓷生产线", "年产能": "199999", "单位": "件/年", "产品档次": "中高档"}, "ceramics_low_grade_sanitary_lt_200k", False),
    # 表5 第11项 不达标的30万千瓦以下煤电机组
    ("小火电", {"设备类型": "燃煤机组", "机组容量(MW)": "300", "是否达标": "否"}, "coal_power_lt_300mw_substandard", False),
    ("小火电", {"设备类型": "燃煤机组", "机组容量(MW)": "299", "是否达标": "否"}, "coal_power_lt_300mw_substandard", True),
    ("小火电", {"设备类型": "燃煤机组", "机组容量": "30万千瓦", "是否达标": "否"}, "coal_power_lt_300mw_substandard", False),
    ("小火电", {"设备类型": "燃煤机组", "机组容量(MW)": "299", "是否达标": "是"}, "coal_power_lt_300mw_substandard", False),
    # 表5 第6项(3) 国产超过15年、进口超过20年 (as of 2019)
    ("印染", {"设备类型": "拉幅机", "投产年份": "2004", "设备产地": "国产"}, "dyeing_domestic_equipment_over_15_years", False),
    ("印染", {"设备类型": "拉幅机", "投产年份": "2003", "设备产地": "国产"}, "dyeing_domestic_equipment_over_15_years", True),
    ("印染", {"设备类型": "拉幅机", "投产年份": "2003", "设备产地": "进口"}, "dyeing_domestic_equipment_over_15_years", False),
    ("印染", {"设备类型": "拉幅机", "投产年份": "1999", "设备产地": "进口"}, "dyeing_imported_equipment_over_20_years", False),
    ("印染", {"设备类型": "拉幅机", "投产年份": "1998", "设备产地": "进口"}, "dyeing_imported_equipment_over_20_years", True),
    ("印染", {"设备类型": "圆网印花机", "使用年限": "15", "设备产地": "国产"}, "dyeing_domestic_equipment_over_15_years", False),
    ("印染", {"设备类型": "圆网印花机", "使用年限": "16年", "设备产地": "国产"}, "dyeing_domestic_equipment_over_15_years", True),
    # 表5 第6项(4) 超过15年、浴比大于1:10
    ("印染", {"设备类型": "溢流染色机", "使用年限": "16", "浴比": "1:10"}, "dyeing_batch_dyeing_old_high_liquor_ratio", False),
    ("印染", {"设备类型": "溢流染色机", "使用年限": "16", "浴比": "1:11"}, "dyeing_batch_dyeing_old_high_liquor_ratio", True),
    ("印染", {"设备类型": "溢流染色机", "使用年限": "15", "浴比": "1∶12"}, "dyeing_batch_dyeing_old_high_liquor_ratio", False),
    # 表5 第8项(2) 镉含量高于0.002%或砷含量高于0.1%
    ("铅蓄电池", {"设备类型": "铅蓄电池生产线", "镉含量(%)": "0.002"}, "lead_acid_cadmium_arsenic", False),
    ("铅蓄电池", {"设备类型": "铅蓄电池生产线", "镉含量(%)": "0.0021"}, "lead_acid_cadmium_arsenic", True),
    ("铅蓄电池", {"设备类型": "铅蓄电池生产线", "砷含量(%)": "0.1"}, "lead_acid_cadmium_arsenic", False),
    ("铅蓄电池", {"设备类型": "铅蓄电池生产线", "砷含量(%)": "0.11"}, "lead_acid_cadmium_arsenic", True),
    # 表2 炉膛直径3米以下燃料类煤气发生炉
    ("钢铁", {"设备类型": "煤气发生炉", "炉膛直径(米)": "3"}, "gas_producer_lt_3m", False),
    ("钢铁", {"设备类型": "煤气发生炉", "炉膛直径(米)": "2.9"}, "gas_producer_lt_3m", True),
    # exemptions and "unless" clauses (表5 第1项(1)(3), 第2项(1), 第6项(1), 第9项(1), 第10项(2))
    ("钢铁", {"设备类型": "高炉", "容积(m³)": "300", "铸造用生铁企业认定": "是"}, "steel_blast_furnace_le_400m3", False),
    ("钢铁", {"设备类型": "电炉", "公称容量(吨)": "20", "高合金电弧炉": "是"}, "steel_eaf_le_30t", False),
    ("水泥", {"设备类型": "干法中空窑", "生产特种水泥": "是"}, "cement_dry_hollow_kiln", False),
    ("水泥", {"设备类型": "干法中空窑", "产品": "硫铝酸盐水泥"}, "cement_dry_hollow_kiln", False),
    ("水泥", {"设备类型": "干法中空窑", "生产特种水泥": "否"}, "cement_dry_hollow_kiln", True),
    ("印染", {"设备类型": "74型染整设备", "是否经改造": "是"}, "dyeing_74_type_unmodified", False),
    ("印染", {"设备类型": "74型染整设备", "是否经改造": "否"}, "dyeing_74_type_unmodified", True),
    ("铜冶炼", {"设备类型": "电炉", "工艺名称": "电炉贫化"}, "copper_blast_electric_reverberatory", False),
    ("铜冶炼", {"设备类型": "反射炉"}, "copper_blast_electric_reverberatory", True),
    ("铅冶炼", {"设备类型": "烧结机", "配套制酸及尾气吸收": "是"}, "lead_sintering_machine_without_acid", False),
    ("铅冶炼", {"设备类型": "烧结机", "配套制酸及尾气吸收": "否"}, "lead_sintering_machine_without_acid", True),
]


def _canonical(header: str) -> str:
    from geo.equipment import _header_lookup, _norm_header

    return _header_lookup().get(_norm_header(header)[0], header)


def _groups() -> list[list[int]]:
    """Cases split so that no file has two headers for the same column (容积 / 容积(m³))."""
    groups: list[tuple[dict[str, str], list[int]]] = []
    for k, (_i, row, _r, _f) in enumerate(BOUNDARIES):
        canon = {_canonical(h): h for h in row}
        for heads, members in groups:
            if all(heads.get(c, h) == h for c, h in canon.items()):
                heads.update(canon)
                members.append(k)
                break
        else:
            groups.append((dict(canon), [k]))
    return [m for _h, m in groups]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_thresholds_at_their_boundaries(tmp_path: Path, fmt: str) -> None:
    wrong = []
    for g, members in enumerate(_groups()):
        folder = tmp_path / str(g)
        folder.mkdir()
        res = run_units(folder, [BOUNDARIES[k][:2] for k in members], fmt=fmt)
        assert res.rejected.empty, res.rejected.to_string()
        for j, k in enumerate(members):
            ind, row, rule_id, fires = BOUNDARIES[k]
            ids = _unit(res, j)["rule_ids"].split(LIST_SEP)
            if (rule_id in ids) != fires:
                wrong.append((ind, row, rule_id, fires))
    assert not wrong, wrong


def test_exemption_left_blank_keeps_the_verdict_and_asks_for_review(tmp_path: Path) -> None:
    res = run_units(tmp_path, [
        ("钢铁", {"设备类型": "高炉", "容积(m³)": "300"}),
        ("钢铁", {"设备类型": "高炉", "容积(m³)": "300", "铸造用生铁企业认定": "否"}),
    ])
    blank, known = _unit(res, 0), _unit(res, 1)
    assert blank["verdict"] == known["verdict"] == "shutdown"
    assert blank["needs_review"] and "exemption_unverified" in blank["review_reasons"]
    assert not known["needs_review"]
    ent = res.enterprises.set_index("name")
    assert ent.loc["企业0", "needs_review"] and not ent.loc["企业1", "needs_review"]


def test_enterprise_verdict_is_the_strongest_unit_and_names_the_units(tmp_path: Path) -> None:
    reg = _write(tmp_path / "r.csv", ["统一社会信用代码", "企业名称", "行业", "经度", "纬度"],
                 [[_uscc(1), "某钢铁公司", "钢铁", *QUJIANG]])
    equ = _write(tmp_path / "e.csv", ["统一社会信用代码", "设备编号", "设备类型", "容积(m³)",
                                      "公称容量(吨)", "铸造用生铁企业认定"],
                 [[_uscc(1), "1号高炉", "高炉", "1080", "", ""],
                  [_uscc(1), "2号高炉", "高炉", "380", "", "否"],
                  [_uscc(1), "3号转炉", "转炉", "", "25", ""],
                  [_uscc(1), "4号转炉", "转炉", "", "120", ""]])
    res = run_pipeline(reg, equipment=equ, as_of=AS_OF)
    ent = res.enterprises.iloc[0]
    assert ent["verdict"] == "shutdown" and ent["unit_count"] == 4
    assert ent["deadline_status"] == "immediate"
    reasons = ent["reasons"]
    # the units are named, each with the citation of the rule it falls under
    named = "2号高炉（关停退出〔表5 第1项(1)〕）、3号转炉（关停退出〔表5 第1项(2)〕）"
    assert reasons.endswith("；涉及设备：" + named)
    assert "1号高炉" not in reasons and "4号转炉" not in reasons
    assert ent["units"] == named
    assert "differential_price" in ent["price_measures"]
    assert "差别电价" in reasons
    units = res.units.set_index("unit_id")
    assert units.loc["1号高炉", "verdict"] == "no_action"
    assert units.loc["2号高炉", "verdict"] == "shutdown"


def _energy(tmp_path: Path, rows: list[dict[str, str]], as_of: date) -> Any:
    base = {"设备类型": "全厂", "能耗指标": "铝液交流电耗", "能耗监察日期": "2019-01-15"}
    return run_units(tmp_path, [("电解铝", {**base, **r}) for r in rows], as_of=as_of)


def test_energy_limit_is_a_maximum_and_rectification_runs_six_months(tmp_path: Path) -> None:
    """GB 21346-2013 铝液交流电耗 ≤ 13700 kW·h/t; 二(一)2: 6 months, one extension ≤ 3."""
    rows = [
        {"单位产品能耗": "13700"},                       # at the limit: complies
        {"单位产品能耗": "13701"},                       # over: rectify by 2019-07-15
        {"单位产品能耗": "13701", "整改延期(月)": "3"},    # extended: 2019-10-15
        {"单位产品能耗": "13701", "整改延期(月)": "5"},    # over 3 months: 3 counted, reported
    ]
    res = _energy(tmp_path, rows, date(2019, 7, 15))
    u = [_unit(res, k) for k in range(4)]
    assert "energy_over_limit_rectify" not in u[0]["rule_ids"]
    assert u[1]["verdict"] == "rectify" and u[1]["deadline"] == "2019-07-15"
    assert u[1]["deadline_status"] == "pending"
    assert u[2]["deadline"] == "2019-10-15"
    assert u[3]["deadline"] == "2019-10-15" and "extension_over_3_months" in u[3]["data_issues"]
    ent = res.enterprises.set_index("name")
    assert ent.loc["企业1", "deadline"] == "2019-07-15"
    assert "punitive_price" in ent.loc["企业1", "price_measures"]
    later = _energy(tmp_path, rows, date(2019, 7, 16))
    one = _unit(later, 1)
    assert one["deadline_status"] == "overdue" and "recheck_missing" in one["review_reasons"]
    assert _unit(later, 2)["deadline_status"] == "pending"


def test_still_over_after_the_deadline_means_shutdown(tmp_path: Path) -> None:
    rows = [
        {"单位产品能耗": "13900", "复查能耗": "13800"},   # rechecked, still over
        {"单位产品能耗": "13900", "复查能耗": "13650"},   # rechecked, now within the limit
    ]
    before = _energy(tmp_path, rows, date(2019, 7, 15))
    assert _unit(before, 0)["verdict"] == "rectify"
    after = _energy(tmp_path, rows, date(2019, 7, 16))
    assert _unit(after, 0)["verdict"] == "shutdown"
    assert "energy_over_limit_rectify" not in _unit(after, 1)["rule_ids"]
    assert _unit(after, 1)["verdict"] == "no_action"


def test_aluminium_tiered_price_bands(tmp_path: Path) -> None:
    """阶梯电价: ≤13700 normal; (13700, 13800] +0.02 元; > 13800 +0.08 元 per kW·h."""
    rows = [{"单位产品能耗": v} for v in ("13700", "13750", "13800", "13801")]
    res = _energy(tmp_path, rows, date(2019, 3, 1))
    tiers = [(("aluminium_tiered_price_13700_13800" in _unit(res, k)["rule_ids"]),
              ("aluminium_tiered_price_above_13800" in _unit(res, k)["rule_ids"]))
             for k in range(4)]
    assert tiers == [(False, False), (True, False), (True, False), (False, True)]


def test_unsourced_limit_asks_for_the_value_instead_of_inventing_one(tmp_path: Path) -> None:
    res = run_units(tmp_path, [("钢铁", {"设备类型": "全厂", "能耗指标": "高炉工序",
                                          "单位产品能耗": "500", "能耗监察日期": "2019-01-15"})])
    unit = _unit(res, 0)
    assert "energy_limit_value_needed" in unit["rule_ids"]
    assert "limit_value_needed" in unit["review_reasons"]
    assert "energy_over_limit_rectify" not in unit["rule_ids"]


def test_fixed_deadlines_turn_overdue_with_as_of(tmp_path: Path) -> None:
    """二(二)2: Shenzhen's coal boilers converted by the end of 2019."""
    row = [("印染", {"设备类型": "燃煤锅炉", "锅炉蒸吨": "10"})]
    pending = run_units(tmp_path, row, where=SHENZHEN, as_of=date(2019, 12, 31))
    overdue = run_units(tmp_path, row, where=SHENZHEN, as_of=date(2020, 1, 1))
    p, o = pending.enterprises.iloc[0], overdue.enterprises.iloc[0]
    assert p["deadline"] == o["deadline"] == "2019-12-31"
    assert (p["deadline_status"], o["deadline_status"]) == ("pending", "overdue")


def test_guangzhou_boilers_below_65_tph(tmp_path: Path) -> None:
    """二(二)2: 广州市 converts coal boilers below 65 蒸吨/小时."""
    res = run_units(tmp_path, [("钢铁", {"设备类型": "燃煤锅炉", "锅炉蒸吨": "65"}),
                               ("钢铁", {"设备类型": "燃煤锅炉", "锅炉蒸吨": "64.9蒸吨/小时"})],
                    where=GUANGZHOU)
    rid = "coal_boiler_conversion_guangzhou_below_65tph"
    assert rid not in _unit(res, 0)["rule_ids"] and rid in _unit(res, 1)["rule_ids"]
