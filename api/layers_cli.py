"""``basinwatch layers``: list reference layers; import, check, switch and roll back versions.

A typer sub-app mounted by :mod:`api.cli`; an adapter over :mod:`layers.importer`,
:mod:`layers.impact` and :mod:`layers.versions`.

    basinwatch layers [--lang zh|en] [--format text|json]
    basinwatch layers import FILE --kind basin --id shima [--crs EPSG:4547] [--source ...]
                      [--licence ...] [--accuracy-m 5] [--repair] [--apply]
    basinwatch layers impact shima v2 [--out DIR] [--registry FILE] [--apply]
    basinwatch layers activate shima v2   /   basinwatch layers rollback shima
    basinwatch layers versions shima
"""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from geo.errors import GeoError, LayerNotFoundError

__all__ = ["layers_app"]

layers_app = typer.Typer(
    help="Reference layers: list them with provenance; import, check, switch versions.",
    invoke_without_command=True,
    no_args_is_help=False,
)
console = Console(stderr=True)

_KIND = {
    "zh": {"city": "地级市", "district": "县级行政区", "basin": "流域", "region": "区域",
           "park": "园区", "enterprise": "企业"},
    "en": {},
}
_LABELS = {
    "zh": {"version": "版本", "active": "现行", "runtime": "运行时生成", "source": "来源",
           "method": "方法", "accuracy": "精度", "date": "日期", "licence": "许可",
           "attribution": "署名"},
    "en": {"version": "version", "active": "active", "runtime": "built at run time",
           "source": "Source", "method": "Method", "accuracy": "Accuracy", "date": "Date",
           "licence": "Licence", "attribution": "Attribution"},
}


def _fail(exc: GeoError) -> None:
    console.print(f"[bold red]error:[/] {exc.msg}", soft_wrap=True)
    raise typer.Exit(code=2)


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _listing(lang: str) -> list[dict[str, Any]]:
    from layers.registry import list_layers

    out = []
    for info in list_layers():
        p = info.provenance
        out.append({
            "id": info.id, "title": info.title_zh if lang == "zh" else info.title_en,
            "kind": info.kind, "version": info.version, "source": p.source,
            "method": p.method, "accuracy_m": p.accuracy_m, "date": p.date,
            "licence": p.licence, "attribution": p.attribution,
        })
    return out


def _print_listing(rows: list[dict[str, Any]], lang: str) -> None:
    """One block per layer, one field per line: nothing is cut at any terminal width."""
    lab = _LABELS[lang]
    for r in rows:
        kind = _KIND[lang].get(r["kind"], r["kind"])
        ver = (f"{lab['version']} {r['version']} ({lab['active']})" if r["version"]
               else lab["runtime"])
        typer.echo(f"{r['id']}  {r['title']}  [{kind}]  {ver}")
        acc = f"{r['accuracy_m']:g} m" if r["version"] else "—"
        for key, value in (("source", r["source"]), ("method", r["method"]),
                           ("accuracy", acc), ("date", r["date"]),
                           ("licence", r["licence"]), ("attribution", r["attribution"])):
            typer.echo(f"    {lab[key]}: {value}")
        typer.echo("")


@layers_app.callback()
def layers_main(
    ctx: typer.Context,
    lang: Annotated[str, typer.Option(help="Labels: zh (default) or en.")] = "zh",
    fmt: Annotated[str, typer.Option("--format", help="text (default) or json.")] = "text",
) -> None:
    """List the reference layers: active version, source, method, accuracy, date, licence."""
    if ctx.invoked_subcommand is not None:
        return
    if lang not in _LABELS:
        raise typer.BadParameter("expected zh or en", param_hint="--lang")
    if fmt not in ("text", "json"):
        raise typer.BadParameter("expected text or json", param_hint="--format")
    try:
        rows = _listing(lang)
    except GeoError as exc:
        _fail(exc)
    if fmt == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        _print_listing(rows, lang)


def _parse_fields(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        target, sep, col = v.partition("=")
        if not sep or not target or not col:
            raise typer.BadParameter(f"expected TARGET=COLUMN, got {v!r}", param_hint="--field")
        out[target.strip()] = col.strip()
    return out


def _parse_date(value: Optional[str]) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected YYYY-MM-DD, got {value!r}", param_hint="--as-of"
        ) from None


def _registry_frame(registry_file: Optional[Path], as_of: date | None
                    ) -> tuple[Any, Any, str]:
    """Enterprises (and their equipment units, when known) to test a candidate on: a file,
    else the store (enterprise-level rules only: the store keeps no units), else the
    bundled sample."""
    from api.settings import Settings
    from api.store import FeatureQuery, get_store
    from geo.pipeline import run_pipeline

    if registry_file is not None:
        if not registry_file.exists():
            raise typer.BadParameter(f"no such file: {registry_file}", param_hint="--registry")
        result = run_pipeline(registry_file, as_of=as_of)
        return result.enterprises, result.units, registry_file.name
    settings = Settings()
    store = get_store(settings.database_url, data_dir=settings.data_dir)
    try:
        store.init()
        loads = store.loads()
        if loads:
            frame = store.query(FeatureQuery()).features
            return frame, None, f"stored list (load {loads[0].load_id}, {loads[0].source_name})"
    finally:
        store.close()
    sample = run_pipeline(as_of=as_of)
    return sample.enterprises, sample.units, "bundled sample registry (the store is empty)"


def _run_impact(layer_id: str, version: str, *, registry_file: Optional[Path],
                out: Optional[Path], as_of: date | None) -> Path:
    from layers.impact import impact, write_impact
    from layers.versions import versions_root

    frame, units, what = _registry_frame(registry_file, as_of)
    report = impact(frame, layer_id, version, as_of=as_of, units=units)
    target = out or versions_root() / layer_id / f"{version}-impact"
    paths = write_impact(report, target)
    s = report.summary()
    typer.echo(f"impact of {layer_id} {s['from_version']} -> {version} on {what}:")
    typer.echo(f"  {s['changed']} of {s['enterprises']} enterprises change "
               f"(+{s['review_only']} only in their review flag); area +{s['gained_km2']} / "
               f"-{s['lost_km2']} km²")
    for col, trans in s["transitions"].items():
        for k, n in trans.items():
            typer.echo(f"    {col}: {k}: {n}")
    for kind, path in paths.items():
        typer.echo(f"  {kind:>8}: {path}")
    return target


@layers_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="Boundary file: .zip (Shapefile), .shp, .gpkg, "
                                              ".geojson, .kml, .kmz, .csv (WKT).")],
    kind: Annotated[str, typer.Option(help="basin, region, park or district.")],
    layer_id: Annotated[str, typer.Option("--id", help="Layer id, e.g. shima.")],
    crs: Annotated[Optional[str], typer.Option(
        help="CRS when the file has none: WGS84, CGCS2000, GCJ02, BD09, EPSG:4547, ...")] = None,
    towgs84: Annotated[Optional[str], typer.Option(
        help="Stated Helmert to WGS84 for Xian 1980/Beijing 1954: dx,dy,dz[,rx,ry,rz,ds].")
    ] = None,
    transform: Annotated[Optional[str], typer.Option(
        help="Stated PROJ pipeline from the file's CRS to WGS84 lon/lat.")] = None,
    encoding: Annotated[Optional[str], typer.Option(
        help="Shapefile attribute encoding when there is no .cpg (default: detected).")] = None,
    layer: Annotated[Optional[str], typer.Option(help="Layer of a multi-layer file.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Where the boundary comes from.")] = None,
    licence: Annotated[Optional[str], typer.Option(help="Its licence or terms of use.")] = None,
    accuracy_m: Annotated[Optional[float], typer.Option(
        help="Positional accuracy (m); sets the review band.")] = None,
    method: Annotated[Optional[str], typer.Option(help="How it was made.")] = None,
    date_: Annotated[Optional[str], typer.Option("--date", help="Date of the boundary.")] = None,
    repair: Annotated[bool, typer.Option(help="Consent to repair invalid geometries.")] = False,
    published_area: Annotated[Optional[float], typer.Option(
        help="Published area (km²) to check against.")] = None,
    name_zh: Annotated[Optional[str], typer.Option(help="Chinese name of the feature.")] = None,
    feature: Annotated[Optional[str], typer.Option(
        help="Park id this file replaces or adds inside the park layer.")] = None,
    field: Annotated[Optional[list[str]], typer.Option(
        help="Column mapping TARGET=COLUMN, e.g. code=XZQDM (repeatable).")] = None,
    registry_file: Annotated[Optional[Path], typer.Option(
        "--registry", help="Registry for the impact dry run (default: the store).")] = None,
    impact_out: Annotated[Optional[Path], typer.Option(
        help="Folder for impact.csv/.xlsx/.geojson.")] = None,
    no_impact: Annotated[bool, typer.Option("--no-impact", help="Skip the dry run.")] = False,
    as_of: Annotated[Optional[str], typer.Option(help="Rule date (YYYY-MM-DD).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Activate the new version.")] = False,
) -> None:
    """Validate a boundary file and store it as a new (inactive) version of a layer."""
    from layers.importer import ImportRejectedError, import_layer

    when = _parse_date(as_of)
    try:
        outcome = import_layer(
            file, kind=kind, layer_id=layer_id, created_by=_who(), crs=crs, towgs84=towgs84,
            pipeline=transform, encoding=encoding, layer=layer, source=source, licence=licence,
            accuracy_m=accuracy_m, method=method, date=date_, repair=repair,
            published_area_km2=published_area, name_zh=name_zh, feature=feature,
            field_map=_parse_fields(field or []),
        )
    except ImportRejectedError as exc:
        _print_report(exc.outcome.to_dict())
        _fail(exc)
    except GeoError as exc:
        _fail(exc)
    _print_report(outcome.to_dict())
    rec = outcome.version
    assert rec is not None
    typer.echo(f"stored {rec.label} ({rec.feature_count} features, {rec.area_km2} km², "
               f"fingerprint {rec.sha256[:12]}); not active yet")
    try:
        if not no_impact:
            _run_impact(layer_id, rec.version, registry_file=registry_file, out=impact_out,
                        as_of=when)
        if apply:
            _activate(layer_id, rec.version)
        else:
            typer.echo(f"activate with: basinwatch layers activate {layer_id} {rec.version}")
    except GeoError as exc:
        _fail(exc)


def _print_report(d: dict[str, Any]) -> None:
    typer.echo(f"{d['source_name']}: {d['format']}, {d['source_crs']}")
    typer.echo(f"  transformation: {d['transformation']}")
    for note in d["notes"]:
        typer.echo(f"  {note}")
    rep = d["report"]
    typer.echo(f"  {rep['feature_count']} features, {rep['area_km2']} km², "
               f"{rep['vertices']} vertices")
    for c in rep["checks"]:
        typer.echo(f"  [{c['level']:>7}] {c['code']}: {c['message']}")


def _activate(layer_id: str, version: str) -> None:
    from layers.versions import activate

    rec = activate(layer_id, version, by=_who())
    typer.echo(f"{layer_id}: active version {rec.previous} -> {rec.version}")
    _refresh_database()


def _refresh_database() -> None:
    """Reload PostGIS's reference tables (in-database classification) after a switch."""
    from api.routers.layers import refresh_store_layers
    from api.settings import Settings
    from api.store import get_store

    settings = Settings()
    if not (settings.database_url or "").startswith("postgresql"):
        return
    store = get_store(settings.database_url, data_dir=settings.data_dir)
    try:
        store.init()
        counts = refresh_store_layers(store)
        typer.echo(f"  PostGIS reference tables reloaded: {counts}")
    finally:
        store.close()


@layers_app.command("impact")
def impact_cmd(
    layer_id: Annotated[str, typer.Argument(help="Layer id.")],
    version: Annotated[str, typer.Argument(help="Candidate version (v2, bundled, ...).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder.")] = None,
    registry_file: Annotated[Optional[Path], typer.Option(
        "--registry", help="Registry file (default: the store, else the sample).")] = None,
    as_of: Annotated[Optional[str], typer.Option(help="Rule date (YYYY-MM-DD).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Activate it after the report.")] = False,
) -> None:
    """Dry run: which enterprises change basin, region, park or verdict with this version."""
    try:
        _run_impact(layer_id, version, registry_file=registry_file, out=out,
                    as_of=_parse_date(as_of))
        if apply:
            _activate(layer_id, version)
    except GeoError as exc:
        _fail(exc)


@layers_app.command("activate")
def activate_cmd(
    layer_id: Annotated[str, typer.Argument(help="Layer id.")],
    version: Annotated[str, typer.Argument(help="Version to make active (v2, bundled, ...).")],
) -> None:
    """Make a version the active one (classification uses it from now on)."""
    try:
        _activate(layer_id, version)
    except GeoError as exc:
        _fail(exc)


@layers_app.command("rollback")
def rollback_cmd(layer_id: Annotated[str, typer.Argument(help="Layer id.")]) -> None:
    """Return a layer to the version active before its last switch."""
    from layers.versions import rollback

    try:
        rec = rollback(layer_id, by=_who())
    except GeoError as exc:
        _fail(exc)
    typer.echo(f"{layer_id}: rolled back {rec.previous} -> {rec.version}")
    _refresh_database()


@layers_app.command("versions")
def versions_cmd(
    layer_id: Annotated[str, typer.Argument(help="Layer id.")],
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Every version of a layer with its provenance; the active one marked."""
    from layers import registry
    from layers.versions import BUNDLED, active_version_id, read_manifest, versions_of

    try:
        active = active_version_id(layer_id)
        recs = []
        if layer_id in registry.bundled_layer_ids():
            recs.append(registry.active_versions().get(layer_id) if active == BUNDLED
                        else registry._bundled_record(layer_id))
        recs.extend(versions_of(layer_id))
        recs = [r for r in recs if r is not None]
        if not recs:
            raise LayerNotFoundError(layer_id, registry.bundled_layer_ids())
    except GeoError as exc:
        _fail(exc)
    history = [a.model_dump() for a in read_manifest().history if a.layer_id == layer_id]
    if fmt == "json":
        typer.echo(json.dumps({"layer_id": layer_id, "active": active,
                               "versions": [r.model_dump() for r in recs],
                               "history": history}, ensure_ascii=False, indent=1))
        return
    for r in recs:
        mark = "*" if r.version == active else " "
        typer.echo(f"{mark} {r.label}  {r.created_at}  {r.created_by}  {r.feature_count} "
                   f"features  {r.area_km2} km²  ±{r.accuracy_m:g} m  {r.sha256[:12]}")
        typer.echo(f"    source: {r.source}")
        typer.echo(f"    licence: {r.licence}")
    for a in history:
        typer.echo(f"  {a['at']} {a['action']} {a['previous']} -> {a['version']} by {a['by']}")
