"""Tests of layers.webmap: offline assets, escaping, layers and legend."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import pytest
import shapely

from geo.errors import ExportError, InvalidQueryError
from layers import webmap
from layers.catalog import read_data_toml, rules

LABELS = read_data_toml("labels.toml")
EVIL = "<script>alert(1)</script>"
# any script/stylesheet pulled from the network, and any tile template
REMOTE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
TILES = re.compile(r"L\.tileLayer\(|openstreetmap|\{s\}\.", re.I)


def _enterprises() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "row": [2, 3, 4],
            "uscc": ["91440500MA4UXXXX1A", "91441900MA4WXXXX4D", "91440600MA4XXXXX5E"],
            "name": ["潮南某印染有限公司", EVIL, "佛山某厂 & \"Co\""],
            "industry": ["印染", "陶瓷", "钢铁"],
            "basin_id": ["lianjiang", "shima", ""],
            "region_id": ["", "", "guangfo"],
            "park_id": ["", "", ""],
            "verdict": ["shutdown", "priority_supervision", "rectify"],
            "reasons": ["练江流域园区外印染企业全部停产退出", "重点监管", "限期整改"],
            "standards": ["DB44/2051-2017", "", ""],
            "geocode_precision": ["coordinates", "town", "district"],
            "needs_review": [False, True, False],
        },
        geometry=shapely.points([116.43, 114.15, 113.1], [23.25, 22.85, 23.05]),
        crs="EPSG:4326",
    )


def _reference() -> tuple[dict[str, gpd.GeoDataFrame], dict[str, dict[str, object]]]:
    frames = {
        "districts": gpd.GeoDataFrame(
            {"name_zh": ["潮南区"]}, geometry=[shapely.box(116.2, 23.0, 116.6, 23.4)], crs=4326
        ),
        "lianjiang": gpd.GeoDataFrame(
            {"name_zh": ["练江<b>流域"]},
            geometry=[shapely.box(116.0, 23.1, 116.7, 23.6)],
            crs=4326,
        ),
        "guangfo": gpd.GeoDataFrame(
            {"name_zh": ["广佛跨界区域"]},
            geometry=[shapely.box(112.9, 22.9, 113.4, 23.3)],
            crs=4326,
        ).to_crs("EPSG:3857"),  # reprojected by the builder
    }
    infos = {
        "districts": {"title_zh": "区县", "title_en": "Districts", "popup_fields": ["name_zh"]},
        "lianjiang": {
            "title_zh": "练江流域",
            "title_en": "Lianjiang basin",
            "style": {"color": "#1f78b4", "fill_opacity": 0.2},
            "popup_fields": ["name_zh"],
        },
        "guangfo": {"title_zh": "广佛跨界区域", "title_en": "Guangfo", "popup_fields": []},
    }
    return frames, infos


@pytest.fixture
def page(tmp_path) -> str:
    frames, infos = _reference()
    m = webmap.build_map(
        _enterprises(), layers=list(frames), reference=frames, layer_infos=infos
    )
    path = webmap.save_offline_html(m, tmp_path / "map.html")
    return path.read_text(encoding="utf-8")


def _in_page(text: str, page: str) -> bool:
    """Text present either literally or JSON-escaped (folium's layer control)."""
    return text in page or json.dumps(text)[1:-1] in page


def test_offline_html_has_no_remote_assets_or_tiles(page):
    assert REMOTE.search(page) is None
    assert not re.search(r"<script\b[^>]*\bsrc=", page)
    assert not re.search(r"<link\b[^>]*\bhref=", page)
    assert TILES.search(page) is None
    for dropped in ("jquery", "bootstrap", "font-awesome", "fontawesome", "awesome-markers"):
        assert dropped not in page.lower()
    # the vendored libraries are inlined
    assert "Leaflet 1.9.4" in page
    # no MarkerCluster: its green/yellow/orange bubbles read as verdict colours
    assert "markerClusterGroup" not in page and ".marker-cluster-small" not in page
    assert "url(data:image/png;base64," in page  # layer-control icon inlined
    assert "sourceMappingURL" not in page
    # without tiles the map must set its zoom range itself
    assert re.search(r'"maxZoom":\s*18', page)


def test_enterprise_name_is_escaped(page):
    assert EVIL not in page
    assert "alert(1)</script>" not in page
    # escaped HTML (&lt;script&gt;), itself JSON-escaped inside the script block
    assert "\\u0026lt;script\\u0026gt;alert(1)" in page
    assert "\\u0026quot;Co\\u0026quot;" in page


def test_layers_legend_and_popup_labels(page):
    for title in ("区县", "练江流域", "广佛跨界区域", LABELS["words"]["enterprises_layer"]):
        assert _in_page(title, page), title
    assert "练江<b>流域" not in page  # reference tooltip values escaped too
    assert "L.control.layers" in page
    assert "bw-legend" in page and LABELS["words"]["legend_title"] in page
    for verdict in rules().verdicts:
        assert verdict.label_zh in page and verdict.colour in page
    # popup labels are the Chinese column labels, values translated
    for field in ("name", "uscc", "verdict", "reasons", "standards", "needs_review"):
        assert LABELS["columns"][field] in page
    assert LABELS["zones"]["shima"] in page and LABELS["precision"]["town"] in page
    assert "#1f78b4" in page and "fillOpacity" in page  # registry style camel-cased


def test_legend_counts_follow_verdicts(tmp_path):
    m = webmap.build_map(_enterprises(), layers=[])
    html = m.get_root().render()
    label = {v.id: v.label_zh for v in rules().verdicts}
    assert f"{label['shutdown']} (1)" in html
    assert f"{label['no_action']} (0)" in html


def test_served_assets_use_prefix():
    m = webmap.build_map(_enterprises(), layers=[], asset_prefix="/static/map")
    html = m.get_root().render()
    srcs = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", html)
    hrefs = re.findall(r"<link\b[^>]*\bhref=\"([^\"]+)\"", html)
    urls = webmap.map_asset_urls("/static/map/")
    assert set(srcs) == {urls["leaflet"]}
    assert set(hrefs) == {urls["leaflet_css"]}
    for url in (*srcs, *hrefs):
        assert (webmap.static_dir() / url.removeprefix("/static/map/")).is_file()
    assert "Leaflet 1.9.4" not in html  # not inlined in served mode


def test_save_after_render_and_extra_plugin(tmp_path):
    from folium.plugins import Fullscreen

    m = webmap.build_map(_enterprises(), layers=[], asset_prefix="/static/map")
    m.get_root().render()  # links already added to the header
    html = webmap.save_offline_html(m, tmp_path / "a.html").read_text(encoding="utf-8")
    assert not re.search(r"<script\b[^>]*\bsrc=", html)
    Fullscreen().add_to(m)  # a CDN-only plugin
    with pytest.raises(ExportError, match="not vendored"):
        webmap.save_offline_html(m, tmp_path / "b.html")
    assert not (tmp_path / "b.html").exists()


def test_english(tmp_path):
    m = webmap.build_map(_enterprises(), layers=[], lang="en")
    html = webmap.save_offline_html(m, tmp_path / "m.html").read_text(encoding="utf-8")
    assert "L.featureGroup()" in html and "leaflet.markercluster" not in html
    assert rules().verdicts[0].label_en in html
    assert f"<title>{LABELS['map']['title_en']}</title>" in html


def test_bad_language():
    with pytest.raises(InvalidQueryError, match="'fr'"):
        webmap.build_map(None, layers=[], lang="fr")  # type: ignore[arg-type]


def test_folium_class_defaults_untouched():
    import folium

    webmap.build_map(_enterprises(), layers=[])
    assert any(url.startswith("https://") for _n, url in folium.Map.default_js)


# ---------------------------------------------------------------- the served map page


def _page_config(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="bw-config">(.*?)</script>', page,
                      re.S)
    assert match, "the page carries its config as a JSON data block"
    return json.loads(match.group(1))


def test_app_page_links_served_assets_and_embeds_no_data():
    page = webmap.build_app_page(api_prefix="/bw", asset_prefix="/bw/static/map")
    urls = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', page)
    assert urls
    for u in urls:
        if u == "/bw/map/theme.css":  # generated by the API from the layer styles
            continue
        assert u.startswith("/bw/static/map/"), u
        assert (webmap.static_dir() / u.removeprefix("/bw/static/map/")).is_file(), u
    cfg = _page_config(page)
    assert cfg["api"] == "/bw"
    assert [v[0] for v in cfg["verdicts"]] == [v.id for v in rules().verdicts]
    assert [o["id"] for o in cfg["overlays"]] == list(webmap.APP_OVERLAYS)
    assert "Polygon" not in page and len(page) < 40_000  # layers come from the API


def test_app_page_has_no_inline_script_or_style():
    """A strict Content-Security-Policy (script-src/style-src 'self') must hold."""
    page = webmap.build_app_page()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    for attrs, body in scripts:
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
        assert "src=" in attrs or body.strip().startswith("{")
    assert "<style" not in page and " style=" not in page and "onclick" not in page
    assert '<html lang="zh-CN">' in page
    with pytest.raises(ExportError):
        webmap.build_app_page(asset_prefix=None)  # type: ignore[arg-type]
    for script in ("webmap.js", "tiles.js", "tools.js", "dashboard.js", "boot.js"):
        js = (webmap.static_dir() / "basinwatch" / script).read_text("utf-8")
        assert "style=" not in js and "innerHTML" not in js, script  # DOM + CSSOM only


def test_app_config_online_tiles_are_opt_in_with_terms_and_token():
    data = read_data_toml("webmap.toml")
    cfg = webmap.app_config()
    assert cfg["base_layers"] == []  # nothing online unless the operator opts in
    online = [b["id"] for b in data["base_layers"] if not b.get("needs_token")]
    needs_token = [b["id"] for b in data["base_layers"] if b.get("needs_token")]
    assert set(online) == {"osm", "amap"} and needs_token == ["tianditu"]
    opted = webmap.app_config(online_tiles=("osm", "AMAP"), tianditu_token="k")["base_layers"]
    assert [b["id"] for b in opted] == [b["id"] for b in data["base_layers"]]
    for b, spec in zip(opted, data["base_layers"], strict=True):
        # the provider's terms are named and linked next to its attribution
        assert spec["terms"] in b["attribution"] and spec["terms_url"] in b["attribution"]
    assert [b["id"] for b in webmap.app_config(online_tiles=("amap",))["base_layers"]] == [
        "amap"]
    # offered layers are never the default: the offline base is made of reference layers
    assert [r["id"] for r in cfg["base_reference"]] == list(webmap.APP_BASE_LAYERS)
    gcj = [b for b in opted if b["crs"] == "GCJ02"]
    assert gcj and all(b["url"].startswith("https://") for b in gcj)
    with pytest.raises(InvalidQueryError):
        webmap.app_config(lang="en")  # type: ignore[arg-type]


def test_app_page_escapes_config_text():
    page = webmap.build_app_page()
    block = page.split('id="bw-config">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block
    assert _page_config(page)["i18n"]["en"]["ui"]["panel_toggle"] == "Filters"


# ---------------------------------------------------------------- the run's map at scale


def _many(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    lon = rng.uniform(110.0, 117.0, n)
    lat = rng.uniform(21.0, 25.0, n)
    ids = [v.id for v in rules().verdicts]
    return gpd.GeoDataFrame({"verdict": rng.choice(ids, n), "name": "某厂"},
                            geometry=shapely.points(lon, lat), crs="EPSG:4326")


def _grid_config(html: str) -> dict:
    match = re.search(r"var cfg = (\{.*?\});\n", html)
    assert match, "aggregated page embeds its grid levels"
    return json.loads(match.group(1))


def test_title_and_one_layer_per_verdict(page):
    assert f"<title>{LABELS['map']['title']}</title>" in page
    for v in rules().verdicts:
        assert _in_page(LABELS["map"]["enterprises_layer"].format(
            verdict=v.label_zh, count="1" if v.id in ("shutdown", "rectify",
                                                        "priority_supervision") else "0"), page)
    assert "var cfg = {" not in page and "逐家显示" in page


def test_large_registry_is_aggregated_within_the_cell_budget():
    ents = _many(60_000)
    html = webmap.build_map(ents, layers=[], max_cells=8_000).get_root().render()
    small = webmap.build_map(_many(100), layers=[]).get_root().render()
    cfg = _grid_config(html)
    cells = sum(len(flat) // 3 for level in cfg["levels"].values() for flat in level)
    assert 0 < cells <= 8_000
    assert len(html) - len(small) < 8_000 * 40  # bounded by the budget, not by 60,000 rows
    # every level holds every enterprise exactly once, per verdict
    counts = ents["verdict"].value_counts()
    for level in cfg["levels"].values():
        got = [sum(flat[2::3]) for flat in level]
        assert got == [int(counts.get(v.id, 0)) for v in rules().verdicts]
    assert "网格汇总" in html and "60,000" in html
    assert "markerClusterGroup" not in html


def test_point_limit_boundary():
    at = webmap.build_map(_many(300), layers=[], point_limit=300).get_root().render()
    over = webmap.build_map(_many(301), layers=[], point_limit=300).get_root().render()
    assert "var cfg = {" not in at and "var cfg = {" in over
