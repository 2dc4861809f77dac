"""In-database classification (PostGIS) against the in-process engine, at scale.

Usage::

    .venv/bin/python benchmarks/postgis_classify.py [--size 1000000] [--postgis URL]
                                                   [--reuse] [--out BENCHMARKS.md]

Generates seeded synthetic enterprises (``benchmarks/scale.py: enforcement_frame``), times
``apply_rules(classify(...))`` in process, loads the list into PostGIS with its classified
columns blank (schema ``bw_pgbench``), loads the reference layers (which builds the cell
grid) and times :meth:`api.store.postgis.PostGISStore.classify_in_database` three times:
the first run (every row changes: the table is rewritten), the same run again (nothing
changes) and a run after 1 % of the rows were made out of date (updated in place). After
each run that writes it checks that every row's city, district, basin, region, park,
verdict, standards, rule ids and reasons equal the in-process ones. Prints wall clock and
CPU seconds (the server's processes, parallel workers included, read from ``/proc`` when
the server is local; plus this client's own) with the load average -- the machine may be
shared -- and writes the table between ``<!-- begin:postgis-classify -->`` /
``<!-- end:postgis-classify -->`` in ``--out``. ``--reuse`` keeps a blank list of the same
size loaded by an interrupted earlier run (the load alone takes a minute).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _blocks import write_block  # noqa: E402
from scale import AS_OF, COMPARED, enforcement_frame  # noqa: E402

SCHEMA = "bw_pgbench"


def _server_cpu(conn) -> float | None:  # noqa: ANN001 - a SQLAlchemy connection
    """CPU seconds of the server's processes so far (live children + reaped ones)."""
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    tick = os.sysconf("SC_CLK_TCK")
    try:
        master = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        total = 0.0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                f = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == master:
                total += (int(f[11]) + int(f[12])) / tick
        f = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()
        return total + sum(int(v) for v in f[11:15]) / tick
    except (OSError, ValueError, IndexError):
        return None


def _blank(frame):  # noqa: ANN001, ANN202 - a GeoDataFrame
    """The list as a load stores it before any classification (classified columns blank)."""
    out = frame.copy()
    for c in (*COMPARED, "price_measures", "deadline", "deadline_status"):
        out[c] = ""
    out["verdict"] = "no_action"
    return out


def _classify(store, as_of) -> tuple[float, float | None, float]:  # noqa: ANN001
    """Wall, CPU (server + client) and client CPU seconds of one classify_in_database.

    The list is vacuumed first (untimed): otherwise autovacuum's pass over a freshly
    written 1M-row table may land inside the timing, as it would not on a settled table.
    """
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) enterprises")
    with store.engine.connect() as conn:
        c0, p0 = _server_cpu(conn), time.process_time()
        t0 = time.perf_counter()
        store.classify_in_database(as_of=as_of)
        wall = time.perf_counter() - t0
        c1, p1 = _server_cpu(conn), time.process_time()
    return wall, None if c0 is None or c1 is None else c1 - c0 + p1 - p0, p1 - p0


def run(size: int, url: str, reuse: bool, schema: str = SCHEMA) -> dict[str, object]:
    """Time the in-process engine and three in-database runs at ``size`` rows, comparing
    every row with the in-process result after each run that writes."""
    from _measure import enterprises
    from sqlalchemy import text

    from api.store.base import FeatureQuery
    from api.store.postgis import PostGISStore
    from geo.classify import classify
    from geo.rules import apply_rules

    gdf = enterprises(size, 2019)
    apply_rules(classify(gdf.iloc[:1000]), as_of=AS_OF)  # indexes built outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    apply_rules(classify(gdf), as_of=AS_OF)
    single = (time.perf_counter() - t0, time.process_time() - c0)

    expect = enforcement_frame(size)
    exp = expect.reset_index(drop=True)
    store = PostGISStore(url, schema=schema)
    store.init()
    out: dict[str, object] = {"single": single, "rows": len(expect), "differences": {}}
    with store.engine.connect() as conn:
        held, blank = conn.exec_driver_sql(
            "SELECT count(*), count(*) FILTER (WHERE district = '') FROM enterprises").one()
    if not (reuse and held == blank == len(expect)):
        t0 = time.perf_counter()
        store.load_enterprises(_blank(expect), loaded_by="bench", source_name="synthetic",
                               source_sha256="0" * 64)
        out["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.load_reference_layers()
    out["reference_s"] = time.perf_counter() - t0

    def check(label: str) -> None:
        back = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
        bad = {c: int((back[c].astype(str).to_numpy() != exp[c].astype(str).to_numpy()).sum())
               for c in COMPARED}
        out["differences"].update({f"{label}: {c}": n for c, n in bad.items() if n})

    out["first"] = _classify(store, AS_OF)  # every row changes: the table is rewritten
    check("first")
    out["same"] = _classify(store, AS_OF)  # nothing changed: nothing written
    stale = max(1, len(expect) // 100)
    with store.engine.begin() as conn:  # 1 % of the rows out of date
        conn.execute(text("UPDATE enterprises SET verdict = 'x', district = '' "
                          "WHERE fid % 100 = 0"))
    out["stale"] = stale
    out["few"] = _classify(store, AS_OF)  # updated in place
    check("few")
    store.close()
    return out


def render(size: int, r: dict[str, object], load: str) -> str:
    """Markdown of the result."""
    single = r["single"]
    same = "yes" if not r["differences"] else f"NO {r['differences']}"

    def row(label: str, key: str, check: str) -> str:
        wall, cpu, client = r[key]
        cpu_s = "n/a" if cpu is None else f"{cpu:.1f} ({client:.1f} client)"
        return f"| {label} | {wall:.2f} | {cpu_s} | {check} |"

    return "\n".join([
        "## PostGIS in-database classification",
        "",
        f"`python benchmarks/postgis_classify.py --size {size}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {r['rows']:,} enterprises (rows "
        f"outside every district dropped), {os.cpu_count()} cores, load average {load} "
        "(CPU s: the PostgreSQL server's processes, parallel workers included, plus the "
        "client).",
        "",
        "| path | wall s | CPU s | same as in process |",
        "|---|---:|---:|---|",
        f"| in process (`classify` + `apply_rules`, indexes prebuilt) | {single[0]:.2f} | "
        f"{single[1]:.2f} | reference |",
        row("PostGIS `classify_in_database`, first run on the stored list (every row "
            "changes: new table, 9 indexes from 2 connections, swap)", "first", same),
        row("the same again (nothing changed: nothing written)", "same", "(unchanged)"),
        row(f"after {r['stale']:,} rows (1 %) went out of date (updated in place)", "few",
            same),
        "",
        f"Reference layers + cell grid build (once per layer version): "
        f"{r['reference_s']:.1f} s"
        + (f"; list load {r['load_s']:.1f} s." if "load_s" in r else "."),
    ])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--postgis", default=os.environ.get("BASINWATCH_TEST_DATABASE_URL"))
    p.add_argument("--reuse", action="store_true",
                   help="keep a blank (never classified) list of the same size already loaded")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--schema", default=SCHEMA)
    args = p.parse_args(argv)
    if not args.postgis:
        p.error("--postgis URL (or BASINWATCH_TEST_DATABASE_URL) is required")
    r = run(args.size, args.postgis, args.reuse, args.schema)
    md = render(args.size, r, " ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(md)
    if args.out is not None:
        write_block(args.out, "postgis-classify", md)
    return 0 if not r["differences"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
