"""The ``basinwatch`` command line on real files."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_run_on_bundled_sample_writes_every_output(tmp_path: Path, sample_result) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--out", str(out), "--as-of", "2019-06-30"])
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(out / "enforcement_list.csv", dtype={"uscc": str, "district_code": str})
    rejected = pd.read_csv(out / "rejected_rows.csv")
    assert len(csv) == len(sample_result.enterprises)
    assert len(rejected) == len(sample_result.rejected)
    assert len(csv) + len(rejected) == sample_result.source_rows
    assert csv["verdict"].value_counts().to_dict() == sample_result.verdict_counts
    gj = gpd.read_file(out / "enforcement_list.geojson")
    gp = gpd.read_file(out / "enforcement_list.gpkg")
    assert len(gj) == len(gp) == len(csv)
    assert sorted(gj["uscc"]) == sorted(csv["uscc"])
    book = openpyxl.load_workbook(out / "enforcement_list.xlsx", read_only=True)
    assert "汇总" in book.sheetnames and len(book.sheetnames) >= 6
    html = (out / "map.html").read_text("utf-8")
    assert "练江" in html and "<script src=" not in html


def test_run_small_registry_reports_rejections(tmp_path: Path, data_file) -> None:
    src = data_file("registry_small.csv")
    out = tmp_path / "o"
    result = runner.invoke(app, ["run", str(src), "--out", str(out), "--no-map"])
    assert result.exit_code == 0, result.output
    rejected = pd.read_csv(out / "rejected_rows.csv")
    accepted = pd.read_csv(out / "enforcement_list.csv")
    source_rows = len(pd.read_csv(src).dropna(how="all"))
    assert len(rejected) + len(accepted) == source_rows
    assert set(rejected.columns) >= {"row", "field", "reason", "message"}
    assert not (out / "map.html").exists()


def test_run_rejects_missing_file_and_bad_date(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["run", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad = runner.invoke(app, ["run", "--as-of", "2019-13-01", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_run_reports_missing_column(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("企业名称,地址\n某公司,广东省汕头市潮南区\n", encoding="utf-8")
    result = runner.invoke(app, ["run", str(src), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "行业" in result.output or "industry" in result.output
    assert not (tmp_path / "o" / "enforcement_list.csv").exists()


def test_locate_prints_json() -> None:
    result = runner.invoke(app, ["locate", "113.90", "22.76"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["location"]["district"] == "光明区"
    assert answer["location"]["basin_id"] == "maozhou"
    paper = next(i for i in answer["industries"] if i["industry_id"] == "paper")
    assert "DB44/2130-2018" in paper["standards"]


def test_locate_outside_guangdong_is_a_clear_error() -> None:
    result = runner.invoke(app, ["locate", "22.76", "113.90"])
    assert result.exit_code == 2
    assert "Guangdong" in result.output


def test_layers_lists_provenance() -> None:
    result = runner.invoke(app, ["layers"])
    assert result.exit_code == 0
    for layer_id in ("lianjiang", "maozhou", "shima", "danshui", "guangfo", "parks"):
        assert layer_id in result.output


def test_sample_is_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        assert runner.invoke(app, ["sample", "--out", str(path), "-n", "120"]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    frame = pd.read_csv(a)
    assert len(frame) == 120 and "统一社会信用代码" in frame.columns
    assert frame["数据说明"].str.contains("synthetic").all()


def test_raster_density_writes_cog(tmp_path: Path, data_file) -> None:
    import rasterio

    out = tmp_path / "d.tif"
    src = data_file("registry_small.csv")
    result = runner.invoke(
        app, ["raster", "density", str(src), "--cell", "5000", "--by", "verdict", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.crs is not None and ds.nodata is not None
        assert ds.descriptions[0] == "total"
        total = ds.read(1)
        per_verdict = ds.read(list(range(2, ds.count + 1))).sum(axis=0)
    assert total[total != ds.nodata].sum() == per_verdict[total != ds.nodata].sum() > 0


def test_raster_density_rejects_unknown_band_kind(tmp_path: Path) -> None:
    result = runner.invoke(app, ["raster", "density", "--by", "colour", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "industry" in result.output


def test_load_into_embedded_store_is_versioned(tmp_path: Path, data_file, monkeypatch) -> None:
    from api.store import get_store

    monkeypatch.setenv("BASINWATCH_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("BASINWATCH_DATABASE_URL", raising=False)
    src = data_file("registry_small.csv")
    for _ in range(2):
        result = runner.invoke(app, ["load", str(src)])
        assert result.exit_code == 0, result.output
    store = get_store(None, data_dir=tmp_path / "store")
    loads = store.loads()
    assert [r.load_id for r in loads] == [2, 1]
    assert loads[0].source_name == "registry_small.csv"
    store.close()
