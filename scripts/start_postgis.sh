#!/usr/bin/env bash
# Start a throwaway PostgreSQL + PostGIS cluster on loopback for the contract tests.
#
# Usage: scripts/start_postgis.sh [--install] [--stop]
#   --install  apt-get install postgresql and postgresql-<major>-postgis-3 first
#   --stop     stop the cluster started by this script and remove its data directory
# Environment: PGPORT (default 54329), PGDATA_DIR (default /tmp/basinwatch-pgdata),
#              PGDB (default basinwatch_test).
# Prints the export line for BASINWATCH_TEST_DATABASE_URL on success.
set -euo pipefail

PORT="${PGPORT:-54329}"
DATA="${PGDATA_DIR:-/tmp/basinwatch-pgdata}"
DB="${PGDB:-basinwatch_test}"
LOG="${DATA}.log"

if [[ "${1:-}" == "--install" ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql
    MAJOR="$(basename "$(dirname "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)")")"
    apt-get install -y -q --no-install-recommends "postgresql-${MAJOR}-postgis-3"
    shift
fi

BIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [[ -z "$BIN" || ! -x "$BIN/initdb" ]]; then
    echo "PostgreSQL server binaries not found; run $0 --install" >&2
    exit 1
fi

as_pg() {
    if [[ "$(id -u)" == "0" ]]; then
        su postgres -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

if [[ "${1:-}" == "--stop" ]]; then
    as_pg "'$BIN/pg_ctl' -D '$DATA' -m fast stop" || true
    rm -rf "$DATA" "$LOG"
    exit 0
fi

if [[ ! -f "$DATA/PG_VERSION" ]]; then
    mkdir -p "$DATA"
    [[ "$(id -u)" == "0" ]] && chown postgres:postgres "$DATA"
    as_pg "'$BIN/initdb' -D '$DATA' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null"
fi
touch "$LOG"
[[ "$(id -u)" == "0" ]] && chown postgres:postgres "$LOG"

if ! as_pg "'$BIN/pg_ctl' -D '$DATA' status >/dev/null 2>&1"; then
    as_pg "'$BIN/pg_ctl' -D '$DATA' -w -t 60 -l '$LOG' \
        -o \"-k /tmp -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null"
fi

PSQL="$BIN/psql -h 127.0.0.1 -p $PORT -U postgres -v ON_ERROR_STOP=1 -q"
if ! $PSQL -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    $PSQL -d postgres -c "CREATE DATABASE $DB"
fi
if ! $PSQL -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS postgis"; then
    MAJOR="$(basename "$(dirname "$BIN")")"
    echo "start_postgis.sh: the PostGIS extension cannot be created in PostgreSQL ${MAJOR};" \
         "install it: apt-get install postgresql-${MAJOR}-postgis-3" >&2
    exit 1
fi

echo "export BASINWATCH_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:${PORT}/${DB}"
