"""Provenance in every output of a run, checked against independent readers.

The oracle for the registry digest is ``hashlib`` over the file's bytes; the GeoPackage
metadata is read with ``sqlite3`` (not GDAL), the GeoJSON with ``json``, the workbook with
openpyxl, and the catalog versions straight from the TOML files.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tomllib
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from geo import export as ex
from geo.pipeline import run_pipeline
from geo.provenance import Provenance, layer_versions, reference_versions
from layers.catalog import data_path, read_data_toml

LABELS = read_data_toml("labels.toml")
AS_OF = date(2019, 6, 30)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    """The small test registry run once, all outputs written."""
    import shutil

    work = tmp_path_factory.mktemp("prov")
    src = work / "名录 small.csv"
    shutil.copy(Path(__file__).resolve().parents[1] / "data" / "registry_small.csv", src)
    result = run_pipeline(src, as_of=AS_OF)
    paths = ex.export_all(result.enterprises, result.rejected, work / "out",
                          provenance=result.provenance)
    paths["shp"] = ex.export(result.enterprises, "shp", work / "out" / "e.zip",
                             provenance=result.provenance)
    return src, result, paths


def _check_record(rec: dict, src: Path, result) -> None:  # noqa: ANN001
    assert rec["registry"]["file"] == src.name
    assert rec["registry"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert rec["as_of"] == "2019-06-30"
    assert rec["counts"]["accepted"] == len(result.enterprises)
    assert rec["counts"]["rejected"] == len(result.rejected)
    assert rec["counts"]["accepted"] + rec["counts"]["rejected"] == rec["registry"]["data_rows"]
    with data_path("rules.toml").open("rb") as fh:
        assert rec["catalogs"]["rules.toml"] == tomllib.load(fh)["version"]
    districts = next(lay for lay in rec["layers"] if lay["id"] == "districts")
    digest = hashlib.sha256(data_path("districts.geojson").read_bytes()).hexdigest()
    assert districts["sha256"] == digest and districts["file"] == "districts.geojson"
    when = datetime.fromisoformat(rec["generated_at"])
    assert when.tzinfo is not None and abs((datetime.now(when.tzinfo) - when).days) < 1


def test_sidecar_names_registry_versions_and_file_digests(run) -> None:  # noqa: ANN001
    src, result, paths = run
    rec = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    _check_record(rec, src, result)
    files = {f["name"]: f["sha256"] for f in rec["files"]}
    for key in ("csv", "geojson", "xlsx", "gpkg", "rejected"):
        assert files[paths[key].name] == hashlib.sha256(paths[key].read_bytes()).hexdigest()
    assert rec["counts"]["by_verdict"] == result.verdict_counts


def test_geojson_carries_a_provenance_member(run) -> None:  # noqa: ANN001
    src, result, paths = run
    raw = json.loads(paths["geojson"].read_text(encoding="utf-8"))
    assert raw["type"] == "FeatureCollection"
    _check_record(raw[ex.GEOJSON_PROVENANCE_MEMBER], src, result)


def test_gpkg_carries_provenance_metadata(run) -> None:  # noqa: ANN001
    src, result, paths = run
    with sqlite3.connect(paths["gpkg"]) as conn:
        (xml,) = conn.execute("SELECT metadata FROM gpkg_metadata").fetchone()
        (description,) = conn.execute(
            "SELECT description FROM gpkg_contents WHERE table_name = 'enterprises'"
        ).fetchone()
    import xml.etree.ElementTree as ET

    item = next(e for e in ET.fromstring(xml).iter("MDI")
                if e.get("key") == ex.GPKG_PROVENANCE_KEY)
    _check_record(json.loads(item.text or ""), src, result)
    assert src.name in description


def test_shapefile_zip_carries_provenance(run) -> None:  # noqa: ANN001
    src, result, paths = run
    with zipfile.ZipFile(paths["shp"]) as zf:
        _check_record(json.loads(zf.read("provenance.json")), src, result)


def test_xlsx_notes_sheet_states_provenance(run) -> None:  # noqa: ANN001
    src, result, paths = run
    wb = openpyxl.load_workbook(paths["xlsx"])
    assert wb.sheetnames[-1] == LABELS["sheets"]["notes"]
    rows = {r[0]: r[1] for r in wb[LABELS["sheets"]["notes"]].iter_rows(values_only=True)
            if r[0]}
    p = LABELS["provenance"]
    assert rows[p["registry_file"]] == src.name
    assert rows[p["registry_sha256"]] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert rows[p["as_of"]] == "2019-06-30"
    assert rows[p["accepted"]] == f"{len(result.enterprises):,}"
    assert rows[p["rejected"]] == f"{len(result.rejected):,}"
    assert rows[f"{p['catalog']} rules.toml"] == "2019-plan-v2"
    assert any(str(k).startswith(p["layer"]) and "districts" in str(k) for k in rows)
    datetime.fromisoformat(rows[p["generated_at"]])
    # the summary sheet mentions the rejected rows with their total
    summary = [r for r in wb[LABELS["sheets"]["summary"]].iter_rows(values_only=True)]
    start = next(i for i, r in enumerate(summary)
                 if r[0] and LABELS["words"]["rejected_rows"] in r[0])
    total = next(r for r in summary[start:] if r[0] == LABELS["words"]["total"])
    assert total[1] == len(result.rejected) > 0


def test_filtered_subset_keeps_the_source_but_counts_itself(run, tmp_path) -> None:  # noqa: ANN001
    src, result, _ = run
    part = result.enterprises.iloc[:3]
    path = ex.write_geojson(part, tmp_path / "part.geojson", provenance=result.provenance)
    rec = json.loads(path.read_text(encoding="utf-8"))[ex.GEOJSON_PROVENANCE_MEMBER]
    assert rec["counts"]["accepted"] == 3
    assert rec["registry"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_versions_come_from_the_data_files() -> None:
    for name, version in reference_versions().items():
        raw = read_data_toml(name)
        assert version == str(raw.get("version", raw.get("meta", {}).get("version")))
    files = {lay.file for lay in layer_versions()}
    assert {"districts.geojson", "basins.geojson", "parks.geojson"} <= files
    assert Provenance.now(registry_name="x", registry_sha256="", as_of=None,
                          accepted=0).to_dict()["as_of"] is None
