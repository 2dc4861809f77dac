"""api/itemfast.py's lean item PAGES (``items?limit=N&<property>=<value>``) against the route.

Oracle: the route itself (``api.itemfast.ENABLED = False``). Every request is made twice,
lean path on and off; ``timeStamp`` (the clock, ``api.routers.collections.now_iso``) is
fixed so both answers must be the same status, body bytes and headers, raw on the wire
(through the gzip middleware too). Only PostGIS answers pages on the lean path
(``geojson_page_async``); on the embedded store every page takes the route.
"""

from __future__ import annotations

import gzip
from urllib.parse import quote

import httpx
import orjson
import pytest

import api.itemfast
import api.routers.collections
from api.testing import READER_KEY, make_enterprises
from tests.api.test_itemfast import _fetch, _raw  # the same raw fetch, lean or route

BASE = "/collections/enterprises/items"


@pytest.fixture
def loaded(make_client, store, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(api.routers.collections, "now_iso", lambda: "2026-12-07T00:00:00Z")
    gdf = make_enterprises()
    store.load_enterprises(gdf, loaded_by="test", source_name="e.csv", source_sha256="0")
    return make_client, store, gdf


def _lean_store(store) -> bool:  # noqa: ANN001
    return hasattr(store, "geojson_page_async")


def _both(raw: httpx.Client, url: str, monkeypatch: pytest.MonkeyPatch, **kw):  # noqa: ANN003, ANN202
    route = _fetch(raw, url, lean=False, monkeypatch=monkeypatch, **kw)
    lean = _fetch(raw, url, lean=True, monkeypatch=monkeypatch, **kw)
    assert not route[3]
    assert lean[:3] == route[:3], url
    return route, lean


def _doc(answer) -> dict:  # noqa: ANN001
    body = answer[1]
    if dict(answer[2]).get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return orjson.loads(body)


def _property_urls(gdf) -> list[str]:  # noqa: ANN001
    """One ``<property>=<value>&limit=3`` page per property the route takes as a query
    parameter (every column of the collection), the value taken from the data."""
    from api.sources import ENTERPRISES, get_source

    urls = []
    for name in get_source(None, ENTERPRISES).properties:  # type: ignore[arg-type]
        v = gdf[name].iloc[1] if name in gdf else 1  # fid: some feature or none
        text = str(v).lower() if str(v) in ("True", "False") else str(v)
        urls.append(f"{BASE}?{quote(name)}={quote(text)}&limit=3")
    return urls


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_lean_pages_are_the_routes_bytes_and_headers(loaded, monkeypatch, encoding) -> None:
    make_client, store, gdf = loaded
    raw = _raw(make_client(gzip_min_bytes=200))
    h = {"Accept-Encoding": encoding}
    n = len(gdf)
    verdict = gdf["verdict"].iloc[0]
    urls = [
        BASE, f"{BASE}?limit=1", f"{BASE}?limit=2", f"{BASE}?limit=2&offset=2",
        f"{BASE}?offset=2&limit=2", f"{BASE}?limit=2&offset={n - 1}",
        f"{BASE}?limit=2&offset={n + 5}", f"{BASE}?offset=1", f"{BASE}?limit={n}",
        f"{BASE}?limit=10000", f"{BASE}?f=json&limit=3", f"{BASE}?limit=3&f=geojson",
        f"{BASE}?verdict={quote(verdict)}&limit=1", f"{BASE}?limit=1&verdict={quote(verdict)}",
        f"{BASE}?verdict={quote(verdict)}&limit=1&offset=1",
        f"{BASE}?verdict={quote(verdict)}",
        f"{BASE}?verdict=no-such-verdict&limit=100",  # an empty page
        f"{BASE}?verdict={quote(verdict)},no-such-verdict&limit=2",
        f"{BASE}?verdict={quote(verdict)}&needs_review=true&limit=2",
        f"{BASE}?verdict=&limit=5",
        *_property_urls(gdf),
    ]
    for url in urls:
        _, lean = _both(raw, url, monkeypatch, headers=h)
        assert lean[0] == 200, url
        assert lean[3] == _lean_store(store), url
        doc = _doc(lean)
        assert doc["type"] == "FeatureCollection" and doc["links"][0]["rel"] == "self"
        assert dict(lean[2])["content-type"] == "application/geo+json"
        assert "content-crs" in dict(lean[2])
    # a full page has a next link, and the next page a prev link, both alike
    first = _doc(_both(raw, f"{BASE}?limit=2", monkeypatch, headers=h)[1])
    assert first["numberReturned"] == 2 and first["numberMatched"] == n
    nxt = next(x["href"] for x in first["links"] if x["rel"] == "next")
    second = _both(raw, nxt.split("testserver", 1)[-1], monkeypatch, headers=h)[1]
    assert any(x["rel"] == "prev" for x in _doc(second)["links"])


def test_limit_edges_and_refusals_are_the_routes(loaded, monkeypatch) -> None:
    make_client, store, _ = loaded
    raw = _raw(make_client(max_limit=50, default_limit=4))
    for url, status in [(f"{BASE}?limit=50", 200), (f"{BASE}?limit=51", 400),
                        (f"{BASE}?limit=0", 400), (f"{BASE}?limit=-1", 400),
                        (f"{BASE}?limit=abc", 400), (f"{BASE}?limit=", None),
                        (f"{BASE}?offset=-1", 400), (f"{BASE}?offset=1000000001", 400),
                        (f"{BASE}?limit=007", None), (f"{BASE}?needs_review=maybe", 400),
                        (f"{BASE}?unit_count=x", 400), (f"{BASE}", 200)]:
        _, lean = _both(raw, url, monkeypatch)
        if status is not None:
            assert lean[0] == status, url
        answered = url in (f"{BASE}?limit=50", BASE) and _lean_store(store)
        assert lean[3] == answered, url


@pytest.mark.parametrize("tail,headers", [
    ("?f=html", {}), ("", {"Accept": "text/html"}), ("?f=csv", {}), ("?f=JSON", {}),
    ("?bbox=100,20,130,40", {}), ("?crs=http://www.opengis.net/def/crs/EPSG/0/4326", {}),
    ("?properties=name,verdict", {}), ("?sortby=fid", {}), ("?filter=verdict%3D'shutdown'", {}),
    ("?datetime=2020-01-01", {}), ("?nope=1", {}), ("?limit=2&limit=3", {}),
    ("?verdict=a&verdict=b", {}), ("/", {}),
])
def test_everything_else_takes_the_route_with_the_same_answer(loaded, monkeypatch, tail,
                                                             headers) -> None:
    make_client, _, _ = loaded
    raw = _raw(make_client())
    _, lean = _both(raw, BASE + tail, monkeypatch, headers=headers)
    assert not lean[3]


def test_lean_pages_never_answer_what_the_route_would_refuse(loaded, monkeypatch) -> None:
    make_client, store, _ = loaded
    raw = _raw(make_client(read_open=False))
    url = f"{BASE}?limit=2"
    for headers in ({}, {"X-API-Key": "not-a-key"}):
        _, lean = _both(raw, url, monkeypatch, headers=headers)
        assert lean[0] == 401 and not lean[3]
    _, lean = _both(raw, url, monkeypatch, headers={"X-API-Key": READER_KEY})
    assert lean[0] == 200 and lean[3] == _lean_store(store)


def test_a_new_load_is_read_at_once(loaded, monkeypatch) -> None:
    """The count memo is per data version: a new load's page and count are the new ones."""
    make_client, store, gdf = loaded
    raw = _raw(make_client())
    url = f"{BASE}?verdict={quote(gdf['verdict'].iloc[0])}&limit=1"
    before = _both(raw, url, monkeypatch)[1]
    store.load_enterprises(gdf.iloc[:3], loaded_by="t", source_name="b.csv", source_sha256="b")
    after = _both(raw, url, monkeypatch)[1]
    assert _doc(after)["numberMatched"] == int((gdf["verdict"].iloc[:3]
                                                == gdf["verdict"].iloc[0]).sum())
    assert after[1] != before[1] or _doc(before)["numberMatched"] == _doc(after)["numberMatched"]
