"""Make the README's web-map screenshots from the bundled sample registry.

Run by ``bash scripts/screenshots.sh`` (which installs Chromium and a CJK font first); a
person runs it on purpose, tests never do. The views are what a planner sees: the bundled
synthetic sample (3,000 enterprises) loaded into a throwaway store, each workflow of the
map on a desktop (1600 x 1000) and a phone (390 x 844, touch emulation):

- ``overview``: the province, every enterprise coloured by verdict, labels;
- ``area``: the Lianjiang basin picked in the panel, zoomed to it, counts and list;
- ``draw``: a rectangle drawn over the Chaonan dyeing cluster, Excel export progress;
- ``search``: an enterprise found by name, its popup (address, data version);
- ``dashboard``: counts per basin and city by verdict beside the map;
- ``measure``: a distance measured across the Lianjiang basin;
- ``english``: the English interface;
- ``print``: the A4 PDF/PNG sheet of the Lianjiang view (the PNG itself).

    .venv/bin/python scripts/screenshots.py --out docs/screenshots [--only area,print]

``webmap.png`` (the README's first picture) is the desktop ``area`` view.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DESKTOP = (1600, 1000)
PHONE = (390, 844)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp: Path) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store
    from geo.pipeline import run_pipeline

    result = run_pipeline(as_of=date(2019, 6, 30))  # the bundled sample registry
    store = get_store(tmp / "store.gpkg")
    store.init()
    store.load_enterprises(result.enterprises, loaded_by="screenshots",
                           source_name="registry_synthetic.csv", source_sha256="sample")
    port = _free_port()
    app = create_app(Settings(data_dir=tmp), store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start within 30 s")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _driver(profile: str, size: tuple[int, int], *, phone: bool) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    width, height = size
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--window-size={width},{height}",
                 f"--user-data-dir={profile}", "--lang=zh-CN", "--hide-scrollbars"):
        opts.add_argument(flag)
    if phone:
        opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": width, "height": height, "pixelRatio": 2, "touch": True}})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    if not phone:  # the viewport itself, not the window around it, is width x height
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return drv


def _wait(drv: Any, script: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = drv.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {script!r}")


def _idle(drv: Any) -> None:
    time.sleep(0.6)
    _wait(drv, "window.bw && bw.state.ready && !bw.state.pending && !bw.state.countStale")


def _open(drv: Any, url: str) -> None:
    drv.get("about:blank")  # a new document even when only the hash differs
    drv.get(url)
    _wait(drv, "window.bw && bw.state.ready")
    _wait(drv, "bw.state.layersLoaded.lianjiang && bw.state.layersLoaded.districts")
    _idle(drv)


def _pick_lianjiang(drv: Any, phone: bool) -> None:
    drv.execute_script("var s = document.getElementById('bw-zone-pick'); "
                       "s.value = 'basin_id=lianjiang'; s.dispatchEvent(new Event('change'));")
    _wait(drv, "bw.state.areaResult && bw.state.area.key === 'basin_id'")
    if phone:
        drv.execute_script("bw.setPanelOpen(true);")
        drv.execute_script("document.getElementById('bw-area').scrollIntoView();")
    _idle(drv)


def overview(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/")


def area(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/")
    _pick_lianjiang(drv, phone)


def draw(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/#v=11/23.2700/116.4400")
    drv.execute_script(
        "bw.setArea({wkt: 'POLYGON((116.36 23.22,116.50 23.22,116.50 23.31,116.36 23.31,"
        "116.36 23.22))', label: '绘制区域'});")
    _wait(drv, "document.getElementById('bw-dl-xlsx')")
    if phone:
        drv.execute_script("bw.setPanelOpen(true);")
    drv.execute_script("document.getElementById('bw-dl-xlsx').click();")
    _wait(drv, "bw.state.export && bw.state.export.state === 'done'", timeout=120)
    drv.execute_script("document.getElementById('bw-export').scrollIntoView();")
    _idle(drv)


def search(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/")
    if phone:
        drv.execute_script("bw.setPanelOpen(true);")
    box = drv.find_element("id", "bw-search")
    box.send_keys("印染")
    _wait(drv, "document.querySelectorAll('#bw-search-results a').length > 0")
    drv.find_element("css selector", "#bw-search-results a").click()
    _wait(drv, "document.querySelector('.bw-enterprise-popup table.bw-popup')")
    _idle(drv)


def dashboard(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/#dash=1")
    _wait(drv, "bw.state.dashboard")
    _idle(drv)


def measure(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/#v=10/23.2800/116.3000")
    drv.execute_script(
        "bw.tools.start('measure-line');"
        "[[23.33, 116.05], [23.22, 116.30], [23.30, 116.55]].forEach(function (p) {"
        " bw.map.fire('click', {latlng: L.latLng(p[0], p[1])}); });"
        "bw.tools.finish();")
    if phone:
        drv.execute_script("bw.setPanelOpen(true);"
                           "document.getElementById('bw-measure').scrollIntoView();")
    _idle(drv)


def english(drv: Any, base: str, phone: bool) -> None:
    _open(drv, base + "/#lang=en")
    _pick_lianjiang(drv, phone)


def print_sheet(base: str, out: Path) -> Path:
    """The A4 sheet of the Lianjiang view, as the PNG the print button makes."""
    import httpx

    params = {"bbox": "115.9,22.95,116.75,23.55", "format": "png", "paper": "A4",
              "basin_id": "lianjiang", "area_label": "练江流域"}
    r = httpx.get(base + "/map/print", params=params, timeout=300)
    r.raise_for_status()
    target = out / "print_a4.png"
    target.write_bytes(r.content)
    return target


WORKFLOWS: dict[str, Callable[[Any, str, bool], None]] = {
    "overview": overview, "area": area, "draw": draw, "search": search,
    "dashboard": dashboard, "measure": measure, "english": english,
}


def main() -> None:
    """Serve the sample and save each screenshot into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", default="", help="comma-separated workflows (and 'print')")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = [w for w in args.only.split(",") if w]
    with tempfile.TemporaryDirectory(prefix="bw-screenshots-") as tmp:
        server, thread, base = _serve(Path(tmp))
        try:
            for device, size in (("desktop", DESKTOP), ("phone", PHONE)):
                profile = tempfile.mkdtemp(prefix="bw-shot-")
                drv = _driver(profile, size, phone=device == "phone")
                try:
                    for name, shot in WORKFLOWS.items():
                        if only and name not in only:
                            continue
                        shot(drv, base, device == "phone")
                        target = args.out / f"{name}_{device}.png"
                        drv.save_screenshot(str(target))
                        print(f"wrote {target}")
                        if name == "area" and device == "desktop":
                            shutil.copyfile(target, args.out / "webmap.png")
                finally:
                    drv.quit()
                    shutil.rmtree(profile, ignore_errors=True)
            if not only or "print" in only:
                print(f"wrote {print_sheet(base, args.out)}")
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
