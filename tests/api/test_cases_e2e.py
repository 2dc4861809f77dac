"""End to end, on both stores: registry -> cases -> status changes -> a second registry ->
monitoring -> the plan's lists and calendar at two dates, through the HTTP API.

The registries are written here with known places (a Lianjiang dyeing plant outside the
designated parks must exit from 2019-01-01; a Dongguan plant with a coal boiler converts by
2019-12-31; ...), so what each list must hold on each date is known in advance. Lists are
downloaded as Excel and read back with openpyxl.
"""

from __future__ import annotations

import io
from datetime import date

import openpyxl
import pandas as pd
import pytest

from api.testing import EDITOR_KEY

ED = {"X-API-Key": EDITOR_KEY}
HEAD = "统一社会信用代码,企业名称,行业,经度,纬度,坐标系,燃煤锅炉蒸吨\n"
#: name -> (credit code, industry, lon, lat); WGS84
PLACES = {
    "潮南甲印染有限公司": ("914405140000000011", "印染", 116.4300, 23.2500),   # 练江, outside parks
    "光明乙纸业有限公司": ("914403110000000022", "造纸", 113.8900, 22.7800),   # 茅洲河
    "东莞丙染整有限公司": ("914419000000000033", "印染", 113.7500, 23.0200),   # 东莞, coal boiler
    "广州丁陶瓷有限公司": ("914401010000000044", "陶瓷", 113.3000, 23.1500),   # 广州, coal boiler
    "韶关戊玻璃有限公司": ("914402000000000055", "平板玻璃", 113.6000, 24.8000),  # nothing applies
    "普宁己印染有限公司": ("914452810000000066", "印染", 116.1700, 23.3000),   # 练江, second load
}
BOILER = {"东莞丙染整有限公司": "4", "广州丁陶瓷有限公司": "30"}


def _registry(names: list[str], moved: dict[str, tuple[float, float]] | None = None) -> bytes:
    lines = []
    for n in names:
        code, ind, lon, lat = PLACES[n]
        lon, lat = (moved or {}).get(n, (lon, lat))
        lines.append(f"{code},{n},{ind},{lon},{lat},WGS84,{BOILER.get(n, '')}")
    return (HEAD + "\n".join(lines) + "\n").encode("utf-8")


def _load(client, data: bytes, as_of: str) -> dict:
    r = client.post("/registry", params={"load": "true", "as_of": as_of}, headers=ED,
                    files={"file": ("名录.csv", data, "text/csv")})
    assert r.status_code == 201, r.text
    return r.json()


def _xlsx_names(client, list_id: str, as_of: str) -> dict[str, list[str]]:
    r = client.get(f"/lists/{list_id}", params={"as_of": as_of, "format": "xlsx"})
    assert r.status_code == 200, r.text
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    out = {}
    for ws in book.worksheets[1:]:
        rows = list(ws.iter_rows(values_only=True))
        col = rows[0].index("企业名称") if "企业名称" in rows[0] else None
        out[ws.title] = [r[col] for r in rows[1:]] if col is not None else []
    return out


def _case_ids(client) -> dict[str, int]:
    cases = client.get("/cases").json()["cases"]
    return {c["name"]: c["case_id"] for c in cases}


@pytest.mark.slow
def test_a_year_from_verdicts_to_closed_cases(make_client, store) -> None:
    client = make_client()
    first = ["潮南甲印染有限公司", "光明乙纸业有限公司", "东莞丙染整有限公司", "广州丁陶瓷有限公司",
             "韶关戊玻璃有限公司"]
    rep = _load(client, _registry(first), "2019-04-01")
    assert rep["cases"]["counts"]["opened"] == 4  # everyone but the glass plant

    ids = _case_ids(client)
    assert set(ids) == set(first) - {"韶关戊玻璃有限公司"}
    a, b = ids["潮南甲印染有限公司"], ids["光明乙纸业有限公司"]
    c, d = ids["东莞丙染整有限公司"], ids["广州丁陶瓷有限公司"]

    # -- status changes through the API (editor) and a spreadsheet import -----------------
    assert client.post(f"/cases/{a}/changes", json={"on": "2019-04-10", "status": "notified"}
                       ).status_code == 401
    r = client.post(f"/cases/{a}/changes", headers=ED,
                    json={"on": "2019-04-10", "status": "notified",
                          "documents": ["潮南环责改〔2019〕1号"]})
    assert r.status_code == 201, r.text
    r = client.post(f"/cases/{a}/changes", headers=ED, json={"on": "2019-05-20",
                                                              "status": "shut_down"})
    assert r.status_code == 201 and r.json()["state"]["exited"] is True
    bad = client.post(f"/cases/{a}/changes", headers=ED, json={"on": "2019-05-01",
                                                                "status": "accepted"})
    assert bad.status_code == 400 and "2019-05-20" in bad.json()["description"]

    sheet = pd.DataFrame({
        "案件编号": [c, c, "", d, d, d, 999],
        "统一社会信用代码": ["", "", PLACES["广州丁陶瓷有限公司"][0], "", "", "", ""],
        "日期": ["2019-04-15", "2019-05-01", "2019-04-16", "2019-05-02", "2019-06-01",
               "2019-05-30", "2019-05-01"],
        "状态": ["已下达通知", "限期整改中", "已下达通知", "限期整改中", "已关停退出", "已验收",
               "已下达通知"],
        "整改期限": ["", "2019-12-31", "", "2019-12-31", "", "", ""],
        "文书": ["", "东莞环改〔2019〕8号", "", "", "", "", ""],
    })
    buf = io.BytesIO()
    sheet.to_excel(buf, index=False)
    r = client.post("/cases/import", headers=ED,
                    files={"file": ("状态变更.xlsx", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["applied_rows"] == 5 and [x["row"] for x in rep["rejected"]] == [7, 8]
    assert "before the case's last status change on 2019-06-01" in rep["rejected"][0]["message"]
    assert rep["rejected"][1]["reason"] == "case_not_found"

    # -- monitoring: a Maozhou paper plant above the national COD floor twice -------------
    mon = ("统一社会信用代码,企业名称,排放口,监测项目,监测时间,浓度,单位\n"
           f"{PLACES['光明乙纸业有限公司'][0]},,DW001,化学需氧量,2019-05-05 09:00,130,mg/L\n"
           f"{PLACES['光明乙纸业有限公司'][0]},,DW001,化学需氧量,2019-08-05 09:00,101,mg/L\n"
           f"{PLACES['光明乙纸业有限公司'][0]},,DW001,化学需氧量,2019-09-05 09:00,60,mg/L\n"
           ",不存在厂,DW001,氨氮,2019-05-05 09:00,3,mg/L\n")
    r = client.post("/monitoring", params={"load": "true"}, headers=ED,
                    files={"file": ("在线监测.csv", mon.encode(), "text/csv")})
    assert r.status_code == 201, r.text
    assert r.json()["accepted"] == 3 and r.json()["rejected_rows"][0]["row"] == 5

    # -- second registry: 甲 moved into the Chaonan dyeing park, 乙 gone, 己 new ----------
    # (116.5454, 23.1471): inside the bundled 潮南 park (陇田/井都) and the Lianjiang basin
    second = ["潮南甲印染有限公司", "东莞丙染整有限公司", "广州丁陶瓷有限公司", "韶关戊玻璃有限公司",
              "普宁己印染有限公司"]
    rep2 = _load(client, _registry(second, moved={"潮南甲印染有限公司": (116.5454, 23.1471)}),
                 "2019-09-01")
    counts = rep2["cases"]["counts"]
    assert counts["opened"] == 1 and counts["absent"] == 1 and counts["verdict_changed"] == 1
    changes = client.get("/cases/syncs", params={"load_id": 2}).json()["changes"]
    verdict = [x for x in changes if x["field"] == "verdict"]
    assert verdict == [{"case_id": a, "field": "verdict", "before": "shutdown",
                        "after": "basin_standard", "effective_date": "2019-09-01",
                        "recorded_by": verdict[0]["recorded_by"]}]
    ids2 = _case_ids(client)
    assert ids2["潮南甲印染有限公司"] == a  # the case continued (same credit code)
    gone = client.get(f"/cases/{b}", params={"as_of": "2019-09-01"}).json()["state"]
    assert gone["present"] == "0" and gone["status"] == "identified"  # kept, marked absent

    # -- history: who, when, before, after -------------------------------------------------
    hist = client.get(f"/cases/{a}").json()["history"]
    status = [(h["before"], h["after"], h["effective_date"]) for h in hist
              if h["field"] == "status"]
    assert status == [("", "identified", "2019-04-01"), ("identified", "notified", "2019-04-10"),
                      ("notified", "shut_down", "2019-05-20")]
    assert all(h["recorded_by"] and h["recorded_at"] for h in hist)

    # -- lists at two dates -----------------------------------------------------------------
    june = "2019-06-30"
    assert _xlsx_names(client, "rectification", june)["不达标限期整改企业名单"] == [
        "东莞丙染整有限公司"]
    closed_june = _xlsx_names(client, "coal_boiler_exit", june)["燃煤锅炉退出企业名单"]
    assert closed_june == ["广州丁陶瓷有限公司"]  # shut down on 2019-06-01
    exc_june = _xlsx_names(client, "exceedance", june)["超标排放企业名单"]
    assert exc_june == ["光明乙纸业有限公司"]
    task_june = _xlsx_names(client, "task_list", june)
    assert sorted(task_june["落后产能退出工作任务清单"]) == sorted(set(first) - {"韶关戊玻璃有限公司"})

    # the Dongguan plant is re-inspected and fails: closed after the deadline passed
    r = client.post(f"/cases/{c}/changes", headers=ED, json={"on": "2020-01-05",
                                                              "status": "closed"})
    assert r.status_code == 201, r.text
    dec = "2019-12-31"
    assert _xlsx_names(client, "rectification", dec)["不达标限期整改企业名单"] == [
        "东莞丙染整有限公司"]  # still rectifying on 31 December
    assert _xlsx_names(client, "closed_after_rectification", dec)[
        "经整改仍不达标已依法关闭企业名单"] == []
    jan = "2020-01-15"
    assert _xlsx_names(client, "closed_after_rectification", jan)[
        "经整改仍不达标已依法关闭企业名单"] == ["东莞丙染整有限公司"]
    assert sorted(_xlsx_names(client, "task_list", dec)["落后产能退出工作任务清单"]) == sorted(
        {"潮南甲印染有限公司", "光明乙纸业有限公司", "东莞丙染整有限公司", "广州丁陶瓷有限公司",
         "普宁己印染有限公司"})
    assert _xlsx_names(client, "exceedance", dec)["超标排放企业名单"] == ["光明乙纸业有限公司"]

    # -- overdue and the calendar at two dates ---------------------------------------------
    cal = client.get("/calendar", params={"as_of": "2019-07-01"}).json()
    states_ = {i["id"]: i["state"] for i in cal["items"]}
    assert states_["q1_department_lists"] == "late" and states_["q3_department_lists"] == \
        "upcoming"
    r = client.post("/calendar/q3_department_lists/submissions", headers=ED,
                    json={"department": "省生态环境厅", "submitted_on": "2019-09-20"})
    assert r.status_code == 201
    cal = client.get("/calendar", params={"as_of": "2019-10-01"}).json()
    q3 = next(i for i in cal["items"] if i["id"] == "q3_department_lists")
    assert q3["state"] == "late" and "省生态环境厅" not in q3["missing"]
    overdue = client.get("/cases", params={"as_of": "2020-01-02", "overdue": "true"}).json()
    # 丙 missed 31 December; 己, a Lianjiang plant outside the parks, was due to exit from
    # 2019-01-01 (表2 第6项(2)) and has not moved since it was listed in September
    assert {x["name"] for x in overdue["cases"]} == {"东莞丙染整有限公司", "普宁己印染有限公司"}
    summary = client.get("/cases/summary", params={"as_of": dec, "by": "city"}).json()
    by_city = {g["city"]: g for g in summary["groups"]}
    assert by_city["广州市"]["exited"] == 1 and by_city["汕头市"]["shut_down"] == 1


def test_year_of_cases_is_the_same_on_both_stores_for_the_same_inputs(tmp_path) -> None:
    """State-at-a-date answers agree between the GeoPackage and PostGIS providers (the
    second runs only where PostGIS is configured; under CI it must be)."""
    from tests.api.conftest import open_store

    from api.casework import case_states, record_changes, sync_cases
    from geo.cases import CaseChange
    from geo.pipeline import run_pipeline

    answers = []
    for kind in ("gpkg", "postgis"):
        gen = open_store(kind, tmp_path / kind)
        (tmp_path / kind).mkdir(exist_ok=True)
        store = next(gen)
        try:
            reg = tmp_path / "r.csv"
            reg.write_bytes(_registry(list(PLACES)))
            store.load_enterprises(run_pipeline(reg, as_of=date(2019, 4, 1)).enterprises,
                                   loaded_by="t", source_name="r.csv", source_sha256="0" * 64)
            sync_cases(store, as_of=date(2019, 4, 1))
            record_changes(store, [CaseChange(case_id=1, on=date(2019, 5, 1), status="notified"),
                                   CaseChange(case_id=1, on=date(2019, 6, 1),
                                              status="shut_down")],
                           recorded_by="t", source="test")
            s = case_states(store, date(2019, 5, 15))
            answers.append(s)
        finally:
            gen.close()
    assert len(answers[0]) == 5 and answers[0]["status"].tolist()[0] == "notified"
    pd.testing.assert_frame_equal(answers[0], answers[1])
