"""Every answer of one request comes from one store version, on both stores.

- A load committed between a request's feature query and its counts (made to happen
  there) does not mix the two versions in the answer.
- Readers hammering ``/query/radius``, ``/map/area`` and ``/collections/.../items`` of a
  live server while loads alternate between two different lists never see a mixed answer.
- ``kill -9`` of the server process in the middle of a registry load (a real subprocess)
  leaves the previous version served intact, and the next load works.
- A departed client's PostGIS statement is cancelled (the cancel hook of a pinned view).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import httpx
import pytest

from api.store import FeatureQuery, Store
from api.testing import EDITOR_KEY, live_server, make_enterprises

#: Dataset A: the six sample enterprises; dataset B: 15 others, names prefixed "B".
_B_ROWS = [(f"B厂{i:02d}", "dyeing", "印染", "rectify", "lianjiang", "潮南区",
            116.30 + i * 0.01, 23.20 + (i % 3) * 0.01) for i in range(15)]


def _datasets() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    return make_enterprises(), make_enterprises(_B_ROWS)


def _consistent(body: dict, names: list[str], sizes: dict[int, str]) -> str | None:
    """None when one version answered, else what was mixed."""
    total = body.get("numberMatched", body.get("total"))
    counted = sum(body["counts"]["verdict"].values()) if "counts" in body else sum(
        body["verdict"].values())
    if counted != total:
        return f"counts sum {counted} but {total} matched"
    kinds = {"B" if n.startswith("B厂") else "A" for n in names}
    if len(kinds) > 1:
        return f"features of both lists: {sorted(kinds)}"
    if kinds and sizes.get(total) not in kinds:
        return f"{total} matched (list {sizes.get(total)}) but features of list {kinds}"
    return None


def test_load_between_query_and_counts_does_not_mix(loaded_client, store, monkeypatch) -> None:  # noqa: ANN001
    a, b = _datasets()
    cls = type(store)
    real_counts = cls.counts_many
    fired: list[float] = []

    def counts_after_a_load(self, q, columns):  # noqa: ANN001, ANN202
        if not fired:
            fired.append(time.monotonic())
            loader = threading.Thread(target=store.load_enterprises, args=(b,),
                                      kwargs={"loaded_by": "race", "source_name": "b.csv",
                                              "source_sha256": "b" * 64})
            loader.start()
            loader.join(timeout=1.5)  # PostGIS: the swap waits for this request's snapshot
        return real_counts(self, q, columns)

    monkeypatch.setattr(cls, "counts_many", counts_after_a_load)
    r = loaded_client.get("/query/radius", params={"lon": 116.4, "lat": 23.25,
                                                   "radius_m": 400_000})
    assert r.status_code == 200, r.text
    body = r.json()
    names = [f["properties"]["name"] for f in body["features"]]
    assert fired, "the load was not triggered inside the request"
    assert _consistent(body, names, {len(a): "A", len(b): "B"}) is None
    assert body["numberMatched"] == len(a)  # the version current when the request began
    deadline = time.monotonic() + 20
    while len(store.loads()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.undo()
    after = loaded_client.get("/query/radius", params={"lon": 116.4, "lat": 23.25,
                                                       "radius_m": 400_000}).json()
    assert after["numberMatched"] == len(b)  # the next request sees the new version


@pytest.mark.slow
def test_no_mixed_answers_under_concurrent_loads(store: Store, make_app) -> None:  # noqa: ANN001
    a, b = _datasets()
    sizes = {len(a): "A", len(b): "B"}
    store.load_enterprises(a, loaded_by="t", source_name="a.csv", source_sha256="a" * 64)
    app = make_app(rate_limit_per_minute=0)
    stop = threading.Event()
    checked: list[int] = []
    mixed: list[str] = []
    seen: set[str] = set()
    urls = [("/query/radius", {"lon": 116.4, "lat": 23.25, "radius_m": 400_000}),
            ("/map/area", {"basin_id": "lianjiang,maozhou,"}),
            ("/map/area", {}),
            ("/query/radius", {"lon": 116.4, "lat": 23.25, "radius_m": 400_000, "limit": 3})]

    def loader() -> None:
        i = 0
        while not stop.is_set():
            frame = b if i % 2 == 0 else a
            store.load_enterprises(frame, loaded_by="loop", source_name=f"{i}.csv",
                                   source_sha256=f"{i:064d}")
            i += 1

    def reader(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            k = 0
            while not stop.is_set():
                path, params = urls[k % len(urls)]
                k += 1
                body = client.get(path, params=params).json()
                rows = body.get("features") or body.get("rows") or []
                names = [r["properties"]["name"] if isinstance(r, dict) else r[1] for r in rows]
                problem = _consistent(body, names, sizes)
                checked.append(1)
                seen.add(sizes.get(body.get("numberMatched", body.get("total")), "?"))
                if problem:
                    mixed.append(f"{path}: {problem}")

    with live_server(app) as url:
        threads = [threading.Thread(target=loader)] + [
            threading.Thread(target=reader, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(8.0)  # bounded run
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not mixed, f"{len(mixed)} mixed answers of {len(checked)}: {mixed[:5]}"
    assert len(checked) >= 40 and {"A", "B"} <= seen, (len(checked), seen)


# -- kill -9 in the middle of a load ---------------------------------------------------------
def _registry_csv(path: Path, n: int) -> Path:
    from geo.synthetic import synthetic_registry, write_registry

    return write_registry(synthetic_registry(n, seed=11), path)


def _server_env(store: Store, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASINWATCH_")}
    env.update({"BASINWATCH_DATA_DIR": str(tmp_path / "data"),
                "BASINWATCH_API_KEYS": f'{{"{EDITOR_KEY}": "editor"}}',
                "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0",
                "BASINWATCH_UPLOAD_LIMIT_PER_HOUR": "0"})
    if store.provider == "gpkg":
        env["BASINWATCH_DATABASE_URL"] = str(store.path)  # type: ignore[attr-defined]
    else:
        env["BASINWATCH_DATABASE_URL"] = (store.url + f"?options=-csearch_path%3D"  # type: ignore[attr-defined]
                                          f"{store.schema}%2Cpublic")  # type: ignore[attr-defined]
    return env


def _start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("basinwatch")
    log = Path(env["BASINWATCH_DATA_DIR"]).parent / f"server-{port}.log"
    with log.open("wb") as out:  # a file, never an undrained pipe
        proc = subprocess.Popen([str(exe), "serve", "--port", str(port),
                                 "--no-sample-if-empty"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not answer within 60 s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_in_progress(store: Store, pid: int) -> bool:
    if store.provider == "gpkg":
        return any(p.name.startswith(f".load-{pid}-")
                   for p in store.path.parent.iterdir())  # type: ignore[attr-defined]
    from sqlalchemy import text

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text(
            "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
            "(query LIKE 'COPY enterprises_staging%' OR query LIKE 'CREATE INDEX ix_staging%' "
            "OR query LIKE 'ALTER TABLE enterprises_staging%')")).all()
    return bool(rows)


@pytest.mark.slow
def test_kill_9_mid_load_leaves_the_previous_version(store: Store, tmp_path: Path) -> None:
    a, _ = _datasets()
    store.load_enterprises(a, loaded_by="before", source_name="a.csv", source_sha256="a" * 64)
    before = store.query(FeatureQuery()).features["name"].tolist()
    registry = _registry_csv(tmp_path / "registry.csv", 20_000)
    env = _server_env(store, tmp_path)
    port = _free_port()
    server = _start_server(env, port)
    caught = False
    try:
        def upload() -> None:
            try:
                with registry.open("rb") as fh:
                    httpx.post(f"http://127.0.0.1:{port}/registry", params={"load": "true"},
                               files={"file": ("big.csv", fh, "text/csv")},
                               headers={"X-API-Key": EDITOR_KEY}, timeout=120)
            except httpx.HTTPError:
                pass  # the server dies under it

        thread = threading.Thread(target=upload, daemon=True)
        thread.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            if _load_in_progress(store, server.pid):
                os.kill(server.pid, signal.SIGKILL)
                caught = True
                break
            time.sleep(0.005)
        server.wait(timeout=30)
        thread.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert caught, "the load finished before it could be interrupted"
    assert server.returncode == -signal.SIGKILL
    # a fresh server serves the previous version, whole
    port = _free_port()
    server = _start_server(env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        loads = httpx.get(f"{base}/registry/loads").json()["loads"]
        assert [ld["source_name"] for ld in loads] == ["a.csv"]
        body = httpx.get(f"{base}/collections/enterprises/items", params={"limit": 100}).json()
        assert body["numberMatched"] == len(a)
        assert [f["properties"]["name"] for f in body["features"]] == before
        if store.provider == "gpkg":  # the killed load's temporary file is gone
            assert not [p for p in store.path.parent.iterdir()  # type: ignore[attr-defined]
                        if p.name.startswith(".load-")]
        # and the next load works
        small = _registry_csv(tmp_path / "small.csv", 50)
        with small.open("rb") as fh:
            r = httpx.post(f"{base}/registry", params={"load": "true"},
                           files={"file": ("small.csv", fh, "text/csv")},
                           headers={"X-API-Key": EDITOR_KEY}, timeout=120)
        assert r.status_code == 201, r.text
        assert [ld["source_name"] for ld in httpx.get(f"{base}/registry/loads").json()["loads"]
                ] == ["small.csv", "a.csv"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.postgis
@pytest.mark.parametrize("store", ["postgis"], indirect=True)  # no statement to cancel in gpkg
def test_departed_client_cancels_the_pinned_statement(store: Store) -> None:
    from sqlalchemy import text

    from api.limits import CancelToken, QueryTimeoutError

    token = CancelToken()
    view = store.pinned(cancel=token)
    t0 = time.monotonic()

    def cancel_soon() -> None:
        time.sleep(0.5)
        for fn in token.cancel():
            fn()

    threading.Thread(target=cancel_soon, daemon=True).start()
    with pytest.raises(QueryTimeoutError, match="client went away"):
        with view._read() as conn:  # type: ignore[attr-defined]
            conn.execute(text("SELECT pg_sleep(20)"))
    took = time.monotonic() - t0
    view.release()
    assert took < 5, f"cancelled after {took:.1f} s"


@pytest.mark.postgis
@pytest.mark.parametrize("store", ["postgis"], indirect=True)
def test_a_value_the_database_rejects_is_a_query_error(store: Store) -> None:
    """Both read paths (snapshot transaction, one autocommit statement) turn a PostgreSQL
    data exception (SQLSTATE class 22, here 22012) into the user-facing query error; other
    database errors pass through unchanged."""
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    from geo.errors import InvalidQueryError

    for path in ("_read", "_one_statement"):  # a fresh view each: an error aborts its snapshot
        view = store.pinned()
        try:
            with pytest.raises(InvalidQueryError, match="rejected a value .*division by zero"):
                with getattr(view, path)() as conn:
                    conn.execute(text("SELECT 1 / 0"))
        finally:
            view.release()
    view = store.pinned()
    try:
        with pytest.raises(ProgrammingError):  # not a value: a missing table stays itself
            with view._one_statement() as conn:  # type: ignore[attr-defined]
                conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        view.release()
