"""Hostile clients against the real server while others make normal requests.

Usage::

    .venv/bin/python benchmarks/hostile.py [--size 50000] [--duration 60] [--hostile 10]
        [--normal 4] [--rate-limits] [--out BENCHMARKS.md] [--smoke]

Loads ``size`` classified synthetic enterprises into an embedded store, starts
``basinwatch serve`` (one process, 127.0.0.1 only) and, for ``duration`` seconds:

- ``hostile`` threads send issue 14's worst inputs in turn: a 400-vertex self-intersecting
  polygon (39 s of ``make_valid`` before), the same as ``within=`` of ``/map/area`` and of
  ``/exports/enforcement``, a 100,000-vertex POST, 500-term CQL2 on items / exports /
  ``/map/area``, ``/map/density?cell_m=5e-324``, Infinity coordinates, a whole-world
  polygon in GCJ-02, an xlsx zip bomb, a chunked 2 GB upload and a 199 MB declared upload,
  and hostile polygons whose client hangs up after 0.2 s;
- ``normal`` threads cycle through point look-ups, bbox item pages, map views and radius
  queries and record their latencies.

Memory is the resident set of the server and its geometry workers (``/proc``), sampled
every 0.25 s. Rate limits are off unless ``--rate-limits`` (everything comes from one
address, so they would otherwise answer most hostile requests with 429 and hide the other
bounds). Every loop is bounded by the duration and the server stops at the end. Writes the
``hostile`` block of BENCHMARKS.md; ``--smoke``: 5,000 rows, 5 s, 3 hostile threads, no
file written unless ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

__all__ = ["main"]

KEY = "bench-viewer-key-0123456789abcdef"
TARGETS = {"rss_mb": 1024.0, "p99_ms": 1000.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ring(n: int, seed: int) -> list[list[float]]:
    pts = np.random.default_rng(seed).uniform([116, 23], [117, 24], (n, 2)).tolist()
    return [*pts, pts[0]]


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    row = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>' * 20_000
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", b"<Types/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(b"<worksheet><sheetData>")
            for _ in range(442 * 2**20 // len(row)):
                fh.write(row)
            fh.write(b"</sheetData></worksheet>")
    return buf.getvalue()


class Hostile:
    """The worst inputs of issue 14, as callables taking an httpx client."""

    def __init__(self, base: str) -> None:
        self.base = base
        ring = _ring(400, 1)
        self.poly = {"type": "Polygon", "coordinates": [ring]}
        self.wkt = "POLYGON((" + ",".join(f"{x:.5f} {y:.5f}" for x, y in _ring(250, 2)) + "))"
        self.huge = json.dumps({"type": "Polygon", "coordinates": [_ring(100_000, 3)]})
        self.cql = " AND ".join(f"row<>{i}" for i in range(500))
        self.bomb = _zip_bomb()
        self.cases = [
            ("make_valid 400 vertices", self.within),
            ("map/area within 250-vertex WKT", self.area_wkt),
            ("exports within 250-vertex WKT", self.export_wkt),
            ("100,000-vertex POST", self.huge_post),
            ("CQL2 500 terms: items", lambda c: c.get("/collections/enterprises/items",
                                                      params={"filter": self.cql})),
            ("CQL2 500 terms: exports", lambda c: c.get("/exports/enforcement",
                                                        params={"filter": self.cql,
                                                                "format": "csv"})),
            ("CQL2 500 terms: map/area", lambda c: c.get("/map/area",
                                                         params={"filter": self.cql})),
            ("density cell 5e-324", lambda c: c.get("/map/density",
                                                    params={"cell_m": "5e-324"})),
            ("Infinity coordinates", lambda c: c.post(
                "/query/within", content=b'{"type":"Polygon","coordinates":[[[116,23],'
                b'[117,23],[117,Infinity],[116,23]]]}',
                headers={"Content-Type": "application/json"})),
            ("whole world in GCJ-02", lambda c: c.post(
                "/query/within", params={"crs": "GCJ02"},
                json={"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90],
                                                          [-180, 90], [-180, -90]]]})),
            ("xlsx zip bomb", lambda c: c.post(
                "/registry", files={"file": ("bomb.xlsx", self.bomb, "application/zip")},
                headers={"X-API-Key": KEY})),
            ("chunked 2 GB upload", self.chunked),
            ("199 MB declared upload", self.declared),
            ("client hangs up mid-repair", self.hang_up),
        ]

    def within(self, c: Any) -> Any:
        return c.post("/query/within", json=self.poly)

    def area_wkt(self, c: Any) -> Any:
        return c.get("/map/area", params={"within": self.wkt})

    def export_wkt(self, c: Any) -> Any:
        return c.get("/exports/enforcement", params={"within": self.wkt, "format": "csv"})

    def huge_post(self, c: Any) -> Any:
        return c.post("/query/within", content=self.huge.encode(),
                      headers={"Content-Type": "application/json"})

    def _raw(self, head: bytes, body_iter: Any, deadline: float) -> int:
        host, port = self.base.split("//")[1].split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        answered = threading.Event()
        status = [0]

        def read() -> None:
            try:
                data = sock.recv(4096)
                if data:
                    status[0] = int(data.split(b" ", 2)[1])
            except (OSError, ValueError, IndexError):
                pass
            answered.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            sock.sendall(head)
            for chunk in body_iter:
                if answered.is_set() or time.monotonic() > deadline:
                    break
                sock.sendall(chunk)
        except OSError:
            pass
        answered.wait(timeout=10)
        sock.close()
        return status[0]

    def chunked(self, c: Any) -> int:
        head = (b"POST /registry HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                + f"X-API-Key: {KEY}\r\n\r\n".encode())
        piece = b"a,116.4,23.2\n" * 80_000
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        first = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        start = f"{len(first):x}\r\n".encode() + first + b"\r\n"
        deadline = time.monotonic() + 30
        return self._raw(head, iter([start, *([chunk] * 2000)]), deadline)  # ~2 GB offered

    def declared(self, c: Any) -> int:
        size = 199 * 2**20
        head = (b"POST /registry HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                + f"Content-Length: {size}\r\nX-API-Key: {KEY}\r\n\r\n".encode())
        piece = b"a,116.4,23.2\n" * 80_000
        return self._raw(head, iter([piece] * (size // len(piece))), time.monotonic() + 30)

    def hang_up(self, c: Any) -> int:
        body = json.dumps(self.poly).encode()
        host, port = self.base.split("//")[1].split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"POST /query/within HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.2)
        sock.close()
        return 499


def _normal_paths(frame: Any, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lon, lat = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
    out = []
    for i in rng.integers(0, len(frame), n):
        x, y = lon[i], lat[i]
        kind = rng.integers(0, 4)
        if kind == 0:
            out.append(f"/query/point?lon={x:.5f}&lat={y:.5f}")
        elif kind == 1:
            out.append(f"/collections/enterprises/items?bbox={x - .02:.4f},{y - .02:.4f},"
                       f"{x + .02:.4f},{y + .02:.4f}&limit=100")
        elif kind == 2:
            out.append(f"/map/enterprises?bbox={x - .1:.4f},{y - .1:.4f},{x + .1:.4f},"
                       f"{y + .1:.4f}&zoom=11")
        else:
            out.append(f"/query/radius?lon={x:.5f}&lat={y:.5f}&radius_m=3000&limit=100")
    return out


def _tree_rss_mb(pid: int) -> float:
    """Memory of ``pid`` and every descendant, MB: the sum of their proportional set sizes
    (``Pss`` of ``/proc/<pid>/smaps_rollup``), so pages a just-forked child still shares
    with the server are not counted twice."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            pass
        stack.extend(children.get(p, []))
    return total / 2**20


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, run both kinds of clients, return the measurements."""
    import httpx
    from scale import enforcement_frame

    from api.store import get_store

    frame = enforcement_frame(args.size)
    work = Path(tempfile.mkdtemp(prefix="bw-hostile-"))
    store = get_store(work / "basinwatch.gpkg")
    store.init()
    store.load_enterprises(frame, loaded_by="bench", source_name="synthetic",
                           source_sha256="0" * 64)
    store.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASINWATCH_")}
    env.update({"BASINWATCH_DATA_DIR": str(work),
                "BASINWATCH_API_KEYS": json.dumps({KEY: "viewer"})})
    if not args.rate_limits:
        env.update({"BASINWATCH_RATE_LIMIT_PER_MINUTE": "0",
                    "BASINWATCH_UPLOAD_LIMIT_PER_HOUR": "0"})
    exe = Path(sys.executable).with_name("basinwatch")
    log = (work / "server.log").open("wb")  # a file, not a pipe: an undrained pipe blocks
    server = subprocess.Popen([str(exe), "serve", "--port", str(port), "--no-sample-if-empty"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/conformance", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        hostile = Hostile(base)
        paths = _normal_paths(frame, 4000, 7)
        with httpx.Client(base_url=base, timeout=30) as c:  # warm the normal paths once
            for p in paths[:40]:
                c.get(p)
        load_before = _load_average()
        stop = threading.Event()
        lat: list[float] = []
        normal_errors: list[int] = []
        outcomes: dict[str, dict[int, int]] = {name: {} for name, _ in hostile.cases}
        peak = [_tree_rss_mb(server.pid)]
        base_rss = peak[0]

        def hostile_loop(i: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as c:
                k = i
                while not stop.is_set():
                    name, fn = hostile.cases[k % len(hostile.cases)]
                    k += 1
                    try:
                        r = fn(c)
                        code = r if isinstance(r, int) else r.status_code
                    except httpx.HTTPError:
                        code = 0
                    outcomes[name][code] = outcomes[name].get(code, 0) + 1

        def normal_loop(i: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                k = i * 997
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        r = c.get(paths[k % len(paths)])
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    lat.append(time.perf_counter() - t0)
                    if not ok:
                        normal_errors.append(1)
                    k += 1

        def sample() -> None:
            while not stop.is_set():
                peak.append(_tree_rss_mb(server.pid))
                time.sleep(0.25)

        threads = ([threading.Thread(target=hostile_loop, args=(i,)) for i in range(args.hostile)]
                   + [threading.Thread(target=normal_loop, args=(i,)) for i in range(args.normal)]
                   + [threading.Thread(target=sample)])
        t_start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.duration)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        elapsed = time.monotonic() - t_start
        load_after = _load_average()
        alive = server.poll() is None
        arr = np.array(lat) * 1000
        return {
            "size": len(frame), "duration": elapsed, "hostile": args.hostile,
            "normal": args.normal, "rate_limits": args.rate_limits,
            "load_before": load_before, "load_after": load_after,
            "rss_base_mb": base_rss, "rss_peak_mb": max(peak),
            "normal_requests": len(arr), "normal_errors": len(normal_errors),
            "p50_ms": float(np.percentile(arr, 50)) if len(arr) else float("nan"),
            "p99_ms": float(np.percentile(arr, 99)) if len(arr) else float("nan"),
            "max_ms": float(arr.max()) if len(arr) else float("nan"),
            "outcomes": outcomes, "server_alive": alive,
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        errors = (work / "server.log").read_text(errors="replace").count("unexpected ")
        if errors:
            print(f"server log: {errors} unexpected errors", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


def render(m: dict[str, Any]) -> str:
    """Markdown of the measurements."""
    met_rss = m["rss_peak_mb"] < TARGETS["rss_mb"]
    met_p99 = m["p99_ms"] < TARGETS["p99_ms"] and m["normal_errors"] == 0
    lines = [
        "## Hostile input (issue 14)",
        "",
        f"`{' '.join(['python benchmarks/hostile.py', *sys.argv[1:]])}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {m['size']:,} enterprises (embedded "
        f"store), `basinwatch serve` (one process, default limits, rate limits "
        f"{'on' if m['rate_limits'] else 'off'}) on 127.0.0.1; {m['hostile']} hostile and "
        f"{m['normal']} normal client threads for {m['duration']:.0f} s from the same "
        f"{os.cpu_count()}-core machine (shared with other developers: load average "
        f"{m['load_before']} before, {m['load_after']} after).",
        "",
        "| measure | value | target | met |",
        "|---|---:|---:|---|",
        f"| server + geometry workers, peak memory (sum of PSS) | {m['rss_peak_mb']:,.0f} MB "
        f"(idle {m['rss_base_mb']:,.0f} MB) | < {TARGETS['rss_mb']:,.0f} MB | "
        f"{'yes' if met_rss else 'no'} |",
        f"| normal requests answered | {m['normal_requests']:,} ({m['normal_errors']} "
        "errors) | no errors | " + ("yes" if m["normal_errors"] == 0 else "no") + " |",
        f"| normal requests p50 / p99 / max | {m['p50_ms']:.0f} / {m['p99_ms']:.0f} / "
        f"{m['max_ms']:.0f} ms | p99 < {TARGETS['p99_ms']:,.0f} ms | "
        f"{'yes' if met_p99 else 'no'} |",
        f"| server still up at the end | {'yes' if m['server_alive'] else 'NO'} | yes | "
        f"{'yes' if m['server_alive'] else 'no'} |",
        "",
        "Answers to the hostile requests (status: count; 0 = client-side timeout, 499 = the "
        "client hung up on purpose):",
        "",
        "| hostile input | answers |",
        "|---|---|",
    ]
    for name, codes in m["outcomes"].items():
        text = ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) or "not reached"
        lines.append(f"| {name} | {text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=50_000)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--hostile", type=int, default=10)
    p.add_argument("--normal", type=int, default=4)
    p.add_argument("--rate-limits", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.duration, args.hostile, args.normal = 5_000, 5, 3, 2
    m = run(args)
    md = render(m)
    print(md)
    out = args.out if (args.out or args.smoke) else HERE.parent / "BENCHMARKS.md"
    if out is not None:
        from _blocks import write_block

        write_block(out, "hostile", md)
    if not m["server_alive"]:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
