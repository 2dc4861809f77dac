#!/usr/bin/env bash
# Set up and run every BasinWatch test on a Debian/Ubuntu machine with Python 3.11.
#   bash scripts/test.sh            # what README and CI run
# Steps: system packages (PostgreSQL+PostGIS, GDAL tools, Chromium+chromedriver, wrk) via apt when
# missing; a venv with the project and its test extras; a throwaway PostGIS cluster on
# loopback; pytest (unit, PostGIS, GDAL/OWSLib and browser tests); the notebooks; the
# benchmark smoke run. Under CI=true every service-bound test must run: a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 || need+=(postgis)
command -v gdalinfo >/dev/null 2>&1 || need+=(gdal-bin)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== python environment"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"

echo "== PostGIS"
if [ -z "${BASINWATCH_TEST_DATABASE_URL:-}" ]; then
  eval "$(bash scripts/start_postgis.sh)"
fi
export BASINWATCH_TEST_DATABASE_URL
if [ "${CI:-}" = "true" ]; then
  export BASINWATCH_REQUIRE_POSTGIS=1 BASINWATCH_REQUIRE_GDAL=1 BASINWATCH_REQUIRE_BROWSER=1
fi

echo "== ruff (pyflakes rules: undefined and unused names)"
.venv/bin/ruff check --select F --output-format concise geo layers api benchmarks tests

echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider
if [ -d notebooks ] && ls notebooks/*.ipynb >/dev/null 2>&1; then
  echo "== notebooks"
  .venv/bin/python -m pytest -p no:cacheprovider --nbmake notebooks -o filterwarnings= -q
fi
echo "== benchmark smoke runs (smallest sizes, no timing assertions; results to .bench-smoke/)"
mkdir -p .bench-smoke
.venv/bin/python benchmarks/run.py --smoke --out .bench-smoke/classify.md
.venv/bin/python benchmarks/scale.py --smoke --out .bench-smoke/scale.md
.venv/bin/python benchmarks/load_api.py --smoke --out .bench-smoke/api-load.md
