"""Browser sessions: log in with an API key, get an HttpOnly cookie.

A browser cannot send ``X-API-Key`` on page loads and tile/JSON fetches, so a closed
deployment (``BASINWATCH_READ_OPEN=false``) logs its planners in here: the key is checked
once and exchanged for a signed session cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure``
behind https) that the map's own requests then carry. Writes made with the cookie also need
the ``X-CSRF-Token`` the login returns (also readable from the ``bw_csrf`` cookie).
"""

from __future__ import annotations

import html
import logging
from typing import Annotated

from fastapi import APIRouter, Body, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AuthError,
    Caller,
    Session,
    caller_for_key,
    issue_session,
    resolve_caller,
)
from api.routers.deps import SettingsDep
from api.settings import Settings

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/session", tags=["session"])


class LoginBody(BaseModel):
    """An API key to exchange for a session cookie."""

    key: str = Field(min_length=1, max_length=512, description="the API key")


def _safe_next(target: str | None, root: str) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return root + "/"
    return target


def _cookie_path(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") or "/"


def _secure(request: Request, settings: Settings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    base = settings.base_url or ""
    return base.startswith("https://") or request.url.scheme == "https"


def _set_cookies(response: Response, request: Request, settings: Settings, token: str,
                 session: Session) -> None:
    common = {"max_age": settings.session_ttl_s, "path": _cookie_path(request),
              "secure": _secure(request, settings), "samesite": "lax"}
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, session.csrf, httponly=False, **common)  # type: ignore[arg-type]
    response.headers["Cache-Control"] = "no-store"


def _clear_cookies(response: Response, request: Request) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=_cookie_path(request))
    response.headers["Cache-Control"] = "no-store"


def _login(request: Request, settings: Settings, key: str) -> tuple[str, Session]:
    try:
        caller = caller_for_key(settings, key)
    except AuthError:
        log.warning("failed login from %s", request.client.host if request.client else "?")
        raise
    token, session = issue_session(settings, caller)
    from api.audit import record_write

    record_write(request, action="session.login", target=f"session:{caller.name}",
                 caller=caller, detail={"via": "login", "expires": session.expires})
    return token, session


def _describe(caller: Caller, session: Session | None) -> dict[str, object]:
    return {
        "authenticated": caller.role is not None,
        "name": caller.name if caller.role is not None else None,
        "role": caller.role.value if caller.role is not None else None,
        "via": caller.via,
        "expires": session.expires if session else None,
        "csrf_token": session.csrf if session else None,
    }


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 BasinWatch</title>
<style>body{{font-family:sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
label,input,button{{display:block;width:100%;margin:.4rem 0;font-size:1rem}}
input,button{{padding:.5rem;box-sizing:border-box}}.err{{color:#b00020}}</style></head>
<body><h1>{title}</h1><p>请输入 API 密钥以查看执法地图。<br>Enter your API key to open the map.</p>
{error}<form method="post" action="{action}">
<label for="key">API 密钥 / API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 / Log in</button></form></body></html>"""


def _page(request: Request, settings: Settings, target: str, error: str = "") -> str:
    root = request.scope.get("root_path", "").rstrip("/")
    return _PAGE.format(
        title=html.escape(settings.title), action=html.escape(root + "/session/login"),
        next=html.escape(target), error=f'<p class="err" role="alert">{html.escape(error)}</p>'
        if error else "",
    )


@router.get("/login", summary="Login page (HTML)", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep,
               next: Annotated[str | None, Query(max_length=512)] = None) -> HTMLResponse:  # noqa: A002
    """A form asking for an API key; it posts to ``/session/login``."""
    root = request.scope.get("root_path", "").rstrip("/")
    res = HTMLResponse(_page(request, settings, _safe_next(next, root)))
    res.headers["Cache-Control"] = "no-store"
    return res


@router.post("/login", summary="Log in from the HTML form", response_class=RedirectResponse,
             status_code=303, responses={401: {"description": "Unknown key: the form again",
                                               "content": {"text/html": {}}}})
def login_form(
    request: Request,
    settings: SettingsDep,
    key: Annotated[str, Form(min_length=1, max_length=512)],
    next: Annotated[str | None, Form(max_length=512)] = None,  # noqa: A002
) -> Response:
    """Check the key; on success set the session cookie and go to ``next`` (303)."""
    root = request.scope.get("root_path", "").rstrip("/")
    target = _safe_next(next, root)
    try:
        token, session = _login(request, settings, key)
    except AuthError:
        res = HTMLResponse(_page(request, settings, target, "密钥无效 / Unknown API key."),
                           status_code=401)
        res.headers["Cache-Control"] = "no-store"
        return res
    res = RedirectResponse(target, status_code=303)
    _set_cookies(res, request, settings, token, session)
    return res


@router.post("", summary="Log in (JSON): exchange an API key for a session cookie")
def login(request: Request, settings: SettingsDep,
          body: Annotated[LoginBody, Body()]) -> JSONResponse:
    """Sets the ``bw_session`` (HttpOnly) and ``bw_csrf`` cookies; returns the role, the
    expiry and the CSRF token for writes."""
    token, session = _login(request, settings, body.key)
    res = JSONResponse(_describe(session.caller, session))
    _set_cookies(res, request, settings, token, session)
    return res


@router.get("", summary="Who am I")
def whoami(request: Request, settings: SettingsDep) -> JSONResponse:
    """The caller of this request: role and name (never any part of a key)."""
    caller = resolve_caller(request, settings)
    res = JSONResponse(_describe(caller, getattr(request.state, "session", None)))
    res.headers["Cache-Control"] = "no-store"
    return res


@router.delete("", summary="Log out", status_code=204, response_class=Response)
def logout(request: Request) -> Response:
    """Clears the session cookies."""
    res = Response(status_code=204)
    _clear_cookies(res, request)
    return res


@router.post("/logout", summary="Log out from a form", response_class=RedirectResponse,
             status_code=303)
def logout_form(request: Request) -> Response:
    """Clears the session cookies and returns to the login page."""
    root = request.scope.get("root_path", "").rstrip("/")
    res = RedirectResponse(root + "/session/login", status_code=303)
    _clear_cookies(res, request)
    return res
