"""The ``basinwatch`` command line: an adapter over the engine's public functions.

Misuse gets a message naming the option or file and what was expected, never a traceback:
typer checks option types and ranges, the commands check paths before any work starts,
and every :class:`~geo.errors.GeoError` becomes ``error: <message>`` with exit code 2.

Long work shows one progress line per stage (read, geocode, classify, rules, each output)
with row counts, on stderr, only when stdout and stderr are terminals; ``-v`` adds plain
log lines written for the user (also when not a terminal).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.layers_cli import layers_app
from geo.errors import GeoError, RasterError
from geo.parallel import peak_rss_mb as _peak_rss_mb
from geo.parallel import reset_peak_rss as _reset_peak_rss

if TYPE_CHECKING:
    from geo.parallel import Job, JobStats
    from geo.pipeline import PipelineResult

app = typer.Typer(
    name="basinwatch",
    help="BasinWatch: Guangdong priority-basin enforcement lists from an enterprise registry.",
    no_args_is_help=True,
    add_completion=False,
    # click's plain help: flags without typer's "<bool>" type column, lines that wrap
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)
raster_app = typer.Typer(help="Raster products (density surfaces).", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(raster_app, name="raster")
app.add_typer(layers_app, name="layers")

console = Console(stderr=True)
log = logging.getLogger("basinwatch")

#: Stage -> what the user sees in the progress lines and ``-v`` log.
_STAGES = {
    "read": "读取名录 / reading the registry",
    "geocode": "定位 / locating (coordinates, addresses)",
    "classify": "空间归属 / placing in districts, basins, parks",
    "rules": "规则判定 / applying the plan's rules",
    "csv": "写出 / writing enforcement_list.csv",
    "geojson": "写出 / writing enforcement_list.geojson",
    "xlsx": "写出 / writing enforcement_list.xlsx",
    "gpkg": "写出 / writing enforcement_list.gpkg",
    "rejected": "写出 / writing rejected_rows.csv",
    "provenance": "写出 / writing enforcement_list.provenance.json",
    "map": "写出 / writing map.html",
}
#: Unit of the row count a stage reports when it ends.
_UNITS = {"read": "行 / rows", "rejected": "行 / rows", "provenance": "个文件 / files"}


def _fail(exc: GeoError) -> None:
    console.print(f"[bold red]error:[/] {exc.msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _interactive() -> bool:
    """Live progress only when a person watches: stdout and stderr are terminals."""
    return sys.stdout.isatty() and console.is_terminal


class StageProgress:
    """One line per stage with its row count.

    A rich progress display on a terminal, ``-v`` log lines otherwise; the ``progress``
    callback of :func:`geo.pipeline.run_pipeline` and :func:`geo.export.export_all`.
    """

    def __init__(self, *, live: bool, out: Console | None = None) -> None:
        self.bar = (
            Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description}"),
                TextColumn("[cyan]{task.fields[rows]}"),
                TimeElapsedColumn(),
                console=out or console,
            )
            if live
            else None
        )
        self.tasks: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}
        self.cpu_started: dict[str, float] = {}
        #: stage -> {"seconds", "cpu_seconds", "rows", "peak_rss_mb"} of each finished stage
        self.timings: dict[str, dict[str, float | int | None]] = {}

    def __enter__(self) -> StageProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, stage: str, rows: int | None = None, *, done: bool = False) -> None:
        label = _STAGES.get(stage, stage)
        unit = _UNITS.get(stage, "家企业 / enterprises")
        count = "" if rows is None else f"{rows:,} {unit}"
        if not done:
            _reset_peak_rss()
            self.started[stage] = time.perf_counter()
            self.cpu_started[stage] = time.process_time()
            if self.bar is not None:
                self.tasks[stage] = self.bar.add_task(label, total=1, rows=count)
            return
        seconds = time.perf_counter() - self.started.get(stage, time.perf_counter())
        cpu = time.process_time() - self.cpu_started.get(stage, time.process_time())
        self.timings[stage] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                               "rows": rows,
                               "peak_rss_mb": _peak_rss_mb()}
        if self.bar is not None and stage in self.tasks:
            self.bar.update(self.tasks[stage], completed=1, rows=count)
        log.info("%s: %s (%.1f s)", label, count, seconds)


    def record_jobs(self, stats: dict[str, JobStats]) -> None:
        """Replace the timings of stages run in worker processes by the workers' own
        figures (the parent's clock would count the queue, its CPU clock nothing); stages
        this process ran itself keep the figures measured here."""
        for stage, st in stats.items():
            if st.pid == os.getpid():
                continue
            self.timings[stage] = {**self.timings.get(stage, {}),
                                   "seconds": round(st.seconds, 3),
                                   "cpu_seconds": round(st.cpu_seconds, 3),
                                   "peak_rss_mb": st.peak_rss_mb, "worker_pid": st.pid}


def default_workers() -> int:
    """Writer processes of ``basinwatch run``: 2 on a machine with 2+ cores, else 1.

    This process and one forked writer (``export_all(parent_writes=True)``). Measured
    (BENCHMARKS.md, pipeline): two forked writers beside an idle parent took a 1M-row run's
    process tree from 3.1 to 5.0 GB; with the parent writing too and the repeated text as
    Categoricals the tree peaks at 2.8 GB at 1M, so two processes are the default at any
    size.
    """
    return 2 if (os.cpu_count() or 1) > 1 else 1


def _map_job(result: PipelineResult, out: Path) -> Job:
    """map.html as one more writer of ``export_all`` (run beside the files)."""
    from geo.parallel import Job

    def write() -> Path:
        from layers.webmap import build_map, save_offline_html

        m = build_map(result.enterprises, provenance=result.provenance)
        return save_offline_html(m, out / "map.html")

    from geo.export import WRITER_COST

    n = len(result.enterprises)
    return Job("map", n, write, cost=n * WRITER_COST["map"])


def _write_timings(path: Path, step: StageProgress, total: float) -> None:
    """Stage timings of a run as JSON (``--timings``; read by benchmarks/pipeline_bench.py)."""
    peaks = [t["peak_rss_mb"] for t in step.timings.values()] + [_peak_rss_mb()]
    body = {
        "stages": step.timings,
        "total_seconds": round(total, 3),
        # the stages' peaks cover the run (the kernel's own peak is reset at each stage)
        "peak_rss_mb": max((p for p in peaks if p is not None), default=None),
    }
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def _parse_date(value: Optional[str]) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint="--as-of")


def _check_registry(registry: Optional[Path]) -> None:
    if registry is None:
        return
    if not registry.exists():
        raise typer.BadParameter(f"no such file: {registry}", param_hint="REGISTRY")
    if registry.is_dir():
        raise typer.BadParameter(
            f"{registry} is a folder; expected a CSV or XLSX registry file",
            param_hint="REGISTRY",
        )


def _check_out_file(out: Path, option: str = "--out") -> None:
    if out.is_dir():
        raise typer.BadParameter(f"{out} is a folder; expected a file name", param_hint=option)


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print what each step did.")
    ] = False,
) -> None:
    # on a terminal rich keeps log lines and live progress apart; elsewhere plain lines,
    # never padded or wrapped to a console width
    handler: logging.Handler = (
        RichHandler(console=console, show_time=False, show_path=False, show_level=False,
                    markup=False, highlighter=None)
        if console.is_terminal
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    level = logging.INFO if verbose else logging.WARNING
    for name in ("basinwatch", "geo", "layers", "api"):
        logging.getLogger(name).setLevel(level)


def _summary(result: Any, out: Path, paths: dict[str, Path]) -> None:
    """The run summary on stdout: verdicts strongest first with Chinese labels."""
    from layers.catalog import rules

    screen = Console()
    table = Table(title=f"{result.source_rows:,} 行 / rows → {out}")
    table.add_column("处置结论 / verdict")
    table.add_column("企业数 / enterprises", justify="right")
    counts = result.verdict_counts
    for verdict in rules().verdicts:
        table.add_row(f"{verdict.label_zh} ({verdict.id})", f"{counts.get(verdict.id, 0):,}")
    for other in sorted(set(counts) - {v.id for v in rules().verdicts}):
        table.add_row(other, f"{counts[other]:,}")
    table.add_section()
    table.add_row("合计 / listed", f"{len(result.enterprises):,}")
    table.add_row("未采用的名录行 / rows not used", f"{len(result.rejected):,}")
    screen.print(table)
    for kind, path in paths.items():
        screen.print(f"  {kind:>10}: {path}", highlight=False, soft_wrap=True)
    if len(result.enterprises) == 0:
        console.print(
            "[bold yellow]warning:[/] 没有可用的名录行 / no registry row could be used; "
            f"see {paths.get('rejected', out / 'rejected_rows.csv')}", highlight=False,
            soft_wrap=True,
        )


@app.command()
def run(
    registry: Annotated[
        Optional[Path],
        typer.Argument(help="CSV/XLSX registry; default: the bundled synthetic sample.",
                       show_default=False),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    as_of: Annotated[
        Optional[str],
        typer.Option(help="Evaluate rules at this date (YYYY-MM-DD): which rules are in force "
                          "and which deadlines are overdue; default today.",
                     metavar="YYYY-MM-DD"),
    ] = None,
    equipment: Annotated[
        Optional[Path],
        typer.Option("--equipment", help="Equipment inventory (设备清单) CSV/XLSX; default: the "
                                         "registry XLSX's 设备清单 (or second) sheet."),
    ] = None,
    no_map: Annotated[bool, typer.Option("--no-map", help="Skip map.html.")] = False,
    timings: Annotated[
        Optional[Path],
        typer.Option("--timings", envvar="BASINWATCH_TIMINGS", metavar="FILE",
                     help="Also write each stage's seconds and peak memory as JSON to FILE."),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", envvar="BASINWATCH_RUN_WORKERS", min=1,
                     help="Write the output files side by side in this many processes, this "
                          "one included (default: 2 on a machine with 2+ cores, else 1)."),
    ] = None,
) -> None:
    """Classify a registry and write the enforcement lists, rejected rows and map."""
    from geo.export import compact_text, export_all
    from geo.pipeline import run_pipeline

    when = _parse_date(as_of)
    _check_registry(registry)
    if equipment is not None and (not equipment.exists() or equipment.is_dir()):
        raise typer.BadParameter(f"no such file: {equipment}", param_hint="--equipment")
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file; expected a folder", param_hint="--out")
    if timings is not None:
        _check_out_file(timings, "--timings")
    started = time.perf_counter()
    try:
        with StageProgress(live=_interactive()) as step:
            result = run_pipeline(registry, equipment=equipment, as_of=when, progress=step)
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise GeoError(
                    f"Cannot create the output folder {out}: {exc.strerror}."
                ) from exc
            if workers is None:
                workers = default_workers()
            # repeated text as Categoricals: ~1.2 GB less at 1M rows held by this process
            # while the files are written (and by any forked writer); the same files
            result.enterprises = compact_text(result.enterprises)
            result.units = compact_text(result.units)
            also = [] if no_map else [_map_job(result, out)]
            stats: dict[str, JobStats] = {}
            paths = export_all(result.enterprises, result.rejected, out,
                               provenance=result.provenance, progress=step,
                               units=result.units, workers=workers, also=also, stats=stats,
                               parent_writes=True)
            if workers > 1:  # the writers' own figures, measured where they ran
                step.record_jobs(stats)
    except GeoError as exc:
        _fail(exc)
    if timings is not None:
        _write_timings(timings, step, time.perf_counter() - started)
    _summary(result, out, paths)


@app.command()
def locate(
    lon: Annotated[float, typer.Argument(help="Longitude, degrees.")],
    lat: Annotated[float, typer.Argument(help="Latitude, degrees.")],
    crs: Annotated[str, typer.Option(help="WGS84, CGCS2000, GCJ02 or BD09.")] = "WGS84",
    as_of: Annotated[
        Optional[str], typer.Option(help="Rule date (YYYY-MM-DD); default today.",
                                    metavar="YYYY-MM-DD")
    ] = None,
) -> None:
    """Print, as JSON, what lies at a point and what applies there to each industry."""
    from geo.pipeline import locate as _locate

    when = _parse_date(as_of)
    try:
        answer = _locate(lon, lat, crs, as_of=when)
    except GeoError as exc:
        _fail(exc)
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))


@app.command()
def sample(
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV or XLSX file to write.")] = Path(
        "registry_synthetic.csv"
    ),
    n: Annotated[
        int, typer.Option("-n", min=1, max=5_000_000, metavar="N",
                          help="Number of enterprises (1 to 5,000,000).")
    ] = 3000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (>= 0).")] = 2019,
    equipment_out: Annotated[
        Optional[Path],
        typer.Option("--equipment-out", help="Equipment inventory CSV (default: next to --out; "
                                             "for .xlsx the inventory is the 2nd sheet)."),
    ] = None,
) -> None:
    """Write a seeded synthetic registry and equipment inventory (clearly labelled synthetic)."""
    from geo.synthetic import synthetic_dataset, write_dataset

    _check_out_file(out)
    try:
        data = synthetic_dataset(n, seed=seed)
        reg, equ = write_dataset(data, out, equipment_out)
    except GeoError as exc:
        _fail(exc)
    console.print(f"wrote {len(data.registry):,} synthetic enterprises to {reg} and "
                  f"{len(data.equipment):,} equipment units to {equ or reg}", highlight=False)


def _load_into_store(store: object, registry: Optional[Path], who: str,
                     as_of: date | None = None, equipment: Optional[Path] = None) -> str:
    """Run the pipeline on ``registry`` (default: the sample), load it into ``store`` and
    apply the load to the enforcement cases."""
    from api.casework import sync_cases
    from geo.pipeline import run_pipeline

    result = run_pipeline(registry, equipment=equipment, as_of=as_of)
    name = registry.name if registry else "registry_synthetic.csv (sample)"
    rec = store.load_enterprises(  # type: ignore[attr-defined]
        result.enterprises, loaded_by=who, source_name=name,
        source_sha256=result.source_sha256, rejected=len(result.rejected),
    )
    if hasattr(store, "store_rule_inputs"):  # PostGIS keeps them for in-database re-runs
        store.store_rule_inputs(result.enterprises, result.units)
    synced = sync_cases(store, as_of=as_of, recorded_by=who)  # type: ignore[arg-type]
    cases = f"; cases {synced.counts}" if synced else ""
    return f"load {rec.load_id}: {len(result.enterprises)} enterprises from {name}{cases}"


@app.command()
def load(
    registry: Annotated[
        Optional[Path], typer.Argument(help="CSV/XLSX registry; default: the bundled sample.")
    ] = None,
    database_url: Annotated[
        Optional[str], typer.Option(envvar="BASINWATCH_DATABASE_URL", help="PostGIS URL or .gpkg")
    ] = None,
    as_of: Annotated[
        Optional[str], typer.Option(help="Date the load describes (rules, case changes).")
    ] = None,
    equipment: Annotated[
        Optional[Path], typer.Option("--equipment", help="Equipment inventory (设备清单) CSV/XLSX.")
    ] = None,
) -> None:
    """Classify a registry and load it into the store (atomic, versioned); its verdicts open
    or update the enforcement cases."""
    import getpass

    from api.settings import Settings
    from api.store import get_store

    if registry is not None and not registry.exists():
        raise typer.BadParameter(f"no such file: {registry}", param_hint="REGISTRY")
    settings = Settings()
    store = get_store(database_url or settings.database_url, data_dir=settings.data_dir)
    try:
        store.init()
        console.print(_load_into_store(store, registry, f"cli:{getpass.getuser()}",
                                       _parse_date(as_of), equipment))
    except GeoError as exc:
        _fail(exc)
    finally:
        store.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    sample_if_empty: Annotated[
        bool, typer.Option(help="Load the bundled sample when the store holds no list yet.")
    ] = True,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (method, path and query, status, ms).")
    ] = False,
    forwarded_allow_ips: Annotated[
        Optional[str], typer.Option(help="Proxies whose X-Forwarded-For/-Proto are believed "
                                         "(comma-separated; default: none).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (uvicorn); each builds the app from "
                                      "the BASINWATCH_* settings and answers on the same port.")
    ] = 1,
) -> None:
    """Serve the HTTP API, OGC API Features and the web map (embedded store by default)."""
    import os

    import uvicorn

    from api.app import create_app, enable_access_log
    from api.settings import Settings
    from api.store import get_store

    settings = Settings()
    store = get_store(settings.database_url, data_dir=settings.data_dir)
    store.init()
    if sample_if_empty and not store.loads():
        console.print(_load_into_store(store, None, "serve:sample"))
    console.print(f"BasinWatch on http://{host}:{port}/  (API docs: /docs, {workers} worker"
                  f"{'s' if workers > 1 else ''})")
    common: dict[str, Any] = {"host": host, "port": port, "log_level": "warning",
                              "proxy_headers": forwarded_allow_ips is not None,
                              "forwarded_allow_ips": forwarded_allow_ips or ""}
    if workers == 1:
        if access_log:
            enable_access_log()
        uvicorn.run(create_app(settings, store=store), **common)
        return
    # worker processes are spawned: they read the same settings from the environment
    store.close()
    if access_log:
        os.environ["BASINWATCH_ACCESS_LOG"] = "1"
    uvicorn.run("api.app:app_from_env", factory=True, workers=workers,
                timeout_worker_healthcheck=120, **common)


@app.command("hash-key")
def hash_key_command(
    new: Annotated[bool, typer.Option("--new", help="Generate a new random key too.")] = False,
) -> None:
    """Print the sha256: hash of an API key, to store in BASINWATCH_API_KEYS instead of it.

    The key is read from standard input (or a hidden prompt), never from the command line,
    so it stays out of shell history. With --new a random key is generated and printed once.
    """
    import secrets
    import sys

    from api.settings import check_key_strength, hash_key

    if new:
        key = secrets.token_urlsafe(32)
        typer.echo(f"key (give it to its holder; it is not stored): {key}", err=True)
    elif sys.stdin.isatty():
        key = typer.prompt("API key", hide_input=True)
    else:
        key = sys.stdin.readline().strip()
    try:
        check_key_strength(key)
    except ValueError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    typer.echo(hash_key(key))


_DENSITY_BY = {"industry": "industry_id", "verdict": "verdict"}


@raster_app.command("density")
def raster_density(
    registry: Annotated[
        Optional[Path], typer.Argument(help="CSV/XLSX registry; default: the bundled sample.",
                                       show_default=False)
    ] = None,
    cell: Annotated[float, typer.Option(help="Cell size in metres (> 0).")] = 1000.0,
    by: Annotated[
        Optional[str], typer.Option(help="One band per category: industry or verdict.")
    ] = None,
    smooth: Annotated[
        Optional[float], typer.Option(help="Gaussian smoothing sigma, in cells (> 0).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF (COG).")] = Path(
        "density.tif"
    ),
) -> None:
    """Enterprise density surface (count per cell) as a Cloud-Optimized GeoTIFF."""
    import math

    from geo.pipeline import run_pipeline
    from geo.raster import density, write_cog
    from layers.catalog import industries, rules

    if by is not None and by not in _DENSITY_BY:
        raise typer.BadParameter(f"expected 'industry' or 'verdict', got {by!r}",
                                 param_hint="--by")
    if not (math.isfinite(cell) and cell > 0):
        raise typer.BadParameter(f"expected a positive number of metres, got {cell:g}",
                                 param_hint="--cell")
    if smooth is not None and not (math.isfinite(smooth) and smooth > 0):
        raise typer.BadParameter(f"expected a positive number of cells, got {smooth:g}",
                                 param_hint="--smooth")
    _check_registry(registry)
    _check_out_file(out)
    categories = {
        "industry": [i.id for i in industries()],
        "verdict": [v.id for v in rules().verdicts],
    }.get(by or "")
    try:
        with StageProgress(live=_interactive()) as step:
            result = run_pipeline(registry, progress=step)
            raster = density(
                result.enterprises, cell_m=cell, by=_DENSITY_BY.get(by or ""),
                smooth_sigma_cells=smooth, categories=categories,
            )
            path = write_cog(raster, out)
    except RasterError as exc:  # the engine names its parameters; the user typed options
        _fail(RasterError(exc.msg.replace("cell_m", "--cell")
                          .replace("smooth_sigma_cells", "--smooth")))
    except GeoError as exc:
        _fail(exc)
    console.print(
        f"wrote {path}: {raster.array.shape[2]}x{raster.array.shape[1]} cells of {cell:g} m, "
        f"bands {', '.join(raster.band_names)}, CRS {raster.crs.name}", highlight=False,
    )


from api import cli_cases  # noqa: E402  - registers `report`, `cases`, `monitoring`

cli_cases.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
