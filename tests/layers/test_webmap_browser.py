"""The offline map.html of ``basinwatch run`` opened from ``file://`` in headless Chromium.

The oracle for the aggregated cells is the enterprise frame itself: at the coarsest zoom
the cells' counts per verdict must add up to the frame's verdict counts.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layers import webmap
from layers.catalog import read_data_toml, rules

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LABELS = read_data_toml("labels.toml")
#: The Leaflet map object of a folium page, and every circle marker drawn on it.
MAP_JS = ("var m = Object.keys(window).filter(function (k) {"
          " return k.indexOf('map_') === 0 && window[k] instanceof L.Map; })[0];"
          " m = window[m];")
MARKERS_JS = MAP_JS + (" var out = []; m.eachLayer(function (l) {"
                       " if (l instanceof L.CircleMarker) { out.push([l.options.fillColor,"
                       " l.getTooltip() ? l.getTooltip().getContent() : '']); } });"
                       " return out;")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        msg = f"headless browser test needs {', '.join(missing)}"
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,900",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(drv: Any, path: Path) -> None:
    drv.get(path.as_uri())
    errors = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _set_view(drv: Any, lat: float, lon: float, zoom: int) -> None:
    """Set the view once Leaflet is not animating (it ignores setView mid-animation, and the
    page's initial fitBounds animates), and check the view took."""
    deadline = time.monotonic() + 10
    while drv.execute_script(MAP_JS + " return !!m._animatingZoom;"):
        assert time.monotonic() < deadline, "map still animating after 10 s"
        time.sleep(0.05)
    drv.execute_script(MAP_JS + f" m.setView([{lat}, {lon}], {zoom}, {{animate: false}});")
    assert drv.execute_script(MAP_JS + " return m.getZoom();") == zoom


def _per_verdict(markers: list[list[str]]) -> dict[str, int]:
    """Sum of the cell counts in the tooltips, per verdict label."""
    out: dict[str, int] = {}
    for _colour, tip in markers:
        label, count = re.match(r"(.+)：(\d+) 家$", tip).groups()  # type: ignore[union-attr]
        out[label] = out.get(label, 0) + int(count)
    return out


def test_aggregated_map_counts_layers_and_zoom(driver, sample_result, tmp_path) -> None:  # noqa: ANN001
    ents = sample_result.enterprises
    m = webmap.build_map(ents, point_limit=500, provenance=sample_result.provenance)
    path = webmap.save_offline_html(m, tmp_path / "map.html")
    _open(driver, path)
    assert driver.title == LABELS["map"]["title"]
    note = driver.find_element("css selector", ".bw-note").text
    assert "网格汇总" in note and "registry_synthetic.csv" in note and "2019-06-30" in note

    # one overlay per verdict, strongest first, each named with its count
    overlays = [e.text.strip() for e in driver.find_elements(
        "css selector", ".leaflet-control-layers-overlays label")]
    counts = ents["verdict"].value_counts()
    verdicts = rules().verdicts
    expected = [LABELS["map"]["enterprises_layer"].format(
        verdict=v.label_zh, count=f"{int(counts.get(v.id, 0)):,}") for v in verdicts]
    assert [o for o in overlays if o.startswith("企业")] == expected

    # the coarsest level, whole province in view: cell counts add up to the frame's
    _set_view(driver, 23.1, 113.8, 5)
    summed = _per_verdict(driver.execute_script(MARKERS_JS))
    assert summed == {v.label_zh: int(counts[v.id]) for v in verdicts if v.id in counts}
    coarse = len(driver.execute_script(MARKERS_JS))

    # switching a verdict layer off removes exactly its cells
    shutdown = next(v for v in verdicts if v.id == "shutdown")
    box = driver.find_elements("css selector", ".leaflet-control-layers-overlays input")[
        overlays.index(expected[0])]
    box.click()
    colours = {c for c, _t in driver.execute_script(MARKERS_JS)}
    assert shutdown.colour not in colours and len(colours) == len(summed) - 1
    box.click()

    # zooming in switches to a finer level: more, smaller cells around the Lianjiang basin
    _set_view(driver, 23.3, 116.4, 10)
    fine = driver.execute_script(MARKERS_JS)
    assert fine and sum(_per_verdict(fine).values()) < len(ents)
    # whole province still in view at zoom 7: finer cells, the same totals
    _set_view(driver, 23.1, 113.8, 7)
    finer = driver.execute_script(MARKERS_JS)
    assert len(finer) > coarse and _per_verdict(finer) == summed


def test_small_registry_draws_every_enterprise(driver, sample_result, tmp_path) -> None:  # noqa: ANN001
    ents = sample_result.enterprises.iloc[:40]
    path = webmap.save_offline_html(webmap.build_map(ents), tmp_path / "map.html")
    _open(driver, path)
    markers = driver.execute_script(MARKERS_JS)
    assert len(markers) == len(ents)
    colours = {v.id: v.colour for v in rules().verdicts}
    assert sorted(c for c, _t in markers) == sorted(colours[v] for v in ents["verdict"])
    assert "逐家显示" in driver.find_element("css selector", ".bw-note").text
