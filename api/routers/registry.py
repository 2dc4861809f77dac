"""Registry upload: validate a CSV/XLSX registry, report, and (for editors) load it."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import date
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from api.routers.deps import AuthError, ForbiddenError, ReadDep, SettingsDep, StoreDep
from api.settings import Role
from geo.errors import GeoError, RegistryFormatError

__all__ = ["router", "REPORT_ROWS"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/registry", tags=["registry"])

#: Rejected rows listed in a report (the count always covers all of them).
REPORT_ROWS = 5_000
_SUFFIXES = (".csv", ".xlsx")


class PayloadTooLargeError(GeoError, ValueError):
    """The upload exceeds BASINWATCH_MAX_UPLOAD_MB."""

    http_status = 413


def _records(df: Any, n: int) -> list[dict[str, Any]]:
    return json.loads(df.head(n).to_json(orient="records", force_ascii=False))  # type: ignore[no-any-return]


@router.post("", summary="Validate (and optionally load) a registry file")
def upload(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    caller: ReadDep,
    file: Annotated[UploadFile, File(description="CSV or XLSX enterprise registry")],
    load: Annotated[bool, Query(description="load the accepted rows (editor key)")] = False,
    as_of: Annotated[date | None, Query(description="date the load describes: rules and "
                                                    "case changes take effect on it")] = None,
) -> JSONResponse:
    """Run the pipeline on the uploaded registry and return the validation report.

    With ``load=true`` (needs an editor key) the accepted, classified rows replace the stored
    enterprise list atomically and the load is recorded.
    """
    if load and caller.role != Role.editor:
        raise AuthError() if caller.role is None else ForbiddenError()
    name = PurePath(file.filename or "").name
    if not name.lower().endswith(_SUFFIXES):
        raise RegistryFormatError(
            f"file: expected a .csv or .xlsx registry, got '{name or '(no name)'}'."
        )
    limit = settings.max_upload_mb * 1024 * 1024
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"file: larger than BASINWATCH_MAX_UPLOAD_MB={settings.max_upload_mb} MB."
        )
    sha = hashlib.sha256(data).hexdigest()
    run = request.app.state.run_pipeline
    if run is None:
        from geo.pipeline import run_pipeline as run
    result = run(io.BytesIO(data), filename=name, **({"as_of": as_of} if as_of else {}))
    accepted, rejected = result.enterprises, result.rejected
    report: dict[str, Any] = {
        "source_name": name,
        "source_sha256": sha,
        "source_rows": int(getattr(result, "source_rows", len(accepted) + len(rejected))),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "verdict_counts": {str(k): int(v) for k, v in
                           accepted["verdict"].value_counts().items()},
        "units": len(getattr(result, "units", ())),
        "rejected_rows": _records(rejected, REPORT_ROWS),
        "loaded": None,
    }
    if load:
        rec = store.load_enterprises(accepted, loaded_by=caller.name, source_name=name,
                                     source_sha256=sha, rejected=len(rejected))
        if hasattr(store, "store_rule_inputs"):  # PostGIS keeps them for in-database re-runs
            store.store_rule_inputs(accepted, getattr(result, "units", None))
        report["loaded"] = rec.to_dict()
        from api.casework import sync_cases

        synced = sync_cases(store, as_of=as_of, recorded_by=caller.name)
        report["cases"] = synced.to_dict() if synced else None
    return JSONResponse(report, status_code=201 if load else 200)


@router.get("/loads", summary="Load history")
def loads(store: StoreDep, _: ReadDep) -> JSONResponse:
    """Every load of the enterprise list, newest first."""
    return JSONResponse({"loads": [r.to_dict() for r in store.loads()]})
