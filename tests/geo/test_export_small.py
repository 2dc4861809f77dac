"""geo.export's geographic-frame guard: exact messages (issue 16, survivors of
``_geo_frame``). Oracle: the message texts written here by hand."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _export_fixtures import enforcement_frame, rejected_frame
from shapely.geometry import Point

from geo import export as E
from geo.parallel import Job, JobStats


def test_geo_frame_needs_a_geodataframe() -> None:
    with pytest.raises(E.ExportError) as e:
        E._geo_frame(pd.DataFrame({"a": [1]}))
    assert str(e.value) == "Cannot export a geographic format from a frame without geometry."


def test_geo_frame_needs_a_crs() -> None:
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(113.0, 22.0)])
    with pytest.raises(E.ExportError) as e:
        E._geo_frame(gdf)
    assert str(e.value) == (
        "The enforcement list has no CRS; set it with .set_crs('EPSG:4326') before export."
    )


def test_write_geojson_rounds_coordinates_to_7_decimals(tmp_path) -> None:
    gdf = enforcement_frame()
    gdf = gdf.set_geometry(gpd.points_from_xy([113.123456789123] * len(gdf),
                                              [22.987654321987] * len(gdf)), crs="EPSG:4326")
    path = E.write_geojson(gdf, tmp_path / "e.geojson")
    doc = json.loads(path.read_text(encoding="utf-8"))
    for f in doc["features"]:
        assert f["geometry"]["coordinates"] == [113.1234568, 22.9876543]


def test_export_all_fills_stats_and_returns_also_paths(tmp_path) -> None:
    extra = tmp_path / "extra.txt"

    def write_extra() -> Path:
        extra.write_text("x", encoding="utf-8")
        return extra

    stats: dict = {}
    paths = E.export_all(enforcement_frame(), rejected_frame(), tmp_path / "o",
                         also=[Job(stage="extra", rows=1, fn=write_extra)], stats=stats)
    assert paths["extra"] == extra and extra.read_text(encoding="utf-8") == "x"
    assert {"csv", "geojson", "xlsx", "gpkg", "rejected", "extra"} <= set(stats)
    assert all(isinstance(s, JobStats) for s in stats.values())


def test_rejection_titles_fall_back_to_the_code() -> None:
    # oracle: issues.toml read here with tomllib; issues without title_zh keep their code
    import tomllib

    raw = tomllib.loads((Path(E.__file__).parents[1] / "layers" / "data" / "issues.toml")
                        .read_text(encoding="utf-8"))["issue"]
    want = {code: item.get("title_zh", code) for code, item in raw.items()}
    assert any("title_zh" not in item for item in raw.values())  # the fallback is used
    assert E._rejection_titles() == want


def test_rejected_summary_by_reason_with_total() -> None:
    import tomllib

    labels = tomllib.loads((Path(E.__file__).parents[1] / "layers" / "data" / "labels.toml")
                           .read_text(encoding="utf-8"))
    words = labels["words"]
    reason, rows, total = words["rejected_reason"], words["rejected_count"], words["total"]
    # no rejected frame: one total row, blank or the given count
    for count, want in ((None, ""), (7, 7)):
        out = E._rejected_summary(None, count)
        assert list(out.columns) == [reason, rows]
        assert out.values.tolist() == [[total, want]]
    # counts by reason, most frequent first; a missing reason is ''; unknown codes kept
    rejected = pd.DataFrame({"reason": ["uscc_missing", "zz_unknown", "zz_unknown", None,
                                        "zz_unknown", "uscc_missing"]})
    out = E._rejected_summary(rejected, None)
    assert list(out.columns) == [reason, rows]
    assert list(out.index) == [0, 1, 2, 3]
    assert out.values.tolist() == [["zz_unknown", 3], ["uscc_missing", 2], ["", 1], [total, 6]]
    assert out[rows].dtype.kind == "i"


# ------------------------------------------------------------- workbook 汇总 and 说明 sheets
# Read back with openpyxl (an independent reader of the XlsxWriter/Book output); every
# expected cell is counted by hand from enforcement_frame()'s six rows, the labels from
# labels.toml read with tomllib, the industry order from industries.toml.


def _toml(name: str) -> dict:
    import tomllib

    root = Path(__file__).resolve().parents[2] / "layers" / "data" / name
    return tomllib.loads(root.read_text(encoding="utf-8"))


def _sheet_rows(ws) -> list[tuple]:
    return [tuple(r) for r in ws.iter_rows(values_only=True)]


def _workbook_case(tmp_path: Path, **kw):
    import openpyxl

    from geo.provenance import Provenance

    gdf = enforcement_frame()
    gdf["industry"] = gdf["industry"].astype(object)
    gdf.loc[gdf.index[5], "industry"] = ""    # 未知 (blank industry)
    gdf.loc[gdf.index[3], "industry"] = None  # 未知 too (missing industry)
    gdf.loc[gdf.index[5], "industry_id"] = ""
    prov = Provenance(
        registry_name="名录.xlsx", registry_sha256="cd" * 32, as_of=date(2021, 3, 4),
        generated_at=datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
        accepted=6, rejected=3, source_rows=9, catalogs={"rules": "2024-02"}, layers=(),
        generator="basinwatch xlsx test", note="",
    )
    # no_action left out of the labels: it must come last, under its own id
    labels = {k: v for k, v in VERDICTS.items() if k != "no_action"}
    path = E.write_xlsx(gdf, tmp_path / "e.xlsx", verdict_labels=labels, provenance=prov,
                        **kw)
    return openpyxl.load_workbook(path), prov


VERDICTS = {
    "shutdown": "停产退出", "rectify": "限期整改", "basin_standard": "执行流域标准",
    "emission_standard": "执行排放标准", "priority_supervision": "重点监管",
    "no_action": "无需处置",
}


def test_xlsx_summary_sheet_cell_by_cell(tmp_path: Path) -> None:
    rejected = pd.concat([rejected_frame()] * 2, ignore_index=True).iloc[:3].copy()
    # reasons with titles narrower than the zone column (its width must come from there)
    rejected["reason"] = ["no_location", "geocode_failed", "no_location"]
    wb, _ = _workbook_case(tmp_path, rejected=rejected)
    lab = _toml("labels.toml")
    words, zones, sheets = lab["words"], lab["zones"], lab["sheets"]
    issues = _toml("issues.toml")["issue"]
    ws = wb[sheets["summary"]]
    rows = _sheet_rows(ws)
    vhead = ["停产退出", "限期整改", "执行流域标准", "执行排放标准", "重点监管", "no_action"]
    # columns: shutdown, rectify, basin_standard, emission_standard, priority, no_action, total
    zone_table = [
        (words["zone"], *vhead, words["total"]),
        (zones["lianjiang"], 1, 0, 1, 0, 0, 0, 2),
        (zones["maozhou"], 0, 0, 1, 0, 0, 0, 1),
        (zones["shima"], 0, 0, 0, 0, 1, 0, 1),
        (zones["danshui"], 0, 0, 0, 0, 0, 0, 0),
        (zones["guangfo"], 0, 1, 0, 0, 0, 0, 1),
        (words["outside_zones"], 0, 0, 0, 0, 0, 1, 1),
        (words["total"], 1, 1, 2, 0, 1, 1, 6),
    ]
    # industries in industries.toml order (钢铁, 造纸, 印染), unknown ones (a blank and a
    # missing industry) after
    ind_table = [
        (words["industry"], *vhead, words["total"]),
        ("钢铁", 0, 1, 0, 0, 0, 0, 1),
        ("造纸", 0, 0, 1, 0, 0, 0, 1),
        ("印染", 1, 0, 1, 0, 0, 0, 2),
        (words["unknown"], 0, 0, 0, 0, 1, 1, 2),
        (words["total"], 1, 1, 2, 0, 1, 1, 6),
    ]
    blank = (None,) * 8
    rej_title = f"{words['rejected_rows']}（{words['rejected_hint']}）"
    rej_table = [
        (words["rejected_reason"], words["rejected_count"]),
        (issues["no_location"]["title_zh"], 2),
        (issues["geocode_failed"]["title_zh"], 1),
        (words["total"], 3),
    ]
    want = [*zone_table, blank, *ind_table, blank, (rej_title,),
            *[(*r, *(None,) * 6) for r in rej_table]]
    want = [(*w, *(None,) * (8 - len(w))) for w in want]
    assert rows == want
    # bold headers (both tables, the rejected block's title and header), freeze, autofilter
    for r in (1, 10, 17, 18):
        assert ws.cell(row=r, column=1).font.b, r
    assert not ws.cell(row=2, column=1).font.b
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == "A1:H8"
    # widths: longest text + 2, CJK counted double, clamped to 6..60 (XlsxWriter adds
    # its own padding below one character)

    def w(text: str) -> int:
        return sum(2 if "\u2e80" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" else 1
                   for ch in text)

    col_a = max(w(str(r[0])) for r in [*zone_table, *ind_table, *rej_table]) + 2
    assert col_a == w(words["outside_zones"]) + 2
    assert ws.column_dimensions["A"].width == pytest.approx(col_a, abs=1)
    assert ws.column_dimensions["G"].width == pytest.approx(max(w("no_action") + 2, 6), abs=1)
    assert ws.column_dimensions["H"].width == pytest.approx(6, abs=1)  # "合计" is 4 wide
    # the three tables share their widths: column B is as wide as "停产退出" (zone and
    # industry tables), not as "行数", the last table's header there
    assert ws.column_dimensions["B"].width == pytest.approx(w(vhead[0]) + 2, abs=1)
    assert w(vhead[0]) + 2 > max(w(words["rejected_count"]) + 2, 6) + 2


def test_xlsx_summary_without_rejected_rows_gives_the_provenance_count(tmp_path: Path) -> None:
    wb, _ = _workbook_case(tmp_path)
    lab = _toml("labels.toml")
    rows = _sheet_rows(wb[lab["sheets"]["summary"]])
    words = lab["words"]
    assert rows[-2][:2] == (words["rejected_reason"], words["rejected_count"])
    assert rows[-1][:2] == (words["total"], 3)  # Provenance(rejected=3)
    assert lab["sheets"]["rejected"] not in wb.sheetnames


def test_xlsx_notes_sheet_and_properties(tmp_path: Path) -> None:
    wb, prov = _workbook_case(tmp_path, notes=[("筛选", "=cmd"), ("范围", "练江\x07")])
    lab = _toml("labels.toml")
    words, p = lab["words"], lab["provenance"]
    assert wb.sheetnames[-1] == lab["sheets"]["notes"]
    ws = wb[lab["sheets"]["notes"]]
    rows = _sheet_rows(ws)
    assert rows[0][0] == p["title"] and ws.cell(row=1, column=1).font.b
    assert rows[1] == (None, None)
    assert rows[2] == ("项目", "内容") and ws.cell(row=3, column=1).font.b
    expected = [
        ("筛选", "'=cmd"), ("范围", "练江\ufffd"),   # formula inert, control char replaced
        (p["generator"], "basinwatch xlsx test"),
        (p["generated_at"], "2026-05-06 07:08:09+00:00"),
        (p["registry_file"], "名录.xlsx"),
        (p["registry_sha256"], "cd" * 32),
        (p["as_of"], "2021-03-04"),
        (p["source_rows"], "9"),
        (p["accepted"], "6"),
        (p["rejected"], "3"),
        (f"{p['catalog']} rules", "2024-02"),
    ]
    n = len(expected)
    assert rows[3:3 + n] == expected
    assert rows[3 + n] == (None, None)
    assert rows[4 + n:] == [(words["review_note"], None), (words["formula_note"], None)]
    assert ws.auto_filter.ref is None
    assert wb.properties.title == p["title"]
    assert wb.properties.creator == "basinwatch xlsx test"
    assert json.loads(wb.properties.description) == json.loads(prov.to_json())


def test_xlsx_all_sheet_translates_zones_precision_issues_and_measures(tmp_path: Path) -> None:
    """全部企业 read back: ids become the Chinese texts of labels.toml / issues.toml /
    rules.toml (tomllib); a verdict without a label keeps its id."""
    wb, _ = _workbook_case(tmp_path)
    lab = _toml("labels.toml")
    cols = lab["columns"]
    rows = _sheet_rows(wb[lab["sheets"]["all"]])
    head = list(rows[0])
    table = [dict(zip(head, r, strict=True)) for r in rows[1:]]
    gdf = enforcement_frame()
    assert len(table) == len(gdf)
    zones, prec = lab["zones"], lab["precision"]
    for cell, (_, src) in zip(table, gdf.iterrows(), strict=True):
        assert cell[cols["basin_id"]] == (zones[src["basin_id"]] if src["basin_id"] else None)
        assert cell[cols["region_id"]] == (zones[src["region_id"]] if src["region_id"]
                                           else None)
        assert cell[cols["geocode_precision"]] == prec[src["geocode_precision"]]
    assert [c[cols["verdict"]] for c in table][-1] == "no_action"  # no label given
    assert table[0][cols["verdict"]] == "停产退出"
    issues = _toml("issues.toml")["issue"]
    assert "gcj02" not in issues
    assert table[1][cols["data_issues"]] == "gcj02"  # a code without a text is kept
    assert table[0][cols["data_issues"]] is None
    measures = _toml("rules.toml")["measures"]
    assert table[4][cols["price_measures"]] == measures["differential_price"]["label_zh"]
    assert table[4][cols["deadline_status"]] == lab["deadline_status"]["pending"]
    assert cols["industry_id"] not in head if "industry_id" in cols else "industry_id" not in head


def test_xlsx_rejected_rows_missing_columns_message(tmp_path: Path) -> None:
    from geo.schema import REJECTED_COLUMNS

    bad = rejected_frame().drop(columns=["reason", "row"])
    with pytest.raises(E.ExportError) as e:
        E.write_xlsx(enforcement_frame(), tmp_path / "e.xlsx", rejected=bad)
    assert str(e.value) == (
        "Cannot export the rejected rows: missing column(s) "
        + ", ".join(c for c in REJECTED_COLUMNS if c in ("reason", "row"))
        + "; expected " + ", ".join(REJECTED_COLUMNS) + " (see geo.schema).")
    assert not (tmp_path / "e.xlsx").exists()


def test_enforcement_frame_missing_columns_message_and_coordinates() -> None:
    from geo.schema import ENFORCEMENT_COLUMNS

    gdf = enforcement_frame()
    with pytest.raises(E.ExportError) as e:
        E._enforcement_frame(gdf.drop(columns=["verdict", "uscc"]))
    assert str(e.value) == (
        "Cannot export the enforcement list: missing column(s) "
        + ", ".join(c for c in ENFORCEMENT_COLUMNS if c in ("verdict", "uscc"))
        + "; expected " + ", ".join(ENFORCEMENT_COLUMNS) + " (see geo.schema).")
    gdf["lon"] = gdf["lon"].astype(object)
    gdf.loc[gdf.index[0], "lon"] = "x"         # unreadable: blank, not an error
    gdf.loc[gdf.index[1], "lat"] = 23.123456789  # rounded to 7 decimals
    out = E._enforcement_frame(gdf)
    assert pd.isna(out["lon"].iloc[0]) and out["lon"].iloc[1] == 116.17
    assert out["lat"].iloc[1] == 23.1234568


def test_column_label_falls_back_to_the_registry_label(monkeypatch) -> None:
    reg = _toml("registry.toml")["numeric"]
    lab = _toml("labels.toml")["columns"]
    assert E._column_label("uscc") == lab["uscc"]
    assert E._column_label("no_such_column") == "no_such_column"
    # every bundled numeric column has a labels.toml header: drop them to reach the
    # registry.toml fallback
    monkeypatch.setattr(E, "_labels", lambda: {"columns": {"uscc": lab["uscc"]}})
    for col in reg:
        assert E._column_label(col) == reg[col]["label_zh"], col
    assert E._column_label("no_such_column") == "no_such_column"


def test_catalog_verdict_labels_are_the_chinese_ones() -> None:
    verdicts = _toml("rules.toml")["verdicts"]
    assert E.catalog_verdict_labels() == {k: v["label_zh"] for k, v in verdicts.items()}


def test_neutralise_formulas_leaves_missing_cells_and_frames_past_geometry() -> None:
    s = pd.Series(["=1+1", np.nan, None, "ok", "@x"], dtype=object)
    out = E.neutralise_formulas(s)
    assert out.iloc[0] == "'=1+1" and out.iloc[4] == "'@x" and out.iloc[3] == "ok"
    assert pd.isna(out.iloc[1]) and out.iloc[2] is None
    # a geometry column first: the text columns after it are still neutralised
    gdf = gpd.GeoDataFrame({"geometry": [Point(1, 2)], "name": ["=cmd"]}, geometry="geometry")
    assert E.neutralise_frame(gdf)["name"].tolist() == ["'=cmd"]


def test_provenance_for_without_a_record_knows_no_registry() -> None:
    prov = E._provenance_for(enforcement_frame(), None)
    assert prov.registry_name == "" and prov.registry_sha256 == ""
    assert prov.as_of is None and prov.accepted == 6
    assert prov.verdict_counts == {"shutdown": 1, "rectify": 1, "basin_standard": 2,
                                   "priority_supervision": 1, "no_action": 1}


def test_output_columns_order_written_by_hand() -> None:
    """ENFORCEMENT_COLUMNS with industry_code right after industry (geo.schema), then only
    the numeric registry columns the frame has (registry.toml order)."""
    from geo.schema import ENFORCEMENT_COLUMNS

    base = list(ENFORCEMENT_COLUMNS)
    at = base.index("industry") + 1
    want = [*base[:at], "industry_code", *base[at:]]
    frame = enforcement_frame()
    assert E.output_columns(frame) == want
    reg = list(_toml("registry.toml")["numeric"])
    frame = frame.assign(**{reg[2]: 1.0, reg[0]: 2.0})
    assert E.output_columns(frame) == [*want, reg[0], reg[2]]


def test_shapefile_zip_members_are_deflated(tmp_path: Path) -> None:
    """The download is compressed (zipfile read-back): every member deflated."""
    import zipfile

    path = E.write_shapefile_zip(enforcement_frame(), tmp_path / "e.zip")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    assert infos and {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
