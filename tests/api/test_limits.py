"""Hostile input is bounded: each case of issue 14 is a 4xx OGC exception naming its limit.

Cases: vertex cap, self-intersecting polygons repaired or stopped by the time limit, work
stopped when the client goes away, Infinity coordinates, a whole-world polygon in GCJ-02,
deep CQL2 on every endpoint that takes a filter, a 5e-324 m density cell, long URLs, big
bodies (Content-Length and chunked), rate limits.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
import shapely

from api.testing import READER_KEY, live_server

ITEMS = "/collections/enterprises/items"


def _random_ring(n: int, seed: int = 0) -> shapely.Polygon:
    """A ring through ``n`` random points: about n^2/4 self-intersections."""
    pts = np.random.default_rng(seed).uniform([116, 23], [117, 24], (n, 2))
    return shapely.Polygon(np.vstack([pts, pts[:1]]))


def _ogc_error(r, status: int, *needles: str) -> dict:  # noqa: ANN001
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"code", "description"}
    for needle in needles:
        assert needle in body["description"], body
    return body


def test_vertex_cap_at_the_boundary(make_client) -> None:  # noqa: ANN001
    client = make_client(max_vertices=100)
    # a valid ring of exactly 100 positions (99 + closing) passes, 101 does not
    ok = shapely.Point(116.5, 23.5).buffer(0.2, quad_segs=99 // 4 + 1)
    coords = shapely.get_coordinates(ok)[:99].tolist()
    at_cap = {"type": "Polygon", "coordinates": [coords + [coords[0]]]}
    assert len(at_cap["coordinates"][0]) == 100
    assert client.post("/query/within", json=at_cap).status_code == 200
    coords = shapely.get_coordinates(ok)[:100].tolist()
    over = {"type": "Polygon", "coordinates": [coords + [coords[0]]]}
    body = _ogc_error(client.post("/query/within", json=over), 400,
                      "BASINWATCH_MAX_VERTICES=100")
    assert body["code"] == "LimitExceeded"
    wkt = shapely.Polygon(over["coordinates"][0]).wkt
    _ogc_error(client.get("/map/area", params={"within": wkt}), 400, "BASINWATCH_MAX_VERTICES")
    _ogc_error(client.get("/exports/enforcement", params={"within": wkt, "format": "csv"}),
               400, "BASINWATCH_MAX_VERTICES")


def test_self_intersecting_polygon_is_repaired(loaded_client, enterprises) -> None:  # noqa: ANN001
    # a bow-tie around the two Chaonan works: repaired to its two lobes, not rejected
    bowtie = {"type": "Polygon", "coordinates": [[[116.40, 23.20], [116.50, 23.30],
                                                  [116.50, 23.20], [116.40, 23.30],
                                                  [116.40, 23.20]]]}
    r = loaded_client.post("/query/within", json=bowtie)
    assert r.status_code == 200, r.text
    lobes = shapely.MultiPolygon([shapely.Polygon([(116.40, 23.20), (116.45, 23.25),
                                                   (116.40, 23.30)]),
                                  shapely.Polygon([(116.50, 23.20), (116.45, 23.25),
                                                   (116.50, 23.30)])])
    want = enterprises.loc[enterprises.intersects(lobes), "name"].tolist()
    assert [f["properties"]["name"] for f in r.json()["features"]] == want


def test_geometry_memory_limit(make_client) -> None:  # noqa: ANN001
    client = make_client(geometry_timeout_s=60, geometry_memory_mb=256, max_vertices=20_000)
    hostile = shapely.geometry.mapping(_random_ring(3000))  # ~10^6 crossings to node
    t0 = time.monotonic()
    body = _ogc_error(client.post("/query/within", json=hostile), 400,
                      "BASINWATCH_GEOMETRY_MEMORY_MB=256")
    assert body["code"] == "LimitExceeded" and time.monotonic() - t0 < 20


def test_geometry_time_limit(make_client) -> None:  # noqa: ANN001
    client = make_client(geometry_timeout_s=0.5, geometry_memory_mb=4096, max_vertices=20_000)
    hostile = shapely.geometry.mapping(_random_ring(3000))  # minutes of make_valid
    t0 = time.monotonic()
    r = client.post("/query/within", json=hostile)
    took = time.monotonic() - t0
    body = _ogc_error(r, 400, "BASINWATCH_GEOMETRY_TIMEOUT_S=0.5")
    assert body["code"] == "LimitExceeded"
    assert took < 5, f"answered after {took:.1f} s"
    # the pool recovers: a small repair right after works
    bowtie = {"type": "Polygon", "coordinates": [[[116.4, 23.2], [116.5, 23.3], [116.5, 23.2],
                                                  [116.4, 23.3], [116.4, 23.2]]]}
    assert client.post("/query/within", json=bowtie).status_code == 200


@pytest.mark.parametrize("bad", ["Infinity", "1e999", "NaN"])
def test_non_finite_coordinates(loaded_client, bad: str) -> None:  # noqa: ANN001
    raw = ('{"type":"Polygon","coordinates":[[[116,23],[117,23],[117,' + bad
           + '],[116,23]]]}')
    r = loaded_client.post("/query/within", content=raw,
                           headers={"Content-Type": "application/json"})
    _ogc_error(r, 400, "finite")


def test_whole_world_polygon_in_gcj02(loaded_client) -> None:  # noqa: ANN001
    world = shapely.geometry.mapping(shapely.box(-180, -90, 180, 90))
    r = loaded_client.post("/query/within", params={"crs": "GCJ02"}, json=world)
    _ogc_error(r, 400, "GCJ02")


def _deep_cql(n: int) -> str:
    return " AND ".join(f"row<>{i}" for i in range(n))


@pytest.mark.parametrize(("path", "extra"), [
    (ITEMS, {}),
    ("/exports/enforcement", {"format": "csv"}),
    ("/map/area", {}),
])
def test_deep_cql2_is_a_400(loaded_client, path: str, extra: dict) -> None:  # noqa: ANN001
    cql = _deep_cql(500)
    assert len(cql) < 8192  # under the character cap: the term cap answers
    body = _ogc_error(loaded_client.get(path, params={"filter": cql, **extra}), 400,
                      "BASINWATCH_MAX_FILTER_TERMS")
    assert body["code"] == "LimitExceeded"


def test_filter_terms_cap_at_the_boundary(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(max_filter_terms=10, max_filter_chars=1000)
    # 11 comparisons joined by 10 ANDs: exactly at the cap
    r = client.get(ITEMS, params={"filter": _deep_cql(11)})
    assert r.status_code == 200, r.text
    _ogc_error(client.get(ITEMS, params={"filter": _deep_cql(12)}), 400,
               "BASINWATCH_MAX_FILTER_TERMS=10")
    long = "verdict IN (" + ",".join(f"'{i:05d}'" for i in range(200)) + ")"
    _ogc_error(client.get(ITEMS, params={"filter": long}), 400,
               "BASINWATCH_MAX_FILTER_CHARS=1000")


def test_tiny_density_cell(loaded_client) -> None:  # noqa: ANN001
    body = _ogc_error(loaded_client.get("/map/density", params={"cell_m": "5e-324"}), 400,
                      "BASINWATCH_MIN_DENSITY_CELL_M")
    assert body["code"] == "LimitExceeded"
    assert loaded_client.get("/map/density", params={"cell_m": 100}).status_code == 200


def test_long_url_is_414(make_client) -> None:  # noqa: ANN001
    client = make_client(max_url_chars=2000)
    r = client.get(ITEMS, params={"filter": "x" * 2100})
    body = _ogc_error(r, 414, "BASINWATCH_MAX_URL_CHARS=2000")
    assert body["code"] == "URITooLong"


def test_json_body_cap(make_client) -> None:  # noqa: ANN001
    client = make_client(max_body_kb=1)
    poly = {"type": "Polygon", "coordinates": [[[116, 23], [117, 23], [117, 24], [116, 23]]],
            "pad": "x" * 2000}
    body = _ogc_error(client.post("/query/within", json=poly), 413, "BASINWATCH_MAX_BODY_KB=1")
    assert body["code"] == "PayloadTooLarge"


def _raw_post(url: str, path: str, head: dict[str, str], chunks):  # noqa: ANN001, ANN202
    """POST a chunked body over a raw socket while a thread reads the answer; returns
    (status line, body, bytes of body sent before the server closed or answered)."""
    import threading

    u = urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: {u.hostname}", "Transfer-Encoding: chunked",
             *[f"{k}: {v}" for k, v in head.items()], "", ""]
    sock.sendall("\r\n".join(lines).encode())
    received = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                received.extend(chunk)
                answered.set()
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    try:
        for chunk in chunks:
            if answered.is_set():
                break
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        else:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection: what we want
    reader.join(timeout=30)
    sock.close()
    head_part, _, body = bytes(received).partition(b"\r\n\r\n")
    return head_part.split(b"\r\n")[0].decode(), body, sent


def test_chunked_upload_is_cut_while_streaming(make_app, fake_registry_pipeline) -> None:  # noqa: ANN001
    app = make_app(max_upload_mb=1, run_pipeline=fake_registry_pipeline)
    boundary = "bwboundary"
    head = {"Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-API-Key": READER_KEY}
    preamble = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()

    def body():  # noqa: ANN202 - 64 MB offered, 64 KB at a time
        yield preamble + "企业名称,经度,纬度\n".encode()
        for _ in range(1024):
            yield b"a,116.4,23.2\n" * 5000

    with live_server(app) as url:
        status, text, sent = _raw_post(url, "/registry", head, body())
    assert " 413 " in status + " ", status
    assert b"BASINWATCH_MAX_UPLOAD_MB=1" in text
    assert sent < 16 * 2**20, f"the server read {sent / 2**20:.0f} MB before answering"
    assert fake_registry_pipeline.calls == []


def test_declared_length_over_the_cap_is_refused_unread(make_client) -> None:  # noqa: ANN001
    client = make_client(max_upload_mb=1)
    big = b"x" * (2 * 2**20)
    r = client.post("/registry", files={"file": ("a.csv", big, "text/csv")},
                    headers={"X-API-Key": READER_KEY})
    _ogc_error(r, 413, "BASINWATCH_MAX_UPLOAD_MB=1")


def test_rate_limit_per_address_and_per_key(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(rate_limit_per_minute=60, rate_limit_burst=5)
    codes = [client.get("/conformance").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = client.get("/conformance")
    body = _ogc_error(r, 429, "BASINWATCH_RATE_LIMIT_PER_MINUTE=60", "client address")
    assert body["code"] == "TooManyRequests" and int(r.headers["Retry-After"]) >= 1
    # a key has its own bucket; an unknown key does not get a fresh one
    keyed = [client.get("/conformance", headers={"X-API-Key": READER_KEY}).status_code
             for _ in range(6)]
    assert keyed == [200] * 5 + [429]
    assert client.get("/conformance", headers={"X-API-Key": "made-up-key-0123456789"}
                      ).status_code == 429


def test_client_gone_stops_the_geometry_work(make_app) -> None:  # noqa: ANN001
    app = make_app(geometry_timeout_s=60, geometry_memory_mb=4096, max_vertices=20_000)
    workers = app.state.geometry_workers
    hostile = json.dumps(shapely.geometry.mapping(_random_ring(3000))).encode()
    with live_server(app) as url:
        u = urlsplit(url)
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(b"POST /query/within HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(hostile)}\r\n\r\n".encode() + hostile)
        time.sleep(1.0)  # the repair is running in a worker
        before = workers.killed
        sock.close()  # the client goes away
        deadline = time.monotonic() + 10
        while workers.killed == before and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped_after = 1.0 + (10 - (deadline - time.monotonic()))
    assert workers.killed == before + 1, "the worker kept repairing for a departed client"
    assert stopped_after < 5


@pytest.fixture
def fake_registry_pipeline():  # noqa: ANN201
    """A pipeline stand-in that records calls (the size checks must stop before it)."""
    calls: list[str] = []

    def run(source, *, filename):  # noqa: ANN001, ANN202
        calls.append(filename)
        raise AssertionError("the pipeline must not run")

    run.calls = calls  # type: ignore[attr-defined]
    return run
