"""Offline ``map.html`` benchmark: file size, build time and browser time at N enterprises.

Runs the pipeline on a seeded synthetic registry of N rows (default 200 000, the size a
user reported 61 MB / 47 s for), builds the map ``basinwatch run`` writes
(``layers.webmap.build_map`` + ``save_offline_html``) and opens it from ``file://`` in
headless Chromium (Debian ``chromium`` + ``chromium-driver``, selenium):

- build: ``build_map`` + ``save_offline_html`` wall time in Python;
- load: ``driver.get`` (navigation to the load event, all inline scripts run);
- interactive: navigation start -> the first moment after which the page's main thread
  answers ten 50 ms timers in a row on time (no long task left, e.g. marker clustering in
  chunks), measured in the page with ``performance.now()``;
- zoom: one zoom-in step at the Lianjiang basin, until the main thread is idle again.

Results go to ``BENCHMARKS.md`` between ``<!-- begin:offline-map -->`` and
``<!-- end:offline-map -->``. ``--json FILE`` also saves the figures, and ``--compare
FILE`` adds an earlier run (e.g. of the previous code, run with ``PYTHONPATH`` pointing at
its checkout) as a "before" row::

    python benchmarks/offline_map_bench.py [--n 200000] [--json after.json]
        [--compare before.json] [--label after] [--out BENCHMARKS.md | --no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _blocks import write_block  # the script's folder is on sys.path

__all__ = ["run", "main"]

log = logging.getLogger(__name__)

NAME = "offline-map"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,900", "--allow-file-access-from-files")
#: Resolves with performance.now() at the start of the first quiet period (ten 50 ms timers
#: each firing less than 30 ms late), or at the timeout.
IDLE_JS = """
var done = arguments[arguments.length - 1], quiet = 0, start = performance.now(),
    since = start, last = start;
function tick() {
  var now = performance.now();
  if (now - last < 80) { quiet += 1; } else { quiet = 0; since = now; }
  last = now;
  if (quiet >= 10 || now - start > 170000) { done(since); return; }
  setTimeout(tick, 50);
}
setTimeout(tick, 50);
"""


def _enterprises(n: int, seed: int) -> Any:
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_registry, write_registry

    tmp = Path(tempfile.mkdtemp(prefix="bw-offline-map-"))
    try:
        path = write_registry(synthetic_registry(n, seed=seed), tmp / "registry.csv")
        return run_pipeline(path).enterprises
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _browser(path: Path) -> dict[str, float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bw-offline-map-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(600)
    drv.set_script_timeout(200)
    try:
        t = time.perf_counter()
        drv.get(path.as_uri())
        load = time.perf_counter() - t
        interactive = drv.execute_async_script(IDLE_JS) / 1000.0
        map_var = drv.execute_script(
            "return Object.keys(window).filter(function (k) {"
            " return k.indexOf('map_') === 0 && window[k] instanceof L.Map; })[0];")
        t0 = drv.execute_script(
            f"var m = window['{map_var}']; var t = performance.now();"
            " m.setView([23.3, 116.4], m.getZoom() + 1, {animate: false}); return t;")
        zoom = (drv.execute_async_script(IDLE_JS) - t0) / 1000.0
        errors = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
    if errors:
        raise RuntimeError(f"browser errors: {errors[:3]}")
    return {"load_s": load, "interactive_s": interactive, "zoom_s": zoom}


def run(n: int, *, seed: int = 2019, label: str = "after") -> dict[str, Any]:
    """Build the offline map of ``n`` enterprises and measure it."""
    from layers.webmap import build_map, save_offline_html

    t = time.perf_counter()
    ents = _enterprises(n, seed)
    log.info("pipeline: %d enterprises in %.1f s", len(ents), time.perf_counter() - t)
    tmp = Path(tempfile.mkdtemp(prefix="bw-offline-map-out-"))
    try:
        t = time.perf_counter()
        path = save_offline_html(build_map(ents), tmp / "map.html")
        build = time.perf_counter() - t
        size = path.stat().st_size
        log.info("map.html: %.1f MB in %.1f s", size / 1e6, build)
        timing = _browser(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"label": label, "n": n, "enterprises": len(ents), "bytes": size,
            "build_s": build, **timing, "load_avg": os.getloadavg()[0],
            "date": dt.date.today().isoformat()}


def report(rows: list[dict[str, Any]]) -> str:
    """The Markdown block of BENCHMARKS.md."""
    lines = [
        "## Offline map.html of `basinwatch run`",
        "",
        "`python benchmarks/offline_map_bench.py` on a seeded synthetic registry; the page "
        "opened from `file://` in headless Chromium. *interactive* = navigation start until "
        "the page's main thread answers ten 50 ms timers in a row on time; *zoom* = one zoom "
        "step until idle again. `before` is the previous code (all points inline, "
        "MarkerCluster), `after` draws up to 3,000 points one by one and aggregates above "
        "that into at most 60,000 grid cells over zoom levels 5-16.",
        "",
        "| code | registry rows | enterprises | map.html | build (Python) | load event "
        "| interactive | zoom step | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['n']:,} | {r['enterprises']:,} | {r['bytes'] / 1e6:.1f} MB "
            f"| {r['build_s']:.1f} s | {r['load_s']:.1f} s | {r['interactive_s']:.1f} s "
            f"| {r['zoom_s']:.2f} s | {r['load_avg']:.2f} |"
        )
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} cores shared; "
              f"Python {platform.python_version()}; {rows[-1]['date']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--label", default="after")
    parser.add_argument("--json", type=Path, help="also save the figures as JSON")
    parser.add_argument("--compare", type=Path, help="JSON of an earlier run (before row)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    row = run(args.n, seed=args.seed, label=args.label)
    if args.json:
        args.json.write_text(json.dumps(row, indent=2), encoding="utf-8")
    rows = [json.loads(args.compare.read_text(encoding="utf-8"))] if args.compare else []
    body = report([*rows, row])
    print(body)
    if not args.no_write:
        write_block(args.out, NAME, body)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
