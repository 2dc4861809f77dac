"""The map's case and exceedance layers with the time control, in headless Chromium.

A live uvicorn server holds a synthetic year (``api.casework.load_demo_year`` on a small
synthetic registry). What the map shows on a date is compared with what the API answers for
that date: the count of cases, of overdue cases, of exceeding enterprises, and the markers
drawn. Needs Debian ``chromium`` + ``chromium-driver`` (see ``test_map_browser.py``).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.test_map_browser import CHROMEDRIVER, CHROMIUM, _require_browser, wait_for

pytestmark = pytest.mark.browser
XSS = "<img src=x onerror=alert(1)>案件印染厂"


@pytest.fixture(scope="module")
def year_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_browser()
    import uvicorn

    from api.app import create_app
    from api.casework import load_demo_year
    from api.settings import Settings
    from api.store import get_store
    from geo.synthetic import synthetic_registry, write_registry

    tmp = tmp_path_factory.mktemp("casemap")
    reg = synthetic_registry(500, seed=11)
    first = reg.index[reg["行业"].eq("印染")][0]
    reg.loc[first, "企业名称"] = XSS
    path = write_registry(reg, tmp / "registry.csv")
    store = get_store(tmp / "store.gpkg")
    store.init()
    load_demo_year(store, registry=path, seed=11)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(Settings(data_dir=tmp), store=store)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 20 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture(scope="module")
def chromium(year_server: str) -> Iterator[Any]:
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


def _api(base: str, path: str, **params: str) -> dict[str, Any]:
    r = httpx.get(base + path, params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _set(drv: Any, element_id: str, value: str | bool) -> None:
    prop = "checked" if isinstance(value, bool) else "value"
    drv.execute_script(
        f"var e = document.getElementById('{element_id}'); e.{prop} = arguments[0]; "
        "e.dispatchEvent(new Event('change'));", value)


def _shown(drv: Any, as_of: str) -> dict[str, Any]:
    time.sleep(0.2)
    wait_for(drv, f"window.bwCases && bwCases.ready && bwCases.asOf === '{as_of}'", 30)
    return drv.execute_script(  # type: ignore[no-any-return]
        "return {cases: bwCases.cases, overdue: bwCases.overdue, exceeding: bwCases.exceeding,"
        " asOf: bwCases.asOf, error: bwCases.error}")


def test_case_layer_follows_the_date_and_the_filters(year_server: str, chromium: Any) -> None:
    from selenium.webdriver.common.by import By

    base, drv = year_server, chromium
    drv.get("about:blank")
    drv.get_log("performance")
    drv.get(base + "/map")
    meta = _api(base, "/cases/meta")
    st = _shown(drv, meta["default"])
    api = _api(base, "/cases", as_of=meta["default"])
    assert st["cases"] == api["number_matched"] > 0
    assert drv.find_element(By.ID, "bw-case-slider").get_attribute("max") == "395"

    # the time control: 1 April 2019 (everything just listed) vs 30 June 2019
    for day in ("2019-04-01", "2019-06-30"):
        _set(drv, "bw-case-date", day)
        st = _shown(drv, day)
        cases = _api(base, "/cases", as_of=day)["cases"]
        exceeding = [f for f in _api(base, "/monitoring/map", as_of=day)["features"]
                     if f["properties"]["exceedances"]]
        assert st["cases"] == len(cases)
        assert st["overdue"] == sum(c["overdue"] for c in cases)
        assert st["exceeding"] == len(exceeding)
        drawn = drv.execute_script(
            "return document.querySelectorAll('.leaflet-bwCases-pane path').length")
        assert drawn == len(cases) + len(exceeding)
        if day == "2019-04-01":
            assert {c["status"] for c in cases} == {"identified"}
    assert len({c["status"] for c in cases}) > 2  # by June the cases have moved

    # the slider moves the date too
    drv.execute_script("var s = document.getElementById('bw-case-slider'); s.value = '272'; "
                       "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));")
    assert _shown(drv, "2019-09-30")["cases"] == _api(base, "/cases", as_of="2019-09-30")[
        "number_matched"]

    # filters: status, then overdue only
    _set(drv, "bw-case-status", "shut_down")
    st = _shown(drv, "2019-09-30")
    assert st["cases"] == _api(base, "/cases", as_of="2019-09-30", status="shut_down")[
        "number_matched"] > 0
    colours = drv.execute_script(
        "return Array.from(document.querySelectorAll('.leaflet-bwCases-pane path'))"
        ".map(function (p) { return p.getAttribute('fill'); })")
    shut = next(s["colour"] for s in meta["statuses"] if s["id"] == "shut_down")
    assert shut in colours
    _set(drv, "bw-case-status", "")
    _set(drv, "bw-case-overdue", True)
    st = _shown(drv, "2019-09-30")
    assert st["cases"] == st["overdue"] == _api(base, "/cases", as_of="2019-09-30",
                                                overdue="true")["number_matched"] > 0
    _set(drv, "bw-case-overdue", False)
    _shown(drv, "2019-09-30")

    # a popup: status in Chinese, the name shown as text, never as markup
    target = next(c for c in _api(base, "/cases", as_of="2019-09-30")["cases"]
                  if c["name"] == XSS)
    _set(drv, "bw-exc-toggle", False)
    opened = drv.execute_script(
        "var id = arguments[0], hit = bwCases.layers.cases.getLayers().filter("
        "  function (m) { return m.bwCaseId === id; });"
        "if (hit.length !== 1) { return null; }"
        "bwCases.map.setView(hit[0].getLatLng(), 14, {animate: false}); hit[0].openPopup();"
        "return document.querySelector('.bw-case-popup').innerText;", target["case_id"])
    assert opened is not None
    assert target["status_label"] in opened and XSS in opened
    assert drv.execute_script("return document.querySelectorAll("
                              "'.leaflet-popup-pane img').length") == 0

    # nothing requested from outside this server, no console errors
    hosts = set()
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if url.startswith("http"):
                hosts.add(url.split("/")[2])
    assert hosts == {base.split("/")[2]}
    errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
