"""Bounds on what one request may cost: sizes, rates, time, and cancellation.

:class:`LimitsMiddleware` (pure ASGI, outside the routers) answers before any parsing:

- a request line longer than ``BASINWATCH_MAX_URL_CHARS`` -> 414;
- more requests than ``BASINWATCH_RATE_LIMIT_PER_MINUTE`` (token bucket of
  ``RATE_LIMIT_BURST``) per API key, else per client address -> 429 with ``Retry-After``;
- a body larger than ``BASINWATCH_MAX_UPLOAD_MB`` (``multipart/form-data``) or
  ``BASINWATCH_MAX_BODY_KB`` (anything else) -> 413, from ``Content-Length`` before reading,
  else counted while the body streams in (the rest is never read, nor written to disk);
- a :class:`CancelToken` on ``request.state.cancel`` that fires when the client goes away
  (a PostGIS statement is cancelled, a geometry worker killed).

Every answer is an OGC exception document naming the setting; the limit errors here are
:class:`LimitExceededError` subclasses for code that checks limits itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.errors import GeoError

__all__ = [
    "LimitExceededError",
    "PayloadTooLargeError",
    "UriTooLongError",
    "TooManyRequestsError",
    "GeometryTooComplexError",
    "QueryTimeoutError",
    "BodyTooLarge",
    "CancelToken",
    "RateLimiter",
    "LimitsMiddleware",
    "client_address",
]

log = logging.getLogger(__name__)


class LimitExceededError(GeoError, ValueError):
    """The request asks for more than a service limit allows (the message names it)."""

    http_status = 400
    ogc_code = "LimitExceeded"


class PayloadTooLargeError(LimitExceededError):
    """Body or upload larger than its limit."""

    http_status = 413
    ogc_code = "PayloadTooLarge"


class UriTooLongError(LimitExceededError):
    """Request line longer than BASINWATCH_MAX_URL_CHARS."""

    http_status = 414
    ogc_code = "URITooLong"


class TooManyRequestsError(LimitExceededError):
    """Rate or concurrency limit reached; retry after ``retry_after`` seconds."""

    http_status = 429
    ogc_code = "TooManyRequests"

    def __init__(self, msg: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(msg)
        self.retry_after = max(1, math.ceil(retry_after))


class GeometryTooComplexError(LimitExceededError):
    """A query geometry has too many vertices or takes too long to repair."""


class QueryTimeoutError(LimitExceededError):
    """A database statement ran longer than BASINWATCH_QUERY_TIMEOUT_S."""


class BodyTooLarge(HTTPException):  # noqa: N818 - raised inside receive(); FastAPI re-raises
    """Raised by the body counter; rendered as a 413 OGC exception."""

    def __init__(self, detail: str) -> None:
        # close the connection: the rest of the body is then never read
        super().__init__(status_code=413, detail=detail, headers={"Connection": "close"})


class CancelToken:
    """Set when the client of a request goes away; callbacks run in a worker thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """Whether the client has gone away."""
        return self._event.is_set()

    def add_callback(self, fn: Callable[[], None]) -> object:
        """Call ``fn`` on cancellation (at once if already cancelled)."""
        with self._lock:
            if not self._event.is_set():
                self._next += 1
                self._callbacks[self._next] = fn
                return self._next
        _safe(fn)
        return None

    def remove_callback(self, handle: object) -> None:
        """Forget a callback."""
        with self._lock:
            self._callbacks.pop(handle, None)  # type: ignore[arg-type]

    def cancel(self) -> list[Callable[[], None]]:
        """Mark cancelled; returns the callbacks to run (blocking: run them in a thread)."""
        with self._lock:
            self._event.set()
            fns = list(self._callbacks.values())
            self._callbacks.clear()
        return fns


def _safe(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a failed cancel must not break the server
        log.warning("cancel callback failed: %s", exc)


class RateLimiter:
    """Token buckets per identity (at most ``max_keys`` remembered, least recent dropped)."""

    def __init__(self, per_minute: float, burst: float, *, max_keys: int = 50_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1.0, burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, identity: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; returns 0 when allowed, else seconds until allowed."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate if self.rate > 0 else 3600.0
            self._buckets[identity] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


def client_address(scope: Scope) -> str:
    """The client's address as the server sees it (proxies: uvicorn's proxy headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _error(status: int, code: str, description: str,
           headers: dict[str, str] | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps({"code": code, "description": description})
    raw = [(b"content-type", b"application/json"),
           (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return status, raw, body


class LimitsMiddleware:
    """URL length, rate and body limits, and the request's :class:`CancelToken`."""

    def __init__(self, app: ASGIApp, *, settings: Any) -> None:
        self.app = app
        self.settings = settings
        self.max_url = settings.max_url_chars
        self.max_body = settings.max_body_kb * 1024
        self.max_upload = settings.max_upload_mb * 1024 * 1024
        self.limiter = (RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
                        if settings.rate_limit_per_minute > 0 else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refuse(scope)
        if refused is not None:
            await _send_error(send, *refused)
            return
        state = scope.setdefault("state", {})
        token = CancelToken()
        state["cancel"] = token
        limit, name = self._body_limit(scope)
        length = _content_length(scope)
        if length is not None and length > limit:
            await _send_error(send, *_error(413, "PayloadTooLarge", self._too_large(name),
                                            {"Connection": "close"}))
            return
        watch = _Watch(receive, token, limit, self._too_large(name),
                       has_body=bool(length) or _chunked(scope))
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                watch.stop()  # answered: a later disconnect cancels nothing
            await send(message)

        try:
            await self.app(scope, watch.receive, send_wrapper)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_error(send, *_error(413, "PayloadTooLarge", str(exc.detail),
                                            {"Connection": "close"}))
        finally:
            watch.stop()

    def _too_large(self, name: str) -> str:
        if name == "upload":
            return (f"body: larger than BASINWATCH_MAX_UPLOAD_MB="
                    f"{self.settings.max_upload_mb} MB.")
        return (f"body: larger than BASINWATCH_MAX_BODY_KB={self.settings.max_body_kb} KB; "
                "send files as multipart/form-data uploads.")

    def _body_limit(self, scope: Scope) -> tuple[int, str]:
        for k, v in scope.get("headers", ()):
            if k == b"content-type" and v[:19].lower() == b"multipart/form-data":
                return self.max_upload, "upload"
        return self.max_body, "body"

    def _refuse(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        n = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if n > self.max_url:
            return _error(414, "URITooLong",
                          f"url: {n} characters, more than BASINWATCH_MAX_URL_CHARS="
                          f"{self.max_url}; send large polygons in a POST body "
                          "(/query/within).")
        if self.limiter is None or scope.get("method") == "OPTIONS":
            return None
        identity = self._identity(scope)
        wait = self.limiter.take(identity)
        if wait > 0:
            who = "API key" if identity.startswith("key:") else "client address"
            return _error(429, "TooManyRequests",
                          f"rate: more than BASINWATCH_RATE_LIMIT_PER_MINUTE="
                          f"{self.settings.rate_limit_per_minute} requests per minute for "
                          f"this {who}; retry in {math.ceil(wait)} s.",
                          {"Retry-After": str(max(1, math.ceil(wait)))})
        return None

    def _identity(self, scope: Scope) -> str:
        from api.auth import AuthError, resolve_caller

        try:
            caller = resolve_caller(Request(scope), self.settings)
        except AuthError:
            caller = None
        if caller is not None and caller.key_id:
            return f"key:{caller.key_id}"
        return f"addr:{client_address(scope)}"


async def _send_error(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _chunked(scope: Scope) -> bool:
    return any(k == b"transfer-encoding" and b"chunked" in v.lower()
               for k, v in scope.get("headers", ()))


class _Watch:
    """Counts the body as the app reads it; once the body is read, waits for the client's
    disconnect in a task and fires the cancel token (the app still receives the message)."""

    def __init__(self, receive: Receive, token: CancelToken, limit: int, message: str, *,
                 has_body: bool) -> None:
        self._receive = receive
        self.token = token
        self.limit = limit
        self.message = message
        self.total = 0
        self._queue: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self.stopped = False
        if not has_body:
            self._start()

    def _start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            message = await self._receive()
            await self._queue.put(message)
            if message["type"] == "http.disconnect":
                if self.stopped:
                    return
                fns = self.token.cancel()
                if fns:
                    loop = asyncio.get_running_loop()
                    for fn in fns:
                        loop.run_in_executor(None, _safe, fn)
                return

    async def receive(self) -> Message:
        if self._queue is not None:
            return await self._queue.get()
        message = await self._receive()
        if message["type"] == "http.request":
            self.total += len(message.get("body", b""))
            if self.total > self.limit:
                raise BodyTooLarge(self.message)
            if not message.get("more_body", False):
                self._start()
        elif message["type"] == "http.disconnect" and not self.stopped:
            self.token.cancel()
        return message

    def stop(self) -> None:
        self.stopped = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
