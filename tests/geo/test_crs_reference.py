# ruff: noqa: E501  (a table of published coordinates reads best one city per line)
"""geo.crs against published reference pairs (independent oracles, not round trips).

Round trips cannot catch a wrong forward formula (the inverse iterates the same forward
formula, so errors cancel). These pairs come from other people's implementations and data:

- ``EXACT``: values printed by the reference implementations of the public formula, to
  full double precision. wandergis/coordtransform, ``test/app.js`` (also pinned by
  hutool's ``CoordinateUtilTest`` and coordtransform-rs); googollee/eviltransform,
  ``python/test.py`` ``TESTS`` (Shenzhen, Shanghai, Beijing). A change of the Krasovsky
  semi-major axis (6378245 m), even by 1 m (5e-10° here), or of BD-09's 0.0065/0.006
  offsets moves these by more than the 1e-12° tolerance (the public formula in double
  precision reproduces them bit for bit; 1e-12° leaves room for another libm only).
- ``GUANGDONG``: hujiulong/gcoord ``test/fixtures/china-cities.json`` (commit fa43556),
  WGS84 / GCJ-02 / BD-09 of the seat of every Guangdong prefecture city, given to 7
  decimals. Its GCJ-02 values come from an online converter and sit 0.65-0.71 m from the
  public formula everywhere in the province, so they pin GCJ-02 to 1 m; its BD-09 values
  agree with the public GCJ-02 -> BD-09 formula to 1 cm.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from geo.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")

# (function, input lon/lat, published output lon/lat)
EXACT = [
    # wandergis/coordtransform test/app.js, input (116.404, 39.915)
    (wgs84_to_gcj02, (116.404, 39.915), (116.41024449916938, 39.91640428150164)),
    (gcj02_to_bd09, (116.404, 39.915), (116.41036949371029, 39.92133699351021)),
    # wandergis/coordtransform README.md "wgs84_to_bd09(116.404, 39.915)" (python port)
    (wgs84_to_bd09, (116.404, 39.915), (116.41662724378733, 39.922699552216216)),
    # googollee/eviltransform python/test.py TESTS: (wgsLat, wgsLng) -> (gcjLat, gcjLng)
    (wgs84_to_gcj02, (113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    (wgs84_to_gcj02, (121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    (wgs84_to_gcj02, (116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
]

# city: (WGS84, GCJ-02, BD-09), hujiulong/gcoord test/fixtures/china-cities.json
GUANGDONG = {
    "广州市越秀区": ((113.2590543, 23.131788), (113.2643859, 23.1291146), (113.2708188, 23.135343)),
    "深圳市福田区": ((114.0527534, 22.5458236), (114.0578659, 22.5431014), (114.064418, 22.5487584)),
    "佛山市禅城区": ((113.1159502, 23.0240264), (113.1214418, 23.0214833), (113.1279555, 23.027333)),
    "惠州市惠城区": ((114.4112262, 23.1143413), (114.4162039, 23.1118514), (114.4227605, 23.1175126)),
    "汕头市金平区": ((116.6775114, 23.3567569), (116.6819735, 23.3540964), (116.6885014, 23.3598884)),
    "揭阳市榕城区": ((116.3681293, 23.5523972), (116.3728375, 23.5499986), (116.3793466, 23.5560543)),
    "珠海市香洲区": ((113.5716281, 22.27399), (113.5766797, 22.2709831), (113.5832348, 22.2766454)),
    "湛江市赤坎区": ((110.3548872, 21.2730972), (110.3593799, 21.2707121), (110.3659332, 21.2765411)),
    "韶关市浈江区": ((113.5923264, 24.8134637), (113.5975239, 24.8104083), (113.6040496, 24.8161969)),
    "梅州市梅江区": ((116.1174053, 24.2912377), (116.1222426, 24.2886182), (116.1287823, 24.2944828)),
    "汕尾市城区": ((115.3702248, 22.7888255), (115.3751647, 22.7861903), (115.3817179, 22.7918527)),
    "河源市源城区": ((114.6962648, 23.7463448), (114.7009627, 23.7436914), (114.7074093, 23.7498752)),
    "阳江市江城区": ((111.97717, 21.8607046), (111.9822358, 21.8579622), (111.9887257, 21.8640982)),
    "清远市清城区": ((113.050561, 23.6842365), (113.0560349, 23.6817695), (113.0625034, 23.6879993)),
    "潮州市湘桥区": ((116.6184049, 23.6594433), (116.6227694, 23.6566973), (116.6292404, 23.6629172)),
    "肇庆市端州区": ((112.4598191, 23.049799), (112.4650928, 23.0471965), (112.4715824, 23.0532837)),
    "云浮市云城区": ((112.0391867, 22.917763), (112.0444995, 22.9150982), (112.0510141, 22.9210017)),
    "茂名市茂南区": ((110.9209491, 21.6657791), (110.9254576, 21.6630024), (110.9320016, 21.6687609)),
}
W = np.array([v[0] for v in GUANGDONG.values()])
G = np.array([v[1] for v in GUANGDONG.values()])
B = np.array([v[2] for v in GUANGDONG.values()])


def _metres(a: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return GEOD.inv(a[:, 0], a[:, 1], lon, lat)[2]


@pytest.mark.parametrize(("func", "given", "published"), EXACT,
                         ids=[f"{f.__name__}{g}" for f, g, _ in EXACT])
def test_public_formula_matches_reference_implementations(func, given, published) -> None:
    lon, lat = func(*given)
    assert float(lon) == pytest.approx(published[0], abs=1e-12)
    assert float(lat) == pytest.approx(published[1], abs=1e-12)


def test_bd09_inverse_is_closer_than_the_published_closed_form() -> None:
    # coordtransform's bd09togcj02(116.404, 39.915) = (116.39762729119315, 39.90865673957631)
    # is the closed-form approximate inverse: 4.8 cm from the exact one, whose forward image
    # is the input again (the published value's forward image misses it by 0.2e-6 deg).
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    published = (116.39762729119315, 39.90865673957631)
    assert GEOD.inv(float(lon), float(lat), *published)[2] < 0.1
    back = gcj02_to_bd09(lon, lat)
    assert abs(float(back[0]) - 116.404) < 1e-9 and abs(float(back[1]) - 39.915) < 1e-9


def test_wgs84_to_gcj02_across_guangdong_within_one_metre() -> None:
    lon, lat = wgs84_to_gcj02(W[:, 0], W[:, 1])
    assert _metres(G, lon, lat).max() < 1.0
    # and the offset is the real 500-700 m one, not a no-op that happens to be close
    assert _metres(W, G[:, 0], G[:, 1]).min() > 400


def test_gcj02_to_bd09_across_guangdong_within_five_centimetres() -> None:
    lon, lat = gcj02_to_bd09(G[:, 0], G[:, 1])
    assert _metres(B, lon, lat).max() < 0.05


def test_inverses_recover_published_wgs84_within_one_metre() -> None:
    assert _metres(W, *gcj02_to_wgs84(G[:, 0], G[:, 1])).max() < 1.0
    assert _metres(W, *bd09_to_wgs84(B[:, 0], B[:, 1])).max() < 1.0
    assert _metres(G, *bd09_to_gcj02(B[:, 0], B[:, 1])).max() < 0.05


@pytest.mark.parametrize("name", ["GCJ02", "BD09"])
def test_registry_crs_names_use_the_same_conversions(name: str) -> None:
    given = G if name == "GCJ02" else B
    lon, lat = to_wgs84(given[:, 0], given[:, 1], name)
    assert _metres(W, lon, lat).max() < 1.0
