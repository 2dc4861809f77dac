"""Do other clients stall while a full Excel export is written? (issue 15)

Usage::

    .venv/bin/python benchmarks/export_stall.py [--size 200000] [--workers 2] [--duration 10]

Loads ``size`` synthetic enterprises into an embedded store (reusing the one
``benchmarks/pygeoapi_compare.py`` wrote under /tmp when present), serves it with
``--workers`` uvicorn processes, and measures ``items/{id}`` throughput with
``wrk -t2 -c20`` alone, then while ``GET /exports/enforcement?format=xlsx`` of every
enterprise runs. Prints both rates, their ratio and the export's duration.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from pygeoapi_compare import _free_port, _paths, _wait, _wrk  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    import subprocess

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--work", type=Path, default=Path("/tmp/bw-pygeoapi-cmp"))
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    gpkg = args.work / "store.gpkg"
    if not gpkg.exists():
        from api.store import get_store
        from scale import enforcement_frame

        store = get_store(str(gpkg))
        store.init()
        store.load_enterprises(enforcement_frame(args.size), loaded_by="bench",
                               source_name="synthetic.csv", source_sha256="0" * 64)
    port = _free_port()
    env = {**os.environ, "BASINWATCH_DATA_DIR": str(args.work), "BASINWATCH_READ_OPEN": "true",
           "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0", "BASINWATCH_DATABASE_URL": str(gpkg)}
    cmd = [sys.executable, "-m", "uvicorn", "load_api:app_factory", "--factory", "--app-dir",
           str(HERE), "--host", "127.0.0.1", "--port", str(port), "--workers",
           str(args.workers), "--log-level", "warning", "--no-access-log",
           "--timeout-worker-healthcheck", "120"]
    proc = subprocess.Popen(cmd, env=env, cwd=HERE.parent)
    base = f"http://127.0.0.1:{port}"
    paths = _paths("item", "enterprises", 2000, 5, 1000, [])
    try:
        _wait(base, paths[0], proc)
        alone = _wrk(base, paths, args, args.work)
        took: list[float] = []

        def export() -> None:
            t0 = time.perf_counter()
            with urllib.request.urlopen(base + "/exports/enforcement?format=xlsx",  # noqa: S310
                                        timeout=1200) as r:
                r.read()
            took.append(time.perf_counter() - t0)

        t = threading.Thread(target=export)
        t.start()
        time.sleep(2)  # the export is selecting and writing now
        during = _wrk(base, paths, args, args.work)
        t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"| workers | items/{{id}} req/s alone | during a full xlsx export | ratio | "
          f"export s | load |\n|---:|---:|---:|---:|---:|---:|\n| {args.workers} | "
          f"{alone['rps']:,.0f} | {during['rps']:,.0f} | {during['rps'] / alone['rps']:.2f} | "
          f"{took[0] if took else float('nan'):.0f} | {during['load']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
