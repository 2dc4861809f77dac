"""``basinwatch run`` end to end: seconds and peak memory of each stage at N registry rows.

One command (issue 15 targets: 1M rows < 60 s and < 3 GB peak RSS; 200k < 15 s)::

    python benchmarks/pipeline_bench.py --size 1000000 [--seed 2019] [--cache DIR]
        [--no-map] [--json FILE] [--out BENCHMARKS.md --label after]

The registry is :func:`geo.synthetic.synthetic_registry` (seeded) written as CSV, cached
as ``DIR/registry_<size>_s<seed>.csv`` (default DIR: ``$TMPDIR/bw-pipeline-bench``) so
re-runs skip generating it. The real command runs as a subprocess with every output
(CSV, GeoJSON, XLSX, GeoPackage, rejected rows, provenance, map.html) and writes its stage
timings with ``--timings``: per stage wall seconds, CPU seconds of the process (robust on a
loaded machine), and peak RSS within the stage (``VmHWM``, reset at each stage start).
The table printed also gives the run's wall time, overall peak RSS and load average.
``--out`` writes the table as block ``pipeline-<size>-<label>`` of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
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

__all__ = ["registry", "run", "table", "main"]


def registry(size: int, seed: int, cache: Path) -> Path:
    """The cached synthetic registry of ``size`` rows (generated once, atomically)."""
    path = cache / f"registry_{size}_s{seed}.csv"
    if path.exists():
        return path
    from geo.synthetic import synthetic_registry, write_registry

    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    write_registry(synthetic_registry(size, seed=seed), path)  # atomic: no half file cached
    print(f"generated {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


def _basinwatch() -> list[str]:
    exe = Path(sys.executable).with_name("basinwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "api.cli"]


def run(path: Path, *, no_map: bool = False, as_of: str = "2025-06-30") -> dict[str, Any]:
    """Run ``basinwatch run path`` with every output; its ``--timings`` plus wall and load."""
    with tempfile.TemporaryDirectory(prefix="bw-pipeline-out-") as tmp:
        timings = Path(tmp) / "timings.json"
        cmd = [*_basinwatch(), "run", str(path), "--out", str(Path(tmp) / "out"),
               "--as-of", as_of, "--timings", str(timings)]
        if no_map:
            cmd.append("--no-map")
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"basinwatch run failed ({proc.returncode}):\n{proc.stderr}")
        body = json.loads(timings.read_text(encoding="utf-8"))
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "out").iterdir()}
    body.update(wall_seconds=round(wall, 2), load_before=round(load_before, 2),
                load_after=round(os.getloadavg()[0], 2), file_bytes=sizes,
                registry=str(path), cpus=os.cpu_count())
    return body


def table(result: dict[str, Any]) -> str:
    """Markdown table of one run's stages."""
    lines = ["| stage | rows | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    for stage, t in result["stages"].items():
        rows = "" if t.get("rows") is None else f"{t['rows']:,}"
        peak = "" if t.get("peak_rss_mb") is None else f"{t['peak_rss_mb']:,.0f}"
        lines.append(f"| {stage} | {rows} | {t['seconds']:.1f} | {t['cpu_seconds']:.1f} | "
                     f"{peak} |")
    cpu = sum(t["cpu_seconds"] for t in result["stages"].values())
    lines.append(f"| **total** (process) | | {result['wall_seconds']:.1f} | {cpu:.1f} | "
                 f"{result['peak_rss_mb']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "bw-pipeline-bench")
    ap.add_argument("--registry", type=Path, help="Use this registry file instead.")
    ap.add_argument("--no-map", action="store_true", help="Skip map.html.")
    ap.add_argument("--json", type=Path, help="Also save the figures as JSON.")
    ap.add_argument("--out", type=Path, help="Write the table into this BENCHMARKS.md.")
    ap.add_argument("--label", default="after", help="Name of the run in --out.")
    args = ap.parse_args(argv)
    path = args.registry or registry(args.size, args.seed, args.cache)
    result = run(path, no_map=args.no_map)
    text = table(result)
    head = (f"{path.name}: {result['stages'].get('read', {}).get('rows', 0):,} rows; load "
            f"average {result['load_before']} before, {result['load_after']} after; "
            f"{result['cpus']} cores")
    print(head)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.out:
        write_block(args.out, f"pipeline-{args.size}-{args.label}", f"{head}\n\n{text}")


if __name__ == "__main__":
    main()
