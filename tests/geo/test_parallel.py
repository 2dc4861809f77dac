"""geo.parallel and ``export_all(workers=N)``: the files written by forked writer processes
are the files written one after the other in this process (the oracle), errors come back
with their message, and nothing is left half written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import openpyxl
import pandas as pd
import pyogrio
import pytest
from _export_fixtures import enforcement_frame, rejected_frame

from geo.errors import ExportError
from geo.export import compact_text, export_all
from geo.parallel import Job, run_jobs, split_jobs
from geo.provenance import Provenance


def _cells(path: Path) -> dict[str, list[tuple]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)]
                for ws in wb.worksheets}
    finally:
        wb.close()


def _assert_same_files(one: dict[str, Path], two: dict[str, Path]) -> None:
    """The files of two ``export_all`` calls hold the same content: text formats byte for
    byte, the workbook cell by cell, the GeoPackage's attributes and exact geometries."""
    assert set(one) == set(two)
    for key in ("csv", "geojson", "rejected"):  # text formats: byte for byte
        assert two[key].read_bytes() == one[key].read_bytes(), key
    assert _cells(two["xlsx"]) == _cells(one["xlsx"])
    a, b = pyogrio.read_dataframe(one["gpkg"]), pyogrio.read_dataframe(two["gpkg"])
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()


def test_parallel_writers_write_the_same_files(tmp_path: Path) -> None:
    gdf, rejected = enforcement_frame(), rejected_frame()
    stats: dict = {}
    prov = Provenance.now(registry_name="名录.csv", registry_sha256="0" * 64, as_of=None,
                          accepted=len(gdf), verdict_counts={})  # one timestamp for both
    one = export_all(gdf, rejected, tmp_path / "one", workers=1, provenance=prov)
    two = export_all(gdf, rejected, tmp_path / "two", workers=2, stats=stats, provenance=prov)
    assert set(one) == {"csv", "geojson", "xlsx", "gpkg", "rejected", "provenance"}
    _assert_same_files(one, two)
    side = json.loads(two["provenance"].read_text(encoding="utf-8"))
    assert {f["name"] for f in side["files"]} == {
        p.name for k, p in two.items() if k != "provenance"}
    # the writers ran in other processes, and each reported its own figures
    pids = {st.pid for st in stats.values()}
    assert os.getpid() not in pids and len(pids) == 2
    assert all(st.seconds > 0 and st.peak_rss_mb for st in stats.values())


def test_also_jobs_run_beside_the_files_and_are_returned(tmp_path: Path) -> None:
    def extra() -> Path:
        target = tmp_path / "out" / "extra.txt"
        target.write_text(str(os.getpid()), encoding="utf-8")
        return target

    seen: list[tuple[str, bool]] = []
    paths = export_all(enforcement_frame(), rejected_frame(), tmp_path / "out", workers=2,
                       also=[Job("extra", 1, extra)],
                       progress=lambda stage, rows, done=False: seen.append((stage, done)))
    assert paths["extra"].read_text(encoding="utf-8") != str(os.getpid())
    side = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    assert "extra.txt" not in {f["name"] for f in side["files"]}
    for stage in ("csv", "geojson", "xlsx", "gpkg", "rejected", "extra", "provenance"):
        assert seen.index((stage, False)) < seen.index((stage, True)), stage


def _fails() -> Path:
    raise ExportError("Cannot write the thing: disk full (test).")


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle calls cls(*args) with one arg
        super().__init__(f"{a}/{b}")


def _fails_oddly() -> Path:
    raise _Unpicklable(1, 2)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_writer_raises_its_error(tmp_path: Path, workers: int) -> None:
    ok = tmp_path / "ok.txt"

    def fine() -> Path:
        ok.write_text("x", encoding="utf-8")
        return ok

    with pytest.raises(ExportError, match="disk full"):
        run_jobs([Job("bad", 1, _fails), Job("fine", 1, fine)], workers=workers)


def test_an_error_the_parent_cannot_unpickle_keeps_its_message() -> None:
    with pytest.raises(ExportError, match=r"odd: _Unpicklable: 1/2"):
        run_jobs([Job("odd", 1, _fails_oddly), Job("other", 1, lambda: Path("."))], workers=2)


def test_the_parent_writes_beside_one_forked_writer(tmp_path: Path) -> None:
    """``parent_writes``: the same files, written by this process and one forked one."""
    gdf, rejected = enforcement_frame(), rejected_frame()
    stats: dict = {}
    prov = Provenance.now(registry_name="名录.csv", registry_sha256="0" * 64, as_of=None,
                          accepted=len(gdf), verdict_counts={})
    one = export_all(gdf, rejected, tmp_path / "one", workers=1, provenance=prov)
    seen: list[tuple[str, bool]] = []
    two = export_all(gdf, rejected, tmp_path / "two", workers=2, stats=stats,
                     provenance=prov, parent_writes=True,
                     progress=lambda stage, rows, done=False: seen.append((stage, done)))
    _assert_same_files(one, two)
    pids = {st.pid for st in stats.values()}
    assert os.getpid() in pids and len(pids) == 2
    assert stats["xlsx"].pid != os.getpid()  # the largest job goes to the forked writer
    for stage in ("csv", "geojson", "xlsx", "gpkg", "rejected", "provenance"):
        assert seen.index((stage, False)) < seen.index((stage, True)), stage


def test_split_jobs_balances_by_weight_largest_to_the_forked_side() -> None:
    jobs = [Job(name, 1, lambda: Path("."), cost=cost)
            for name, cost in [("xlsx", 17), ("geojson", 11), ("gpkg", 8), ("map", 3.2),
                               ("csv", 3.6), ("units", 0.3), ("rejected", 0.0)]]
    forked, parent = split_jobs(jobs, 2)
    assert sorted(forked + parent) == list(range(len(jobs)))
    assert 0 in forked and {1, 2} <= set(parent)
    load = [sum(jobs[i].weight for i in side) for side in (forked, parent)]
    assert abs(load[0] - load[1]) <= 3.6
    assert Job("x", 5, lambda: Path(".")).weight == 5.0  # no cost: the rows


@pytest.mark.parametrize("first", [True, False])
def test_parent_too_raises_the_first_error(tmp_path: Path, first: bool) -> None:
    """A failing job, whether the parent or the forked worker runs it, ends the call with
    its message; the other side's finished job leaves its file."""
    ok = tmp_path / "ok.txt"

    def fine() -> Path:
        ok.write_text("x", encoding="utf-8")
        return ok

    # the heavier job goes to the forked worker
    jobs = ([Job("bad", 1, _fails, cost=2), Job("fine", 1, fine, cost=1)] if first
            else [Job("fine", 1, fine, cost=2), Job("bad", 1, _fails, cost=1)])
    with pytest.raises(ExportError, match="disk full"):
        run_jobs(jobs, workers=2, parent_too=True)


def test_compact_text_writes_the_same_files(tmp_path: Path) -> None:
    """Text columns as Categoricals (``compact_text``, what ``basinwatch run`` hands the
    writers): every file the same as from the plain frame."""
    gdf, rejected = enforcement_frame(), rejected_frame()
    gdf.loc[gdf.index[1], "reasons"] = None  # a missing value among the categories
    gdf.loc[gdf.index[2], "reasons"] = '=HYPERLINK("x")'  # neutralised as a category too
    prov = Provenance.now(registry_name="名录.csv", registry_sha256="0" * 64, as_of=None,
                          accepted=len(gdf), verdict_counts={})
    small = compact_text(gdf, max_share=1.0)
    cats = [c for c in small.columns if isinstance(small[c].dtype, pd.CategoricalDtype)]
    assert {"verdict", "district", "reasons"} <= set(cats)
    assert type(small) is type(gdf) and list(small.columns) == list(gdf.columns)
    assert all(gdf[c].dtype == small[c].dtype for c in gdf.columns if c not in cats)
    one = export_all(gdf, rejected, tmp_path / "one", workers=1, provenance=prov)
    two = export_all(small, rejected, tmp_path / "two", workers=1, provenance=prov)
    _assert_same_files(one, two)
    assert not isinstance(gdf["verdict"].dtype, pd.CategoricalDtype)  # not changed
    assert "'=HYPERLINK" in two["csv"].read_text(encoding="utf-8-sig")
