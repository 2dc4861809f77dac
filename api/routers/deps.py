"""Dependencies shared by the routers: the store, settings and caller roles.

``StoreDep`` is the store pinned to one version for the whole request (every answer of
a request comes from the same load); ``require_role("editor")`` (or ``EditorDep``) guards
an endpoint by role. Routers of other resources use these the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Annotated

import anyio
from fastapi import Depends, Request
from pydantic import BeforeValidator, WithJsonSchema
from fastapi.security import APIKeyCookie, APIKeyHeader

from api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    AuthError,
    Caller,
    ForbiddenError,
    resolve_caller,
)
from api.settings import Role, Settings
from api.store import Store

__all__ = [
    "AuthError",
    "ForbiddenError",
    "Caller",
    "get_store_dep",
    "get_settings_dep",
    "StoreDep",
    "SettingsDep",
    "require_role",
    "check_csrf",
    "require_read",
    "require_editor",
    "require_admin",
    "ReadDep",
    "EditorDep",
    "AdminDep",
    "KeyRequiredDep",
    "IsoDate",
]

log = logging.getLogger(__name__)

# Declared for OpenAPI (security schemes); the caller is resolved by api.auth.
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="API key: viewer reads, editor also loads registries, "
                                    "admin also reads the audit log.")
_session = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                        description="Browser session from POST /session/login (HttpOnly).")


async def get_store_dep(request: Request) -> AsyncIterator[Store]:
    """The application's store, pinned to one version for this request.

    A client that goes away cancels the request's running database statement.
    """
    store: Store = request.app.state.store
    view = store.pinned(cancel=getattr(request.state, "cancel", None))
    try:
        yield view
    finally:
        if view.release_blocks:
            await anyio.to_thread.run_sync(view.release)
        else:
            view.release()


async def get_settings_dep(request: Request) -> Settings:
    """The application's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store_dep)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def _denied(request: Request, caller: Caller, needed: Role, exc: Exception,
            key_required: bool = False) -> None:
    if needed.rank > Role.viewer.rank or key_required:  # refused writes/uploads are audited
        from api.audit import record_write

        record_write(request, action=f"{request.method} {request.url.path}",
                     target=request.url.path, outcome=f"denied: {type(exc).__name__}",
                     caller=caller)


def check_csrf(request: Request, caller: Caller) -> None:
    """A request authenticated by session cookie must carry the session's CSRF token.

    Raises
    ------
    ForbiddenError
        If the ``X-CSRF-Token`` header is missing or wrong.
    """
    if caller.via != "session":
        return
    session = getattr(request.state, "session", None)
    sent = request.headers.get(CSRF_HEADER, "")
    if session is None or not sent or sent != session.csrf:
        raise ForbiddenError(f"{CSRF_HEADER}: a write with a session cookie needs the "
                             "session's CSRF token in this header.")


def require_role(role: Role | str, *, key_required: bool = False) -> Callable[..., Caller]:
    """A dependency admitting callers whose role includes ``role``.

    Viewer endpoints admit anonymous callers while ``BASINWATCH_READ_OPEN`` is true, unless
    ``key_required`` (anything that parses an uploaded file). Editor and admin endpoints
    need a key or a session; with a session cookie they also need the ``X-CSRF-Token``.

    Examples
    --------
    >>> from fastapi import Depends
    >>> # @router.post("/layers/import", dependencies=[Depends(require_role("editor"))])
    """
    needed = Role(role)

    # async: resolving a caller is a hash or an HMAC, done on the event loop (a sync
    # dependency costs a thread-pool hop per request); only a refusal, which writes the
    # audit log, goes to a thread.
    async def dependency(
        request: Request,
        settings: SettingsDep,
        _key: Annotated[str | None, Depends(_api_key)] = None,
        _cookie: Annotated[str | None, Depends(_session)] = None,
    ) -> Caller:
        caller = resolve_caller(request, settings)
        exc: Exception | None = None
        if caller.role is None:
            if needed == Role.viewer and settings.read_open and not key_required:
                return caller
            exc = AuthError()
        elif not caller.role.allows(needed):
            exc = ForbiddenError(
                f"X-API-Key: this endpoint needs a key with the {needed.value} role; "
                f"yours has {caller.role.value}."
            )
        elif caller.via == "session" and (needed != Role.viewer or key_required):
            try:
                check_csrf(request, caller)
            except ForbiddenError as err:
                exc = err
        if exc is not None:
            await anyio.to_thread.run_sync(_denied, request, caller, needed, exc, key_required)
            raise exc
        return caller

    dependency.__name__ = f"require_{needed.value}{'_key' if key_required else ''}"
    return dependency


require_read = require_role(Role.viewer)
require_editor = require_role(Role.editor)
require_admin = require_role(Role.admin)

ReadDep = Annotated[Caller, Depends(require_read)]
EditorDep = Annotated[Caller, Depends(require_editor)]
AdminDep = Annotated[Caller, Depends(require_admin)]
#: Any valid key or session, even while reads are open (file parsing costs CPU).
KeyRequiredDep = Annotated[Caller, Depends(require_role(Role.viewer, key_required=True))]


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD`` (pydantic alone would read ``0`` as 1970-01-01)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError(f"expected a date YYYY-MM-DD, got '{str(value)[:40]}'")
    return value


#: A date parameter given as ``YYYY-MM-DD`` and nothing else.
IsoDate = Annotated[date, BeforeValidator(_iso_date),
                    WithJsonSchema({"type": "string", "format": "date"})]
