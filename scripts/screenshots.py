"""Make the README's web-map screenshots from the bundled sample registry.

Run by ``bash scripts/screenshots.sh`` (which installs Chromium and a CJK font first); a
person runs it on purpose, tests never do. The view is what a planner sees: the bundled
synthetic sample (3,000 enterprises) loaded into a throwaway store, the Lianjiang basin
picked in the panel with its area statistics.

    .venv/bin/python scripts/screenshots.py --out docs/screenshots
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def _driver(profile: str, width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--window-size={width},{height}",
                 f"--user-data-dir={profile}", "--lang=zh-CN", "--hide-scrollbars"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _wait(drv: Any, script: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = drv.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {script!r}")


def _idle(drv: Any) -> None:
    time.sleep(0.5)
    _wait(drv, "window.bw && bw.state.ready && !bw.state.pending")


def webmap_lianjiang(base: str, out: Path) -> Path:
    """The Lianjiang basin picked in the panel: enterprises by verdict and its statistics."""
    profile = tempfile.mkdtemp(prefix="bw-shot-")
    drv = _driver(profile, 1600, 1000)
    try:
        drv.get(base + "/")
        _wait(drv, "window.bw && bw.state.ready")
        _wait(drv, "bw.state.layersLoaded.lianjiang && bw.state.layersLoaded.districts")
        drv.execute_script("var s = document.getElementById('bw-zone-pick'); "
                           "s.value = 'basin_id=lianjiang'; s.dispatchEvent(new Event('change'));")
        _wait(drv, "bw.state.areaResult && bw.state.area.key === 'basin_id'")
        drv.execute_script("bw.map.fitBounds(bw.layers.lianjiang.getBounds(), "
                           "{animate: false, paddingTopLeft: [320, 0]});")
        _idle(drv)
        target = out / "webmap.png"
        drv.save_screenshot(str(target))
        return target
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    """Serve the sample and save each screenshot into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bw-screenshots-") as tmp:
        server, thread, base = _serve(Path(tmp))
        try:
            for shot in (webmap_lianjiang,):
                print(f"wrote {shot(base, args.out)}")
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
