"""Export benchmark: the writers (xlsx, csv; new vs the old openpyxl/pandas ones) at 200k
and 1M rows, and the API export paths (xlsx 100k, csv 1M) with the server's memory.

Writers: each write runs in a fresh child process on a frame cached as GeoParquet, which
reports the seconds and its RSS before and at peak (VmHWM, reset before the write). The old openpyxl
workbook is measured at ``--old`` rows only (minutes per 200k rows). Writes the block
``export-writers`` of BENCHMARKS.md.

API, the page's Excel export of 100k enterprises, and what it costs others:

Loads N enterprises (default 100 000, as ``map_bench.make_enterprises``) into an embedded
GeoPackage store, serves the API with uvicorn on a free 127.0.0.1 port and, like the page's
Excel button, starts ``POST /exports/jobs?format=xlsx`` for all of them, polls its progress
and fetches the file. Meanwhile a second client asks ``/map/count`` and map tiles every
0.2 s (what a colleague's map does): their latencies show whether the export stalls the
server. Also the CSV of the same rows (``GET /exports/enforcement?format=csv``) and the
server process's resident memory before, at the end and after the file was fetched.

Also ``GET /exports/enforcement?format=xlsx`` of the same rows, and the CSV of
``--api-csv`` rows from a second store (streamed). Writes the block ``map-export``::

    python benchmarks/export_bench.py [--n 100000] [--api-csv 1000000]
        [--writers 200000 1000000] [--old 200000] [--out BENCHMARKS.md] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _blocks import write_block  # the script's folder is on sys.path

__all__ = ["run", "run_writers", "main"]

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _status_mb(key: str, pid: int | str = "self") -> float:
    """A memory figure of /proc/<pid>/status (VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(n: int) -> dict[str, Any]:
    """Serve ``n`` enterprises, export them as the page does, measure."""
    import httpx

    tmp, store = _loaded_store(n, "bw-exportbench-")
    srv, thread, base = _serve(store, tmp)
    other: list[float] = []
    stop = threading.Event()

    def colleague() -> None:
        with httpx.Client(timeout=60) as c:
            i = 0
            while not stop.is_set():
                t = time.perf_counter()
                c.get(base + "/map/count", params={"bbox": f"113,22,{114 + i % 3},23.5"})
                c.get(f"{base}/collections/enterprises/tiles/WebMercatorQuad/10/{445 + i % 4}/"
                      f"{835 + i % 5}", params={"px": 512})
                other.append((time.perf_counter() - t) * 1000)
                i += 1
                time.sleep(0.2)

    try:
        with httpx.Client(timeout=600) as c:
            c.get(base + "/map/count", params={"bbox": "109,20,118,26"})  # warm
            rss0 = _rss_mb()
            t = time.perf_counter()
            r = c.get(base + "/exports/enforcement", params={"format": "csv"})
            csv_s = time.perf_counter() - t
            assert r.status_code == 200
            t = time.perf_counter()
            r = c.get(base + "/exports/enforcement", params={"format": "xlsx"})
            direct_s = time.perf_counter() - t
            assert r.status_code == 200
            rss_direct = _rss_mb()
            bg = threading.Thread(target=colleague, daemon=True)
            bg.start()
            time.sleep(1.0)
            baseline = list(other)
            t = time.perf_counter()
            job = c.post(base + "/exports/jobs", params={"format": "xlsx"}).json()
            first_progress = None
            while True:
                st = c.get(f"{base}/exports/jobs/{job['id']}").json()
                if first_progress is None and st["done"] > 0:
                    first_progress = time.perf_counter() - t
                if st["state"] != "running":
                    break
                time.sleep(0.25)
            written = time.perf_counter() - t
            rss_end = _rss_mb()
            body = c.get(f"{base}/exports/jobs/{job['id']}/file")
            total = time.perf_counter() - t
            stop.set()
            bg.join(timeout=10)
            during = other[len(baseline):]
            rss_after = _rss_mb()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"n": n, "rows": st["total"], "state": st["state"], "xlsx_s": written,
            "xlsx_total_s": total, "first_progress_s": first_progress,
            "bytes": len(body.content), "csv_s": csv_s, "rss": (rss0, rss_end, rss_after),
            "direct_s": direct_s, "rss_direct": rss_direct,
            "colleague_before": baseline, "colleague_during": during,
            "load": os.getloadavg()}


def _loaded_store(n: int, prefix: str) -> tuple[Path, Any]:
    """A GeoPackage store in a new temp dir holding ``n`` synthetic enterprises."""
    from api.store import get_store
    from map_bench import make_enterprises

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    store = get_store(tmp / "store.gpkg")
    store.init()
    store.load_enterprises(make_enterprises(n), loaded_by="bench", source_name="bench",
                           source_sha256="0")
    return tmp, store


def _serve(store: Any, tmp: Path) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(Settings(data_dir=tmp), store=store),
                                        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    return srv, thread, f"http://127.0.0.1:{port}"


def run_api_csv(n: int, repeat: int = 1) -> dict[str, Any]:
    """Serve ``n`` enterprises from a server process of its own (as ``basinwatch serve``
    runs) and download their CSV (streamed) ``repeat`` times from this process, like a
    browser would; the server's RSS is read from ``/proc/<pid>/status``.

    Client and server in separate processes: in one process the client's reads would
    take the GIL from the server's writes and the figure would measure both.
    """
    import httpx

    tmp, store = _loaded_store(n, "bw-exportbench-csv-")
    store.close()
    port = _free_port()
    env = {**os.environ, "BASINWATCH_DATA_DIR": str(tmp),
           "BASINWATCH_DATABASE_URL": str(tmp / "store.gpkg"),
           "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0"}
    cmd = [sys.executable, "-m", "uvicorn", "load_api:app_factory", "--factory",
           "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(cmd, env=env, cwd=HERE.parent)
    base = f"http://127.0.0.1:{port}"
    runs: list[tuple[float, float, int]] = []
    try:
        with httpx.Client(timeout=900) as c:
            _wait_until_up(c, base + "/exports/enforcement?format=csv&basin_id=x", server)
            rss0 = _status_mb("VmRSS", server.pid)
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := RSS now
            for _ in range(repeat):
                size, t, first = 0, time.perf_counter(), None
                with c.stream("GET", base + "/exports/enforcement",
                              params={"format": "csv"}) as r:
                    r.raise_for_status()
                    for chunk in r.iter_bytes():
                        first = first or time.perf_counter() - t
                        size += len(chunk)
                runs.append((time.perf_counter() - t, first or 0.0, size))
            peak = _status_mb("VmHWM", server.pid)
            time.sleep(1.0)
            rss_after = _status_mb("VmRSS", server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    seconds, first, size = sorted(runs)[len(runs) // 2]  # the median run
    return {"n": n, "seconds": seconds, "first_byte_s": first, "bytes": size,
            "all_seconds": [r[0] for r in runs], "rss": (rss0, peak, rss_after),
            "load": os.getloadavg()}


def _wait_until_up(client: Any, url: str, server: subprocess.Popen) -> None:
    """Poll ``url`` until the server answers 200 (its warm-up reads the whole store)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if client.get(url).status_code == 200:
                return
        except httpx_errors():
            pass
        time.sleep(1.0)
    raise RuntimeError("the server did not answer within 600 s")


def httpx_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (httpx.TransportError,)


# --------------------------------------------------------------------------- writers

#: Writer name -> (module, function, file suffix).
WRITERS: dict[str, tuple[str, str, str]] = {
    "xlsx": ("geo.export", "write_xlsx", ".xlsx"),
    "csv": ("geo.export", "write_enforcement_csv", ".csv"),
    "xlsx-openpyxl (old)": ("_legacy_export", "write_xlsx_openpyxl", ".xlsx"),
    "csv-pandas (old)": ("_legacy_export", "write_csv_pandas", ".csv"),
}


def _one(writer: str, frame_path: Path) -> dict[str, Any]:
    """In the child: read the frame, write it once, report time and memory."""
    import importlib

    import geopandas as gpd

    frame = gpd.read_parquet(frame_path)
    module, func, suffix = WRITERS[writer]
    fn = getattr(importlib.import_module(module), func)
    out = frame_path.with_suffix(suffix)
    rss0 = _rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS (VmHWM) := RSS now
    cpu0 = _cpu_s()
    t = time.perf_counter()
    fn(frame, out)
    seconds = time.perf_counter() - t
    cpu = _cpu_s() - cpu0
    peak = _status_mb("VmHWM")
    size = out.stat().st_size
    out.unlink()
    return {"seconds": seconds, "cpu": cpu, "rss0": rss0, "peak": peak, "bytes": size}


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (what a shared machine does not inflate)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def run_writers(sizes: list[int], old: int | None) -> list[dict[str, Any]]:
    """Each writer at each size in a fresh child process (old writers at ``old`` only)."""
    from map_bench import make_enterprises

    tmp = Path(tempfile.mkdtemp(prefix="bw-exportbench-w-"))
    out = []
    try:
        for n in sorted(set(sizes) | ({old} if old else set())):
            frame_path = tmp / f"frame_{n}.parquet"
            make_enterprises(n).to_parquet(frame_path)
            for writer in WRITERS:
                is_old = writer.endswith("(old)")
                if (is_old and n != old) or (not is_old and n not in sizes):
                    continue
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", writer, "--frame", str(frame_path)],
                    capture_output=True, text=True, check=True, cwd=HERE.parent)
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res.update(writer=writer, n=n, load=os.getloadavg())
                print(res, flush=True)
                out.append(res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def render_writers(rows: list[dict[str, Any]], cmd: str) -> str:
    """The Markdown block of the writers."""
    lines = [
        "## Export writers: Excel and CSV of the enforcement list (issue 15)",
        "",
        f"`{cmd}` on {dt.date.today().isoformat()}, {platform.machine()}, Python "
        f"{platform.python_version()}; each write in a fresh process on a frame read from "
        "GeoParquet (`map_bench.make_enterprises`); 2 shared cores, load average (1 min) "
        "beside each row.",
        "",
        "| writer | rows | seconds (wall) | CPU seconds | RSS frame loaded -> peak | file "
        "| load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cpu = f"{r['cpu']:.1f}" if "cpu" in r else "-"
        lines.append(
            f"| {r['writer']} | {r['n']:,} | **{r['seconds']:.1f}** | {cpu} | "
            f"{r['rss0']:.0f} -> "
            f"{r['peak']:.0f} MB (+{r['peak'] - r['rss0']:.0f}) | "
            f"{r['bytes'] / 2**20:.1f} MiB | {r['load'][0]:.1f} |")
    lines += [
        "",
        "xlsx: XlsxWriter lays out the workbook (styles, header rows, frozen panes, "
        "autofilters, widths, 汇总 and 说明) and `geo.xlsx` writes the data sheets' cells "
        "column-wise with pyarrow (shared strings from dictionary encodings, one join per "
        "chunk of 25k rows, per-basin sheets reuse the encoding of 全部企业). csv: "
        "`pyarrow.csv` in chunks of 100k rows. The old rows are the openpyxl / "
        "`DataFrame.to_csv` writers these replaced (`benchmarks/_legacy_export.py`).",
    ]
    return "\n".join(lines) + "\n"


def render(res: dict[str, Any], api_csv: dict[str, Any] | None = None) -> str:
    """The Markdown block of the API exports."""
    def p(values: list[float], q: int) -> str:
        return f"{np.percentile(values, q):.0f}" if values else "-"

    rss0, rss_end, rss_after = res["rss"]
    load = ", ".join(f"{x:.2f}" for x in res["load"])
    first = res["first_progress_s"]
    lines = [
        "## Map export: Excel of the whole list with progress, CSV streamed",
        "",
        f"`python benchmarks/export_bench.py --n {res['n']}` on {dt.date.today().isoformat()},"
        f" {platform.machine()}, Python {platform.python_version()}, embedded GeoPackage "
        f"store; load average at the end {load} on 2 shared cores.",
        "",
        "| what | figure | before (openpyxl, 2026-12-01) |",
        "|---|---:|---:|",
        f"| rows exported | {res['rows']:,} ({res['state']}) | 100,000 |",
        f"| Excel (xlsx) job: start -> file written | **{res['xlsx_s']:.1f} s** | 62.4 s |",
        f"| Excel: start -> file downloaded | {res['xlsx_total_s']:.1f} s "
        f"({res['bytes'] / 2**20:.1f} MiB) | 62.5 s (27.3 MiB) |",
        f"| first progress reported after | {first:.1f} s | 1.7 s |" if first is not None else
        "| first progress reported after | - | 1.7 s |",
        f"| Excel direct download (`GET /exports/enforcement?format=xlsx`) | "
        f"**{res['direct_s']:.1f} s** | - |",
        f"| CSV of the same rows (direct download, streamed) | {res['csv_s']:.2f} s | 1.75 s |",
        f"| another client's /map/count + tile, p50 / p95 before the export | "
        f"{p(res['colleague_before'], 50)} / {p(res['colleague_before'], 95)} ms | 10 / 16 ms |",
        f"| the same during the export | {p(res['colleague_during'], 50)} / "
        f"{p(res['colleague_during'], 95)} ms | 8 / 28 ms |",
        f"| server RSS before / after direct xlsx / job written / after download | "
        f"{rss0:.0f} / {res['rss_direct']:.0f} / {rss_end:.0f} / {rss_after:.0f} MB | "
        "549 / - / 600 / 628 MB |",
    ]
    if api_csv is not None:
        c0, cpeak, cafter = api_csv["rss"]
        lines += [
            f"| CSV of {api_csv['n']:,} rows streamed (second store, server in its own "
            f"process, median of {len(api_csv['all_seconds'])}): all bytes / first byte | "
            f"**{api_csv['seconds']:.1f} s** / {api_csv['first_byte_s']:.1f} s "
            f"({api_csv['bytes'] / 2**20:.0f} MiB) | - |",
            f"| server RSS before / peak / after that CSV | {c0:.0f} / {cpeak:.0f} / "
            f"{cafter:.0f} MB (load {api_csv['load'][0]:.1f}) | - |",
        ]
    lines += [
        "",
        "The workbook is written by `geo.export.write_xlsx` (XlsxWriter + pyarrow, "
        "`geo.xlsx`) in a spawned child process (the job) or in the server (direct "
        "download); CSV is streamed as it is formatted. After each export the server "
        "gives memory back (`api.memory.release_memory`: gc, Arrow pool, `malloc_trim`).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows of the API xlsx export")
    ap.add_argument("--api-csv", type=int, default=1_000_000, help="rows of the API csv")
    ap.add_argument("--writers", type=int, nargs="*", default=[200_000, 1_000_000])
    ap.add_argument("--old", type=int, default=200_000, help="rows for the old writers (0: no)")
    ap.add_argument("--smoke", action="store_true", help="5,000 rows everywhere, no file")
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--api-csv-only", action="store_true",
                    help="only the API CSV of --api-csv rows, --repeat times; prints, "
                         "writes nothing")
    ap.add_argument("--repeat", type=int, default=1, help="downloads of the API CSV")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] /
                    "BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one, args.frame)))
        return 0
    if args.smoke:
        args.n = args.api_csv = args.old = 5_000
        args.writers = [5_000]
    if args.api_csv_only:
        print(json.dumps(run_api_csv(args.api_csv, args.repeat)))
        return 0
    cmd = "python benchmarks/export_bench.py" + (" --smoke" if args.smoke else "")
    rows = run_writers(args.writers, args.old or None)
    block = render_writers(rows, cmd)
    print(block)
    if not args.smoke:
        write_block(args.out, "export-writers", block)
    if args.skip_api:
        return 0
    res = run(args.n)
    api_csv = run_api_csv(args.api_csv, args.repeat) if args.api_csv else None
    block = render(res, api_csv)
    print(block)
    if not args.smoke:
        write_block(args.out, "map-export", block)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
