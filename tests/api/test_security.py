"""Access and browser hygiene: roles, hashed keys, sessions, audit log, CORS, headers,
trusted links, no key prefixes in the load history, Swagger UI served locally."""

from __future__ import annotations

import re

import pytest

from api.settings import Settings, hash_key
from api.testing import ADMIN_KEY, EDITOR_KEY, READER_KEY

ITEMS = "/collections/enterprises/items"
# FIPS 180-2 example: SHA-256 of the 56-character message below
FIPS_MSG = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
FIPS_SHA256 = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"


def _csv_upload(name: str = "名录.csv") -> dict:
    return {"file": (name, "企业名称,经度,纬度\n甲,116.4,23.2\n".encode(), "text/csv")}


# -- keys and roles ---------------------------------------------------------------------------
def test_key_hash_is_sha256() -> None:
    assert hash_key(FIPS_MSG) == "sha256:" + FIPS_SHA256


def test_hash_key_cli(tmp_path) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from api.cli import app

    res = CliRunner().invoke(app, ["hash-key"], input=FIPS_MSG + "\n")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == "sha256:" + FIPS_SHA256
    weak = CliRunner().invoke(app, ["hash-key"], input="short\n")
    assert weak.exit_code == 2


def test_settings_accept_hashes_only(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(read_open=False,
                         api_keys={"sha256:" + FIPS_SHA256: {"role": "viewer", "name": "张三"}})
    assert client.get(ITEMS, headers={"X-API-Key": FIPS_MSG}).status_code == 200
    # the stored hash is not itself a key
    assert client.get(ITEMS, headers={"X-API-Key": "sha256:" + FIPS_SHA256}).status_code == 401
    assert client.get(ITEMS).status_code == 401


def test_bad_hash_and_weak_key_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sha256"):
        Settings(api_keys={"sha256:abc": "editor"})
    with pytest.raises(ValidationError, match="too weak"):
        Settings(api_keys={"password": "admin"})


def test_roles(make_client, fake_pipeline_ok, store) -> None:  # noqa: ANN001
    client = make_client(run_pipeline=fake_pipeline_ok)
    viewer, editor, admin = ({"X-API-Key": k} for k in (READER_KEY, EDITOR_KEY, ADMIN_KEY))
    assert client.post("/registry", files=_csv_upload(), headers=viewer).status_code == 200
    r = client.post("/registry?load=true", files=_csv_upload(), headers=viewer)
    assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    assert client.post("/registry?load=true", files=_csv_upload(),
                       headers=editor).status_code == 201
    assert client.post("/registry?load=true", files=_csv_upload(),
                       headers=admin).status_code == 201  # admin includes editor
    assert client.get("/admin/audit", headers=editor).status_code == 403
    assert client.get("/admin/audit").status_code == 401
    assert client.get("/admin/audit", headers=admin).status_code == 200


# -- audit log --------------------------------------------------------------------------------
def test_every_write_is_audited(make_client, fake_pipeline_ok, store) -> None:  # noqa: ANN001
    client = make_client(run_pipeline=fake_pipeline_ok)
    client.post("/registry?load=true", files=_csv_upload("第一版.csv"),
                headers={"X-API-Key": EDITOR_KEY})
    client.post("/registry?load=true", files=_csv_upload(), headers={"X-API-Key": READER_KEY})
    client.post("/registry?load=true", files=_csv_upload())
    entries = client.get("/admin/audit", headers={"X-API-Key": ADMIN_KEY}).json()["entries"]
    assert [e["outcome"].split(":")[0] for e in entries] == ["denied", "denied", "ok"]
    assert entries[0]["actor"] == "anonymous" and entries[0]["action"] == "POST /registry"
    assert entries[1]["role"] == "viewer" and entries[1]["action"] == "registry.load"
    ok = entries[-1]
    assert ok["action"] == "registry.load"
    assert ok["role"] == "editor" and ok["target"] == f"load:{store.loads()[0].load_id}"
    assert ok["detail"]["source_name"] == "第一版.csv" and ok["client"]
    assert ok["actor"] == "key-" + hash_key(EDITOR_KEY)[7:15]
    text = str(entries)
    for key in (EDITOR_KEY, READER_KEY, ADMIN_KEY):
        assert key[-12:] not in text and key not in text  # no key in the log


def test_audit_entries_persist_in_the_store(store) -> None:  # noqa: ANN001
    from api.store.base import AuditEntry

    store.record_audit(AuditEntry(actor="甲", role="editor", action="case.create",
                                  target="case:1", outcome="ok", detail={"n": 1}))
    store.record_audit(AuditEntry(actor="乙", role="admin", action="case.close",
                                  target="case:1", outcome="ok"))
    got = store.audit_entries(limit=10)
    assert [(e.actor, e.action) for e in got] == [("乙", "case.close"), ("甲", "case.create")]
    assert got[1].detail == {"n": 1} and got[0].at is not None


# -- load history -----------------------------------------------------------------------------
def test_load_history_leaks_no_key_prefix(make_client, fake_pipeline_ok, store) -> None:  # noqa: ANN001
    client = make_client(run_pipeline=fake_pipeline_ok)
    client.post("/registry?load=true", files=_csv_upload(), headers={"X-API-Key": EDITOR_KEY})
    store.load_enterprises(fake_pipeline_ok.frame, loaded_by="key:edit…", source_name="old.csv",
                           source_sha256="0" * 64)  # as recorded before this change
    anon = client.get("/registry/loads")
    assert [d["loaded_by"] for d in anon.json()["loads"]] == [None, None]
    as_editor = client.get("/registry/loads", headers={"X-API-Key": EDITOR_KEY}).text
    for text in (anon.text, as_editor):
        assert EDITOR_KEY[:4] not in text and "key:" not in text


# -- sessions ---------------------------------------------------------------------------------
def test_browser_session_opens_a_closed_deployment(make_client, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(read_open=False)
    page = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/session/login")
    form = client.get("/session/login")
    assert form.status_code == 200 and 'name="key"' in form.text
    bad = client.post("/session/login", data={"key": "wrong-key-0123456789"},
                      follow_redirects=False)
    assert bad.status_code == 401 and "bw_session" not in bad.headers.get("set-cookie", "")
    r = client.post("/session/login", data={"key": READER_KEY, "next": "/map"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/map"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("bw_session="))
    assert "HttpOnly" in session and "samesite=lax" in session.lower()
    assert READER_KEY not in session  # the cookie is a signed token, not the key
    assert client.get(ITEMS).json()["numberMatched"] == len(enterprises)  # cookie sent
    assert client.get("/map", headers={"Accept": "text/html"}).status_code == 200
    who = client.get("/session").json()
    assert (who["role"], who["via"]) == ("viewer", "session")
    client.cookies.clear()
    assert client.get(ITEMS).status_code == 401


def test_open_redirect_is_refused(make_client) -> None:  # noqa: ANN001
    client = make_client()
    r = client.post("/session/login", data={"key": READER_KEY, "next": "//evil.example/x"},
                    follow_redirects=False)
    assert r.headers["location"] == "/"


def test_forged_or_orphaned_session_is_refused(make_client, tmp_path, store, enterprises) -> None:  # noqa: ANN001
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    client = make_client(read_open=False)
    token = client.post("/session", json={"key": READER_KEY}).cookies["bw_session"]
    client.cookies.clear()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    client.cookies.set("bw_session", forged)
    assert client.get(ITEMS).status_code == 401
    # the key removed from the settings: its sessions end (same data dir, same secret)
    other = make_client(read_open=False, api_keys={EDITOR_KEY: "editor"})
    other.cookies.set("bw_session", token)
    assert other.get(ITEMS).status_code == 401


def test_session_writes_need_the_csrf_token(make_client, fake_pipeline_ok) -> None:  # noqa: ANN001
    client = make_client(run_pipeline=fake_pipeline_ok)
    login = client.post("/session", json={"key": EDITOR_KEY}).json()
    assert login["role"] == "editor" and login["csrf_token"]
    r = client.post("/registry?load=true", files=_csv_upload())
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["description"]
    r = client.post("/registry?load=true", files=_csv_upload(),
                    headers={"X-CSRF-Token": login["csrf_token"]})
    assert r.status_code == 201, r.text


# -- CORS, headers, links, docs ---------------------------------------------------------------
def test_cors_closed_by_default(make_client) -> None:  # noqa: ANN001
    client = make_client()
    pre = client.options(ITEMS, headers={"Origin": "https://evil.example",
                                         "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 403 and pre.json()["code"] == "Forbidden"
    assert "access-control-allow-origin" not in pre.headers
    r = client.get("/conformance", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_configurable(make_client) -> None:  # noqa: ANN001
    client = make_client(cors_origins=["https://gis.example.gov.cn"])
    pre = client.options(ITEMS, headers={"Origin": "https://gis.example.gov.cn",
                                         "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "X-API-Key"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://gis.example.gov.cn"
    r = client.get("/conformance", headers={"Origin": "https://gis.example.gov.cn"})
    assert r.headers["access-control-allow-origin"] == "https://gis.example.gov.cn"
    assert client.options(ITEMS, headers={"Origin": "https://evil.example",
                                          "Access-Control-Request-Method": "GET"}
                          ).status_code == 403


@pytest.mark.parametrize("path", ["/", "/collections", "/map", "/docs", "/nowhere",
                                  "/session/login"])
def test_security_headers(loaded_client, path: str) -> None:  # noqa: ANN001
    r = loaded_client.get(path, headers={"Accept": "text/html"} if path == "/map" else {})
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["script-src"].split()[0] == "'self'"
    assert r.headers["x-frame-options"] == "DENY"


def test_host_header_is_not_trusted_for_links(make_client, store, enterprises) -> None:  # noqa: ANN001
    client = make_client()
    r = client.get("/", headers={"Host": "evil.example"})
    hrefs = [ln["href"] for ln in r.json()["links"]]
    assert hrefs and not any("evil.example" in h for h in hrefs)
    trusted = make_client(trusted_hosts=["gis.internal"])
    hrefs = [ln["href"] for ln in trusted.get("/", headers={"Host": "gis.internal:8080"})
             .json()["links"]]
    assert all(h.startswith("http://gis.internal:8080/") for h in hrefs)
    based = make_client(base_url="https://basinwatch.example.gov.cn/api")
    hrefs = [ln["href"] for ln in based.get("/", headers={"Host": "evil.example"})
             .json()["links"]]
    assert all(h.startswith("https://basinwatch.example.gov.cn/api/") for h in hrefs)


def test_swagger_ui_is_served_locally(loaded_client) -> None:  # noqa: ANN001
    page = loaded_client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # nothing from elsewhere
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        asset = loaded_client.get(src)
        assert asset.status_code == 200 and len(asset.content) > 100, src
    js = loaded_client.get("/static/docs/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content


@pytest.fixture
def fake_pipeline_ok(enterprises):  # noqa: ANN001, ANN201
    """A pipeline stand-in returning the fixture frame (its ``frame`` attribute)."""
    from dataclasses import dataclass

    import pandas as pd

    @dataclass
    class Result:
        enterprises: object
        rejected: object
        source_rows: int

    def run(source, *, filename):  # noqa: ANN001, ANN202
        return Result(enterprises, pd.DataFrame({"row": [], "reason": []}), len(enterprises))

    run.frame = enterprises  # type: ignore[attr-defined]
    return run
