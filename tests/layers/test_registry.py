"""Tests of the layer registry (layers/registry.py, layers/data/layers.toml)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from geo.errors import GeoError, LayerNotFoundError, ReferenceDataError
from layers import registry
from layers.registry import (
    LayerInfo,
    layer_info,
    list_layers,
    load_group,
    load_layer,
    province_bounds,
)

STABLE_IDS = {
    "cities",
    "districts",
    "lianjiang",
    "maozhou",
    "shima",
    "danshui",
    "guangfo",
    "parks",
    "enterprises",
}
HEX = re.compile(r"#[0-9a-fA-F]{6}")


def test_stable_ids_and_kinds() -> None:
    infos = list_layers()
    assert {i.id for i in infos} == STABLE_IDS
    kinds = {i.id: i.kind for i in infos}
    assert {k for k, v in kinds.items() if v == "basin"} == {
        "lianjiang",
        "maozhou",
        "shima",
        "danshui",
    }
    assert kinds["guangfo"] == "region" and kinds["parks"] == "park"
    assert kinds["enterprises"] == "enterprise"


def test_layer_info_lookup() -> None:
    info = layer_info("lianjiang")
    assert isinstance(info, LayerInfo)
    assert info.file == "basins.geojson" and info.feature_id == "lianjiang"
    assert info.title_zh == "练江流域"


def test_unknown_layer_error_names_the_known_ids() -> None:
    with pytest.raises(LayerNotFoundError) as exc:
        layer_info("yangtze")
    msg = str(exc.value)
    assert "'yangtze'" in msg
    for known in ("lianjiang", "guangfo", "districts"):
        assert known in msg
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, GeoError)
    assert exc.value.http_status == 404
    with pytest.raises(LayerNotFoundError):
        load_layer("yangtze")


@pytest.mark.parametrize("info", list_layers(), ids=lambda i: i.id)
def test_every_entry_has_provenance_and_style(info: LayerInfo) -> None:
    prov = info.provenance
    for text in (prov.source, prov.method, prov.date, prov.licence, prov.attribution):
        assert text.strip()
    if info.file is not None:  # bundled reference layers carry a real accuracy
        assert 10 <= prov.accuracy_m <= 5000
    assert HEX.fullmatch(info.style.color) and HEX.fullmatch(info.style.fillColor)
    assert info.popup_fields
    for pf in info.popup_fields:
        assert pf.label_zh and pf.label_en


def test_boundary_accuracy_ordering() -> None:
    """Hand-digitised outlines are less accurate than the surveyed district boundaries."""
    acc = {i.id: i.provenance.accuracy_m for i in list_layers()}
    assert acc["districts"] < acc["lianjiang"]
    assert acc["districts"] < acc["parks"]


@pytest.mark.parametrize(
    "info", [i for i in list_layers() if i.file is not None], ids=lambda i: i.id
)
def test_popup_fields_exist_in_the_data(info: LayerInfo) -> None:
    gdf = load_layer(info.id)
    missing = [pf.field for pf in info.popup_fields if pf.field not in gdf.columns]
    assert not missing


@pytest.mark.parametrize("basin_id", ["lianjiang", "maozhou", "shima", "danshui", "guangfo"])
def test_load_layer_single_feature(basin_id: str) -> None:
    gdf = load_layer(basin_id)
    assert gdf["id"].tolist() == [basin_id]
    assert gdf.crs.to_epsg() == 4326


def test_load_layer_returns_a_copy() -> None:
    first = load_layer("parks")
    first["name_zh"] = "changed"
    first.loc[0, "geometry"] = None
    again = load_layer("parks")
    assert (again["name_zh"] != "changed").all()
    assert again.geometry.notna().all()


def test_enterprises_has_no_file() -> None:
    assert layer_info("enterprises").file is None
    with pytest.raises(ReferenceDataError, match="enterprises"):
        load_layer("enterprises")


@pytest.mark.parametrize(
    ("kind", "n", "columns"),
    [
        ("basin", 4, {"id", "name_zh", "standard"}),
        ("region", 1, {"id", "name_zh"}),
        ("park", 3, {"id", "name_zh", "district", "basin"}),
        ("district", 124, {"code", "name_zh", "city_code", "city_zh"}),
        ("city", 21, {"code", "name_zh"}),
    ],
)
def test_load_group(kind: str, n: int, columns: set[str]) -> None:
    gdf = load_group(kind)  # type: ignore[arg-type]
    assert len(gdf) == n
    assert columns <= set(gdf.columns)
    assert gdf.crs.to_epsg() == 4326
    if "id" in columns:
        assert gdf["id"].is_unique
    if kind == "basin":
        assert set(gdf["id"]) == {"lianjiang", "maozhou", "shima", "danshui"}


def test_load_group_unknown_kind() -> None:
    with pytest.raises(LayerNotFoundError, match="basin"):
        load_group("river")  # type: ignore[arg-type]


def test_province_bounds() -> None:
    lon_min, lat_min, lon_max, lat_max = province_bounds()
    # Guangdong: Xuwen peninsula in the SW (~109.7E, ~20.2N), Nanling in the N (~25.5N),
    # Nan'ao / Raoping in the E (~117.3E).
    assert 109.5 < lon_min < 110.0 and 20.1 < lat_min < 20.4
    assert 117.0 < lon_max < 117.4 and 25.3 < lat_max < 25.6


@pytest.fixture
def broken_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    registry._registry.cache_clear()
    registry._toml_registry.cache_clear()
    monkeypatch.setattr(
        registry, "read_data_toml", lambda name: {"layer": [{"id": "x", "kind": "lake"}]}
    )
    yield
    registry._registry.cache_clear()
    registry._toml_registry.cache_clear()


@pytest.mark.usefixtures("broken_registry")
def test_malformed_registry_raises_reference_data_error() -> None:
    with pytest.raises(ReferenceDataError, match="layers.toml is malformed"):
        list_layers()
