"""Same rules output as another source tree, on fixed 50k inputs (guard for rules speed work).

    python benchmarks/rules_equality.py --baseline-src /path/to/main [--size 50000]
                                        [--work /tmp/bw-rules-equality]

Inputs (built once, cached as pickles in ``--work``; seeded, so rebuilding gives the same):

* ``synthetic``: :func:`geo.synthetic.synthetic_dataset` (registry + 设备清单, bad rows and one
  witness per rule included) written as CSV and read like ``run_pipeline`` does (ingest,
  equipment join, geocode, classify, rows inside the province);
* ``bench``: the rules benchmark's enterprises and units (``_measure.enterprises`` /
  ``_measure.units``, 3 per enterprise, profile ranges), classified.

Each is evaluated (``evaluate_rules``) on two dates by this tree and by ``--baseline-src``,
each in its own subprocess; their enterprise rules columns and unit result columns are
written as parquet under ``--work/<tree>/`` and compared cell by cell (text form, plus
dtypes). Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATES = (date(2019, 6, 30), date(2026, 12, 1))
UNIT_OUT = ("verdict", "rule_ids", "reasons", "deadline", "deadline_status", "needs_review",
            "review_reasons", "enterprise_index")


def _synthetic(size: int, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from geo.classify import classify
    from geo.equipment import join_units, read_equipment
    from geo.geocoding import geocode
    from geo.ingest import read_registry
    from geo.pipeline import _outside_province
    from geo.synthetic import synthetic_dataset, write_dataset

    reg_path, equ_path = write_dataset(synthetic_dataset(size, seed=2019),
                                       work / "registry.csv")
    ingested = read_registry(reg_path)
    units, _rej = join_units(read_equipment(equ_path).units, ingested.accepted)
    if ingested.units is not None and len(ingested.units):
        units = pd.concat([ingested.units, units], ignore_index=True)
    located, _ = geocode(ingested.accepted, provider="offline")
    inside, _ = _outside_province(classify(located))
    return inside, units[units["enterprise_row"].isin(inside["row"])].reset_index(drop=True)


def _bench(size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sys.path.insert(0, str(HERE))
    from _measure import enterprises, units

    from geo.classify import classify

    frame = enterprises(size, 2019)
    frame["row"] = range(1, size + 1)
    return classify(frame), units(frame, 3.0, 2019)


def prepare(size: int, work: Path) -> dict[str, Path]:
    """Build (or reuse) the pickled inputs; {name: path}."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, build in (("synthetic", lambda: _synthetic(size, work)),
                        ("bench", lambda: _bench(size))):
        path = work / f"input-{name}-{size}.pkl"
        if not path.exists():
            path.write_bytes(pickle.dumps(build()))
        paths[name] = path
    return paths


def evaluate(inputs: dict[str, str], out: Path) -> None:
    """Run evaluate_rules of the importable ``geo`` on each input and date; write parquet."""
    import geo.rules
    from geo.rules import evaluate_rules
    from geo.schema import RULES_COLUMNS

    print(f"evaluating with {geo.rules.__file__}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for name, path in inputs.items():
        ent, units = pickle.loads(Path(path).read_bytes())
        for day in DATES:
            res = evaluate_rules(ent, units, as_of=day)
            e = pd.DataFrame({c: res.enterprises[c] for c in ("row", *RULES_COLUMNS,
                                                                "needs_review", "review_reasons")})
            u = pd.DataFrame({c: res.units[c] for c in ("unit_id", *UNIT_OUT)})
            for frame, kind in ((e, "enterprises"), (u, "units")):
                dtypes = {c: str(t) for c, t in frame.dtypes.items()}
                frame.astype(str).to_parquet(out / f"{name}-{day}-{kind}.parquet")
                (out / f"{name}-{day}-{kind}.dtypes.json").write_text(json.dumps(dtypes))


def compare(a: Path, b: Path) -> list[str]:
    """Differences between two output folders (empty list = identical)."""
    problems = []
    for pa in sorted(a.glob("*.parquet")):
        x, y = pd.read_parquet(pa), pd.read_parquet(b / pa.name)
        tag = pa.stem
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            problems.append(f"{tag}: shape/columns {x.shape} {list(x.columns)} vs "
                            f"{y.shape} {list(y.columns)}")
            continue
        for c in x.columns:
            bad = (x[c] != y[c]).to_numpy()
            if bad.any():
                i = int(bad.argmax())
                problems.append(f"{tag}.{c}: {int(bad.sum())} rows differ, e.g. row {i}: "
                                f"{x[c].iat[i]!r} vs {y[c].iat[i]!r}")
        da = json.loads((a / f"{tag}.dtypes.json").read_text())
        db = json.loads((b / f"{tag}.dtypes.json").read_text())
        if da != db:
            problems.append(f"{tag}: dtypes {da} vs {db}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline-src", required=False)
    p.add_argument("--size", type=int, default=50_000)
    p.add_argument("--work", default="/tmp/bw-rules-equality")
    p.add_argument("--evaluate", help=argparse.SUPPRESS)  # internal: JSON inputs -> out folder
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.evaluate:
        evaluate(json.loads(a.evaluate), Path(a.out))
        return 0
    work = Path(a.work)
    inputs = {k: str(v) for k, v in prepare(a.size, work).items()}
    trees = {"this": ROOT} | ({"baseline": Path(a.baseline_src)} if a.baseline_src else {})
    for tag, src in trees.items():
        env = {**os.environ, "PYTHONWARNINGS": "ignore",
               "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        subprocess.run([sys.executable, __file__, "--evaluate", json.dumps(inputs),
                        "--out", str(work / tag)], cwd=src, env=env, check=True)
    if "baseline" not in trees:
        print(f"wrote {work / 'this'} (no --baseline-src to compare with)")
        return 0
    problems = compare(work / "baseline", work / "this")
    for line in problems:
        print(line)
    print(f"{'IDENTICAL' if not problems else 'DIFFERENT'}: {', '.join(inputs)} x "
          f"{len(DATES)} dates, enterprises and units")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
