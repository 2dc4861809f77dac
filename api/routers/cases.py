"""Cases, the plan's lists, its calendar and the report: read by anyone, changed by editors.

* ``GET /cases`` -- case states on ``as_of`` (JSON or GeoJSON for the map), filtered by
  basin, city, district, industry, dimension, status, overdue;
* ``GET /cases/summary`` -- counts per basin / city / industry / dimension;
* ``GET /cases/syncs`` -- registry loads applied to the cases and the verdicts they changed;
* ``GET /cases/{id}`` -- one case on ``as_of`` with its whole history;
* ``POST /cases/{id}/changes`` (editor) -- one status change; ``POST /cases/import``
  (editor) -- a spreadsheet of changes, with a row-level report;
* ``GET /lists``, ``GET /lists/{id}?as_of=&format=xlsx|json`` -- the plan's lists;
* ``GET /calendar?as_of=``, ``POST /calendar/{item}/submissions`` (editor); ``GET /report``.

Write endpoints use the editor-key dependency of :mod:`api.routers.deps`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi import Path as FastPath
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from api import casework
from api.ogc import content_disposition
from api.audit import record_write
from api.routers.deps import EditorDep, IsoDate, ReadDep, SettingsDep, StoreDep
from api.uploads import check_registry_file
from api.store.casestore import case_store_for
from geo.cases import CaseChange, CaseNotFoundError, read_case_changes, summary
from geo.errors import GeoError, InvalidQueryError, RegistryFormatError
from layers.casework import calendar_spec, case_spec

__all__ = ["router", "records", "CaseChangeIn", "FILTERS"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["cases"])

#: Query parameters that filter case states, and the state column each one tests.
FILTERS: dict[str, str] = {
    "basin_id": "basin_id", "region_id": "region_id", "city": "city", "district": "district",
    "industry_id": "industry_id", "industry": "industry", "status": "status",
    "verdict": "verdict",
}
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
AsOf = Annotated[IsoDate | None, Query(description="state on this date (YYYY-MM-DD); default today")]


def _cell(v: Any) -> Any:
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (datetime, pd.Timestamp)):
        return pd.Timestamp(v).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalar
        return v.item()
    if v is pd.NA:
        return None
    return v


class UnknownIdError(GeoError, KeyError):
    """An id in the path that names nothing."""

    http_status = 404

    def __str__(self) -> str:
        return self.msg


def _known(value: str, ids: list[str], param: str) -> None:
    if value not in ids:
        raise UnknownIdError(f"{param}: no '{value[:60]}'; expected one of {', '.join(ids)}.")


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: ISO dates, None for missing, Python scalars."""
    cols = list(df.columns)
    return [{c: _cell(v) for c, v in zip(cols, row, strict=True)}
            for row in df.itertuples(index=False, name=None)]


def _filter(state: pd.DataFrame, params: dict[str, str | None], dimension: str | None,
            overdue: bool | None) -> pd.DataFrame:
    mask = pd.Series(True, index=state.index)
    for key, col in FILTERS.items():
        value = params.get(key)
        if value:
            mask &= state[col].astype(str).isin(value.split(","))
    if dimension:
        if dimension not in case_spec().dimensions:
            raise InvalidQueryError(
                f"dimension: expected one of {', '.join(case_spec().dimensions)}, "
                f"got '{dimension}'.")
        mask &= state["dimensions"].astype(str).str.split(";").map(lambda d: dimension in d)
    if overdue is not None:
        mask &= state["overdue"].eq(overdue)
    return state[mask]


def _geojson(df: pd.DataFrame) -> dict[str, Any]:
    colours = {s.id: s.colour for s in case_spec().statuses.values()}
    props = df.drop(columns=[c for c in ("lon", "lat") if c in df]).assign(
        colour=df["status"].map(colours))
    feats = [
        {"type": "Feature", "id": int(p["case_id"]),
         "geometry": None if lon is None or lat is None else
         {"type": "Point", "coordinates": [lon, lat]},
         "properties": p}
        for p, lon, lat in zip(records(props), map(_cell, df["lon"]), map(_cell, df["lat"]),
                               strict=True)
    ]
    return {"type": "FeatureCollection", "features": feats}


def _with_exceedances(store: Any, state: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Add ``exceedances`` and ``serious`` (year to ``as_of``) per case's credit code."""
    from geo.monitoring import exceedance_list, serious_list

    judged, _ = casework.judged_monitoring(store, end=as_of)
    exc = exceedance_list(judged, as_of=as_of)
    ser = serious_list(judged, as_of=as_of)
    n = exc.set_index("uscc")["exceedances"] if len(exc) else pd.Series(dtype="int64")
    text = exc.set_index("uscc")["pollutants"] if len(exc) else pd.Series(dtype=object)
    crit = ser.set_index("uscc")["criteria_zh"] if len(ser) else pd.Series(dtype=object)
    out = state.copy()
    out["exceedances"] = state["uscc"].map(n).fillna(0).astype(int)
    out["exceeded_pollutants"] = _text(state["uscc"].map(text))
    out["serious"] = _text(state["uscc"].map(crit))
    return out


def _text(s: pd.Series) -> pd.Series:
    s = s.astype(object)
    return s.where(s.notna(), "")


@router.get("/cases", summary="Case states on a date (JSON or GeoJSON)",
            responses={200: {"content": {"application/json": {},
                                         "application/geo+json": {}}}})
def list_cases(
    store: StoreDep,
    _: ReadDep,
    as_of: AsOf = None,
    basin_id: str | None = None,
    region_id: str | None = None,
    city: str | None = None,
    district: str | None = None,
    industry_id: str | None = None,
    industry: str | None = None,
    status: str | None = None,
    verdict: str | None = None,
    dimension: Annotated[str | None, Query(
        description="energy | environment | quality | safety | technology",
        json_schema_extra={"enum": list(case_spec().dimensions)})] = None,
    overdue: bool | None = None,
    f: Annotated[Literal["json", "geojson"], Query(description="json | geojson")] = "json",
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """Every case opened by ``as_of`` with its state that day (comma-separated values for
    OR). GeoJSON adds ``colour`` (status) and the year's ``exceedances`` for the map.
    """
    when = as_of or date.today()
    params = {"basin_id": basin_id, "region_id": region_id, "city": city,
              "district": district, "industry_id": industry_id, "industry": industry,
              "status": status, "verdict": verdict}
    state = _filter(casework.case_states(store, when), params, dimension, overdue)
    total = len(state)
    page = state.iloc[offset: offset + limit if limit else None]
    if f == "geojson":
        body = _geojson(_with_exceedances(store, page, when))
        body.update({"as_of": when.isoformat(), "numberMatched": total,
                     "numberReturned": len(page)})
        return JSONResponse(body, media_type="application/geo+json")
    if f != "json":
        raise InvalidQueryError(f"f: expected json or geojson, got '{f}'.")
    return JSONResponse({"as_of": when.isoformat(), "number_matched": total,
                         "number_returned": len(page), "cases": records(page)})


@router.get("/cases/meta", summary="Statuses, colours, zones and texts of the case map layer")
def case_meta(_: ReadDep) -> JSONResponse:
    """What the map's case panel needs: statuses (id, label, colour), zones, dimensions, UI
    text, and the date range of the plan's year with a default date."""
    from geo.export import _labels
    from layers.catalog import verdict_labels

    spec = case_spec()
    year = calendar_spec().year
    start, end = date(year, 1, 1), date(year + 1, 1, 31)
    return JSONResponse({
        "statuses": [{"id": s.id, "label": s.label_zh, "colour": s.colour}
                     for s in spec.statuses.values()],
        "zones": [{"id": k, "label": v} for k, v in _labels()["zones"].items()
                  if k != "guangfo"],
        "dimensions": [{"id": d.id, "label": d.label_zh} for d in spec.dimensions.values()],
        "verdicts": verdict_labels("zh"),
        "ui": spec.ui, "start": start.isoformat(), "end": end.isoformat(),
        "default": min(date.today(), end).isoformat(),
    })


@router.get("/cases/summary", summary="Case counts per basin, city, industry or dimension")
def case_summary(
    store: StoreDep,
    _: ReadDep,
    as_of: AsOf = None,
    by: Annotated[Literal["basin_id", "region_id", "city", "district", "industry",
                          "industry_id", "dimensions", "departments", "status"],
                  Query(description="basin_id | city | district | industry | "
                                    "dimensions | departments")] = "basin_id",
    basin_id: str | None = None,
    city: str | None = None,
    industry_id: str | None = None,
) -> JSONResponse:
    """Cases, each status, overdue, exited and capacity exited per group on ``as_of``."""
    allowed = ("basin_id", "region_id", "city", "district", "industry", "industry_id",
               "dimensions", "departments", "status")
    if by not in allowed:
        raise InvalidQueryError(f"by: expected one of {', '.join(allowed)}, got '{by}'.")
    when = as_of or date.today()
    state = _filter(casework.case_states(store, when),
                    {"basin_id": basin_id, "city": city, "industry_id": industry_id}, None, None)
    return JSONResponse({"as_of": when.isoformat(), "by": by,
                         "groups": records(summary(state, by=by))})


@router.get("/cases/syncs", summary="Registry loads applied to the cases, verdict changes")
def case_syncs(
    store: StoreDep,
    _: ReadDep,
    load_id: Annotated[int | None, Query(description="changes of this load")] = None,
) -> JSONResponse:
    """Each load applied (opened, continued, changed, verdict_changed, absent) and, for
    ``load_id``, every field it changed on continued cases (before, after).
    """
    casework.sync_cases(store)
    cs = case_store_for(store)
    body: dict[str, Any] = {"syncs": records(cs.syncs())}
    if load_id is not None:
        hist = cs.history(source=f"load:{load_id}")
        hist = hist[hist["before"].ne("")]  # continued cases only (new ones start empty)
        body["changes"] = records(hist[["case_id", "field", "before", "after",
                                        "effective_date", "recorded_by"]])
    return JSONResponse(body)


CaseId = Annotated[int, FastPath(ge=1, le=2**31 - 1, description="case id")]


@router.get("/cases/{case_id:int}", summary="One case on a date, with its history")
def get_case(store: StoreDep, _: ReadDep, case_id: CaseId, as_of: AsOf = None) -> JSONResponse:
    """The case's state on ``as_of`` and every event ever recorded for it (who, when,
    before, after, effective date).
    """
    hist = casework.case_history(store, case_id)
    when = as_of or date.today()
    state = casework.case_states(store, when)
    row = state[state["case_id"].eq(case_id)]
    return JSONResponse({"as_of": when.isoformat(),
                         "state": records(row)[0] if len(row) else None,
                         "history": records(hist)})


class CaseChangeIn(BaseModel):
    """A status change (fields left out stay as they are)."""

    on: IsoDate = Field(description="date the change took effect (the document's date)")
    status: str | None = Field(default=None, description="next status (cases.toml)")
    deadline: IsoDate | None = None
    extension_deadline: IsoDate | None = None
    equipment_action: str | None = Field(default=None, description="dismantled | sealed")
    documents: list[str] = Field(default_factory=list, description="document names to add")
    department: str | None = None
    capacity: float | None = None
    capacity_unit: str | None = None
    note: str = ""


@router.post("/cases/{case_id:int}/changes", summary="Record a status change (editor)",
             status_code=201)
def change_case(request: Request, store: StoreDep, caller: EditorDep, case_id: CaseId,
                body: CaseChangeIn) -> JSONResponse:
    """Validate the change against the workflow (cases.toml) and the plan's deadlines and
    append it to the case's history; 422 names what is wrong, 404 an unknown case.
    """
    change = CaseChange(case_id=case_id, **body.model_dump())
    events, rejected = casework.record_changes(store, [change], recorded_by=caller.name,
                                               source="api")
    if len(rejected):
        err = rejected.iloc[0]
        record_write(request, action="case.change", target=f"case:{case_id}",
                     outcome=f"failed: {err['reason']}")
        if err["reason"] == "case_not_found":
            raise CaseNotFoundError(f"case_id: no case {case_id}.")
        from geo.cases import CaseError

        raise CaseError(str(err["message"]))
    record_write(request, action="case.change", target=f"case:{case_id}",
                 detail={"events": len(events), **{k: str(v) for k, v in
                                                   body.model_dump().items() if v}})
    state = casework.current_states(store)
    row = state[state["case_id"].eq(case_id)]
    return JSONResponse({"case_id": case_id, "events": records(events),
                         "state": records(row)[0]}, status_code=201)


@router.post("/cases/import", summary="Import status changes from a spreadsheet (editor)")
def import_changes(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    caller: EditorDep,
    file: Annotated[UploadFile, File(description="CSV or XLSX, one change per row")],
    dry_run: Annotated[bool, Query(description="validate only")] = False,
) -> JSONResponse:
    """Apply every valid row in order (in one transaction); report the others with row,
    field and reason. ``dry_run`` writes nothing.
    """
    name = PurePath(file.filename or "").name
    if not name.lower().endswith((".csv", ".xlsx")):
        raise RegistryFormatError(f"file: expected a .csv or .xlsx file, got '{name[:80]}'.")
    data = file.file.read()  # bounded while it streamed in (api.limits)
    check_registry_file(name, data, settings)  # decompressed size and rows, before parsing
    changes, rows, bad = read_case_changes(data, filename=name,
                                           current=casework.current_states(store))
    events, refused = casework.record_changes(store, changes, recorded_by=caller.name,
                                              source=f"import:{name}", rows=rows,
                                              dry_run=dry_run)
    rejected = pd.concat([bad, refused], ignore_index=True).sort_values("row")
    if not dry_run:
        record_write(request, action="case.import", target=f"import:{name}",
                     detail={"events": len(events), "rejected": len(rejected)})
    return JSONResponse({
        "source_name": name, "rows": len(rows) + len(bad), "applied_rows": len(rows) - len(
            refused), "events": len(events), "dry_run": dry_run,
        "rejected": records(rejected),
    }, status_code=200 if dry_run else 201)


# --------------------------------------------------------------------------- lists


@router.get("/lists", summary="The plan's lists", tags=["lists"])
def lists(_: ReadDep) -> JSONResponse:
    """Ids, titles, publishers and legal basis of every list."""
    spec = calendar_spec()
    return JSONResponse({"lists": [d.model_dump(mode="json") for d in spec.lists.values()]})


@router.get("/lists/{list_id}", summary="One list as of a date (Excel or JSON)", tags=["lists"],
            response_class=FileResponse,
            responses={200: {"content": {_XLSX: {}, "application/json": {}}}})
def get_list(store: StoreDep, _: ReadDep, list_id: str, as_of: AsOf = None,
             format: Annotated[Literal["xlsx", "json"], Query(description="xlsx | json")] = "xlsx",  # noqa: A002
             ) -> Any:
    """The list on ``as_of`` (default today): Excel with Chinese headers (a 说明 sheet with
    the legal basis first), or JSON with one array per sheet.
    """
    from geo.caselists import list_file_name, write_list_xlsx

    when = as_of or date.today()
    _known(list_id, list(calendar_spec().lists), "list_id")
    tables = casework.list_tables(store, list_id, when)
    if format == "json":
        return JSONResponse({"list": tables.definition.model_dump(mode="json"),
                             "as_of": when.isoformat(),
                             "sheets": {k: records(v) for k, v in tables.sheets.items()}})
    if format != "xlsx":
        raise InvalidQueryError(f"format: expected xlsx or json, got '{format}'.")
    tmp = Path(tempfile.mkdtemp(prefix="bw-list-"))
    name = list_file_name(list_id, when)
    path = write_list_xlsx(tables, tmp / "list.xlsx")
    return FileResponse(path, media_type=_XLSX,
                        headers={"Content-Disposition": content_disposition(name)},
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))


# --------------------------------------------------------------------------- calendar


@router.get("/calendar", summary="What is due and what is late on a date", tags=["calendar"])
def calendar(store: StoreDep, _: ReadDep, as_of: AsOf = None) -> JSONResponse:
    """Each dated item of the plan (四(三), 三(四)) with its state on ``as_of``
    (submitted / late / due_soon / upcoming), the departments still owing it and the sizes
    of the lists it carries; and the overdue cases per department.
    """
    when = as_of or date.today()
    rep = casework.report(store, when)
    return JSONResponse({"as_of": when.isoformat(), "items": records(rep["items"]),
                         "overdue_cases": records(rep["overdue"])})


class SubmissionIn(BaseModel):
    """A department's submission of a calendar item."""

    department: str
    submitted_on: IsoDate
    note: str = ""


@router.post("/calendar/{item_id}/submissions", summary="Record a submission (editor)",
             tags=["calendar"], status_code=201)
def submit(request: Request, store: StoreDep, caller: EditorDep, item_id: str,
           body: SubmissionIn) -> JSONResponse:
    """Record that a department submitted an item (422 for an unknown item or department)."""
    spec = calendar_spec()
    _known(item_id, [i.id for i in spec.items], "item_id")
    item = spec.item(item_id)
    if body.department not in item.departments:
        raise InvalidQueryError(
            f"department: '{body.department}' does not owe '{item_id}'; expected one of "
            f"{', '.join(item.departments)}.")
    row = case_store_for(store).add_submission(
        item_id=item_id, department=body.department, submitted_on=body.submitted_on,
        recorded_by=caller.name, note=body.note)
    record_write(request, action="calendar.submission", target=f"calendar:{item_id}",
                 detail={"department": body.department,
                         "submitted_on": str(body.submitted_on)})
    return JSONResponse(json.loads(json.dumps(row, default=str)), status_code=201)


@router.get("/report", summary="Where we are on a date", tags=["calendar"])
def report(store: StoreDep, _: ReadDep, as_of: AsOf = None,
           by: Annotated[str, Query(description="basin_id | city | industry | dimensions")]
           = "basin_id") -> JSONResponse:
    """The calendar (due / late), overdue cases per department and the case summary."""
    when = as_of or date.today()
    rep = casework.report(store, when)
    state = casework.case_states(store, when)
    return JSONResponse({"as_of": when.isoformat(), "items": records(rep["items"]),
                         "overdue_cases": records(rep["overdue"]),
                         "summary": records(summary(state, by=by))})
