"""Reading an XLSX registry: calamine against openpyxl at N rows (issue 15).

One command::

    python benchmarks/xlsx_read.py --size 1000000 [--engines calamine,openpyxl]
        [--cache DIR] [--out BENCHMARKS.md]

The workbook is the cached synthetic registry of ``pipeline_bench.py`` (seeded CSV) written
once as ``DIR/registry_<size>_s<seed>.xlsx`` by XlsxWriter (``constant_memory``), with the
columns pandas reads as numbers stored as number cells, as a registry typed in Excel has
them. Each engine reads it the way :func:`geo.ingest.read_registry` does
(``pandas.read_excel(dtype=str, sheet_name=0)``) in its own subprocess: wall and CPU
seconds and peak RSS of the read. The frames of the engines are then compared cell by
cell (``pandas.testing.assert_frame_equal`` on Parquet copies written by the children):
the faster engine is only worth taking where the results are equal.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _blocks import write_block  # noqa: E402

__all__ = ["workbook", "read_with", "main"]


def workbook(size: int, seed: int, cache: Path) -> Path:
    """The cached XLSX copy of the synthetic registry of ``size`` rows (written once)."""
    import pandas as pd

    from pipeline_bench import registry

    path = cache / f"registry_{size}_s{seed}.xlsx"
    if path.exists():
        return path
    csv = registry(size, seed, cache)
    frame = pd.read_csv(csv, keep_default_na=False, low_memory=False)
    t = time.perf_counter()
    part = path.with_suffix(".xlsx.part")
    with pd.ExcelWriter(part, engine="xlsxwriter",
                        engine_kwargs={"options": {"constant_memory": True}}) as xl:
        frame.to_excel(xl, index=False, sheet_name="企业名录")
    part.replace(path)  # atomic: no half workbook cached
    print(f"wrote {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


def read_with(engine: str, path: Path, parquet: Path) -> dict[str, Any]:
    """Read ``path`` as ``geo.ingest`` does with ``engine``; save the frame to ``parquet``."""
    import pandas as pd

    data = path.read_bytes()
    w, c = time.perf_counter(), time.process_time()
    frame = pd.read_excel(io.BytesIO(data), dtype=str, engine=engine, sheet_name=0)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frame.to_parquet(parquet)
    return {"engine": engine, "rows": len(frame), "columns": len(frame.columns),
            "wall": wall, "cpu": cpu, "peak_mb": peak}


def _child(engine: str, path: Path, parquet: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(path), str(parquet)],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _equal(a: Path, b: Path) -> str:
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    except AssertionError as exc:
        return "DIFFERENT: " + str(exc).splitlines()[0]
    return "equal"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(read_with(argv[1], Path(argv[2]), Path(argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--engines", default="calamine,openpyxl")
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "bw-pipeline-bench")
    ap.add_argument("--out", type=Path, default=None, help="Write the table into this file.")
    args = ap.parse_args(argv)
    path = workbook(args.size, args.seed, args.cache)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = [_child(e, path, Path(tmp) / f"{e}.parquet")
                   for e in args.engines.split(",")]
        first = Path(tmp) / f"{results[0]['engine']}.parquet"
        same = {r["engine"]: _equal(first, Path(tmp) / f"{r['engine']}.parquet")
                for r in results[1:]}
    base = results[-1]["wall"]
    lines = [f"`python benchmarks/xlsx_read.py --size {args.size}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {path.name} "
             f"({path.stat().st_size / 2**20:.0f} MiB), 1-min load {load:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after; `pandas.read_excel(dtype=str)` as "
             "`geo.ingest` reads a registry, each engine in its own process.", "",
             "| engine | rows × columns | wall s | CPU s | peak RSS MB | speed-up | cells |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        cells = same.get(r["engine"], "reference")
        lines.append(f"| {r['engine']} | {r['rows']:,} × {r['columns']} | {r['wall']:.1f} | "
                     f"{r['cpu']:.1f} | {r['peak_mb']:,.0f} | {base / r['wall']:.1f}× | "
                     f"{cells} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_block(args.out, f"xlsx-read-{args.size}",
                    f"## Reading XLSX registries: calamine vs openpyxl\n\n{text}")


if __name__ == "__main__":
    main()
