"""Discharge monitoring: upload (editor), exceedances per period, the two exceedance lists,
the limits with their sources, and a map layer.

* ``POST /monitoring`` -- validate a monitoring file; with ``load=true`` (editor) store the
  rows that match an enterprise. The report lists every unusable row like a registry's.
* ``GET /monitoring/exceedances`` -- counts and ratios per enterprise / pollutant / basin
  and month or quarter (ECHO-DMR style), filtered by basin, city, industry, pollutant.
* ``GET /monitoring/lists`` -- 超标排放企业名单 and 超标排放情节严重企业名单 on a date.
* ``GET /monitoring/limits`` -- limits.toml as a table: value or "unsourced", source.
* ``GET /monitoring/map`` -- GeoJSON points: enterprises with samples, exceedances so far.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from pathlib import PurePath
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from api import casework
from api.routers.cases import _text, records
from api.audit import record_write
from api.routers.deps import (
    ForbiddenError,
    IsoDate,
    KeyRequiredDep,
    ReadDep,
    SettingsDep,
    StoreDep,
)
from api.settings import Role
from api.uploads import check_registry_file
from api.store import FeatureQuery
from api.store.casestore import case_store_for
from geo.errors import InvalidQueryError, RegistryFormatError
from geo.monitoring import (
    attach_enterprises,
    exceedance_list,
    limits_table,
    read_monitoring,
    serious_list,
    summarise,
)
from layers.casework import monitoring_spec

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/monitoring", tags=["monitoring"])

_BY = {
    "enterprise": ("uscc", "name", "basin_id", "city"),
    "pollutant": ("pollutant",),
    "enterprise_pollutant": ("uscc", "name", "basin_id", "pollutant"),
    "basin": ("basin_id",),
    "city": ("city",),
    "industry": ("industry",),
}


@router.post("", summary="Validate (and optionally store) a monitoring file")
def upload(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    caller: KeyRequiredDep,
    file: Annotated[UploadFile, File(description="CSV or XLSX, one measured value per row")],
    load: Annotated[bool, Query(description="store the usable rows (editor key)")] = False,
) -> JSONResponse:
    """Read the file, match its rows to the current enterprise list and report: accepted and
    rejected counts, every rejected row with its row number, field and reason.
    """
    if load and not caller.allows(Role.editor):
        record_write(request, action="monitoring.load", target="monitoring",
                     outcome="denied: ForbiddenError")
        raise ForbiddenError("X-API-Key: load=true needs a key with the editor role.")
    name = PurePath(file.filename or "").name
    if not name.lower().endswith((".csv", ".xlsx")):
        raise RegistryFormatError(f"file: expected a .csv or .xlsx monitoring file, got "
                                  f"'{name[:80] or '(no name)'}'.")
    data = file.file.read()  # bounded while it streamed in (api.limits)
    check_registry_file(name, data, settings)  # decompressed size and rows, before parsing
    result = read_monitoring(data, filename=name)
    matched, unmatched = attach_enterprises(result.accepted,
                                            store.query(FeatureQuery()).features)
    rejected = pd.concat([result.rejected, unmatched], ignore_index=True).sort_values("row")
    keep = result.accepted[result.accepted["row"].isin(matched["row"])]
    report: dict[str, Any] = {
        "source_name": name, "source_rows": result.source_rows, "accepted": len(keep),
        "rejected": len(rejected), "rejected_rows": records(rejected.head(5000)),
        "loaded": None,
    }
    if load:
        batch = case_store_for(store).add_samples(
            keep, loaded_by=caller.name, source_name=name,
            source_sha256=hashlib.sha256(data).hexdigest(), rejected=len(rejected))
        report["loaded"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                            for k, v in batch.items()}
        record_write(request, action="monitoring.load",
                     target=f"batch:{report['loaded'].get('batch_id', '?')}",
                     detail={"source_name": name, "accepted": len(keep),
                             "rejected": len(rejected)})
    return JSONResponse(report, status_code=201 if load else 200)


def _filtered(store: Any, start: date | None, end: date | None,
              filters: dict[str, str | None]) -> pd.DataFrame:
    judged, _ = casework.judged_monitoring(store, start=start, end=end)
    for col, value in filters.items():
        if value:
            judged = judged[judged[col].astype(str).isin(value.split(","))]
    return judged


@router.get("/exceedances", summary="Exceedance counts and ratios per period")
def exceedances(
    store: StoreDep,
    _: ReadDep,
    start: Annotated[IsoDate | None, Query()] = None,
    end: Annotated[IsoDate | None, Query()] = None,
    period: Annotated[Literal["M", "Q"], Query(description="M (month) | Q (quarter)")] = "M",
    by: Annotated[Literal["enterprise", "pollutant", "enterprise_pollutant", "basin", "city",
                          "industry"], Query(description=" | ".join(_BY))] = "enterprise_pollutant",
    basin_id: str | None = None,
    city: str | None = None,
    industry_id: str | None = None,
    pollutant: str | None = None,
) -> JSONResponse:
    """Samples, judged samples, exceedances, exceedance ratio and largest 超标倍数 per group
    and period; ``undetermined`` counts values whose applicable limit is unsourced.
    """
    if by not in _BY:
        raise InvalidQueryError(f"by: expected one of {', '.join(_BY)}, got '{by}'.")
    if period not in ("M", "Q"):
        raise InvalidQueryError(f"period: expected M or Q, got '{period}'.")
    judged = _filtered(store, start, end, {"basin_id": basin_id, "city": city,
                                           "industry_id": industry_id, "pollutant": pollutant})
    table = summarise(judged, period=period, by=_BY[by]) if len(judged) else pd.DataFrame()
    return JSONResponse({"period": period, "by": by, "rows": records(table)})


@router.get("/lists", summary="超标排放企业名单 and 超标排放情节严重企业名单 on a date")
def exceedance_lists(store: StoreDep, _: ReadDep,
                     as_of: Annotated[IsoDate | None, Query()] = None,
                     basin_id: str | None = None) -> JSONResponse:
    """Enterprises with exceedances this year up to ``as_of``, and those meeting a
    criterion of 情节严重 (monitoring.toml [serious], each with its legal basis).
    """
    when = as_of or date.today()
    judged = _filtered(store, None, when, {"basin_id": basin_id})
    spec = monitoring_spec()
    return JSONResponse({
        "as_of": when.isoformat(),
        "exceedance": records(exceedance_list(judged, as_of=when)),
        "serious": records(serious_list(judged, as_of=when)),
        "serious_definition": [c.model_dump() for c in spec.serious],
    })


@router.get("/limits", summary="The limits compared with, each with its source")
def limits(_: ReadDep) -> JSONResponse:
    """limits.toml resolved per standard, pollutant and discharge mode; unsourced gaps
    carry no value.
    """
    return JSONResponse({"limits": records(limits_table())})


@router.get("/map", summary="Monitored enterprises with their exceedances (GeoJSON)",
            response_class=Response,
            responses={200: {"content": {"application/geo+json": {}}}})
def monitoring_map(store: StoreDep, _: ReadDep,
                   as_of: Annotated[IsoDate | None, Query()] = None,
                   basin_id: str | None = None) -> JSONResponse:
    """One point per monitored enterprise: samples and exceedances from 1 January to
    ``as_of``, largest multiple, exceeded pollutants, serious criteria.
    """
    when = as_of or date.today()
    judged = _filtered(store, date(when.year, 1, 1), when, {"basin_id": basin_id})
    feats: list[dict[str, Any]] = []
    if len(judged):
        g = judged.groupby(["uscc", "name", "basin_id", "lon", "lat"], sort=False)
        per = g.agg(samples=("outcome", "size"),
                    exceedances=("outcome", lambda s: int(s.isin(
                        ("exceeds", "exceeds_floor")).sum())),
                    max_multiple=("multiple", "max")).reset_index()
        exc = exceedance_list(judged, as_of=when)
        ser = serious_list(judged, as_of=when)
        per["pollutants"] = _text(per["uscc"].map(exc.set_index("uscc")["pollutants"]
                                                  if len(exc) else {}))
        per["serious"] = _text(per["uscc"].map(ser.set_index("uscc")["criteria_zh"]
                                               if len(ser) else {}))
        for p in records(per):
            lon, lat = p.pop("lon"), p.pop("lat")
            feats.append({"type": "Feature", "geometry": {"type": "Point",
                                                          "coordinates": [lon, lat]},
                          "properties": p})
    return JSONResponse({"type": "FeatureCollection", "as_of": when.isoformat(),
                         "features": feats}, media_type="application/geo+json")


@router.get("/batches", summary="Monitoring uploads")
def batches(store: StoreDep, _: ReadDep) -> JSONResponse:
    """Every stored monitoring upload, newest first."""
    return JSONResponse({"batches": records(case_store_for(store).batches())})
