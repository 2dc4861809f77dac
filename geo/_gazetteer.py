"""Offline geocoding: ``cpca`` address parsing + a gazetteer built from the reference layers.

Resolution, finest first:

1. **town**: a town/street (镇/街道) of ``layers/data/towns.csv`` named in the address,
   searched only within the parsed district (or, when the district is unknown, the city),
   because the same town name exists in several districts;
2. **district**: the representative point of the parsed district (``districts`` layer);
3. **city**: the representative point of the parsed city (``cities`` layer).

``cpca``'s division table predates 2018 (it does not know 光明区, 龙华区, 坪山区 as
districts), so when it finds no district, district names of the districts layer are
searched in the address within the parsed city. Cities without districts (东莞市,
中山市) are their own county-level unit in the districts layer.

Everything runs on whole columns: one ``cpca.transform`` call, then pandas merges over
(address, candidate) pairs and numpy string search; no per-row geometry work.
"""

from __future__ import annotations

import logging
import re
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.errors import ReferenceDataError
from geo.geocoding import GEOCODER_OUTPUT_COLUMNS, BaseGeocoder
from layers.catalog import data_path

__all__ = ["OfflineGeocoder", "load_towns", "parse_addresses"]

logger = logging.getLogger(__name__)

TOWNS_FILE: Final = "towns.csv"
_TOWN_COLUMNS: Final = ("name_zh", "district_code", "district_zh", "city_zh", "lon", "lat")
_TOWN_SUFFIX: Final = re.compile(r"(街道办事处|街道|镇|乡)$")
_NO_POS: Final = np.iinfo(np.int64).max


def load_towns(path: str | None = None) -> pd.DataFrame:
    """Read the town/street gazetteer (``layers/data/towns.csv`` by default).

    Raises
    ------
    ReferenceDataError
        If a required column is missing or a coordinate is not a number.
    """
    src = path or data_path(TOWNS_FILE)
    towns = pd.read_csv(src, dtype={"district_code": str}, encoding="utf-8")
    missing = [c for c in _TOWN_COLUMNS if c not in towns]
    if missing:
        raise ReferenceDataError(f"{src} lacks columns {missing}; expected {list(_TOWN_COLUMNS)}.")
    for c in ("lon", "lat"):
        towns[c] = pd.to_numeric(towns[c], errors="coerce")
    if towns[["lon", "lat"]].isna().any().any():
        raise ReferenceDataError(f"{src} has non-numeric lon/lat values.")
    return towns


def parse_addresses(addresses: pd.Series) -> pd.DataFrame:
    """Parse addresses with ``cpca`` in one call.

    Returns
    -------
    pandas.DataFrame
        Same index; columns ``province``, ``city``, ``district``, ``remainder`` (strings,
        ``''`` when cpca found nothing; ``remainder`` falls back to the whole address).
    """
    import cpca  # heavy import (jieba); only when geocoding

    text = addresses.fillna("").astype(str).str.normalize("NFKC").str.strip()
    if len(text) == 0:
        return pd.DataFrame(columns=["province", "city", "district", "remainder"], dtype=str)
    parsed = cpca.transform(text.tolist())
    parsed.index = addresses.index
    out = pd.DataFrame(
        {
            "province": parsed["省"].fillna("").astype(str),
            "city": parsed["市"].fillna("").astype(str),
            "district": parsed["区"].fillna("").astype(str),
            "remainder": parsed["地址"].fillna("").astype(str),
        },
        index=addresses.index,
    )
    nothing = out["province"].eq("") & out["city"].eq("") & out["district"].eq("")
    out["remainder"] = out["remainder"].where(~nothing, text)
    return out


def _points(frame: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    geom = frame.geometry
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        geom = geom.to_crs("EPSG:4326")
    pts = geom.representative_point()
    return pts.x.to_numpy(), pts.y.to_numpy()


def _default_layer(layer_id: str) -> gpd.GeoDataFrame:
    try:
        from layers.registry import load_layer
    except ImportError:  # registry module not available: read the bundled file directly
        return gpd.read_file(data_path(f"{layer_id}.geojson"))
    return load_layer(layer_id)


def _find(haystack: pd.Series, needle: pd.Series) -> np.ndarray:
    """Element-wise ``str.find`` of two aligned string columns (numpy, no Python loop)."""
    if len(haystack) == 0:
        return np.zeros(0, dtype=np.int64)
    h = np.asarray(haystack.to_numpy(dtype=object), dtype=str)
    n = np.asarray(needle.to_numpy(dtype=object), dtype=str)
    return np.char.find(h, n).astype(np.int64)


def _best_match(pairs: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per address (column ``aid``) keep the earliest, longest match; drop ties on ``key``."""
    if pairs.empty:
        return pairs
    ranked = pairs.assign(_len=-pairs["match_len"]).sort_values(["aid", "pos", "_len"])
    best = ranked.groupby("aid", sort=False).head(1)[["aid", "pos", "_len"]]
    top = ranked.merge(best, on=["aid", "pos", "_len"])
    ties = top.groupby("aid")[key].transform("nunique")
    return top[ties.eq(1)].drop_duplicates("aid").drop(columns="_len")


class OfflineGeocoder(BaseGeocoder):
    """Offline provider: cpca parsing + town / district / city gazetteer.

    Parameters
    ----------
    districts
        Districts layer (columns ``code``, ``name_zh``, ``city_code``, ``city_zh``,
        polygon geometry); default: ``layers.registry.load_layer('districts')``.
    cities
        Cities layer (``code``, ``name_zh``, geometry); default ``load_layer('cities')``.
    towns
        Town gazetteer (``name_zh``, ``district_code``, ``district_zh``, ``city_zh``,
        ``lon``, ``lat`` in WGS84); default ``layers/data/towns.csv``.
    """

    name = "offline"

    def __init__(
        self,
        *,
        districts: gpd.GeoDataFrame | None = None,
        cities: gpd.GeoDataFrame | None = None,
        towns: pd.DataFrame | None = None,
    ) -> None:
        districts = _default_layer("districts") if districts is None else districts
        cities = _default_layer("cities") if cities is None else cities
        towns = load_towns() if towns is None else towns
        d_lon, d_lat = _points(districts)
        c_lon, c_lat = _points(cities)
        self.districts = pd.DataFrame(
            {
                "d_code": districts["code"].astype(str).to_numpy(),
                "d_name": districts["name_zh"].astype(str).to_numpy(),
                "city": districts["city_zh"].astype(str).to_numpy(),
                "d_lon": d_lon,
                "d_lat": d_lat,
            }
        )
        self.cities = pd.DataFrame(
            {
                "c_code": cities["code"].astype(str).to_numpy(),
                "city": cities["name_zh"].astype(str).to_numpy(),
                "c_lon": c_lon,
                "c_lat": c_lat,
            }
        ).drop_duplicates("city")
        t = towns.reset_index(drop=True)
        short = t["name_zh"].astype(str).str.replace(_TOWN_SUFFIX, "", regex=True)
        self.towns = pd.DataFrame(
            {
                "t_id": np.arange(len(t)),
                "t_name": t["name_zh"].astype(str),
                "t_short": short.where(short.str.len() >= 2, t["name_zh"].astype(str)),
                "d_code": t["district_code"].astype(str),
                "city": t["city_zh"].astype(str),
                "t_lon": t["lon"].astype(float),
                "t_lat": t["lat"].astype(float),
            }
        )
        # cities whose only county-level unit is the city itself (东莞市, 中山市)
        per_city = self.districts.groupby("city")["d_code"].transform("size")
        self._self_district = self.districts[
            per_city.eq(1) & self.districts["d_name"].eq(self.districts["city"])
        ][["city", "d_code"]]

    # ------------------------------------------------------------------ steps

    def _resolve_districts(self, p: pd.DataFrame) -> pd.DataFrame:
        """Add ``d_code`` (and fix ``city``) from cpca's district or a layer name search."""
        known = p.merge(
            self.districts[["d_code", "d_name", "city"]],
            left_on=["city", "district"], right_on=["city", "d_name"], how="left",
        )["d_code"]
        p = p.assign(d_code=known.to_numpy())
        todo = p[p["d_code"].isna()]
        if len(todo):
            with_city = todo[todo["city"].ne("")].merge(
                self.districts[["d_code", "d_name", "city"]], on="city", suffixes=("", "_l")
            )
            no_city = todo[todo["city"].eq("")].drop(columns="city").merge(
                self.districts[["d_code", "d_name", "city"]], how="cross", suffixes=("", "_l")
            )
            pairs = pd.concat([with_city, no_city], ignore_index=True)
            pairs["pos"] = _find(pairs["remainder"], pairs["d_name"])
            pairs = pairs[pairs["pos"].ge(0)].assign(match_len=lambda f: f["d_name"].str.len())
            best = _best_match(pairs, "d_code_l").set_index("aid")
            p.loc[best.index, "d_code"] = best["d_code_l"]
            p.loc[best.index, "city"] = best["city"]
            p.loc[best.index, "district"] = best["d_name"]
        self_d = p["d_code"].isna() & p["city"].isin(self._self_district["city"])
        if self_d.any():
            lookup = self._self_district.set_index("city")["d_code"]
            p.loc[self_d, "d_code"] = p.loc[self_d, "city"].map(lookup)
        return p

    def _match_towns(self, p: pd.DataFrame) -> pd.DataFrame:
        """Best town per address, within its district (or city when the district is unknown)."""
        cand = p[p["city"].ne("")][["aid", "city", "d_code", "district", "remainder"]]
        pairs = cand.merge(self.towns, on="city", suffixes=("", "_t"))
        pairs = pairs[pairs["d_code"].isna() | pairs["d_code"].eq(pairs["d_code_t"])]
        if pairs.empty:
            return pairs.assign(pos=[], match_len=[])
        rest = pairs["remainder"].astype(str)
        starts = _find(rest, pairs["district"].fillna("").astype(str)) == 0
        dlen = pairs["district"].fillna("").str.len().to_numpy()
        rest = pd.Series(
            np.where(starts & (dlen > 0), [r[k:] for r, k in zip(rest, dlen, strict=True)], rest),
            index=pairs.index,
        )
        full = _find(rest, pairs["t_name"])
        short_at_start = _find(rest, pairs["t_short"]) == 0
        pos = np.where(full >= 0, full, np.where(short_at_start, 0, -1))
        pairs = pairs.assign(pos=pos, match_len=pairs["t_name"].str.len())
        return _best_match(pairs[pairs["pos"].ge(0)], "t_id")

    # ------------------------------------------------------------------ API

    def geocode(self, addresses: pd.Series) -> pd.DataFrame:
        """Geocode addresses to town, district or city representative points (WGS84).

        Parameters
        ----------
        addresses
            Address strings.

        Returns
        -------
        pandas.DataFrame
            Same index, columns ``lon``, ``lat``, ``geocode_precision``, ``geocode_unit``,
            ``geocode_unit_code``; NaN / ``''`` where nothing in Guangdong matched.
            For town precision the unit code is the town's district code.
        """
        parsed = parse_addresses(addresses).reset_index(drop=True)
        parsed["aid"] = np.arange(len(parsed))
        known_city = parsed["city"].isin(self.cities["city"])
        parsed["city"] = parsed["city"].where(known_city, "")
        p = self._resolve_districts(parsed)
        towns = self._match_towns(p)

        out = p[["aid", "city", "d_code"]].copy()
        tw = towns.set_index("aid") if len(towns) else pd.DataFrame(
            columns=["t_name", "t_lon", "t_lat", "d_code_t"]
        )
        out["t_name"] = out["aid"].map(tw["t_name"])
        out["t_lon"] = out["aid"].map(tw["t_lon"])
        out["t_lat"] = out["aid"].map(tw["t_lat"])
        out["d_code"] = out["d_code"].where(out["d_code"].notna(), out["aid"].map(tw["d_code_t"]))
        out = out.merge(self.districts, on="d_code", how="left", suffixes=("", "_d"))
        out["city"] = out["city"].where(out["city"].ne(""), out["city_d"].fillna(""))
        out = out.merge(self.cities, on="city", how="left").sort_values("aid")

        is_town = out["t_lon"].notna().to_numpy()
        is_district = ~is_town & out["d_lon"].notna().to_numpy()
        is_city = ~is_town & ~is_district & out["c_lon"].notna().to_numpy()
        conds = [is_town, is_district, is_city]
        lon = np.select(conds, [out["t_lon"], out["d_lon"], out["c_lon"]], default=np.nan)
        lat = np.select(conds, [out["t_lat"], out["d_lat"], out["c_lat"]], default=np.nan)
        precision = np.select(conds, ["town", "district", "city"], default="")
        unit = np.select(
            conds, [out["t_name"].astype(object), out["d_name"].astype(object),
                    out["city"].astype(object)], default="",
        )
        code = np.select(
            conds, [out["d_code"].astype(object), out["d_code"].astype(object),
                    out["c_code"].astype(object)], default="",
        )
        result = pd.DataFrame(
            {
                "lon": lon.astype(np.float64),
                "lat": lat.astype(np.float64),
                "geocode_precision": precision.astype(str),
                "geocode_unit": pd.Series(unit).fillna("").astype(str).to_numpy(),
                "geocode_unit_code": pd.Series(code).fillna("").astype(str).to_numpy(),
            },
            index=addresses.index,
        )
        return result[list(GEOCODER_OUTPUT_COLUMNS)]
