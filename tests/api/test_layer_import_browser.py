"""The map's boundary-import form in headless Chromium against a live uvicorn server.

Upload -> validation report -> impact and difference layer -> activate -> layer reloaded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
import shapely.affinity

from api.testing import EDITOR_KEY
from tests.api.test_map_browser import _free_port, _require_browser, driver, wait_for  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A uvicorn server: editor key, stored synthetic registry, own versions root."""
    _require_browser()
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_registry, write_registry

    tmp = tmp_path_factory.mktemp("importserver")
    path = write_registry(synthetic_registry(400, seed=7), tmp / "registry.csv")
    store = get_store(tmp / "store.gpkg")
    store.init()
    store.load_enterprises(run_pipeline(path).enterprises, loaded_by="test",
                           source_name="synthetic", source_sha256="0")
    port = _free_port()
    settings = Settings(data_dir=tmp, layers_dir=tmp / "layers",
                        api_keys={EDITOR_KEY: "editor"})
    app = create_app(settings, store=store)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 20 s")
        time.sleep(0.05)
    yield {"base": f"http://127.0.0.1:{port}", "tmp": tmp}
    srv.should_exit = True
    thread.join(timeout=10)
    store.close()


def test_import_form_reports_draws_the_difference_and_switches(
    server: dict[str, Any], driver: Any, tmp_path: Path  # noqa: F811
) -> None:
    from layers import versions
    from layers.registry import load_bundled

    versions.set_root(server["tmp"] / "layers")  # the server's root, for this process too
    shima = load_bundled("shima").geometry.iloc[0]
    moved = shapely.affinity.translate(shima, xoff=0.04)
    upload = tmp_path / "石马河_测绘.geojson"
    import geopandas as gpd

    gpd.GeoDataFrame({"名称": ["石马河"]}, geometry=[moved], crs="EPSG:4326").to_file(
        upload, driver="GeoJSON", engine="pyogrio")

    driver.get(server["base"] + "/map")
    wait_for(driver, "window.bw && bw.state.ready && window.bwImport")
    driver.find_element("css selector", ".bw-import-open").click()
    form = driver.find_element("css selector", ".bw-import-form")
    form.find_element("name", "file").send_keys(str(upload))
    form.find_element("name", "id").clear()
    form.find_element("name", "id").send_keys("shima")
    form.find_element("name", "source").send_keys("测试测绘")
    form.find_element("name", "licence").send_keys("CC0-1.0")
    form.find_element("name", "accuracy_m").send_keys("10")
    form.find_element("name", "key").send_keys(EDITOR_KEY)
    form.find_element("css selector", ".bw-import-submit").click()

    stored = wait_for(driver, "(document.querySelector('.bw-import-stored') || {}).textContent",
                      timeout=60)
    assert "shima@v1" in stored
    checks = driver.execute_script(
        "return Array.from(document.querySelectorAll('.bw-import-checks li'))"
        ".map(function (li) { return li.textContent; })")
    assert any("与同类图层重叠" in c or "公布面积" in c for c in checks), checks
    impact = driver.find_element("css selector", ".bw-import-impact").text
    assert "家企业" in impact
    wait_for(driver, "window.bwImport.features > 0", timeout=30)
    assert driver.execute_script("return document.querySelectorAll('path.bw-diff-gained').length")
    assert driver.execute_script("return document.querySelectorAll('path.bw-diff-lost').length")

    driver.find_element("css selector", ".bw-import-activate").click()
    wait_for(driver, "document.querySelector('.bw-import-activated')", timeout=30)
    body = httpx.get(server["base"] + "/layers").json()
    assert body["active_versions"]["shima"] == "shima@v1"
    wait_for(driver, "window.bwImport.reloaded === 'shima'", timeout=30)
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    versions.set_root(None)
