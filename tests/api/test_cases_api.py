"""The cases and monitoring endpoints: roles, error bodies, queries by basin, map layers."""

from __future__ import annotations

import io
from datetime import date

import pytest

from api.testing import EDITOR_KEY, READER_KEY

ED = {"X-API-Key": EDITOR_KEY}
RD = {"X-API-Key": READER_KEY}
TODAY = date.today().isoformat()

MON = (
    "统一社会信用代码,企业名称,排放口,监测项目,监测时间,浓度,单位\n"
    "91440500MA00000001,,DW001,化学需氧量,2019-03-01 09:00,160,mg/L\n"   # 潮南印染二厂 (练江)
    "91440500MA00000001,,DW001,化学需氧量,2019-04-01 09:00,70,mg/L\n"
    "91440500MA00000001,,DW001,总锑,2019-05-01 09:00,500,μg/L\n"
    "91440500MA00000002,,DW001,化学需氧量,2019-04-02 09:00,abc,mg/L\n"
    ",无名厂,DW001,化学需氧量,2019-04-02 09:00,10,mg/L\n"
)


def test_writes_need_an_editor_key(loaded_client) -> None:
    client = loaded_client
    body = {"on": TODAY, "status": "notified"}
    assert client.post("/cases/1/changes", json=body).status_code == 401
    r = client.post("/cases/1/changes", json=body, headers=RD)
    assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    r = client.post("/cases/1/changes", json=body, headers=ED)
    assert r.status_code == 201 and r.json()["state"]["status"] == "notified"
    r = client.post("/calendar/q1_department_lists/submissions", headers=RD,
                    json={"department": "省能源局", "submitted_on": "2019-04-10"})
    assert r.status_code == 403


def test_error_bodies_name_the_problem(loaded_client) -> None:
    client = loaded_client
    r = client.post("/cases/999/changes", json={"on": TODAY, "status": "notified"}, headers=ED)
    assert r.status_code == 404 and "999" in r.json()["description"]
    r = client.post("/cases/1/changes", json={"on": TODAY, "status": "closed"}, headers=ED)
    assert r.status_code == 400 and "allowed next" in r.json()["description"]
    r = client.post("/cases/1/changes", json={"on": "not a date"}, headers=ED)
    assert r.status_code == 400 and "on" in r.json()["description"]
    r = client.get("/cases", params={"dimension": "weather"})
    assert r.status_code == 400 and "dimension" in r.json()["description"]
    r = client.get("/lists/nope")  # an unknown id in the path is a 404 naming the known ones
    assert r.status_code == 404 and "task_list" in r.json()["description"]
    r = client.post("/calendar/q1_department_lists/submissions", headers=ED,
                    json={"department": "省教育厅", "submitted_on": "2019-04-10"})
    assert r.status_code == 400 and "省能源局" in r.json()["description"]
    assert client.get("/cases/summary", params={"by": "colour"}).status_code == 400


def test_cases_filter_by_basin_and_serve_geojson_with_status_colours(loaded_client) -> None:
    client = loaded_client
    body = client.get("/cases", params={"basin_id": "lianjiang"}).json()
    assert {c["name"] for c in body["cases"]} == {"潮南印染一厂", "潮南印染二厂", "普宁造纸厂"}
    gj = client.get("/cases", params={"f": "geojson", "basin_id": "maozhou"}).json()
    assert gj["type"] == "FeatureCollection" and gj["numberMatched"] == 1
    feat = gj["features"][0]
    assert feat["geometry"]["coordinates"] == [113.90, 22.75]
    assert feat["properties"]["colour"] == "#fdae61" and feat["properties"]["status"] == \
        "identified"
    assert client.get("/cases", params={"as_of": "2000-01-01"}).json()["number_matched"] == 0


def _cases_from_2019(store) -> None:
    """Apply the fixture's load as of 2 January 2019 (it would default to today)."""
    from api.casework import sync_cases

    assert sync_cases(store, as_of=date(2019, 1, 2)) is not None


def test_monitoring_upload_report_then_exceedances_by_basin_and_period(loaded_client,
                                                                       store) -> None:
    client = loaded_client
    _cases_from_2019(store)
    files = {"file": ("监测.csv", MON.encode("utf-8"), "text/csv")}
    assert client.post("/monitoring", files=files).status_code == 401  # parsing needs a key
    check = client.post("/monitoring", files=files, headers=RD)
    assert check.status_code == 200 and check.json()["loaded"] is None
    rows = {x["row"]: x["reason"] for x in check.json()["rejected_rows"]}
    assert rows == {5: "value_unparseable", 6: "enterprise_not_found"}
    assert client.post("/monitoring", params={"load": "true"}, files=files).status_code == 401
    r = client.post("/monitoring", params={"load": "true"}, files=files, headers=ED)
    assert r.status_code == 201 and r.json()["loaded"]["accepted"] == 3

    q = client.get("/monitoring/exceedances", params={"basin_id": "lianjiang", "period": "Q",
                                                      "by": "enterprise_pollutant"}).json()
    got = {(x["pollutant"], x["period"]): (x["samples"], x["exceedances"]) for x in q["rows"]}
    # COD 160 > GB 4287 floor 80 in Q1, 70 in Q2 undetermined (basin limit unsourced);
    # 总锑 0.5 mg/L > 0.10 in Q2
    assert got == {("cod", "2019Q1"): (1, 1), ("cod", "2019Q2"): (1, 0), ("sb", "2019Q2"): (1, 1)}
    assert client.get("/monitoring/exceedances", params={"basin_id": "maozhou"}).json()[
        "rows"] == []
    lists = client.get("/monitoring/lists", params={"as_of": "2019-12-31"}).json()
    assert [x["name"] for x in lists["exceedance"]] == ["潮南印染二厂"]
    assert lists["serious"][0]["criteria"] == "toxic_3x"  # 0.5 = 超标4倍
    assert {c["id"] for c in lists["serious_definition"]} >= {"toxic_3x", "repeated"}
    mp = client.get("/monitoring/map", params={"as_of": "2019-12-31"}).json()
    props = mp["features"][0]["properties"]
    assert props["exceedances"] == 2 and props["serious"]
    cases = client.get("/cases", params={"f": "geojson", "as_of": "2019-12-31"}).json()
    hit = [f["properties"] for f in cases["features"] if f["properties"]["exceedances"]]
    assert [p["name"] for p in hit] == ["潮南印染二厂"]


def test_limits_endpoint_shows_sources_and_unsourced_gaps(loaded_client) -> None:
    rows = loaded_client.get("/monitoring/limits").json()["limits"]
    by = {(r["standard"], r["pollutant"], r["discharge"]): r for r in rows}
    assert by[("GB 3544-2008", "cod", "direct")]["value"] == 100
    gap = by[("DB44/2051-2017", "*", "direct")]
    assert gap["status"] == "unsourced" and gap["value"] is None and gap["source"]


def test_list_download_and_report(loaded_client, store) -> None:
    import openpyxl

    client = loaded_client
    _cases_from_2019(store)
    r = client.get("/lists/task_list", params={"as_of": TODAY})
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml")
    book = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    assert book.sheetnames[0] == "说明"
    js = client.get("/lists/task_list", params={"as_of": TODAY, "format": "json"}).json()
    assert len(js["sheets"]["落后产能退出工作任务清单"]) == 5
    rep = client.get("/report", params={"as_of": "2019-06-30", "by": "basin_id"}).json()
    assert {i["id"] for i in rep["items"]} >= {"q2_department_lists", "local_year_end_summary"}
    assert rep["summary"]


@pytest.mark.parametrize("path", ["/cases", "/cases/summary", "/calendar", "/report",
                                  "/lists", "/monitoring/limits", "/monitoring/batches"])
def test_reads_can_be_closed_to_keyless_callers(make_client, store, enterprises, path) -> None:
    store.load_enterprises(enterprises, loaded_by="f", source_name="x", source_sha256="0" * 64)
    client = make_client(read_open=False)
    assert client.get(path).status_code == 401
    assert client.get(path, headers=RD).status_code == 200
