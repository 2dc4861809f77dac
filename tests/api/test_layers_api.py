"""The /layers API: editor-only import, validation report, impact on the stored list, switch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import shapely

from api.testing import EDITOR_KEY, READER_KEY
from layers.versions import active_version_id
from tests.layers.conftest import WGS84_RING, frame

EDITOR = {"X-API-Key": EDITOR_KEY}


def _geojson_bytes(ring: list[tuple[float, float]], tmp_path: Path, **props: object) -> bytes:
    path = tmp_path / "upload.geojson"
    frame(ring, "EPSG:4326", **props).to_file(path, driver="GeoJSON", engine="pyogrio")
    return path.read_bytes()


def _import(client, data: bytes, name: str = "shima.geojson", headers=EDITOR, **form):  # noqa: ANN001, ANN003, ANN201
    fields = {"kind": "basin", "id": "shima", "source": "测绘", "licence": "CC0-1.0",
              "accuracy_m": "5", **form}
    return client.post("/layers/import", headers=headers, data=fields,
                       files={"file": (name, io.BytesIO(data), "application/octet-stream")})


@pytest.fixture
def client(loaded_client):  # noqa: ANN001, ANN201
    return loaded_client


def test_import_needs_an_editor_key(client, tmp_path: Path) -> None:  # noqa: ANN001
    data = _geojson_bytes(WGS84_RING, tmp_path)
    assert _import(client, data, headers={}).status_code == 401
    assert _import(client, data, headers={"X-API-Key": READER_KEY}).status_code == 403


def test_import_reports_and_stores_an_inactive_version(client, tmp_path: Path) -> None:  # noqa: ANN001
    r = _import(client, _geojson_bytes(WGS84_RING, tmp_path))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["import"]["version"]["version"] == "v1"
    assert body["import"]["version"]["created_by"].startswith("api:key-")  # a hash label, never key characters
    assert body["import"]["report"]["ok"] is True
    assert body["impact"]["enterprises"] == 6
    assert active_version_id("shima") == "bundled"
    listed = client.get("/layers/shima/versions").json()
    assert listed["active"] == "bundled"
    assert [v["version"] for v in listed["versions"]] == ["bundled", "v1"]


def test_invalid_geometry_returns_the_report(client, tmp_path: Path) -> None:  # noqa: ANN001
    bow = "POLYGON ((114 22.8, 114.04 22.84, 114.04 22.8, 114 22.84, 114 22.8))"
    csv = pd.DataFrame({"wkt": [bow]}).to_csv(index=False).encode()
    r = _import(client, csv, name="bow.csv", crs="WGS84")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "InvalidParameterValue"  # stable OGC codes, not class names
    checks = {c["code"]: c for c in body["import"]["report"]["checks"]}
    assert checks["validity"]["level"] == "error"
    assert checks["validity"]["data"]["area_change_km2"] > 0
    ok = _import(client, csv, name="bow.csv", crs="WGS84", repair="true")
    assert ok.status_code == 201 and ok.json()["import"]["version"]["repaired"] is True


def test_missing_crs_is_a_clear_400(client) -> None:  # noqa: ANN001
    csv = pd.DataFrame({"wkt": [shapely.Polygon(WGS84_RING).wkt]}).to_csv(index=False).encode()
    r = _import(client, csv, name="nocrs.csv")
    assert r.status_code == 400 and "--crs" in r.json()["description"]


def test_impact_activate_rollback_and_display_only_simplification(
    client, tmp_path: Path  # noqa: ANN001
) -> None:
    # a 60 m wide notch: display simplification (0.0005 deg ~ 50 m) may erase it,
    # classification must not
    ring = [(114.0, 22.80), (114.0297, 22.80), (114.0297, 22.83), (114.0303, 22.83),
            (114.0303, 22.80), (114.06, 22.80), (114.06, 22.84), (114.0, 22.84), (114.0, 22.80)]
    notch = (114.03, 22.82)
    assert not shapely.contains_xy(shapely.Polygon(ring), *notch)
    r = _import(client, _geojson_bytes(ring, tmp_path))
    assert r.status_code == 201
    imp = client.get("/layers/shima/versions/v1/impact").json()
    assert imp["to_version"] == "v1" and imp["enterprises"] == 6
    csv = client.get("/layers/shima/versions/v1/impact?format=csv")
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    gj = client.get("/layers/shima/versions/v1/impact?format=geojson").json()
    assert "lost" in {f["properties"]["change"] for f in gj["features"]}  # inside old shima
    shown = client.get("/layers/shima/versions/v1/geojson?simplify=0.002").json()
    shown_geom = shapely.from_geojson(json.dumps(shown["features"][0]["geometry"]))
    assert shapely.contains_xy(shown_geom, *notch)  # the drawn outline lost the notch
    assert client.post("/layers/shima/activate?version=v1").status_code == 401
    act = client.post("/layers/shima/activate?version=v1", headers=EDITOR)
    assert act.status_code == 200 and act.json()["version"] == "v1"
    where = client.get(f"/query/point?lon={notch[0]}&lat={notch[1]}").json()
    inside = client.get("/query/point?lon=114.01&lat=22.83").json()
    assert json.dumps(inside, ensure_ascii=False).count('"shima"') >= 1
    assert '"shima"' not in json.dumps(where, ensure_ascii=False)  # full geometry decides
    index = client.get("/layers").json()
    assert index["active_versions"]["shima"] == "shima@v1"
    back = client.post("/layers/shima/rollback", headers=EDITOR)
    assert back.status_code == 200 and back.json()["version"] == "bundled"
    assert client.get("/layers").json()["active_versions"]["shima"] == "shima@bundled"


def test_unknown_version_is_a_4xx(client) -> None:  # noqa: ANN001
    r = client.post("/layers/shima/activate?version=v7", headers=EDITOR)
    assert r.status_code == 400 and "has no version 'v7'" in r.json()["description"]


def test_online_tiles_are_opt_in_in_the_served_map(make_client) -> None:  # noqa: ANN001
    default = make_client().get("/map").text
    assert "tile.openstreetmap.org" not in default and "autonavi.com" not in default
    opted = make_client(online_tiles="osm").get("/map").text
    assert "tile.openstreetmap.org" in opted and "autonavi.com" not in opted
    assert "operations.osmfoundation.org/policies/tiles" in opted  # the provider's terms


def test_map_layer_is_revalidated_after_a_switch(client, tmp_path: Path) -> None:  # noqa: ANN001
    first = client.get("/map/layers/shima")
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    assert client.get("/map/layers/shima", headers={"If-None-Match": tag}).status_code == 304
    assert _import(client, _geojson_bytes(WGS84_RING, tmp_path)).status_code == 201
    assert client.post("/layers/shima/activate?version=v1", headers=EDITOR).status_code == 200
    after = client.get("/map/layers/shima", headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
    ring = shapely.from_geojson(json.dumps(after.json()["features"][0]["geometry"]))
    assert ring.bounds == pytest.approx((114.0, 22.8, 114.06, 22.84), abs=1e-4)


def test_activation_refreshes_postgis_reference_tables(client, store, tmp_path: Path) -> None:  # noqa: ANN001
    assert _import(client, _geojson_bytes(WGS84_RING, tmp_path)).status_code == 201
    body = client.post("/layers/shima/activate?version=v1", headers=EDITOR).json()
    if store.provider != "postgis":
        assert body["database_reference_layers"] is None
        return
    assert body["database_reference_layers"]["basin"] == 4
    import sqlalchemy

    with store.engine.connect() as conn:  # the in-database copy holds the new shima
        row = conn.execute(sqlalchemy.text(
            "SELECT ST_Area(geom::geography) / 1e6 FROM bw_ref_basin WHERE id = 'shima'")).scalar()
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    ring_km2 = abs(geod.geometry_area_perimeter(shapely.Polygon(WGS84_RING))[0]) / 1e6
    assert row == pytest.approx(ring_km2, rel=1e-3)  # the imported test ring, not the bundle
