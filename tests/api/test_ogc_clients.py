"""Third-party OGC API – Features clients against a live uvicorn server.

OWSLib's ``Features`` client and GDAL's OAPIF driver (``ogrinfo``, marked ``gdal``) list
the collections and read enterprises with a bbox; the answers are compared with the
fixture frame, not with our own server code.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import geopandas as gpd
import pytest

from api.store import Store

BBOX = (116.0, 23.0, 117.0, 24.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(store: Store, enterprises: gpd.GeoDataFrame, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """URL of a uvicorn server over ``store`` loaded with the sample enterprises."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    store.load_enterprises(enterprises, loaded_by="fixture", source_name="样例.csv",
                           source_sha256="e" * 64)
    app = create_app(Settings(data_dir=tmp_path, default_limit=4), store=store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_owslib_reads_collections_and_bbox(server: str, enterprises: gpd.GeoDataFrame) -> None:
    from owslib.ogcapi.features import Features

    client = Features(server)
    ids = [c["id"] for c in client.collections()["collections"]]
    assert "enterprises" in ids
    assert "enterprises" in client.feature_collections()
    got = client.collection_items("enterprises", bbox=list(BBOX), limit=100)
    names = [ft["properties"]["name"] for ft in got["features"]]
    assert names == enterprises.cx[BBOX[0]:BBOX[2], BBOX[1]:BBOX[3]]["name"].tolist()
    one = client.collection_item("enterprises", "1")
    assert one["properties"]["name"] == enterprises.iloc[0]["name"]


@pytest.mark.gdal
def test_gdal_oapif_driver(server: str, enterprises: gpd.GeoDataFrame) -> None:
    ogrinfo = shutil.which("ogrinfo")
    if ogrinfo is None:
        pytest.skip("ogrinfo (gdal-bin) is not installed")
    listing = subprocess.run([ogrinfo, "-ro", "-q", f"OAPIF:{server}/"], capture_output=True,
                             text=True, timeout=60, check=True)
    assert "enterprises" in listing.stdout
    # whole collection: GDAL pages through `next` links (server page size is 4 < 6)
    assert _ogr_names(ogrinfo, server) == enterprises["name"].tolist()
    expected = enterprises.cx[BBOX[0]:BBOX[2], BBOX[1]:BBOX[3]]["name"].tolist()
    assert 0 < len(expected) < len(enterprises)
    assert _ogr_names(ogrinfo, server, "-spat", *map(str, BBOX)) == expected


def _ogr_names(ogrinfo: str, server: str, *extra: str) -> list[str]:
    """Enterprise names as GDAL's OAPIF driver reads them (ogrinfo text output)."""
    out = subprocess.run(
        [ogrinfo, "-ro", "-geom=NO", *extra, f"OAPIF:{server}/", "enterprises"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    prefix = "  name (String) = "
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.gdal
def test_gdal_pushes_where_down(server: str, enterprises: gpd.GeoDataFrame,
                                caplog: pytest.LogCaptureFixture) -> None:
    """``ogrinfo -where`` becomes a server-side CQL filter (seen in the access log), and the
    answer equals the fixture frame filtered the same way."""
    import logging
    from urllib.parse import parse_qs, urlsplit

    ogrinfo = shutil.which("ogrinfo")
    if ogrinfo is None:
        pytest.skip("ogrinfo (gdal-bin) is not installed")
    where = "verdict = 'basin_standard' AND industry = '印染'"
    with caplog.at_level(logging.INFO, logger="basinwatch.access"):
        names = _ogr_names(ogrinfo, server, "-where", where)
    expected = enterprises.loc[(enterprises.verdict == "basin_standard")
                               & (enterprises.industry == "印染"), "name"].tolist()
    assert names == expected and 0 < len(expected) < len(enterprises)
    pushed = []
    for rec in caplog.records:
        if rec.name != "basinwatch.access" or "/collections/enterprises/items?" not in rec.getMessage():
            continue
        query = parse_qs(urlsplit(rec.getMessage().split(" ")[1]).query)
        if "filter" in query:
            pushed.append(query)
    assert pushed, "GDAL did not send the filter to the server"
    assert all("verdict = 'basin_standard'" in q["filter"][0]
               and "industry = '印染'" in q["filter"][0] for q in pushed)
    assert all(q["filter-lang"] == ["cql-text"] for q in pushed)
