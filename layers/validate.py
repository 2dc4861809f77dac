"""Validation of a candidate layer before any of it is used: the import report.

Checks (each a :class:`Check` with a level ``ok``/``info``/``warning``/``error``):

* ``geometry_type`` -- polygons only (a point or line cannot hold an enterprise);
* ``validity`` -- GEOS validity per feature; an invalid geometry is an **error** unless the
  user consents to the repair (``repair=True``), and the report gives the area the repair
  (:func:`shapely.make_valid`) adds or removes, so consent is informed;
* ``province`` -- area outside Guangdong (the bundled city layer): more than
  :data:`OUTSIDE_ERROR` of the layer is an error (wrong CRS, wrong file), a sliver is a
  warning;
* ``published_area`` -- area against the published figure (a basin's
  ``published_area_km2``) where one exists: beyond :data:`AREA_WARN` a warning;
* ``overlap`` / ``self_overlap`` -- overlap with the other active layers of the same kind
  (an enterprise there would be in two basins) and between the layer's own features;
* ``gaps`` -- new slivers narrower than ``2 * GAP_CLOSE_M`` between the layer and its
  same-kind neighbours that the active version did not leave (morphological closing);
* ``change`` -- area gained and lost against the active version;
* ``vertices`` -- vertex count, and what the map draws after display simplification;
  classification always uses every vertex.

Areas are computed in the Guangdong Albers equal-area CRS of :mod:`layers.build._common`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Final, Literal

import geopandas as gpd
import numpy as np
import shapely

from layers.build._common import area_km2, from_metric, to_metric

__all__ = [
    "AREA_WARN",
    "OUTSIDE_ERROR",
    "GAP_CLOSE_M",
    "DISPLAY_TOLERANCE_DEG",
    "Check",
    "ValidationReport",
    "validate_layer",
    "province_polygon",
]

logger = logging.getLogger(__name__)

#: Relative deviation from the published area that earns a warning.
AREA_WARN: Final = 0.10
#: Share of the layer's area outside Guangdong that makes the import an error.
OUTSIDE_ERROR: Final = 0.05
#: Share outside Guangdong reported as a warning (coastline and border slivers).
OUTSIDE_WARN: Final = 0.001
#: Half-width (m) of the closing that finds gaps between neighbouring layers.
GAP_CLOSE_M: Final = 250.0
#: Smallest overlap or gap reported, km².
MIN_REPORTED_KM2: Final = 0.01
#: Display simplification of the served map (api /map/layers default), degrees.
DISPLAY_TOLERANCE_DEG: Final = 0.002

Level = Literal["ok", "info", "warning", "error"]


@dataclass
class Check:
    """One validation result."""

    code: str
    level: Level
    message: str
    message_zh: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """Everything checked about a candidate layer; ``ok`` when no check is an error."""

    layer_id: str
    kind: str
    feature_count: int
    area_km2: float
    vertices: int
    checks: list[Check]
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """True when no check is an error."""
        return not any(c.level == "error" for c in self.checks)

    @property
    def errors(self) -> list[Check]:
        """The error checks."""
        return [c for c in self.checks if c.level == "error"]

    @property
    def warnings(self) -> list[str]:
        """Messages of the warning checks."""
        return [c.message for c in self.checks if c.level == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["ok"] = self.ok
        return out


@cache
def province_polygon() -> shapely.Geometry:
    """Guangdong as one (multi)polygon: the union of the bundled city layer (prepared)."""
    from layers.registry import load_bundled

    geom = shapely.union_all(load_bundled("cities").geometry.to_numpy())
    shapely.prepare(geom)
    return geom


def _km2(geom: Any) -> float:
    return float(np.sum(area_km2(np.atleast_1d(np.asarray(geom, dtype=object)))))


def _check_types(geoms: np.ndarray) -> Check:
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    bad = np.flatnonzero(~polygonal)
    if bad.size:
        kinds = sorted({shapely.get_type_id(g) for g in geoms[bad]})
        return Check(
            "geometry_type", "error",
            f"feature(s) {_rows(bad)} are not polygons (type ids {kinds}); a boundary layer "
            "needs Polygon/MultiPolygon features.",
            f"第 {_rows(bad)} 个要素不是面（Polygon/MultiPolygon），边界图层只接受面要素。",
            {"features": (bad + 1).tolist()},
        )
    return Check("geometry_type", "ok", "all features are polygons", "全部要素均为面")


def _rows(idx: np.ndarray) -> str:
    shown = ", ".join(str(int(i) + 1) for i in idx[:10])
    return shown + (" …" if len(idx) > 10 else "")


def _repair(geoms: np.ndarray) -> np.ndarray:
    """``make_valid`` keeping only the polygonal parts (as MultiPolygons)."""
    fixed = shapely.make_valid(geoms)
    out = np.empty(len(fixed), dtype=object)
    for i, g in enumerate(fixed):  # only invalid rows reach here; a handful of features
        parts = shapely.get_parts(g)
        keep = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out[i] = shapely.union_all(keep) if len(keep) else shapely.Polygon()
    return out


def _check_validity(geoms: np.ndarray, repair: bool) -> tuple[np.ndarray, Check, bool]:
    valid = shapely.is_valid(geoms)
    bad = np.flatnonzero(~valid)
    if not bad.size:
        return geoms, Check("validity", "ok", "all geometries are valid", "几何全部有效"), False
    reasons = [shapely.is_valid_reason(g) for g in geoms[bad]]
    fixed = _repair(geoms[bad])
    before, after = _km2(geoms[bad]), _km2(fixed)
    change = after - before
    pct = 100.0 * change / before if before else 0.0
    data = {"features": (bad + 1).tolist(), "reasons": reasons,
            "area_before_km2": round(before, 4), "area_after_km2": round(after, 4),
            "area_change_km2": round(change, 4), "area_change_pct": round(pct, 3)}
    detail = "; ".join(f"feature {int(i) + 1}: {r}" for i, r in zip(bad[:5], reasons[:5],
                                                                    strict=False))
    if not repair:
        return geoms, Check(
            "validity", "error",
            f"{bad.size} invalid geometr{'y' if bad.size == 1 else 'ies'} ({detail}). "
            f"Repairing them (make_valid) would change their area by {change:+.4f} km² "
            f"({pct:+.2f} %); rerun with --repair to accept that, or fix the file.",
            f"{bad.size} 个几何无效（{detail}）。自动修复将使其面积变化 {change:+.4f} km²"
            f"（{pct:+.2f}%）；确认后加 --repair 重新导入，或修正原文件。",
            data,
        ), False
    out = geoms.copy()
    out[bad] = fixed
    return out, Check(
        "validity", "warning",
        f"repaired {bad.size} invalid geometr{'y' if bad.size == 1 else 'ies'} with the "
        f"user's consent ({detail}); area changed by {change:+.4f} km² ({pct:+.2f} %).",
        f"经用户同意修复 {bad.size} 个无效几何，面积变化 {change:+.4f} km²（{pct:+.2f}%）。",
        data,
    ), True


def _check_province(union: Any, area: float) -> Check:
    prov = province_polygon()
    outside = _km2(shapely.difference(union, prov)) if area else 0.0
    share = outside / area if area else 0.0
    data = {"outside_km2": round(outside, 3), "outside_share": round(share, 5)}
    if share > OUTSIDE_ERROR:
        return Check(
            "province", "error",
            f"{outside:.1f} km² ({100 * share:.1f} %) of the layer lies outside Guangdong; "
            "wrong file or wrong coordinate system (--crs)?",
            f"图层有 {outside:.1f} km²（{100 * share:.1f}%）位于广东省外："
            "文件或坐标系（--crs）有误？",
            data,
        )
    if share > OUTSIDE_WARN:
        return Check(
            "province", "warning",
            f"{outside:.2f} km² ({100 * share:.2f} %) lies outside Guangdong's boundary "
            "(coast or provincial border); enterprises there are rejected anyway.",
            f"有 {outside:.2f} km²（{100 * share:.2f}%）位于省界（海岸线）外。",
            data,
        )
    return Check("province", "ok", "inside Guangdong", "位于广东省内", data)


def _check_published(area: float, published: float | None) -> Check:
    if not published:
        return Check("published_area", "info", "no published area to compare with",
                     "无公布面积可比较", {"area_km2": round(area, 2)})
    dev = area / published - 1.0
    data = {"area_km2": round(area, 2), "published_km2": published,
            "deviation": round(dev, 4)}
    level: Level = "warning" if abs(dev) > AREA_WARN else "ok"
    return Check(
        "published_area", level,
        f"area {area:.1f} km² vs published {published:g} km² ({100 * dev:+.1f} %)"
        + (f"; more than ±{100 * AREA_WARN:.0f} % apart" if level == "warning" else ""),
        f"面积 {area:.1f} km²，公布面积 {published:g} km²（偏差 {100 * dev:+.1f}%）",
        data,
    )


def _check_overlaps(geoms: np.ndarray, ids: list[str], others: gpd.GeoDataFrame | None
                    ) -> list[Check]:
    out: list[Check] = []
    union = shapely.union_all(geoms)
    if others is not None and len(others):
        oth = others.geometry.to_numpy()
        inter = shapely.intersection(union, oth)
        areas = area_km2(inter)
        hits = [(str(others["id"].iloc[i]), round(float(a), 3))
                for i, a in enumerate(areas) if a >= MIN_REPORTED_KM2]
        if hits:
            txt = ", ".join(f"{i} {a} km²" for i, a in hits)
            out.append(Check(
                "overlap", "warning",
                f"overlaps active same-kind layers: {txt}; enterprises there will be flagged "
                "multiple_* for review.",
                f"与同类图层重叠：{txt}；重叠区内企业将标记为需人工复核。",
                {"overlaps": dict(hits)},
            ))
        else:
            out.append(Check("overlap", "ok", "no overlap with same-kind layers",
                             "与同类图层无重叠"))
    if len(geoms) > 1:
        tree = shapely.STRtree(geoms)
        i, j = tree.query(geoms, predicate="intersects")
        keep = i < j
        i, j = i[keep], j[keep]
        if i.size:
            areas = area_km2(shapely.intersection(geoms[i], geoms[j]))
            big = areas >= MIN_REPORTED_KM2
            pairs = [(ids[a], ids[b], round(float(x), 3))
                     for a, b, x in zip(i[big], j[big], areas[big], strict=True)]
            if pairs:
                txt = ", ".join(f"{a}/{b} {x} km²" for a, b, x in pairs[:10])
                out.append(Check(
                    "self_overlap", "warning", f"features overlap each other: {txt}",
                    f"图层内要素相互重叠：{txt}", {"pairs": pairs},
                ))
    return out


def _gaps(union: Any, neighbours: np.ndarray) -> Any:
    """Slivers narrower than 2 * GAP_CLOSE_M between ``union`` and its neighbours."""
    if not len(neighbours):
        return shapely.Polygon()
    near = neighbours[shapely.dwithin(neighbours, union, 0.02)]
    if not len(near):
        return shapely.Polygon()
    m_union = to_metric(shapely.union_all(np.append(near, union)))
    closed = shapely.buffer(shapely.buffer(m_union, GAP_CLOSE_M, quad_segs=2),
                            -GAP_CLOSE_M, quad_segs=2)
    gaps = shapely.difference(closed, m_union)
    touching = shapely.buffer(to_metric(union), 1.0)
    parts = shapely.get_parts(gaps)
    parts = parts[shapely.intersects(parts, touching) & (shapely.area(parts) > 0)]
    return from_metric(shapely.union_all(parts)) if len(parts) else shapely.Polygon()


def _check_gaps(union: Any, current: Any, others: gpd.GeoDataFrame | None) -> Check:
    if others is None or not len(others):
        return Check("gaps", "info", "no same-kind neighbours", "无同类相邻图层")
    oth = others.geometry.to_numpy()
    new = _gaps(union, oth)
    if current is not None and not shapely.is_empty(current):
        new = shapely.difference(new, _gaps(current, oth))
    area = _km2(new) if not shapely.is_empty(new) else 0.0
    if area >= MIN_REPORTED_KM2:
        return Check(
            "gaps", "warning",
            f"leaves {area:.2f} km² of new gaps (< {2 * GAP_CLOSE_M:.0f} m wide) between "
            "this layer and its same-kind neighbours; enterprises there fall in neither.",
            f"与相邻同类图层之间新增 {area:.2f} km² 的缝隙（宽度小于 {2 * GAP_CLOSE_M:.0f} 米），"
            "缝隙内企业不属于任一图层。",
            {"gap_km2": round(area, 3)},
        )
    return Check("gaps", "ok", "no new gaps with same-kind neighbours", "与相邻同类图层无新增缝隙",
                 {"gap_km2": round(area, 3)})


def _check_change(union: Any, current: Any) -> Check:
    if current is None or shapely.is_empty(current):
        return Check("change", "info", "no active version to compare with", "无现行版本可比较")
    gained = _km2(shapely.difference(union, current))
    lost = _km2(shapely.difference(current, union))
    return Check(
        "change", "info",
        f"against the active version: +{gained:.2f} km² gained, -{lost:.2f} km² lost",
        f"与现行版本相比：新增 {gained:.2f} km²，减少 {lost:.2f} km²",
        {"gained_km2": round(gained, 3), "lost_km2": round(lost, 3)},
    )


def _check_vertices(geoms: np.ndarray) -> Check:
    n = int(shapely.get_num_coordinates(geoms).sum())
    shown = shapely.simplify(geoms, DISPLAY_TOLERANCE_DEG, preserve_topology=True)
    m = int(shapely.get_num_coordinates(shown).sum())
    return Check(
        "vertices", "info",
        f"{n} vertices, all used for classification; the map draws {m} after display "
        f"simplification ({DISPLAY_TOLERANCE_DEG}°).",
        f"共 {n} 个顶点，分类使用全部顶点；"
        f"地图显示简化后 {m} 个（容差 {DISPLAY_TOLERANCE_DEG}°）。",
        {"vertices": n, "display_vertices": m, "display_tolerance_deg": DISPLAY_TOLERANCE_DEG},
    )


def validate_layer(
    frame: gpd.GeoDataFrame,
    *,
    layer_id: str,
    kind: str,
    published_area_km2: float | None = None,
    others: gpd.GeoDataFrame | None = None,
    current: Any = None,
    repair: bool = False,
) -> tuple[gpd.GeoDataFrame, ValidationReport]:
    """Validate a candidate layer; return it (repaired if consented) and the report.

    Parameters
    ----------
    frame
        Candidate features, EPSG:4326; an ``id`` column names them in messages.
    layer_id, kind
        What the candidate is.
    published_area_km2
        Published area to compare with (basins).
    others
        The other active layers of the same kind (``id`` + geometry), for overlaps/gaps.
    current
        The geometry of the active version being replaced (union), for gaps and change.
    repair
        The user's consent to repair invalid geometries.

    Returns
    -------
    The frame (geometries repaired only when ``repair`` and needed) and the report; the
    report's ``ok`` is False when any check is an error.
    """
    geoms = np.asarray(frame.geometry.values, dtype=object)
    ids = (frame["id"].astype(str).tolist() if "id" in frame.columns
           else [str(i + 1) for i in range(len(frame))])
    checks = [_check_types(geoms)]
    repaired = False
    if checks[0].level != "error":
        geoms, check, repaired = _check_validity(geoms, repair)
        checks.append(check)
    usable = checks[-1].level != "error" and checks[0].level != "error"
    area = _km2(geoms) if usable else 0.0
    if usable:
        union = shapely.union_all(geoms)
        checks.append(_check_province(union, area))
        checks.append(_check_published(area, published_area_km2))
        checks.extend(_check_overlaps(geoms, ids, others))
        checks.append(_check_gaps(union, current, others))
        checks.append(_check_change(union, current))
        checks.append(_check_vertices(geoms))
    out = frame if not repaired else gpd.GeoDataFrame(
        frame.drop(columns=frame.geometry.name), geometry=geoms, crs=frame.crs)
    report = ValidationReport(
        layer_id=layer_id, kind=kind, feature_count=len(frame), area_km2=round(area, 3),
        vertices=int(shapely.get_num_coordinates(geoms).sum()), checks=checks,
        repaired=repaired,
    )
    for c in checks:
        logger.info("%s %s: %s", layer_id, c.code, c.message)
    return out, report
