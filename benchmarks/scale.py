"""Scale-out benchmark: single process vs Dask (local cluster) vs in-database (PostGIS).

Usage::

    .venv/bin/python benchmarks/scale.py [--size 1000000] [--workers 2] [--postgis URL]
                                         [--out BENCHMARKS.md] [--smoke]

Classifies seeded synthetic enterprises (``benchmarks/_measure.py: enterprises``) with the
single-process engine (``apply_rules(classify(...))``), with
:func:`geo.distributed.classify_partitioned` on a ``distributed.LocalCluster`` of worker
processes, and (with ``--postgis``) inside PostGIS with
:meth:`api.store.postgis.PostGISStore.classify_in_database`; checks that all give the same
answers and writes the table between ``<!-- begin:scale -->`` / ``<!-- end:scale -->`` in
``BENCHMARKS.md``. ``--smoke``: 5,000 rows, no file written unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _measure import enterprises  # noqa: E402

__all__ = ["enforcement_frame", "write_block", "main"]

from _blocks import write_block  # noqa: E402

log = logging.getLogger(__name__)

COMPARED = ("city", "district", "district_code", "basin_id", "region_id", "park_id",
            "verdict", "standards", "rule_ids", "reasons")
AS_OF = dt.date(2020, 6, 1)


def enforcement_frame(size: int, seed: int = 2019) -> gpd.GeoDataFrame:
    """``size`` classified synthetic enterprises with every ENFORCEMENT_COLUMN (for stores)."""
    from geo.classify import classify
    from geo.rules import apply_rules
    from geo.schema import ENFORCEMENT_COLUMNS

    g = apply_rules(classify(enterprises(size, seed)), as_of=AS_OF)
    g["row"] = np.arange(2, size + 2)
    g["uscc"] = pd.array([f"91440000{i:010d}" for i in range(size)], dtype="str")
    g["name"] = g["district"] + "企业" + g["row"].astype(str)
    g["industry"] = g["industry_id"]
    for c in ENFORCEMENT_COLUMNS:
        if c not in g.columns:
            g[c] = "WGS84" if c == "crs_in" else ("coordinates" if c == "geocode_precision"
                                                  else "")
    keep = g["district"] != ""
    return g.loc[keep, [*ENFORCEMENT_COLUMNS, "geometry"]].reset_index(drop=True)


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return all(
        (a[c].astype(str).to_numpy() == b[c].astype(str).to_numpy()).all() for c in COMPARED
    )


def run(size: int, workers: int, postgis: str | None) -> list[dict[str, Any]]:
    """Measure every path at ``size`` rows; rows of the result table."""
    from geo.classify import classify
    from geo.distributed import classify_partitioned
    from geo.rules import apply_rules

    gdf = enterprises(size, 2019)
    apply_rules(classify(gdf.iloc[:1000]), as_of=AS_OF)  # build the indexes once
    single_s, want = _timed(lambda: apply_rules(classify(gdf), as_of=AS_OF))
    rows = [{"path": "single process (`classify` + `apply_rules`)", "s": single_s,
             "same": "reference", "note": "indexes prebuilt"}]

    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        nparts = max(workers, min(4 * workers, size // 50_000 + 1))
        warm = classify_partitioned(gdf.iloc[: 1000 * workers], npartitions=workers,
                                    client=client, as_of=AS_OF)  # workers build indexes
        assert len(warm) == 1000 * workers or size < 1000 * workers
        dask_s, got = _timed(lambda: classify_partitioned(
            gdf, npartitions=nparts, client=client, as_of=AS_OF))
    rows.append({"path": f"Dask LocalCluster, {workers} worker processes, {nparts} "
                         "Hilbert partitions", "s": dask_s,
                 "same": "yes" if _same(got, want) and got.index.equals(want.index) else "NO",
                 "note": "includes curve sort, sending the data to workers, gather"})

    if postgis:
        from api.store.postgis import PostGISStore

        frame = enforcement_frame(size)
        expect = frame.copy()
        store = PostGISStore(postgis, schema="bw_scale")
        store.init()
        try:
            load_s, _ = _timed(lambda: store.load_enterprises(
                frame, loaded_by="bench", source_name="synthetic", source_sha256="0" * 64))
            ref_s, _ = _timed(store.load_reference_layers)
            db_s, _ = _timed(lambda: store.classify_in_database(as_of=AS_OF))
            from api.store.base import FeatureQuery

            back = store.query(FeatureQuery()).features.sort_values("fid")
            back = back.reset_index(drop=True)
            rows.append({"path": "PostGIS in-database (`classify_in_database`)", "s": db_s,
                         "same": "yes" if _same(back, expect) else "NO",
                         "note": f"plus load {load_s:.1f} s, reference layers {ref_s:.1f} s; "
                                 "rows outside every district dropped"})
        finally:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA IF EXISTS bw_scale CASCADE")
            store.close()
    return rows


def render(size: int, rows: list[dict[str, Any]], cmd: str) -> str:
    """Markdown of the scale table."""
    base = rows[0]["s"]
    lines = [
        "## Scale out: single process, Dask, PostGIS in-database",
        "",
        f"`{cmd}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {size:,} synthetic "
        f"enterprises, {os.cpu_count()} cores. One run each (wall clock). \"same\" = city, "
        "district, basin, region, park, verdict, standards, rule ids and reasons identical "
        "to the single-process engine for every row.",
        "",
        "| path | seconds | rows/s | vs single | same | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['s']:.2f} | {size / r['s']:,.0f} | "
                     f"{base / r['s']:.2f}x | {r['same']} | {r['note']} |")
    lines += ["", "On one 2-core machine Dask cannot beat the single-process engine (the "
              "vectorised engine already uses a core fully, and Dask adds serialisation, data "
              "transfer and gather); the Dask path is for registries that do not fit "
              "one machine, where throughput grows with the number of worker machines."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--postgis", default=os.environ.get("BASINWATCH_TEST_DATABASE_URL"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="5,000 rows, no timing claims")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    size = 5_000 if args.smoke else args.size
    out = args.out if (args.out or args.smoke) else HERE.parent / "BENCHMARKS.md"
    rows = run(size, args.workers, args.postgis or None)
    cmd = "python benchmarks/scale.py" + (" --smoke" if args.smoke else f" --size {size}")
    md = render(size, rows, cmd)
    print(md)
    if out is not None:
        write_block(out, "scale", md)
    return 0 if all(r["same"] in ("yes", "reference") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
