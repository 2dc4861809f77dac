"""Two Dask worker processes standing in for two machines: peak memory per worker.

Usage::

    .venv/bin/python benchmarks/dask_two_workers.py [--size 1000000] [--partitions 16]
                                                   [--memory-limit auto] [--out BENCHMARKS.md]

1. A child process writes seeded synthetic enterprises (``_measure.enterprises``) as a
   spatially ordered GeoParquet dataset of ``--partitions`` files
   (:func:`geo.distributed.write_partitions`).
2. A child process reads the whole dataset and runs ``apply_rules(classify(...))``: the
   single-process peak RSS (``ru_maxrss``).
3. A ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` whose workers each
   have ``--memory-limit`` (``auto``: half the single-process peak; the nanny restarts a
   worker that exceeds it, and the run then fails) runs
   :func:`geo.distributed.classify_parquet`: every worker reads its own partitions and
   writes its own results. Each worker's peak RSS is read in the worker
   (``client.run``), the client's own peak in this process.
4. Every row's classify and rules columns are compared with the single-process result.

Writes the table between ``<!-- begin:dask-two-workers -->`` / ``<!-- end:... -->`` in
``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _blocks import write_block  # noqa: E402

AS_OF = dt.date(2020, 6, 1)
COMPARED = ("city", "district", "district_code", "basin_id", "region_id", "park_id",
            "needs_review", "review_reasons", "verdict", "standards", "rule_ids", "reasons",
            "deadline", "deadline_status")


def _peak_mb() -> float:
    """Peak RSS of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(step: str, args: dict[str, object]) -> dict[str, object]:
    """Run a step of this script in a fresh process; its JSON answer."""
    out = subprocess.run([sys.executable, __file__, "--step", step, json.dumps(args)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _step(step: str, args: dict[str, object]) -> dict[str, object]:
    import geopandas as gpd

    if step == "prepare":
        from _measure import enterprises

        from geo.distributed import write_partitions

        n = write_partitions(enterprises(int(args["size"]), 2019), args["src"],
                             npartitions=int(args["partitions"]))
        return {"files": n}
    if step == "single":
        from geo.classify import classify
        from geo.rules import apply_rules

        t0 = time.perf_counter()
        gdf = gpd.read_parquet(args["src"])
        res = apply_rules(classify(gdf), as_of=AS_OF)
        wall = time.perf_counter() - t0
        res.to_parquet(args["dst"])
        return {"s": wall, "peak_mb": _peak_mb(), "rows": len(res)}
    raise ValueError(step)


def run(size: int, partitions: int, memory_limit: str) -> dict[str, object]:
    """Measure the single process and the two-worker cluster; compare their results."""
    import distributed
    import geopandas as gpd
    import pandas as pd

    from geo.distributed import classify_parquet

    with tempfile.TemporaryDirectory(prefix="bw-dask-") as tmp:
        src, single_out, dask_out = (str(Path(tmp) / n) for n in ("in", "single.parquet",
                                                                   "out"))
        _child("prepare", {"size": size, "partitions": partitions, "src": src})
        single = _child("single", {"src": src, "dst": single_out})
        limit = (f"{int(single['peak_mb'] / 2)}MiB" if memory_limit == "auto"
                 else memory_limit)
        import dask

        # the limit is a ceiling (the nanny restarts a worker above 95 % of it), not a
        # spill/pause threshold: the workers hold no data between tasks to spill
        quiet = {f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause")}
        with dask.config.set(quiet), distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True,
                memory_limit=limit, dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            t0 = time.perf_counter()
            nparts = classify_parquet(src, dask_out, client=client, as_of=AS_OF)
            wall = time.perf_counter() - t0
            workers = client.run(_peak_mb)
        client_peak = _peak_mb()
        want = gpd.read_parquet(single_out).sort_values("_bw_row").reset_index(drop=True)
        got = gpd.read_parquet(dask_out).sort_values("_bw_row").reset_index(drop=True)
        diff = {c: int((pd.Series(got[c]).astype(str).to_numpy()
                        != pd.Series(want[c]).astype(str).to_numpy()).sum())
                for c in COMPARED}
        same = len(got) == len(want) and not any(diff.values())
    return {"single": single, "dask_s": wall, "partitions": nparts, "limit": limit,
            "workers": sorted(workers.values()),
            "client_mb": client_peak, "same": same, "diff": {k: v for k, v in diff.items() if v}}


def render(size: int, r: dict[str, object]) -> str:
    """Markdown of the result."""
    single = r["single"]
    half = single["peak_mb"] / 2
    wk = r["workers"]
    ok = all(w < half for w in wk)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = [f"| single process | {single['s']:.1f} | {single['peak_mb']:,.0f} | — | reference |"]
    for i, w in enumerate(wk):
        rows.append(f"| worker {i + 1} of 2 (memory limit {r['limit']}) | "
                    f"{r['dask_s']:.1f} | {w:,.0f} | {'yes' if w < half else 'NO'} | "
                    f"{'yes' if r['same'] else 'NO ' + json.dumps(r['diff'])} |")
    rows.append(f"| client (graph only) | — | {r['client_mb']:,.0f} | — | — |")
    return "\n".join([
        "## Dask on two worker processes (two machines simulated)",
        "",
        f"`python benchmarks/dask_two_workers.py --size {size}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {size:,} synthetic enterprises, "
        f"{r['partitions']} spatial partitions (GeoParquet files each worker reads itself), "
        f"classify + rules, `LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`, "
        f"{os.cpu_count()} cores, load average {load}. Peak = peak RSS of the process "
        "(`ru_maxrss`), imports and reference indexes included. \"same\" = all classify and "
        "rules columns equal the single-process result for every row.",
        "",
        "| process | wall s | peak MB | under half the single peak | same |",
        "|---|---:|---:|---|---|",
        *rows,
        "",
        f"Each worker peaks {'under' if ok else 'NOT under'} half the single-process peak "
        f"({half:,.0f} MB); the workers stay within their memory limit (a worker over it is "
        "restarted by its nanny and the run fails).",
    ])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--step"]:
        print(json.dumps(_step(argv[1], json.loads(argv[2]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--partitions", type=int, default=16)
    p.add_argument("--memory-limit", default="auto")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    r = run(args.size, args.partitions, args.memory_limit)
    md = render(args.size, r)
    print(md)
    if args.out is not None:
        write_block(args.out, "dask-two-workers", md)
    ok = r["same"] and all(w < r["single"]["peak_mb"] / 2 for w in r["workers"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
