"""The served web map in headless Chromium against a live uvicorn server.

Needs Debian ``chromium`` + ``chromium-driver`` (selenium drives them). Skipped when they
are missing, unless ``BASINWATCH_REQUIRE_BROWSER=1`` (CI), where it fails instead. Writes
nothing into the repository (README screenshots come from ``scripts/screenshots.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
XSS_NAME = "<script>alert(1)</script>恶意名称印染厂"


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        msg = f"headless browser test needs {', '.join(missing)}"
        if os.environ.get("BASINWATCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BASINWATCH_REQUIRE_BROWSER=1 but {msg}")
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """uvicorn on a free 127.0.0.1 port with a GeoPackage store holding a synthetic registry
    (one enterprise renamed to an HTML/script string)."""
    _require_browser()
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_registry, write_registry

    tmp = tmp_path_factory.mktemp("mapserver")
    path = write_registry(synthetic_registry(400, seed=7), tmp / "registry.csv")
    ents = run_pipeline(path).enterprises.reset_index(drop=True)
    unique = ~ents["uscc"].duplicated(keep=False) & ~ents[["lon", "lat"]].round(4).duplicated(
        keep=False)
    shutdown = ents.index[ents["verdict"].eq("shutdown") & unique][0]
    ents.loc[shutdown, "name"] = XSS_NAME
    store = get_store(tmp / "store.gpkg")
    store.init()
    store.load_enterprises(ents, loaded_by="test", source_name="synthetic", source_sha256="0")
    port = _free_port()
    app = create_app(Settings(data_dir=tmp), store=store)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 20 s")
        time.sleep(0.05)
    yield {"base": f"http://127.0.0.1:{port}", "enterprises": ents,
           "xss_uscc": str(ents.loc[shutdown, "uscc"])}
    srv.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture(scope="module")
def driver(server: dict[str, Any]) -> Iterator[Any]:
    """Headless Chromium with browser and network (performance) logs."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,900",
                 f"--user-data-dir={profile}", "--lang=zh-CN"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(drv: Any, script: str, timeout: float = 15) -> Any:
    """Poll ``return <script>`` until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = drv.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    panel = drv.execute_script("var p = document.querySelector('.bw-panel'); "
                               "return p ? p.innerText.slice(0, 300) : ''")
    pytest.fail(f"timed out waiting for {script!r} (last value {value!r}); panel: {panel!r}")


def _idle(drv: Any) -> Callable[[], None]:
    def wait() -> None:
        time.sleep(0.3)
        wait_for(drv, "window.bw && bw.state.ready && !bw.state.pending")
    return wait


def _requested_urls(drv: Any) -> list[str]:
    urls = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_map_in_headless_chromium(server: dict[str, Any], driver: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from geo.crs import wgs84_to_gcj02
    from layers.catalog import rules

    base = server["base"]
    ents = server["enterprises"]
    verdicts = {v.id: v for v in rules().verdicts}
    idle = _idle(driver)
    requested: list[str] = []

    # the page at "/" for a browser, loaded from this server only
    driver.get("about:blank")
    driver.get_log("performance")  # drop the start-up noise (chrome:// new-tab page)
    driver.get(base + "/")
    wait_for(driver, "window.bw && bw.state.ready")
    wait_for(driver, "bw.state.layersLoaded.lianjiang && bw.state.layersLoaded.districts")
    assert "执法地图" in driver.title
    basins = driver.execute_script("return document.querySelectorAll('path.bw-ref-basin').length")
    assert basins >= 4  # the four priority basins as SVG paths
    assert driver.execute_script("return document.querySelectorAll('path.bw-ref-district')"
                                 ".length") > 50
    driver.execute_script("bw.map.fitBounds(arguments[0]);",
                          [[float(ents.lat.min()), float(ents.lon.min())],
                           [float(ents.lat.max()), float(ents.lon.max())]])
    idle()
    state = driver.execute_script("return bw.state")
    assert state["mode"] == "points"
    assert state["total"] == len(ents)
    assert driver.execute_script("return bw.layers.enterprises.getLayers().length") == len(ents)

    # filter: only "shutdown" -> fewer markers, all in the shutdown colour
    for box in driver.find_elements(By.CSS_SELECTOR, "input.bw-verdict"):
        if box.get_attribute("value") != "shutdown":
            box.click()
    wait_for(driver, f"bw.state.total === {int(ents.verdict.eq('shutdown').sum())} "
                     "&& !bw.state.pending")
    colours = driver.execute_script(
        "return bw.layers.enterprises.getLayers().map(function (m) "
        "{ return m.options.fillColor; })")
    assert colours and set(colours) == {verdicts["shutdown"].colour}

    # click a marker (centred first) -> popup with the verdict, name escaped
    target = ents[ents.name.eq(XSS_NAME)].iloc[0]
    driver.execute_script("bw.map.setView([arguments[0], arguments[1]], 16, {animate: false});",
                          float(target.lat), float(target.lon))
    idle()
    map_el = driver.find_element(By.ID, driver.execute_script("return bw.map.getContainer().id"))
    ActionChains(driver).move_to_element(map_el).click().perform()
    popup = wait_for(driver, "document.querySelector('.bw-enterprise-popup table.bw-popup')"
                             " && document.querySelector('.bw-enterprise-popup').innerText")
    assert verdicts["shutdown"].label_zh in popup
    assert XSS_NAME in popup  # shown as text ...
    assert driver.execute_script(  # ... never parsed as markup
        "return document.querySelectorAll('.leaflet-popup-pane script').length") == 0
    assert "统一社会信用代码" in popup and str(target.uscc) in popup

    # search by USCC flies to the enterprise and opens its popup
    driver.execute_script("bw.map.closePopup(); bw.map.setView([23.0, 113.9], 8, "
                          "{animate: false});")
    box = driver.find_element(By.ID, "bw-search")
    box.send_keys(server["xss_uscc"])
    wait_for(driver, "document.querySelectorAll('#bw-search-results a').length === 1")
    driver.find_element(By.CSS_SELECTOR, "#bw-search-results a").click()
    wait_for(driver, "document.querySelector('.bw-enterprise-popup table.bw-popup')")
    # flown to it (the popup may auto-pan a little) and the popup is anchored on it
    where = driver.execute_script("var c = bw.map._popup.getLatLng(); return [c.lat, c.lng, "
                                  "bw.map.getZoom(), bw.map.getBounds().contains(c)]")
    assert abs(where[0] - target.lat) < 1e-4 and abs(where[1] - target.lon) < 1e-4
    assert where[2] >= 15 and where[3]

    # back to every verdict; draw a rectangle -> counts, list and a working download link
    for box_el in driver.find_elements(By.CSS_SELECTOR, "input.bw-verdict"):
        if not box_el.is_selected():
            box_el.click()
    driver.execute_script("bw.map.closePopup(); bw.map.fitBounds(arguments[0], "
                          "{animate: false});",
                          [[float(ents.lat.min()), float(ents.lon.min())],
                           [float(ents.lat.max()), float(ents.lon.max())]])
    idle()
    driver.find_element(By.ID, "bw-draw-rect").click()
    (ActionChains(driver).move_to_element_with_offset(map_el, 0, -250).click_and_hold()
     .move_by_offset(200, 150).move_by_offset(150, 100).release().perform())
    wait_for(driver, "bw.state.areaResult")
    area = driver.execute_script("return bw.state.area")
    result = driver.execute_script("return bw.state.areaResult")
    assert area["wkt"].startswith("POLYGON((")
    assert 0 < result["total"] < len(ents)
    href = driver.find_element(By.ID, "bw-dl-csv").get_attribute("href")
    assert href.startswith(base + "/exports/enforcement?format=csv&")
    resp = httpx.get(href, timeout=30)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert len(resp.text.strip().splitlines()) == result["total"] + 1
    xlsx = httpx.get(driver.find_element(By.ID, "bw-dl-xlsx").get_attribute("href"), timeout=30)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

    # pick a basin from the list -> its counts
    driver.execute_script("var s = document.getElementById('bw-zone-pick'); "
                          "s.value = 'basin_id=lianjiang'; s.dispatchEvent(new Event('change'));")
    wait_for(driver, "bw.state.areaResult && bw.state.area.key === 'basin_id'")
    assert driver.execute_script("return bw.state.areaResult.total") == int(
        ents.basin_id.eq("lianjiang").sum())

    # density overlay loads as an image from the API
    driver.execute_script("bw.map.addLayer(bw.layers.density);")
    wait_for(driver, "document.querySelector('img.bw-density')")
    driver.execute_script("bw.map.removeLayer(bw.layers.density);")

    # the GCJ-02 shift used for Amap tiles matches geo.crs
    js = driver.execute_script("return BasinWatchMap.wgs2gcj(113.3245, 23.1065)")
    py = wgs84_to_gcj02(113.3245, 23.1065)
    assert abs(js[0] - float(py[0])) < 1e-9 and abs(js[1] - float(py[1])) < 1e-9

    # the whole data extent renders (a screenshot in memory, never into the repository)
    driver.execute_script("bw.map.setView([23.0, 114.6], 8, {animate: false});")
    idle()
    assert len(driver.get_screenshot_as_png()) > 10_000

    # nothing logged as an error, nothing requested outside this server
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    requested = _requested_urls(driver)
    assert any("/map/enterprises?" in u for u in requested)
    outside = [u for u in requested
               if not (u.startswith(base + "/") or u.startswith(("data:", "blob:")))]
    print(f"{len(requested)} requests, all to {base}")
    assert outside == []
