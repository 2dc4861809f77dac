"""CLI commands of the enforcement year: ``report``, ``cases ...``, ``monitoring ...``.

Registered on the main typer app by :func:`register` (``api/cli.py`` calls it), so this
module owns its commands without editing the others::

    basinwatch report --as-of 2019-06-30 [--out DIR]      what is due, what is late; lists
    basinwatch cases sync [--as-of DATE]                  apply the newest load to the cases
    basinwatch cases show [--as-of DATE] [--basin ID]     case states on a date
    basinwatch cases import CHANGES.xlsx [--dry-run]      status changes from a spreadsheet
    basinwatch cases demo-year                            a SYNTHETIC 2019 for demos
    basinwatch monitoring load DATA.csv                   store monitoring data
    basinwatch monitoring sample --out DATA.csv           seeded synthetic monitoring year
"""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from geo.errors import GeoError

__all__ = ["register", "cases_app", "monitoring_app"]

console = Console(stderr=True)
cases_app = typer.Typer(help="Enforcement cases: sync, show, import changes.",
                        no_args_is_help=True)
monitoring_app = typer.Typer(help="Discharge monitoring data.", no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option(
    "--database-url", envvar="BASINWATCH_DATABASE_URL", help="PostGIS URL or .gpkg path")]
AsOfOption = Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD); default today.")]


def _date(value: str | None, default: date | None = None) -> date:
    if value is None:
        return default or date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from None


def _store(database_url: str | None) -> Any:
    from api.settings import Settings
    from api.store import get_store

    settings = Settings()
    store = get_store(database_url or settings.database_url, data_dir=settings.data_dir)
    store.init()
    return store


def _fail(exc: GeoError) -> None:
    console.print(f"[bold red]error:[/] {exc.msg}")
    raise typer.Exit(code=2)


def _table(title: str, df: Any, columns: list[str]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for row in df[columns].astype(str).itertuples(index=False, name=None):
        t.add_row(*row)
    return t


def report(
    as_of: AsOfOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write every list (Excel) and report.json here.")] = None,
    by: Annotated[str, typer.Option(help="Summary by basin_id, city, industry, dimensions.")]
    = "basin_id",
    database_url: DbOption = None,
) -> None:
    """What is due and what is late on a date; overdue cases; the case summary."""
    from api import casework
    from geo.caselists import write_all_lists
    from geo.cases import summary

    when = _date(as_of)
    store = _store(database_url)
    try:
        rep = casework.report(store, when)
        state = casework.case_states(store, when)
        summ = summary(state, by=by)
        out_console = Console()
        items = rep["items"].assign(due=rep["items"]["due"].astype(str))
        out_console.print(_table(f"工作进度 / calendar on {when}", items,
                                 ["due", "state", "days", "title_zh", "missing", "lists"]))
        if len(rep["overdue"]):
            out_console.print(_table("逾期案件 / overdue cases per department", rep["overdue"],
                                     ["department", "overdue", "max_days_overdue"]))
        cols = [c for c in ("cases", "identified", "notified", "rectifying", "reinspected",
                            "shut_down", "closed", "accepted", "overdue", "exited",
                            "capacity_exited") if c in summ]
        out_console.print(_table(f"案件汇总 / cases by {by}", summ, [by, *cols]))
        if out is not None:
            paths = write_all_lists(casework.all_lists(store, when), out)
            from api.routers.cases import records

            body = {"as_of": when.isoformat(), "items": records(rep["items"]),
                    "overdue_cases": records(rep["overdue"]), "summary": records(summ),
                    "lists": {k: str(v) for k, v in paths.items()}}
            (out / "report.json").write_text(json.dumps(body, ensure_ascii=False, indent=2),
                                             encoding="utf-8")
            for lid, p in paths.items():
                out_console.print(f"  {lid:>28}: {p}")
    except GeoError as exc:
        _fail(exc)
    finally:
        store.close()


@cases_app.command("sync")
def cases_sync(as_of: AsOfOption = None, database_url: DbOption = None) -> None:
    """Apply the store's newest registry load to the cases (if not yet applied)."""
    from api.casework import sync_cases

    store = _store(database_url)
    try:
        rep = sync_cases(store, as_of=_date(as_of) if as_of else None,
                         recorded_by=f"cli:{getpass.getuser()}")
        console.print(f"load {rep.load_id}: {rep.counts}" if rep else "nothing to apply")
        if rep is not None and len(rep.changes):
            Console().print(_table("变更 / changes", rep.changes.head(50),
                                   ["case_id", "name", "field", "before", "after"]))
    finally:
        store.close()


@cases_app.command("show")
def cases_show(
    as_of: AsOfOption = None,
    basin: Annotated[str | None, typer.Option(help="basin id")] = None,
    status: Annotated[str | None, typer.Option(help="status id")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="only overdue cases")] = False,
    limit: Annotated[int, typer.Option(help="rows to print")] = 50,
    database_url: DbOption = None,
) -> None:
    """Case states on a date."""
    from api import casework

    when = _date(as_of)
    store = _store(database_url)
    try:
        s = casework.case_states(store, when)
        if basin:
            s = s[s["basin_id"].eq(basin)]
        if status:
            s = s[s["status"].eq(status)]
        if overdue:
            s = s[s["overdue"]]
        Console().print(_table(f"{len(s)} cases on {when}", s.head(limit).astype(str),
                               ["case_id", "name", "basin_id", "verdict", "status_label",
                                "due", "overdue"]))
    finally:
        store.close()


@cases_app.command("demo-year")
def cases_demo_year(
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2019,
    database_url: DbOption = None,
) -> None:
    """Fill the store with a SYNTHETIC 2019 (sample registry, status changes, monitoring)."""
    from api.casework import load_demo_year

    store = _store(database_url)
    try:
        console.print(f"synthetic year loaded: {load_demo_year(store, seed=seed)}")
    except GeoError as exc:
        _fail(exc)
    finally:
        store.close()


@cases_app.command("import")
def cases_import(
    changes: Annotated[Path, typer.Argument(help="CSV/XLSX of status changes")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only")] = False,
    database_url: DbOption = None,
) -> None:
    """Record status changes from a spreadsheet; print every refused row with its reason."""
    import pandas as pd

    from api import casework
    from geo.cases import read_case_changes

    if not changes.exists():
        raise typer.BadParameter(f"no such file: {changes}", param_hint="CHANGES")
    store = _store(database_url)
    try:
        parsed, rows, bad = read_case_changes(changes, current=casework.current_states(store))
        events, refused = casework.record_changes(
            store, parsed, recorded_by=f"cli:{getpass.getuser()}",
            source=f"import:{changes.name}", rows=rows, dry_run=dry_run)
        rejected = pd.concat([bad, refused], ignore_index=True).sort_values("row")
        console.print(f"{len(rows) - len(refused)} rows applied ({len(events)} field changes)"
                      f"{' (dry run, nothing written)' if dry_run else ''}; {len(rejected)} rows refused")
        if len(rejected):
            Console().print(_table("refused rows", rejected, ["row", "case_id", "message"]))
    except GeoError as exc:
        _fail(exc)
    finally:
        store.close()


@monitoring_app.command("load")
def monitoring_load(
    data: Annotated[Path, typer.Argument(help="CSV/XLSX monitoring file")],
    database_url: DbOption = None,
) -> None:
    """Store a monitoring file's usable rows; print the rejected rows with reasons."""
    import hashlib

    import pandas as pd

    from api.store.casestore import case_store_for
    from api.store import FeatureQuery
    from geo.monitoring import attach_enterprises, read_monitoring

    if not data.exists():
        raise typer.BadParameter(f"no such file: {data}", param_hint="DATA")
    store = _store(database_url)
    try:
        res = read_monitoring(data)
        matched, unmatched = attach_enterprises(res.accepted,
                                                store.query(FeatureQuery()).features)
        keep = res.accepted[res.accepted["row"].isin(matched["row"])]
        rejected = pd.concat([res.rejected, unmatched], ignore_index=True)
        batch = case_store_for(store).add_samples(
            keep, loaded_by=f"cli:{getpass.getuser()}", source_name=data.name,
            source_sha256=hashlib.sha256(data.read_bytes()).hexdigest(),
            rejected=len(rejected))
        console.print(f"batch {batch['batch_id']}: {len(keep)} rows stored, "
                      f"{len(rejected)} rejected of {res.source_rows}")
        if len(rejected):
            Console().print(_table("rejected rows", rejected.head(50),
                                   ["row", "reason", "message"]))
    except GeoError as exc:
        _fail(exc)
    finally:
        store.close()


@monitoring_app.command("sample")
def monitoring_sample(
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("monitoring_synthetic.csv"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2019,
    year: Annotated[int, typer.Option(help="Year of the samples.")] = 2019,
) -> None:
    """Write a seeded synthetic monitoring year for the bundled sample registry
    (exceedances in every basin; clearly labelled synthetic).
    """
    from geo.pipeline import run_pipeline
    from geo.synthetic_year import synthetic_monitoring, write_monitoring

    frame = synthetic_monitoring(run_pipeline(None).enterprises, seed=seed, year=year)
    write_monitoring(frame, out)
    console.print(f"wrote {len(frame)} synthetic monitoring rows to {out}")


def register(app: typer.Typer) -> None:
    """Add ``report``, ``cases`` and ``monitoring`` to the main app."""
    app.command("report")(report)
    app.add_typer(cases_app, name="cases")
    app.add_typer(monitoring_app, name="monitoring")
