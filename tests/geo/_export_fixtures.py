"""Small enforcement/rejected frames shared by the export and web map tests."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.schema import ENFORCEMENT_COLUMNS, REJECTED_COLUMNS

__all__ = ["VERDICT_LABELS", "enforcement_frame", "rejected_frame"]

#: Local stand-in for the rules catalog's verdict labels (tests only).
VERDICT_LABELS = {
    "shutdown": "停产退出",
    "rectify": "限期整改",
    "basin_standard": "执行流域标准",
    "emission_standard": "执行排放标准",
    "priority_supervision": "重点监管",
    "no_action": "无需处置",
}

_ROWS = [
    # row, uscc, name, industry_id, industry, lon, lat, basin, region, park, verdict, review
    (2, "91440500MA4UXXXX1A", "潮南某印染有限公司", "dyeing", "印染", 116.43, 23.25,
     "lianjiang", "", "", "shutdown", False),
    (3, "91440500MA4UXXXX2B", "普宁某纺织印染厂", "dyeing", "印染", 116.17, 23.30,
     "lianjiang", "", "puning_park", "basin_standard", True),
    (5, "91440300MA5FXXXX3C", "光明某纸业有限公司", "paper", "造纸", 113.90, 22.77,
     "maozhou", "", "", "basin_standard", False),
    (6, "91441900MA4WXXXX4D", "<script>alert(1)</script>", "ceramics", "陶瓷", 114.15, 22.85,
     "shima", "", "", "priority_supervision", False),
    (7, "91440600MA4XXXXX5E", "佛山某钢铁厂 & Co \"quoted\"", "steel", "钢铁", 113.10, 23.05,
     "", "guangfo", "", "rectify", True),
    (9, "91445200MA4YXXXX6F", "揭阳某水泥厂", "cement", "水泥", 116.30, 23.55,
     "", "", "", "no_action", False),
]


def enforcement_frame() -> gpd.GeoDataFrame:
    """Six enterprises in four basins/regions with every ENFORCEMENT_COLUMNS column."""
    cols = list(zip(*_ROWS, strict=True))
    n = len(_ROWS)
    lon = np.array(cols[5], dtype=float)
    lat = np.array(cols[6], dtype=float)
    df = pd.DataFrame(
        {
            "row": np.array(cols[0], dtype="int64"),
            "uscc": cols[1],
            "name": cols[2],
            "industry_id": cols[3],
            "industry": cols[4],
            "address": [f"广东省某市某路{i}号" for i in range(n)],
            "lon": lon,
            "lat": lat,
            "crs_in": ["WGS84", "GCJ02", "WGS84", "BD09", "WGS84", "CGCS2000"],
            "geocode_precision": ["coordinates", "town", "coordinates", "coordinates",
                                  "district", "coordinates"],
            "geocode_unit": ["", "流沙街道", "", "", "南海区", ""],
            "city": ["汕头市", "揭阳市", "深圳市", "东莞市", "佛山市", "揭阳市"],
            "district": ["潮南区", "普宁市", "光明区", "塘厦镇", "南海区", "榕城区"],
            "district_code": ["440514", "445281", "440311", "441900", "440605", "445202"],
            "basin_id": cols[7],
            "region_id": cols[8],
            "park_id": cols[9],
            "park_claimed": ["", "普宁纺织印染环保综合处理中心", "", "", "", ""],
            "verdict": cols[10],
            "standards": ["DB44/2051-2017", "DB44/2051-2017", "DB44/2130-2018", "", "", ""],
            "rule_ids": ["lianjiang_dyeing_exit", "basin_std", "basin_std", "priority", "x", ""],
            "needs_review": np.array(cols[11], dtype=bool),
            "review_reasons": ["", "坐标仅到镇街", "", "", "定位到区县", ""],
            "data_issues": ["", "gcj02", "", "", "", ""],
            "reasons": ["练江流域园区外印染企业全部停产退出（表2第6行）" * 3, "执行DB44/2051-2017",
                        "执行DB44/2130-2018", "重点行业重点监管", "限期整改", ""],
            "deadline": ["", "", "", "", "2019-12-31", ""],
            "deadline_status": ["immediate", "", "", "", "pending", ""],
            "price_measures": ["", "", "", "", "differential_price", ""],
            "unit_count": np.array([0, 0, 1, 0, 2, 0], dtype="int64"),
            "units": ["", "", "", "", "1号转炉（关停退出〔表5 第1项(2)〕）", ""],
        },
        columns=list(ENFORCEMENT_COLUMNS),
    )
    return gpd.GeoDataFrame(df, geometry=shapely.points(lon, lat), crs="EPSG:4326")


def rejected_frame() -> pd.DataFrame:
    """Two rejected registry rows."""
    return pd.DataFrame(
        {
            "row": [4, 8],
            "uscc": ["123", ""],
            "name": ["某无效企业", "某缺坐标企业"],
            "field": ["uscc", "address"],
            "reason": ["bad_uscc", "no_location"],
            "message": ["统一社会信用代码校验失败 (uscc: check digit)", "无地址也无坐标 (address)"],
            "source": ["registry", "registry"],
        },
        columns=list(REJECTED_COLUMNS),
    )
