"""BasinWatch's OGC API – Features against pygeoapi on the same data and requests (issue 15).

Usage::

    .venv/bin/python benchmarks/pygeoapi_compare.py [--size 200000] [--duration 15]
        [--connections 20] [--postgis URL] [--work /tmp/bw-pygeoapi-cmp] [--out BENCHMARKS.md]
        [--smoke] [--only gpkg|postgis] [--kinds item,limit10] [--no-lean]

``--no-lean`` serves BasinWatch's ``items/{id}`` and plain pages (``limit10``, ``filter``)
through the FastAPI route only (``api.itemfast`` off), for before/after comparisons.

One command: makes ``size`` classified synthetic enterprises, loads them into the embedded
store (one ``.gpkg``) and into PostGIS (schema ``bw_cmp`` of ``--postgis``, default
``BASINWATCH_TEST_DATABASE_URL``), installs pygeoapi into its own virtual environment under
``/tmp`` (``pip install pygeoapi``; GDAL's Python bindings come from the system,
Debian ``python3-gdal``, through ``--system-site-packages``), writes a pygeoapi
configuration serving the same ``.gpkg`` through its OGR provider and the same table through
its PostgreSQL provider, and runs each server alone (one uvicorn worker) under
``wrk -t2 -c20 -d15s`` with the same request list per row:

- ``bbox``: seeded 0.05° boxes in the Pearl River Delta, ``limit=1000``;
- ``limit10``: ``limit=10`` at seeded offsets below 1,000;
- ``item``: ``items/{id}`` of seeded ids;
- ``filter``: ``verdict=<value>&limit=100`` (a property as query parameter, both servers).

Prints the table (requests/s and the ratio BasinWatch ÷ pygeoapi, with the load average;
CPU milliseconds per request of the server process and, for the PostGIS pair, of the
PostgreSQL server's processes, from ``/proc`` over each ``wrk`` run: on a shared machine
these move much less with the load than the rates) and writes it between ``<!-- begin:pygeoapi -->`` / ``<!-- end:pygeoapi -->`` of
``--out``. Nothing is written into the repository unless ``--out`` is given.
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
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from load_api import LUA, PRD_BOX  # noqa: E402

__all__ = ["main"]

log = logging.getLogger(__name__)

VENV = Path("/tmp/bw-pygeoapi-venv")
SCHEMA = "bw_cmp"
KINDS = ("bbox", "limit10", "item", "filter")
LABELS = {"bbox": "items bbox 0.05°, limit 1000", "limit10": "items limit 10",
          "item": "items/{id}", "filter": "property filter (verdict), limit 100"}
TARGET_RATIO = 3.0
#: pygeoapi plus what its Starlette app and PostgreSQL provider import
#: pygeoapi's server gets the same C HTTP parser and event loop as BasinWatch's (uvicorn
#: uses httptools and uvloop when installed), so the comparison is of the servers' own work.
PYGEOAPI_PACKAGES = ("pygeoapi", "uvicorn", "httptools", "uvloop", "starlette",
                     "psycopg2-binary", "sqlalchemy", "geoalchemy2", "pygeofilter")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 60.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _venv() -> Path:
    """pygeoapi's own environment under /tmp (created once)."""
    py = VENV / "bin" / "python"
    probe = [str(py), "-c", "import pygeoapi, uvicorn, httptools, uvloop, starlette, psycopg2, geoalchemy2, "
             "pygeofilter; from osgeo import ogr"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    system_py = "/usr/bin/python3"  # Debian's, whose site-packages hold python3-gdal
    subprocess.run([system_py, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PYGEOAPI_PACKAGES], check=True)
    subprocess.run(probe, check=True)
    return py


def _pg_parts(url: str) -> dict[str, Any]:
    u = urllib.parse.urlsplit(url.replace("+psycopg", ""))
    return {"host": u.hostname or "127.0.0.1", "port": u.port or 5432,
            "dbname": u.path.lstrip("/"), "user": u.username or "postgres",
            "password": urllib.parse.unquote(u.password or "")}


def _pygeoapi_config(gpkg: Path, pg_url: str | None, port: int) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    common = {"type": "collection", "title": "enterprises", "description": "enterprises",
              "keywords": ["enterprises"],
              "extents": {"spatial": {"bbox": [109.6, 20.2, 117.4, 25.6],
                                      "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
              "links": []}
    resources["ent_ogr"] = {**common, "providers": [{
        "type": "feature", "name": "OGR", "id_field": "fid", "layer": "enterprises",
        "data": {"source_type": "GPKG", "source": str(gpkg), "source_srs": "EPSG:4326",
                 "target_srs": "EPSG:4326", "source_capabilities": {"paging": True},
                 "gdal_ogr_options": {}}}]}
    if pg_url:
        resources["ent_pg"] = {**common, "providers": [{
            "type": "feature", "name": "PostgreSQL", "id_field": "fid",
            "table": "enterprises", "geom_field": "geometry",
            "data": {**_pg_parts(pg_url), "search_path": [SCHEMA, "public"]}}]}
    return {
        "server": {"bind": {"host": "127.0.0.1", "port": port},
                   "url": f"http://127.0.0.1:{port}", "mimetype": "application/json; "
                   "charset=UTF-8", "encoding": "utf-8", "language": "en-US",
                   "limits": {"default_items": 10, "max_items": 1000},
                   "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                           "attribution": "OSM"}},
        "logging": {"level": "ERROR"},
        "metadata": {"identification": {"title": "cmp", "description": "cmp",
                                        "keywords": ["cmp"], "keywords_type": "theme",
                                        "terms_of_service": "none", "url": "http://x"},
                     "license": {"name": "CC-BY 4.0", "url": "http://x"},
                     "provider": {"name": "x", "url": "http://x"},
                     "contact": {"name": "x", "position": "x", "address": "x",
                                 "city": "x", "stateorprovince": "x", "postalcode": "x",
                                 "country": "x", "phone": "x", "fax": "x",
                                 "email": "x@example.org", "url": "http://x",
                                 "hours": "x", "instructions": "x", "role": "pointOfContact"}},
        "resources": resources,
    }


def _paths(kind: str, collection: str, n: int, seed: int, n_rows: int,
           verdicts: list[str]) -> list[str]:
    rng = np.random.default_rng(seed)
    base = f"/collections/{collection}/items"
    if kind == "bbox":
        x0, y0, x1, y1 = PRD_BOX
        xs, ys = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
        return [f"{base}?bbox={a:.4f},{b:.4f},{a + 0.05:.4f},{b + 0.05:.4f}&limit=1000&f=json"
                for a, b in zip(xs, ys, strict=True)]
    if kind == "limit10":
        return [f"{base}?limit=10&offset={o}&f=json" for o in rng.integers(0, 1000, n)]
    if kind == "item":
        return [f"{base}/{i}?f=json" for i in rng.integers(1, n_rows + 1, n)]
    return [f"{base}?verdict={urllib.parse.quote(verdicts[i % len(verdicts)])}&limit=100&f=json"
            for i in range(n)]


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes (those still running)."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two :func:`_cpu_s` readings by the processes running at
    the second (a process started in between counts whole; one that exited is missed)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _children(ppid: int) -> list[int]:
    """The processes whose parent is ``ppid`` (PostgreSQL's backends of a postmaster)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _postmaster(pg_url: str) -> int | None:
    """The PostgreSQL server process of ``pg_url`` (parent of a backend), if local."""
    import sqlalchemy

    try:
        eng = sqlalchemy.create_engine(pg_url)
        with eng.connect() as conn:
            backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            stat = Path(f"/proc/{backend}/stat").read_text()
        eng.dispose()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except Exception:  # noqa: BLE001 - a remote server: no database CPU figures
        return None


def _wrk(base: str, paths: list[str], args: argparse.Namespace, work: Path,
         server_pid: int | None = None, db_pid: int | None = None) -> dict[str, Any]:
    plist = work / "paths.txt"
    plist.write_text("\n".join(paths) + "\n", encoding="utf-8")
    script = work / "load.lua"
    script.write_text(LUA, encoding="utf-8")
    cmd = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
           "-s", str(script), base]
    server = [server_pid] if server_pid else []
    db = _children(db_pid) if db_pid else []
    cpu0, db0 = _cpu_s(server), _cpu_s(db)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60,
                         env={**os.environ, "BW_PATHS": str(plist)}, check=True)
    db = sorted(set(db) | set(_children(db_pid) if db_pid else []))
    cpu1, db1 = _cpu_s(server), _cpu_s(db)
    cpu, db_cpu = _cpu_delta(cpu0, cpu1), _cpu_delta(db0, db1)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("BWJSON "))
    out = json.loads(line[len("BWJSON "):])
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    out["load"] = os.getloadavg()[0]
    n = max(out["requests"], 1)
    out["cpu_ms"] = cpu * 1000 / n if server else None
    # backends that exited during the run are missed; pooled connections stay open
    out["db_cpu_ms"] = db_cpu * 1000 / n if db_pid else None
    return out


def _wait(base: str, probe: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if _get(base + probe, timeout=10)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{base} did not answer {probe} within 300 s")


def _check(base: str, paths: dict[str, list[str]]) -> None:
    """Both servers must answer the same requests with the same features."""
    for kind, plist in paths.items():
        for p in plist[:3]:
            status, body = _get(base + p)
            if status != 200:
                raise RuntimeError(f"{base}{p}: HTTP {status} {body[:300]!r}")
            doc = json.loads(body)
            if kind != "item" and doc.get("numberReturned", len(doc["features"])) == 0:
                log.warning("%s%s returned no features", base, p)


def _run_server(name: str, cmd: list[str], env: dict[str, str], port: int,
                paths: dict[str, list[str]], args: argparse.Namespace, work: Path,
                db_pid: int | None = None) -> dict[str, dict[str, Any]]:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, paths["item"][0], proc)
        _check(base, paths)
        out = {}
        for kind in args.kinds:
            for p in paths[kind][:20]:  # warm caches, connections and prepared plans
                _get(base + p)
            out[kind] = _wrk(base, paths[kind], args, work, proc.pid, db_pid)
            log.warning("%s %s: %.0f req/s p99 %.1f ms (non-2xx %d, load %.1f, CPU ms per "
                        "request: server %.2f, PostgreSQL %s)", name, kind,
                        out[kind]["rps"], out[kind]["p99_us"] / 1000, out[kind]["non2xx"],
                        out[kind]["load"], out[kind]["cpu_ms"] or 0,
                        "-" if out[kind]["db_cpu_ms"] is None
                        else f"{out[kind]['db_cpu_ms']:.2f}")
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _load_data(args: argparse.Namespace, work: Path) -> tuple[Path, int, list[str]]:
    """The .gpkg (and the PostGIS table) with ``size`` enterprises; reused when present."""
    from api.store import get_store
    from api.store.base import FeatureQuery

    gpkg = work / "store.gpkg"
    marker = work / f"loaded-{args.size}-{bool(args.postgis)}.json"
    if marker.exists() and gpkg.exists():
        meta = json.loads(marker.read_text())
        return gpkg, meta["rows"], meta["verdicts"]
    from scale import enforcement_frame

    frame = enforcement_frame(args.size)
    store = get_store(str(gpkg))
    store.init()
    store.load_enterprises(frame, loaded_by="bench", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    rows = len(store.query(FeatureQuery(limit=1)).features) and len(frame)
    if args.postgis:
        import sqlalchemy

        eng = sqlalchemy.create_engine(args.postgis)
        with eng.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        eng.dispose()
        pg = get_store(args.postgis, schema=SCHEMA)
        pg.init()
        pg.load_enterprises(frame, loaded_by="bench", source_name="synthetic.csv",
                            source_sha256="0" * 64)
        pg.close()
    verdicts = [v for v, _ in frame["verdict"].value_counts().items() if v][:4]
    marker.write_text(json.dumps({"rows": rows, "verdicts": verdicts}))
    return gpkg, rows, verdicts


def render(results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace,
           rows: int) -> str:
    """Markdown of the comparison."""
    pairs = [(title, bw, other) for title, bw, other in (
        ("embedded GeoPackage store vs pygeoapi OGR provider (same .gpkg)", "bw_gpkg",
         "pg_ogr"),
        ("PostGIS store vs pygeoapi PostgreSQL provider (same table)", "bw_pg", "pg_pg"),
    ) if bw in results and other in results]
    lines = [
        "## BasinWatch vs pygeoapi (OGC API – Features)",
        "",
        f"`python benchmarks/pygeoapi_compare.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
        f"UTC: {rows:,} enterprises, each server alone with one uvicorn worker, "
        f"`wrk -t2 -c{args.connections} -d{args.duration}s` on the same "
        f"{os.cpu_count()}-core machine, the same request list for both (collection name "
        "aside). Cells: BasinWatch req/s / pygeoapi req/s = ratio (target ≥ "
        f"{TARGET_RATIO:g}×); 1-minute load average during each run in brackets (the "
        "machine is shared: the ratios are steadier than the rates).",
        "",
        "| request | " + " | ".join(p[0] for p in pairs) + " |",
        "|---|" + "---:|" * len(pairs),
    ]
    for kind in args.kinds:
        cells = []
        for _, bw, other in pairs:
            a, b = results[bw][kind], results[other][kind]
            ratio = a["rps"] / b["rps"] if b["rps"] else float("inf")
            cells.append(f"{a['rps']:,.0f} [{a['load']:.1f}] / {b['rps']:,.0f} "
                         f"[{b['load']:.1f}] = **{ratio:.1f}×**")
        lines.append(f"| {LABELS[kind]} | " + " | ".join(cells) + " |")
    lines += ["", "p99 ms (BasinWatch / pygeoapi): " + "; ".join(
        f"{bw} {kind} {results[bw][kind]['p99_us'] / 1000:.0f} / "
        f"{results[other][kind]['p99_us'] / 1000:.0f}"
        for _, bw, other in pairs for kind in args.kinds)]

    def cpu(r: dict[str, Any]) -> str:
        db = "" if r.get("db_cpu_ms") is None else f" + {r['db_cpu_ms']:.2f}"
        return f"{r['cpu_ms']:.2f}{db}"

    lines += ["", "CPU ms per request, server process (+ PostgreSQL server processes), "
                  "BasinWatch / pygeoapi: " + "; ".join(
                      f"{bw} {kind} {cpu(results[bw][kind])} / {cpu(results[other][kind])}"
                      for _, bw, other in pairs for kind in args.kinds)]
    if args.no_lean:
        lines += ["", "BasinWatch ran with `--no-lean` (items/{id} and plain pages through "
                      "the FastAPI route only)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=200_000)
    p.add_argument("--duration", type=int, default=15)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--postgis", default=os.environ.get("BASINWATCH_TEST_DATABASE_URL"))
    p.add_argument("--work", type=Path, default=Path("/tmp/bw-pygeoapi-cmp"))
    p.add_argument("--only", choices=("gpkg", "postgis"), default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"comma-separated rows to run (default: all of {','.join(KINDS)})")
    p.add_argument("--no-lean", action="store_true",
                   help="BasinWatch's items/{id} and plain pages through the FastAPI route only")
    args = p.parse_args(argv)
    args.kinds = [k for k in KINDS if k in args.kinds.split(",")]
    if not args.kinds:
        p.error(f"--kinds: expected some of {','.join(KINDS)}")
    logging.basicConfig(level=logging.WARNING)
    if args.smoke:
        args.size, args.duration = 5_000, 3
        args.work = args.work.with_name(args.work.name + "-smoke")
        global SCHEMA
        SCHEMA = "bw_cmp_smoke"
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    py = _venv()
    gpkg, rows, verdicts = _load_data(args, args.work)
    pg_url = args.postgis if args.only != "gpkg" else None
    if args.only == "postgis" and not pg_url:
        print("--only postgis needs --postgis URL", file=sys.stderr)
        return 2
    port = _free_port()
    cfg = args.work / "pygeoapi.config.yml"
    import yaml

    cfg.write_text(yaml.safe_dump(_pygeoapi_config(gpkg, args.postgis, port),
                                  allow_unicode=True), encoding="utf-8")
    oas = args.work / "pygeoapi.openapi.yml"
    genv = {"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(oas)}
    subprocess.run([str(VENV / "bin" / "pygeoapi"), "openapi", "generate", str(cfg),
                    "--output-file", str(oas)], check=True, env={**os.environ, **genv},
                   capture_output=True)
    uv = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1",
          "--log-level", "warning", "--no-access-log"]
    bw_env = {"BASINWATCH_DATA_DIR": str(args.work), "BASINWATCH_READ_OPEN": "true",
              "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0",
              "BW_NO_LEAN_ITEMS": "1" if args.no_lean else "0"}
    bw_cmd = [sys.executable, "-m", "uvicorn", "load_api:app_factory", "--factory",
              "--app-dir", str(HERE), *uv]
    pg_cmd = [str(py), "-m", "uvicorn", "pygeoapi.starlette_app:APP", *uv]
    runs = []
    if args.only != "postgis":
        runs += [("bw_gpkg", bw_cmd, {**bw_env, "BASINWATCH_DATABASE_URL": str(gpkg)},
                  "enterprises"), ("pg_ogr", pg_cmd, genv, "ent_ogr")]
    if pg_url:
        bw_pg_url = f"{pg_url}?options=-csearch_path%3D{SCHEMA},public"
        runs += [("bw_pg", bw_cmd, {**bw_env, "BASINWATCH_DATABASE_URL": bw_pg_url},
                  "enterprises"), ("pg_pg", pg_cmd, genv, "ent_pg")]
    results = {}
    db_pid = _postmaster(pg_url) if pg_url else None
    for name, cmd, env, coll in runs:
        paths = {k: _paths(k, coll, 2000, 11 + i, rows, verdicts) for i, k in enumerate(KINDS)}
        results[name] = _run_server(name, cmd, env, port, paths, args, args.work,
                                    db_pid if name in ("bw_pg", "pg_pg") else None)
    md = render(results, args, rows)
    print(md)
    if args.out is not None:
        from scale import write_block

        write_block(args.out, "pygeoapi", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
