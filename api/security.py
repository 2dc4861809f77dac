"""Browser-facing hygiene: security headers, CORS, and the public base URL of links.

- Every response carries ``X-Content-Type-Options: nosniff``, a Content-Security-Policy
  (scripts only from this server, no framing: ``frame-ancestors 'none'``), ``X-Frame-Options:
  DENY``, ``Referrer-Policy: no-referrer`` (map URLs carry filters; tile servers need not
  see them) and, behind https, ``Strict-Transport-Security``. Images may come from the
  online base-map hosts of ``layers/data/webmap.toml`` (only requested when chosen).
- CORS is closed unless ``BASINWATCH_CORS_ORIGINS`` lists origins; a refused preflight is a
  403 OGC exception.
- Links never copy an untrusted Host header: :func:`public_base` is ``BASINWATCH_BASE_URL``,
  else the Host header when it is one of ``BASINWATCH_TRUSTED_HOSTS``, else the address the
  server listens on.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "SecurityHeadersMiddleware",
    "ClosedCORSMiddleware",
    "default_csp",
    "public_base",
    "tile_hosts",
]

log = logging.getLogger(__name__)

@functools.cache
def tile_hosts() -> tuple[str, ...]:
    """Origins of the online base-map tiles in ``layers/data/webmap.toml``."""
    from layers.catalog import read_data_toml

    hosts: list[str] = []
    for layer in read_data_toml("webmap.toml").get("base_layers", []):
        for key in ("url", "label_url"):
            url = str(layer.get(key) or "")
            m = re.match(r"^(https?://[^/]+)", url)
            if not m:
                continue
            origin = m.group(1)
            subs = str(layer.get("subdomains") or "") or " "
            for s in subs:
                hosts.append(origin.replace("{s}", s.strip()))
    return tuple(dict.fromkeys(hosts))


def default_csp(*, extra_script: tuple[str, ...] = ()) -> str:
    """The policy: everything from this server; images also from the tile hosts."""
    script = " ".join(["'self'", *extra_script])
    return "; ".join([
        "default-src 'self'",
        f"script-src {script}",
        "style-src 'self' 'unsafe-inline'",
        "img-src " + " ".join(["'self'", "data:", "blob:", *tile_hosts()]),
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (a route may set its own CSP)."""

    def __init__(self, app: ASGIApp, *, csp: str | None = None, hsts: bool = False) -> None:
        self.app = app
        self.csp = csp or default_csp()
        self.fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            self.fixed.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in self.fixed:
                    headers.raw.append((k, v))
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = self.csp
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ClosedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS with an OGC exception (403) for a refused preflight."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's answer, with a JSON body instead of plain text."""
        res = super().preflight_response(request_headers)
        headers = {k: v for k, v in res.headers.items()
                   if k.lower() not in ("content-length", "content-type")}
        if res.status_code == 400:
            origin = request_headers.get("origin", "")
            body = {"code": "Forbidden",
                    "description": f"Origin: '{origin}' (or the requested method/headers) is "
                                   "not allowed; CORS is closed unless "
                                   "BASINWATCH_CORS_ORIGINS lists the origin."}
            return Response(orjson.dumps(body), status_code=403, headers=headers,
                            media_type="application/json")
        return Response(status_code=204, headers=headers)


def public_base(request: Request) -> str:
    """Scheme, host and root path for absolute links (never an untrusted Host header)."""
    settings: Any = request.app.state.settings
    root = request.scope.get("root_path", "").rstrip("/")
    if settings.base_url:
        return str(settings.base_url)
    host = request.headers.get("host", "")
    scheme = request.scope.get("scheme", "http")
    if host and _trusted(host, settings.trusted_hosts):
        return f"{scheme}://{host}{root}"
    server = request.scope.get("server")
    if server:
        name, port = server[0], server[1]
        name = f"[{name}]" if ":" in str(name) else str(name)
        default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
        return f"{scheme}://{name}{'' if default or port is None else f':{port}'}{root}"
    return root


def _trusted(host: str, trusted: list[str]) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("[") and "]:" in host:
        name = host[: host.index("]") + 1]
    return name.lower() in {t.lower() for t in trusted}
