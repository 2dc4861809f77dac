"""A closed deployment (``READ_OPEN=false``): a planner logs in with a key in headless
Chromium and the map loads its layers and enterprises through the session cookie, under
the Content-Security-Policy (no violations in the console); /docs renders offline."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from api.testing import READER_KEY, live_server, make_enterprises

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        msg = f"headless browser test needs {', '.join(missing)}"
        pytest.skip(msg)


@pytest.fixture
def closed_server(tmp_path) -> Iterator[str]:  # noqa: ANN001
    _require_browser()
    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store

    store = get_store(tmp_path / "store.gpkg")
    store.init()
    store.load_enterprises(make_enterprises(), loaded_by="t", source_name="a.csv",
                           source_sha256="0")
    app = create_app(Settings(data_dir=tmp_path, read_open=False,
                              api_keys={READER_KEY: "viewer"}), store=store)
    with live_server(app) as url:
        yield url
    app.state.geometry_workers.close()


@pytest.fixture
def driver() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1200,800",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(drv: Any, script: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = drv.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {script!r}")


def test_login_then_the_map_works(closed_server: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.get(closed_server + "/")
    assert "/session/login" in driver.current_url  # no session: to the login form
    driver.find_element(By.ID, "key").send_keys(READER_KEY)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, "window.bw && bw.state.ready")
    _wait(driver, "bw.state.layersLoaded.lianjiang")
    driver.execute_script("bw.map.fitBounds([[22.5, 112.9], [23.5, 116.6]]);")
    total = _wait(driver, "!bw.state.pending && bw.state.total")
    assert total == len(make_enterprises())
    cookie = driver.get_cookie("bw_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert driver.execute_script("return document.cookie").find("bw_session") < 0
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not [m for m in errors if "Content Security Policy" in m], errors


def test_docs_render_offline(closed_server: str, driver: Any) -> None:
    driver.get(closed_server + "/docs")
    _wait(driver, "document.querySelectorAll('.opblock').length > 10")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not [m for m in errors if "Content Security Policy" in m], errors
