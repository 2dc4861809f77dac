"""API exports over HTTP (issue 15): the Excel file read back by openpyxl and calamine,
CSV streamed in chunks, and the server's memory given back after exports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from api.testing import SAMPLE_ROWS, make_enterprises
from layers.catalog import read_data_toml

LABELS = read_data_toml("labels.toml")
#: Enough rows for several chunks of the CSV writer (monkeypatched small) and a real sheet.
N = 2_400


@pytest.fixture
def many(make_client, store):  # noqa: ANN001, ANN201
    rows = [(f"{r[0]}{i}",) + tuple(r[1:]) for i in range(N // len(SAMPLE_ROWS))
            for r in SAMPLE_ROWS]
    ents = make_enterprises(rows)
    ents.loc[0, "name"] = '=HYPERLINK("x") & <b> "引号"'
    store.load_enterprises(ents, loaded_by="fixture", source_name="多.csv",
                           source_sha256="b" * 64)
    return make_client(), ents


def test_xlsx_over_http_round_trips_in_two_readers(many, tmp_path: Path) -> None:  # noqa: ANN001
    client, ents = many
    r = client.get("/exports/enforcement", params={"format": "xlsx"})
    assert r.status_code == 200, r.text
    path = tmp_path / "e.xlsx"
    path.write_bytes(r.content)
    wb = openpyxl.load_workbook(path)
    cal = CalamineWorkbook.from_path(str(path))
    assert cal.sheet_names == wb.sheetnames
    all_name = LABELS["sheets"]["all"]
    ws_rows = [list(row) for row in wb[all_name].iter_rows(values_only=True)]
    cal_rows = [[None if v == "" else v for v in row]
                for row in cal.get_sheet_by_name(all_name).to_python()]
    assert len(ws_rows) == len(cal_rows) == len(ents) + 1
    header = ws_rows[0]
    uscc, name = header.index(LABELS["columns"]["uscc"]), header.index(LABELS["columns"]["name"])
    expected = dict(zip(ents["uscc"], ents["name"], strict=True))
    expected[ents.loc[0, "uscc"]] = "'" + ents.loc[0, "name"]  # formula neutralised
    for rows in (ws_rows, cal_rows):
        got = {row[uscc]: row[name] for row in rows[1:]}
        assert got == expected
    for zid in sorted(set(ents["basin_id"]) - {""}):
        zone = LABELS["zones"][zid]
        assert wb[zone].max_row - 1 == int((ents["basin_id"] == zid).sum()), zid
        assert len(cal.get_sheet_by_name(zone).to_python()) - 1 == wb[zone].max_row - 1
    assert not [c.coordinate for ws in wb.worksheets for row in ws.iter_rows() for c in row
                if c.data_type == "f"]


def test_csv_is_streamed_in_chunks(many, monkeypatch) -> None:  # noqa: ANN001
    from geo import export as ex

    client, ents = many
    monkeypatch.setattr(ex.csv_chunks, "__kwdefaults__", {"rows": 500})
    with client.stream("GET", "/exports/enforcement", params={"format": "csv"}) as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers  # streamed, not a whole file
        parts = list(r.iter_raw())
    body = b"".join(parts)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert len(rows) == len(ents)
    assert sorted(r["uscc"] for r in rows) == sorted(ents["uscc"])
    assert {r["name"] for r in rows} >= {"'" + ents.loc[0, "name"]}


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_memory_is_given_back_after_exports(many) -> None:  # noqa: ANN001
    client, _ = many
    for fmt in ("xlsx", "csv"):  # warm: imports, caches, first pool growth
        assert client.get("/exports/enforcement", params={"format": fmt}).status_code == 200
    before = _rss_mb()
    for _ in range(3):
        for fmt in ("xlsx", "csv"):
            assert client.get("/exports/enforcement", params={"format": fmt}).status_code == 200
    after = _rss_mb()
    # repeated exports must not accumulate: the benchmark measures the large case
    assert after - before < 64, (before, after)
