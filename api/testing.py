"""Test helpers shared by the API test-suite and notebooks: tiny enterprise frames."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo.schema import ENFORCEMENT_COLUMNS

__all__ = ["SAMPLE_ROWS", "EDITOR_KEY", "READER_KEY", "ADMIN_KEY", "make_enterprises",
           "live_server"]

#: API keys the test-suite configures (never use them in a deployment).
EDITOR_KEY = "editor-key-0123456789abcdef"
READER_KEY = "reader-key-0123456789abcdef"  # the viewer role
ADMIN_KEY = "admin-key-0123456789abcdef0"

#: (name, industry_id, industry, verdict, basin_id, district, lon, lat)
SAMPLE_ROWS = [
    ("潮南印染一厂", "dyeing", "印染", "shutdown", "lianjiang", "潮南区", 116.43, 23.25),
    ("潮南印染二厂", "dyeing", "印染", "basin_standard", "lianjiang", "潮南区", 116.45, 23.27),
    ("普宁造纸厂", "paper", "造纸", "basin_standard", "lianjiang", "普宁市", 116.17, 23.30),
    ("光明制革厂", "tanning", "制革", "priority_supervision", "maozhou", "光明区", 113.90, 22.75),
    ("东莞水泥厂", "cement", "水泥", "no_action", "", "东莞市", 114.05, 22.90),
    ("佛山陶瓷厂", "ceramics", "陶瓷", "rectify", "", "禅城区", 113.10, 23.02),
]


def make_enterprises(rows: list[tuple] | None = None) -> gpd.GeoDataFrame:
    """An enterprise frame with every ENFORCEMENT_COLUMN, EPSG:4326 points."""
    rows = SAMPLE_ROWS if rows is None else rows
    n = len(rows)
    data: dict[str, object] = {c: [""] * n for c in ENFORCEMENT_COLUMNS}
    data["row"] = list(range(2, n + 2))
    data["uscc"] = [f"91440500MA{i:08d}" for i in range(n)]
    data["name"] = [r[0] for r in rows]
    data["industry_id"] = [r[1] for r in rows]
    data["industry"] = [r[2] for r in rows]
    data["verdict"] = [r[3] for r in rows]
    data["basin_id"] = [r[4] for r in rows]
    data["district"] = [r[5] for r in rows]
    data["lon"] = [r[6] for r in rows]
    data["lat"] = [r[7] for r in rows]
    data["crs_in"] = ["WGS84"] * n
    data["geocode_precision"] = ["coordinates"] * n
    data["needs_review"] = [i % 2 == 0 for i in range(n)]
    data["unit_count"] = [i % 3 for i in range(n)]
    data["deadline"] = ["2019-12-31" if r[3] == "rectify" else "" for r in rows]
    data["deadline_status"] = ["pending" if r[3] == "rectify" else "" for r in rows]
    data["reasons"] = ["依据《方案》表2；测试" if r[3] != "no_action" else "" for r in rows]
    gdf = gpd.GeoDataFrame(
        data, geometry=shapely.points(np.c_[data["lon"], data["lat"]]), crs="EPSG:4326"
    )
    return gdf[[*ENFORCEMENT_COLUMNS, "geometry"]]




@contextlib.contextmanager
def live_server(app: Any, *, port: int | None = None, timeout_s: float = 30) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of uvicorn serving ``app`` in a thread (loopback only)."""
    import socket
    import threading
    import time

    import uvicorn

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start within {timeout_s} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
