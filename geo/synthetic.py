"""Seeded generator of a realistic SYNTHETIC enterprise registry.

The registry looks like what a bureau hands over: Chinese headers, industries given as
Chinese names, aliases or GB/T 4754-2017 codes, a mix of WGS84 / CGCS2000 / GCJ-02 / BD-09
coordinates, address-only rows, and a few deliberately bad rows of known kinds. Where the
industries cluster comes from ``layers/data/synthetic_profile.toml``; every enterprise is
invented, and each row says so in its ``数据说明`` column.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.random import Generator

from geo.crs import from_wgs84
from geo.errors import InvalidQueryError
from geo.files import atomic_target
from geo.uscc import uscc_check_char

__all__ = [
    "BAD_ROW_KINDS",
    "SYNTHETIC_NOTE",
    "sample_points",
    "synthetic_registry",
    "write_registry",
]

log = logging.getLogger(__name__)

SYNTHETIC_NOTE: Final = "合成样例数据，非真实企业 / synthetic sample, not a real enterprise"

#: Deliberate data problems and whether ingest should still accept the row.
BAD_ROW_KINDS: Final[dict[str, bool]] = {
    "uscc_check_digit": True,
    "uscc_duplicate": True,
    "lonlat_swapped": True,
    "zero_coordinates": False,
    "outside_guangdong": False,
    "unknown_industry": False,
    "unknown_crs": False,
    "name_missing": False,
    "unparseable_address": False,
    "in_the_sea": False,
}

_BRANDS: Final = tuple(
    "华兴 永丰 宏达 金利 新源 恒通 联发 广利 德信 嘉盛 鸿运 顺昌 合众 荣发 锦泰 "
    "裕隆 诚信 振华 长青 友联 丰泽 汇源 万达 海纳 瑞丰 同创 利民 福星 兴业".split()
)
_ROADS: Final = tuple("工业 兴业 环城 中山 人民 建设 和平 新村 东风 滨江 开发 民营".split())
_SUFFIX: Final = {
    "steel": "钢铁", "cement": "水泥", "aluminium": "铝业", "flat_glass": "玻璃",
    "paper": "纸业", "dyeing": "印染", "tanning": "皮革", "lead_acid_battery": "电池",
    "copper_smelting": "铜业", "lead_smelting": "冶炼", "small_coal_power": "热电",
    "ceramics": "陶瓷",
}


def sample_points(
    polygon: shapely.Geometry, n: int, rng: Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` uniform random points inside ``polygon`` (vectorised rejection sampling)."""
    if n <= 0:
        return np.empty(0), np.empty(0)
    shapely.prepare(polygon)
    xmin, ymin, xmax, ymax = polygon.bounds
    fill = max(polygon.area / ((xmax - xmin) * (ymax - ymin)), 0.01)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    have = 0
    while have < n:
        k = int((n - have) / fill * 1.3) + 16
        x = rng.uniform(xmin, xmax, k)
        y = rng.uniform(ymin, ymax, k)
        inside = shapely.contains_xy(polygon, x, y)
        xs.append(x[inside])
        ys.append(y[inside])
        have += int(inside.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _area_polygon(area: dict[str, object], frames: dict[str, gpd.GeoDataFrame]) -> shapely.Geometry:
    if "basin" in area:
        gdf = frames["basin"]
        return gdf.loc[gdf["id"] == area["basin"], "geometry"].union_all()
    if "region" in area:
        gdf = frames["region"]
        return gdf.loc[gdf["id"] == area["region"], "geometry"].union_all()
    city, district = area["district"]  # type: ignore[misc]
    gdf = frames["district"]
    geom = gdf.loc[(gdf["city_zh"] == city) & (gdf["name_zh"] == district), "geometry"]
    if geom.empty:
        raise ValueError(f"synthetic profile names unknown district {city}{district}")
    return geom.union_all()


def _uscc(district_codes: np.ndarray, rng: Generator) -> np.ndarray:
    """Valid 18-character codes: '91' + admin code + 9-char organisation code + check."""
    alphabet = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
    body = rng.choice(alphabet[:10], size=(len(district_codes), 8))
    # GB 11714 organisation-code check character over the 8 body characters.
    weights = np.array([3, 7, 9, 10, 5, 8, 4, 2])
    c9 = 11 - (body.astype(int) * weights).sum(axis=1) % 11
    c9_chr = np.where(c9 == 10, "X", np.where(c9 == 11, "0", c9.astype(str)))
    first17 = [
        "91" + str(code)[:6].ljust(6, "0") + "".join(b) + c
        for code, b, c in zip(district_codes, body, c9_chr, strict=True)
    ]
    return np.array([f + uscc_check_char(f) for f in first17], dtype=object)


def _reference_frames() -> dict[str, gpd.GeoDataFrame]:
    from layers.registry import load_group

    return {kind: load_group(kind) for kind in ("basin", "region", "park", "district")}


def _profile() -> dict[str, object]:
    from layers.catalog import read_data_toml

    return read_data_toml("synthetic_profile.toml")


def _towns() -> pd.DataFrame:
    from layers.catalog import data_path

    return pd.read_csv(data_path("towns.csv"), dtype={"district_code": str})


def _industry_cells(ids: np.ndarray, rng: Generator) -> np.ndarray:
    """Registry 行业 cells: Chinese name (60 %), a GB/T 4754 code (30 %) or an alias."""
    from layers.catalog import industries

    by_id = {i.id: i for i in industries()}
    pick = rng.random(len(ids))
    out = np.empty(len(ids), dtype=object)
    for iid in np.unique(ids):
        sel = ids == iid
        ind = by_id[iid]
        k = int(sel.sum())
        codes = np.asarray(ind.codes, dtype=object)[rng.integers(0, len(ind.codes), k)]
        aliases = np.asarray(ind.aliases or [ind.name_zh], dtype=object)
        alias = aliases[rng.integers(0, len(aliases), k)]
        out[sel] = np.where(pick[sel] < 0.6, ind.name_zh, np.where(pick[sel] < 0.9, codes, alias))
    return out


def _place(
    n: int, profile: dict[str, object], frames: dict[str, gpd.GeoDataFrame], rng: Generator
) -> pd.DataFrame:
    """Locations (WGS84) and industry ids of ``n`` enterprises following the profile."""
    clusters: Sequence[dict[str, object]] = profile["cluster"]  # type: ignore[assignment]
    weights = np.array([float(c["weight"]) for c in clusters])  # type: ignore[arg-type]
    counts = rng.multinomial(n, weights / weights.sum())
    parts = []
    in_park_share = float(profile["mix"]["lianjiang_dyeing_in_park"])  # type: ignore[index]
    parks = frames["park"].union_all()
    for cluster, count in zip(clusters, counts, strict=True):
        mix: dict[str, float] = cluster["industries"]  # type: ignore[assignment]
        ids = rng.choice(list(mix), size=count, p=np.array(list(mix.values())) / sum(mix.values()))
        x, y = sample_points(_area_polygon(cluster["area"], frames), count, rng)  # type: ignore[arg-type]
        if cluster["area"] == {"basin": "lianjiang"}:
            dye = np.flatnonzero(ids == "dyeing")
            to_park = dye[rng.random(len(dye)) < in_park_share]
            x[to_park], y[to_park] = sample_points(parks, len(to_park), rng)
        parts.append(pd.DataFrame({"industry_id": ids, "lon": x, "lat": y}))
    placed = pd.concat(parts, ignore_index=True)
    return placed.iloc[rng.permutation(len(placed))].reset_index(drop=True)


def _admin(placed: pd.DataFrame, frames: dict[str, gpd.GeoDataFrame]) -> pd.DataFrame:
    pts = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(placed["lon"], placed["lat"]), crs="EPSG:4326"
    )
    joined = gpd.sjoin(pts, frames["district"][["code", "name_zh", "city_zh", "geometry"]],
                       how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    return pd.DataFrame(
        {
            "district_code": joined["code"].fillna("440000").to_numpy(),
            "district": joined["name_zh"].fillna("").to_numpy(),
            "city": joined["city_zh"].fillna("").to_numpy(),
        }
    )


def _addresses(
    placed: pd.DataFrame, admin: pd.DataFrame, towns: pd.DataFrame, rng: Generator
) -> np.ndarray:
    """Street addresses naming the nearest gazetteer town of the point's district."""
    town = np.full(len(placed), "", dtype=object)
    for code, idx in admin.groupby("district_code").indices.items():
        cand = towns[towns["district_code"] == code]
        if cand.empty:
            continue
        dx = placed["lon"].to_numpy()[idx, None] - cand["lon"].to_numpy()[None, :]
        dy = placed["lat"].to_numpy()[idx, None] - cand["lat"].to_numpy()[None, :]
        town[idx] = cand["name_zh"].to_numpy()[np.argmin(dx * dx + dy * dy, axis=1)]
    road = np.asarray(_ROADS, dtype=object)[rng.integers(0, len(_ROADS), len(placed))]
    num = rng.integers(1, 300, len(placed)).astype(str)
    # Dongguan and Zhongshan have no districts: the district unit repeats the city name.
    district = admin["district"].where(admin["district"] != admin["city"], "")
    return ("广东省" + admin["city"] + district + town + road + "路" + num + "号").to_numpy()


def synthetic_registry(n: int = 3000, *, seed: int = 2019) -> pd.DataFrame:
    """Build a synthetic registry with Chinese headers.

    Parameters
    ----------
    n
        Number of rows (good rows plus about ``mix.bad_rows`` deliberately bad ones).
    seed
        Random seed; the same seed and reference data give the same registry.

    Returns
    -------
    pandas.DataFrame
        Columns 统一社会信用代码, 企业名称, 行业, 地址, 经度, 纬度, 坐标系, 所在园区,
        燃煤锅炉蒸吨, 数据说明, and ``_bad_kind`` (the deliberate problem, '' if none;
        dropped by :func:`write_registry`).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidQueryError(f"n: expected a whole number of enterprises >= 1, got {n!r}.")
    if seed < 0:
        raise InvalidQueryError(f"seed: expected a whole number >= 0, got {seed!r}.")
    rng = np.random.default_rng(seed)
    profile = _profile()
    frames = _reference_frames()
    placed = _place(n, profile, frames, rng)
    admin = _admin(placed, frames)
    mix: dict[str, object] = profile["mix"]  # type: ignore[assignment]

    crs_share: dict[str, float] = mix["crs"]  # type: ignore[assignment]
    crs = rng.choice(list(crs_share), size=n, p=np.array(list(crs_share.values())))
    lon = placed["lon"].to_numpy().copy()
    lat = placed["lat"].to_numpy().copy()
    for name in ("GCJ02", "BD09"):
        sel = crs == name
        lon[sel], lat[sel] = from_wgs84(lon[sel], lat[sel], name)
    lon, lat = np.round(lon, 6), np.round(lat, 6)

    ids = placed["industry_id"].to_numpy()
    short = admin["district"].str.replace(r"(市|区|县)$", "", regex=True).to_numpy()
    brand = np.asarray(_BRANDS, dtype=object)[rng.integers(0, len(_BRANDS), n)]
    names = short + brand + pd.Series(ids).map(_SUFFIX).to_numpy() + "有限公司"
    names = names + np.where(rng.random(n) < 0.5, "", "（" + (np.arange(n) % 97 + 1).astype(str) + "厂）")

    parks = frames["park"]
    in_park = np.full(n, "", dtype=object)
    for pid, pname, geom in zip(parks["id"], parks["name_zh"], parks.geometry, strict=True):
        in_park[shapely.contains_xy(geom, placed["lon"].to_numpy(), placed["lat"].to_numpy())] = pname
    # A few enterprises outside the parks claim to be in one: a claim is not proof.
    false_claim = (in_park == "") & (ids == "dyeing") & (rng.random(n) < 0.04)
    in_park[false_claim] = parks["name_zh"].iloc[0]

    boiler = np.where(rng.random(n) < 0.15, np.round(rng.uniform(2, 120, n), 1), np.nan)

    reg = pd.DataFrame(
        {
            "统一社会信用代码": _uscc(admin["district_code"].to_numpy(), rng),
            "企业名称": names,
            "行业": _industry_cells(ids, rng),
            "地址": _addresses(placed, admin, _towns(), rng),
            "经度": lon,
            "纬度": lat,
            "坐标系": crs,
            "所在园区": in_park,
            "燃煤锅炉蒸吨": boiler,
            "数据说明": SYNTHETIC_NOTE,
            "_bad_kind": "",
        }
    )
    address_only = rng.random(n) < float(mix["address_only"])  # type: ignore[arg-type]
    reg.loc[address_only, ["经度", "纬度"]] = np.nan
    reg.loc[address_only, "坐标系"] = ""
    return _spoil(reg, float(mix["bad_rows"]), rng)  # type: ignore[arg-type]


def _spoil(reg: pd.DataFrame, share: float, rng: Generator) -> pd.DataFrame:
    """Give about ``share`` of the rows one deliberate problem each, cycling the kinds."""
    kinds = list(BAD_ROW_KINDS)
    has_xy = reg["经度"].notna().to_numpy()
    # every kind at least once, but never more than half the rows (tiny samples stay usable)
    count = min(max(len(kinds), int(len(reg) * share)), int(has_xy.sum()), len(reg) // 2)
    rows = rng.choice(np.flatnonzero(has_xy), size=count, replace=False)
    reg = reg.copy()
    for i, row in enumerate(rows):
        kind = kinds[i % len(kinds)]
        reg.at[row, "_bad_kind"] = kind
        if kind == "uscc_check_digit":
            code = reg.at[row, "统一社会信用代码"]
            reg.at[row, "统一社会信用代码"] = code[:-1] + ("0" if code[-1] != "0" else "1")
        elif kind == "uscc_duplicate":
            clean = np.setdiff1d(np.arange(len(reg)), rows)[0]
            reg.at[row, "统一社会信用代码"] = reg.at[clean, "统一社会信用代码"]
        elif kind == "lonlat_swapped":
            lon, lat = reg.at[row, "经度"], reg.at[row, "纬度"]
            reg.loc[row, ["经度", "纬度"]] = [lat, lon]
        elif kind == "zero_coordinates":
            reg.loc[row, ["经度", "纬度", "地址"]] = [0.0, 0.0, ""]
        elif kind == "outside_guangdong":  # Nanning, Guangxi
            reg.loc[row, ["经度", "纬度", "坐标系", "地址"]] = [108.32, 22.82, "WGS84", ""]
        elif kind == "unknown_industry":
            reg.at[row, "行业"] = "电镀"
        elif kind == "unknown_crs":
            reg.at[row, "坐标系"] = "Web墨卡托"
        elif kind == "name_missing":
            reg.at[row, "企业名称"] = ""
        elif kind == "unparseable_address":
            reg.loc[row, ["经度", "纬度", "坐标系", "地址"]] = [np.nan, np.nan, "", "厂区内"]
        elif kind == "in_the_sea":  # South China Sea off Shanwei, inside the province bbox
            reg.loc[row, ["经度", "纬度", "坐标系", "地址"]] = [115.6, 22.3, "WGS84", ""]
    return reg


def write_registry(reg: pd.DataFrame, path: str | Path) -> Path:
    """Write a registry frame as UTF-8 (BOM) CSV or XLSX, atomically, without ``_bad_kind``.

    The file gets the user's usual permissions (umask), like any file they create.

    Raises
    ------
    ExportError
        If ``path`` is a folder or cannot be written.
    """
    path = Path(path)
    out = reg.drop(columns=["_bad_kind"], errors="ignore")
    with atomic_target(path) as tmp:
        if path.suffix.lower() == ".xlsx":
            out.to_excel(tmp, index=False)
        else:
            out.to_csv(tmp, index=False, encoding="utf-8-sig")
    return path
