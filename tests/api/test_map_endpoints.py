"""The map's data endpoints added for the planners' second round, on both stores:
data version, dashboard, print sheet, export jobs with progress and Chinese naming."""

from __future__ import annotations

import io
import time

import openpyxl
import pytest

from api.export_jobs import describe_filters
from api.routers.exports import export_filename


def test_meta_names_the_current_load(loaded_client) -> None:
    body = loaded_client.get("/map/meta").json()
    assert body["load_id"] == 1 and body["source_name"] == "样例.csv"
    assert body["accepted"] == 6 and body["loaded_at"][:4].isdigit()


def test_dashboard_counts_per_basin_and_city(loaded_client, enterprises) -> None:
    body = loaded_client.get("/map/dashboard").json()
    zones = {z["id"]: z for z in body["zones"]}
    lj = enterprises[enterprises.basin_id.eq("lianjiang")]
    assert zones["lianjiang"]["total"] == len(lj)
    assert zones["lianjiang"]["verdict"] == {k: int(v) for k, v in lj.verdict.value_counts().items()}
    assert zones["lianjiang"]["industry"] == {k: int(v) for k, v in
                                              lj.industry.value_counts().items()}
    assert zones["guangfo"]["total"] == 0
    assert body["capacity"] is None  # no capacity column in the stored list
    shut = loaded_client.get("/map/dashboard", params={"verdict": "shutdown"}).json()
    assert shut["total"] == int(enterprises.verdict.eq("shutdown").sum())


def test_print_sheet_pdf_and_png(loaded_client) -> None:
    from PIL import Image

    params = {"bbox": "112.8,22.5,116.8,23.6", "paper": "A4", "title": "测试地图",
              "verdict": "shutdown,rectify"}
    pdf = loaded_client.get("/map/print", params={**params, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    import re

    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.content)
    # A4 landscape: 297 x 210 mm = 841.89 x 595.28 pt
    assert box and abs(float(box[1]) - 841.89) < 0.01 and abs(float(box[2]) - 595.28) < 0.01
    png = loaded_client.get("/map/print", params={**params, "format": "png", "paper": "A3"})
    assert Image.open(io.BytesIO(png.content)).size == (int(420 / 25.4 * 200),
                                                        int(297 / 25.4 * 200))
    bad = loaded_client.get("/map/print", params={**params, "paper": "B5"})
    assert bad.status_code == 400 and "paper" in bad.json()["description"]


def test_export_names_filters_and_area_in_chinese() -> None:
    params = {"basin_id": "lianjiang", "industry_id": "dyeing", "verdict": "shutdown,rectify"}
    name = export_filename("xlsx", params)
    assert name == "执法清单_练江流域_印染_关停退出+限期整改.xlsx"
    assert export_filename("csv", {}, area_label="潮南区", within=True) == "执法清单_潮南区.csv"
    rows = dict(describe_filters({"needs_review": "true", "filter": "name LIKE '%厂%'"},
                                 within=True))
    assert rows["需人工复核"] == "是" and rows["区域"] == "绘制区域"
    assert rows["筛选条件（CQL2）"] == "name LIKE '%厂%'"


@pytest.mark.slow
def test_export_job_reports_progress_and_writes_the_notes_sheet(loaded_client,
                                                                enterprises) -> None:
    job = loaded_client.post("/exports/jobs", params={"format": "xlsx", "basin_id": "lianjiang",
                                                      "area_label": "练江流域"})
    assert job.status_code == 202
    jid = job.json()["id"]
    deadline = time.monotonic() + 120
    while (st := loaded_client.get(f"/exports/jobs/{jid}").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    want = int(enterprises.basin_id.eq("lianjiang").sum())
    assert st["state"] == "done" and st["done"] == st["total"] == want
    assert st["filename"] == "执法清单_练江流域.xlsx"
    body = loaded_client.get(f"/exports/jobs/{jid}/file")
    assert "filename*=UTF-8''" in body.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(body.content), read_only=True)
    notes = {r[0]: r[1] for r in wb["说明"].iter_rows(min_row=2, values_only=True)}
    assert notes["重点流域"] == "练江流域" and int(notes["企业数"]) == want
    assert notes["数据版本"].startswith("第 1 次载入")
    assert wb["全部企业"].max_row == want + 1
    # the file is gone after its download
    assert loaded_client.get(f"/exports/jobs/{jid}").status_code == 404


def test_unreadable_job_state_is_not_found(tmp_path) -> None:  # noqa: ANN001
    """A job folder whose state file lacks fields (another version, damage) reads as no job
    (404 at the API), not as a crash."""
    from api.export_jobs import get_job
    from geo.errors import ExportError

    jid = "0" * 32
    (tmp_path / jid).mkdir()
    (tmp_path / jid / "job.json").write_text('{"id": "x"}', encoding="utf-8")
    with pytest.raises(ExportError) as err:
        get_job(jid, root=tmp_path)
    assert err.value.http_status == 404
