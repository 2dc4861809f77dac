"""The end-to-end pipeline: registry file in, classified enterprises with verdicts out.

    read_registry ──► geocode ──► classify ──► apply_rules ──► PipelineResult

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
from geo.ingest import issue_message, numeric_columns, read_registry
from geo.provenance import Provenance
from geo.rules import apply_rules, rules_for_point
from geo.schema import (
    CLASSIFY_COLUMNS,
    ENFORCEMENT_COLUMNS,
    OPTIONAL_OUTPUT_COLUMNS,
    REJECTED_COLUMNS,
)

__all__ = [
    "PipelineResult",
    "ProgressFn",
    "STAGES",
    "run_pipeline",
    "classify_frame",
    "locate",
    "SAMPLE_REGISTRY",
    "COORD_DECIMALS",
]

log = logging.getLogger(__name__)

#: The bundled synthetic registry (see ``layers/data/sample/README.md``).
SAMPLE_REGISTRY = (
    Path(__file__).resolve().parent.parent / "layers" / "data" / "sample"
    / "registry_synthetic.csv"
)

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
    """

    enterprises: gpd.GeoDataFrame
    rejected: pd.DataFrame
    source_rows: int
    source_sha256: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    provenance: Provenance | None = None

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
    where the registry has none), ``attr_*`` columns, geometry.
    """
    columns = [c for c in ENFORCEMENT_COLUMNS if c in ruled.columns]
    optional = [c for c in OPTIONAL_OUTPUT_COLUMNS if c in ruled.columns]
    numeric = list(numeric_columns())
    extra = [c for c in ruled.columns if c.startswith("attr_")]
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
    gdf: gpd.GeoDataFrame, *, as_of: date | None = None, progress: ProgressFn | None = None
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
    ruled = apply_rules(inside, as_of=as_of)
    step("rules", len(ruled), done=True)
    return _output_frame(ruled), rejected


def _source_name(source: str | Path | IO[bytes], filename: str | None) -> str:
    if filename:
        return Path(filename).name
    if isinstance(source, (str, Path)):
        return Path(source).name
    return Path(str(getattr(source, "name", "") or "")).name


def run_pipeline(
    source: str | Path | IO[bytes] | None = None,
    *,
    filename: str | None = None,
    geocoder: str | BaseGeocoder = "offline",
    as_of: date | None = None,
    progress: ProgressFn | None = None,
) -> PipelineResult:
    """Run ingest, geocoding, classification and rules on a registry file.

    Parameters
    ----------
    source
        Path or binary file object of a CSV/XLSX registry; default the bundled sample.
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
    source = SAMPLE_REGISTRY if source is None else source
    step = progress or _no_progress
    day = as_of or date.today()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    step("read")
    ingested = read_registry(source, filename=filename)
    step("read", ingested.source_rows, done=True)
    timings["ingest"] = time.perf_counter() - t

    t = time.perf_counter()
    step("geocode", len(ingested.accepted))
    located, geo_rejected = geocode(ingested.accepted, provider=geocoder)
    step("geocode", len(located), done=True)
    timings["geocode"] = time.perf_counter() - t

    t = time.perf_counter()
    enterprises, outside = classify_frame(located, as_of=day, progress=step)
    timings["classify_and_rules"] = time.perf_counter() - t

    rejected = (
        pd.concat(
            [f for f in (ingested.rejected, geo_rejected, outside) if len(f)]
            or [pd.DataFrame(columns=list(REJECTED_COLUMNS))],
            ignore_index=True,
        )
        .sort_values("row", kind="stable")
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
