"""Registry upload: validate a CSV/XLSX registry, report, and (for editors) load it.

Parsing a file costs CPU, so it needs a key (any role; loading needs editor) even while
reads are open, is bounded before parsing (:mod:`api.uploads`), runs at most
``BASINWATCH_MAX_PARALLEL_UPLOADS`` at a time per process and at most
``BASINWATCH_UPLOAD_LIMIT_PER_HOUR`` times per key. Every load goes to the audit log.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
from datetime import date
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from api.audit import record_write
from api.limits import RateLimiter, TooManyRequestsError
from api.routers.deps import (
    ForbiddenError,
    IsoDate,
    KeyRequiredDep,
    ReadDep,
    SettingsDep,
    StoreDep,
)
from api.settings import Role, Settings
from api.uploads import check_registry_file
from geo.errors import RegistryFormatError

__all__ = ["router", "REPORT_ROWS"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/registry", tags=["registry"])

#: Rejected rows listed in a report (the count always covers all of them).
REPORT_ROWS = 5_000
_SUFFIXES = (".csv", ".xlsx")
#: ``loaded_by`` values recorded before keys were labelled by hash: "key:" + 4 key chars.
_LEGACY_KEY_LABEL = re.compile(r"^key:.{1,8}…?$")


def _records(df: Any, n: int) -> list[dict[str, Any]]:
    return json.loads(df.head(n).to_json(orient="records", force_ascii=False))  # type: ignore[no-any-return]


class _Gate:
    """Per-app upload concurrency and per-key upload rate."""

    def __init__(self, settings: Settings) -> None:
        self.slots = threading.BoundedSemaphore(settings.max_parallel_uploads)
        per_hour = settings.upload_limit_per_hour
        self.rate = (RateLimiter(per_hour / 60.0, max(1, per_hour // 6))
                     if per_hour > 0 else None)


def _gate(request: Request) -> _Gate:
    gate = getattr(request.app.state, "upload_gate", None)
    if gate is None:
        gate = request.app.state.upload_gate = _Gate(request.app.state.settings)
    return gate  # type: ignore[no-any-return]


@router.post("", summary="Validate (and optionally load) a registry file",
             status_code=200, responses={201: {"description": "Loaded"}})
def upload(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    caller: KeyRequiredDep,
    file: Annotated[UploadFile, File(description="CSV or XLSX enterprise registry")],
    load: Annotated[bool, Query(description="load the accepted rows (editor key)")] = False,
    as_of: Annotated[IsoDate | None, Query(description="date the load describes: rules and "
                                                    "case changes take effect on it")] = None,
) -> JSONResponse:
    """Run the pipeline on the uploaded registry and return the validation report.

    Needs a key (or session) of any role; with ``load=true`` the editor role, and then the
    accepted, classified rows replace the stored enterprise list atomically, and the load
    is recorded in the load history and the audit log.
    """
    if load and not caller.allows(Role.editor):
        exc = ForbiddenError("X-API-Key: load=true needs a key with the editor role.")
        record_write(request, action="registry.load", target="enterprises",
                     outcome="denied: ForbiddenError")
        raise exc
    name = PurePath(file.filename or "").name
    if not name.lower().endswith(_SUFFIXES):
        raise RegistryFormatError(
            f"file: expected a .csv or .xlsx registry, got '{name[:80] or '(no name)'}'."
        )
    gate = _gate(request)
    if gate.rate is not None:
        wait = gate.rate.take(caller.key_id or caller.name)
        if wait > 0:
            raise TooManyRequestsError(
                f"file: more than BASINWATCH_UPLOAD_LIMIT_PER_HOUR="
                f"{settings.upload_limit_per_hour} uploads for this key.", retry_after=wait)
    if not gate.slots.acquire(blocking=False):
        raise TooManyRequestsError(
            f"file: {settings.max_parallel_uploads} registry upload(s) already being processed "
            "(BASINWATCH_MAX_PARALLEL_UPLOADS); retry shortly.", retry_after=10)
    try:
        return _process(request, store, settings, file, name, load, as_of)
    finally:
        gate.slots.release()


def _process(request: Request, store: Any, settings: Settings, file: UploadFile, name: str,
             load: bool, as_of: date | None) -> JSONResponse:
    data = file.file.read()  # the body was bounded while it streamed in
    check_registry_file(name, data, settings)
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
        caller = request.state.caller
        detail = {"source_name": name, "source_sha256": sha, "accepted": len(accepted),
                  "rejected": len(rejected)}
        try:
            rec = store.load_enterprises(accepted, loaded_by=caller.name, source_name=name,
                                         source_sha256=sha, rejected=len(rejected))
        except Exception as exc:
            record_write(request, action="registry.load", target="enterprises",
                         outcome=f"failed: {type(exc).__name__}", detail=detail)
            raise
        record_write(request, action="registry.load", target=f"load:{rec.load_id}",
                     detail=detail)
        if hasattr(store, "store_rule_inputs"):  # PostGIS keeps them for in-database re-runs
            store.store_rule_inputs(accepted, getattr(result, "units", None))
        report["loaded"] = rec.to_dict()
        from api.casework import sync_cases

        synced = sync_cases(store, as_of=as_of, recorded_by=caller.name)
        report["cases"] = synced.to_dict() if synced else None
    return JSONResponse(report, status_code=201 if load else 200)


@router.get("/loads", summary="Load history")
def loads(store: StoreDep, caller: ReadDep) -> JSONResponse:
    """Every load of the enterprise list, newest first. Who loaded it is shown to editors
    and admins only, and never as any part of a key."""
    out = []
    for rec in store.loads():
        d = rec.to_dict()
        if not caller.allows(Role.editor):
            d["loaded_by"] = None
        elif _LEGACY_KEY_LABEL.match(str(d["loaded_by"])):
            d["loaded_by"] = "key (label withheld)"
        out.append(d)
    return JSONResponse({"loads": out})
