"""Offline folium web map of the reference layers and the classified enterprises.

:func:`build_map` returns a ``folium.Map`` that notebooks display and the API serves. It
never touches the network: there is no tile layer by default (cities and districts are drawn
as light polygons instead), and every JavaScript/CSS asset comes from the vendored copies in
``layers/static`` (see ``layers/static/VENDORED.md``) — inlined into the page by default, or
linked under a URL prefix the API serves (:func:`map_asset_urls`, :func:`static_dir`).
folium's CDN defaults (jQuery, Bootstrap, Font Awesome, awesome-markers) are stripped.

All text shown in popups, tooltips and the legend is HTML-escaped in Python before it is
embedded, so a registry value such as ``<script>`` renders as text.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd
import shapely

from geo.errors import ExportError, InvalidQueryError, ReferenceDataError

if TYPE_CHECKING:  # pragma: no cover
    import folium
    import geopandas as gpd

__all__ = [
    "DEFAULT_LAYERS",
    "POINT_LIMIT",
    "MAX_GRID_CELLS",
    "APP_BASE_LAYERS",
    "APP_OVERLAYS",
    "build_map",
    "build_app_page",
    "app_config",
    "APP_SCRIPTS",
    "save_offline_html",
    "map_asset_urls",
    "static_dir",
    "localise_assets",
]

logger = logging.getLogger(__name__)

#: Reference layers of the served map's offline base layer, and its overlays (bottom to top).
APP_BASE_LAYERS: Final = ("cities", "districts")
APP_OVERLAYS: Final = ("lianjiang", "maozhou", "shima", "danshui", "guangfo", "parks")
#: Display simplification (degrees) per reference layer kind of the served map.
_APP_SIMPLIFY: Final = {"city": 0.003, "district": 0.002}

#: Reference layers drawn by default, bottom to top.
DEFAULT_LAYERS: Final = APP_BASE_LAYERS + APP_OVERLAYS

_STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

#: folium resource name -> (kind, file under ``static/``), in load order.
_ASSETS: Final[Mapping[str, tuple[str, str]]] = {
    "leaflet_css": ("css", "leaflet/leaflet.css"),
    "markerclustercss": ("css", "markercluster/MarkerCluster.css"),
    "markerclusterdefaultcss": ("css", "markercluster/MarkerCluster.Default.css"),
    "leaflet": ("js", "leaflet/leaflet.js"),
    "markerclusterjs": ("js", "markercluster/leaflet.markercluster.js"),
    "basinwatch_css": ("css", "basinwatch/webmap.css"),
    "basinwatch_js": ("js", "basinwatch/webmap.js"),
    "basinwatch_cases_css": ("css", "basinwatch/cases.css"),
    "basinwatch_cases_js": ("js", "basinwatch/cases.js"),
    "basinwatch_layer_import_js": ("js", "basinwatch/layer_import.js"),
}
#: folium defaults the map does not need (the only jQuery user, folium.Popup, is not used).
_DROPPED: Final = frozenset(
    {
        "jquery",
        "bootstrap",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers",
        "awesome_markers_css",
        "awesome_markers_font_css",
        "awesome_rotate_css",
    }
)
_INLINE_KEY: Final = "basinwatch_inline_assets"
#: Anything a self-contained page must not load: external scripts or stylesheets.
_EXTERNAL_ASSET: Final = re.compile(
    r"<script\b[^>]*\bsrc\s*=[^>]*>|<link\b[^>]*\bhref\s*=[^>]*>", re.I
)
_DEFAULT_STYLE: Final = {"color": "#666666", "weight": 1, "fillOpacity": 0.1}
_MARKER_STYLE: Final = {"radius": 6, "weight": 1, "color": "#333333", "fillOpacity": 0.9}
_GRID_DEG: Final = 1e-5  # ~1 m coordinate precision in the page

#: Most enterprises the offline map draws one by one; above, it aggregates into grid cells
#: (the served map's limit, ``api/routers/webmap.py`` POINT_LIMIT).
POINT_LIMIT: Final = 3000
#: Most grid cells the offline map embeds over all its zoom levels: bounds the page size
#: (about 25 bytes a cell) whatever the registry size.
MAX_GRID_CELLS: Final = 60_000
#: Grid cell edge in screen pixels at each zoom level (the served map uses the same).
_CELL_PX: Final = 64
#: Zoom range of the offline map's aggregation levels.
_MIN_ZOOM: Final = 5
_MAX_ZOOM: Final = 16


# --------------------------------------------------------------------------- assets


def static_dir() -> Path:
    """Directory of the vendored front-end assets (mount it as static files in the API)."""
    return _STATIC_DIR


def map_asset_urls(prefix: str) -> dict[str, str]:
    """URLs of the vendored assets when :func:`static_dir` is served under ``prefix``.

    Parameters
    ----------
    prefix
        URL path the API mounts :func:`static_dir` at, e.g. ``/static/map``.

    Returns
    -------
    dict
        folium resource name (``leaflet``, ``leaflet_css``, ``markerclusterjs``, ...) -> URL.
    """
    base = prefix.rstrip("/")
    return {name: f"{base}/{rel}" for name, (_kind, rel) in _ASSETS.items()}


def _read_asset(rel: str) -> str:
    path = _STATIC_DIR / rel
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"Vendored asset {path} is missing; reinstall BasinWatch."
        raise ReferenceDataError(msg) from exc
    return re.sub(r"^\s*//# sourceMappingURL=.*$", "", text, flags=re.M)


def _inline_css(rel: str) -> str:
    """CSS text with ``url(images/...)`` turned into data URIs."""
    css = _read_asset(rel)
    folder = (_STATIC_DIR / rel).parent

    def data_uri(match: re.Match[str]) -> str:
        target = folder / match.group(1)
        if not target.is_file():
            return match.group(0)
        payload = base64.b64encode(target.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{payload})"

    return re.sub(r"url\(([^)#:'\"]+\.png)\)", data_uri, css)


def _inline_block(names: Sequence[str]) -> str:
    parts = []
    for name in names:
        kind, rel = _ASSETS[name]
        if kind == "css":
            parts.append(f"<style>/* {rel} */\n{_inline_css(rel)}</style>")
        else:
            js = _read_asset(rel).replace("</script", "<\\/script")
            parts.append(f"<script>/* {rel} */\n{js}</script>")
    return "\n".join(parts)


def _walk(element: Any) -> Iterator[Any]:
    yield element
    for child in list(getattr(element, "_children", {}).values()):
        yield from _walk(child)


def localise_assets(m: folium.Map, *, prefix: str | None = None) -> folium.Map:
    """Point every JS/CSS resource of ``m`` at the vendored copies, dropping CDN links.

    Walks the whole element tree (map, plugins, anything added after :func:`build_map`).
    Resources BasinWatch vendors are inlined into the page header (``prefix=None``) or
    linked under ``prefix``; folium defaults the map does not need (jQuery, Bootstrap, Font
    Awesome, awesome-markers) are dropped. Call it again after adding elements.

    Parameters
    ----------
    m
        The map.
    prefix
        URL prefix where :func:`static_dir` is served; ``None`` inlines the assets.

    Raises
    ------
    ExportError
        If an element needs an external resource that is not vendored.
    """
    from branca.element import Element

    needed: list[str] = []
    unknown: list[str] = []
    for element in _walk(m):
        if not hasattr(type(element), "default_js"):
            continue
        # names resolved by an earlier call stay needed (the lists are emptied when inlining)
        own: list[str] = list(getattr(element, "_bw_assets", []))
        for kind in ("js", "css"):
            for name, url in getattr(element, f"default_{kind}"):
                if name in _ASSETS:
                    own.append(name)
                elif name not in _DROPPED:
                    unknown.append(f"{type(element).__name__}:{name} ({url})")
        own = list(dict.fromkeys(own))
        needed.extend(n for n in own if n not in needed)
        urls = map_asset_urls(prefix) if prefix is not None else {}
        # instance attributes: never mutate folium's class-level lists
        element._bw_assets = own
        element.default_js = [(n, urls[n]) for n in own if urls and _ASSETS[n][0] == "js"]
        element.default_css = [(n, urls[n]) for n in own if urls and _ASSETS[n][0] == "css"]
    if unknown:
        raise ExportError(
            "The map uses resources that are not vendored for offline use: "
            f"{', '.join(unknown)}; add them to layers/static (see VENDORED.md) or remove "
            "the element."
        )
    header = m.get_root().header
    # links added to the page header by an earlier render()
    for name in [*_ASSETS, *_DROPPED, _INLINE_KEY]:
        header._children.pop(name, None)
    if prefix is None:
        order = [name for name in _ASSETS if name in needed]
        header.add_child(Element(_inline_block(order)), name=_INLINE_KEY, index=0)
    return m


def save_offline_html(m: folium.Map, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` as ONE self-contained HTML file (all JS/CSS inlined, no network).

    The file is written atomically (temporary file + :func:`os.replace`).

    Parameters
    ----------
    m
        A map from :func:`build_map` (or any folium map using only vendored plugins).
    path
        Destination ``.html`` file.

    Raises
    ------
    ExportError
        If the rendered page would still load any external script or stylesheet.
    """
    localise_assets(m, prefix=None)
    page = m.get_root().render()
    external = _EXTERNAL_ASSET.search(page)
    if external:
        raise ExportError(f"The offline map still loads an external file: {external.group(0)!r}.")
    from geo.files import atomic_target

    with atomic_target(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    logger.info("wrote offline map %s (%s bytes)", path, f"{len(page.encode('utf-8')):,}")
    return Path(path)


# --------------------------------------------------------------------------- helpers


def _folium() -> Any:
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - folium is a core dependency
        raise ImportError(
            "The web map needs folium: pip install 'folium>=0.17' (or reinstall basinwatch)."
        ) from exc
    return folium


def _js(obj: Any) -> str:
    """JSON for embedding inside ``<script>``: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _labels() -> dict[str, Any]:
    from layers.catalog import read_data_toml

    return read_data_toml("labels.toml")


def _info_get(info: Any, key: str, default: Any = None) -> Any:
    if info is None:
        return default
    if isinstance(info, Mapping):
        return info.get(key, default)
    return getattr(info, key, default)


def _escaped_text(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("").map(html.escape).astype(object)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


def _leaflet_style(style: Any) -> dict[str, Any]:
    if not style:
        return dict(_DEFAULT_STYLE)
    return {_camel(str(k)): v for k, v in dict(style).items()}


def _display_geometry(geoms: Any, tolerance: float) -> Any:
    """Simplified, grid-snapped polygons for display (vectorised)."""
    out = np.asarray(geoms)
    if tolerance > 0:
        out = shapely.simplify(out, tolerance, preserve_topology=True)
    return shapely.set_precision(out, _GRID_DEG)


def _verdict_styles(lang: str) -> list[tuple[str, str, str]]:
    """(id, label, colour) of every verdict, strongest first, from the rules catalog."""
    from layers.catalog import rules

    return [
        (v.id, v.label_zh if lang == "zh" else v.label_en, v.colour) for v in rules().verdicts
    ]


def _layer_source(
    layer_id: str,
    reference: Mapping[str, gpd.GeoDataFrame],
    layer_infos: Mapping[str, Any],
) -> tuple[gpd.GeoDataFrame, Any]:
    frame = reference.get(layer_id)
    info = layer_infos.get(layer_id)
    if frame is not None and info is not None:
        return frame, info
    try:
        from layers import registry
    except ImportError as exc:
        raise ReferenceDataError(
            f"Layer '{layer_id}' was not passed in and layers.registry is not available: "
            "pass reference={id: GeoDataFrame} and layer_infos={id: {...}}."
        ) from exc
    if info is None:
        info = registry.layer_info(layer_id)
    if frame is None:
        frame = registry.load_layer(layer_id)
    return frame, info


def _popup_pair(entry: Any, lang: str, col_labels: Mapping[str, str]) -> tuple[str, str]:
    """(field, label) of a popup entry: a registry PopupField, a mapping or a bare name."""
    field = _info_get(entry, "field")
    if field is None:
        return str(entry), str(col_labels.get(str(entry), entry))
    label = _info_get(entry, f"label_{lang}") or _info_get(entry, "label_zh") or field
    return str(field), str(label)


def _add_reference_layer(
    m: Any, layer_id: str, frame: gpd.GeoDataFrame, info: Any, lang: str, simplify: float
) -> None:
    folium = _folium()
    title = str(_info_get(info, f"title_{lang}") or _info_get(info, "title_zh") or layer_id)
    if frame.empty:
        logger.info("layer %s is empty; not drawn", layer_id)
        return
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs("EPSG:4326")
    raw_fields = _info_get(info, "popup_fields") or []
    col_labels = _labels()["columns"] if lang == "zh" else {}
    if isinstance(raw_fields, Mapping):
        pairs = [(str(k), str(v)) for k, v in raw_fields.items()]
    else:
        pairs = [_popup_pair(f, lang, col_labels) for f in raw_fields]
    pairs = [(f, alias) for f, alias in pairs if f in frame.columns]
    props = pd.DataFrame({f: _escaped_text(frame[f]) for f, _ in pairs}, index=frame.index)
    import geopandas as gpd

    data = gpd.GeoDataFrame(
        props, geometry=_display_geometry(frame.geometry.values, simplify), crs="EPSG:4326"
    )
    style = _leaflet_style(_info_get(info, "style"))
    tooltip = (
        folium.GeoJsonTooltip(
            fields=[f for f, _ in pairs], aliases=[html.escape(a) for _, a in pairs]
        )
        if pairs
        else None
    )
    folium.GeoJson(
        data,
        name=html.escape(title),
        style_function=lambda _feature, s=style: s,
        tooltip=tooltip,
        overlay=True,
        show=True,
        zoom_on_click=False,
    ).add_to(m)


def _popup_values(gdf: pd.DataFrame, fields: Sequence[str], lang: str) -> pd.DataFrame:
    """Display text of the popup fields, HTML-escaped."""
    labels = _labels()
    out = pd.DataFrame(index=gdf.index)
    verdicts = {vid: label for vid, label, _c in _verdict_styles(lang)}
    for f in fields:
        if f not in gdf.columns:
            continue
        col = gdf[f]
        if lang == "zh":
            if f == "verdict":
                col = col.map(lambda v: verdicts.get(v, v))
            elif f in ("basin_id", "region_id"):
                col = col.map(lambda v: labels["zones"].get(v, v))
            elif f == "geocode_precision":
                col = col.map(lambda v: labels["precision"].get(v, v))
            elif f == "needs_review":
                col = col.eq(True).map({True: labels["words"]["yes"], False: labels["words"]["no"]})
            elif f == "deadline_status":
                col = col.map(lambda v: labels.get("deadline_status", {}).get(v, v))
            elif f == "price_measures":
                names = _measure_labels()
                col = col.fillna("").astype(str).map(
                    lambda v: "；".join(names.get(c, c) for c in v.split(";") if c))
        out[f] = _escaped_text(col)
    return out


def _rows_js(gdf: gpd.GeoDataFrame, pts: np.ndarray, shown: Sequence[str],
             values: pd.DataFrame) -> str:
    """``[[lat, lon, popup values...], ...]`` of the points, for the page's script."""
    rows = pd.concat(
        [
            pd.DataFrame(
                {"lat": np.round(shapely.get_y(pts), 6), "lon": np.round(shapely.get_x(pts), 6)},
                index=gdf.index,
            ),
            values[list(shown)],
        ],
        axis=1,
    )
    return _js(rows.to_numpy().tolist())


def _grid_levels(
    lon: np.ndarray, lat: np.ndarray, codes: np.ndarray, n_codes: int, *, cell_px: int,
    max_cells: int,
) -> tuple[dict[int, list[list[float]]], dict[int, int]]:
    """Per zoom level, per verdict code, the non-empty grid cells (vectorised).

    A level's cell is ``cell_px`` screen pixels wide at that zoom, as the served map's
    server-side grid (``api/routers/webmap.py``). Levels run from :data:`_MIN_ZOOM` up,
    finer and finer, while all levels together hold at most ``max_cells`` cells (at least
    the coarsest level is kept); the finest level serves every zoom above it.

    Returns
    -------
    tuple
        ``{zoom: [flat [lat, lon, count, ...] per code]}`` (positions are the mean of the
        cell's points, 4 decimals) and ``{zoom: largest count of any cell}``.
    """
    levels: dict[int, list[list[float]]] = {}
    biggest: dict[int, int] = {}
    total = 0
    for zoom in range(_MIN_ZOOM, _MAX_ZOOM + 1):
        cell = cell_px * 360.0 / (256 * 2**zoom)
        ix = np.floor(lon / cell).astype(np.int64)
        iy = np.floor(lat / cell).astype(np.int64)
        ix -= ix.min(initial=0)
        iy -= iy.min(initial=0)
        key = (codes.astype(np.int64) << 42) | (ix << 21) | iy
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        if levels and total + len(uniq) > max_cells:
            break
        total += len(uniq)
        mean_lat = np.round(np.bincount(inverse, weights=lat) / counts, 4)
        mean_lon = np.round(np.bincount(inverse, weights=lon) / counts, 4)
        cell_code = (uniq >> 42).astype(np.int64)
        per_code = []
        for code in range(n_codes):
            sel = cell_code == code
            per_code.append(
                np.column_stack([mean_lat[sel], mean_lon[sel], counts[sel]]).ravel().tolist()
            )
        levels[zoom] = per_code
        biggest[zoom] = int(counts.max(initial=0))
    return levels, biggest


def _measure_labels() -> dict[str, str]:
    """Price measure id -> Chinese label (rules catalog)."""
    from layers.catalog import rules

    return {m.id: m.label_zh for m in rules().measures}


def _verdict_layer_class() -> Any:
    folium = _folium()
    from folium.template import Template

    class VerdictLayer(folium.map.Layer):  # type: ignore[misc, name-defined]
        """The enterprises of one verdict.

        Circle markers with popups built on click, or (aggregated mode) an empty group the
        grid controller fills with cells.
        """

        _template = Template(
            """
            {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = (function () {
                var group = L.featureGroup();
                {% if this.rows_js %}
                var labels = {{ this.labels_js }};
                var rows = {{ this.rows_js }};
                var style = {{ this.style_js }};
                function popup(layer) {
                    var r = rows[layer.bwIndex];
                    var out = '<table class="bw-popup">';
                    for (var j = 0; j < labels.length; j++) {
                        out += '<tr><th>' + labels[j] + '</th><td>' + r[2 + j] + '</td></tr>';
                    }
                    return out + '</table>';
                }
                for (var i = 0; i < rows.length; i++) {
                    var marker = L.circleMarker([rows[i][0], rows[i][1]], style);
                    marker.bwIndex = i;
                    marker.bindPopup(popup, {maxWidth: 380});
                    group.addLayer(marker);
                }
                {% endif %}
                return group;
            })();
            {% endmacro %}
            """
        )

        def __init__(self, name: str) -> None:
            super().__init__(name=name, overlay=True, control=True, show=True)
            self._name = "VerdictLayer"
            self.labels_js = "[]"
            self.rows_js = ""
            self.style_js = "{}"

    return VerdictLayer


def _grid_controller_class() -> Any:
    from branca.element import MacroElement
    from folium.template import Template

    class GridController(MacroElement):  # type: ignore[misc]
        """Draw the aggregated cells of each visible verdict layer for the current zoom.

        Only the cells in view (plus a margin), strongest verdict on top; a click zooms in.
        """

        _template = Template(
            """
            {% macro script(this, kwargs) %}
            (function () {
                var map = {{ this._parent.get_name() }};
                var layers = [{% for name in this.layer_names %}{{ name }},{% endfor %}];
                var cfg = {{ this.config_js }};
                function level(zoom) {
                    var z = Math.max(cfg.minZoom, Math.min(cfg.maxZoom, Math.round(zoom)));
                    return String(z);
                }
                function draw() {
                    var key = level(map.getZoom());
                    var cells = cfg.levels[key], biggest = cfg.biggest[key] || 1;
                    var view = map.getBounds().pad(0.25);
                    for (var v = layers.length - 1; v >= 0; v--) {
                        var group = layers[v];
                        group.clearLayers();
                        if (!map.hasLayer(group)) { continue; }
                        var flat = cells[v], colour = cfg.colours[v], label = cfg.labels[v];
                        for (var i = 0; i < flat.length; i += 3) {
                            var lat = flat[i], lon = flat[i + 1], n = flat[i + 2];
                            if (!view.contains([lat, lon])) { continue; }
                            var r = cfg.minRadius + (cfg.maxRadius - cfg.minRadius) *
                                Math.sqrt(n / biggest);
                            var c = L.circleMarker([lat, lon], {radius: r, color: "#333333",
                                weight: 1, fillColor: colour, fillOpacity: 0.75});
                            c.bindTooltip(cfg.tooltip.replace("{verdict}", label)
                                .replace("{count}", n));
                            c.on("click", function (e) {
                                map.setView(e.latlng, Math.min(map.getZoom() + 2, 18));
                            });
                            group.addLayer(c);
                        }
                    }
                }
                map.on("zoomend moveend overlayadd", draw);
                map.whenReady(draw);
            })();
            {% endmacro %}
            """
        )

        def __init__(self, layer_names: Sequence[str], config: Mapping[str, Any]) -> None:
            super().__init__()
            self._name = "GridController"
            self.layer_names = list(layer_names)
            self.config_js = _js(config)

    return GridController


def _located(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """EPSG:4326 rows with a geometry (others are logged, not drawn)."""
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    geoms = np.asarray(gdf.geometry.values)
    located = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not located.all():
        logger.info("web map: %d enterprise(s) without a location are not drawn", (~located).sum())
    return gdf[located]


def _add_enterprises(
    m: Any, gdf: gpd.GeoDataFrame, lang: str, *, point_limit: int, max_cells: int
) -> dict[str, int]:
    """Add one layer per verdict (strongest first); return counts per verdict id.

    Points with popups up to ``point_limit`` enterprises, grid cells above.
    """
    labels = _labels()
    gdf = _located(gdf)
    pts = shapely.point_on_surface(np.asarray(gdf.geometry.values))
    styles = _verdict_styles(lang)
    index = {vid: i for i, (vid, _l, _c) in enumerate(styles)}
    verdict = (
        gdf["verdict"].astype("string").fillna("")
        if "verdict" in gdf.columns
        else pd.Series("", index=gdf.index, dtype="string")
    )
    for vid in sorted(set(verdict) - set(index)):  # shown grey, labelled with the raw id
        index[vid] = len(styles)
        styles.append((vid, vid or "?", "#cccccc"))
    codes = verdict.map(index).astype(int).to_numpy()
    counts = verdict.value_counts()
    per_verdict = {vid: int(counts.get(vid, 0)) for vid, _l, _c in styles}
    layer_name = labels["map"]["enterprises_layer" if lang == "zh" else "enterprises_layer_en"]
    layer_cls = _verdict_layer_class()
    aggregated = len(gdf) > point_limit
    if not aggregated:
        fields = [str(f) for f in labels["popup"]["fields"]]
        values = _popup_values(gdf, fields, lang)
        shown = [f for f in fields if f in values.columns]
        col_labels = labels["columns"] if lang == "zh" else {}
        labels_js = _js([html.escape(str(col_labels.get(f, f))) for f in shown])
    layers = []
    for code, (vid, label, colour) in enumerate(styles):
        layer = layer_cls(html.escape(layer_name.format(verdict=label,
                                                        count=f"{per_verdict[vid]:,}")))
        if not aggregated:
            sel = codes == code
            layer.labels_js = labels_js
            layer.rows_js = _rows_js(gdf[sel], pts[sel], shown, values[sel])
            layer.style_js = _js({**_MARKER_STYLE, "fillColor": colour})
        layer.add_to(m)
        layers.append(layer)
    if aggregated:
        levels, biggest = _grid_levels(
            shapely.get_x(pts), shapely.get_y(pts), codes, len(styles),
            cell_px=_CELL_PX, max_cells=max_cells,
        )
        _grid_controller_class()(
            [layer.get_name() for layer in layers],
            {
                "levels": {str(z): v for z, v in levels.items()},
                "biggest": {str(z): v for z, v in biggest.items()},
                "minZoom": min(levels), "maxZoom": max(levels),
                "colours": [c for _v, _l, c in styles],
                "labels": [html.escape(label) for _v, label, _c in styles],
                "tooltip": html.escape(labels["map"]["cell_tooltip" if lang == "zh"
                                                     else "cell_tooltip_en"]),
                "minRadius": 4, "maxRadius": _CELL_PX // 2 - 4,
            },
        ).add_to(m)
    return per_verdict


def _add_legend(
    m: Any, lang: str, counts: Mapping[str, int] | None, note: str = ""
) -> None:
    from branca.element import MacroElement
    from folium.template import Template

    words = _labels()["words"]
    title = words["legend_title"] if lang == "zh" else "Verdict"
    items = []
    for vid, label, colour in _verdict_styles(lang):
        n = f" ({counts.get(vid, 0):,})" if counts is not None else ""
        items.append(
            f'<div><i style="background:{html.escape(colour)}"></i>{html.escape(label)}{n}</div>'
        )
    body = f"<b>{html.escape(title)}</b>" + "".join(items)

    class Legend(MacroElement):  # type: ignore[misc]
        _template = Template(
            """
            {% macro header(this, kwargs) %}
            <style>
            .bw-legend {background: rgba(255,255,255,0.9); padding: 6px 8px; font-size: 13px;
                        line-height: 18px; border-radius: 4px; box-shadow: 0 0 6px rgba(0,0,0,.3);}
            .bw-legend i {width: 12px; height: 12px; float: left; margin: 3px 6px 0 0;
                          border-radius: 50%; border: 1px solid #333;}
            .bw-note {max-width: 420px; font-size: 12px; line-height: 17px;}
            .bw-popup th {text-align: left; padding-right: 8px; white-space: nowrap;
                          vertical-align: top;}
            .bw-popup td {word-break: break-all;}
            </style>
            {% endmacro %}
            {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.control({position: "bottomright"});
            {{ this.get_name() }}.onAdd = function () {
                var div = L.DomUtil.create("div", "bw-legend");
                div.innerHTML = {{ this.body_js }};
                return div;
            };
            {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
            {% if this.note_js %}
            var {{ this.get_name() }}_note = L.control({position: "bottomleft"});
            {{ this.get_name() }}_note.onAdd = function () {
                var div = L.DomUtil.create("div", "bw-legend bw-note");
                div.innerHTML = {{ this.note_js }};
                return div;
            };
            {{ this.get_name() }}_note.addTo({{ this._parent.get_name() }});
            {% endif %}
            {% endmacro %}
            """
        )

        def __init__(self) -> None:
            super().__init__()
            self._name = "Legend"
            self.body_js = _js(body)
            self.note_js = _js(note) if note else ""

    Legend().add_to(m)


def _page_note(
    lang: str, total: int, point_limit: int, provenance: Any | None
) -> str:
    """HTML (escaped) of the note on the page: how enterprises are drawn, and provenance."""
    texts = _labels()["map"]
    suffix = "" if lang == "zh" else "_en"
    key = "aggregated_note" if total > point_limit else "points_note"
    lines = [texts[key + suffix].format(total=f"{total:,}", limit=f"{point_limit:,}")]
    if provenance is not None:
        as_of = getattr(provenance, "as_of", None)
        when = getattr(provenance, "generated_at", None)
        lines.append(texts["provenance" + suffix].format(
            registry=getattr(provenance, "registry_name", "") or "-",
            sha=(getattr(provenance, "registry_sha256", "") or "")[:12] or "-",
            as_of=as_of.isoformat() if as_of else "-",
            generated=when.isoformat(sep=" ") if when else "-",
        ))
    return "<br>".join(html.escape(line) for line in lines)


# --------------------------------------------------------------------------- map


def build_map(
    enterprises: gpd.GeoDataFrame | None = None,
    *,
    layers: Sequence[str] = DEFAULT_LAYERS,
    lang: Literal["zh", "en"] = "zh",
    reference: Mapping[str, gpd.GeoDataFrame] | None = None,
    layer_infos: Mapping[str, Any] | None = None,
    simplify: float = 0.001,
    asset_prefix: str | None = None,
    point_limit: int = POINT_LIMIT,
    max_cells: int = MAX_GRID_CELLS,
    provenance: Any | None = None,
) -> folium.Map:
    """Build the offline web map.

    Parameters
    ----------
    enterprises
        Classified enterprises (``geo.schema.ENFORCEMENT_COLUMNS``, point geometry), drawn
        as one layer per verdict (strongest first): up to ``point_limit`` enterprises as
        circle markers coloured by verdict with Chinese popups, above that aggregated into
        grid cells per verdict (circle area proportional to the count; the page says so).
        ``None`` draws no enterprises.
    layers
        Reference layer ids, drawn bottom to top (default :data:`DEFAULT_LAYERS`).
    lang
        ``zh`` (Chinese labels) or ``en``.
    reference
        Layer id -> GeoDataFrame overriding ``layers.registry.load_layer`` (tests, notebooks).
    layer_infos
        Layer id -> info (``title_zh``, ``title_en``, ``style``, ``popup_fields``) overriding
        ``layers.registry.layer_info``.
    simplify
        Tolerance in degrees for simplifying reference polygons for display (0.001 is
        about 100 m; 0 keeps them as stored). Keeps the page small.
    asset_prefix
        ``None`` inlines the vendored JS/CSS into the page; a URL prefix links them there
        instead (serve :func:`static_dir` under it).
    point_limit
        Most enterprises drawn one by one (default :data:`POINT_LIMIT`, as the served map).
    max_cells
        Most grid cells embedded over all zoom levels in aggregated mode (bounds the page
        size whatever the registry size; default :data:`MAX_GRID_CELLS`).
    provenance
        A :class:`geo.provenance.Provenance`; its registry file, rule date and generation
        time are shown on the page.

    Returns
    -------
    folium.Map
        With a ``<title>``, a layer control, a verdict legend and a note on how enterprises
        are drawn; no tile layer.
    """
    if lang not in ("zh", "en"):
        raise InvalidQueryError(f"Unknown map language '{lang}': expected 'zh' or 'en'.")
    if point_limit < 0 or max_cells < 1:
        raise InvalidQueryError(
            f"point_limit must be >= 0 and max_cells >= 1, got {point_limit}, {max_cells}."
        )
    folium = _folium()
    reference = dict(reference or {})
    layer_infos = dict(layer_infos or {})
    texts = _labels()["map"]

    m = folium.Map(
        location=(23.1, 113.8),
        zoom_start=8,
        tiles=None,
        prefer_canvas=True,
        control_scale=True,
        **{"minZoom": _MIN_ZOOM, "maxZoom": 18},
    )
    m.get_root().title = texts["title" if lang == "zh" else "title_en"]
    bounds: list[np.ndarray] = []
    for layer_id in layers:
        frame, info = _layer_source(layer_id, reference, layer_infos)
        _add_reference_layer(m, layer_id, frame, info, lang, simplify)
        if not frame.empty:
            bounds.append(np.asarray(frame.to_crs("EPSG:4326").total_bounds
                                     if frame.crs is not None else frame.total_bounds))
    counts: dict[str, int] | None = None
    note = ""
    if enterprises is not None:
        counts = _add_enterprises(m, enterprises, lang, point_limit=point_limit,
                                  max_cells=max_cells)
        note = _page_note(lang, sum(counts.values()), point_limit, provenance)
        if len(enterprises):
            bounds = [np.asarray(enterprises.to_crs("EPSG:4326").total_bounds
                                 if enterprises.crs is not None else enterprises.total_bounds)]
    _add_legend(m, lang, counts, note)
    folium.LayerControl(collapsed=False).add_to(m)
    finite = [b for b in bounds if np.isfinite(b).all()]
    if finite:
        stack = np.vstack(finite)
        m.fit_bounds([[stack[:, 1].min(), stack[:, 0].min()],
                      [stack[:, 3].max(), stack[:, 2].max()]])
    return localise_assets(m, prefix=asset_prefix)


# --------------------------------------------------------------------------- served map

#: Scripts of the served map in load order (under :func:`static_dir`); plugin scripts named
#: in ``webmap.toml`` [plugins] load after them and before ``boot.js``.
APP_SCRIPTS: Final = ("leaflet/leaflet.js", "pbf/pbf.js", "basinwatch/tiles.js",
                      "basinwatch/tools.js", "basinwatch/webmap.js",
                      "basinwatch/dashboard.js")
APP_STYLES: Final = ("leaflet/leaflet.css", "basinwatch/webmap.css")


def _style_dict(style: Any) -> dict[str, Any]:
    if style is None:
        return dict(_DEFAULT_STYLE)
    if hasattr(style, "model_dump"):
        raw = style.model_dump()
    else:
        raw = dict(style)
    return {_camel(str(k)): v for k, v in raw.items() if v is not None}


def _initial_bounds(layer_ids: Sequence[str]) -> list[list[float]]:
    """``[[south, west], [north, east]]`` around the given reference layers."""
    from layers.registry import load_layer

    boxes = np.vstack([load_layer(i).to_crs("EPSG:4326").total_bounds for i in layer_ids])
    return [[round(float(boxes[:, 1].min()), 4), round(float(boxes[:, 0].min()), 4)],
            [round(float(boxes[:, 3].max()), 4), round(float(boxes[:, 2].max()), 4)]]


def _lang_pack(lang: str, data: Mapping[str, Any], labels: Mapping[str, Any],
               layer_ids: Sequence[str]) -> dict[str, Any]:
    """UI words and data labels of one language (English falls back to Chinese)."""
    from layers.catalog import industries, rules
    from layers.registry import layer_info

    en = lang == "en"
    ui = dict(data["ui"])
    if en:
        ui.update(data.get("ui_en", {}))
    columns = dict(labels["columns"])
    zones = dict(labels["zones"])
    if en:
        columns.update(data.get("columns_en", {}))
        zones.update(data.get("zones_en", {}))
    return {
        "ui": ui,
        "columns": columns,
        "zones": zones,
        "words": labels["words"],
        "precision": {**labels["precision"], **(data.get("precision_en", {}) if en else {})},
        "review_reasons": labels["review_reasons"],
        "deadline_status": ({k: k for k in labels.get("deadline_status", {})} if en
                            else dict(labels.get("deadline_status", {}))),
        "price_measures": {m.id: (m.label_en if en else m.label_zh) for m in rules().measures},
        "verdicts": {v.id: (v.label_en if en else v.label_zh) for v in rules().verdicts},
        "industries": {i.id: (i.name_en if en else i.name_zh) for i in industries()},
        "industry_names": {i.name_zh: (i.name_en if en else i.name_zh) for i in industries()},
        "layers": {i: (layer_info(i).title_en if en else layer_info(i).title_zh)
                   for i in layer_ids},
    }


def app_config(
    *,
    api_prefix: str = "",
    lang: Literal["zh"] = "zh",
    tianditu_token: str | None = None,
    density_colors: Sequence[str] = ("#ffffb2", "#bd0026"),
    online_tiles: Collection[str] = (),
) -> dict[str, Any]:
    """Configuration the served map's script (``static/basinwatch/webmap.js``) reads.

    Small and data-free: UI text (Chinese and English packs) and base layers from
    ``layers/data/webmap.toml``, verdict labels/colours (rules catalog), industries, zones,
    column labels, the id, title, kind and style of each reference layer (their geometry
    is fetched from the API) and the first view (around every priority basin and region).

    Parameters
    ----------
    api_prefix
        URL prefix of the BasinWatch API ('' when it is served at the root).
    lang
        Default language of the page (``zh``); the page switches to English itself.
    tianditu_token
        Tianditu API key; without one the Tianditu base layer is not offered.
    density_colors
        Colour ramp of the density overlay, low to high (for the legend; the API passes
        ``geo.raster.OVERLAY_COLORS``).
    online_tiles
        Ids of the online base layers the operator opted in to (``osm``, ``amap``; setting
        ``BASINWATCH_ONLINE_TILES``). None by default: the map then offers only the offline
        base. Each offered layer's attribution names and links its provider's terms.
    """
    if lang != "zh":
        raise InvalidQueryError(f"Unknown map language '{lang}': the served map is 'zh' only.")
    from layers.catalog import industries, read_data_toml
    from layers.registry import layer_info

    data = read_data_toml("webmap.toml")
    labels = _labels()
    base_layers = []
    enabled = {str(t).strip().lower() for t in online_tiles}
    for b in data.get("base_layers", []):
        entry = {k: v for k, v in b.items() if k not in ("needs_token", "terms", "terms_url")}
        if b.get("needs_token"):
            if not tianditu_token:
                continue
            entry["token"] = tianditu_token
        elif b["id"] not in enabled:
            continue  # online tiles are opt-in
        entry["attribution"] = (
            f'{b["attribution"]} | <a href="{html.escape(b["terms_url"], quote=True)}" '
            f'target="_blank" rel="noopener">{html.escape(b["terms"])}</a>'
        )
        base_layers.append(entry)

    def ref(layer_id: str) -> dict[str, Any]:
        info = layer_info(layer_id)
        return {
            "id": layer_id,
            "title": info.title_zh,
            "kind": info.kind,
            "style": _style_dict(info.style),
            "simplify": _APP_SIMPLIFY.get(info.kind, 0.0005),
        }

    zones = [
        [("region_id" if key == "guangfo" else "basin_id"), key, label]
        for key, label in labels["zones"].items()
    ]
    layer_ids = [*APP_BASE_LAYERS, *APP_OVERLAYS]
    return {
        "api": api_prefix.rstrip("/"),
        "lang": lang,
        "ui": data["ui"],
        "i18n": {code: _lang_pack(code, data, labels, layer_ids) for code in ("zh", "en")},
        "labels": {
            **{k: labels[k] for k in ("columns", "zones", "words", "precision", "review_reasons")},
            "deadline_status": labels.get("deadline_status", {}),
            "price_measures": _measure_labels(),
        },
        "popup_fields": [str(f) for f in data["popup"]["fields"]],
        "verdicts": [list(v) for v in _verdict_styles("zh")],
        "industries": [[i.id, i.name_zh] for i in industries()],
        "zones": zones,
        "base_reference": [ref(i) for i in APP_BASE_LAYERS],
        "overlays": [ref(i) for i in APP_OVERLAYS],
        "base_layers": base_layers,
        "density_colors": list(density_colors),
        "layer_import": data.get("layer_import", {}),
        "initial_bounds": _initial_bounds(APP_OVERLAYS),
        "label_zoom": dict(data.get("labels", {})),
        "print": dict(data.get("print", {})),
    }


_PAGE: Final = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{assets}/basinwatch/favicon.svg" type="image/svg+xml">
{styles}
</head>
<body>
<a class="bw-skip" href="#bw-panel">{skip}</a>
<div id="bw-app"><main id="bw-map" aria-label="{map_label}"></main></div>
<script type="application/json" id="bw-config">{config}</script>
{scripts}
</body>
</html>
"""


def build_app_page(
    *,
    api_prefix: str = "",
    asset_prefix: str = "/static/map",
    lang: Literal["zh"] = "zh",
    tianditu_token: str | None = None,
    density_colors: Sequence[str] = ("#ffffb2", "#bd0026"),
    online_tiles: Collection[str] = (),
    plugin_scripts: Sequence[str] = (),
    plugins: bool = True,
) -> str:
    """HTML of the map the API serves: a static shell that loads everything from the API.

    No layer data is embedded and there is no inline script or style (a strict
    Content-Security-Policy works): the configuration is a JSON data block
    (``<script type="application/json" id="bw-config">``, never executed) that
    ``static/basinwatch/boot.js`` reads; layer colours come from ``{api}/map/theme.css``.

    Parameters
    ----------
    api_prefix
        URL prefix of the API ('' at the root).
    asset_prefix
        Where :func:`static_dir` is served.
    lang
        ``zh`` (the page offers English itself).
    tianditu_token
        Tianditu key; the Tianditu base layer is offered only with one.
    online_tiles
        Online base layers the operator opted in to (see :func:`app_config`).
    plugin_scripts
        Extra scripts (paths under ``asset_prefix``) that register overlays, popup sections
        or panel sections with ``BasinWatchMap.plugins`` before the map starts.
    plugins
        Load the plug-ins named in ``webmap.toml`` [plugins] (off: the map alone, e.g. to
        benchmark it).

    Returns
    -------
    str
        The page; it loads no resource from outside the API.
    """
    from layers.catalog import read_data_toml

    if asset_prefix is None:
        raise ExportError("The served map links its assets: give asset_prefix (no inlining, so "
                          "a strict Content-Security-Policy holds).")
    cfg = app_config(api_prefix=api_prefix, lang=lang, tianditu_token=tianditu_token,
                     density_colors=density_colors, online_tiles=online_tiles)
    data = read_data_toml("webmap.toml")
    assets = asset_prefix.rstrip("/")
    listed = data.get("plugins", {}) if plugins else {}
    plugin_list = [*listed.get("scripts", []), *plugin_scripts]
    scripts = [f"{assets}/{rel}" for rel in (*APP_SCRIPTS, *plugin_list, "basinwatch/boot.js")]
    styles = [f"{assets}/{rel}" for rel in
              (*APP_STYLES, *listed.get("styles", []))]
    styles.append(f"{cfg['api']}/map/theme.css")
    esc = html.escape
    return _PAGE.format(
        title=esc(cfg["ui"]["title"]),
        assets=esc(assets),
        skip=esc(cfg["ui"]["skip_to_panel"]),
        map_label=esc(cfg["ui"]["map_label"]),
        config=_js(cfg),
        styles="\n".join(f'<link rel="stylesheet" href="{esc(u)}">' for u in styles),
        scripts="\n".join(f'<script src="{esc(u)}"></script>' for u in scripts),
    )
