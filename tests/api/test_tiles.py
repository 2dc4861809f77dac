"""OGC API – Tiles of the enterprise list (api/tiles.py, api/routers/tiles.py).

Oracles: tiles are decoded with ``mapbox-vector-tile`` (an independent MVT decoder) and with
GDAL's MVT driver; positions are checked against pyproj's EPSG:3857 transform; counts
against a brute-force count of the frame; the embedded store's Python tiles against
PostGIS ``ST_AsMVT``; the matrix set against the values published in OGC 17-083r4.
"""

from __future__ import annotations

import gzip
import math

import geopandas as gpd
import httpx
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from api.testing import READER_KEY, make_enterprises
from api.tilefast import LEAN_STATS
from api.tiles import BIN, BUFFER, EXTENT, PointIndex, encode_points

VERDICTS = ("shutdown", "rectify", "basin_standard", "priority_supervision", "no_action")
TILE = "/collections/enterprises/tiles/WebMercatorQuad/{z}/{y}/{x}"
_TO_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
_HALF = 20037508.342789244


def _many(n: int = 1500, seed: int = 11) -> gpd.GeoDataFrame:
    """``n`` enterprises around the Lianjiang / Shantou area with all verdicts."""
    rng = np.random.default_rng(seed)
    base = make_enterprises()
    rows = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    lon = rng.uniform(116.0, 116.8, n)
    lat = rng.uniform(23.0, 23.6, n)
    lon[:40], lat[:40] = 116.4301, 23.2501  # 40 enterprises at one spot: one bin
    rows["lon"], rows["lat"] = lon, lat
    rows["verdict"] = rng.choice(VERDICTS, n)
    rows["uscc"] = [f"91440500MA{i:08d}" for i in range(n)]
    return gpd.GeoDataFrame(rows.drop(columns="geometry"),
                            geometry=shapely.points(lon, lat), crs="EPSG:4326")


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    x, y = _TO_3857.transform(lon, lat)
    n = 2 ** z
    return int((x + _HALF) / (2 * _HALF) * n), int((_HALF - y) / (2 * _HALF) * n)


def _decode(body: bytes) -> list[dict]:
    if not body:
        return []
    layers = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})
    assert list(layers) == ["enterprises"]
    assert layers["enterprises"]["extent"] == EXTENT
    return layers["enterprises"]["features"]


def _in_tile(gdf: gpd.GeoDataFrame, z: int, x: int, y: int, pad: float = 0) -> np.ndarray:
    """Rows whose EPSG:3857 position (pyproj) lies in tile z/x/y grown by ``pad`` units."""
    mx, my = _TO_3857.transform(gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy())
    n = 2 ** z
    tx = ((mx + _HALF) / (2 * _HALF) * n - x) * EXTENT
    ty = ((_HALF - my) / (2 * _HALF) * n - y) * EXTENT
    return (tx >= -pad) & (tx < EXTENT + pad) & (ty >= -pad) & (ty < EXTENT + pad)


@pytest.fixture
def many_client(make_client, store):  # noqa: ANN001, ANN201
    gdf = _many()
    store.load_enterprises(gdf, loaded_by="test", source_name="many.csv", source_sha256="0")
    return make_client(), gdf


@pytest.mark.parametrize("z", [6, 9, 12, 16])
def test_tile_holds_every_matching_enterprise_once(many_client, z: int) -> None:
    client, gdf = many_client
    x, y = _tile_xy(float(gdf.lon[500]), float(gdf.lat[500]), z)
    resp = client.get(TILE.format(z=z, x=x, y=y))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    feats = _decode(resp.content)
    inside = [f for f in feats if all(0 <= c < EXTENT for c in f["geometry"]["coordinates"])]
    # bins never straddle the tile edge (EXTENT and BUFFER are multiples of BIN), so the
    # features inside the tile count exactly the enterprises inside it (pyproj oracle)
    want = gdf[_in_tile(gdf, z, x, y)]
    got = pd.Series({v: sum(f["properties"]["n"] for f in inside
                            if f["properties"]["verdict"] == v) for v in VERDICTS})
    assert got.sum() == len(want) > 0
    assert (got == want["verdict"].value_counts().reindex(VERDICTS, fill_value=0)).all()
    # and with the buffer, every enterprise of the buffered tile
    assert sum(f["properties"]["n"] for f in feats) == int(_in_tile(gdf, z, x, y, BUFFER).sum())
    # one feature per (bin, verdict); single enterprises carry their fid, at their bin
    keys = [(*f["geometry"]["coordinates"], f["properties"]["verdict"]) for f in feats]
    assert len(keys) == len(set(keys))
    fid_of = {i + 1: (lon, lat) for i, (lon, lat) in enumerate(zip(gdf.lon, gdf.lat))}
    singles = [f for f in feats if f["properties"]["n"] == 1]
    assert singles and all(f["id"] for f in singles)
    for f in singles[:50]:
        lon, lat = fid_of[f["id"]]
        mx, my = _TO_3857.transform(lon, lat)
        n = 2 ** z
        tx = ((mx + _HALF) / (2 * _HALF) * n - x) * EXTENT
        ty = ((_HALF - my) / (2 * _HALF) * n - y) * EXTENT
        cx, cy = f["geometry"]["coordinates"]
        assert abs(tx - cx) <= BIN / 2 and abs(ty - cy) <= BIN / 2


def test_forty_enterprises_at_one_spot_keep_their_verdict_mix(many_client) -> None:
    client, gdf = many_client
    x, y = _tile_xy(116.4301, 23.2501, 16)
    feats = _decode(client.get(TILE.format(z=16, x=x, y=y)).content)
    spot = gdf.iloc[:40]["verdict"].value_counts().to_dict()
    at = {}
    for f in feats:
        at.setdefault(tuple(f["geometry"]["coordinates"]), {})[f["properties"]["verdict"]] = \
            f["properties"]["n"]
    assert spot in at.values()  # every verdict of the spot with its own count


def test_tiles_follow_the_items_filters(many_client) -> None:
    client, gdf = many_client
    z = 6  # one tile holds all of them
    x, y = _tile_xy(116.4, 23.3, z)
    url = TILE.format(z=z, x=x, y=y)
    shut = _decode(client.get(url, params={"verdict": "shutdown,rectify"}).content)
    assert {f["properties"]["verdict"] for f in shut} == {"shutdown", "rectify"}
    assert sum(f["properties"]["n"] for f in shut) == int(
        gdf.verdict.isin(["shutdown", "rectify"]).sum())
    cql = _decode(client.get(url, params={"filter": "verdict = 'no_action'",
                                          "filter-lang": "cql2-text"}).content)
    assert sum(f["properties"]["n"] for f in cql) == int(gdf.verdict.eq("no_action").sum())
    box = "POLYGON((116.0 23.0,116.4 23.0,116.4 23.3,116.0 23.3,116.0 23.0))"
    within = _decode(client.get(url, params={"within": box}).content)
    assert sum(f["properties"]["n"] for f in within) == int(
        shapely.intersects(shapely.from_wkt(box), gdf.geometry.values).sum())
    empty = client.get(TILE.format(z=10, x=0, y=0))
    assert empty.status_code == 200 and empty.content == b""


def test_bad_tile_requests_name_the_parameter(many_client) -> None:
    client, _ = many_client
    r = client.get("/collections/enterprises/tiles/WebMercatorQuad/3/9/0")
    assert r.status_code == 400 and "tileRow" in r.json()["description"]
    assert client.get("/collections/enterprises/tiles/WorldCRS84Quad/3/1/1").status_code == 404
    r = client.get(TILE.format(z=3, x=6, y=3), params={"nope": "1"})
    assert r.status_code == 400 and "nope" in r.json()["description"]


@pytest.mark.postgis
def test_postgis_st_asmvt_and_python_tiles_agree(make_client, tmp_path) -> None:
    from tests.api.conftest import open_store

    gdf = _many(3000, seed=5)
    bodies = {}
    for kind in ("gpkg", "postgis"):
        gen = open_store(kind, tmp_path / kind)
        st = next(gen)
        st.load_enterprises(gdf, loaded_by="t", source_name="m.csv", source_sha256="0")
        from api.app import create_app
        from api.settings import Settings
        from fastapi.testclient import TestClient

        client = TestClient(create_app(Settings(data_dir=tmp_path), store=st))
        for z in (7, 11, 14):
            x, y = _tile_xy(116.43, 23.25, z)
            for params in ({}, {"verdict": "shutdown"}, {"px": 512}):
                feats = _decode(client.get(TILE.format(z=z, x=x, y=y), params=params).content)
                bodies.setdefault((z, str(params)), {})[kind] = sorted(
                    (*f["geometry"]["coordinates"], f["properties"]["verdict"],
                     f["properties"]["n"], f.get("id") or 0) for f in feats)
        gen.close()
    for key, pair in bodies.items():
        assert pair["gpkg"] == pair["postgis"], key
        assert pair["gpkg"], key


def test_encoder_round_trips_through_two_decoders(tmp_path) -> None:
    rng = np.random.default_rng(1)
    n = 5000
    x = rng.integers(-BUFFER, EXTENT + BUFFER, n)
    y = rng.integers(-BUFFER, EXTENT + BUFFER, n)
    v = rng.integers(0, len(VERDICTS), n)
    cnt = rng.integers(1, 100_000, n)
    ids = np.where(rng.random(n) < 0.5, rng.integers(1, 2 ** 40, n), 0)
    body = encode_points(x, y, ids=ids, verdict=v, verdict_names=VERDICTS, n=cnt)
    feats = _decode(body)
    assert len(feats) == n
    for i in (0, 1, n // 2, n - 1):
        f = feats[i]
        assert f["geometry"]["type"] == "Point"
        assert f["geometry"]["coordinates"] == [int(x[i]), int(y[i])]
        assert f["properties"] == {"verdict": VERDICTS[v[i]], "n": int(cnt[i])}
        assert (f.get("id") or 0) == int(ids[i])
    # GDAL's MVT driver (what QGIS and ogr2ogr read) opens the same bytes
    import pyogrio

    path = tmp_path / "0.pbf"
    path.write_bytes(body)
    got = pyogrio.read_dataframe(f"MVT:{path}", layer="enterprises", CLIP="NO")
    assert len(got) == n and set(got["verdict"]) <= set(VERDICTS)
    assert int(got["n"].sum()) == int(cnt.sum())


def test_point_index_tiles_match_a_brute_force_count() -> None:
    rng = np.random.default_rng(2)
    n = 200_000
    frame = pd.DataFrame({"fid": np.arange(1, n + 1), "lon": rng.uniform(109.7, 117.3, n),
                          "lat": rng.uniform(20.2, 25.5, n),
                          "verdict": rng.choice(VERDICTS, n)})
    idx = PointIndex.build(frame, VERDICTS, (1,))
    gdf = gpd.GeoDataFrame(frame, geometry=shapely.points(frame.lon, frame.lat), crs=4326)
    for z in (4, 7, 10, 13, 21):
        x, y = _tile_xy(113.3, 23.1, z)
        feats = _decode(idx.tile(z, x, y, None))
        assert sum(f["properties"]["n"] for f in feats) == int(
            _in_tile(gdf, z, x, y, BUFFER).sum())


def test_tile_matrix_set_and_tileset_documents(many_client) -> None:
    client, _ = many_client
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    z0 = tms["tileMatrices"][0]
    # OGC 17-083r4 Annex D.1 (WebMercatorQuad): zoom 0 values
    assert math.isclose(z0["scaleDenominator"], 559082264.0287178, rel_tol=1e-12)
    assert math.isclose(z0["cellSize"], 156543.0339280410, rel_tol=1e-12)
    assert z0["pointOfOrigin"] == pytest.approx([-20037508.3427892, 20037508.3427892])
    assert tms["tileMatrices"][18]["matrixWidth"] == 2 ** 18
    ts = client.get("/collections/enterprises/tiles/WebMercatorQuad").json()
    item = next(link for link in ts["links"] if link["rel"] == "item")
    assert item["href"].endswith("/collections/enterprises/tiles/WebMercatorQuad/"
                                 "{tileMatrix}/{tileRow}/{tileCol}")
    assert item["type"] == "application/vnd.mapbox-vector-tile"
    assert client.get("/collections/enterprises/tiles").json()["tilesets"][0]["dataType"] == \
        "vector"
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conf
    style = client.get("/collections/enterprises/tiles/WebMercatorQuad/style.json").json()
    assert style["layers"][0]["source-layer"] == "enterprises"
    assert "{z}/{y}/{x}" in style["sources"]["basinwatch"]["tiles"][0]


def test_view_count_per_verdict(many_client) -> None:
    client, gdf = many_client
    box = (116.2, 23.1, 116.5, 23.4)
    body = client.get("/map/count", params={"bbox": ",".join(map(str, box)),
                                            "needs_review": "true"}).json()
    inside = gdf[(gdf.lon >= box[0]) & (gdf.lon <= box[2]) & (gdf.lat >= box[1])
                 & (gdf.lat <= box[3]) & gdf.needs_review]
    assert body["total"] == len(inside) > 0
    assert body["verdict"] == {k: int(v) for k, v in inside.verdict.value_counts().items()}



def _features(body: bytes) -> list[tuple]:
    return sorted((*f["geometry"]["coordinates"], f["properties"]["verdict"],
                   f["properties"]["n"], f.get("id") or 0) for f in _decode(body))


def test_cell_sums_equal_binning_every_enterprise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Low zooms come from cached per-cell counts; forcing the per-enterprise path gives the
    same tiles."""
    import api.tiles as tiles

    rng = np.random.default_rng(4)
    n = 100_000
    frame = pd.DataFrame({"fid": np.arange(1, n + 1), "lon": rng.normal(113.5, 0.4, n),
                          "lat": rng.normal(23.0, 0.3, n), "verdict": rng.choice(VERDICTS, n)})
    idx = PointIndex.build(frame, VERDICTS, (1,))
    for z in (5, 8, 10):
        x, y = _tile_xy(113.5, 23.0, z)
        for px in (256, 512):
            cells = idx.tile(z, x, y, None, tile_px=px)
            with monkeypatch.context() as m:
                m.setattr(tiles, "AGG_LEVEL", 0)
                raw = idx.tile(z, x, y, None, tile_px=px)
            assert _features(cells) == _features(raw), (z, px)


@pytest.mark.parametrize(("z", "px"), [(8, 512), (13, 512), (8, 1024), (12, 1024)])
def test_a_512_px_tile_is_its_four_256_px_children(many_client, z: int, px: int) -> None:
    """px=512 bins the parent tile for display at 512 px: the same 4 px bins as its four
    children at the next zoom (each child's coordinates halved and offset); px=1024 the
    same for its 16 grandchildren two zooms down."""
    client, gdf = many_client
    x, y = _tile_xy(float(gdf.lon[500]), float(gdf.lat[500]), z)
    big = [f for f in _features(client.get(TILE.format(z=z, x=x, y=y),
                                           params={"px": px}).content)
           if 0 <= f[0] < EXTENT and 0 <= f[1] < EXTENT]
    k = px // 256  # children per side
    d = k.bit_length() - 1
    children = []
    for dx in range(k):
        for dy in range(k):
            body = client.get(TILE.format(z=z + d, x=k * x + dx, y=k * y + dy)).content
            children += [((cx + dx * EXTENT) // k, (cy + dy * EXTENT) // k, *rest)
                         for cx, cy, *rest in _features(body)
                         if 0 <= cx < EXTENT and 0 <= cy < EXTENT]
    assert big and sorted(big) == sorted(children)
    assert client.get(TILE.format(z=z, x=x, y=y), params={"px": 300}).status_code == 400


# --------------------------------------------------------------------------- tile cache, HTTP


def _moved(gdf: gpd.GeoDataFrame, dlon: float) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out["lon"] = out["lon"] + dlon
    out["verdict"] = "shutdown"
    return gpd.GeoDataFrame(out.drop(columns="geometry"),
                            geometry=shapely.points(out["lon"], out["lat"]), crs="EPSG:4326")


@pytest.mark.parametrize("kind", ["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def test_tile_cache_follows_the_data_version(kind: str, tmp_path) -> None:
    """A tile served (and cached) before a new load is not served after it: the bytes and
    the ETag change, and the new bytes count the new list (brute-force oracle)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from api.tiles import TILES
    from tests.api.conftest import open_store

    gen = open_store(kind, tmp_path / kind)
    st = next(gen)
    try:
        gdf = _many(800, seed=3)
        st.load_enterprises(gdf, loaded_by="t", source_name="a.csv", source_sha256="a")
        client = TestClient(create_app(Settings(data_dir=tmp_path), store=st))
        z = 10
        x, y = _tile_xy(116.43, 23.25, z)
        url = TILE.format(z=z, x=x, y=y)
        first = client.get(url)
        hits = TILES.hits
        again = client.get(url)
        assert TILES.hits == hits + 1 and again.content == first.content  # from the cache
        moved = _moved(gdf, 0.002)  # ~200 m east: other bins, one verdict
        st.load_enterprises(moved, loaded_by="t", source_name="b.csv", source_sha256="b")
        after = client.get(url)
        assert after.status_code == 200
        assert after.content != first.content
        assert after.headers["etag"] != first.headers["etag"]
        feats = _decode(after.content)
        assert {f["properties"]["verdict"] for f in feats} == {"shutdown"}
        inside = [f for f in feats if 0 <= f["geometry"]["coordinates"][0] < EXTENT
                  and 0 <= f["geometry"]["coordinates"][1] < EXTENT]
        assert sum(f["properties"]["n"] for f in inside) == int(_in_tile(moved, z, x, y).sum())
    finally:
        gen.close()


def test_etag_names_the_version_and_a_revalidation_is_not_modified(many_client) -> None:
    """RFC 9110: If-None-Match with the tile's ETag (alone, in a list, weak, or ``*``) is a
    304 without a body; another tag, filter or tile is a 200 with another ETag."""
    client, gdf = many_client
    x, y = _tile_xy(116.43, 23.25, 11)
    url = TILE.format(z=11, x=x, y=y)
    first = client.get(url)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and first.content
    for inm in (tag, f'"x", {tag}', f"W/{tag}", "*"):
        r = client.get(url, headers={"If-None-Match": inm})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == tag, inm
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    other = client.get(url, params={"verdict": "shutdown"})
    assert other.headers["etag"] != tag
    assert client.get(TILE.format(z=11, x=x + 1, y=y)).headers["etag"] != tag
    # the page's URL names the data version (v=<version of /map/meta>): kept; without it or
    # with another: revalidated
    meta = client.get("/map/meta").json()
    assert str(meta["version"]).split(".")[0] == str(meta["load_id"])
    assert "max-age=86400" in client.get(url, params={"v": meta["version"]}).headers[
        "cache-control"]
    assert "no-cache" in first.headers["cache-control"]
    assert "no-cache" in client.get(url, params={"v": meta["load_id"] + 1}).headers[
        "cache-control"]


def test_gzip_when_accepted_decodes_to_the_same_tile(many_client) -> None:
    import gzip

    import httpx

    client, gdf = many_client
    x, y = _tile_xy(116.43, 23.25, 9)
    url = TILE.format(z=9, x=x, y=y)
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain.content) > 1024
    raw = httpx.Client(transport=client._transport, base_url=str(client.base_url))
    with raw.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in r.headers["vary"]
    assert len(body) < len(plain.content)
    assert gzip.decompress(body) == plain.content  # Python's gzip as the decoder


def test_the_tile_index_is_built_once_per_load_not_per_request(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request reads through its own pinned view of the store: the 1M-row index must
    still be shared (it was keyed by the view's id: rebuilt per tile request)."""
    from api.store import get_store
    from api.tiles import TILES

    st = get_store(tmp_path / "s.gpkg")
    st.init()
    st.load_enterprises(_many(300, seed=8), loaded_by="t", source_name="a.csv",
                        source_sha256="a")
    builds = []
    real = PointIndex.build.__func__

    def counting(cls, *args, **kwargs):  # noqa: ANN001, ANN202
        builds.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(PointIndex, "build", classmethod(counting))
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    client = TestClient(create_app(Settings(data_dir=tmp_path), store=st))
    TILES.clear()
    for z in (8, 9, 10, 11):
        x, y = _tile_xy(116.43, 23.25, z)
        assert client.get(TILE.format(z=z, x=x, y=y)).status_code == 200
    assert len(builds) == 1
    from api.routers.tiles import _verdicts
    from api.tiles import point_index

    names = [v for v, _l, _c in _verdicts()]
    views = [st.pinned(), st.pinned()]  # alive together: two ids
    assert point_index(views[0], names) is point_index(views[1], names)
    assert len(builds) == 1
    st.load_enterprises(_many(300, seed=9), loaded_by="t", source_name="b.csv",
                        source_sha256="b")
    x, y = _tile_xy(116.43, 23.25, 12)
    client.get(TILE.format(z=12, x=x, y=y))
    assert len(builds) == 2  # a new load: a new index


# --------------------------------------------------------------------------- lean tile path
# api/tilefast.py against the FastAPI route. Oracle: the route itself. The first request of
# a query string always takes the route (the lean path knows no query string yet), the next
# ones of a cached tile the lean path; both answers must be the same bytes and headers
# (Server-Timing aside), and whatever the route refuses or re-reads (auth, limits, a new
# load) must still be refused or re-read.

URL = TILE.format(z=10, x=_tile_xy(116.43, 23.25, 10)[0], y=_tile_xy(116.43, 23.25, 10)[1])


def _headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k != "server-timing"}


def _get(client, url: str, **kw) -> tuple[httpx.Response, bool]:  # noqa: ANN001
    """The answer and whether the lean path gave it."""
    served = LEAN_STATS["served"]
    r = client.get(url, **kw)
    return r, LEAN_STATS["served"] == served + 1


@pytest.fixture
def loaded(make_client, store):  # noqa: ANN001, ANN201
    gdf = _many()
    store.load_enterprises(gdf, loaded_by="test", source_name="many.csv", source_sha256="0")
    return make_client, store, gdf


@pytest.mark.parametrize("params", [{}, {"px": "512", "v": "1"}, {"verdict": "shutdown"}])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_lean_answers_are_the_routes_bytes_and_headers(loaded, params, encoding) -> None:
    make_client, store, _ = loaded
    client = make_client()
    raw = httpx.Client(transport=client._transport, base_url=str(client.base_url))
    h = {"Accept-Encoding": encoding}
    with raw.stream("GET", URL, params=params, headers=h) as r:
        first, first_body = r, b"".join(r.iter_raw())
    served = LEAN_STATS["served"]
    with raw.stream("GET", URL, params=params, headers=h) as r:
        again, again_body = r, b"".join(r.iter_raw())
    lean = LEAN_STATS["served"] == served + 1
    assert first.status_code == again.status_code == 200
    assert first_body == again_body and _headers(first) == _headers(again)
    assert lean == (store.provider == "gpkg")  # PostGIS reads its version: always the route
    if lean:
        assert 'desc="cache, lean"' in again.headers["server-timing"]
    if encoding == "gzip" and len(first_body) > 1024 and "content-encoding" in first.headers:
        assert gzip.decompress(again_body)
    # a revalidation is a 304 from the lean path too
    r, lean = _get(client, URL, params=params, headers={"If-None-Match": first.headers["etag"]})
    assert r.status_code == 304 and r.content == b"" and lean == (store.provider == "gpkg")
    assert r.headers["etag"] == first.headers["etag"]
    assert r.headers["cache-control"] == first.headers["cache-control"]


def test_lean_path_never_answers_what_the_route_would_refuse(loaded) -> None:
    """Closed reads: no key is a 401 and an unknown key a 401 (from the route, every time);
    a viewer key is answered (by the lean path once the route has served the query)."""
    make_client, store, _ = loaded
    client = make_client(read_open=False)
    ok = client.get(URL, headers={"X-API-Key": READER_KEY})
    assert ok.status_code == 200
    for _ in range(2):
        r, lean = _get(client, URL)
        assert r.status_code == 401 and not lean
        r, lean = _get(client, URL, headers={"X-API-Key": "not-a-key"})
        assert r.status_code == 401 and not lean
    r, lean = _get(client, URL, headers={"X-API-Key": READER_KEY})
    assert r.status_code == 200 and r.content == ok.content
    assert lean == (store.provider == "gpkg")
    # bad parameters are the route's 400, however often asked
    for _ in range(2):
        r, lean = _get(client, URL, params={"px": "300"}, headers={"X-API-Key": READER_KEY})
        assert r.status_code == 400 and not lean
        bad = TILE.format(z=3, x=99, y=0)
        r, lean = _get(client, bad, headers={"X-API-Key": READER_KEY})
        assert r.status_code in (400, 404) and not lean


def test_lean_answers_count_against_the_rate_limit(loaded) -> None:
    make_client, _store, _ = loaded
    client = make_client(rate_limit_per_minute=60, rate_limit_burst=5)
    codes = [client.get(URL).status_code for _ in range(12)]
    assert codes[0] == 200 and 429 in codes  # the limits middleware sits outside


def test_a_new_load_is_never_answered_from_the_old_tiles(loaded) -> None:
    make_client, store, gdf = loaded
    client = make_client()
    first = client.get(URL)
    _r, _lean = _get(client, URL)
    store.load_enterprises(_moved(gdf, 0.002), loaded_by="t", source_name="b.csv",
                           source_sha256="b")
    after, lean = _get(client, URL)
    assert not lean  # a new version: the route cuts the tile
    assert after.status_code == 200 and after.content != first.content
    assert after.headers["etag"] != first.headers["etag"]
    again, lean = _get(client, URL)
    assert again.content == after.content and lean == (store.provider == "gpkg")


def test_without_the_lean_path_the_answers_are_the_same(loaded, monkeypatch) -> None:
    import api.tilefast

    make_client, _store, _ = loaded
    client = make_client()
    on = [client.get(URL).content for _ in range(2)]
    monkeypatch.setattr(api.tilefast, "ENABLED", False)
    off, lean = _get(client, URL)
    assert not lean and off.content == on[0] == on[1]


def test_warmed_tiles_are_the_cut_tiles_and_served_from_the_cache(loaded) -> None:
    """warm_tiles cuts the unfiltered tiles holding enterprises ahead (low zooms first);
    a warmed tile is then a cache hit with the bytes a cold request cuts."""
    from api.routers.tiles import _verdicts
    from api.tiles import TILES, warm_tiles

    make_client, store, gdf = loaded
    client = make_client()
    names = [v for v, _l, _c in _verdicts()]
    TILES.clear()
    cut = warm_tiles(store, names, max_zoom=9, tile_px=512)
    assert warm_tiles(store, names, max_zoom=9, tile_px=512) == 0  # once per version
    assert (cut == 0) if store.provider == "postgis" else (cut > 0)
    x, y = _tile_xy(float(gdf.lon[500]), float(gdf.lat[500]), 9)
    url = TILE.format(z=9, x=x, y=y)
    warm = client.get(url, params={"px": 512})
    if store.provider != "postgis":
        assert 'desc="cache"' in warm.headers["server-timing"]
    TILES.clear()
    cold = client.get(url, params={"px": 512})
    assert 'desc="cut"' in cold.headers["server-timing"]
    assert warm.content == cold.content and warm.headers["etag"] == cold.headers["etag"]
