"""Decode + paint of real enterprise tiles by ``tiles.js`` in Node (V8, no browser).

Cuts the 1024 px tiles of some views of ``map_bench.py``'s tour from a kept store
(``map_bench.py --keep-store DIR``) through the API, then runs ``BasinWatchTiles.render``
(decode + paint, the worker's code path: the page's main thread runs the same ``paint``) on
them in Node for this tree's ``tiles.js`` and, with ``--ref``, a git revision's: CPU ms of
the views' tiles (median of the repeats after a warm-up) and the SHA-1 of every tile's
pixels, so a speed change can be shown to leave the pixels byte-identical::

    python benchmarks/tile_paint_bench.py --store /tmp/bw-store [--ref main] [--views z12 z14]
                                          [--chromium]

``--chromium`` also times the same render in headless Chromium (wall ms, median of 3 fresh
pages per tree, interleaved: cold = the page's first render of the view, warm = the later
ones), which is what the page runs.

Prints a Markdown table; writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["cut_tiles", "run_node", "run_chromium", "main"]

ROOT = Path(__file__).resolve().parents[1]
#: map_bench.py tour views: name -> (lat, lon, map zoom)
VIEWS = {"z7": (23.2, 113.6, 7), "z9": (22.9, 113.7, 9), "z12": (23.27, 116.4, 12),
         "z14": (23.27, 116.43, 14)}

_HARNESS = r"""
const fs = require("fs"), crypto = require("crypto");
const [root, dir, view, reps] = process.argv.slice(2);
global.self = globalThis;
global.Pbf = require(root + "/layers/static/pbf/pbf.js");
eval(fs.readFileSync(root + "/layers/static/basinwatch/tiles.js", "utf8"));
const T = globalThis.BasinWatchTiles;
const vi = {must_exit: 0, must_relocate: 1, rectify: 2, review: 3, no_action: 4};
const fills = [[215, 48, 39, 1], [252, 141, 89, 1], [254, 224, 139, 1], [145, 191, 219, 1],
               [26, 152, 80, 1]];
const files = fs.readdirSync(dir).filter(f => f.startsWith(view + "_")).sort();
const bufs = files.map(f => { const b = fs.readFileSync(dir + "/" + f);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); });
const z = +view.slice(1), cpu = [];
let features = 0, sha = [];
for (let rep = 0; rep < +reps; rep++) {
  const c0 = process.cpuUsage();
  const outs = bufs.map(b => T.render(b, vi, fills, z, 1, 1024));
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
  features = outs.reduce((s, o) => s + o.data.count, 0);
  sha = outs.map(o => o.pixels ? crypto.createHash("sha1").update(o.pixels).digest("hex") : "-");
}
const warm = cpu.slice(3).sort((a, b) => a - b);
console.log(JSON.stringify({tiles: files.length, features: features, first: cpu[0],
                            median: warm[warm.length >> 1], sha: sha}));
"""


def cut_tiles(store_dir: Path, out: Path, views: list[str]) -> None:
    """Write the 1024 px tiles (2 x 2 around each view's centre) of ``views`` from the store
    in ``store_dir`` into ``out`` as ``<view>_<x>_<y>.mvt``.

    Parameters
    ----------
    store_dir : Path
        A ``map_bench.py --keep-store`` folder (``store.gpkg``).
    out : Path
        Folder for the tiles.
    views : list of str
        Keys of ``VIEWS``.
    """
    from fastapi.testclient import TestClient

    import layers.webmap as lw
    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store

    lw.build_app_page = functools.partial(lw.build_app_page, plugins=False)
    store = get_store(store_dir / "store.gpkg")
    store.init()
    client = TestClient(create_app(Settings(data_dir=store_dir), store=store))
    try:
        for name in views:
            lat, lon, z = VIEWS[name]
            size = 2 ** z * 256
            px = (lon + 180) / 360 * size
            rad = math.radians(lat)
            py = (1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * size
            x0 = int(px // 1024) - (0 if px % 1024 > 512 else 1)
            y0 = int(py // 1024) - (0 if py % 1024 > 512 else 1)
            for x in (x0, x0 + 1):
                for y in (y0, y0 + 1):
                    r = client.get(f"/collections/enterprises/tiles/WebMercatorQuad/{z - 2}/{y}/{x}"
                                   "?px=1024",
                                   headers={"Accept": "application/vnd.mapbox-vector-tile"})
                    r.raise_for_status()
                    (out / f"{name}_{x}_{y}.mvt").write_bytes(r.content)
    finally:
        store.close()


def run_node(root: Path, tiles: Path, view: str, reps: int = 25) -> dict:
    """Decode + paint ``view``'s tiles with ``root``'s ``tiles.js`` in Node.

    Parameters
    ----------
    root : Path
        A tree with ``layers/static/{pbf/pbf.js,basinwatch/tiles.js}``.
    tiles : Path
        Folder written by :func:`cut_tiles`.
    view : str
        A key of ``VIEWS``.
    reps : int
        Repeats (the first 3 are the warm-up).

    Returns
    -------
    dict
        ``tiles``, ``features``, ``first`` (CPU ms, cold), ``median`` (CPU ms, warm) and
        ``sha`` (SHA-1 of each tile's pixels).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(_HARNESS)
    try:
        res = subprocess.run(["node", f.name, str(root), str(tiles), view, str(reps)],
                             check=True, capture_output=True, text=True)
    finally:
        Path(f.name).unlink()
    return json.loads(res.stdout)


_CHROMIUM_JS = """
var vi = {must_exit: 0, must_relocate: 1, rectify: 2, review: 3, no_action: 4};
var fills = BasinWatchTiles.fills(['#d73027', '#fc8d59', '#fee08b', '#91bfdb', '#1a9850']);
var res = {};
arguments[0].forEach(function (view) {
  var keys = Object.keys(T).filter(function (k) { return k.indexOf(view + '_') === 0; });
  var times = [];
  for (var rep = 0; rep < 6; rep++) {
    var a = performance.now();
    keys.forEach(function (k) { BasinWatchTiles.render(T[k], vi, fills, +view.slice(1), 1, 1024); });
    times.push(performance.now() - a);
  }
  res[view] = times;
});
return JSON.stringify(res);
"""


def run_chromium(trees: list[tuple[str, Path]], tiles: Path, views: list[str],
                 rounds: int = 3) -> dict[str, dict[str, tuple[float, float]]]:
    """Time ``BasinWatchTiles.render`` of the views' tiles in headless Chromium per tree.

    Parameters
    ----------
    trees : list of (str, Path)
        Labels and trees with ``layers/static/{pbf/pbf.js,basinwatch/tiles.js}``.
    tiles : Path
        Folder written by :func:`cut_tiles`.
    views : list of str
        Keys of ``VIEWS``.
    rounds : int
        Fresh pages per tree (interleaved).

    Returns
    -------
    dict
        label -> view -> (cold ms, warm ms), medians over the rounds.
    """
    import base64
    import statistics

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from map_bench import CHROMEDRIVER, CHROMIUM, FLAGS

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="bw-tilepaint-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    data = {p.stem: base64.b64encode(p.read_bytes()).decode() for p in tiles.glob("*.mvt")}
    got: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    try:
        for _ in range(rounds):
            for label, root in trees:
                drv.get("about:blank")
                drv.execute_script((root / "layers/static/pbf/pbf.js").read_text())
                drv.execute_script("window.L = {GridLayer: {extend: function () {"
                                   " return function () {}; }}};" +
                                   (root / "layers/static/basinwatch/tiles.js").read_text())
                drv.execute_script("window.T = {}; var t = arguments[0]; for (var k in t) {"
                                   " var s = atob(t[k]), b = new Uint8Array(s.length);"
                                   " for (var i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);"
                                   " window.T[k] = b.buffer; }", data)
                out = json.loads(drv.execute_script(_CHROMIUM_JS, views))
                for view, times in out.items():
                    cold, warm = got.setdefault(label, {}).setdefault(view, ([], []))
                    cold.append(times[0])
                    warm.extend(times[2:])
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return {label: {view: (statistics.median(c), statistics.median(w))
                    for view, (c, w) in per.items()} for label, per in got.items()}


def _tree_at(ref: str, dest: Path) -> Path:
    for rel in ("layers/static/pbf/pbf.js", "layers/static/basinwatch/tiles.js"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{rel}"], check=True,
                              capture_output=True, text=True).stdout
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text, encoding="utf-8")
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True,
                    help="a map_bench.py --keep-store folder")
    ap.add_argument("--ref", default=None, help="also run tiles.js of this git revision")
    ap.add_argument("--views", nargs="+", default=["z9", "z12", "z14"], choices=sorted(VIEWS))
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--chromium", action="store_true",
                    help="also time the render in headless Chromium (wall ms)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bw-tilepaint-"))
    try:
        tiles = tmp / "tiles"
        tiles.mkdir()
        cut_tiles(args.store, tiles, args.views)
        trees = [("this tree", ROOT)]
        if args.ref:
            trees.append((args.ref, _tree_at(args.ref, tmp / "ref")))
        print("| view | tiles.js | tiles | features | decode + paint CPU ms (warm median) "
              "| cold | pixels |")
        print("|---|---|---:|---:|---:|---:|---|")
        for view in args.views:
            shas = {}
            for label, root in trees:
                r = run_node(root, tiles, view, args.reps)
                shas[label] = r["sha"]
                print(f"| {view} | {label} | {r['tiles']} | {r['features']:,} | "
                      f"{r['median']:.1f} | {r['first']:.1f} | |")
            if args.ref:
                same = shas[args.ref] == shas["this tree"]
                print(f"| {view} | both | | | | | SHA-1 of every tile "
                      f"{'identical' if same else 'DIFFERS'} |")
        if args.chromium:
            print("\n| view | tiles.js | Chromium decode + paint ms, cold | warm |")
            print("|---|---|---:|---:|")
            got = run_chromium(trees, tiles, args.views)
            for view in args.views:
                for label, _root in trees:
                    cold, warm = got[label][view]
                    print(f"| {view} | {label} | {cold:.1f} | {warm:.1f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
