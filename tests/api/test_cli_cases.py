"""``basinwatch report | cases | monitoring`` on a real embedded store and real files."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from api.cli import app
from layers.casework import calendar_spec

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_load_import_monitor_and_report_as_of_a_date(tmp_path: Path) -> None:
    db = str(tmp_path / "store.gpkg")
    out = _ok(["load", "--as-of", "2019-04-01", "--database-url", db])
    assert "cases {'opened':" in out
    sample = tmp_path / "监测.csv"
    _ok(["monitoring", "sample", "--out", str(sample), "--seed", "3"])
    out = _ok(["monitoring", "load", str(sample), "--database-url", db])
    assert "rows stored" in out and "rejected" in out

    changes = pd.DataFrame({"案件编号": [1, 1, 2], "日期": ["2019-04-10", "2019-05-10", "2019-04-10"],
                            "状态": ["已下达通知", "限期整改中", "已验收"],
                            "整改期限": ["", "2019-10-31", ""]})
    changes.to_excel(tmp_path / "变更.xlsx", index=False)
    dry = _ok(["cases", "import", str(tmp_path / "变更.xlsx"), "--dry-run",
               "--database-url", db])
    assert "(dry run, nothing written)" in dry
    out = _ok(["cases", "import", str(tmp_path / "变更.xlsx"), "--database-url", db])
    assert "2 rows applied" in out and "1 rows refused" in out

    shown = _ok(["cases", "show", "--as-of", "2019-06-30", "--status", "rectifying",
                 "--database-url", db])
    assert "1 cases on 2019-06-30" in shown

    lists_dir = tmp_path / "lists"
    report = _ok(["report", "--as-of", "2019-06-30", "--out", str(lists_dir),
                  "--database-url", db])
    assert "逾期案件" in report or "工作进度" in report
    body = json.loads((lists_dir / "report.json").read_text("utf-8"))
    items = {i["id"]: i for i in body["items"]}
    assert items["q1_department_lists"]["state"] == "late"
    assert items["q2_department_lists"]["state"] == "due_soon"
    files = sorted(p.name for p in lists_dir.glob("*.xlsx"))
    assert len(files) == len(calendar_spec().lists)
    assert "不达标限期整改企业名单_2019-06-30.xlsx" in files
    book = openpyxl.load_workbook(lists_dir / "不达标限期整改企业名单_2019-06-30.xlsx",
                                  read_only=True)
    rows = list(book["不达标限期整改企业名单"].iter_rows(values_only=True))
    assert rows[0][0] == "案件编号" and [r[0] for r in rows[1:]] == [1]
    exc = openpyxl.load_workbook(lists_dir / "超标排放企业名单_2019-06-30.xlsx", read_only=True)
    assert len(list(exc["超标排放企业名单"].iter_rows())) > 1


def test_report_rejects_a_bad_date(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--as-of", "30/06/2019", "--database-url",
                                 str(tmp_path / "s.gpkg")])
    assert result.exit_code != 0 and "YYYY-MM-DD" in result.output
