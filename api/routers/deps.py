"""Dependencies shared by the routers: the store, settings and API-key roles."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from api.settings import Role, Settings
from api.store import Store
from geo.errors import GeoError

__all__ = [
    "AuthError",
    "ForbiddenError",
    "get_store_dep",
    "get_settings_dep",
    "StoreDep",
    "SettingsDep",
    "require_read",
    "require_editor",
    "Caller",
]

log = logging.getLogger(__name__)

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="API key; editors may load registries.")


class AuthError(GeoError, PermissionError):
    """No or an unknown API key."""

    http_status = 401
    default_msg = "X-API-Key: a valid API key is required for this endpoint."


class ForbiddenError(GeoError, PermissionError):
    """The key's role does not allow the request."""

    http_status = 403
    default_msg = "X-API-Key: this endpoint needs a key with the editor role."


def get_store_dep(request: Request) -> Store:
    """The application's store."""
    return request.app.state.store  # type: ignore[no-any-return]


def get_settings_dep(request: Request) -> Settings:
    """The application's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store_dep)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def _role(settings: Settings, key: str | None, request: Request) -> tuple[str, Role] | None:
    if not key:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    if not key:
        return None
    for known, role in settings.api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            return (f"key:{known[:4]}…", role)
    raise AuthError("X-API-Key: unknown API key.")


class Caller:
    """Who is calling (``name`` is safe to record in the load history)."""

    def __init__(self, name: str, role: Role | None) -> None:
        self.name = name
        self.role = role


def require_read(
    request: Request, settings: SettingsDep, key: Annotated[str | None, Depends(_api_key)]
) -> Caller:
    """Allow everyone when reads are open, else any valid key."""
    found = _role(settings, key, request)
    if found is None:
        if settings.read_open:
            return Caller("anonymous", None)
        raise AuthError()
    return Caller(*found)


def require_editor(
    request: Request, settings: SettingsDep, key: Annotated[str | None, Depends(_api_key)]
) -> Caller:
    """Only keys with the editor role."""
    found = _role(settings, key, request)
    if found is None:
        raise AuthError()
    if found[1] != Role.editor:
        raise ForbiddenError()
    return Caller(*found)


ReadDep = Annotated[Caller, Depends(require_read)]
EditorDep = Annotated[Caller, Depends(require_editor)]
