"""Where cases, their append-only history, monitoring samples and calendar submissions live.

Both providers share one SQLAlchemy Core schema and one set of queries:

* PostGIS: the tables sit beside ``enterprises`` in the same database/schema, created by the
  alembic revision ``0002_cases``; triggers reject UPDATE, DELETE and TRUNCATE on the
  append-only tables.
* GeoPackage: a companion file next to the store's (``basinwatch.gpkg`` ->
  ``basinwatch.cases.gpkg``), a valid GeoPackage whose tables are registered as
  ``attributes`` (QGIS and ``ogrinfo`` list them). The enterprise file is replaced whole
  on every load (``os.replace``); the history is never rewritten, so it lives apart and is
  only appended to. Triggers reject UPDATE and DELETE there too.

"State at a date" is one query: per case and field, the latest event effective on or
before the date (``ROW_NUMBER() OVER (PARTITION BY case_id, field ORDER BY effective_date
DESC, event_id DESC)``). Writes that depend on the current state (status changes, a load's
sync) run in a locked transaction (``BEGIN IMMEDIATE`` / ``pg_advisory_xact_lock``), so two
editors cannot both move a case from the same status.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api.store.base import Store
from geo.cases import CASE_COLUMNS, EVENT_COLUMNS
from geo.monitoring import MONITORING_COLUMNS
from layers.casework import case_spec

__all__ = [
    "CaseStore",
    "case_store_for",
    "metadata",
    "APPEND_ONLY_TABLES",
    "companion_path",
]

log = logging.getLogger(__name__)

_LOCK_KEY: Final = 20190415  # advisory lock id of case writes (any constant)
#: Tables whose rows are never updated or deleted (triggers enforce it).
APPEND_ONLY_TABLES: Final = ("cases", "case_events", "case_syncs", "monitoring_batches",
                             "monitoring_samples", "calendar_submissions")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware timestamps: ``timestamptz`` in PostgreSQL, ISO-8601 text
    (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the GeoPackage DATETIME form) in SQLite.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
        if dialect.name == "sqlite":
            return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return ts.to_pydatetime()

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


metadata = sa.MetaData()
cases_t = sa.Table(
    "cases", metadata,
    sa.Column("case_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("opened_on", sa.Date, nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("opened_by", sa.Text, nullable=False),
    sa.Column("load_id", sa.Integer),
)
events_t = sa.Table(
    "case_events", metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.case_id"), nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("before", sa.Text, nullable=False),
    sa.Column("after", sa.Text, nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("recorded_by", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Index("ix_case_events_state", "case_id", "field", "effective_date", "event_id"),
    sa.Index("ix_case_events_source", "source"),
)
syncs_t = sa.Table(
    "case_syncs", metadata,
    sa.Column("load_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("synced_at", UTCDateTime, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("opened", sa.Integer, nullable=False),
    sa.Column("continued", sa.Integer, nullable=False),
    sa.Column("changed", sa.Integer, nullable=False),
    sa.Column("verdict_changed", sa.Integer, nullable=False),
    sa.Column("absent", sa.Integer, nullable=False),
)
batches_t = sa.Table(
    "monitoring_batches", metadata,
    sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("loaded_at", UTCDateTime, nullable=False),
    sa.Column("loaded_by", sa.Text, nullable=False),
    sa.Column("source_name", sa.Text, nullable=False),
    sa.Column("source_sha256", sa.Text, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
)
samples_t = sa.Table(
    "monitoring_samples", metadata,
    sa.Column("sample_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("monitoring_batches.batch_id"),
              nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("uscc", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("outlet", sa.Text, nullable=False),
    sa.Column("pollutant", sa.Text, nullable=False),
    sa.Column("sampled_at", UTCDateTime, nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("below_detection", sa.Boolean, nullable=False),
    sa.Column("detection_limit", sa.Float(precision=53)),
    sa.Column("flow", sa.Float(precision=53)),
    sa.Column("discharge", sa.Text, nullable=False),
    sa.Index("ix_monitoring_samples_time", "sampled_at"),
)
submissions_t = sa.Table(
    "calendar_submissions", metadata,
    sa.Column("submission_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("department", sa.Text, nullable=False),
    sa.Column("submitted_on", sa.Date, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("recorded_by", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

_GPKG_APPLICATION_ID: Final = 0x47504B47  # "GPKG"
_GPKG_VERSION: Final = 10300
_GPKG_CORE: Final = (
    """CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (srs_name TEXT NOT NULL,
       srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL,
       organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
       description TEXT)""",
    "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES "
    "('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian'), "
    "('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic'), "
    "('WGS 84 geodetic', 4326, 'EPSG', 4326, 'GEOGCS[\"WGS 84\",DATUM[\"WGS_1984\","
    "SPHEROID[\"WGS 84\",6378137,298.257223563,AUTHORITY[\"EPSG\",\"7030\"]],"
    "AUTHORITY[\"EPSG\",\"6326\"]],PRIMEM[\"Greenwich\",0,AUTHORITY[\"EPSG\",\"8901\"]],"
    "UNIT[\"degree\",0.0174532925199433,AUTHORITY[\"EPSG\",\"9122\"]],"
    "AXIS[\"Latitude\",NORTH],AXIS[\"Longitude\",EAST],AUTHORITY[\"EPSG\",\"4326\"]]', "
    "'longitude/latitude WGS 84')",
    """CREATE TABLE IF NOT EXISTS gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,
       data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '',
       last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
       min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
       CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (table_name TEXT NOT NULL,
       column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL,
       z TINYINT NOT NULL, m TINYINT NOT NULL,
       CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name))""",
)
_DESCRIPTIONS: Final = {
    "cases": "执法案件（每案一行，只增不改）/ enforcement cases, identity rows",
    "case_events": "案件变更记录（谁、何时、变更前、变更后；只增不改）/ append-only case history",
    "case_syncs": "名录加载与案件同步记录 / registry loads applied to cases",
    "monitoring_batches": "监测数据导入批次 / monitoring uploads",
    "monitoring_samples": "监测数据 / monitoring samples",
    "calendar_submissions": "按期报送记录 / calendar submissions",
}


def companion_path(gpkg: str | Path) -> Path:
    """The case file next to an embedded store file (``x.gpkg`` -> ``x.cases.gpkg``)."""
    p = Path(gpkg)
    return p.with_name(f"{p.stem}.cases.gpkg")


class CaseStore:
    """Cases, their history, monitoring samples and calendar submissions in one database.

    Parameters
    ----------
    engine
        A SQLAlchemy engine on PostgreSQL (schema from alembic) or on the companion SQLite
        GeoPackage (schema created by :meth:`init`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._init_lock = threading.Lock()
        self._ready = False
        self._writer = engine
        if self.dialect == "sqlite":
            # readers start deferred transactions; writers BEGIN IMMEDIATE: one writer at a
            # time, taken at the start, so a read-check-append cannot interleave
            self._sqlite_setup(engine, "BEGIN")
            self._writer = sa.create_engine(engine.url)
            self._sqlite_setup(self._writer, "BEGIN IMMEDIATE")

    @staticmethod
    def _sqlite_setup(engine: Engine, begin: str) -> None:
        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA foreign_keys = ON")
            dbapi_conn.execute("PRAGMA busy_timeout = 30000")

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin)

    # -- schema ----------------------------------------------------------------------------
    def init(self) -> None:
        """Create the GeoPackage companion's tables (PostGIS: alembic owns the schema)."""
        with self._init_lock:
            if self._ready:
                return
            if self.dialect == "sqlite":
                self._init_gpkg()
            self._ready = True

    def _init_gpkg(self) -> None:
        with self._writer.begin() as conn:
            conn.exec_driver_sql(f"PRAGMA application_id = {_GPKG_APPLICATION_ID}")
            conn.exec_driver_sql(f"PRAGMA user_version = {_GPKG_VERSION}")
            for ddl in _GPKG_CORE:
                conn.exec_driver_sql(ddl)
            metadata.create_all(conn)
            for table in APPEND_ONLY_TABLES:
                for op in ("UPDATE", "DELETE"):
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} "
                        f"ON {table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
                conn.exec_driver_sql(
                    "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                    "description) VALUES (?, 'attributes', ?, ?)",
                    (table, table, _DESCRIPTIONS[table]),
                )

    @contextmanager
    def locked(self) -> Iterator[Connection]:
        """A transaction holding the case-write lock (released at commit/rollback)."""
        self.init()
        with self._writer.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            yield conn

    def close(self) -> None:
        """Dispose of the engine (companion SQLite only; PostGIS shares the store's)."""
        if self.dialect == "sqlite":
            self.engine.dispose()
            self._writer.dispose()

    # -- cases -----------------------------------------------------------------------------
    def cases(self, conn: Connection | None = None) -> pd.DataFrame:
        """Identity rows of all cases (:data:`geo.cases.CASE_COLUMNS`)."""
        return self._read(sa.select(cases_t).order_by(cases_t.c.case_id), CASE_COLUMNS, conn)

    def next_case_id(self, conn: Connection) -> int:
        """First unused case id."""
        top = conn.execute(sa.select(sa.func.max(cases_t.c.case_id))).scalar()
        return int(top or 0) + 1

    def latest(self, as_of: date | None = None, *, case_ids: Sequence[int] | None = None,
               conn: Connection | None = None) -> pd.DataFrame:
        """Per case and field, the latest event effective on or before ``as_of`` (all when
        None): ``case_id, field, after, effective_date``. The state-at-a-date query.
        """
        e = events_t
        rn = sa.func.row_number().over(
            partition_by=(e.c.case_id, e.c.field),
            order_by=(e.c.effective_date.desc(), e.c.event_id.desc()),
        ).label("rn")
        inner = sa.select(e.c.case_id, e.c.field, e.c.after, e.c.effective_date, rn)
        if as_of is not None:
            inner = inner.where(e.c.effective_date <= as_of)
        if case_ids is not None:
            inner = inner.where(e.c.case_id.in_([int(c) for c in case_ids]))
        sub = inner.subquery()
        stmt = sa.select(sub.c.case_id, sub.c.field, sub.c.after, sub.c.effective_date).where(
            sub.c.rn == 1)
        return self._read(stmt, ("case_id", "field", "after", "effective_date"), conn)

    def exit_dates(self, as_of: date | None = None, *,
                   conn: Connection | None = None) -> pd.DataFrame:
        """``case_id, exited_on``: first exit status (cases.toml) on or before ``as_of``."""
        exits = [s.id for s in case_spec().statuses.values() if s.exit]
        e = events_t
        stmt = sa.select(e.c.case_id, sa.func.min(e.c.effective_date).label("exited_on")).where(
            e.c.field == "status", e.c.after.in_(exits)).group_by(e.c.case_id)
        if as_of is not None:
            stmt = stmt.where(e.c.effective_date <= as_of)
        return self._read(stmt, ("case_id", "exited_on"), conn)

    def history(self, *, case_id: int | None = None, source: str | None = None,
                field: str | None = None) -> pd.DataFrame:
        """Events (:data:`geo.cases.EVENT_COLUMNS`), oldest first."""
        stmt = sa.select(events_t).order_by(events_t.c.event_id)
        if case_id is not None:
            stmt = stmt.where(events_t.c.case_id == int(case_id))
        if source is not None:
            stmt = stmt.where(events_t.c.source == source)
        if field is not None:
            stmt = stmt.where(events_t.c.field == field)
        return self._read(stmt, EVENT_COLUMNS)

    def synced(self, load_id: int, conn: Connection | None = None) -> bool:
        """Whether that load has been applied to the cases."""
        stmt = sa.select(syncs_t.c.load_id).where(syncs_t.c.load_id == int(load_id))
        return len(self._read(stmt, ("load_id",), conn)) > 0

    def syncs(self) -> pd.DataFrame:
        """Loads applied to the cases, newest first."""
        cols = tuple(c.name for c in syncs_t.c)
        return self._read(sa.select(syncs_t).order_by(syncs_t.c.load_id.desc()), cols)

    def append(self, conn: Connection, *, cases: pd.DataFrame | None = None,
               events: pd.DataFrame | None = None) -> int:
        """Insert case identity rows and events (in ``conn``'s transaction); events count."""
        if cases is not None and len(cases):
            conn.execute(sa.insert(cases_t), _records(cases, CASE_COLUMNS))
        if events is not None and len(events):
            cols = [c for c in EVENT_COLUMNS if c != "event_id"]
            conn.execute(sa.insert(events_t), _records(events, cols))
            return len(events)
        return 0

    def record_sync(self, conn: Connection, *, load_id: int, as_of: date,
                    counts: dict[str, int]) -> None:
        """Note that a load has been applied (a second application fails on the key)."""
        conn.execute(sa.insert(syncs_t), [{
            "load_id": int(load_id), "synced_at": datetime.now(UTC), "as_of": as_of,
            **{k: int(counts.get(k, 0)) for k in
               ("opened", "continued", "changed", "verdict_changed", "absent")},
        }])

    # -- monitoring ------------------------------------------------------------------------
    def add_samples(self, samples: pd.DataFrame, *, loaded_by: str, source_name: str,
                    source_sha256: str, rejected: int) -> dict[str, Any]:
        """Store accepted monitoring rows as a new batch (one transaction)."""
        with self.locked() as conn:
            top = conn.execute(sa.select(sa.func.max(batches_t.c.batch_id))).scalar()
            batch = {"batch_id": int(top or 0) + 1, "loaded_at": datetime.now(UTC),
                     "loaded_by": loaded_by, "source_name": source_name,
                     "source_sha256": source_sha256, "accepted": len(samples),
                     "rejected": int(rejected)}
            conn.execute(sa.insert(batches_t), [batch])
            if len(samples):
                rows = samples[list(MONITORING_COLUMNS)].assign(batch_id=batch["batch_id"])
                conn.execute(sa.insert(samples_t), _records(rows, [*MONITORING_COLUMNS,
                                                                   "batch_id"]))
        return batch

    def samples(self, *, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Stored monitoring rows (:data:`geo.monitoring.MONITORING_COLUMNS` + batch_id)."""
        s = samples_t
        stmt = sa.select(*[s.c[c] for c in (*MONITORING_COLUMNS, "batch_id")]).order_by(
            s.c.sample_id)
        if start is not None:
            stmt = stmt.where(s.c.sampled_at >= datetime(start.year, start.month, start.day,
                                                         tzinfo=UTC))
        if end is not None:
            stmt = stmt.where(s.c.sampled_at < pd.Timestamp(end, tz=UTC) + pd.Timedelta(days=1))
        df = self._read(stmt, (*MONITORING_COLUMNS, "batch_id"))
        df["sampled_at"] = pd.to_datetime(df["sampled_at"], utc=True).dt.tz_localize(None)
        df["below_detection"] = df["below_detection"].astype(bool)
        for c in ("value", "detection_limit", "flow"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
        return df

    def batches(self) -> pd.DataFrame:
        """Monitoring uploads, newest first."""
        cols = tuple(c.name for c in batches_t.c)
        return self._read(sa.select(batches_t).order_by(batches_t.c.batch_id.desc()), cols)

    # -- calendar --------------------------------------------------------------------------
    def add_submission(self, *, item_id: str, department: str, submitted_on: date,
                       recorded_by: str, note: str = "") -> dict[str, Any]:
        """Record that a department submitted a calendar item."""
        row = {"item_id": item_id, "department": department, "submitted_on": submitted_on,
               "recorded_at": datetime.now(UTC), "recorded_by": recorded_by, "note": note}
        with self.locked() as conn:
            conn.execute(sa.insert(submissions_t), [row])
        return row

    def submissions(self) -> pd.DataFrame:
        """All calendar submissions, oldest first."""
        cols = tuple(c.name for c in submissions_t.c)
        return self._read(sa.select(submissions_t).order_by(submissions_t.c.submission_id),
                          cols)

    # -- helpers ---------------------------------------------------------------------------
    def _read(self, stmt: Any, columns: Sequence[str],
              conn: Connection | None = None) -> pd.DataFrame:
        self.init()
        if conn is not None:
            rows = conn.execute(stmt).all()
        else:
            with self.engine.connect() as c:
                rows = c.execute(stmt).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(columns))


def _records(df: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows as dicts with Python scalars (NaN/NaT -> None) for executemany."""
    out = df[list(columns)].astype(object)
    out = out.where(out.notna(), None)
    return out.to_dict("records")


_STORES: weakref.WeakKeyDictionary[Store, CaseStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def case_store_for(store: Store) -> CaseStore:
    """The case store that belongs to an enterprise store (one per store object)."""
    with _STORES_LOCK:
        hit = _STORES.get(store)
        if hit is not None:
            return hit
        if store.provider == "postgis":
            cs = CaseStore(store.engine)  # type: ignore[attr-defined]
        else:
            path = companion_path(store.path)  # type: ignore[attr-defined]
            path.parent.mkdir(parents=True, exist_ok=True)
            cs = CaseStore(sa.create_engine(f"sqlite:///{path}"))
        _STORES[store] = cs
        return cs
