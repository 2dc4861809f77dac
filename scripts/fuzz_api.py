"""Schemathesis against a real ``basinwatch serve``, keys off and keys on (CI runs this).

Usage::

    .venv/bin/python scripts/fuzz_api.py [--examples 40] [--postgis URL] [--min-cases 2000]

For each mode it loads a small synthetic registry (300 enterprises) into a fresh store in a
temporary directory, starts ``basinwatch serve`` on a free 127.0.0.1 port and runs
``schemathesis run --checks all`` on its ``/openapi.json``:

- ``open``: ``BASINWATCH_READ_OPEN=true`` and no key sent (writes must answer 401);
- ``closed``: ``BASINWATCH_READ_OPEN=false`` and an editor key sent with every request.

With ``--postgis`` the ``closed`` mode runs on PostGIS (a throwaway schema). Exits non-zero
if schemathesis reports any failure or error, or if fewer than ``--min-cases`` test cases
ran in total. Configuration (what counts as a rejection for values the OpenAPI document
cannot constrain) is ``scripts/schemathesis.toml``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EDITOR_KEY = "fuzz-editor-key-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(data: Path, url: str | None, schema: str | None) -> str:
    """Load 300 classified synthetic enterprises; return BASINWATCH_DATABASE_URL."""
    from api.store import get_store
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_registry, write_registry

    data.mkdir(parents=True, exist_ok=True)
    path = write_registry(synthetic_registry(300, seed=5), data / "registry.csv")
    frame = run_pipeline(path).enterprises
    if url:
        store = get_store(url, schema=schema)
        db_url = url + f"?options=-csearch_path%3D{schema}%2Cpublic"
    else:
        db_url = str(data / "basinwatch.gpkg")
        store = get_store(db_url)
    store.init()
    store.load_enterprises(frame, loaded_by="fuzz", source_name="registry.csv",
                           source_sha256="0" * 64)
    store.close()
    return db_url


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("basinwatch")
    out = log.open("wb")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--no-sample-if-empty"],
                            env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start within 90 s")


def _run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> tuple[int, bool]:
    schema = f"fuzz_{uuid.uuid4().hex[:10]}" if args.postgis and mode == "closed" else None
    data = tmp / mode
    db_url = _prepare(data, args.postgis if schema else None, schema)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASINWATCH_")}
    env.update({
        "BASINWATCH_DATA_DIR": str(data),
        "BASINWATCH_DATABASE_URL": db_url,
        "BASINWATCH_API_KEYS": json.dumps({EDITOR_KEY: "editor"}),
        "BASINWATCH_READ_OPEN": "true" if mode == "open" else "false",
        "BASINWATCH_RATE_LIMIT_PER_MINUTE": "0",
        "BASINWATCH_UPLOAD_LIMIT_PER_HOUR": "0",
        "BASINWATCH_GEOMETRY_TIMEOUT_S": "3",
    })
    server = _serve(env, port, data / "server.log")
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "--config-file",
           str(ROOT / "scripts" / "schemathesis.toml"), "run",
           f"http://127.0.0.1:{port}/openapi.json", "--checks", "all",
           "--max-examples", str(args.examples), "--workers", str(args.workers),
           "--seed", str(args.seed), "--no-color", "--request-timeout", "30"]
    if mode == "closed":
        cmd += ["-H", f"X-API-Key: {EDITOR_KEY}"]
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                             cwd=tmp)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if schema:
            _drop_schema(args.postgis, schema)
    out = res.stdout + res.stderr
    (tmp / f"schemathesis-{mode}.log").write_text(out)
    m = re.search(r"(\d+) generated", out)
    cases = int(m.group(1)) if m else 0
    ok = res.returncode == 0
    tail = "\n".join(out.strip().splitlines()[-25:])
    print(f"--- schemathesis, {mode} ({'PostGIS' if schema else 'GeoPackage'}): {cases} test "
          f"cases in {time.monotonic() - t0:.0f} s, exit {res.returncode}\n{tail}", flush=True)
    if not ok:
        server_log = (data / "server.log").read_text()[-4000:]
        print(f"--- schemathesis output ({mode}):\n{out[-20000:]}\n--- server log:\n"
              f"{server_log}", flush=True)
    return cases, ok


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy

    eng = sqlalchemy.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    eng.dispose()


def main() -> None:
    """Run both modes; exit 1 on any failure or too few cases."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=40, help="hypothesis examples per operation")
    p.add_argument("--workers", type=int, default=1,
                   help="schemathesis threads (CPython 3.11 ast.parse is not thread-safe: "
                        "\"AST constructor recursion depth mismatch\" with more)")
    p.add_argument("--seed", type=int, default=2019)
    p.add_argument("--postgis", default=os.environ.get("BASINWATCH_TEST_DATABASE_URL"))
    p.add_argument("--min-cases", type=int, default=2000)
    p.add_argument("--timeout", type=int, default=1200, help="seconds per mode")
    p.add_argument("--modes", default="open,closed")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bw-fuzz-"))
    print(f"working in {tmp}", flush=True)
    total, all_ok = 0, True
    try:
        for mode in args.modes.split(","):
            cases, ok = _run_mode(mode, args, tmp)
            total += cases
            all_ok &= ok
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"schemathesis: {total} test cases over {args.modes}; "
          f"{'no failures' if all_ok else 'FAILURES'}", flush=True)
    if not all_ok or total < args.min_cases:
        if total < args.min_cases:
            print(f"fewer than --min-cases={args.min_cases} test cases", flush=True)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
