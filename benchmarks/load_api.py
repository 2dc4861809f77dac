"""The HTTP API under concurrent load (wrk), on the embedded store and on PostGIS.

Usage::

    .venv/bin/python benchmarks/load_api.py [--size 1000000] [--duration 15]
        [--connections 50] [--workers 2] [--postgis URL] [--out BENCHMARKS.md] [--smoke]

Loads ``size`` classified synthetic enterprises into each store (measuring ingest and
full-read throughput), starts uvicorn with ``--workers`` processes on 127.0.0.1 (the app
``basinwatch serve`` runs), and drives it from a separate ``wrk`` process (Debian package
``wrk``) with a Lua script cycling through seeded point lookups (``/query/point``) and
bbox item queries (``/collections/enterprises/items?bbox=...&limit=1000``, boxes of 0.05°
holding at most 1,000 features). Each run is bounded by ``--duration`` seconds. Writes the
table between ``<!-- begin:api-load -->`` / ``<!-- end:api-load -->`` of ``BENCHMARKS.md``.
``--smoke``: 5,000 rows, 3 s runs, 10 connections, no targets checked, no file written
unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

__all__ = ["app_factory", "main"]

log = logging.getLogger(__name__)

#: Pearl River Delta box where half the synthetic enterprises are (dense: worst case).
PRD_BOX = (112.9, 22.5, 114.3, 23.4)
BBOX_DEG = 0.05
TARGET_MS = {"point": 20.0, "bbox": 100.0}

LUA = r"""
local paths = {}
for line in io.lines(os.getenv("BW_PATHS")) do paths[#paths + 1] = line end
local i = 0
init = function(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
  i = math.random(#paths) end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BWJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"socket_errors":%d,"non2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def app_factory() -> Any:
    """The app ``basinwatch serve`` runs, configured from ``BASINWATCH_*`` variables."""
    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store

    if os.environ.get("BW_NO_LEAN_ITEMS") == "1":  # pygeoapi_compare.py --no-lean
        import api.itemfast

        api.itemfast.ENABLED = False
    settings = Settings()
    store = get_store(settings.database_url, data_dir=settings.data_dir)
    return create_app(settings, store=store)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 120.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
        return r.status, r.read()


def _paths(kind: str, n: int, seed: int, frame: Any) -> list[str]:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = PRD_BOX
    x, y = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    if kind == "point":  # enterprise locations in the box (on land, inside a district)
        lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
        inside = np.flatnonzero((lon > x0) & (lon < x1) & (lat > y0) & (lat < y1))
        pick = rng.choice(inside, n) if inside.size else rng.integers(0, len(frame), n)
        return [f"/query/point?lon={lon[i]:.5f}&lat={lat[i]:.5f}" for i in pick]
    return [f"/collections/enterprises/items?bbox={a:.4f},{b:.4f},{a + BBOX_DEG:.4f},"
            f"{b + BBOX_DEG:.4f}&limit=1000" for a, b in zip(x, y, strict=True)]


def _wrk(base: str, paths: list[str], duration: int, connections: int, work: Path) -> dict:
    plist = work / "paths.txt"
    plist.write_text("\n".join(paths) + "\n", encoding="utf-8")
    script = work / "load.lua"
    script.write_text(LUA, encoding="utf-8")
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
           "-s", str(script), base]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                         env={**os.environ, "BW_PATHS": str(plist)}, check=True)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("BWJSON "))
    out = json.loads(line[len("BWJSON "):])
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    return out


def _serve(env: dict[str, str], workers: int, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "load_api:app_factory", "--factory",
           "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning", "--no-access-log",
           # the app warms its store in its lifespan (seconds at 1M rows): let workers live
           "--timeout-worker-healthcheck", "120"]
    return subprocess.Popen(cmd, env={**os.environ, **env}, cwd=HERE.parent)


def _warm(base: str, paths: dict[str, list[str]], workers: int) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            if _get(base + "/", timeout=5)[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start within 300 s")
        time.sleep(0.5)
    for kind in ("point", "bbox"):  # every worker loads its store state and indexes
        for p in paths[kind][: 6 * workers]:
            status, body = _get(base + p)
            if kind == "bbox":
                assert json.loads(body)["numberReturned"] <= 1000


def _store_run(name: str, url: str, frame: Any, args: argparse.Namespace,
               work: Path) -> dict[str, Any]:
    from api.store import get_store
    from api.store.base import FeatureQuery

    schema = "bw_load" if url.startswith("postgresql") else None
    store = get_store(url, data_dir=work, schema=schema) if schema else get_store(url)
    store.init()
    t0 = time.perf_counter()
    store.load_enterprises(frame, loaded_by="bench", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = len(store.query(FeatureQuery()).features)
    read = time.perf_counter() - t0
    store.close()
    out: dict[str, Any] = {"store": name, "ingest_rps": len(frame) / ingest,
                           "read_rps": n / read, "runs": {}}
    # wrk sends everything from one address: the per-address rate limit would answer 429
    env = {"BASINWATCH_DATA_DIR": str(work), "BASINWATCH_READ_OPEN": "true",
           "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0",
           "BASINWATCH_DATABASE_URL":
               url if not schema else f"{url}?options=-csearch_path%3D{schema},public"}
    port = _free_port()
    paths = {k: _paths(k, 2000, 7 + i, frame) for i, k in enumerate(("point", "bbox"))}
    server = _serve(env, args.workers, port)
    try:
        base = f"http://127.0.0.1:{port}"
        _warm(base, paths, args.workers)
        for kind in ("point", "bbox"):
            out["runs"][kind] = _wrk(base, paths[kind], args.duration, args.connections, work)
            log.warning("%s %s: %s", name, kind, out["runs"][kind])
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return out


def render(results: list[dict[str, Any]], args: argparse.Namespace, size: int) -> str:
    """Markdown of the load table."""
    lines = [
        "## API under load (wrk)",
        "",
        f"`{' '.join(['python benchmarks/load_api.py', *sys.argv[1:]])}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {size:,} enterprises, uvicorn "
        f"{args.workers} worker process(es) on 127.0.0.1, `wrk -t2 -c{args.connections} "
        f"-d{args.duration}s` from a separate process on the same {os.cpu_count()}-core machine "
        "(load generator and server share the cores). Point lookups: seeded random "
        f"enterprise locations in the Pearl River Delta box {PRD_BOX}; bbox: {BBOX_DEG}° "
        "boxes there, `limit=1000`.",
        "",
        "| store | query | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | "
        "p99 target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        for kind, m in r["runs"].items():
            p99 = m["p99_us"] / 1000
            met = "yes" if p99 < TARGET_MS[kind] and not m["non2xx"] else "no"
            lines.append(
                f"| {r['store']} | {kind} | {m['rps']:,.0f} | {m['p50_us'] / 1000:.1f} | "
                f"{m['p90_us'] / 1000:.1f} | {p99:.1f} | {m['max_us'] / 1000:.0f} | "
                f"{m['socket_errors'] + m['non2xx']} | {TARGET_MS[kind]:.0f} ms | {met} |"
            )
    lines += ["", "| store | ingest rows/s (`load_enterprises`) | full read rows/s |",
              "|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r['store']} | {r['ingest_rps']:,.0f} | {r['read_rps']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--duration", type=int, default=15)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--postgis", default=os.environ.get("BASINWATCH_TEST_DATABASE_URL"))
    p.add_argument("--no-gpkg", action="store_true", help="skip the embedded store")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.smoke:
        args.size, args.duration, args.connections = 5_000, 3, 10
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    from scale import enforcement_frame

    frame = enforcement_frame(args.size)
    results = []
    with tempfile.TemporaryDirectory(prefix="bw-load-") as tmp:
        work = Path(tmp)
        if not args.no_gpkg:
            results.append(_store_run("embedded (GeoPackage)", str(work / "store.gpkg"),
                                      frame, args, work))
        if args.postgis:
            try:
                results.append(_store_run("PostGIS", args.postgis, frame, args, work))
            finally:
                import sqlalchemy

                eng = sqlalchemy.create_engine(args.postgis)
                with eng.begin() as conn:
                    conn.exec_driver_sql("DROP SCHEMA IF EXISTS bw_load CASCADE")
                eng.dispose()
    md = render(results, args, len(frame))
    print(md)
    out = args.out if (args.out or args.smoke) else HERE.parent / "BENCHMARKS.md"
    if out is not None:
        from scale import write_block

        write_block(out, "api-load", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
