"""PostGIS store through SQLAlchemy 2, GeoAlchemy2 and psycopg 3.

Schema is owned by alembic (``api/migrations``); :meth:`PostGISStore.init` upgrades to head.
A load streams the frame into a staging table with ``COPY ... FROM STDIN (FORMAT csv)``,
builds the indexes and statistics there, then swaps it for ``enterprises`` and records the
load in one transaction: readers see the old list until commit, and any failure (or the
loading process killed: the server rolls back a transaction whose client is gone) leaves
the old list and history as they were.

Every read runs in a ``REPEATABLE READ, READ ONLY`` transaction that first takes
``ACCESS SHARE`` on ``enterprises`` (before its snapshot), so all statements of it see one
version: a swap committed meanwhile waits for it, and a swap committed before it is seen
whole. :meth:`PostGISStore.pinned` keeps one such transaction for a whole request, with
``statement_timeout`` from the service limits; a departed client cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2 import Geography, Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    cast,
    create_engine,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError, InternalError, OperationalError

from api.store.base import (
    BOOL_COLUMNS,
    FID,
    FLOAT_COLUMNS,
    GEOMETRY,
    INTEGER_COLUMNS,
    POINT_COLUMNS,
    TEXT_COLUMNS,
    AuditEntry,
    CancelHook,
    FeatureQuery,
    LoadRecord,
    QueryResult,
    Store,
    bbox_boxes,
    parse_bool,
    prepare_enterprises,
)
from api.store.cql import sql_filter
from api.store.geojson import FeaturePage
from geo.errors import InvalidQueryError
from geo.schema import ENFORCEMENT_COLUMNS

__all__ = [
    "PostGISStore",
    "MIGRATIONS_DIR",
    "REFERENCE_TABLES",
    "load_reference_layers",
    "classify_in_database",
    "store_rule_inputs",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_COPY_CHUNK = 100_000
_INDEXED = ("verdict", "industry_id", "basin_id", "region_id", "district_code", "city",
            "deadline_status")
#: Indexed columns blank for most enterprises (outside every basin, every region, no
#: deadline): indexed
#: only where not blank. A page of blank ones is found in primary key order at once, and
#: the build sorts ~4 % of the rows (BENCHMARKS.md, postgis-classify). A filter by values
#: that are not blank also states ``column <> ''`` as a literal: a prepared statement's
#: generic plan (psycopg prepares a text after 5 uses) can then prove the index's predicate.
_SPARSE = ("basin_id", "region_id", "deadline_status")

metadata = MetaData()


def _column(name: str) -> Column[Any]:
    if name in INTEGER_COLUMNS:
        return Column(name, Integer)
    if name in FLOAT_COLUMNS:
        return Column(name, Float(precision=53))
    if name in BOOL_COLUMNS:
        return Column(name, Boolean, nullable=False)
    return Column(name, Text, nullable=False)


enterprises = Table(
    "enterprises",
    metadata,
    Column(FID, BigInteger, primary_key=True),
    *[_column(c) for c in ENFORCEMENT_COLUMNS],
    Column("load_id", Integer),
    Column(GEOMETRY, Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
)
loads_table = Table(
    "loads",
    metadata,
    Column("load_id", Integer, primary_key=True),
    Column("loaded_at", DateTime(timezone=True)),
    Column("loaded_by", Text),
    Column("source_name", Text),
    Column("source_sha256", Text),
    Column("accepted", Integer),
    Column("rejected", Integer),
)

audit_table = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), server_default=func.now()),
    Column("actor", Text),
    Column("role", Text),
    Column("action", Text),
    Column("target", Text),
    Column("outcome", Text),
    Column("client", Text),
    Column("detail", Text),
)


#: Every property column of a GeoJSON answer: fid and the enforcement columns.
_ALL_NAMES = (FID, *ENFORCEMENT_COLUMNS)


def _names(columns: Sequence[str] | None) -> list[str]:
    """The property columns of a GeoJSON answer (all: fid and the enforcement columns)."""
    if columns is None:  # the columns the table is built from: nothing to check
        return list(_ALL_NAMES)
    names = list(columns)
    for name in names:
        if name not in enterprises.c or name == GEOMETRY:
            raise InvalidQueryError(f"properties: unknown property '{name}'.")
    return names


#: The live table's revision: the transaction that wrote its catalog row. A load and an
#: in-database classification that rewrites the list swap in a new table (a new row); one
#: that updates a few rows in place rewrites the row by an ``ALTER TABLE ... SET``.
#: ``ANALYZE`` and ``VACUUM`` update the row in place (same ``xmin``): no spurious change.
_TABLE_VERSION = ("(SELECT xmin::text::bigint FROM pg_class "
                  "WHERE oid = to_regclass('enterprises'))")
#: The data version a read sees: the newest load and the live table's revision.
_VERSION_SQL = f"(SELECT max(load_id) FROM loads), {_TABLE_VERSION}"


@dataclass(frozen=True)
class _Statements:
    """How to read one page's rows and its count (with the data version) on a connection."""

    rows: Callable[[Any], list[Any]]
    count: Callable[[Any], tuple[Any, ...]]


@functools.lru_cache(maxsize=256)
def _feature_sql(names: tuple[str, ...]) -> str:
    cols = "".join(f'"{n}", ' for n in names)
    return f"SELECT {cols}ST_X(geometry), ST_Y(geometry) FROM enterprises WHERE fid = %s"


def _feature_from_row(fid: int, names: Sequence[str], r: Sequence[Any] | None,
                      ) -> dict[str, Any] | None:
    """The GeoJSON feature of a row of :func:`_feature_sql` (None for no row)."""
    if r is None:
        return None
    k = len(names)
    return {"type": "Feature", "id": fid, "properties": dict(zip(names, r[:k])),
            "geometry": {"type": "Point", "coordinates": [r[k], r[k + 1]]}}


class _AsyncReads:
    """Autocommit psycopg ``AsyncConnection`` s of one event loop, at most ``size`` open
    (the lean item path, :mod:`api.itemfast`). Connections are opened on demand and kept;
    one that failed or is not idle after a statement is closed instead of kept."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self.loop = loop
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self.closed = False

    async def acquire(self) -> Any:
        """An idle connection, a new one, or the next one released."""
        await self._slots.acquire()
        try:
            if self._idle:
                return self._idle.pop()
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Any, *, broken: bool) -> None:
        """Give ``conn`` back (closed instead if ``broken`` or not idle)."""
        import psycopg.pq

        try:
            if (broken or self.closed or conn.closed
                    or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE):
                conn.pgconn.finish()
            else:
                self._idle.append(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections (synchronously: callable off the loop)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()


def _raw_sql(q: FeatureQuery, names: Sequence[str], where: str, params: list[Any],
             ) -> tuple[str, list[Any], str, list[Any]]:
    """Page and count texts (with their parameters) of a query by bbox and properties."""
    cols = "".join(f'"{n}", ' for n in names)
    page = (f"SELECT {cols}ST_X(geometry), ST_Y(geometry), fid, {_VERSION_SQL} "
            f"FROM enterprises WHERE {where} ORDER BY fid")
    args = list(params)
    if q.limit is not None:
        page += " LIMIT %s"
        args.append(int(q.limit))
    if q.offset:
        page += " OFFSET %s"
        args.append(int(q.offset))
    count = f"SELECT count(*), {_VERSION_SQL} FROM enterprises WHERE {where}"
    return page, args, count, params


def _raw_statements(q: FeatureQuery, names: Sequence[str], where: str,
                    params: list[Any]) -> _Statements:
    """Page and count of a query by bbox and properties as SQL texts for psycopg."""
    page, args, count, cparams = _raw_sql(q, names, where, params)
    return _Statements(lambda conn: conn.execute(page, args).fetchall(),
                       lambda conn: tuple(conn.execute(count, cparams).fetchone()))


def _needs_count(q: FeatureQuery, n: int) -> bool:
    """Whether a page of ``n`` rows needs a count (else ``numberMatched`` is offset + n)."""
    return not ((q.limit is None or n < q.limit) and (n > 0 or not q.offset))


def _page_features(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """GeoJSON features of page rows (properties, x, y, fid, version)."""
    k = len(names)
    return [{"type": "Feature", "id": r[k + 2], "properties": dict(zip(names, r[:k])),
             "geometry": {"type": "Point", "coordinates": [r[k], r[k + 1]]}}
            for r in rows]  # NaN coordinates are written as null by orjson


class _Pin:
    """The snapshot transaction of a pinned view, opened at its first read."""

    def __init__(self, store: PostGISStore, cancel: CancelHook | None) -> None:
        self.store = store
        self.cancel = cancel
        self.conn: Connection | None = None
        self._handle: object = None

    def connection(self) -> Connection:
        if self.conn is None:
            conn = self.store.engine.connect()
            try:
                self.store._begin_read(conn)
            except BaseException:
                conn.close()
                raise
            self.conn = conn
            if self.cancel is not None:
                raw = conn.connection.driver_connection
                self._handle = self.cancel.add_callback(raw.cancel_safe)
        return self.conn

    def close(self) -> None:
        if self.cancel is not None and self._handle is not None:
            self.cancel.remove_callback(self._handle)
            self._handle = None
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                conn.rollback()
            except Exception as exc:  # noqa: BLE001 - e.g. cancelled as the client left
                log.debug("pinned read ended with %s; connection discarded", exc)
                conn.invalidate()
            finally:
                conn.close()


def _index_ddl(table: str) -> list[str]:
    """The statements building the list's indexes on ``table`` (``<table>_pkey``,
    ``ix_<table>_...``); :func:`_swap_ddl` makes the unique one the primary key."""
    return [
        f"CREATE UNIQUE INDEX {table}_pkey ON {table} (fid)",
        f"CREATE INDEX ix_{table}_geometry ON {table} USING gist (geometry)",
        # (column, fid): a page by one value walks its index in fid order and stops
        *[f"CREATE INDEX ix_{table}_{c} ON {table} ({c}, fid)"
          + (f" WHERE {c} <> ''" if c in _SPARSE else "") for c in _INDEXED],
    ]


def _swap_ddl(table: str) -> list[str]:
    """The statements putting ``table``, indexed by :func:`_index_ddl`, in place of
    ``enterprises`` (readers see the old table until the transaction commits)."""
    return [
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY USING INDEX {table}_pkey",
        "DROP TABLE enterprises",
        f"ALTER TABLE {table} RENAME TO enterprises",
        f"ALTER INDEX {table}_pkey RENAME TO enterprises_pkey",
        f"ALTER INDEX ix_{table}_geometry RENAME TO ix_enterprises_geometry",
        *[f"ALTER INDEX ix_{table}_{c} RENAME TO ix_enterprises_{c}" for c in _INDEXED],
    ]


def _swap_in_staging(conn: Connection) -> None:
    """Index and analyse ``enterprises_staging``, then put it in place of ``enterprises``
    (in the caller's transaction: readers see the old table until commit)."""
    table = "enterprises_staging"
    # analysed before the swap: readers wait only for the swap itself
    for stmt in [*_index_ddl(table), f"ANALYZE {table}", *_swap_ddl(table)]:
        conn.execute(text(stmt))


class PostGISStore(Store):
    """Store in a PostGIS database.

    Parameters
    ----------
    url
        ``postgresql+psycopg://user@host:port/db``.
    schema
        Schema to work in (default: the server's search_path, normally ``public``).
    """

    provider = "postgis"

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        connect_args: dict[str, Any] = {}
        if schema:
            if not schema.replace("_", "").isalnum():
                raise ValueError(f"schema must be an identifier, got {schema!r}")
            connect_args["options"] = f"-csearch_path={schema},public"
        self.url = url
        self.schema = schema
        self.engine: Engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        #: (load id, property filter, columns) -> counts: property-only counts (a district's
        #: industries and verdicts for every point look-up) change only with a new load.
        self._counts_memo: dict[tuple[Any, ...], dict[str, dict[str, int]]] = {}
        #: (load id, property filter) -> number of features matched
        self._count_memo: dict[tuple[Any, ...], int] = {}
        self._pin: _Pin | None = None
        self._origin: PostGISStore | None = None
        self._single: Engine | None = None
        self._single_lock = threading.Lock()
        self._async: _AsyncReads | None = None

    def _single_options(self) -> str:
        """libpq ``options`` of the one-statement reads: the URL's, the schema's search
        path and the service's ``statement_timeout``."""
        origin = self._origin or self
        options = [str(make_url(origin.url).query.get("options") or "")]
        if origin.schema:
            options.append(f"-csearch_path={origin.schema},public")
        ms = int(origin.query_timeout_s * 1000) if origin.query_timeout_s else 0
        options.append(f"-cstatement_timeout={ms:d}")
        return " ".join(o for o in options if o)

    def _single_engine(self) -> Engine:
        """Autocommit pool of the one-statement reads (:meth:`_one_statement`), without
        ``pool_pre_ping`` and with the service's ``statement_timeout`` set at connect."""
        origin = self._origin or self
        with origin._single_lock:
            if origin._single is None:
                origin._single = create_engine(
                    origin.url, isolation_level="AUTOCOMMIT", pool_size=10,
                    connect_args={"options": origin._single_options()})
            return origin._single

    def _async_reads(self) -> _AsyncReads:
        """The pool of autocommit ``AsyncConnection`` s of the running event loop (the
        one-statement reads of :meth:`geojson_feature_async`), with the same connection
        parameters and ``options`` as :meth:`_single_engine`'s."""
        import psycopg

        origin = self._origin or self
        loop = asyncio.get_running_loop()
        with origin._single_lock:
            pool = origin._async
            if pool is not None and pool.loop is loop:
                return pool
            if pool is not None:  # another loop (tests run one per request): start afresh
                pool.close()
            eng = origin.engine
            cargs, cparams = eng.dialect.create_connect_args(eng.url)
            cparams = {**cparams, "options": origin._single_options(), "autocommit": True}

            async def connect() -> Any:
                return await psycopg.AsyncConnection.connect(*cargs, **cparams)

            origin._async = _AsyncReads(loop, connect, 10)
            return origin._async

    def configure(self, *, query_timeout_s: float | None = None) -> None:
        """Apply service limits (``statement_timeout`` of every read)."""
        super().configure(query_timeout_s=query_timeout_s)
        with self._single_lock:
            if self._single is not None:
                self._single.dispose()
                self._single = None
            if self._async is not None:
                self._async.close()
                self._async = None

    @contextlib.contextmanager
    def _one_statement(self) -> Iterator[Connection]:
        """A connection for a read of one statement (one snapshot by itself).

        A view whose snapshot transaction is already open answers in it; otherwise the
        statement runs alone in autocommit: no BEGIN, SET, LOCK or ROLLBACK round trips
        (the statement's own ``ACCESS SHARE`` lock and snapshot keep it on one version).
        A departed client cancels it as in a view.
        """
        if self._pin is None or self._pin.conn is not None:
            with self._read() as conn:
                yield conn
            return
        cancel, handle = self._pin.cancel, None
        try:
            with self._single_engine().connect() as conn:
                if cancel is not None:
                    handle = cancel.add_callback(conn.connection.driver_connection.cancel_safe)
                try:
                    yield conn
                finally:
                    if cancel is not None:
                        cancel.remove_callback(handle)
        except (OperationalError, DataError, InternalError) as exc:
            err = self._query_error(exc)
            if err is exc:
                raise
            raise err from exc

    @contextlib.contextmanager
    def _raw_statement(self) -> Iterator[Any]:
        """A psycopg connection for a read of one statement: :meth:`_one_statement`
        without SQLAlchemy's statement layer (the hot OGC paths send fixed SQL texts,
        which psycopg prepares on their fifth use per connection)."""
        import psycopg

        try:
            if self._pin is None or self._pin.conn is not None:
                with self._read() as conn:
                    yield conn.connection.driver_connection
                return
            cancel, handle = self._pin.cancel, None
            raw = self._single_engine().raw_connection()
            try:
                driver = raw.driver_connection
                if cancel is not None:
                    handle = cancel.add_callback(driver.cancel_safe)
                try:
                    yield driver
                finally:
                    if cancel is not None:
                        cancel.remove_callback(handle)
            except psycopg.OperationalError as exc:
                if not isinstance(exc, psycopg.errors.QueryCanceled):
                    raw.invalidate()  # a broken connection does not go back to the pool
                raise
            finally:
                raw.close()
        except (psycopg.OperationalError, psycopg.DataError, psycopg.InternalError) as exc:
            err = self._query_error(exc)
            if err is exc:
                raise
            raise err from exc

    def _query_error(self, exc: Exception) -> Exception:
        """The user-facing error of a failed read (a timeout/cancel or a rejected value);
        ``exc`` itself for any other database error."""
        import psycopg.errors

        orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps; the raw path raises psycopg's
        if isinstance(exc, OperationalError | psycopg.OperationalError):
            if not isinstance(orig, psycopg.errors.QueryCanceled):
                return exc
            from api.limits import QueryTimeoutError

            return QueryTimeoutError(
                f"query: ran longer than BASINWATCH_QUERY_TIMEOUT_S="
                f"{self.query_timeout_s or 0:g} s (or the client went away); narrow it "
                "with bbox, filter or limit."
            )
        first = str(orig).splitlines()[0] if orig else type(exc).__name__
        return InvalidQueryError(f"query: the database rejected a value ({first}).")

    def init(self) -> None:
        """Upgrade the schema to the newest alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            if self.schema:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")  # parallel revisions (e.g. cases, audit) both apply

    def close(self) -> None:
        """Dispose of the connection pools."""
        if self._origin is None:
            self.engine.dispose()
            if self._single is not None:
                self._single.dispose()
            if self._async is not None:
                self._async.close()
                self._async = None

    # -- one version per read ----------------------------------------------------------------
    def pinned(self, *, cancel: CancelHook | None = None) -> PostGISStore:
        """A view whose reads share one snapshot transaction (opened at its first read)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)  # copy.copy without its reduce protocol
        view._origin = self._origin or self
        view._pin = _Pin(self, cancel)
        return view

    @property
    def release_blocks(self) -> bool:  # type: ignore[override]
        """True once the view holds a connection."""
        return self._pin is not None and self._pin.conn is not None

    def release(self) -> None:
        """End the view's transaction and return its connection to the pool."""
        if self._pin is not None:
            self._pin.close()

    def _begin_read(self, conn: Connection) -> None:
        ms = int(self.query_timeout_s * 1000) if self.query_timeout_s else 0
        conn.exec_driver_sql(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
            f"SET LOCAL statement_timeout = {ms:d}; "
            "LOCK TABLE enterprises IN ACCESS SHARE MODE"
        )

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection in a snapshot transaction: the view's, or one for this call."""
        try:
            if self._pin is not None:
                yield self._pin.connection()
                return
            with self.engine.connect() as conn:
                self._begin_read(conn)
                try:
                    yield conn
                finally:
                    conn.rollback()
        except (OperationalError, DataError, InternalError) as exc:
            # timeouts and cancels; values PostGIS rejects (GEOS, ranges)
            err = self._query_error(exc)
            if err is exc:
                raise
            raise err from exc

    # -- queries ---------------------------------------------------------------------------
    def _where(self, q: FeatureQuery) -> list[Any]:
        t = enterprises
        geom = t.c[GEOMETRY]
        conds: list[Any] = []
        if q.bbox is not None:
            boxes = [func.ST_Intersects(geom, func.ST_MakeEnvelope(*b, 4326))
                     for b in bbox_boxes(q.bbox)]
            conds.append(boxes[0] if len(boxes) == 1 else or_(*boxes))
        if q.within is not None:
            poly = func.ST_GeomFromWKB(shapely.to_wkb(q.within), 4326)
            conds.append(func.ST_Intersects(geom, poly))
        if q.near is not None:
            lon, lat, radius = q.near
            centre = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
            # index-usable prefilter: a degree box safely containing the circle
            dlat = radius / 110_000 * 1.05
            coslat = math.cos(math.radians(min(89.0, abs(lat) + dlat)))
            dlon = min(180.0, radius / (111_000 * max(coslat, 1e-6)) * 1.05)
            conds.append(func.ST_Intersects(
                geom, func.ST_MakeEnvelope(lon - dlon, lat - dlat, lon + dlon, lat + dlat, 4326)
            ))
            conds.append(
                func.ST_DWithin(cast(geom, Geography), cast(centre, Geography), radius)
            )
        for col, accepted in q.properties.items():
            if col not in t.c or col == GEOMETRY:
                raise InvalidQueryError(
                    f"{col}: unknown property; expected one of {', '.join(ENFORCEMENT_COLUMNS)}."
                )
            values = self._coerce(col, accepted)
            conds.append(t.c[col].in_(values))
            if col in _SPARSE and "" not in values:
                conds.append(t.c[col] != literal_column("''"))  # see _SPARSE
        if q.cql is not None:
            columns = {c.name: c for c in t.c if c.name != "load_id"}
            columns["geom"] = geom
            conds.append(sql_filter(q.cql, columns))
        return conds

    @staticmethod
    def _coerce(col: str, accepted: Any) -> list[Any]:
        try:
            if col in INTEGER_COLUMNS or col == FID:
                return [int(a) for a in accepted]
            if col in FLOAT_COLUMNS:
                return [float(a) for a in accepted]
        except ValueError as exc:
            raise InvalidQueryError(f"{col}: expected a number, got {list(accepted)}.") from exc
        if col in BOOL_COLUMNS:
            return [parse_bool(a, col) for a in accepted]
        return [str(a) for a in accepted]

    def _frame(self, conn: Connection, stmt: Any) -> gpd.GeoDataFrame:
        res = conn.execute(stmt)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
        wkb = df.pop("_wkb").to_numpy() if len(df) else np.array([], dtype=object)
        geoms = shapely.from_wkb(wkb) if len(wkb) else []
        for col in INTEGER_COLUMNS:
            df[col] = df[col].astype("Int64")
        df[FID] = df[FID].astype("int64")
        for col in FLOAT_COLUMNS:
            df[col] = df[col].astype("float64")
        for col in BOOL_COLUMNS:
            df[col] = df[col].astype(bool)
        df[GEOMETRY] = gpd.GeoSeries(geoms, index=df.index, crs="EPSG:4326")
        return gpd.GeoDataFrame(df, geometry=GEOMETRY, crs="EPSG:4326")

    def _select(self) -> Any:
        t = enterprises
        cols = [t.c[FID], *[t.c[c] for c in ENFORCEMENT_COLUMNS]]
        return select(*cols, func.ST_AsBinary(t.c[GEOMETRY]).label("_wkb"))

    def query(self, q: FeatureQuery) -> QueryResult:
        """Features matching ``q``, ordered by fid, and the number matched."""
        conds = self._where(q)
        stmt = self._select().where(*conds).order_by(enterprises.c[FID])
        if q.offset:
            stmt = stmt.offset(q.offset)
        if q.limit is not None:
            stmt = stmt.limit(q.limit)
        count = select(func.count()).select_from(enterprises).where(*conds)
        with self._read() as conn:
            frame = self._frame(conn, stmt)
            n = int(conn.execute(count).scalar_one())
        return QueryResult(features=frame, number_matched=n)

    def get(self, fid: int) -> gpd.GeoDataFrame:
        """The feature with that fid (empty frame if none)."""
        with self._read() as conn:
            return self._frame(conn, self._select().where(enterprises.c[FID] == fid))

    def data_version(self) -> tuple[Any, ...]:
        """The newest load and the identity of the live table: a load and an in-database
        classification (:func:`classify_in_database` swaps in a new table) both change it."""
        with self._one_statement() as conn:
            return tuple(conn.exec_driver_sql(f"SELECT {_VERSION_SQL}").one())

    def _raw_where(self, q: FeatureQuery) -> tuple[str, list[Any]] | None:
        """``WHERE`` text and parameters of a query by bbox and properties (the OGC items
        paths), checked and coerced as :meth:`_where`; None for any other query."""
        if q.cql is not None or q.within is not None or q.near is not None:
            return None
        parts: list[str] = []
        params: list[Any] = []
        if q.bbox is not None:
            boxes = bbox_boxes(q.bbox)
            parts.append("(" + " OR ".join(
                ["ST_Intersects(geometry, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"] * len(boxes))
                + ")")
            params += [float(v) for b in boxes for v in b]
        for col, accepted in q.properties.items():
            if col not in enterprises.c or col == GEOMETRY:
                self._where(FeatureQuery(properties={col: accepted}))  # raises its error
            values = self._coerce(col, accepted)
            if not values:
                return None  # an empty array has no type to send: the general path
            if len(values) == 1:  # "= value" uses the (column, fid) index in fid order
                parts.append(f'"{col}" = %s')
                params.append(values[0])
            else:
                parts.append(f'"{col}" = ANY(%s)')
                params.append(values)
            if col in _SPARSE and "" not in values:
                parts.append(f'"{col}" <> \'\'')  # see _SPARSE
        return (" AND ".join(parts) or "TRUE"), params

    def geojson_page(self, q: FeatureQuery, columns: Sequence[str] | None = None,
                     ) -> FeaturePage:
        """The page of ``q`` as GeoJSON features built from the rows' tuples (no frame).

        One statement (with the data version) when the page is not full:
        ``numberMatched`` is then offset + returned. A full page adds a count, remembered
        per data version for queries by properties only; if a load committed between the
        two statements, both are read again in one snapshot transaction. Queries by bbox
        and properties send fixed SQL texts through psycopg (prepared per connection);
        others are built by SQLAlchemy. (JSON built in SQL with ``json_build_object``
        costs ~70 µs a row in the server: slower than this.)
        """
        names = _names(columns)
        raw = self._raw_where(q)
        if raw is None:
            run: _Statements = self._sa_statements(q, names)
        else:
            run = _raw_statements(q, names, *raw)
        opener = self._one_statement if raw is None else self._raw_statement
        with opener() as conn:
            page = self._page_in(conn, q, run, names)
        if page is None:  # a load committed between page and count
            with self._read() as conn:
                page = self._page_in(conn if raw is None else conn.connection.driver_connection,
                                     q, run, names)
        assert page is not None
        return page

    def _sa_statements(self, q: FeatureQuery, names: Sequence[str]) -> _Statements:
        """Page and count of ``q`` built by SQLAlchemy (filters, spatial predicates)."""
        t = enterprises
        conds = self._where(q)
        version = [select(func.max(loads_table.c.load_id)).scalar_subquery(),
                   literal_column(_TABLE_VERSION)]
        stmt = select(*[t.c[n] for n in names], func.ST_X(t.c[GEOMETRY]),
                      func.ST_Y(t.c[GEOMETRY]), t.c[FID], *version,
                      ).where(*conds).order_by(t.c[FID])
        if q.offset:
            stmt = stmt.offset(q.offset)
        if q.limit is not None:
            stmt = stmt.limit(q.limit)
        count = select(func.count(), *version).select_from(t).where(*conds)
        return _Statements(lambda conn: conn.execute(stmt).all(),
                           lambda conn: tuple(conn.execute(count).one()))

    def _page_in(self, conn: Any, q: FeatureQuery, run: _Statements,
                 names: Sequence[str]) -> FeaturePage | None:
        rows = run.rows(conn)
        n = len(rows)
        if not _needs_count(q, n):
            matched = q.offset + n
        else:
            version = tuple(rows[0][-2:]) if rows else None
            got = self._count(conn, q, run, version)
            if got is None:
                return None
            matched = got
        return FeaturePage(_page_features(rows, names), n, matched)

    def _count_key(self, q: FeatureQuery) -> tuple[bool, Any]:
        """Whether ``q`` is spatial (not remembered) and its key in the count memo."""
        spatial = q.bbox is not None or q.within is not None or q.near is not None or q.cql
        return bool(spatial), tuple(sorted((c, tuple(map(str, a)))
                                           for c, a in q.properties.items()))

    def _count_seen(self, q: FeatureQuery, version: tuple[Any, ...] | None) -> int | None:
        """The remembered count of ``q`` in data ``version`` (None: not remembered)."""
        spatial, key = self._count_key(q)
        return None if spatial or version is None else self._count_memo.get((version, key))

    def _count_got(self, q: FeatureQuery, version: tuple[Any, ...] | None,
                   got: Sequence[Any]) -> int | None:
        """The count ``got`` (count, version...) of ``q``, remembered; None if it was read
        in another data version than ``version``."""
        n, *now = got
        if version is not None and tuple(now) != version:
            return None
        spatial, key = self._count_key(q)
        if not spatial:
            if len(self._count_memo) > 4096:
                self._count_memo.clear()
            self._count_memo[(tuple(now), key)] = int(n)
        return int(n)

    def _count(self, conn: Any, q: FeatureQuery, run: _Statements,
               version: tuple[Any, ...] | None) -> int | None:
        """Features matching ``q`` in data ``version`` (None if the current data are
        another version); remembered per version for queries by properties only."""
        hit = self._count_seen(q, version)
        if hit is not None:
            return hit
        return self._count_got(q, version, run.count(conn))

    async def geojson_page_async(self, q: FeatureQuery, columns: Sequence[str] | None = None,
                                 *, cancel: CancelHook | None = None) -> FeaturePage | None:
        """:meth:`geojson_page` on the event loop for queries by bbox and properties: the
        same SQL texts, rows, count memo and features, sent through an autocommit
        ``AsyncConnection`` of :meth:`_async_reads` (the lean page path, :mod:`api.itemfast`).

        Parameters
        ----------
        q
            The query (limit, offset, bbox, properties).
        columns
            The properties to return (None: all).
        cancel
            The request's :class:`api.limits.CancelToken`: cancels the statement when the
            client goes away.

        Returns
        -------
        FeaturePage or None
            None when :meth:`geojson_page` would not send raw SQL texts (filters, spatial
            predicates) or a load committed between page and count: the caller then uses
            :meth:`geojson_page`.

        Raises
        ------
        psycopg.Error
            Any database error, as psycopg raises it.
        """
        names = _names(columns)
        raw = self._raw_where(q)
        if raw is None:
            return None
        page, args, count, cparams = _raw_sql(q, names, *raw)
        pool = self._async_reads()
        conn = await pool.acquire()
        broken = True
        handle = cancel.add_callback(conn.cancel) if cancel is not None else None
        try:
            rows = await (await conn.execute(page, args)).fetchall()
            n = len(rows)
            matched: int | None = q.offset + n
            if _needs_count(q, n):
                version = tuple(rows[0][-2:]) if rows else None
                matched = self._count_seen(q, version)
                if matched is None:
                    got = await (await conn.execute(count, cparams)).fetchone()
                    matched = self._count_got(q, version, tuple(got))
            broken = False
        finally:
            if cancel is not None:
                cancel.remove_callback(handle)
            pool.release(conn, broken=broken)
        if matched is None:
            return None
        return FeaturePage(_page_features(rows, names), n, matched)

    def geojson_feature(self, fid: int, columns: Sequence[str] | None = None,
                        ) -> dict[str, Any] | None:
        """The feature with that fid (one prepared statement)."""
        names = _names(columns)
        with self._raw_statement() as conn:
            r = conn.execute(_feature_sql(tuple(names)), (fid,)).fetchone()
        return _feature_from_row(fid, names, r)

    async def geojson_feature_async(self, fid: int, columns: Sequence[str] | None = None,
                                    *, cancel: CancelHook | None = None,
                                    ) -> dict[str, Any] | None:
        """:meth:`geojson_feature` on the event loop: the same statement and feature, sent
        through an autocommit ``AsyncConnection`` of :meth:`_async_reads` (no thread, no
        SQLAlchemy). ``cancel`` (the request's :class:`api.limits.CancelToken`) cancels the
        statement when the client goes away.

        Raises
        ------
        psycopg.Error
            Any database error, as psycopg raises it (the lean path then leaves the
            request to the route, which reports it).
        """
        names = _names(columns)
        pool = self._async_reads()
        conn = await pool.acquire()
        broken = True
        handle = cancel.add_callback(conn.cancel) if cancel is not None else None
        try:
            cur = await conn.execute(_feature_sql(tuple(names)), (fid,))
            r = await cur.fetchone()
            broken = False
        finally:
            if cancel is not None:
                cancel.remove_callback(handle)
            pool.release(conn, broken=broken)
        return _feature_from_row(fid, names, r)

    def counts(self, q: FeatureQuery, column: str) -> dict[str, int]:
        """Matching features per value of ``column``."""
        if column not in enterprises.c or column == GEOMETRY:
            raise InvalidQueryError(f"{column}: unknown property.")
        col = enterprises.c[column]
        stmt = (
            select(col, func.count()).where(*self._where(q.unpaged())).group_by(col)
        )
        with self._read() as conn:
            return {str(k): int(v) for k, v in conn.execute(stmt).all()}

    def counts_many(self, q: FeatureQuery, columns: Sequence[str]) -> dict[str, dict[str, int]]:
        """Matching features per value of each column, in one ``GROUPING SETS`` query."""
        names = list(dict.fromkeys(columns))
        for column in names:
            if column not in enterprises.c or column == GEOMETRY:
                raise InvalidQueryError(f"{column}: unknown property.")
        cols = [enterprises.c[c] for c in names]
        flags = [func.grouping(c) for c in cols]
        stmt = (
            select(*cols, *flags, func.count())
            .where(*self._where(q.unpaged()))
            .group_by(func.grouping_sets(*cols))
        )
        out: dict[str, dict[str, int]] = {c: {} for c in names}
        with self._read() as conn:
            key = None
            if q.bbox is None and q.within is None and q.near is None and q.cql is None:
                version = tuple(conn.exec_driver_sql(f"SELECT {_VERSION_SQL}").one())
                key = (version, tuple(sorted((c, tuple(map(str, a)))
                                             for c, a in q.properties.items())), tuple(names))
                hit = self._counts_memo.get(key)
                if hit is not None:
                    return {c: dict(hit[c]) for c in columns}
            for row in conn.execute(stmt).all():
                k = len(names)
                which = next(i for i in range(k) if row[k + i] == 0)
                out[names[which]][str(row[which])] = int(row[2 * k])
        if key is not None:
            if len(self._counts_memo) > 4096:
                self._counts_memo.clear()
            self._counts_memo[key] = out
        return {c: dict(out[c]) for c in columns}

    def points(self, q: FeatureQuery) -> pd.DataFrame:
        """``fid``, ``lon``, ``lat`` and ``verdict`` of the matching features, ordered by
        fid: four columns over the wire instead of the whole rows."""
        t = enterprises
        stmt = (
            select(t.c[FID], func.ST_X(t.c[GEOMETRY]), func.ST_Y(t.c[GEOMETRY]), t.c.verdict)
            .where(*self._where(q.unpaged()))
            .order_by(t.c[FID])
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame(rows, columns=list(POINT_COLUMNS))
        return df.astype({FID: "int64", "lon": "float64", "lat": "float64"})

    def warm(self) -> None:
        """Open a pooled connection and touch the table, so the first request is not slow."""
        with self._read() as conn:
            conn.execute(select(func.count()).select_from(loads_table)).scalar_one()
            conn.execute(select(enterprises.c[FID]).limit(1)).all()

    def loads(self) -> list[LoadRecord]:
        """Load history, newest first."""
        stmt = select(loads_table).order_by(loads_table.c.load_id.desc())
        with self._read() as conn:
            return [LoadRecord(**dict(r._mapping)) for r in conn.execute(stmt)]

    def extent(self) -> tuple[float, float, float, float] | None:
        """Bounding box of the current list."""
        g = enterprises.c[GEOMETRY]
        stmt = select(func.ST_XMin(func.ST_Extent(g)), func.ST_YMin(func.ST_Extent(g)),
                      func.ST_XMax(func.ST_Extent(g)), func.ST_YMax(func.ST_Extent(g)))
        with self._read() as conn:
            row = conn.execute(stmt).one()
        return None if row[0] is None else (float(row[0]), float(row[1]),
                                            float(row[2]), float(row[3]))

    # -- loading ---------------------------------------------------------------------------
    @staticmethod
    def _csv_chunks(frame: gpd.GeoDataFrame, load_id: int) -> Iterator[str]:
        geoms = shapely.set_srid(np.asarray(frame.geometry.values), 4326)
        ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
        data = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        data["load_id"] = load_id
        data[GEOMETRY] = ewkb
        for start in range(0, len(data), _COPY_CHUNK):
            buf = io.StringIO()
            data.iloc[start:start + _COPY_CHUNK].to_csv(buf, header=False, index=False)
            yield buf.getvalue()

    def load_enterprises(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        loaded_by: str,
        source_name: str,
        source_sha256: str,
        rejected: int = 0,
    ) -> LoadRecord:
        """Replace the list in one transaction (COPY into staging, index, swap, record)."""
        if self._origin is not None:  # a view: write, then read what was written
            if self._pin is not None:
                self._pin.close()  # the swap must not wait for this request's own snapshot
            return self._origin.load_enterprises(
                gdf, loaded_by=loaded_by, source_name=source_name,
                source_sha256=source_sha256, rejected=rejected)
        frame = prepare_enterprises(gdf)
        columns = [FID, *ENFORCEMENT_COLUMNS, "load_id", GEOMETRY]
        col_sql = ", ".join(f'"{c}"' for c in columns)
        not_null = ", ".join(f'"{c}"' for c in TEXT_COLUMNS)
        with self.engine.begin() as conn:
            rec = conn.execute(
                insert(loads_table)
                .values(loaded_by=loaded_by, source_name=source_name,
                        source_sha256=source_sha256, accepted=len(frame),
                        rejected=int(rejected), loaded_at=func.now())
                .returning(*loads_table.c)
            ).one()
            conn.execute(text("DROP TABLE IF EXISTS enterprises_staging"))
            conn.execute(text(
                "CREATE TABLE enterprises_staging "
                "(LIKE enterprises INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(
                f"COPY enterprises_staging ({col_sql}) FROM STDIN "
                f"(FORMAT csv, FORCE_NOT_NULL ({not_null}))"
            ) as copy:
                for chunk in self._csv_chunks(frame, rec.load_id):
                    copy.write(chunk)
            _swap_in_staging(conn)
        record = LoadRecord(**dict(rec._mapping))
        log.info("load %d: %d enterprises into PostGIS", record.load_id, len(frame))
        return record

    # -- audit log -----------------------------------------------------------------------------
    def record_audit(self, entry: AuditEntry) -> None:
        """Append an entry to the ``audit_log`` table (its own transaction)."""
        with self.engine.begin() as conn:
            conn.execute(insert(audit_table).values(
                actor=entry.actor, role=entry.role, action=entry.action, target=entry.target,
                outcome=entry.outcome, client=entry.client,
                detail=json.dumps(dict(entry.detail), ensure_ascii=False, default=str),
                **({"at": entry.at} if entry.at else {}),
            ))

    def audit_entries(self, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """Audit log, newest first."""
        t = audit_table
        stmt = select(t).order_by(t.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [AuditEntry(actor=r.actor, role=r.role, action=r.action, target=r.target,
                           outcome=r.outcome, client=r.client,
                           detail=json.loads(r.detail or "{}"), at=r.at, entry_id=int(r.id))
                for r in rows]

    # -- in-database classification ----------------------------------------------------------
    def load_reference_layers(
        self, layers: dict[str, gpd.GeoDataFrame] | None = None
    ) -> dict[str, int]:
        """Copy the reference layers into PostGIS; see :func:`load_reference_layers`."""
        return load_reference_layers(self, layers)

    def classify_in_database(self, *, catalog: Any = None, as_of: Any = None) -> int:
        """Classify the stored list in SQL; see :func:`classify_in_database`."""
        return classify_in_database(self, catalog=catalog, as_of=as_of)

    def store_rule_inputs(self, enterprises: pd.DataFrame, units: pd.DataFrame | None = None
                          ) -> int:
        """Store the rules' attribute and unit inputs; see :func:`store_rule_inputs`."""
        return store_rule_inputs(self, enterprises, units)


# --------------------------------------------------------------------------- in-database
#: Reference tables of in-database classification: kind -> (table, text columns).
REFERENCE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "district": ("bw_ref_district", ("code", "name_zh", "city_code", "city_zh")),
    "basin": ("bw_ref_basin", ("id",)),
    "region": ("bw_ref_region", ("id",)),
    "park": ("bw_ref_park", ("id",)),
}

#: Kind number of each reference table in the cell grid (``api.store._sql_grid``).
_GRID_KINDS = {kind: n for n, kind in enumerate(REFERENCE_TABLES)}
#: Planner settings of the classification transaction: hash joins in memory, parallel
#: scans of the list, no JIT (its compile time exceeds the saving at this size).
_CLASSIFY_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '256MB'",
                      "SET LOCAL parallel_setup_cost = 10", "SET LOCAL parallel_tuple_cost = 0.001")


def _spatial_select() -> str:
    """Return the query of ``fid, city ... park_id``: district ... park of each enterprise.

    Each is the lowest-positioned polygon whose interior contains the point, as in process.
    """
    from api.store._sql_grid import positions_sql

    joins = [f"LEFT JOIN {REFERENCE_TABLES[kind][0]} t{n} ON t{n}.pos = p.k{n}"
             for kind, n in _GRID_KINDS.items()]
    cols = ", ".join(f"{v} AS {k}" for k, v in _spatial_exprs().items())
    return (f"SELECT p.fid, {cols} "
            f"FROM ({positions_sql(list(_GRID_KINDS.values()))}) p {' '.join(joins)}")


def _build_grid(conn: Connection) -> None:
    """(Re)build the cell grid of the reference tables (``api.store._sql_grid``)."""
    from api.store._sql_grid import build_sql

    tables = {n: REFERENCE_TABLES[kind][0] for kind, n in _GRID_KINDS.items()}
    for stmt in build_sql(tables):
        conn.execute(text(stmt))


#: Columns classify_in_database writes from ``_bw_spatial``.
_SPATIAL_COLUMNS = ("city", "district", "district_code", "basin_id", "region_id", "park_id")

_UPDATE_SPATIAL_SQL = """
UPDATE enterprises e SET
    city = s.city, district = s.district, district_code = s.district_code,
    basin_id = s.basin_id, region_id = s.region_id, park_id = s.park_id
FROM _bw_spatial s WHERE e.fid = s.fid
"""

#: Auxiliary tables of the rules' inputs (see store_rule_inputs).
UNITS_TABLE = "enterprise_units"
ATTRIBUTES_TABLE = "enterprise_attributes"


def load_reference_layers(
    store: PostGISStore, layers: dict[str, gpd.GeoDataFrame] | None = None
) -> dict[str, int]:
    """Copy the reference layers into GiST-indexed PostGIS tables (replacing them).

    Parameters
    ----------
    store
        The PostGIS store (its schema/search_path is used).
    layers
        Frames by kind (``district``, ``basin``, ``region``, ``park``), EPSG:4326, as for
        :func:`geo.classify.classify`; kinds not given come from
        ``layers.registry.load_group``. Row order is kept (``pos``): as in process, the
        first polygon containing a point wins.

    Returns
    -------
    Number of polygons loaded per kind.
    """
    from geo.classify import _checked  # the same validation as in process

    counts: dict[str, int] = {}
    with store.engine.begin() as conn:
        raw = conn.connection.driver_connection
        for kind, (table, cols) in REFERENCE_TABLES.items():
            if layers is not None and kind in layers:
                frame = _checked(kind, layers[kind])
            else:
                from layers import registry

                frame = _checked(kind, registry.load_group(kind))
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            col_ddl = ", ".join(f"{c} text NOT NULL" for c in cols)
            conn.execute(text(
                f"CREATE TABLE {table} (pos integer PRIMARY KEY, {col_ddl}, "
                f"geom geometry(Geometry, 4326) NOT NULL)"
            ))
            geoms = shapely.set_srid(np.asarray(frame.geometry.values), 4326)
            ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
            values = [frame[c].astype(str).tolist() for c in cols]
            with raw.cursor() as cur, cur.copy(
                f"COPY {table} (pos, {', '.join(cols)}, geom) FROM STDIN"
            ) as copy:
                for i, row in enumerate(zip(*values, ewkb.tolist(), strict=True)):
                    copy.write_row((i, *row))
            conn.execute(text(f"CREATE INDEX ix_{table}_geom ON {table} USING gist (geom)"))
            conn.execute(text(f"ANALYZE {table}"))
            counts[kind] = len(frame)
        _build_grid(conn)
    log.info("reference layers in PostGIS: %s", counts)
    return counts


def store_rule_inputs(
    store: PostGISStore, enterprises: pd.DataFrame, units: pd.DataFrame | None = None
) -> int:
    """Store what the rules read besides the enterprise list: attributes and units.

    ``enterprise_attributes`` holds, per ``row``, the registry attribute columns of
    ``enterprises`` (registry.toml: 排污许可证, 主要产品, 质量抽查结果 ...; the pipeline keeps them
    after the enforcement columns); ``enterprise_units`` the equipment units
    (``PipelineResult.units``, joined by ``enterprise_row``). Both are auxiliary tables like
    ``bw_ref_*``, replaced with each load; :func:`classify_in_database` reads them.

    Returns
    -------
    Number of units stored.
    """
    from layers.catalog import field_vocabulary

    vocab = field_vocabulary()
    attrs = [c for c in enterprises.columns
             if c in vocab and vocab[c].producer == "registry" and c not in ENFORCEMENT_COLUMNS]
    unit_frame = pd.DataFrame(units) if units is not None else pd.DataFrame()
    if len(unit_frame.columns):
        unit_frame = unit_frame.assign(unit_pos=np.arange(len(unit_frame)))  # keeps their order
    tables = {ATTRIBUTES_TABLE: pd.DataFrame(enterprises[["row", *attrs]]),
              UNITS_TABLE: unit_frame}
    with store.engine.begin() as conn:
        for name, frame in tables.items():
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            if len(frame.columns):
                frame.to_sql(name, conn, index=False, chunksize=50_000)
    return len(tables[UNITS_TABLE])


def _stored_units(conn: Connection) -> pd.DataFrame | None:
    from sqlalchemy import inspect

    if not inspect(conn).has_table(UNITS_TABLE):
        return None
    units = pd.read_sql(text(f"SELECT * FROM {UNITS_TABLE} ORDER BY unit_pos"), conn)
    units = units.drop(columns=["unit_pos"])
    return units if len(units) else None


def classify_in_database(
    store: PostGISStore,
    *,
    catalog: Any = None,
    as_of: Any = None,
) -> int:
    """Classify the stored enterprises inside PostGIS and apply the rule catalog in SQL.

    Spatial attributes come from the cell grid of the tables written by
    :func:`load_reference_layers` (:mod:`api.store._sql_grid`; the first polygon in layer
    order wins). Enterprise-scope rules are :mod:`api.store._sql_rules` expressions over the
    ``enterprises`` columns (a rule field the table lacks never matches, as in process); the
    few distinct match words get their texts from :mod:`geo.rules` itself, and deadline and
    status are computed per row in SQL. Writes ``city`` ... ``park_id``, ``verdict``,
    ``standards``, ``rule_ids``, ``reasons``, ``price_measures``, ``deadline`` and
    ``deadline_status``; readers see the old list until the write commits. Nothing is
    written when no row differs from what is stored; the differing rows are updated in place
    (one transaction) when they are at most ``_UPDATE_MAX_SHARE`` of the list; otherwise a
    new table is written, indexed from two connections at once and swapped in for
    ``enterprises`` -- unless a load or another classification replaced the list meanwhile
    (:class:`~geo.errors.ConcurrentWriteError`, nothing written). A write changes
    :meth:`PostGISStore.data_version`, so tile and count caches of every worker move on.

    In process only: ``needs_review`` / ``review_reasons`` (boundary bands, coarse geocodes,
    the rules' review codes) are left as stored; and the unit rules (Table 5, Table 1, the
    per-unit Table 2 items), which need the equipment units: when the store holds units
    (:func:`store_rule_inputs`), the rules step falls back to :func:`geo.rules.evaluate_rules` on
    the spatially updated rows and their units (the spatial joins still run in SQL).

    Parameters
    ----------
    store
        The PostGIS store holding the enterprises.
    catalog
        Rule catalog (default :func:`layers.catalog.rules`).
    as_of
        Evaluation date (default today): rules not yet effective do not apply, deadlines
        before it are overdue.

    Returns
    -------
    Number of enterprises updated.

    Raises
    ------
    InvalidQueryError
        The reference tables are missing.
    ConcurrentWriteError
        The list was replaced while it was being classified.
    """
    from datetime import date as _date

    from api.store import _sql_rules
    from layers.catalog import industries
    from layers.catalog import rules as default_rules

    catalog = catalog or default_rules()
    day = as_of or _date.today()
    active = _sql_rules.active_rules(catalog, day)
    all_ids = [i.id for i in industries()]
    store._counts_memo.clear()  # verdicts change within the load: forget its counts
    store._count_memo.clear()
    with store.engine.connect() as conn, _classification_lock(conn):
        with conn.begin():
            in_process, n, rewritten = _classify_transaction(conn, catalog, active, all_ids,
                                                             day)
        if rewritten is not None:
            _swap_rewrite(store, conn, rewritten)
    store._counts_memo.clear()  # and counts read while it ran
    store._count_memo.clear()
    log.info("classified %d enterprises in PostGIS (%d SQL rules%s)", n, len(active),
             ", unit rules in process" if in_process else "")
    return int(n)


def _classify_transaction(conn: Connection, catalog: Any, active: Sequence[Any],
                          all_ids: Sequence[str], day: Any
                          ) -> tuple[bool, int, tuple[Any, ...] | None]:
    """The first transaction of :func:`classify_in_database`. Returns whether the rules
    ran in process, the number of rows classified and, when ``bw_classified`` was written,
    the data version it was read at (:func:`_swap_rewrite` follows)."""
    from sqlalchemy import inspect

    missing = [t for t, _ in REFERENCE_TABLES.values() if not inspect(conn).has_table(t)]
    if missing:
        raise InvalidQueryError(
            f"reference tables {missing} are missing: call load_reference_layers first.")
    for setting in _CLASSIFY_SETTINGS:
        conn.execute(text(setting))
    if not inspect(conn).has_table("bw_ref_grid"):  # reference tables of an older version
        _build_grid(conn)
    units = _stored_units(conn)
    if units is None:
        return (False, *_classify_in_sql(conn, catalog, active, all_ids, day))
    conn.execute(text("CREATE TEMP TABLE _bw_spatial ON COMMIT DROP AS " + _spatial_select()))
    n = conn.execute(text(_UPDATE_SPATIAL_SQL)).rowcount
    _rules_in_process(conn, units, catalog, day)
    # a copy swapped in: the live table's identity (the data version) changes
    conn.execute(text("DROP TABLE IF EXISTS enterprises_staging"))
    conn.execute(text("CREATE TABLE enterprises_staging "
                      "(LIKE enterprises INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    conn.execute(text("INSERT INTO enterprises_staging SELECT * FROM enterprises"))
    _swap_in_staging(conn)
    return True, n, None


#: Scratch tables of :func:`_classify_in_sql`: unlogged (no WAL) and not temporary, so
#: that parallel workers can read them; dropped before its transaction commits.
_SCRATCH = ("bw_class_undecided", "bw_class_rows", "bw_class_combo", "bw_class_changed")
#: The rewritten list before its swap (:func:`_swap_rewrite`).
_REWRITE = "bw_classified"
#: The session lock one classification holds from start to end: its rewrite outlives its
#: first transaction, so two must not run at once.
_LOCK_KEY = "hashtext('basinwatch.classify_in_database')"
#: Connections building a rewrite's indexes at once, as ``pg_restore --jobs`` does: a
#: GiST index builds in one process, so one connection would leave the other core idle.
_LANES = 2


@contextlib.contextmanager
def _classification_lock(conn: Connection) -> Iterator[None]:
    """Hold the classification lock on ``conn``; at the end drop the scratch tables and
    an unswapped rewrite (left by a failure) and release it. Whatever interrupts either
    step closes the session instead, which releases the lock with it."""
    try:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
        conn.commit()
    except BaseException:
        conn.invalidate()
        raise
    try:
        yield
    finally:
        _release_classification(conn)


def _release_classification(conn: Connection) -> None:
    """The end of :func:`_classification_lock`."""
    if conn.invalidated:
        # the session died and its lock with it: another classification may hold the lock
        # and the table names now, and a statement here would open a new session
        return
    try:
        conn.rollback()
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join([*_SCRATCH, _REWRITE])}")
        conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
        conn.commit()
    except Exception:  # noqa: BLE001 - the caller's own error, if any, goes on
        log.warning("classification clean-up failed; connection discarded", exc_info=True)
        conn.invalidate()
    except BaseException:
        conn.invalidate()
        raise


def _spatial_exprs() -> dict[str, str]:
    """The spatial columns as SQL over the reference tables ``t<kind number>``."""
    d, b, r, k = (f"t{_GRID_KINDS[x]}" for x in ("district", "basin", "region", "park"))
    return {"city": f"coalesce({d}.city_zh, '')", "district": f"coalesce({d}.name_zh, '')",
            "district_code": f"coalesce({d}.code, '')", "basin_id": f"coalesce({b}.id, '')",
            "region_id": f"coalesce({r}.id, '')", "park_id": f"coalesce({k}.id, '')"}


def _classify_in_sql(conn: Connection, catalog: Any, active: Sequence[Any],
                     all_ids: Sequence[str], day: Any) -> tuple[int, tuple[Any, ...] | None]:
    """The SQL path of :func:`classify_in_database`: spatial joins and enterprise rules.

    One parallel pass over ``enterprises`` writes ``bw_class_rows`` (:func:`_class_rows`);
    the few distinct match words get their texts from :mod:`geo.rules`
    (``bw_class_combo``); a second parallel pass finds the rows whose stored values differ.
    Nothing is written when none differ, the differing rows are updated in place when they
    are at most ``_UPDATE_MAX_SHARE`` of the list; otherwise the list is rewritten into a
    new table, ``bw_classified``, indexed and swapped in by :func:`_swap_rewrite` once this
    transaction commits. Returns the number of rows classified and, for a rewrite, the
    data version the list was read at.
    """
    from api.store import _sql_rules

    # locked first: a load cannot replace the list between the version and the reading
    conn.execute(text("LOCK TABLE enterprises IN ACCESS SHARE MODE"))
    version = tuple(conn.exec_driver_sql(f"SELECT {_VERSION_SQL}").one())
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join([*_SCRATCH, _REWRITE])}")
    n, keys, fields = _class_rows(conn, active, all_ids, day)
    found = conn.execute(text(f"SELECT DISTINCT {', '.join(keys)} FROM bw_class_rows")).all()
    _store_combos(conn, keys, found, _sql_rules.combo_rows(
        catalog, active, [_sql_rules.words_to_matches(r, len(active)) for r in found]))
    params = {"as_of": day, **{f"f{i}": f for i, f in enumerate(fields)}}
    most = int(_UPDATE_MAX_SHARE * n)
    find, update = _changed_sql(fields, keys, most)
    # found up to one more than ``most`` (a first run stops early), planned without nested
    # loops: the LIMIT makes 1M primary-key probes look cheap, where a parallel hash join
    # scans the list in a fraction of the time
    conn.execute(text("SET LOCAL enable_nestloop = off"))
    changed = conn.execute(text(find), params).rowcount
    conn.execute(text("SET LOCAL enable_nestloop = on"))
    log.info("in-database classification of %d rows: %s", n,
             f"more than {most} changed, table rewritten" if changed > most
             else f"{changed} changed, updated in place" if changed else "nothing changed")
    rewritten = None
    if changed > most:
        # one process (the leader) writes a query's rows in PostgreSQL 15: one worker
        # feeding it the joined rows keeps up (two were slower on 2 cores, 1.8 vs 1.5 s at 1M)
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 1"))
        columns = _columns(conn)
        written = conn.execute(text(_rewrite_sql(columns, fields, keys)), params).rowcount
        if written != n:  # every row has its words' combination: a lost row is a bug
            raise RuntimeError(f"classification rewrote {written} of {n} enterprises")
        conn.execute(text(_not_null_sql(columns)))
        conn.execute(text(f"ANALYZE {_REWRITE}"))  # now: readers will wait only for the swap
        rewritten = version
    elif changed:
        conn.execute(text(update), params)
        # the data version moves on: a storage parameter set to its default writes a new
        # catalog row (see _TABLE_VERSION)
        conn.execute(text("ALTER TABLE enterprises SET (fillfactor = 100)"))
    conn.execute(text(f"DROP TABLE {', '.join(_SCRATCH)}"))
    return n, rewritten


def _class_rows(conn: Connection, active: Sequence[Any], all_ids: Sequence[str],
                day: Any) -> tuple[int, list[str], list[str]]:
    """Write ``bw_class_rows``, in one parallel pass: per enterprise its fid, its new
    spatial columns (``bw_city`` ...), the rules' match words (``bw_m0`` ...) and per-row
    deadline dates (``bw_dl_0`` ...).

    Returns the row count, the word columns and the deadline fields.
    """
    from sqlalchemy import inspect
    from sqlalchemy import literal_column as col

    from api.store import _sql_rules
    from api.store._sql_grid import grid_join_sql, position_sql, undecided_sql

    kinds = list(_GRID_KINDS.values())
    conn.execute(text(f"CREATE UNLOGGED TABLE bw_class_undecided AS {undecided_sql(kinds)}"))
    joins = [grid_join_sql("e"), "LEFT JOIN bw_class_undecided u ON u.fid = e.fid"]
    joins += [f"LEFT JOIN {REFERENCE_TABLES[kind][0]} t{n} ON t{n}.pos = {position_sql(n)}"
              for kind, n in _GRID_KINDS.items()]
    # the rules read the live table's columns (attribute columns added to it take part),
    # the new spatial columns and the stored attributes of each row
    types = {c["name"]: c["type"] for c in inspect(conn).get_columns("enterprises")}
    columns = {k: col(f'e."{k}"', t) for k, t in types.items()}
    spatial = _spatial_exprs()
    columns.update({k: col(v, Text) for k, v in spatial.items()})
    if inspect(conn).has_table(ATTRIBUTES_TABLE):
        for c in inspect(conn).get_columns(ATTRIBUTES_TABLE):
            columns.setdefault(c["name"], col(f'a."{c["name"]}"', c["type"]))
        joins.append(f'LEFT JOIN {ATTRIBUTES_TABLE} a ON a."row" = e."row"')
    fields = _sql_rules.deadline_fields(active)
    words = _sql_rules.match_words(active, columns, all_ids, day)
    keys = [f"bw_m{i}" for i in range(len(words))]
    query = select(
        col("e.fid"), *[col(v).label(f"bw_{k}") for k, v in spatial.items()],
        *[w.label(k) for k, w in zip(keys, words, strict=True)],
        *[_sql_rules.date_value(columns.get(f)).label(f"bw_dl_{i}")
          for i, f in enumerate(fields)],
    ).select_from(text(f"enterprises e {' '.join(joins)}")).compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    n = conn.exec_driver_sql(
        f"CREATE UNLOGGED TABLE bw_class_rows AS {query}", query.params).rowcount
    conn.execute(text("ANALYZE bw_class_rows"))  # for the plans of the joins with the list
    return int(n), keys, fields


#: Above this share of changed rows classify_in_database rewrites the table (indexes built
#: once) instead of updating rows in place (each changed row's entries in 9 indexes):
#: measured at 1M, the in-place update costs ~110 us per changed row, the rewrite with its
#: index builds ~6.5 s whatever changed (BENCHMARKS.md, postgis-classify).
_UPDATE_MAX_SHARE = 0.05


def _changed_sql(fields: Sequence[str], keys: Sequence[str], most: int) -> list[str]:
    """Statements writing ``bw_class_changed``: the fids of (at most ``most`` + 1) rows of
    ``enterprises`` whose classified columns differ from their new values (a parallel
    query: an UPDATE's own scan is not), then updating those rows by their primary key."""
    sets = _rules_assignments(fields)
    old = ", ".join(f'e."{c}"' for c in sets)
    new = ", ".join(sets.values())
    on = " AND ".join(f"c.{k} = k.{k}" for k in keys)
    assign = ", ".join(f'"{c}" = {v}' for c, v in sets.items())
    return [
        f"CREATE UNLOGGED TABLE bw_class_changed AS SELECT e.fid FROM enterprises e "
        f"JOIN bw_class_rows k ON k.fid = e.fid JOIN bw_class_combo c ON {on} "
        f"WHERE ({old}) IS DISTINCT FROM ({new}) LIMIT {most + 1}",
        f"UPDATE enterprises e SET {assign} FROM bw_class_changed d "
        f"JOIN bw_class_rows k ON k.fid = d.fid JOIN bw_class_combo c ON {on} "
        f"WHERE e.fid = d.fid",
    ]


def _store_combos(conn: Connection, keys: Sequence[str], found: Sequence[Any],
                  rows: Sequence[dict[str, Any]]) -> None:
    """Write ``bw_class_combo``: per distinct match words, the texts of ``rows``."""
    conn.execute(text(
        "CREATE UNLOGGED TABLE bw_class_combo (" + "".join(f"{k} bigint, " for k in keys)
        + "verdict text, standards text, rule_ids text, reasons text, price_measures text, "
        "fixed_deadline date, immediate boolean, undetermined boolean, fields text[])"))
    if rows:
        conn.execute(text(
            f"INSERT INTO bw_class_combo VALUES ({', '.join(':' + k for k in keys)}, :verdict, "
            ":standards, :rule_ids, :reasons, :price_measures, :fixed_deadline, :immediate, "
            ":undetermined, :fields)"),
            [{**dict(zip(keys, r, strict=True)), **row} for r, row in zip(found, rows,
                                                                          strict=True)])
    conn.execute(text("ANALYZE bw_class_combo"))


def _columns(conn: Connection) -> list[tuple[str, str, bool, str | None]]:
    """The columns of ``enterprises`` in table order: name, SQL type (with modifiers),
    NOT NULL, default expression."""
    return [tuple(r) for r in conn.execute(text(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = to_regclass('enterprises') AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum")).all()]


def _not_null_sql(columns: Sequence[tuple[str, str, bool, str | None]]) -> str:
    """``ALTER TABLE bw_classified``: the NOT NULLs and defaults of ``columns`` (of
    :func:`_columns`; a table created by a query has neither)."""
    parts = [f'ALTER COLUMN "{name}" SET NOT NULL' for name, _, notnull, _ in columns if notnull]
    parts += [f'ALTER COLUMN "{name}" SET DEFAULT {default}'
              for name, _, _, default in columns if default is not None]
    return f"ALTER TABLE {_REWRITE} " + ", ".join(parts)


def _rewrite_sql(columns: Sequence[tuple[str, str, bool, str | None]], fields: Sequence[str],
                 keys: Sequence[str]) -> str:
    """The statement creating ``bw_classified`` with every row of ``enterprises``
    (``columns`` of :func:`_columns`), the classified columns with their new
    values (those of :func:`_rules_assignments`), the others as stored. Created by a query,
    its SELECT runs in parallel (an INSERT's cannot)."""
    sets = _rules_assignments(fields)
    values = ", ".join(f'CAST({sets[c]} AS {kind}) AS "{c}"' if c in sets else f'e."{c}"'
                       for c, kind, _, _ in columns)
    on = " AND ".join(f"c.{k} = k.{k}" for k in keys)
    return (f"CREATE TABLE {_REWRITE} AS SELECT {values} FROM enterprises e "
            f"JOIN bw_class_rows k ON k.fid = e.fid JOIN bw_class_combo c ON {on}")


def _rules_assignments(fields: Sequence[str]) -> dict[str, str]:
    """Column -> new value (over ``bw_class_rows k`` and ``bw_class_combo c``)."""
    picks = [f"CASE WHEN :f{i} = ANY(c.fields) THEN k.bw_dl_{i} END"
             for i in range(len(fields))]
    unknown = [f"(:f{i} = ANY(c.fields) AND k.bw_dl_{i} IS NULL)" for i in range(len(fields))]
    day = "least(c.fixed_deadline" + "".join(f", {p}" for p in picks) + ")"
    undetermined = " OR ".join(["c.undetermined", *unknown])
    sets = {c: f"c.{c}" for c in ("verdict", "standards", "rule_ids", "reasons",
                                  "price_measures")}
    sets.update({c: f"k.bw_{c}" for c in _SPATIAL_COLUMNS})
    sets["deadline"] = (f"CASE WHEN c.immediate THEN '' ELSE "
                        f"coalesce(to_char({day}, 'YYYY-MM-DD'), '') END")
    sets["deadline_status"] = f"""CASE
        WHEN c.immediate THEN 'immediate'
        WHEN {day} IS NOT NULL THEN CASE WHEN {day} < :as_of THEN 'overdue' ELSE 'pending' END
        WHEN {undetermined} THEN 'undetermined'
        ELSE '' END"""
    return sets


#: Relative build times of the list's indexes at 1M rows (BENCHMARKS.md, postgis-classify):
#: the GiST build is serial and as long as two parallel B-tree builds on text; a B-tree on
#: integers or on ~4 % of the rows (a partial index) takes a fraction. Other B-trees: 1.
_INDEX_COST = {"USING gist": 2.0, "_pkey ON": 0.4, " WHERE ": 0.3}


def _index_lanes(table: str, lanes: int) -> list[list[str]]:
    """:func:`_index_ddl` of ``table`` split into ``lanes`` lists of about equal cost
    (longest first, each to the least loaded list)."""
    def cost(stmt: str) -> float:
        return next((v for k, v in _INDEX_COST.items() if k in stmt), 1.0)

    out: list[list[str]] = [[] for _ in range(lanes)]
    load = [0.0] * lanes
    for stmt in sorted(_index_ddl(table), key=cost, reverse=True):
        i = load.index(min(load))
        out[i].append(stmt)
        load[i] += cost(stmt)
    return out


def _swap_rewrite(store: PostGISStore, conn: Connection, version: tuple[Any, ...]) -> None:
    """Build the indexes of ``bw_classified`` (committed by :func:`_classify_in_sql`) from
    ``_LANES`` connections at once, then swap it in for ``enterprises`` on ``conn`` --
    unless the list changed since ``version`` (:class:`~geo.errors.ConcurrentWriteError`;
    the caller's :func:`_classification_lock` then drops the table)."""
    from concurrent.futures import ThreadPoolExecutor

    from geo.errors import ConcurrentWriteError

    def build(stmts: Sequence[str]) -> None:
        with store.engine.begin() as lane:
            for stmt in stmts:
                lane.execute(text(stmt))

    def check() -> None:
        if tuple(conn.exec_driver_sql(f"SELECT {_VERSION_SQL}").one()) != version:
            raise ConcurrentWriteError()

    with ThreadPoolExecutor(_LANES) as pool:
        futures = [pool.submit(build, stmts) for stmts in _index_lanes(_REWRITE, _LANES)]
    for done in futures:  # every lane has ended: raise the first failure
        done.result()
    with conn.begin():
        check()  # a list replaced meanwhile fails at once, queueing no reader behind a lock
        conn.execute(text("LOCK TABLE enterprises IN ACCESS EXCLUSIVE MODE"))
        check()
        for stmt in _swap_ddl(_REWRITE):
            conn.execute(text(stmt))


def _rules_in_process(conn: Connection, units: pd.DataFrame, catalog: Any, day: Any) -> None:
    """The fallback: every rule by geo.rules on the stored rows and units, written back."""
    from geo.rules import evaluate_rules

    from sqlalchemy import inspect

    ent = pd.read_sql(text("SELECT * FROM enterprises ORDER BY fid"), conn)
    ent = ent.drop(columns=["geometry"], errors="ignore")
    if inspect(conn).has_table(ATTRIBUTES_TABLE):
        attrs = pd.read_sql_table(ATTRIBUTES_TABLE, conn)
        extra = [c for c in attrs.columns if c not in ent.columns]
        ent = ent.merge(attrs[["row", *extra]], on="row", how="left")
    res = evaluate_rules(ent, units, catalog=catalog, as_of=day).enterprises
    cols = ["verdict", "standards", "rule_ids", "reasons", "price_measures", "deadline",
            "deadline_status", "units", "unit_count"]
    conn.execute(text("CREATE TEMP TABLE _bw_rules_out (fid bigint, verdict text, standards "
                      "text, rule_ids text, reasons text, price_measures text, deadline text, "
                      "deadline_status text, units text, unit_count integer) ON COMMIT DROP"))
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
        f"COPY _bw_rules_out (fid, {', '.join(cols)}) FROM STDIN"
    ) as copy:
        values = [res[c].tolist() for c in cols]
        for row in zip(res["fid"].tolist(), *values, strict=True):
            copy.write_row(row)
    conn.execute(text(
        "UPDATE enterprises e SET " + ", ".join(f"{c} = o.{c}" for c in cols)
        + " FROM _bw_rules_out o WHERE e.fid = o.fid"))
