"""The ``basinwatch`` command line: an adapter over the engine's public functions."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.layers_cli import layers_app
from geo.errors import GeoError

app = typer.Typer(
    name="basinwatch",
    help="BasinWatch: Guangdong priority-basin enforcement lists from an enterprise registry.",
    no_args_is_help=True,
    add_completion=False,
)
raster_app = typer.Typer(help="Raster products (density surfaces).", no_args_is_help=True)
app.add_typer(raster_app, name="raster")
app.add_typer(layers_app, name="layers")

console = Console(stderr=True)

_STEPS = {
    "ingest": "读取名录 / reading registry",
    "geocode": "地理编码 / geocoding",
    "classify": "空间归属与规则判定 / classifying and applying rules",
}


def _fail(exc: GeoError) -> None:
    console.print(f"[bold red]error:[/] {exc.msg}")
    raise typer.Exit(code=2)


def _parse_date(value: Optional[str]) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint="--as-of")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


@app.command()
def run(
    registry: Annotated[
        Optional[Path],
        typer.Argument(help="CSV/XLSX registry; default: the bundled synthetic sample."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    as_of: Annotated[
        Optional[str], typer.Option(help="Evaluate rules at this date (YYYY-MM-DD).")
    ] = None,
    no_map: Annotated[bool, typer.Option("--no-map", help="Skip map.html.")] = False,
) -> None:
    """Classify a registry and write the enforcement lists, rejected rows and map."""
    from geo.export import export_all
    from geo.pipeline import run_pipeline

    when = _parse_date(as_of)
    if registry is not None and not registry.exists():
        raise typer.BadParameter(f"no such file: {registry}", param_hint="REGISTRY")
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=True,
        ) as bar:
            task = bar.add_task("starting", total=len(_STEPS) + 1)

            def step(name: str) -> None:
                bar.update(task, description=_STEPS.get(name, name), advance=1)

            result = run_pipeline(registry, as_of=when, progress=step)
            step("写出结果 / writing outputs")
            out.mkdir(parents=True, exist_ok=True)
            paths = export_all(result.enterprises, result.rejected, out)
            if not no_map:
                from layers.webmap import build_map, save_offline_html

                save_offline_html(build_map(result.enterprises), out / "map.html")
                paths["map"] = out / "map.html"
    except GeoError as exc:
        _fail(exc)

    table = Table(title=f"{result.source_rows} 行 / rows → {out}")
    table.add_column("verdict")
    table.add_column("count", justify="right")
    for verdict, count in sorted(result.verdict_counts.items()):
        table.add_row(verdict, str(count))
    table.add_row("rejected", str(len(result.rejected)))
    Console().print(table)
    for kind, path in paths.items():
        Console().print(f"  {kind:>10}: {path}")


@app.command()
def locate(
    lon: Annotated[float, typer.Argument(help="Longitude.")],
    lat: Annotated[float, typer.Argument(help="Latitude.")],
    crs: Annotated[str, typer.Option(help="WGS84, CGCS2000, GCJ02 or BD09.")] = "WGS84",
    as_of: Annotated[Optional[str], typer.Option(help="Rule date (YYYY-MM-DD).")] = None,
) -> None:
    """Print, as JSON, what lies at a point and what applies there to each industry."""
    from geo.pipeline import locate as _locate

    try:
        answer = _locate(lon, lat, crs, as_of=_parse_date(as_of))
    except GeoError as exc:
        _fail(exc)
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))


@app.command()
def sample(
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("registry_synthetic.csv"),
    n: Annotated[int, typer.Option("-n", help="Number of enterprises.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2019,
) -> None:
    """Write a seeded synthetic registry (clearly labelled synthetic)."""
    from geo.synthetic import synthetic_registry, write_registry

    frame = synthetic_registry(n, seed=seed)
    write_registry(frame, out)
    console.print(f"wrote {len(frame)} synthetic rows to {out}")


def _load_into_store(store: object, registry: Optional[Path], who: str,
                     as_of: date | None = None) -> str:
    """Run the pipeline on ``registry`` (default: the sample), load it into ``store`` and
    apply the load to the enforcement cases."""
    from api.casework import sync_cases
    from geo.pipeline import run_pipeline

    result = run_pipeline(registry, as_of=as_of)
    name = registry.name if registry else "registry_synthetic.csv (sample)"
    rec = store.load_enterprises(  # type: ignore[attr-defined]
        result.enterprises, loaded_by=who, source_name=name,
        source_sha256=result.source_sha256, rejected=len(result.rejected),
    )
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
                                       _parse_date(as_of)))
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
) -> None:
    """Serve the HTTP API, OGC API Features and the web map (embedded store by default)."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store

    settings = Settings()
    store = get_store(settings.database_url, data_dir=settings.data_dir)
    store.init()
    if sample_if_empty and not store.loads():
        console.print(_load_into_store(store, None, "serve:sample"))
    console.print(f"BasinWatch on http://{host}:{port}/  (API docs: /docs)")
    uvicorn.run(create_app(settings, store=store), host=host, port=port, log_level="warning")


_DENSITY_BY = {"industry": "industry_id", "verdict": "verdict"}


@raster_app.command("density")
def raster_density(
    registry: Annotated[
        Optional[Path], typer.Argument(help="CSV/XLSX registry; default: the bundled sample.")
    ] = None,
    cell: Annotated[float, typer.Option(help="Cell size in metres.")] = 1000.0,
    by: Annotated[
        Optional[str], typer.Option(help="One band per category: industry or verdict.")
    ] = None,
    smooth: Annotated[
        Optional[float], typer.Option(help="Gaussian smoothing sigma, in cells.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF (COG).")] = Path(
        "density.tif"
    ),
) -> None:
    """Enterprise density surface (count per cell) as a Cloud-Optimized GeoTIFF."""
    from geo.pipeline import run_pipeline
    from geo.raster import density, write_cog
    from layers.catalog import industries, rules

    if by is not None and by not in _DENSITY_BY:
        raise typer.BadParameter("expected 'industry' or 'verdict'", param_hint="--by")
    if registry is not None and not registry.exists():
        raise typer.BadParameter(f"no such file: {registry}", param_hint="REGISTRY")
    categories = {
        "industry": [i.id for i in industries()],
        "verdict": [v.id for v in rules().verdicts],
    }.get(by or "")
    try:
        result = run_pipeline(registry)
        raster = density(
            result.enterprises, cell_m=cell, by=_DENSITY_BY.get(by or ""),
            smooth_sigma_cells=smooth, categories=categories,
        )
        path = write_cog(raster, out)
    except GeoError as exc:
        _fail(exc)
    console.print(
        f"wrote {path}: {raster.array.shape[2]}x{raster.array.shape[1]} cells of {cell:g} m, "
        f"bands {', '.join(raster.band_names)}"
    )


from api import cli_cases  # noqa: E402  - registers `report`, `cases`, `monitoring`

cli_cases.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
