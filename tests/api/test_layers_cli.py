"""``basinwatch layers``: the listing (full provenance at 80 columns), import, impact, switch."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from api.cli import app
from layers.catalog import read_data_toml
from layers.versions import active_version_id
from tests.layers.conftest import WGS84_RING, frame, zip_shapefile

runner = CliRunner()


def test_listing_is_complete_at_80_columns_in_one_language() -> None:
    toml = {e["id"]: e for e in read_data_toml("layers.toml")["layer"]}
    result = runner.invoke(app, ["layers"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.output
    for layer_id, entry in toml.items():
        prov = entry["provenance"]
        # nothing is cut: every source, licence and date appears whole, on its own line
        assert f"    来源: {prov['source']}\n" in out, layer_id
        assert f"    许可: {prov['licence']}\n" in out, layer_id
        assert f"    日期: {prov['date']}\n" in out, layer_id
        assert f"{layer_id}  {entry['title_zh']}  [" in out
    for english in ("Source", "Licence", "kind", "accuracy_m"):
        assert f"    {english}: " not in out  # labels are Chinese only
    en = runner.invoke(app, ["layers", "--lang", "en"], env={"COLUMNS": "80"}).output
    assert "    Licence: " in en and "来源" not in en and "Shima River basin" in en


def test_listing_json_has_version_date_and_licence() -> None:
    result = runner.invoke(app, ["layers", "--format", "json"])
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert rows["shima"]["version"] == "bundled" and rows["shima"]["licence"]
    assert rows["enterprises"]["version"] is None


@pytest.fixture
def shima_zip(tmp_path: Path) -> Path:
    """A GBK zipped Shapefile of a small Shima candidate in EPSG:4326."""
    shp = tmp_path / "shima.shp"
    frame(WGS84_RING, "EPSG:4326", 名称="石马河").to_file(shp, encoding="GBK", engine="pyogrio")
    return zip_shapefile(shp)


def test_import_impact_apply_and_rollback(tmp_path: Path, shima_zip: Path, data_file) -> None:
    registry_csv = data_file("registry_small.csv")
    out = tmp_path / "impact"
    result = runner.invoke(app, [
        "layers", "import", str(shima_zip), "--kind", "basin", "--id", "shima",
        "--source", "测试", "--licence", "CC0-1.0", "--accuracy-m", "10",
        "--registry", str(registry_csv), "--impact-out", str(out), "--as-of", "2019-06-30",
    ])
    assert result.exit_code == 0, result.output
    assert "stored shima@v1" in result.output and "not active yet" in result.output
    assert "attribute encoding GBK" in result.output
    assert {p.name for p in out.iterdir()} == {"impact.csv", "impact.xlsx", "impact.geojson"}
    assert active_version_id("shima") == "bundled"
    applied = runner.invoke(app, ["layers", "impact", "shima", "v1", "--registry",
                                  str(registry_csv), "--out", str(tmp_path / "i2"), "--apply"])
    assert applied.exit_code == 0, applied.output
    assert "active version bundled -> v1" in applied.output
    assert active_version_id("shima") == "v1"
    listing = runner.invoke(app, ["layers"]).output
    assert "shima  石马河流域  [流域]  版本 v1 (现行)" in listing and "    来源: 测试\n" in listing
    back = runner.invoke(app, ["layers", "rollback", "shima"])
    assert back.exit_code == 0 and "rolled back v1 -> bundled" in back.output
    hist = json.loads(runner.invoke(app, ["layers", "versions", "shima", "--format",
                                          "json"]).output)
    assert hist["active"] == "bundled" and [v["version"] for v in hist["versions"]] == [
        "bundled", "v1"]
    assert [h["action"] for h in hist["history"]] == ["activate", "rollback"]


def test_import_without_prj_fails_with_a_clear_message(tmp_path: Path) -> None:
    shp = tmp_path / "x.shp"
    frame(WGS84_RING, "EPSG:4326", name="x").to_file(shp, engine="pyogrio")
    archive = zip_shapefile(shp, drop=(".prj",))
    result = runner.invoke(app, ["layers", "import", str(archive), "--kind", "basin",
                                 "--id", "shima", "--no-impact"])
    assert result.exit_code == 2
    assert "--crs" in result.output and ".prj" in result.output


def test_rejected_import_prints_the_report(tmp_path: Path) -> None:
    path = tmp_path / "bow.csv"
    bow = "POLYGON ((114 22.8, 114.04 22.84, 114.04 22.8, 114 22.84, 114 22.8))"
    pd.DataFrame({"wkt": [bow]}).to_csv(path, index=False)
    result = runner.invoke(app, ["layers", "import", str(path), "--kind", "basin", "--id",
                                 "shima", "--crs", "WGS84", "--no-impact"])
    assert result.exit_code == 2
    assert "[  error] validity" in result.output and "--repair" in result.output
