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

from geo.errors import GeoError

app = typer.Typer(
    name="basinwatch",
    help="BasinWatch: Guangdong priority-basin enforcement lists from an enterprise registry.",
    no_args_is_help=True,
    add_completion=False,
)
raster_app = typer.Typer(help="Raster products (density surfaces).", no_args_is_help=True)
app.add_typer(raster_app, name="raster")

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


@app.command()
def layers() -> None:
    """List the reference layers with their provenance."""
    from layers.registry import list_layers

    table = Table()
    for col in ("id", "标题", "kind", "accuracy_m", "source"):
        table.add_column(col)
    for info in list_layers():
        prov = info.provenance
        table.add_row(
            info.id, info.title_zh, info.kind,
            str(prov.accuracy_m) if prov else "", prov.source if prov else "",
        )
    Console().print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
