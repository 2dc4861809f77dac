"""The bad-input corpus (``tests/data/bad_inputs/make_corpus.py``): every broken or
hostile registry file and query geometry gets a clear answer, never a server error.

A registry file is either refused as a whole (4xx OGC exception naming the file or the
limit) or validated, with every row accounted for (accepted + rejected = source rows) and
each rejected row carrying its reason. A geometry is either used (200) or refused with a
4xx naming the parameter or the limit.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from api.testing import READER_KEY

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs" / "make_corpus.py"


def _corpus():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("bw_bad_inputs", CORPUS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS_MODULE = _corpus()
REGISTRY = sorted(CORPUS_MODULE.registry_files())
GEOMETRY = sorted(CORPUS_MODULE.geometry_files())


def test_corpus_is_large_enough(tmp_path: Path) -> None:
    written = CORPUS_MODULE.write_corpus(tmp_path)
    assert len(written) >= 50 and all(p.exists() for p in written)
    assert len(REGISTRY) >= 25 and len(GEOMETRY) >= 25


@pytest.fixture(scope="module")
def bad_client(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The real pipeline over an embedded store; small row cap so the row limit shows."""
    import warnings

    from api.app import create_app
    from api.settings import Settings
    from api.store import get_store
    from api.testing import make_enterprises

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    tmp = tmp_path_factory.mktemp("bad")
    store = get_store(tmp / "store.gpkg")
    store.init()
    store.load_enterprises(make_enterprises(), loaded_by="t", source_name="a.csv",
                           source_sha256="0")
    app = create_app(Settings(data_dir=tmp, api_keys={READER_KEY: "viewer"},
                              rate_limit_per_minute=0, upload_limit_per_hour=0,
                              max_vertices=10_000, geometry_timeout_s=2.0), store=store)
    yield TestClient(app)
    app.state.geometry_workers.close()


def _is_ogc_error(r) -> bool:  # noqa: ANN001
    body = r.json()
    return set(body) == {"code", "description"} and len(body["description"]) > 10


@pytest.mark.parametrize("name", REGISTRY)
def test_registry_file(bad_client, name: str) -> None:  # noqa: ANN001
    data = CORPUS_MODULE.registry_files()[name]()
    t0 = time.process_time()  # CPU of this process (app in-process): not the machine's load
    r = bad_client.post("/registry", files={"file": (name, data, "application/octet-stream")},
                        headers={"X-API-Key": READER_KEY})
    took = time.process_time() - t0
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert took < 30, f"{name}: {took:.1f} CPU s (a hostile file must not make the server spin)"
    if r.status_code >= 400:
        assert r.status_code in (400, 413), r.text
        assert _is_ogc_error(r), r.text
        desc = r.json()["description"]
        assert "file" in desc or "registry" in desc.lower(), r.text
        return
    rep = r.json()
    assert rep["accepted"] + rep["rejected"] == rep["source_rows"], rep
    for row in rep["rejected_rows"]:
        assert row.get("reason") and row.get("message"), row


def test_expected_refusals(bad_client) -> None:  # noqa: ANN001
    """The hostile files are refused for the right reason, before the pipeline reads them."""
    files = CORPUS_MODULE.registry_files()
    for name, needle, status in (("zip_bomb.xlsx", "BASINWATCH_MAX_XLSX_UNCOMPRESSED_MB", 413),
                                 ("many_members.xlsx", "zip members", 413),
                                 ("truncated.xlsx", "not a readable .xlsx", 400),
                                 ("not_a_workbook.xlsx", "registry", 400)):
        r = bad_client.post("/registry", files={"file": (name, files[name](), "x/y")},
                            headers={"X-API-Key": READER_KEY})
        assert r.status_code == status and needle in r.json()["description"], (name, r.text)


@pytest.mark.parametrize("name", GEOMETRY)
def test_geometry_file(bad_client, name: str) -> None:  # noqa: ANN001
    data = CORPUS_MODULE.geometry_files()[name]()
    t0 = time.process_time()  # CPU here; the capped worker processes time out on their own
    if name.endswith(".json"):
        r = bad_client.post("/query/within", content=data,
                            headers={"Content-Type": "application/json"})
        param = "body"
    else:
        r = bad_client.post("/query/within", content=data,
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 400  # WKT is not a JSON body
        r = bad_client.get("/map/area", params={"within": data.decode()})
        param = "within"
    took = time.process_time() - t0
    assert r.status_code < 500, r.text
    assert took < 10, f"{name}: {took:.1f} CPU s"
    if r.status_code != 200:
        assert r.status_code in (400, 413, 414), r.text
        assert _is_ogc_error(r), r.text
        desc = r.json()["description"]
        assert param in desc or "BASINWATCH_" in desc or "body" in desc, desc
