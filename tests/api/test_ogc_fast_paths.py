"""The items fast paths (issue 15): features straight from the store, ``properties=``
selection, ``items/{id}`` at the ends of the list, gzip negotiation.

Oracles: the fixture frame the store was loaded with (values, coordinates, order), and
the gzip-decoded body compared with the identity answer.
"""

from __future__ import annotations

import math

import pytest

from api.store.base import FeatureQuery

ITEMS = "/collections/enterprises/items"


def _want(enterprises, i: int) -> dict:  # noqa: ANN001
    row = enterprises.iloc[i]
    return {"name": row["name"], "verdict": row["verdict"], "row": int(row["row"]),
            "needs_review": bool(row["needs_review"]), "unit_count": int(row["unit_count"]),
            "lon": float(row["lon"]), "lat": float(row["lat"])}


@pytest.mark.parametrize("which", ["first", "last"])
def test_item_at_both_ends(loaded_client, enterprises, which: str) -> None:  # noqa: ANN001
    i = 0 if which == "first" else len(enterprises) - 1
    r = loaded_client.get(f"{ITEMS}/{i + 1}")  # fids are 1-based in load order
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["type"] == "Feature" and doc["id"] == i + 1
    props = doc["properties"]
    assert props["fid"] == i + 1
    assert {k: props[k] for k in _want(enterprises, i)} == _want(enterprises, i)
    assert doc["geometry"] == {"type": "Point", "coordinates": [
        pytest.approx(enterprises.geometry.iloc[i].x, abs=1e-12),
        pytest.approx(enterprises.geometry.iloc[i].y, abs=1e-12)]}
    assert {ln["rel"] for ln in doc["links"]} == {"self", "collection"}


@pytest.mark.parametrize("fid", ["0", "7", "99999999", "-1", "abc", "9" * 30])
def test_missing_item_is_404(loaded_client, fid: str) -> None:  # noqa: ANN001
    r = loaded_client.get(f"{ITEMS}/{fid}")  # 6 enterprises: fid 7 is one past the last
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "NotFound"


def test_page_equals_the_loaded_frame(loaded_client, enterprises) -> None:  # noqa: ANN001
    doc = loaded_client.get(ITEMS, params={"limit": 4, "offset": 1}).json()
    assert doc["numberMatched"] == len(enterprises) and doc["numberReturned"] == 4
    assert [f["id"] for f in doc["features"]] == [2, 3, 4, 5]
    for j, ft in enumerate(doc["features"]):
        assert {k: ft["properties"][k] for k in _want(enterprises, j + 1)} == \
            _want(enterprises, j + 1)
    assert any(ln["rel"] == "next" for ln in doc["links"])
    # a full page of a property filter counts every match (every other row is flagged)
    flt = loaded_client.get(ITEMS, params={"needs_review": "true", "limit": 2}).json()
    assert flt["numberMatched"] == int(enterprises["needs_review"].sum())
    assert flt["numberReturned"] == 2


def test_properties_selects_columns(loaded_client, enterprises) -> None:  # noqa: ANN001
    doc = loaded_client.get(ITEMS, params={"properties": "name,verdict", "limit": 3}).json()
    assert [list(f["properties"]) for f in doc["features"]] == [["name", "verdict"]] * 3
    assert [f["properties"]["name"] for f in doc["features"]] == \
        enterprises["name"].iloc[:3].tolist()
    one = loaded_client.get(f"{ITEMS}/2", params={"properties": "lat"}).json()
    assert one["properties"] == {"lat": float(enterprises["lat"].iloc[1])}
    assert one["geometry"]["type"] == "Point"
    none = loaded_client.get(ITEMS, params={"properties": "", "limit": 1}).json()
    assert none["features"][0]["properties"] == {}
    # the other representations select too
    csv = loaded_client.get(ITEMS, params={"properties": "name", "f": "csv"}).text
    assert csv.lstrip("\ufeff").splitlines()[0] == "name,lon,lat"
    crs = loaded_client.get(ITEMS, params={"properties": "verdict", "limit": 1,
                                           "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert list(crs.json()["features"][0]["properties"]) == ["verdict"]


def test_unknown_property_is_a_400(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get(ITEMS, params={"properties": "name,nope"})
    assert r.status_code == 400
    assert "properties" in r.json()["description"] and "nope" in r.json()["description"]


def test_properties_in_openapi(loaded_client) -> None:  # noqa: ANN001
    doc = loaded_client.get("/openapi.json").json()
    for path in ("/collections/{collectionId}/items",
                 "/collections/{collectionId}/items/{featureId}"):
        params = {p.get("name"): p for p in doc["paths"][path]["get"]["parameters"]}
        assert params["properties"]["schema"]["type"] == "array"
        assert params["properties"]["explode"] is False
    own = {p.get("name"): p for p in doc["paths"][ITEMS]["get"]["parameters"]}
    assert {"name", "verdict", "fid"} <= set(own["properties"]["schema"]["items"]["enum"])


def test_gzip_is_negotiated(loaded_client) -> None:  # noqa: ANN001
    plain = loaded_client.get(ITEMS, params={"limit": 6},
                              headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.content) > 1000  # above the default minimum size
    r = loaded_client.get(ITEMS, params={"limit": 6}, headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in r.headers["vary"].lower()
    a, b = r.json(), plain.json()  # httpx decoded the gzip body: the same document
    assert {**a, "timeStamp": ""} == {**b, "timeStamp": ""}
    small = loaded_client.get(f"{ITEMS}/1", params={"properties": "name"},
                              headers={"Accept-Encoding": "gzip"})
    assert len(small.content) < 1000 and "content-encoding" not in small.headers


def test_gzip_can_be_disabled(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="t.csv",
                           source_sha256="0" * 64)
    client = make_client(gzip_min_bytes=0)
    r = client.get(ITEMS, params={"limit": 6}, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in r.headers


def test_xlsx_export_is_not_gzipped(loaded_client) -> None:  # noqa: ANN001
    r = loaded_client.get("/exports/enforcement", params={"format": "xlsx"},
                          headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert r.content[:2] == b"PK"  # a zip container, sent as is


def test_store_pages_agree_with_query(store, enterprises) -> None:  # noqa: ANN001
    """``geojson_page`` of each store against its own frame query (a second method)."""
    store.load_enterprises(enterprises, loaded_by="t", source_name="t.csv",
                           source_sha256="0" * 64)
    cases = [FeatureQuery(limit=3, offset=2), FeatureQuery(limit=10),
             FeatureQuery(properties={"verdict": ["shutdown", "rectify"]}, limit=1),
             FeatureQuery(bbox=(116.0, 23.0, 117.0, 24.0), limit=100),
             FeatureQuery(properties={"needs_review": ["true"]}, limit=5, offset=1)]
    view = store.pinned()
    try:
        for q in cases:
            page = view.geojson_page(q, ["fid", "name", "lon", "row", "needs_review"])
            feats = page.features
            if not isinstance(feats, list):
                import orjson

                feats = orjson.loads(orjson.dumps(feats))
            res = view.query(q)
            assert page.number_matched == res.number_matched, q
            assert [f["id"] for f in feats] == res.features["fid"].tolist(), q
            for ft, (_, row) in zip(feats, res.features.iterrows(), strict=True):
                assert ft["properties"]["name"] == row["name"]
                assert ft["properties"]["row"] == int(row["row"])
                assert ft["properties"]["needs_review"] is bool(row["needs_review"])
                lon = ft["properties"]["lon"]
                assert lon == row["lon"] or (lon is None and math.isnan(row["lon"]))
                assert ft["geometry"]["coordinates"] == pytest.approx(
                    [row.geometry.x, row.geometry.y], abs=1e-12)
    finally:
        view.release()


def test_large_xlsx_is_written_in_a_child_process(loaded_client, enterprises, monkeypatch,
                                                  tmp_path) -> None:  # noqa: ANN001
    """Above CHILD_ROWS the Excel file comes from a spawned process: same rows."""
    import openpyxl

    from api.routers import exports

    monkeypatch.setattr(exports, "CHILD_ROWS", 1)
    calls: list[int] = []
    real = exports._xlsx_in_child
    monkeypatch.setattr(exports, "_xlsx_in_child",
                        lambda frame, *a: calls.append(len(frame)) or real(frame, *a))
    r = loaded_client.get("/exports/enforcement", params={"format": "xlsx"})
    assert r.status_code == 200 and calls == [len(enterprises)]
    path = tmp_path / "out.xlsx"
    path.write_bytes(r.content)
    book = openpyxl.load_workbook(path, read_only=True)
    names = {str(c) for sheet in book.worksheets
             for row in sheet.iter_rows(values_only=True) for c in row if c}
    assert set(enterprises["name"]) <= names


def test_csv_export_is_streamed_uncompressed(loaded_client) -> None:  # noqa: ANN001
    """Export downloads skip gzip (large files, written as streamed); items keep it."""
    r = loaded_client.get("/exports/enforcement", params={"format": "csv"},
                          headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert r.content.startswith(b"\xef\xbb\xbf")  # the CSV's BOM, not gzip's 1f 8b
