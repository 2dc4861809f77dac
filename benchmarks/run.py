"""Classification benchmarks: CellIndex vs geopandas.sjoin vs PostGIS vs the contains_xy floor.

One command reproduces ``BENCHMARKS.md``::

    python benchmarks/run.py [--sizes 10000,100000,1000000] [--repeat 5] [--smoke]
                             [--out BENCHMARKS.md] [--postgis URL] [--engine-only]

``--engine-only`` re-measures only the whole engine (classify + rules on synthetic
enterprises) and rewrites just the "Engine" section of an existing ``--out`` file.

Every measurement runs in its own subprocess (``benchmarks/_measure.py``) so its peak
memory (``ru_maxrss`` growth) is its own. Points are seeded uniform over Guangdong's bbox.
``--smoke`` runs the smallest size once (PostGIS only when a URL is given) and asserts
only that every method agrees on the number of matched points — never on timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _blocks import blocks_of  # the script's folder is on sys.path

__all__ = ["machine", "run", "run_engine", "engine_section", "main"]

log = logging.getLogger("benchmarks.run")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LAYERS = ("basins", "districts")
METHODS = ("sjoin", "floor", "cellindex", "postgis")
#: Heading of the engine section (``--engine-only`` replaces the section it starts).
ENGINE_HEADING = "## Engine: classify + rules on 1M enterprises (issue 2 target < 2 s)"


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS and library versions of this machine."""
    import geopandas
    import numpy
    import shapely

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kb / 1024**2:.1f} GiB"
    except (OSError, StopIteration):
        ram = "unknown"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "numpy": numpy.__version__,
        "shapely": f"{shapely.__version__} (GEOS {shapely.geos_version_string})",
        "geopandas": geopandas.__version__,
    }


def _one(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "_measure.py"), json.dumps(spec)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": last[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _med(res: dict[str, Any], phase: str) -> float | None:
    vals = res.get("phases", {}).get(phase)
    return statistics.median(vals) if vals else None


def run(
    sizes: list[int], repeat: int, postgis: str | None, layers: tuple[str, ...] = LAYERS,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Run every measurement; returns ``{(layer, size, method): result}`` as a nested dict."""
    results: dict[str, Any] = {}
    for size in sizes:
        for layer in layers:
            for method in METHODS:
                if method == "postgis" and not postgis:
                    continue
                spec = {"method": method, "layer": layer, "size": size, "repeat": repeat,
                        "seed": 2019, "postgis": postgis}
                res = _one(spec, timeout)
                log.info("%s %s %d: %s", layer, method, size,
                         res.get("error") or f"{_med(res, 'query')}")
                shown = res.get("error") or _fmt_s(_med(res, "query"))
                print(f"{layer:9s} {method:10s} {size:>9,d}  {shown}", flush=True)
                results[f"{layer}|{size}|{method}"] = res
    results.update(run_engine(sizes, repeat, timeout))
    one = _one({"method": "lookup_one", "layer": "districts", "size": min(sizes[0], 100_000),
                "repeat": max(repeat, 1), "seed": 2019}, timeout)
    results["lookup_one"] = one
    return results


def run_engine(sizes: list[int], repeat: int, timeout: float = 900.0) -> dict[str, Any]:
    """Measure classify + apply_rules per size (keys ``engine|<size>``)."""
    results: dict[str, Any] = {}
    for size in sizes:
        spec = {"method": "engine", "layer": "districts", "size": size, "repeat": repeat,
                "seed": 2019}
        res = _one(spec, timeout)
        shown = res.get("error") or _fmt_s(_med(res, "query"))
        print(f"{'engine':9s} {'engine':10s} {size:>9,d}  {shown}", flush=True)
        results[f"engine|{size}"] = res
    return results


def engine_section(results: dict[str, Any], sizes: list[int], repeat: int) -> list[str]:
    """Markdown lines of the engine section."""
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        ENGINE_HEADING,
        "",
        f"Measured by `python benchmarks/run.py --engine-only --sizes "
        f"{','.join(map(str, sizes))} --repeat {repeat}` (also part of the full run) on {stamp}.",
        "",
        "`geo.classify.classify` (district, city, basins, region, parks, boundary bands, "
        "review flags) then `geo.rules.apply_rules` (verdicts, standards, reasons) on "
        "seeded synthetic enterprises concentrated like the bundled sample: half uniform "
        "over the nine Pearl River Delta cities, half uniform over the province (land), "
        "industries at random (`benchmarks/_measure.py: enterprises`). No file I/O: the "
        f"reference layers are read before timing. *total* = classify + rules, median of "
        f"{repeat} warm runs in one process; *cold* = the process's first classify call, "
        "which also builds and caches the layer indexes (`CellIndex` per non-overlapping "
        "group of polygons and of boundary bands) and imports rasterio.",
        "",
        "| points | total | classify | rules | cold classify | verdicts | peak MB |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for size in sizes:
        res = results.get(f"engine|{size}")
        if res is None:
            continue
        if "error" in res:
            lines.append(f"| {size:,} | – | – | – | – | {res['error']} | – |")
            continue
        verdicts = ", ".join(f"{k} {v:,}" for k, v in res.get("verdicts", {}).items())
        lines.append(
            f"| {size:,} | {_fmt_s(_med(res, 'query'))} | {_fmt_s(_med(res, 'classify'))} | "
            f"{_fmt_s(_med(res, 'rules'))} | {_fmt_s(_med(res, 'cold'))} | {verdicts} | "
            f"{res.get('peak_mb', 0):.0f} |"
        )
    big = next((results[f"engine|{s}"] for s in reversed(sizes)
                if "profile" in results.get(f"engine|{s}", {})), None)
    if big is not None:
        size = next(s for s in reversed(sizes) if results.get(f"engine|{s}") is big)
        lines += [
            "",
            f"Where the time goes at {size:,} points (one warm classify + rules under "
            f"cProfile, {big['profile_total']:.2f} s with profiler overhead; top functions "
            "by own time):",
            "",
            "| function | own time |",
            "|---|---:|",
            *[f"| `{where}` | {_fmt_s(t)} |" for where, t in big["profile"]],
        ]
    lines.append("")
    return lines


def _replace_engine_section(text: str, section: list[str]) -> str:
    """``text`` with its engine section replaced (or the section inserted before the
    in-process lookup section); stale per-layer engine rows are dropped."""
    import re

    text = re.sub(r"(?m)^\| [\d,]+ \| engine \|.*\n", "", text)
    text = re.sub(r"(?m)^- \*\*engine\*\*:.*\n(?:  .*\n|[^-#\n|].*\n)*", "", text)
    block = "\n".join(section) + "\n"
    start = text.find("\n## Engine")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        return text[: start + 1] + block + (text[end + 1:] if end >= 0 else "")
    anchor = text.find("\n## In-process point lookup")
    if anchor >= 0:
        return text[: anchor + 1] + block + text[anchor + 1:]
    return text.rstrip("\n") + "\n\n" + block


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}×" if a and b else "–"


def report(results: dict[str, Any], sizes: list[int], repeat: int, postgis: str | None) -> str:
    """Markdown text of the results."""
    m = machine()
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python benchmarks/run.py --sizes {','.join(map(str, sizes))} "
        f"--repeat {repeat}{' --postgis URL' if postgis else ''}` on "
        f"{dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in m.items()],
        "",
        "## Classification: which polygon contains each point",
        "",
        "Seeded uniform points over Guangdong's bbox (109.65–117.32 E, 20.21–25.52 N). Times "
        f"are medians of {repeat} runs, each method in its own process.",
        "",
        "- **sjoin**: `geopandas.sjoin(points, layer, predicate='within')`; building the point "
        "GeoDataFrame is reported separately (*points*).",
        "- **PostGIS**: `SELECT count(*) FROM pts JOIN layer ON ST_Intersects(layer.geom, "
        "pts.geom)` with GiST indexes on both tables; query time alone, load (COPY + "
        "ST_MakePoint + GiST + ANALYZE) separately.",
        "- **floor**: per polygon, bbox prefilter (points sorted by x once, binary search, y "
        "test) then `shapely.contains_xy` on the prepared polygon; no point objects.",
        "- **CellIndex**: `geo.cellindex.CellIndex.lookup` (grid lookup, exact "
        "`contains_xy` only for points in boundary cells); build time separately.",
        "- *matched*: points inside a polygon; every method must agree.",
        "- *peak MB*: growth of the measuring process's peak RSS (includes building the "
        "index / points; for PostGIS the client only).",
        "",
    ]
    for layer in LAYERS:
        lines += [f"### Layer `{layer}`", "",
                  "| points | method | query | extra | matched | peak MB | note |",
                  "|---:|---|---:|---|---:|---:|---|"]
        for size in sizes:
            for method in METHODS:
                res = results.get(f"{layer}|{size}|{method}")
                if res is None:
                    continue
                if "error" in res:
                    err = res["error"]
                    lines.append(f"| {size:,} | {method} | – | – | – | – | {err} |")
                    continue
                extra = {
                    "sjoin": f"points {_fmt_s(_med(res, 'points'))}",
                    "postgis": f"load {_fmt_s(_med(res, 'load'))}",
                    "cellindex": f"build {_fmt_s(_med(res, 'build'))}",
                }.get(method, "")
                lines.append(
                    f"| {size:,} | {method} | {_fmt_s(_med(res, 'query'))} | {extra} | "
                    f"{res.get('matched', '–'):,} | {res.get('peak_mb', 0):.0f} | "
                    f"{res.get('note', '')} |"
                )
        lines.append("")
    lines += ["### CellIndex speed-up (query vs query)", "",
              "| layer | points | vs sjoin | vs sjoin + points | vs PostGIS | vs floor |",
              "|---|---:|---:|---:|---:|---:|"]
    for layer in LAYERS:
        for size in sizes:
            get = lambda meth: results.get(f"{layer}|{size}|{meth}", {})  # noqa: E731
            ci = _med(get("cellindex"), "query")
            sj, pts = _med(get("sjoin"), "query"), _med(get("sjoin"), "points")
            lines.append(
                f"| {layer} | {size:,} | {_ratio(sj, ci)} | "
                f"{_ratio((sj or 0) + (pts or 0), ci)} | "
                f"{_ratio(_med(get('postgis'), 'query'), ci)}"
                f" | {_ratio(_med(get('floor'), 'query'), ci)} |"
            )
    lines += ["", *engine_section(results, sizes, repeat)]
    one = results.get("lookup_one", {})
    lines += ["## In-process point lookup (`CellIndex.lookup_one`, districts)", ""]
    if "error" in one:
        lines.append(f"failed: {one['error']}")
    else:
        lines += [
            f"Mean {_med(one, 'mean_per_call') * 1e6:.2f} µs per call over "
            f"{min(sizes[0], 100_000):,} uniform points (median of runs); single-call timings "
            f"p50 {one['p50'] * 1e6:.2f} µs, p99 {one['p99'] * 1e6:.2f} µs (timer overhead "
            "included). Target: < 10 µs.",
        ]
    lines.append("")
    return "\n".join(lines)


def _check_agreement(results: dict[str, Any]) -> list[str]:
    """Methods that disagree with CellIndex on the matched count, as messages."""
    bad = []
    for key, res in results.items():
        if "|" not in key or "error" in res or key.startswith("engine|"):
            continue
        layer, size, _ = key.split("|")
        ref = results.get(f"{layer}|{size}|cellindex", {}).get("matched")
        if ref is not None and res.get("matched") != ref:
            bad.append(f"{key}: matched {res.get('matched')} != CellIndex {ref}")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="smallest size once, quickly")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--postgis", default=None, help="postgresql:// URL of a scratch database")
    p.add_argument("--engine-only", action="store_true",
                   help="measure only classify + rules; rewrite only that section of --out")
    a = p.parse_args(argv)
    sizes = sorted(int(s) for s in a.sizes.split(",") if s.strip())
    repeat = a.repeat
    if a.smoke:
        sizes, repeat = sizes[:1], 1
    if a.engine_only:
        eng = run_engine(sizes, repeat)
        out = Path(a.out)
        old = out.read_text(encoding="utf-8") if out.exists() else "# Benchmarks\n"
        out.write_text(_replace_engine_section(old, engine_section(eng, sizes, repeat)),
                       encoding="utf-8")
        print(f"wrote {a.out}")
        errors = [f"{k}: {v['error']}" for k, v in eng.items() if "error" in v]
        for msg in errors:
            print("PROBLEM:", msg, file=sys.stderr)
        return 1 if errors else 0
    results = run(sizes, repeat, a.postgis)
    out = Path(a.out)
    kept = blocks_of(out.read_text(encoding="utf-8")) if out.exists() else []
    text = report(results, sizes, repeat, a.postgis).rstrip()
    out.write_text("\n\n".join([text, *kept]) + "\n", encoding="utf-8")
    print(f"wrote {a.out}")
    errors = [f"{k}: {v['error']}" for k, v in results.items() if "error" in v]
    disagree = _check_agreement(results)
    for msg in errors + disagree:
        print("PROBLEM:", msg, file=sys.stderr)
    if disagree or (a.smoke and any("|cellindex" in e or "|floor" in e for e in errors)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
