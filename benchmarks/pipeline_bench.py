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


def run(path: Path, *, no_map: bool = False, as_of: str = "2025-06-30",
        workers: int | None = None) -> dict[str, Any]:
    """Run ``basinwatch run path`` with every output; its ``--timings`` plus wall, load and
    the peak memory of the whole process tree (PSS, sampled every 50 ms)."""
    with tempfile.TemporaryDirectory(prefix="bw-pipeline-out-") as tmp:
        timings = Path(tmp) / "timings.json"
        cmd = [*_basinwatch(), "run", str(path), "--out", str(Path(tmp) / "out"),
               "--as-of", as_of, "--timings", str(timings)]
        if no_map:
            cmd.append("--no-map")
        if workers is not None:
            cmd += ["--workers", str(workers)]
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tree_peak = _TreePeak(proc.pid)
        _, stderr = proc.communicate()
        wall = time.perf_counter() - t
        tree_peak.stop()
        if proc.returncode != 0:
            raise SystemExit(f"basinwatch run failed ({proc.returncode}):\n{stderr}")
        body = json.loads(timings.read_text(encoding="utf-8"))
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "out").iterdir()}
    body.update(wall_seconds=round(wall, 2), load_before=round(load_before, 2),
                load_after=round(os.getloadavg()[0], 2), file_bytes=sizes,
                registry=str(path), cpus=os.cpu_count(),
                tree_peak_pss_mb=round(tree_peak.peak_mb, 1))
    return body


class _TreePeak:
    """Highest total PSS of a process and its children (shared pages counted once)."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self.peak_mb = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, sum(_pss_mb(p) for p in _tree(self.pid)))


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(k) for k in kids]
    return out


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def table(result: dict[str, Any]) -> str:
    """Markdown table of one run's stages."""
    lines = ["| stage | rows | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    for stage, t in result["stages"].items():
        rows = "" if t.get("rows") is None else f"{t['rows']:,}"
        peak = "" if t.get("peak_rss_mb") is None else f"{t['peak_rss_mb']:,.0f}"
        lines.append(f"| {stage} | {rows} | {t['seconds']:.1f} | {t['cpu_seconds']:.1f} | "
                     f"{peak} |")
    cpu = sum(t["cpu_seconds"] for t in result["stages"].values())
    lines.append(f"| **total** (CPU of all processes; peak RSS of the largest one) | | {result['wall_seconds']:.1f} | {cpu:.1f} | "
                 f"{result['peak_rss_mb']:,.0f} |")
    if result.get("tree_peak_pss_mb"):
        lines.append(f"| peak memory of the process tree (PSS: pages shared with the "
                     f"writer processes counted once) | | | | "
                     f"{result['tree_peak_pss_mb']:,.0f} |")
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
    ap.add_argument("--workers", type=int, help="basinwatch run --workers (default: its own)")
    ap.add_argument("--json", type=Path, help="Also save the figures as JSON.")
    ap.add_argument("--out", type=Path, help="Write the table into this BENCHMARKS.md.")
    ap.add_argument("--label", default="after", help="Name of the run in --out.")
    args = ap.parse_args(argv)
    path = args.registry or registry(args.size, args.seed, args.cache)
    result = run(path, no_map=args.no_map, workers=args.workers)
    text = table(result)
    head = (f"{path.name}: {result['stages'].get('read', {}).get('rows', 0):,} rows; load "
            f"average {result['load_before']} before, {result['load_after']} after; "
            f"{result['cpus']} cores; `basinwatch run --workers "
            f"{args.workers or 'default'}`")
    print(head)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.out:
        write_block(args.out, f"pipeline-{args.size}-{args.label}", f"{head}\n\n{text}")


if __name__ == "__main__":
    main()
