"""Classification + rules with equipment units vs the enterprise-only engine.

    python benchmarks/rules_units.py [--size 1000000] [--units 3] [--repeat 3]
                                     [--baseline-src /path/to/main] [--out BENCHMARKS.md]

Measures, each in its own subprocess (``benchmarks/_measure.py``), on the same seeded
enterprises (``_measure.enterprises``):

* *baseline*: ``classify`` + ``apply_rules`` (no units) of the source tree given by ``--baseline-src``
  (the enterprise-only engine before equipment units, e.g. a checkout of main), if given;
* *enterprise-only*: this tree's ``classify`` + ``apply_rules`` without units;
* *with units*: ``classify`` + ``evaluate_rules`` with ``--units`` units per enterprise
  (``_measure.units``) in two mixes: the synthetic profile's ranges (which straddle the
  thresholds on purpose: a stress case with ~12 % obsolete units) and a mix where 15 % of
  units are on those ranges and the rest are modern.

Writes the block ``rules-units`` of ``--out`` with the machine's load average (``uptime``)
before and after, since the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _blocks import write_block  # the script's folder is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(spec: dict[str, Any], src: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if src is not None:  # import geo/layers from another source tree
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.run([sys.executable, str(HERE / "_measure.py"), json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, cwd=src or ROOT,
                          env=env, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[:3].__str__() if Path(
        "/proc/loadavg").exists() else "?"


def _med(res: dict[str, Any], phase: str) -> float:
    return statistics.median(res["phases"][phase])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--units", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline-src", default=None)
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    a = p.parse_args(argv)
    base = {"layer": "districts", "size": a.size, "repeat": a.repeat, "seed": 2019}
    load_before = _load()
    rows: list[tuple[str, dict[str, Any]]] = []
    if a.baseline_src:
        rows.append(("baseline: `--baseline-src`, enterprise-only (no units)",
                     _run({**base, "method": "engine"}, Path(a.baseline_src))))
    rows.append(("this tree, enterprise-only (no units)", _run({**base, "method": "engine"})))
    for share, name in ((1.0, "profile ranges (stress)"), (0.15, "15 % legacy, 85 % modern")):
        rows.append((f"this tree, {a.units:g} units per enterprise, {name}",
                     _run({**base, "method": "engine_units", "per_enterprise": a.units,
                           "legacy_share": share})))
    load_after = _load()
    ref = next((r for _n, r in rows if "error" not in r), None)
    ref_total = _med(ref, "query") if ref else None
    ref_cpu = _med(ref, "cpu") if ref else None
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "## Rules with equipment units (issue 10 target: within 2x of the enterprise-only time)",
        "",
        f"`python benchmarks/rules_units.py --size {a.size} --units {a.units:g} --repeat "
        f"{a.repeat}{' --baseline-src ' + a.baseline_src if a.baseline_src else ''}` on "
        f"{stamp}; load average before {load_before}, after {load_after} (2 shared cores).",
        "",
        f"{a.size:,} enterprises (`_measure.enterprises`); *total* = `classify` + rules, median "
        f"of {a.repeat} warm runs in one process; *x* = total / the first row's total; *CPU* "
        "= the process's CPU time for the same work (`time.process_time`), and *x CPU* its "
        "ratio: on a shared, overloaded machine wall times of runs made minutes apart "
        "vary with the load, CPU times much less.",
        "",
        "| run | units | obsolete units | total | classify | rules | x | CPU | x CPU | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in rows:
        if "error" in res:
            lines.append(f"| {name} | – | – | – | – | {res['error']} | – | – | – | – |")
            continue
        total = _med(res, "query")
        share = res.get("obsolete_share")
        lines.append(
            f"| {name} | {res.get('units', 0):,} | "
            f"{'' if share is None else f'{share:.1%}'} | {total:.2f} s | "
            f"{_med(res, 'classify'):.2f} s | {_med(res, 'rules'):.2f} s | "
            f"{total / ref_total:.2f} | {_med(res, 'cpu'):.2f} s | "
            f"{_med(res, 'cpu') / ref_cpu:.2f} | {res.get('peak_mb', 0):.0f} |"
        )
        print(lines[-1], flush=True)
    worst = max((_med(r, "query") / ref_total for _n, r in rows if "error" not in r),
                default=None) if ref_total else None
    worst_cpu = max((_med(r, "cpu") / ref_cpu for _n, r in rows if "error" not in r),
                    default=None) if ref_cpu else None
    lines += [
        "",
        f"Target (2x the first row, wall and CPU): "
        f"{'met' if worst is not None and max(worst, worst_cpu or 0) <= 2 else 'NOT met'}"
        f"{'' if worst is None else f' (worst {worst:.2f}x wall'}"
        f"{'' if worst_cpu is None else f', {worst_cpu:.2f}x CPU'}"
        f"{'' if worst is None else ')'}. "
        "Output is unchanged by the speed work: `python benchmarks/rules_equality.py "
        "--baseline-src <main>` compares every enterprise and unit result column on fixed "
        "50k inputs. Where the unit runs' time goes (profile of one warm run): the unit "
        "rules' candidate tests over 3M units (unit-type groups, then each predicate on the "
        "survivors), the enterprise rules that exist anyway, and one display string per "
        "matched unit (label + verdict + citations), joined per enterprise into `units` and "
        "appended to its reasons; the string work grows with the share of matched units, "
        "which is why the stress mix is slower.",
    ]
    write_block(Path(a.out), "rules-units", "\n".join(lines))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
