"""Exports read back by pandas/geopandas, and registry upload with API-key roles."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from urllib.parse import unquote

import geopandas as gpd
import pandas as pd
import pytest

from api.testing import EDITOR_KEY, READER_KEY

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
    "shp": "application/zip",
}


def _filename_star(header: str) -> str:
    part = next(p.strip() for p in header.split(";") if p.strip().startswith("filename*="))
    charset, _, value = part[len("filename*="):].partition("''")
    assert charset.upper() == "UTF-8"
    return unquote(value)


def _read_back(fmt: str, data: bytes, tmp_path) -> pd.DataFrame:  # noqa: ANN001
    path = tmp_path / ("out.zip" if fmt == "shp" else f"out.{fmt}")
    path.write_bytes(data)
    if fmt == "csv":
        return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    if fmt == "xlsx":
        return pd.read_excel(path, sheet_name=1)  # sheet 0 is the summary, 1 the full list
    if fmt == "shp":
        with zipfile.ZipFile(path) as zf:
            assert any(n.endswith(".shp") for n in zf.namelist())
        return gpd.read_file(f"zip://{path}")
    return gpd.read_file(path)


def _assert_format(fmt: str, data: bytes) -> None:
    """The body is the asked format by its bytes, whatever its headers say."""
    if fmt == "gpkg":
        assert data.startswith(b"SQLite format 3\x00")
    elif fmt in ("xlsx", "shp"):
        import io

        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert ("xl/workbook.xml" in names) if fmt == "xlsx" else any(
            n.endswith(".shp") for n in names)
    elif fmt == "geojson":
        import json

        assert json.loads(data)["type"] == "FeatureCollection"
    else:
        text = data.decode("utf-8-sig")
        assert not text.lstrip().startswith("{") and "," in text.splitlines()[0]


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_export_formats_read_back(loaded_client, enterprises, fmt: str, tmp_path) -> None:  # noqa: ANN001
    r = loaded_client.get("/exports/enforcement",
                          params={"format": fmt, "basin_id": "lianjiang", "industry": "印染"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(CONTENT_TYPES[fmt])
    name = _filename_star(r.headers["content-disposition"])
    assert name.startswith("执法清单") and "练江流域" in name and "印染" in name
    _assert_format(fmt, r.content)
    df = _read_back(fmt, r.content, tmp_path)
    expected = enterprises.loc[(enterprises.basin_id == "lianjiang")
                               & (enterprises.industry == "印染")]
    assert len(df) == len(expected)
    # the name column is 'name' in machine formats and a Chinese header in Excel
    name_col = "name" if "name" in df.columns else next(c for c in df.columns if "名称" in str(c))
    assert sorted(df[name_col].astype(str)) == sorted(expected["name"])


def test_export_bad_format(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get("/exports/enforcement", params={"format": "pdf"})
    assert r.status_code == 400 and "format" in r.json()["description"]


def _xlsx_bytes(rows: list[list[object]]) -> bytes:
    import io

    from openpyxl import Workbook

    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@dataclass
class _Result:
    enterprises: gpd.GeoDataFrame
    rejected: pd.DataFrame
    source_rows: int


@pytest.fixture
def plumbing_pipeline(enterprises):  # noqa: ANN001, ANN201
    """A stand-in pipeline for the tests of the upload plumbing (keys, roles, checksum, load
    history, what reaches the pipeline). Verdicts of real files through the real pipeline:
    ``test_real_registry_*`` below."""
    calls: list[tuple[bytes, str]] = []
    rejected = pd.DataFrame({"row": [9], "uscc": [""], "name": ["无名"], "field": ["lon"],
                             "reason": ["out_of_province"], "message": ["经度超出广东省范围"]})

    def run(source, *, filename):  # noqa: ANN001, ANN202
        calls.append((source.read(), filename))
        return _Result(enterprises.iloc[:4], rejected, 5)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_upload_plumbing_validates_without_loading(make_client, plumbing_pipeline, store) -> None:  # noqa: ANN001
    client = make_client(run_pipeline=plumbing_pipeline)
    payload = "企业名称,经度,纬度\n甲,116.4,23.2\n".encode()
    files = {"file": ("名录.csv", payload, "text/csv")}
    # parsing a file needs a key even while reads are open (issue 14)
    assert client.post("/registry", files=files).status_code == 401
    assert plumbing_pipeline.calls == []
    r = client.post("/registry", files=files, headers={"X-API-Key": READER_KEY})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["accepted"], rep["rejected"], rep["loaded"]) == (4, 1, None)
    assert rep["rejected_rows"][0]["message"] == "经度超出广东省范围"
    assert plumbing_pipeline.calls == [(payload, "名录.csv")]
    assert store.loads() == []


def test_upload_plumbing_load_needs_editor(make_client, plumbing_pipeline, store, enterprises) -> None:  # noqa: ANN001
    import hashlib

    client = make_client(run_pipeline=plumbing_pipeline)
    content = _xlsx_bytes([["企业名称", "经度", "纬度"], ["甲", 116.4, 23.2]])
    files = {"file": ("名录.xlsx", content, "application/octet-stream")}
    assert client.post("/registry?load=true", files=files).status_code == 401
    r = client.post("/registry?load=true", files=files, headers={"X-API-Key": READER_KEY})
    assert r.status_code == 403 and "editor" in r.json()["description"]
    assert store.loads() == []
    r = client.post("/registry?load=true", files=files, headers={"X-API-Key": EDITOR_KEY})
    assert r.status_code == 201, r.text
    loaded = r.json()["loaded"]
    assert loaded["source_sha256"] == hashlib.sha256(content).hexdigest()
    assert (loaded["accepted"], loaded["rejected"]) == (4, 1)
    hist = client.get("/registry/loads").json()["loads"]
    assert [h["load_id"] for h in hist] == [loaded["load_id"]]
    items = client.get("/collections/enterprises/items").json()
    assert [f["properties"]["name"] for f in items["features"]] == enterprises["name"][:4].tolist()


def test_upload_plumbing_rejects_other_file_types(make_client, plumbing_pipeline) -> None:  # noqa: ANN001
    client = make_client(run_pipeline=plumbing_pipeline)
    r = client.post("/registry", files={"file": ("a.pdf", b"%PDF", "application/pdf")},
                    headers={"X-API-Key": READER_KEY})
    assert r.status_code == 400 and ".csv or .xlsx" in r.json()["description"]
    assert plumbing_pipeline.calls == []


def test_weak_api_keys_are_refused() -> None:
    from pydantic import ValidationError

    from api.settings import Settings

    with pytest.raises(ValidationError, match="too weak"):
        Settings(api_keys={"changeme": "editor"})


# ------------------------------------- real files through the real pipeline, over HTTP
# Expectations written by hand from the file's rows and the published layers, not from the
# pipeline: tests/data/registry_small.* holds four rows:
#   row 2 潮南甲印染有限公司  印染 GCJ-02 (116.42, 23.25), 陈店 -> Lianjiang basin, 潮南区
#   row 3 光明乙纸业有限公司  C2221 (paper), lon/lat swapped (22.78, 113.89) -> 公明街道,
#         光明区, wholly in the Maozhou basin: paper meets DB44/2130-2018 (表2 第5项(2))
#   row 4 丙化工有限公司      化工 is none of the plan's 12 industries -> rejected (行业)
#   row 5 东莞丁染整厂        1713 (dyeing), coordinates 0,0 and an address -> located from
#         东莞市长安镇; its USCC repeats row 2's


@pytest.mark.parametrize("name", ["registry_small.csv", "registry_small.xlsx"])
def test_real_registry_through_real_pipeline(make_client, store, data_file, name: str) -> None:  # noqa: ANN001
    client = make_client()  # no run_pipeline: geo.pipeline.run_pipeline
    content = data_file(name).read_bytes()
    files = {"file": (name, content, "application/octet-stream")}
    r = client.post("/registry?load=true&as_of=2019-06-30", files=files,
                    headers={"X-API-Key": EDITOR_KEY})
    assert r.status_code == 201, r.text
    rep = r.json()
    assert (rep["source_rows"], rep["accepted"], rep["rejected"]) == (4, 3, 1)
    [rej] = rep["rejected_rows"]
    assert (rej["row"], rej["reason"], rej["field"]) == (4, "industry_unknown", "行业")
    assert "第4行" in rej["message"] and "化工" in rej["message"]

    items = client.get("/collections/enterprises/items").json()["features"]
    by_name = {f["properties"]["name"]: f for f in items}
    assert set(by_name) == {"潮南甲印染有限公司", "光明乙纸业有限公司", "东莞丁染整厂"}

    paper = by_name["光明乙纸业有限公司"]
    p = paper["properties"]
    assert (p["industry_id"], p["district"], p["basin_id"]) == ("paper", "光明区", "maozhou")
    assert p["verdict"] == "basin_standard" and "DB44/2130-2018" in p["standards"]
    assert "lonlat_swapped" in p["data_issues"]
    lon, lat = paper["geometry"]["coordinates"]
    assert (lon, lat) == pytest.approx((113.89, 22.78), abs=1e-9)  # swapped back, WGS84 as given

    dye = by_name["潮南甲印染有限公司"]
    d = dye["properties"]
    assert (d["industry_id"], d["district"], d["basin_id"]) == ("dyeing", "潮南区", "lianjiang")
    assert d["crs_in"] == "GCJ02"
    lon, lat = dye["geometry"]["coordinates"]
    # GCJ-02 converted: WGS84 lies ~0.0045 deg west and ~0.0027 deg north of the given point
    assert 116.41 < lon < 116.42 and 23.25 < lat < 23.26

    dongguan = by_name["东莞丁染整厂"]["properties"]
    assert dongguan["industry_id"] == "dyeing" and dongguan["city"] == "东莞市"
    assert {"coordinates_missing", "uscc_duplicate"} <= set(dongguan["data_issues"].split(";"))
