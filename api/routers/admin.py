"""Administration: the audit log (admin role only)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.routers.deps import AdminDep

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/audit", summary="Audit log of writes (admin)")
def audit(
    request: Request,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="entries per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="entries to skip")] = 0,
) -> JSONResponse:
    """Every write and refused write attempt, newest first: who (key name or key-hash
    label, never a key), role, action, target, outcome, client address, time."""
    entries = request.app.state.store.audit_entries(limit=limit, offset=offset)
    return JSONResponse({"entries": [e.to_dict() for e in entries]})
