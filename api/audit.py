"""The audit log: one entry per write to the service, and per refused write attempt.

Endpoints that change anything call :func:`record_write` after the change (or its
failure); the entry goes to the store (PostGIS table ``audit_log``; for the embedded store a
SQLite file beside the GeoPackage). Refused attempts (no key, wrong role, missing CSRF
token) are recorded by :func:`api.routers.deps.require_role` itself. Admins read the log at
``GET /admin/audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from api.auth import ANONYMOUS, Caller
from api.limits import client_address
from api.store.base import AuditEntry

__all__ = ["record_write"]

log = logging.getLogger(__name__)


def record_write(
    request: Request,
    *,
    action: str,
    target: str,
    outcome: str = "ok",
    detail: Mapping[str, Any] | None = None,
    caller: Caller | None = None,
) -> None:
    """Append an entry for a write made (or attempted) by ``request``.

    Parameters
    ----------
    request
        The request; its caller (as resolved by the role dependency) is the actor.
    action
        What was done, e.g. ``registry.load`` or ``case.create``.
    target
        What it was done to, e.g. ``load:12`` or ``case:ab12``.
    outcome
        ``ok``, ``failed: <reason>`` or ``denied: <reason>``.
    detail
        Small JSON-serialisable facts (file name, sha256, counts). Never put keys here.
    caller
        Override of the actor (default: ``request.state.caller``).

    Failures to write the log are logged, never raised: the write itself already happened.
    """
    who = caller or getattr(request.state, "caller", None) or ANONYMOUS
    entry = AuditEntry(
        actor=who.name,
        role=who.role.value if who.role is not None else "",
        action=action,
        target=target,
        outcome=outcome,
        client=client_address(request.scope),
        detail=dict(detail or {}),
    )
    try:
        request.app.state.store.record_audit(entry)
    except Exception as exc:  # noqa: BLE001 - the log must not break the request
        log.error("audit log write failed (%s): %s", exc, entry)
    else:
        log.info("audit: %s %s %s -> %s", entry.actor, action, target, outcome)
