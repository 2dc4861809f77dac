"""Web map benchmark: first render and pan/zoom of the enterprise vector tiles at 1M.

Loads N enterprises (default 1 000 000: the pipeline output for a 2 000-row synthetic
registry, replicated with seeded jitter of up to ~1 km) into an embedded GeoPackage store,
serves the API with uvicorn on a free 127.0.0.1 port and drives headless Chromium
(Debian ``chromium`` + ``chromium-driver``, selenium) through a fixed tour of views. All
times are measured in the browser (``performance.now()``):

- first render: navigation start -> every enterprise tile of the first view drawn;
- per view: request + decode + draw of every tile of the view (from the view change to the
  tile layer's ``load`` event), and the slowest tile request alone (Resource Timing),
  with the number of tiles, features (bins x verdicts) and bytes.

Results go to ``BENCHMARKS.md`` between ``<!-- begin:map -->`` and ``<!-- end:map -->``
(the block is appended when absent; the rest of the file is left alone)::

    python benchmarks/map_bench.py [--n 1000000] [--repeat 3] [--keep-store DIR]
                                   [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import datetime as dt
import logging
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from _blocks import write_block  # the script's folder is on sys.path

__all__ = ["make_enterprises", "run", "main"]

log = logging.getLogger(__name__)

BEGIN, END = "<!-- begin:map -->", "<!-- end:map -->"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,900")
#: (label, lat, lon, zoom): province -> Pearl River delta -> Lianjiang -> streets, and pans.
TOUR: tuple[tuple[str, float, float, int], ...] = (
    ("province z7", 23.2, 113.6, 7),
    ("delta z9", 22.9, 113.7, 9),
    ("pan delta z9", 23.1, 114.1, 9),
    ("Lianjiang z10", 23.3, 116.3, 10),
    ("Lianjiang z12", 23.27, 116.4, 12),
    ("pan z12", 23.24, 116.5, 12),
    ("town z14", 23.27, 116.43, 14),
    ("pan z14", 23.29, 116.40, 14),
    ("street z16", 23.27, 116.43, 16),
    ("back out z8", 23.0, 114.0, 8),
)


def make_enterprises(n: int, *, seed: int = 2019, base_rows: int = 2000) -> gpd.GeoDataFrame:
    """``n`` classified enterprises: pipeline output replicated with seeded jitter."""
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_registry, write_registry

    tmp = Path(tempfile.mkdtemp(prefix="bw-mapbench-"))
    try:
        path = write_registry(synthetic_registry(base_rows, seed=seed), tmp / "registry.csv")
        base = run_pipeline(path).enterprises.reset_index(drop=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=n)
    out = base.iloc[idx].reset_index(drop=True)
    lon = out["lon"].to_numpy() + rng.uniform(-0.01, 0.01, n)
    lat = out["lat"].to_numpy() + rng.uniform(-0.01, 0.01, n)
    out["lon"], out["lat"] = lon, lat
    out["uscc"] = pd.Series(np.arange(n)).map(lambda i: f"BENCH{i:013d}")
    return gpd.GeoDataFrame(out.drop(columns="geometry"),
                            geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(drv: Any, script: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = drv.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(script)


#: Per view, read in the page: tiles requested, features, bytes, request + draw (view change
#: -> tile layer ``load``), main-thread decode and draw of the tiles (tiles.js stats), the
#: slowest tile request (Resource Timing) and the slowest server time (Server-Timing).
_VIEW_JS = """
// per tile, ms from the view change: fetch() called, request sent (after any wait for a
// connection), first byte, last byte (Resource Timing), bytes in the page, decoded, drawn
function trace(entries, log, v0) {
  return log.map(function (l) {
    var e = entries.filter(function (x) { return x.name.slice(-l.url.length) === l.url; })[0];
    function r(x) { return x === undefined || x === null ? null : +(x - v0).toFixed(1); }
    return {fetch: r(l.fetch), start: r(e && e.startTime), sent: r(e && e.requestStart),
            first: r(e && e.responseStart), last: r(e && e.responseEnd), bytes: r(l.bytes),
            decoded: r(l.decoded), drawn: r(l.drawn), server: e ? srv(e) : null};
  });
}
var t = performance.getEntriesByType('resource').filter(function (x) {
  return x.name.indexOf('/tiles/WebMercatorQuad/') >= 0; });
var s = bw.layers.enterprises.stats;
function srv(x) { var e = (x.serverTiming || []).filter(function (y) {
  return y.name === 'tile'; }); return e.length ? e[0].duration : 0; }
return {tiles: t.length, features: bw.layers.enterprises.drawnFeatures(), bytes: s.bytes,
        drawn: bw.state.lastMs, painted: bw.state.paintedMs, decode: s.decodeMs || 0, draw: s.drawMs || 0,
        worker: s.workerMs || 0,
        request: t.length ? Math.max.apply(null, t.map(function (x) {
          return x.duration; })) : null,
        server: t.length ? Math.max.apply(null, t.map(srv)) : null,
        trace: trace(t, s.log || [], window.__bwV0 || 0)};
"""



def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and its descendants (Linux /proc)."""
    procs: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += procs.get(pid, (0, 0.0))[1]
        todo += [c for c, (pp, _cpu) in procs.items() if pp == pid]
    return total


def run(n: int, repeat: int, *, plugins: bool = False,
        keep: Path | None = None, workers: bool = False, lean: bool = True,
        tile_px: int | None = None) -> dict[str, Any]:
    """Serve ``n`` enterprises and measure the map in headless Chromium (``keep``: a folder
    whose store is reused when present, else made there and kept; ``lean=False``: every
    tile through the FastAPI route, without the lean path of :mod:`api.tilefast`)."""
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    try:
        import api.tilefast as tilefast
    except ImportError:  # an older tree measured with this script (A/B): no lean path
        tilefast = None
    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store

    if tilefast is not None:
        tilefast.ENABLED = lean
    import api.tiles

    if tile_px and hasattr(api.tiles, "WARM_PX"):
        api.tiles.WARM_PX = tile_px  # the server warms what the page will ask for

    if not plugins:  # the map alone: no plug-in layers (cases) loading beside it
        import functools

        import layers.webmap as lw

        lw.build_app_page = functools.partial(lw.build_app_page, plugins=False)
    load_start = os.getloadavg()
    t = time.perf_counter()
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bw-mapbench-store-"))
    reuse = keep is not None and (tmp / "store.gpkg").exists()
    store = get_store(tmp / "store.gpkg")
    store.init()
    if reuse:
        log.info("reusing the store in %s", tmp)
    else:
        store.load_enterprises(make_enterprises(n), loaded_by="bench", source_name="bench",
                               source_sha256="0")
        log.info("loaded %d enterprises in %.1f s", n, time.perf_counter() - t)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(Settings(data_dir=tmp), store=store),
                                        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    profile = tempfile.mkdtemp(prefix="bw-mapbench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    first: list[float] = []
    views: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in TOUR}
    t_index = time.perf_counter()
    from api.tiles import point_index
    from api.routers.tiles import _verdicts

    n = len(point_index(store, [v for v, _l, _c in _verdicts()]))  # as the first tile would
    index_s = time.perf_counter() - t_index
    # the server warms the unfiltered map's tiles after startup (api.tiles.warm_tiles, in
    # the background): the tour starts once that is done, as a planner's first look would
    # some seconds after a load
    t_warm = time.perf_counter()
    warm_s = None
    if hasattr(api.tiles, "warm_tiles"):  # (an older tree has no warm-up)
        api.tiles.warm_tiles(store, [v for v, _l, _c in _verdicts()], wait=True)
        warm_s = time.perf_counter() - t_warm
    try:
        base = f"http://127.0.0.1:{port}/map" + (f"?tile={tile_px}" if tile_px else "")
        drv.get(base)  # warm caches (layer GeoJSON, store frame)
        _wait(drv, "window.bw && bw.state.ready")
        drv.execute_cdp_cmd("Network.clearBrowserCache", {})
        cpu0 = (time.process_time(), _tree_cpu(drv.service.process.pid), time.perf_counter())
        for run_no in range(repeat):
            drv.get("about:blank")
            drv.get(base)
            first.append(float(_wait(drv, "window.bw && bw.state.ready && bw.state.readyAt")))
            _wait(drv, "!bw.state.pending")
            if workers:  # the tour's tiles decoded and painted in the worker pool (opt-in)
                drv.execute_script("BasinWatchTiles.useWorkers();")
            for label, lat, lon, zoom in TOUR:
                drv.execute_script("bw.state.lastMs = null; bw.state.paintedMs = -1;"
                                   "bw.timings.length = 0;"
                                   "performance.clearResourceTimings();"
                                   "var s = bw.layers.enterprises.stats;"
                                   "s.bytes = 0; s.decodeMs = 0; s.drawMs = 0; s.workerMs = 0; s.log = [];"
                                   "window.__bwV0 = performance.now();"
                                   "bw.map.setView([arguments[0], arguments[1]], arguments[2],"
                                   " {animate: false});", lat, lon, zoom)
                _wait(drv, "bw.state.lastMs !== null && !bw.state.pending && "
                           "bw.state.paintedMs !== null")
                time.sleep(0.05)
                res = drv.execute_script(_VIEW_JS)
                res["run"] = run_no
                views[label].append(res)
            # the next run requests every tile again (server cache warm, browser cache not)
            drv.execute_cdp_cmd("Network.clearBrowserCache", {})
        cpu = {"server": time.process_time() - cpu0[0],
               "browser": _tree_cpu(drv.service.process.pid) - cpu0[1],
               "wall": time.perf_counter() - cpu0[2]}
    finally:
        drv.quit()
        srv.should_exit = True
        thread.join(timeout=10)
        store.close()
        shutil.rmtree(profile, ignore_errors=True)
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"n": n, "repeat": repeat, "first": first, "views": views, "index_s": index_s,
            "warm_s": warm_s,
            "workers": workers, "lean": lean and tilefast is not None,
            "tile_px": tile_px or 1024,
            "lean_stats": dict(tilefast.LEAN_STATS) if tilefast else None,
            "cpu": cpu,
            "load": os.getloadavg(), "load_start": load_start, "plugins": plugins}


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}"


def _pct(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.0f} / {np.percentile(values, 95):.0f}"


def _painted(r: dict[str, Any]) -> float:
    """View change -> frame with every tile produced (the load time when no tile loaded)."""
    p = r.get("painted")
    return float(p) if p is not None and p >= 0 else float(r["drawn"])


def summary(views: dict[str, list[dict[str, Any]]]) -> list[str]:
    """p50 / p95 of request + draw over every view change, split into the page's main-thread
    decode + draw of the tiles and the rest (requests, server, Leaflet), for all runs and for
    the first run alone (server tile cache cold)."""
    runs = [r for rs in views.values() for r in rs]
    out = ["| view changes | n | request + draw p50 / p95 ms | ... to the painted frame "
           "p50 / p95 ms | decode + draw p50 / p95 ms | rest (requests, server, Leaflet) "
           "p50 / p95 ms | slowest server p50 / p95 ms |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, sel in (("all runs", runs), ("first run (server cache cold)",
                                          [r for r in runs if r.get("run") == 0])):
        if not sel:
            continue
        total = [r["drawn"] for r in sel]
        client = [r["decode"] + r["draw"] for r in sel]
        rest = [max(t - c, 0.0) for t, c in zip(total, client, strict=True)]
        srv = [r["server"] or 0.0 for r in sel]
        out.append(f"| {name} | {len(sel)} | {_pct(total)} | "
                   f"{_pct([_painted(r) for r in sel])} | {_pct(client)} | {_pct(rest)} | "
                   f"{_pct(srv)} |")
    p95 = float(np.percentile([r["drawn"] for r in runs], 95))
    p95p = float(np.percentile([_painted(r) for r in runs], 95))
    out += ["", f"Pan/zoom over the whole tour ({len(runs)} view changes): "
                f"**p95 request + draw {p95:.0f} ms** to the tile layer's load event, "
                f"{p95p:.0f} ms to the frame showing it (target < 200 ms)."]
    return out


#: Steps of a tile's timeline (see ``_VIEW_JS``): (column, from, to).
_STEPS = (("to fetch()", None, "fetch"), ("wait for a connection", "fetch", "sent"),
          ("server (first byte)", "sent", "first"), ("transfer", "first", "last"),
          ("main thread busy", "last", "bytes"),
          ("decode + draw (worker, with its queue; main thread without workers)", "bytes",
           "decoded"),
          ("onto the canvas (main thread)", "decoded", "drawn"))


def critical_path(r: dict[str, Any]) -> dict[str, float] | None:
    """The view's last tile drawn, step by step (ms; ``None`` without a complete trace):
    where the view's request + draw time went."""
    tr = [t for t in r.get("trace") or [] if None not in (t["fetch"], t["sent"], t["first"],
                                                          t["last"], t["bytes"], t["drawn"])]
    if not tr:
        return None
    last = max(tr, key=lambda t: t["drawn"])
    out = {name: max(0.0, last[b] - (last[a] if a else 0.0)) for name, a, b in _STEPS}
    out["after (Leaflet load)"] = max(0.0, float(r["drawn"]) - last["drawn"])
    out["main-thread decode + draw, all tiles"] = float(r["decode"] + r["draw"])
    return out


def breakdown(views: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per view, the median over the runs of each step of the last tile drawn."""
    names = [n for n, _a, _b in _STEPS] + ["after (Leaflet load)"]
    out = ["| view (last tile drawn) | " + " | ".join(names) + " |",
           "|---|" + "---:|" * len(names)]
    for label, runs in views.items():
        paths = [p for p in map(critical_path, runs) if p is not None]
        if paths:
            out.append(f"| {label} | " + " | ".join(
                _ms([p[n] for p in paths]) for n in names) + " |")
    return out


def render(res: dict[str, Any]) -> str:
    """The Markdown block."""
    load = ", ".join(f"{x:.2f}" for x in res["load"])
    load0 = ", ".join(f"{x:.2f}" for x in res.get("load_start", ()))
    lines = [
        BEGIN,
        "## Web map (served page, headless Chromium)",
        "",
        f"`python benchmarks/map_bench.py --n {res['n']} --repeat {res['repeat']}"
        + (f" --tile-px {res['tile_px']}" if res.get("tile_px", 1024) != 1024 else "")
        + ("" if res.get("lean", True) else " --no-lean")
        + (" --workers" if res.get("workers") else "") + "` on "
        f"{dt.date.today().isoformat()}, {platform.machine()}, Python "
        f"{platform.python_version()}, embedded GeoPackage store, {res['n']:,} enterprises "
        f"(2,000 pipeline rows replicated with ~1 km jitter); load average at the start "
        f"{load0}, at the end {load} on 2 shared cores; times measured in the browser, median of the repeats.",
        "",
        "Enterprises are OGC API – Tiles vector tiles (MVT, one feature per 4 px bin and "
        f"verdict; the page asks for {res.get('tile_px', 1024)} px tiles"
        + ("" if res.get("lean", True) else "; every tile through the FastAPI route, "
           "`--no-lean`") + ") decoded and drawn on canvas; every "
        "matching enterprise is in the tiles at every zoom. "
        + ("Page with its plug-ins." if res.get("plugins") else
           "Page without plug-ins (`--plugins` adds them: the case layer of issue 11 then "
           "builds cases for every enterprise at the first page load).")
        + (" Tour tiles decoded and painted in Web Workers (`--workers`: tile_worker.js; the "
           "main thread puts the pixels on the canvas)." if res.get("workers") else
           " Tiles decoded and painted on the main thread (the page's default)."),
        "",
        f"- **Time to first render** (navigation start -> every tile of the first view "
        f"drawn, reference layers loading in parallel): **{_ms(res['first'])} ms** "
        f"(runs: {', '.join(f'{v:.0f}' for v in res['first'])}).",
        f"- Tile index of the {res['n']:,} enterprises (built once per load, at the first "
        f"tile request): {res['index_s']:.1f} s.",
        *([f"- Tiles of the unfiltered map up to map zoom 12 cut by the server's warm-up "
           f"(background, after startup and each load) before the tour: {res['warm_s']:.1f} s "
           "(the first run's tiles beyond that zoom, and any filtered tile, are cut on "
           "request)."] if res.get("warm_s") is not None else []),
        *([f"- CPU over the {res['repeat']} page loads and tours ({res['cpu']['wall']:.1f} s "
           f"wall): server process {res['cpu']['server']:.1f} s (with the benchmark's "
           f"driver), Chromium {res['cpu']['browser']:.1f} s."] if res.get("cpu") else []),
        "",
        "| view | tiles | features drawn | KiB | slowest tile request ms | slowest server ms "
        "| decode + draw ms (main thread) | request + draw ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs in res["views"].items():
        req = [r["request"] for r in runs if r["request"] is not None]
        srv = [r["server"] for r in runs if r["server"] is not None]
        last = runs[-1]
        lines.append(f"| {label} | {last['tiles']} | {last['features']:,} | "
                     f"{last['bytes'] / 1024:.0f} | {_ms(req) if req else '-'} | "
                     f"{_ms(srv) if srv else '-'} | "
                     f"{_ms([r['decode'] + r['draw'] for r in runs])} | "
                     f"{_ms([r['drawn'] for r in runs])} |")
    lines += ["", *summary(res["views"]), "",
              "Where a view's time goes: the timeline of its last tile drawn, ms, median of "
              "the runs (Resource Timing and the tile layer's own log).", "",
              *breakdown(res["views"]), END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plugins", action="store_true",
                    help="serve the page with its plug-ins (webmap.toml [plugins])")
    ap.add_argument("--keep-store", type=Path, default=None,
                    help="folder for the generated store, reused by later runs (the 1M "
                         "registry takes minutes to build and load)")
    ap.add_argument("--workers", action="store_true",
                    help="decode and paint the tour's tiles in the page's Web Worker pool "
                         "(opt-in, ?workers=1), to compare with the default main thread")
    ap.add_argument("--no-lean", action="store_true",
                    help="serve every tile through the FastAPI route (without the lean path "
                         "of cached tiles, api/tilefast.py), to compare")
    ap.add_argument("--tile-px", type=int, choices=(256, 512, 1024), default=None,
                    help="the page's enterprise tile size (?tile=N; default: the page's, 1024)")
    ap.add_argument("--trace", type=Path, default=None,
                    help="also write every view's per-tile timeline (JSON) there")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] /
                    "BENCHMARKS.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = run(args.n, args.repeat, plugins=args.plugins, keep=args.keep_store,
              workers=args.workers, lean=not args.no_lean, tile_px=args.tile_px)
    if args.trace:
        import json

        args.trace.write_text(json.dumps(res, indent=1, default=float))
    block = render(res)
    print(block)
    write_block(args.out, "map", block.replace(BEGIN, "").replace(END, ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
