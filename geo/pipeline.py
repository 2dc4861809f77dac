"""The end-to-end pipeline: registry file in, classified enterprises with verdicts out.

    read_registry ──► geocode ──► classify ──► evaluate_rules ──► PipelineResult
    read_equipment ──► join_units ─────────────────┘   (设备清单: 2nd XLSX sheet or own file)

Each step is a public function of its own module; this module only wires them, collects
the rows each step could not use into one rejected frame, and answers point look-ups
(:func:`locate`) with the same classification and rules as a full run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Final, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.classify import classify, classify_point
from geo.crs import normalise_crs_name, to_wgs84
from geo.errors import InvalidQueryError
from geo.geocoding import BaseGeocoder, geocode
from geo.equipment import equipment_sheet_name, join_units, read_equipment
from geo.ingest import issue_message, numeric_columns, read_registry, registry_spec
from geo.provenance import Provenance
from geo.rules import evaluate_rules, rules_for_point, unit_result_frame
from geo.schema import (
    CLASSIFY_COLUMNS,
    ENFORCEMENT_COLUMNS,
    OPTIONAL_OUTPUT_COLUMNS,
    REJECTED_COLUMNS,
    UNIT_COLUMNS,
)

__all__ = [
    "PipelineResult",
    "ProgressFn",
    "STAGES",
    "run_pipeline",
    "classify_frame",
    "locate",
    "SAMPLE_REGISTRY",
    "SAMPLE_EQUIPMENT",
    "COORD_DECIMALS",
]

log = logging.getLogger(__name__)

#: The bundled synthetic registry (see ``layers/data/sample/README.md``).
SAMPLE_REGISTRY = (
    Path(__file__).resolve().parent.parent / "layers" / "data" / "sample"
    / "registry_synthetic.csv"
)
#: The bundled synthetic equipment inventory of the sample registry.
SAMPLE_EQUIPMENT = SAMPLE_REGISTRY.with_name("equipment_synthetic.csv")

#: Stages :func:`run_pipeline` reports to its ``progress`` callback, in order.
STAGES: Final = ("read", "geocode", "classify", "rules")

#: Decimals of the converted WGS84 lon/lat columns (1e-7 degree is about 1 cm).
COORD_DECIMALS: Final = 7


class ProgressFn(Protocol):
    """Progress callback, told when each stage starts and ends.

    ``progress(stage, rows)`` when a stage starts (``rows`` entering it, ``None`` when not
    known yet) and ``progress(stage, rows, done=True)`` when it ends (``rows`` coming out).
    """

    def __call__(self, stage: str, rows: int | None = None, *, done: bool = False) -> None:
        """Report one stage event."""


def _no_progress(stage: str, rows: int | None = None, *, done: bool = False) -> None:
    del stage, rows, done


@dataclass
class PipelineResult:
    """What a run produced.

    Attributes
    ----------
    enterprises
        One row per accepted enterprise, EPSG:4326 points: ``ENFORCEMENT_COLUMNS``, then
        ``industry_code`` and the registry's numeric attributes (NaN where not given).
    rejected
        One row per registry row that could not be used, with its reason.
    source_rows
        Number of data rows in the registry file.
    source_sha256
        Hash of the registry file's bytes (identifies a load).
    provenance
        Registry file, rule date, catalog and layer versions, time and counts of the run.
    units
        One row per equipment unit of an accepted enterprise (``UNIT_COLUMNS`` + measures):
        its own verdict, rules, reasons, deadline and status.
    equipment_rows
        Data rows of the equipment inventory (0 when there is none);
        ``units from the inventory + its rejected rows == equipment_rows``.
    """

    enterprises: gpd.GeoDataFrame
    rejected: pd.DataFrame
    source_rows: int
    source_sha256: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    provenance: Provenance | None = None
    units: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(UNIT_COLUMNS)))
    equipment_rows: int = 0

    @property
    def verdict_counts(self) -> dict[str, int]:
        """Number of enterprises per verdict id, strongest verdict first."""
        return _verdict_counts(self.enterprises)


def _verdict_counts(gdf: pd.DataFrame) -> dict[str, int]:
    from layers.catalog import rules

    counts = gdf["verdict"].value_counts()
    order = [v.id for v in rules().verdicts]
    order += sorted(str(v) for v in counts.index if v not in order)
    return {v: int(counts[v]) for v in order if v in counts.index}


def _sha256(source: str | Path | IO[bytes]) -> str:
    if isinstance(source, (str, Path)):
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()
    pos = source.tell()
    source.seek(0)  # the whole file, wherever the readers left the stream
    digest = hashlib.sha256(source.read()).hexdigest()
    source.seek(pos)
    return digest


def _outside_province(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Split off points that fall in no Guangdong district (sea, neighbouring province)."""
    outside = gdf["district"].fillna("") == ""
    rej = gdf.loc[outside]
    rejected = pd.DataFrame(
        {
            "row": rej["row"].to_numpy(),
            "uscc": rej["uscc"].to_numpy(),
            "name": rej["name"].to_numpy(),
            "field": "经度/纬度",
            "reason": "outside_districts",
            "message": [
                issue_message("outside_districts", row=r, field="经度/纬度",
                              value=f"{x:.5f},{y:.5f}")
                for r, x, y in zip(rej["row"], rej["lon"], rej["lat"], strict=True)
            ],
        },
        columns=list(REJECTED_COLUMNS),
    )
    return gdf.loc[~outside], rejected


def _output_frame(ruled: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Select and order the output columns; round lon/lat.

    Enforcement columns, optional output columns, every registry numeric attribute (NaN
    where the registry has none), the registry attributes rules read that the registry gave
    (registry.toml [attributes]; stores keep them for in-database re-runs, see
    ``api.store.postgis.store_rule_inputs``), ``attr_*`` columns, geometry.
    """
    columns = [c for c in ENFORCEMENT_COLUMNS if c in ruled.columns]
    optional = [c for c in OPTIONAL_OUTPUT_COLUMNS if c in ruled.columns]
    numeric = list(numeric_columns())
    attrs = [c for c in registry_spec().get("attributes", {}) if c in ruled.columns]
    extra = [*attrs, *(c for c in ruled.columns if c.startswith("attr_"))]
    out = ruled[[*columns, *optional, *[c for c in numeric if c in ruled.columns], *extra,
                 "geometry"]].copy()
    for col in numeric:
        if col not in out.columns:
            out[col] = np.nan
    for col in ("lon", "lat"):
        if col in out.columns:
            out[col] = out[col].astype("float64").round(COORD_DECIMALS)
    order = [*columns, *optional, *numeric, *extra, "geometry"]
    return out[order].reset_index(drop=True)


def classify_frame(
    gdf: gpd.GeoDataFrame, *, as_of: date | None = None, progress: ProgressFn | None = None,
    units: pd.DataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Classify geocoded enterprises and apply the rules.

    Parameters
    ----------
    gdf
        Geocoded enterprises (EPSG:4326 points, ingest and geocode columns).
    as_of
        Date at which rules are evaluated (default: today).
    progress
        Told when classification and rules start and end (see :class:`ProgressFn`).
    units
        Equipment units joined to ``gdf`` by ``enterprise_row`` (see
        :func:`geo.equipment.join_units`); their per-unit results are in
        ``out.attrs["units"]`` of the returned frame.

    Returns
    -------
    tuple
        The enforcement frame (``ENFORCEMENT_COLUMNS``, then ``industry_code`` and the
        registry's numeric attributes) and the rows rejected because they fall in no
        Guangdong district.
    """
    step = progress or _no_progress
    step("classify", len(gdf))
    classified = classify(gdf)
    inside, rejected = _outside_province(classified)
    step("classify", len(inside), done=True)
    step("rules", len(inside))
    result = evaluate_rules(inside, units, as_of=as_of)
    ruled = result.enterprises
    step("rules", len(ruled), done=True)
    out = _output_frame(ruled)
    out.attrs["units"] = unit_result_frame(result.units, out)
    return out, rejected


def _source_name(source: str | Path | IO[bytes], filename: str | None) -> str:
    if filename:
        return Path(filename).name
    if isinstance(source, (str, Path)):
        return Path(source).name
    return Path(str(getattr(source, "name", "") or "")).name


def _read_units(
    source: str | Path | IO[bytes], equipment: str | Path | IO[bytes] | None,
    filename: str | None,
) -> tuple[pd.DataFrame | None, pd.DataFrame, int]:
    """The equipment inventory: its own file, else the registry XLSX's equipment sheet."""
    if equipment is not None:
        res = read_equipment(equipment)
        return res.units, res.rejected, res.source_rows
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    else:  # the registry reader has consumed the stream: read it again from the start
        source.seek(0)
        data = source.read()
    sheet = equipment_sheet_name(data)
    if sheet is None:
        return None, pd.DataFrame(columns=list(REJECTED_COLUMNS)), 0
    res = read_equipment(data, filename=filename or "registry.xlsx", sheet=sheet)
    return res.units, res.rejected, res.source_rows


def _orphan_units(units: pd.DataFrame, accepted_rows: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off units whose enterprise was rejected after ingest (geocoding, outside)."""
    lost = ~units["enterprise_row"].isin(accepted_rows)
    gone = units[lost & units["source"].astype(str).eq("equipment")]
    rejected = pd.DataFrame(
        {
            "row": gone["source_row"].to_numpy(dtype="int64"),
            "uscc": gone["uscc"].to_numpy(dtype=object),
            "name": gone["name"].to_numpy(dtype=object),
            "field": "统一社会信用代码",
            "reason": "unit_enterprise_rejected",
            "message": [
                issue_message("unit_enterprise_rejected", row=r, field="", value=e,
                              accepted="", sheet="设备清单", bounds="")
                for r, e in zip(gone["source_row"], gone["enterprise_row"], strict=True)
            ],
            "source": "equipment",
        },
        columns=list(REJECTED_COLUMNS),
    )
    return units[~lost], rejected


def run_pipeline(
    source: str | Path | IO[bytes] | None = None,
    *,
    equipment: str | Path | IO[bytes] | None = None,
    filename: str | None = None,
    geocoder: str | BaseGeocoder = "offline",
    as_of: date | None = None,
    progress: ProgressFn | None = None,
) -> PipelineResult:
    """Run ingest, geocoding, classification and rules on a registry file.

    Parameters
    ----------
    source
        Path or binary file object of a CSV/XLSX registry; default the bundled sample (with
        its synthetic equipment inventory).
    equipment
        The equipment inventory (设备清单) as its own CSV/XLSX; default: the registry XLSX's
        equipment sheet (equipment.toml [sheet] names, else its second sheet), if any.
    filename
        Name used to pick the format when ``source`` is a file object.
    geocoder
        Geocoding provider name or instance for address-only rows.
    as_of
        Date at which rules are evaluated (default: today).
    progress
        Told when each of :data:`STAGES` starts and ends, with row counts (the CLI shows
        them); see :class:`ProgressFn`.

    Returns
    -------
    PipelineResult

    Raises
    ------
    RegistryError
        If the file cannot be read as a registry (binary, no data rows, missing columns).
    """
    if source is None:
        source = SAMPLE_REGISTRY
        if equipment is None and SAMPLE_EQUIPMENT.exists():
            equipment = SAMPLE_EQUIPMENT
    step = progress or _no_progress
    day = as_of or date.today()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    step("read")
    ingested = read_registry(source, filename=filename)
    step("read", ingested.source_rows, done=True)
    inventory, unit_rejected, equipment_rows = _read_units(source, equipment, filename)
    units = ingested.units if ingested.units is not None else None
    if inventory is not None:
        joined, join_rejected = join_units(inventory, ingested.accepted)
        unit_rejected = pd.concat([unit_rejected, join_rejected], ignore_index=True)
        units = joined if units is None or not len(units) else pd.concat(
            [units, joined], ignore_index=True)
    timings["ingest"] = time.perf_counter() - t

    t = time.perf_counter()
    step("geocode", len(ingested.accepted))
    located, geo_rejected = geocode(ingested.accepted, provider=geocoder)
    step("geocode", len(located), done=True)
    timings["geocode"] = time.perf_counter() - t

    t = time.perf_counter()
    enterprises, outside = classify_frame(
        located, as_of=day, progress=step,
        units=None if units is None else units[units["enterprise_row"].isin(located["row"])],
    )
    orphans = pd.DataFrame(columns=list(REJECTED_COLUMNS))
    if units is not None and len(units):
        _kept, orphans = _orphan_units(units, enterprises["row"])
    timings["classify_and_rules"] = time.perf_counter() - t

    registry_rejected = [f for f in (ingested.rejected, geo_rejected, outside) if len(f)]
    for f in registry_rejected:
        f["source"] = f["source"].fillna("registry") if "source" in f else "registry"
    rejected = (
        pd.concat(
            [*registry_rejected, *(f for f in (unit_rejected, orphans) if len(f))]
            or [pd.DataFrame(columns=list(REJECTED_COLUMNS))],
            ignore_index=True,
        )
        .assign(_src=lambda d: d["source"].ne("registry"))
        .sort_values(["_src", "row"], kind="stable")
        .drop(columns="_src")
        .reset_index(drop=True)
    )
    log.info(
        "%d registry rows: %d enterprises listed, %d rows not usable",
        ingested.source_rows, len(enterprises), len(rejected),
    )
    if len(enterprises) == 0:
        log.info("no registry row could be used; every row is in the rejected list")
    sha = _sha256(source)
    provenance = Provenance.now(
        registry_name=_source_name(source, filename),
        registry_sha256=sha,
        as_of=day,
        accepted=len(enterprises),
        rejected=len(rejected),
        source_rows=ingested.source_rows,
        verdict_counts=_verdict_counts(enterprises),
        note="bundled synthetic sample registry" if source == SAMPLE_REGISTRY else "",
    )
    return PipelineResult(
        enterprises=enterprises,
        rejected=rejected[list(REJECTED_COLUMNS)],
        source_rows=ingested.source_rows,
        source_sha256=sha,
        timings=timings,
        provenance=provenance,
        units=enterprises.attrs.pop("units"),
        equipment_rows=equipment_rows,
    )


def locate(
    lon: float, lat: float, crs: str = "WGS84", *, as_of: date | None = None
) -> dict[str, Any]:
    """What lies at a point and what the plan requires there of each of the 12 industries.

    Parameters
    ----------
    lon, lat
        The point, in degrees.
    crs
        WGS84 (default), CGCS2000, GCJ02 or BD09.
    as_of
        Date at which rules are evaluated (default: today).

    Returns
    -------
    dict
        ``{"input": ..., "location": {...}, "industries": [...]}`` (JSON-serialisable);
        ``industries`` holds one entry per industry from :func:`geo.rules.rules_for_point`.

    Raises
    ------
    InvalidQueryError
        If the point is not finite or lies in no Guangdong district.
    """
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise InvalidQueryError(f"lon/lat must be finite numbers, got ({lon}, {lat}).")
    crs_name = normalise_crs_name(crs)
    wlon, wlat = to_wgs84(np.array([lon], dtype=float), np.array([lat], dtype=float), crs_name)
    attrs = classify_point(float(wlon[0]), float(wlat[0]))
    if not attrs.get("district"):
        raise InvalidQueryError(
            f"Point ({lon}, {lat}) in {crs_name} lies in no Guangdong district; "
            "expected a location inside Guangdong (check lon/lat order and the crs)."
        )
    location = {
        "lon": round(float(wlon[0]), 7),
        "lat": round(float(wlat[0]), 7),
        **{k: attrs[k] for k in CLASSIFY_COLUMNS},
    }
    return {
        "input": {"lon": lon, "lat": lat, "crs": crs_name},
        "location": location,
        "industries": rules_for_point(attrs, as_of=as_of),
    }
