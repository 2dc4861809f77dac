"""Decode + paint of real enterprise tiles by ``tiles.js`` in Node (V8, no browser).

Cuts the 1024 px tiles of some views of ``map_bench.py``'s tour from a kept store
(``map_bench.py --keep-store DIR``) through the API, then runs ``BasinWatchTiles.render``
(decode + paint, the worker's code path: the page's main thread runs the same ``paint``) on
them in Node for this tree's ``tiles.js`` and, with ``--ref``, a git revision's: CPU ms of
the views' tiles (median of the repeats after a warm-up) and the SHA-1 of every tile's
pixels, so a speed change can be shown to leave the pixels byte-identical::

    python benchmarks/tile_paint_bench.py --store /tmp/bw-store [--ref main] [--views z12 z14]

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

__all__ = ["cut_tiles", "run_node", "main"]

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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
