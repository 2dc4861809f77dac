"""Seeded generator of a realistic SYNTHETIC enterprise registry.

The registry looks like what a bureau hands over: Chinese headers, industries given as
Chinese names, aliases or GB/T 4754-2017 codes, a mix of WGS84 / CGCS2000 / GCJ-02 / BD-09
coordinates, address-only rows, and a few deliberately bad rows of known kinds. Where the
industries cluster comes from ``layers/data/synthetic_profile.toml``; every enterprise is
invented, and each row says so in its ``数据说明`` column.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

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
    "BAD_UNIT_KINDS",
    "RuleWitness",
    "SyntheticData",
    "rule_witness",
    "synthetic_dataset",
    "write_dataset",
    "cell_text",
    "header_of",
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
        燃煤锅炉蒸吨, 数据说明, and hidden columns dropped by :func:`write_registry`:
        ``_bad_kind`` (the deliberate problem, '' if none), ``_lon``/``_lat`` (WGS84),
        ``_city``, ``_industry_id``.
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
            # where the enterprise really is (WGS84) and in which city: hidden columns the
            # equipment generator uses, dropped by write_registry
            "_lon": placed["lon"].to_numpy(),
            "_lat": placed["lat"].to_numpy(),
            "_city": admin["city"].to_numpy(),
            "_industry_id": ids,
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
    clean = int(np.setdiff1d(np.arange(len(reg)), rows)[0])  # first row left unspoilt
    for i, row in enumerate(rows):
        kind = kinds[i % len(kinds)]
        reg.at[row, "_bad_kind"] = kind
        if kind == "uscc_check_digit":
            code = reg.at[row, "统一社会信用代码"]
            reg.at[row, "统一社会信用代码"] = code[:-1] + ("0" if code[-1] != "0" else "1")
        elif kind == "uscc_duplicate":
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
    """Write a registry (or equipment) frame as UTF-8 (BOM) CSV or XLSX, atomically, without
    its hidden ``_`` columns.

    The file gets the user's usual permissions (umask), like any file they create.

    Raises
    ------
    ExportError
        If ``path`` is a folder or cannot be written.
    """
    path = Path(path)
    out = reg.drop(columns=[c for c in reg.columns if str(c).startswith("_")])
    with atomic_target(path) as tmp:
        if path.suffix.lower() == ".xlsx":
            out.to_excel(tmp, index=False)
        else:
            out.to_csv(tmp, index=False, encoding="utf-8-sig")
    return path


# --------------------------------------------------------------------------- equipment


@dataclass
class RuleWitness:
    """Inputs under which a catalog rule applies, in canonical values.

    ``enterprise`` holds registry attributes, ``unit`` (unit rules only) equipment fields
    (canonical units), ``location`` the wanted city / basin / region / park attributes.
    Derived fields are expressed through their inputs: ``age_years > 15`` becomes a
    ``commission_year``, ``energy_over_limit`` an indicator and a value above its limit.
    """

    industry_id: str
    enterprise: dict[str, Any] = field(default_factory=dict)
    unit: dict[str, Any] | None = None
    location: dict[str, Any] = field(default_factory=dict)


_LOCATION_FIELDS: Final = ("city", "district", "basin_id", "region_id", "park_id")


def _conditions_first_branch(conds: Sequence[Any]) -> list[Any]:
    from layers.catalog import AllOf, AnyOf, Predicate

    out: list[Any] = []
    for c in conds:
        if isinstance(c, Predicate):
            out.append(c)
        elif isinstance(c, AnyOf):
            out += _conditions_first_branch([c.any[0]])
        elif isinstance(c, AllOf):
            out += _conditions_first_branch(c.all)
    return out


def _number_within(preds: Sequence[Any]) -> float:
    lo: float | None = None
    hi: float | None = None
    for p in preds:
        v = float(p.value)
        if p.op == "eq":
            return v
        if p.op in ("gt", "ge"):
            lo = v if lo is None else max(lo, v)
        if p.op in ("lt", "le"):
            hi = v if hi is None else min(hi, v)
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    if lo is not None:
        return lo + 1
    assert hi is not None
    return hi - 1 if hi > 1 else hi / 2


def _witness_industry(rule: Any) -> str:
    from layers.catalog import energy_indicators, industries

    ids = [i.id for i in industries()] if "*" in rule.industries else list(rule.industries)
    if any(p.field in ("energy_over_limit", "energy_recheck_over_limit")
           for p in _conditions_first_branch(rule.when)):
        with_limit = {i.industry for i in energy_indicators() if i.limit is not None}
        ids = [i for i in ids if i in with_limit] or ids
    return ids[0]


def rule_witness(rule: Any, *, as_of: date) -> RuleWitness:
    """Canonical inputs under which ``rule`` applies on ``as_of`` (its ``unless`` blank)."""
    from layers.catalog import AS_OF, energy_indicators, field_vocabulary

    ind = _witness_industry(rule)
    w = RuleWitness(industry_id=ind, unit={} if rule.scope == "unit" else None)
    unit: dict[str, Any] = w.unit if w.unit is not None else {}
    vocab = field_vocabulary()
    inds = energy_indicators()
    sourced = [i for i in inds if i.limit is not None]
    needed = [i for i in inds if i.limit is None]
    by_field: dict[str, list[Any]] = {}
    for p in _conditions_first_branch(rule.when):
        by_field.setdefault(p.field, []).append(p)
    for name, preds in by_field.items():
        p = preds[0]
        if name == "industry_id":
            continue
        if name in _LOCATION_FIELDS:
            w.location[name] = "" if p.op == "is_empty" else (
                p.value[0] if isinstance(p.value, list) else p.value)
        elif name == "unit_text":
            unit["process"] = unit.get("process", "") + p.value[0]
        elif name == "age_years":
            unit["commission_year"] = float(as_of.year - int(round(_number_within(preds) + 0.5)))
        elif name == "energy_indicator_id":
            unit["energy_indicator"] = next(i for i in inds if i.id == p.value).name_zh
        elif name == "energy_limit_needed":
            own = [i for i in needed if i.industry == ind] or needed
            unit["energy_indicator"] = own[0].name_zh
            unit.setdefault("energy_value", 100.0)
        elif name == "energy_deadline":
            past = p.value == AS_OF and p.op in ("lt", "le")
            unit["inspection_date"] = as_of - timedelta(days=400 if past else 10)
        elif name in ("energy_over_limit", "energy_recheck_over_limit"):
            ref = ([i for i in sourced if i.industry == ind] or sourced)[0]
            unit["energy_indicator"] = ref.name_zh
            factor = 1.05 if p.value else 0.95
            key = "energy_value" if name == "energy_over_limit" else "energy_recheck_value"
            unit[key] = round(float(ref.limit) * factor, 1)  # type: ignore[arg-type]
            if key == "energy_recheck_value":
                unit.setdefault("energy_value", round(float(ref.limit) * 1.05, 1))  # type: ignore[arg-type]
        else:
            spec = vocab[name]
            target = unit if spec.scope == "unit" else w.enterprise
            if p.op == "contains":
                target[name] = p.value[0]
            elif p.op in ("eq", "in"):
                target[name] = p.value[0] if isinstance(p.value, list) else p.value
            elif spec.kind == "date":
                target[name] = as_of - timedelta(days=400 if p.op in ("lt", "le") else 0)
            else:
                target[name] = _number_within(preds)
    if w.unit is not None:
        w.unit.setdefault("unit_type", "other")
    return w


@cache
def _headers() -> dict[str, tuple[str, str]]:
    """Field -> (Chinese header, unit written in the header bracket)."""
    from layers.catalog import read_data_toml

    reg = read_data_toml("registry.toml")
    eq = read_data_toml("equipment.toml")
    out: dict[str, tuple[str, str]] = {}
    for k, v in reg.get("attributes", {}).items():
        out[k] = (v["label_zh"], "")
    for k, v in eq["measures"].items():
        out[k] = (v["label_zh"], eq["dimensions"][v["dimension"]]["canonical"])
    for sec in ("numbers", "dates", "attributes"):
        for k, v in eq.get(sec, {}).items():
            out.setdefault(k, (v["label_zh"], ""))
    return out


#: How the sample writes a canonical unit in a header bracket (Chinese where registries do).
_HEADER_UNITS: Final = {"t": "吨", "m": "米", "m/min": "米/分"}


def header_of(name: str) -> str:
    """The Chinese header a registry writes for a field, with its unit: ``直径(米)``."""
    label, unit = _headers()[name]
    unit = _HEADER_UNITS.get(unit, unit)
    return f"{label}({unit})" if unit else label


def cell_text(name: str, value: Any) -> str:
    """A canonical value as a registry writes it (enum id -> its Chinese word, bool -> 是/否)."""
    from layers.catalog import field_vocabulary, read_data_toml

    spec = field_vocabulary().get(name)
    if isinstance(value, (bool, np.bool_)):
        return "是" if value else "否"
    if isinstance(value, date):
        return value.isoformat()
    if spec is not None and spec.kind == "enum" and name != "unit_type":
        doc = read_data_toml("equipment.toml" if spec.scope == "unit" else "registry.toml")
        return str(doc["attributes"][name]["values"][value][0])
    if name == "liquor_ratio":
        return f"1:{float(value):g}"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


_CAPACITY_UNITS: Final = {
    "capacity_t_per_year": "吨/年", "capacity_hides_per_year": "标张/年",
    "capacity_m2_per_year": "平方米/年", "capacity_pieces_per_year": "件/年",
}


def _unit_row(uscc: str, unit_id: str, unit: Mapping[str, Any]) -> dict[str, str]:
    """One 设备清单 row (header -> cell) from canonical unit values."""
    from layers.catalog import unit_types

    row = {"统一社会信用代码": uscc, "设备编号": unit_id,
           "设备类型": unit_types()[unit.get("unit_type", "other")]}
    for k, v in unit.items():
        if k == "unit_type":
            continue
        if k in _CAPACITY_UNITS:
            row["年产能"] = cell_text(k, v)
            row["单位"] = _CAPACITY_UNITS[k]
        else:
            row[header_of(k)] = cell_text(k, v)
    return row


def _locations(reg: pd.DataFrame, frames: Mapping[str, gpd.GeoDataFrame]) -> pd.DataFrame:
    """city, basin_id, region_id, in_park of each registry row's true (WGS84) position."""
    x, y = reg["_lon"].to_numpy(), reg["_lat"].to_numpy()
    out = pd.DataFrame({"city": reg["_city"].to_numpy(), "basin_id": "", "region_id": "",
                        "park_id": ""}, index=reg.index)
    for kind, col in (("basin", "basin_id"), ("region", "region_id"), ("park", "park_id")):
        for gid, geom in zip(frames[kind]["id"], frames[kind].geometry, strict=True):
            inside = shapely.contains_xy(geom, x, y)
            out.loc[inside & out[col].eq("").to_numpy(), col] = gid
    return out


def _bulk_units(reg: pd.DataFrame, good: np.ndarray, rng: Generator) -> list[dict[str, str]]:
    """Random units per enterprise following the profile's [[units.<industry>]]."""
    profile: Mapping[str, Any] = _profile()["units"]  # type: ignore[assignment]
    rows: list[dict[str, str]] = []
    ind = reg["_industry_id"].to_numpy()
    for industry, entries in profile.items():
        members = np.flatnonzero(good & (ind == industry))
        for k, entry in enumerate(entries):
            lo, hi = entry["count"]
            counts = rng.integers(lo, hi + 1, len(members))
            owners = np.repeat(members, counts)
            n = len(owners)
            cols: dict[str, np.ndarray] = {}
            for head, (a, b) in entry.get("measures", {}).items():
                vals = rng.uniform(a, b, n)
                digits = 0 if b >= 100 else (4 if b < 0.1 else 2)
                cols[head] = np.round(vals, digits)
            for head, choices in entry.get("attributes", {}).items():
                cols[head] = np.asarray(choices, dtype=object)[rng.integers(0, len(choices), n)]
            uscc = reg["统一社会信用代码"].to_numpy()[owners]
            for j in range(n):  # one dict per generated row (synthetic data, not the engine)
                row = {"统一社会信用代码": uscc[j], "设备编号": f"{entry['type']}{k + 1}-{j + 1}",
                       "设备类型": entry["type"]}
                for head, vals in cols.items():
                    v = vals[j]
                    row[head] = f"{v:g}" if isinstance(v, float) else str(v)
                if "年产能" in " ".join(row):
                    row = _split_capacity(row)
                rows.append(row)
    return rows


def _split_capacity(row: dict[str, str]) -> dict[str, str]:
    """'年产能(万吨/年)' written as 年产能 + 单位 columns, as many registries do."""
    for head in list(row):
        if head.startswith("年产能("):
            row["年产能"] = row.pop(head)
            row["单位"] = head[4:-1]
    return row


def _energy_units(reg: pd.DataFrame, good: np.ndarray, rng: Generator,
                  share: float) -> list[dict[str, str]]:
    """Whole-plant energy records (节能监察) for a share of enterprises with a standard."""
    from layers.catalog import energy_indicators

    rows = []
    by_industry: dict[str, list[Any]] = {}
    for i in energy_indicators():
        by_industry.setdefault(i.industry, []).append(i)
    ind = reg["_industry_id"].to_numpy()
    pick = np.flatnonzero(good & (rng.random(len(reg)) < share))
    for r in pick:  # synthetic rows, a few hundred
        options = by_industry.get(str(ind[r]))
        if not options:
            continue
        indicator = options[int(rng.integers(0, len(options)))]
        base = indicator.limit if indicator.limit is not None else 100.0
        day = date(2019, 1, 2) + timedelta(days=int(rng.integers(0, 150)))
        row = {"统一社会信用代码": reg.at[r, "统一社会信用代码"], "设备编号": "全厂能耗",
               "设备类型": "全厂", "能耗指标": indicator.name_zh,
               "单位产品能耗": f"{base * rng.uniform(0.9, 1.1):.1f}",
               "能耗监察日期": day.isoformat()}
        if rng.random() < 0.2:
            row["整改延期(月)"] = str(int(rng.integers(1, 4)))
        if rng.random() < 0.3:
            row["复查能耗"] = f"{base * rng.uniform(0.92, 1.05):.1f}"
        rows.append(row)
    return rows


@dataclass
class SyntheticData:
    """A synthetic registry and its equipment inventory (设备清单)."""

    registry: pd.DataFrame
    equipment: pd.DataFrame


def synthetic_dataset(n: int = 3000, *, seed: int = 2019,
                      as_of: date = date(2019, 6, 30)) -> SyntheticData:
    """A synthetic registry with an equipment inventory that exercises every rule.

    The registry is :func:`synthetic_registry`'s, plus a few registry attributes
    (排污许可证, 经营状态, ...). The inventory holds random units per enterprise following
    ``synthetic_profile.toml`` [[units.*]], whole-plant energy records, a few deliberately
    bad rows, and -- for every rule of the catalog -- one enterprise given the inputs under
    which that rule applies on ``as_of`` (:func:`rule_witness`), at a place matching the
    rule's location conditions.

    Parameters
    ----------
    n, seed
        As in :func:`synthetic_registry`.
    as_of
        The date the witnesses are written for (deadlines, ages).
    """
    from layers.catalog import industries, rules

    reg = synthetic_registry(n, seed=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed + 1)
    profile = _profile()
    frames = _reference_frames()
    good = (reg["_bad_kind"].eq("") & reg["经度"].notna()).to_numpy()
    loc = _locations(reg, frames)

    # registry attributes for a share of enterprises
    attrs = profile.get("registry_attributes", {})
    share = float(attrs.get("share", 0))
    for head, choices in attrs.items():
        if head == "share":
            continue
        vals = np.asarray(choices, dtype=object)[rng.integers(0, len(choices), len(reg))]
        reg[head] = np.where(good & (rng.random(len(reg)) < share), vals, "")

    rows = _bulk_units(reg, good, rng)
    rows += _energy_units(reg, good, rng,
                          float(profile.get("equipment", {}).get("energy_share", 0)))

    # one witness enterprise per rule
    used = np.zeros(len(reg), dtype=bool)
    names = {i.id: i.name_zh for i in industries()}
    for k, rule in enumerate(rules().rules):
        w = rule_witness(rule, as_of=as_of)
        ok = good & ~used
        for col, want in w.location.items():
            ok &= (loc[col] == want).to_numpy()
        same = ok & (reg["_industry_id"].to_numpy() == w.industry_id)
        cand = np.flatnonzero(same) if same.any() else np.flatnonzero(ok)
        if not len(cand):  # a small registry may have no enterprise at that place
            log.warning("synthetic sample: no enterprise placed for rule %s; not exercised",
                        rule.id)
            continue
        r = int(cand[0])
        used[r] = True
        if reg.at[r, "_industry_id"] != w.industry_id:
            reg.at[r, "行业"] = names[w.industry_id]
            reg.at[r, "企业名称"] = str(reg.at[r, "企业名称"]).replace(
                _SUFFIX[reg.at[r, "_industry_id"]], _SUFFIX[w.industry_id], 1)
            reg.at[r, "_industry_id"] = w.industry_id
        for f, v in w.enterprise.items():
            head = header_of(f)
            if head not in reg:
                reg[head] = ""
            reg.at[r, head] = cell_text(f, v)
        if w.unit is not None:
            rows.append(_unit_row(reg.at[r, "统一社会信用代码"], f"{rule.id}#1", w.unit))

    equ = pd.DataFrame(rows).fillna("")
    equ = _spoil_equipment(equ, float(profile.get("equipment", {}).get("bad_rows", 0)), rng)
    lead = ["统一社会信用代码", "设备编号", "设备类型"]
    equ = equ[lead + sorted(c for c in equ.columns if c not in lead and c != "_bad_kind")
              + ["_bad_kind"]]
    equ["数据说明"] = SYNTHETIC_NOTE
    return SyntheticData(registry=reg, equipment=equ)


#: Deliberate problems of equipment rows: each is rejected with its reason.
BAD_UNIT_KINDS: Final = ("unit_type_unknown", "measure_unit_unknown", "unit_enterprise_unknown")


def _spoil_equipment(equ: pd.DataFrame, share: float, rng: Generator) -> pd.DataFrame:
    equ = equ.copy()
    equ["_bad_kind"] = ""
    witness = equ["设备编号"].str.contains("#", regex=False).to_numpy()
    count = max(len(BAD_UNIT_KINDS), int(len(equ) * share))
    rows = rng.choice(np.flatnonzero(~witness), size=min(count, int((~witness).sum())),
                      replace=False)
    if "直径(米)" not in equ:
        equ["直径(米)"] = ""
    for i, row in enumerate(rows):
        kind = BAD_UNIT_KINDS[i % len(BAD_UNIT_KINDS)]
        equ.iat[row, equ.columns.get_loc("_bad_kind")] = kind
        if kind == "unit_type_unknown":
            equ.iat[row, equ.columns.get_loc("设备类型")] = "时光机"
        elif kind == "measure_unit_unknown":
            equ.iat[row, equ.columns.get_loc("直径(米)")] = "3英尺"
        else:
            equ.iat[row, equ.columns.get_loc("统一社会信用代码")] = "91440000MA00000000"
    return equ


def write_dataset(data: SyntheticData, path: str | Path,
                  equipment_path: str | Path | None = None) -> tuple[Path, Path | None]:
    """Write a synthetic registry and its inventory.

    CSV: the registry at ``path`` and the inventory at ``equipment_path`` (default: the
    registry's name with ``registry`` -> ``equipment``, or ``_equipment`` appended).
    XLSX: one workbook, the inventory as its second sheet 设备清单.
    """
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        with atomic_target(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for frame, sheet in ((data.registry, "企业名录"), (data.equipment, "设备清单")):
                frame.drop(columns=[c for c in frame.columns if str(c).startswith("_")]) \
                    .to_excel(xw, sheet_name=sheet, index=False)
        return path, None
    if equipment_path is None:
        stem = path.stem.replace("registry", "equipment") if "registry" in path.stem \
            else f"{path.stem}_equipment"
        equipment_path = path.with_name(stem + path.suffix)
    write_registry(data.registry, path)
    return path, write_registry(data.equipment, equipment_path)
