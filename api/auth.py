"""Who is calling: API keys (stored hashed), browser sessions and roles.

A caller proves a role with an API key (``X-API-Key`` header or ``Authorization: Bearer``)
or with the session cookie a browser gets from ``/session/login``. Keys are looked up by
their SHA-256 (:func:`api.settings.hash_key`), so settings may hold hashes only. Sessions
are stateless signed tokens (HMAC-SHA256 with the session secret) that name the key's hash
prefix, so removing a key from the settings ends its sessions at once. A write made with a
session cookie must also send the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from api.settings import KeyGrant, Role, Settings, hash_key
from geo.errors import GeoError

__all__ = [
    "AuthError",
    "ForbiddenError",
    "Caller",
    "ANONYMOUS",
    "SESSION_COOKIE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "Session",
    "resolve_caller",
    "caller_for_key",
    "issue_session",
    "read_session",
    "session_secret",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "bw_session"
CSRF_COOKIE = "bw_csrf"
CSRF_HEADER = "X-CSRF-Token"
_KEY_ID_HEX = 16  # hash prefix in a session token (64 bits: names a key, reveals nothing)


class AuthError(GeoError, PermissionError):
    """No or an unknown API key."""

    http_status = 401
    default_msg = ("X-API-Key: a valid API key (or a browser session from /session/login) is "
                   "required for this endpoint.")


class ForbiddenError(GeoError, PermissionError):
    """The key's role does not allow the request."""

    http_status = 403
    default_msg = "X-API-Key: this endpoint needs a key with the editor role."


@dataclass(frozen=True)
class Caller:
    """Who is calling.

    ``name`` is safe to show and record: the key's configured name or ``key-`` and eight hex
    digits of the key's SHA-256, never a part of the key itself.
    """

    name: str
    role: Role | None
    via: str = "anonymous"  # "key" | "session" | "anonymous"
    key_id: str | None = None

    def allows(self, needed: Role) -> bool:
        """Whether the caller's role includes ``needed``."""
        return self.role is not None and self.role.allows(needed)


ANONYMOUS = Caller("anonymous", None)


def _label(key_hash: str, grant: KeyGrant) -> str:
    return grant.name or f"key-{key_hash[7:15]}"


def caller_for_key(settings: Settings, key: str) -> Caller:
    """The caller a presented key stands for.

    Raises
    ------
    AuthError
        If the key is not configured.
    """
    digest = hash_key(key)
    grant = settings.key_hashes.get(digest)
    if grant is None:
        raise AuthError("X-API-Key: unknown API key.")
    return Caller(_label(digest, grant), grant.role, "key", digest[7:7 + _KEY_ID_HEX])


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if not key:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    return key or None


def resolve_caller(request: Request, settings: Settings) -> Caller:
    """The caller of ``request`` (cached on ``request.state``).

    Raises
    ------
    AuthError
        If an API key is presented and unknown.
    """
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    key = _presented_key(request)
    if key is not None:
        caller = caller_for_key(settings, key)
    else:
        caller = ANONYMOUS
        token = request.cookies.get(SESSION_COOKIE)
        session = read_session(settings, token) if token else None
        if session is not None:
            caller = session.caller
            request.state.session = session
    request.state.caller = caller
    return caller


# -- sessions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """A verified browser session."""

    caller: Caller
    expires: int
    csrf: str


_SECRETS: dict[str, bytes] = {}


def session_secret(settings: Settings) -> bytes:
    """The HMAC key of session tokens: the setting, else a random secret created once in
    ``DATA_DIR/.session-secret`` (mode 0600) and shared by every worker process."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode("utf-8")
    path = Path(settings.data_dir).resolve() / ".session-secret"
    cached = _SECRETS.get(str(path))
    if cached:
        return cached
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
    else:
        secret = secrets.token_hex(32).encode("ascii")
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret)
    if len(secret) < 32:
        raise ValueError(f"{path}: session secret is too short; delete the file to renew it.")
    _SECRETS[str(path)] = secret
    return secret


def _mac(secret: bytes, text: str) -> str:
    digest = hmac.new(secret, text.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_session(settings: Settings, caller: Caller) -> tuple[str, Session]:
    """A signed session token for a caller authenticated by key, and its session."""
    if caller.key_id is None or caller.role is None:
        raise AuthError()
    expires = int(time.time()) + settings.session_ttl_s
    nonce = secrets.token_urlsafe(12)
    body = f"v1.{caller.key_id}.{expires}.{nonce}"
    secret = session_secret(settings)
    token = f"{body}.{_mac(secret, body)}"
    return token, Session(caller, expires, _mac(secret, "csrf." + nonce)[:32])


def read_session(settings: Settings, token: str) -> Session | None:
    """The session a token stands for, or None if it is forged, expired or its key gone."""
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != "v1" or len(token) > 256:
        return None
    body, mac = ".".join(parts[:4]), parts[4]
    secret = session_secret(settings)
    if not hmac.compare_digest(_mac(secret, body), mac):
        return None
    _, key_id, expires_text, nonce = parts[:4]
    if not expires_text.isdigit() or int(expires_text) < time.time():
        return None
    for digest, grant in settings.key_hashes.items():
        if digest[7:7 + _KEY_ID_HEX] == key_id:
            caller = Caller(_label(digest, grant), grant.role, "session", key_id)
            return Session(caller, int(expires_text), _mac(secret, "csrf." + nonce)[:32])
    return None
