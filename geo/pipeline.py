"""The end-to-end pipeline: registry file in, classified enterprises with verdicts out.

    read_registry ──► geocode ──► classify ──► apply_rules ──► PipelineResult

Each step is a public function of its own module; this module only wires them, collects
the rows each step could not use into one rejected frame, and answers point look-ups
(:func:`locate`) with the same classification and rules as a full run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.classify import classify, classify_point
from geo.crs import normalise_crs_name, to_wgs84
from geo.errors import InvalidQueryError
from geo.geocoding import BaseGeocoder, geocode
from geo.ingest import read_registry
from geo.rules import apply_rules, rules_for_point
from geo.schema import CLASSIFY_COLUMNS, ENFORCEMENT_COLUMNS, REJECTED_COLUMNS

__all__ = ["PipelineResult", "run_pipeline", "classify_frame", "locate", "SAMPLE_REGISTRY"]

log = logging.getLogger(__name__)

#: The bundled synthetic registry (see ``layers/data/sample/README.md``).
SAMPLE_REGISTRY = (
    Path(__file__).resolve().parent.parent / "layers" / "data" / "sample"
    / "registry_synthetic.csv"
)

Progress = Callable[[str], None]


@dataclass
class PipelineResult:
    """What a run produced.

    Attributes
    ----------
    enterprises
        One row per accepted enterprise, EPSG:4326 points, ``ENFORCEMENT_COLUMNS`` order.
    rejected
        One row per registry row that could not be used, with its reason.
    source_rows
        Number of data rows in the registry file.
    source_sha256
        Hash of the registry file's bytes (identifies a load).
    """

    enterprises: gpd.GeoDataFrame
    rejected: pd.DataFrame
    source_rows: int
    source_sha256: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def verdict_counts(self) -> dict[str, int]:
        """Number of enterprises per verdict id."""
        return {str(k): int(v) for k, v in self.enterprises["verdict"].value_counts().items()}


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
            "reason": "outside_guangdong",
            "message": [
                f"第{r}行：坐标 ({x:.5f}, {y:.5f}) 不在广东省任何区县内 / "
                f"row {r}: point ({x:.5f}, {y:.5f}) lies in no Guangdong district; "
                "expected a location inside Guangdong (check the coordinate system column)"
                for r, x, y in zip(rej["row"], rej["lon"], rej["lat"], strict=True)
            ],
        },
        columns=list(REJECTED_COLUMNS),
    )
    return gdf.loc[~outside], rejected


def classify_frame(
    gdf: gpd.GeoDataFrame, *, as_of: date | None = None
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Classify geocoded enterprises and apply the rules.

    Parameters
    ----------
    gdf
        Geocoded enterprises (EPSG:4326 points, ingest and geocode columns).
    as_of
        Date at which rules are evaluated (default: today).

    Returns
    -------
    tuple
        The enforcement frame (``ENFORCEMENT_COLUMNS``) and the rows rejected because
        they fall in no Guangdong district.
    """
    classified = classify(gdf)
    inside, rejected = _outside_province(classified)
    ruled = apply_rules(inside, as_of=as_of)
    columns = [c for c in ENFORCEMENT_COLUMNS if c in ruled.columns]
    extra = [c for c in ruled.columns if c not in columns and c != "geometry"]
    out = ruled[columns + [c for c in extra if c.startswith("attr_")] + ["geometry"]]
    return out.reset_index(drop=True), rejected


def run_pipeline(
    source: str | Path | IO[bytes] | None = None,
    *,
    filename: str | None = None,
    geocoder: str | BaseGeocoder = "offline",
    as_of: date | None = None,
    progress: Progress | None = None,
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
        Called with a step name before each step (the CLI shows it).

    Returns
    -------
    PipelineResult
    """
    import time

    source = SAMPLE_REGISTRY if source is None else source
    step = progress or (lambda _name: None)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    step("ingest")
    ingested = read_registry(source, filename=filename)
    timings["ingest"] = time.perf_counter() - t

    t = time.perf_counter()
    step("geocode")
    located, geo_rejected = geocode(ingested.accepted, provider=geocoder)
    timings["geocode"] = time.perf_counter() - t

    t = time.perf_counter()
    step("classify")
    enterprises, outside = classify_frame(located, as_of=as_of)
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
        "registry: %d rows, %d accepted, %d rejected",
        ingested.source_rows, len(enterprises), len(rejected),
    )
    return PipelineResult(
        enterprises=enterprises,
        rejected=rejected[list(REJECTED_COLUMNS)],
        source_rows=ingested.source_rows,
        source_sha256=_sha256(source),
        timings=timings,
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
