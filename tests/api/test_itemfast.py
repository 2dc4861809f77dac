"""api/itemfast.py (the lean ``items/{fid}`` path) against the FastAPI route.

Oracle: the route itself (``api.itemfast.ENABLED = False``). Every request is made twice,
lean path on and off, and both answers must be the same status, body bytes and headers,
raw on the wire (so through the gzip middleware too). The PostGIS parameter runs on a real
PostGIS (``BASINWATCH_TEST_DATABASE_URL``); the embedded store answers the lean path from
the version in memory once the route has built its fid index and JSON columns.
"""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest

import api.itemfast
from api.itemfast import LEAN_STATS
from api.testing import READER_KEY, make_enterprises

BASE = "/collections/enterprises/items/"


@pytest.fixture
def loaded(make_client, store):  # noqa: ANN001, ANN201
    gdf = make_enterprises()
    store.load_enterprises(gdf, loaded_by="test", source_name="e.csv", source_sha256="0")
    return make_client, store, gdf


def _raw(client) -> httpx.Client:  # noqa: ANN001
    return httpx.Client(transport=client._transport, base_url=str(client.base_url))


def _fetch(raw: httpx.Client, url: str, *, lean: bool, monkeypatch: pytest.MonkeyPatch,
           **kw) -> tuple[int, bytes, list[tuple[str, str]], bool]:  # noqa: ANN003
    """Status, raw body, headers (in order) and whether the lean path answered."""
    monkeypatch.setattr(api.itemfast, "ENABLED", lean)
    served = LEAN_STATS["served"]
    with raw.stream("GET", url, **kw) as r:
        body = b"".join(r.iter_raw())
        out = (r.status_code, body, list(r.headers.multi_items()))
    return (*out, LEAN_STATS["served"] == served + 1)


def _fids(store) -> list[int]:  # noqa: ANN001
    from api.store import FeatureQuery

    return [int(v) for v in store.query(FeatureQuery(limit=100)).features["fid"]]


@pytest.mark.parametrize("query", ["", "?f=json", "?f=geojson"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_lean_answers_are_the_routes_bytes_and_headers(loaded, monkeypatch, query,
                                                       encoding) -> None:
    make_client, store, _ = loaded
    client = make_client(gzip_min_bytes=200)  # a feature (~1 KB) is gzipped when accepted
    raw = _raw(client)
    fids = _fids(store)
    assert len(fids) >= 6
    h = {"Accept-Encoding": encoding}
    for fid in [*fids, max(fids) + 1000]:  # every feature, and an unknown fid (404)
        url = f"{BASE}{fid}{query}"
        route = _fetch(raw, url, lean=False, monkeypatch=monkeypatch, headers=h)
        lean = _fetch(raw, url, lean=True, monkeypatch=monkeypatch, headers=h)
        assert lean[:3] == route[:3], url
        exists = fid in fids
        assert route[0] == (200 if exists else 404)
        assert lean[3] == exists, url  # the embedded store once the route built its arrays
        assert not route[3]
        body = gzip.decompress(lean[1]) if dict(lean[2]).get("content-encoding") else lean[1]
        if exists:
            doc = orjson.loads(body)
            assert doc["id"] == fid and doc["links"][0]["rel"] == "self"
            assert dict(lean[2])["content-type"] == "application/geo+json"
            assert "content-crs" in dict(lean[2])
            assert dict(lean[2])["x-content-type-options"] == "nosniff"
            if encoding == "gzip":
                assert dict(lean[2])["content-encoding"] == "gzip"


@pytest.mark.parametrize("url_tail,headers", [
    ("{fid}?f=html", {}),
    ("{fid}", {"Accept": "text/html"}),
    ("{fid}?f=csv", {}),
    ("{fid}?crs=http://www.opengis.net/def/crs/EPSG/0/4326", {}),
    ("{fid}?properties=name,verdict", {}),
    ("{fid}?f=json&f=json", {}),
    ("{fid}?f=JSON", {}),
    ("{fid}?f=json&x=1", {}),
    ("0{fid}", {}),
    ("0", {}),
    ("abc", {}),
    ("99999999999999999999999", {}),
    ("{fid}/", {}),
])
def test_everything_else_takes_the_route_with_the_same_answer(loaded, monkeypatch,
                                                             url_tail, headers) -> None:
    make_client, store, _ = loaded
    raw = _raw(make_client())
    fid = _fids(store)[0]
    url = BASE + url_tail.format(fid=fid)
    route = _fetch(raw, url, lean=False, monkeypatch=monkeypatch, headers=headers)
    lean = _fetch(raw, url, lean=True, monkeypatch=monkeypatch, headers=headers)
    plain = url_tail == "0{fid}"  # "007" names fid 7: the lean path answers it, as the route
    assert lean[3] == plain
    assert lean[:2] == route[:2]
    assert dict(lean[2]).keys() == dict(route[2]).keys()


def test_lean_path_never_answers_what_the_route_would_refuse(loaded, monkeypatch) -> None:
    """Closed reads: no key and an unknown key are the route's 401, every time; a viewer
    key is answered (by the lean path on PostGIS)."""
    make_client, store, _ = loaded
    raw = _raw(make_client(read_open=False))
    url = f"{BASE}{_fids(store)[0]}"
    for headers in ({}, {"X-API-Key": "not-a-key"}):
        route = _fetch(raw, url, lean=False, monkeypatch=monkeypatch, headers=headers)
        lean = _fetch(raw, url, lean=True, monkeypatch=monkeypatch, headers=headers)
        assert route[0] == lean[0] == 401 and not lean[3] and lean[1] == route[1]
    ok = {"X-API-Key": READER_KEY}
    route = _fetch(raw, url, lean=False, monkeypatch=monkeypatch, headers=ok)
    lean = _fetch(raw, url, lean=True, monkeypatch=monkeypatch, headers=ok)
    assert lean[:3] == route[:3] and lean[0] == 200 and lean[3]


def test_lean_answers_count_against_the_rate_limit(loaded) -> None:
    make_client, store, _ = loaded
    client = make_client(rate_limit_per_minute=60, rate_limit_burst=5)
    url = f"{BASE}{_fids(store)[0]}"
    codes = [client.get(url).status_code for _ in range(12)]
    assert codes[0] == 200 and 429 in codes  # the limits middleware sits outside


def test_cors_headers_are_the_routes(loaded, monkeypatch) -> None:
    make_client, store, _ = loaded
    raw = _raw(make_client(cors_origins=["https://gis.example.org"]))
    url = f"{BASE}{_fids(store)[0]}"
    h = {"Origin": "https://gis.example.org"}
    route = _fetch(raw, url, lean=False, monkeypatch=monkeypatch, headers=h)
    lean = _fetch(raw, url, lean=True, monkeypatch=monkeypatch, headers=h)
    assert lean[:3] == route[:3]
    assert dict(lean[2])["access-control-allow-origin"] == "https://gis.example.org"


def test_a_new_load_is_read_at_once(loaded, monkeypatch) -> None:
    """No cache: the answer after a new load is the new row's."""
    make_client, store, gdf = loaded
    raw = _raw(make_client())
    before = _fetch(raw, f"{BASE}{_fids(store)[0]}", lean=True, monkeypatch=monkeypatch)
    moved = gdf.copy()
    moved["name"] = moved["name"] + "（新）"
    store.load_enterprises(moved, loaded_by="t", source_name="b.csv", source_sha256="b")
    fid = _fids(store)[0]
    route = _fetch(raw, f"{BASE}{fid}", lean=False, monkeypatch=monkeypatch)
    lean = _fetch(raw, f"{BASE}{fid}", lean=True, monkeypatch=monkeypatch)
    assert lean[:3] == route[:3] and lean[1] != before[1]
    assert orjson.loads(lean[1])["properties"]["name"].endswith("（新）")


def test_async_pool_bounds_reuses_and_drops_connections() -> None:
    """PostGIS's pool of AsyncConnections (no database needed: stand-in connections)."""
    import asyncio

    import psycopg.pq

    from api.store.postgis import _AsyncReads

    class Conn:
        def __init__(self) -> None:
            self.closed = False
            self.info = type("I", (), {"transaction_status": psycopg.pq.TransactionStatus.IDLE})
            self.pgconn = self

        def finish(self) -> None:
            self.closed = True

    async def scenario() -> None:
        made: list[Conn] = []

        async def connect() -> Conn:
            made.append(Conn())
            return made[-1]

        pool = _AsyncReads(asyncio.get_running_loop(), connect, 1)
        a = await pool.acquire()
        waiting = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        assert not waiting.done()  # at most `size` connections
        pool.release(a, broken=False)
        assert await waiting is a and len(made) == 1  # the idle one is reused
        pool.release(a, broken=True)  # a failed statement: closed, not kept
        assert a.closed
        b = await pool.acquire()
        assert b is not a and len(made) == 2
        pool.release(b, broken=False)
        pool.close()
        assert b.closed

    asyncio.run(scenario())
