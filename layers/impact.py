"""Impact dry run: what would change if a layer version became active.

The stored (or any) enterprise frame is classified twice with the same engine and rule
date -- once against the active layers, once with one layer replaced by the candidate
version -- and every enterprise whose basin, region, park or verdict differs is listed
(district and city too when a district layer is replaced). Nothing is switched; the
caller activates the version afterwards (``--apply``).

Outputs (:func:`write_impact`): ``impact.csv`` (machine columns), ``impact.xlsx`` (Chinese
headers: 汇总 summary and 变化企业 list), and ``impact.geojson`` -- the changed enterprises
as points plus the areas the candidate gains and loses as polygons, for the map.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.classify import classify
from geo.rules import apply_rules
from layers import registry, versions
from layers.build._common import area_km2
from layers.importer import candidate_frame
from layers.versions import BUNDLED

__all__ = ["COMPARED", "ImpactReport", "candidate_group", "impact", "write_impact"]

logger = logging.getLogger(__name__)

#: Columns compared, per kind of the replaced layer.
COMPARED: Final[dict[str, tuple[str, ...]]] = {
    "basin": ("basin_id", "region_id", "park_id", "verdict"),
    "region": ("basin_id", "region_id", "park_id", "verdict"),
    "park": ("basin_id", "region_id", "park_id", "verdict"),
    "district": ("city", "district", "basin_id", "region_id", "park_id", "verdict"),
}
_KEEP: Final = ("fid", "row", "uscc", "name", "industry_id", "industry", "address", "lon", "lat")
_HEADERS_ZH: Final = {
    "fid": "要素号", "row": "名录行号", "uscc": "统一社会信用代码", "name": "企业名称",
    "industry": "行业", "address": "地址", "lon": "经度", "lat": "纬度",
    "changed": "变化项", "review_before": "原需复核", "review_after": "新需复核",
}
_FIELD_ZH: Final = {"city": "地级市", "district": "区县", "basin_id": "流域",
                    "region_id": "区域", "park_id": "园区", "verdict": "处置结论"}


@dataclass
class ImpactReport:
    """Differences between the active layers and a candidate version, per enterprise."""

    layer_id: str
    kind: str
    from_version: str
    to_version: str
    as_of: str
    enterprises: int
    changes: gpd.GeoDataFrame
    counts: dict[str, int]
    transitions: dict[str, dict[str, int]]
    review_only: int
    gained: Any
    lost: Any
    versions_before: list[str] = field(default_factory=list)
    versions_after: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """Number of enterprises with at least one compared column changed."""
        return len(self.changes)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no rows)."""
        return {
            "layer_id": self.layer_id, "kind": self.kind,
            "from_version": self.from_version, "to_version": self.to_version,
            "as_of": self.as_of, "enterprises": self.enterprises, "changed": self.changed,
            "counts": self.counts, "transitions": self.transitions,
            "review_only": self.review_only,
            "gained_km2": round(_km2(self.gained), 3), "lost_km2": round(_km2(self.lost), 3),
            "versions_before": self.versions_before, "versions_after": self.versions_after,
        }

    def to_dict(self, rows: int | None = None) -> dict[str, Any]:
        """Summary plus the changed enterprises (first ``rows``)."""
        frame = self.changes.drop(columns=self.changes.geometry.name)
        if rows is not None:
            frame = frame.head(rows)
        out = self.summary()
        out["changes"] = json.loads(frame.to_json(orient="records", force_ascii=False))
        return out

    def geojson(self) -> dict[str, Any]:
        """Changed enterprises (points) and gained/lost areas (polygons), WGS84."""
        feats: list[dict[str, Any]] = []
        for change, geom in (("gained", self.gained), ("lost", self.lost)):
            if geom is not None and not shapely.is_empty(geom):
                feats.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(
                    shapely.set_precision(geom, 1e-6))),
                    "properties": {"change": change, "layer_id": self.layer_id,
                                   "area_km2": round(_km2(geom), 3)}})
        props = self.changes.drop(columns=self.changes.geometry.name)
        records = json.loads(props.to_json(orient="records", force_ascii=False))
        for rec, geom in zip(records, self.changes.geometry.values, strict=True):
            rec["change"] = "enterprise"
            feats.append({"type": "Feature", "properties": rec,
                          "geometry": json.loads(shapely.to_geojson(geom))})
        return {"type": "FeatureCollection", "name": f"impact_{self.layer_id}",
                "summary": self.summary(), "features": feats}


def _km2(geom: Any) -> float:
    if geom is None or shapely.is_empty(geom):
        return 0.0
    return float(area_km2(np.array([geom], dtype=object))[0])


def candidate_group(layer_id: str, version: str) -> tuple[str, gpd.GeoDataFrame, list[str]]:
    """The kind, the group frame of that kind with ``layer_id`` at ``version``, and labels.

    Raises
    ------
    layers.versions.VersionError
        If the version does not exist.
    """
    frame = candidate_frame(layer_id, version)
    infos = registry.list_layers()
    try:
        kind = registry.layer_info(layer_id).kind
    except LookupError:
        kind = versions.get_version(layer_id, version).kind
    frames, labels = [], []
    present = False
    for info in infos:
        if info.kind != kind or info.version is None:
            continue
        if info.id == layer_id:
            frames.append(frame)
            labels.append(f"{layer_id}@{version}")
            present = True
        else:
            frames.append(registry.load_layer(info.id))
            labels.append(f"{info.id}@{info.version}")
    if not present:
        frames.append(frame)
        labels.append(f"{layer_id}@{version}")
    group = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    return kind, group, labels


def _classified(gdf: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame] | None,
                as_of: date | None, units: pd.DataFrame | None) -> gpd.GeoDataFrame:
    return apply_rules(classify(gdf, layers=layers), units=units, as_of=as_of)


def _transitions(before: pd.Series, after: pd.Series) -> dict[str, int]:
    pairs = (before.fillna("").astype(str).replace("", "—") + " → "
             + after.fillna("").astype(str).replace("", "—"))
    return {str(k): int(v) for k, v in pairs.value_counts().items()}


def impact(
    enterprises: gpd.GeoDataFrame,
    layer_id: str,
    version: str,
    *,
    as_of: date | None = None,
    units: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImpactReport:
    """Classify ``enterprises`` against the active layers and against ``layer_id@version``.

    Parameters
    ----------
    enterprises
        EPSG:4326 points with the columns the engine reads (``industry_id``, optional
        ``geocode_precision``, ``park_claimed``, rule attributes); e.g. the stored list.
    layer_id, version
        The candidate (``bundled`` for the shipped geometry).
    as_of
        Rule date for both runs (default today).
    units
        Equipment units of these enterprises (``PipelineResult.units``, joined by ``row``),
        so per-unit rules (Table 5, energy) take part in both verdicts; without them only
        enterprise-level rules do.
    progress
        Called with a step name before each run.

    Returns
    -------
    ImpactReport
    """
    step = progress or (lambda _s: None)
    kind, group, labels_after = candidate_group(layer_id, version)
    labels_before = list(registry.shared_group(kind).attrs.get("layer_versions", []))
    try:
        from_version = registry.layer_info(layer_id).version or BUNDLED
    except LookupError:
        from_version = "(none)"
    base = enterprises.reset_index(drop=True)
    step("before")
    before = _classified(base, None, as_of, units)
    step("after")
    after = _classified(base, {kind: group}, as_of, units)
    cols = COMPARED[kind]
    diff = np.zeros(len(base), dtype=bool)
    per_col: dict[str, np.ndarray] = {}
    for c in cols:
        per_col[c] = (before[c].fillna("").astype(str).to_numpy()
                      != after[c].fillna("").astype(str).to_numpy())
        diff |= per_col[c]
    review_b = before["needs_review"].fillna(False).to_numpy(bool)
    review_a = after["needs_review"].fillna(False).to_numpy(bool)
    review_only = int(((review_b != review_a) & ~diff).sum())
    keep = [c for c in _KEEP if c in base.columns]
    rows = np.flatnonzero(diff)
    out = pd.DataFrame({c: base[c].to_numpy()[rows] for c in keep})
    for c in cols:
        out[f"{c}_before"] = before[c].to_numpy()[rows]
        out[f"{c}_after"] = after[c].to_numpy()[rows]
    out["changed"] = [";".join(c for c in cols if per_col[c][r]) for r in rows]
    out["review_before"] = review_b[rows]
    out["review_after"] = review_a[rows]
    changes = gpd.GeoDataFrame(out, geometry=base.geometry.to_numpy()[rows], crs="EPSG:4326")
    old = (registry.load_layer(layer_id) if from_version != "(none)" else None)
    new = candidate_frame(layer_id, version)
    old_u = shapely.union_all(old.geometry.to_numpy()) if old is not None else shapely.Polygon()
    new_u = shapely.union_all(new.geometry.to_numpy())
    report = ImpactReport(
        layer_id=layer_id, kind=kind, from_version=from_version, to_version=version,
        as_of=(as_of or date.today()).isoformat(), enterprises=len(base), changes=changes,
        counts={c: int(per_col[c].sum()) for c in cols},
        transitions={c: _transitions(before[c][per_col[c]], after[c][per_col[c]])
                     for c in cols if per_col[c].any()},
        review_only=review_only,
        gained=shapely.difference(new_u, old_u), lost=shapely.difference(old_u, new_u),
        versions_before=labels_before, versions_after=labels_after,
    )
    logger.info("impact %s %s -> %s: %d of %d enterprises change", layer_id, from_version,
                version, report.changed, report.enterprises)
    return report


# --------------------------------------------------------------------------- writing
def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _zh_frame(report: ImpactReport) -> pd.DataFrame:
    from layers.catalog import verdict_labels

    labels = verdict_labels("zh")
    titles = {i.id: i.title_zh for i in registry.list_layers()}
    frame = report.changes.drop(columns=report.changes.geometry.name).copy()
    for c in COMPARED[report.kind]:
        for side in ("before", "after"):
            col = f"{c}_{side}"
            if c == "verdict":
                frame[col] = frame[col].map(lambda v: labels.get(v, v))
            elif c.endswith("_id"):
                frame[col] = frame[col].map(lambda v: titles.get(v, v) if v else "")
    frame["changed"] = frame["changed"].map(
        lambda s: "、".join(_FIELD_ZH.get(x, x) for x in s.split(";") if x))
    rename = dict(_HEADERS_ZH)
    for c in COMPARED[report.kind]:
        rename[f"{c}_before"] = f"原{_FIELD_ZH[c]}"
        rename[f"{c}_after"] = f"新{_FIELD_ZH[c]}"
    frame = frame.drop(columns=[c for c in ("industry_id",) if c in frame.columns])
    return frame.rename(columns=rename)


def _summary_rows(report: ImpactReport) -> pd.DataFrame:
    s = report.summary()
    rows = [
        ("图层", report.layer_id),
        ("现行版本", s["from_version"]),
        ("候选版本", s["to_version"]),
        ("规则日期", s["as_of"]),
        ("企业总数", s["enterprises"]),
        ("结果变化的企业", s["changed"]),
        ("仅复核标记变化", s["review_only"]),
        ("候选版本新增面积（km²）", s["gained_km2"]),
        ("候选版本减少面积（km²）", s["lost_km2"]),
        ("现行各图层版本", "; ".join(s["versions_before"])),
        ("候选各图层版本", "; ".join(s["versions_after"])),
    ]
    for c, n in s["counts"].items():
        rows.append((f"{_FIELD_ZH.get(c, c)}变化", n))
    for c, trans in s["transitions"].items():
        for k, n in trans.items():
            rows.append((f"{_FIELD_ZH.get(c, c)}：{k}", n))
    return pd.DataFrame(rows, columns=["项目", "值"])


def write_impact(report: ImpactReport, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``impact.csv``, ``impact.xlsx`` and ``impact.geojson`` (atomically) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = report.changes.drop(columns=report.changes.geometry.name)
    paths = {
        "csv": _atomic(out / "impact.csv",
                       lambda p: table.to_csv(p, index=False, encoding="utf-8-sig")),
        "geojson": _atomic(out / "impact.geojson", lambda p: p.write_text(
            json.dumps(report.geojson(), ensure_ascii=False), encoding="utf-8")),
    }

    def xlsx(p: Path) -> None:
        with pd.ExcelWriter(p, engine="openpyxl") as xw:
            _summary_rows(report).to_excel(xw, sheet_name="汇总", index=False)
            _zh_frame(report).to_excel(xw, sheet_name="变化企业", index=False)

    paths["xlsx"] = _atomic(out / "impact.xlsx", xlsx)
    return paths
