"""PostGIS store through SQLAlchemy 2, GeoAlchemy2 and psycopg 3.

Schema is owned by alembic (``api/migrations``); :meth:`PostGISStore.init` upgrades to head.
A load streams the frame into a staging table with ``COPY ... FROM STDIN (FORMAT csv)``,
builds the indexes there, then swaps it for ``enterprises`` and records the load in one
transaction: readers see the old list until commit, and any failure rolls everything back.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator, Sequence
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
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from api.store.base import (
    BOOL_COLUMNS,
    FID,
    FLOAT_COLUMNS,
    GEOMETRY,
    INTEGER_COLUMNS,
    POINT_COLUMNS,
    TEXT_COLUMNS,
    FeatureQuery,
    LoadRecord,
    QueryResult,
    Store,
    prepare_enterprises,
)
from api.store.cql import sql_filter
from geo.errors import InvalidQueryError
from geo.schema import ENFORCEMENT_COLUMNS

__all__ = [
    "PostGISStore",
    "MIGRATIONS_DIR",
    "REFERENCE_TABLES",
    "load_reference_layers",
    "classify_in_database",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_COPY_CHUNK = 100_000
_INDEXED = ("verdict", "industry_id", "basin_id", "region_id", "district_code", "city")

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
        """Dispose of the connection pool."""
        self.engine.dispose()

    # -- queries ---------------------------------------------------------------------------
    def _where(self, q: FeatureQuery) -> list[Any]:
        t = enterprises
        geom = t.c[GEOMETRY]
        conds: list[Any] = []
        if q.bbox is not None:
            conds.append(func.ST_Intersects(geom, func.ST_MakeEnvelope(*q.bbox, 4326)))
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
            conds.append(t.c[col].in_(self._coerce(col, accepted)))
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
            return [str(a).lower() in ("true", "1", "yes") for a in accepted]
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
        with self.engine.connect() as conn:
            frame = self._frame(conn, stmt)
            n = int(conn.execute(count).scalar_one())
        return QueryResult(features=frame, number_matched=n)

    def get(self, fid: int) -> gpd.GeoDataFrame:
        """The feature with that fid (empty frame if none)."""
        with self.engine.connect() as conn:
            return self._frame(conn, self._select().where(enterprises.c[FID] == fid))

    def counts(self, q: FeatureQuery, column: str) -> dict[str, int]:
        """Matching features per value of ``column``."""
        if column not in enterprises.c or column == GEOMETRY:
            raise InvalidQueryError(f"{column}: unknown property.")
        col = enterprises.c[column]
        stmt = (
            select(col, func.count()).where(*self._where(q.unpaged())).group_by(col)
        )
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            key = None
            if q.bbox is None and q.within is None and q.near is None and q.cql is None:
                version = conn.execute(select(func.max(loads_table.c.load_id))).scalar()
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
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame(rows, columns=list(POINT_COLUMNS))
        return df.astype({FID: "int64", "lon": "float64", "lat": "float64"})

    def warm(self) -> None:
        """Open a pooled connection and touch the table, so the first request is not slow."""
        with self.engine.connect() as conn:
            conn.execute(select(func.count()).select_from(loads_table)).scalar_one()
            conn.execute(select(enterprises.c[FID]).limit(1)).all()

    def loads(self) -> list[LoadRecord]:
        """Load history, newest first."""
        stmt = select(loads_table).order_by(loads_table.c.load_id.desc())
        with self.engine.connect() as conn:
            return [LoadRecord(**dict(r._mapping)) for r in conn.execute(stmt)]

    def extent(self) -> tuple[float, float, float, float] | None:
        """Bounding box of the current list."""
        g = enterprises.c[GEOMETRY]
        stmt = select(func.ST_XMin(func.ST_Extent(g)), func.ST_YMin(func.ST_Extent(g)),
                      func.ST_XMax(func.ST_Extent(g)), func.ST_YMax(func.ST_Extent(g)))
        with self.engine.connect() as conn:
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
            ddl = [
                "ALTER TABLE enterprises_staging ADD CONSTRAINT enterprises_staging_pkey "
                "PRIMARY KEY (fid)",
                "CREATE INDEX ix_staging_geometry ON enterprises_staging USING gist (geometry)",
                *[f"CREATE INDEX ix_staging_{c} ON enterprises_staging ({c})" for c in _INDEXED],
                "DROP TABLE enterprises",
                "ALTER TABLE enterprises_staging RENAME TO enterprises",
                "ALTER INDEX enterprises_staging_pkey RENAME TO enterprises_pkey",
                "ALTER INDEX ix_staging_geometry RENAME TO ix_enterprises_geometry",
                *[f"ALTER INDEX ix_staging_{c} RENAME TO ix_enterprises_{c}" for c in _INDEXED],
                "ANALYZE enterprises",
            ]
            for stmt in ddl:
                conn.execute(text(stmt))
        record = LoadRecord(**dict(rec._mapping))
        log.info("load %d: %d enterprises into PostGIS", record.load_id, len(frame))
        return record

    # -- in-database classification ----------------------------------------------------------
    def load_reference_layers(
        self, layers: dict[str, gpd.GeoDataFrame] | None = None
    ) -> dict[str, int]:
        """Copy the reference layers into PostGIS; see :func:`load_reference_layers`."""
        return load_reference_layers(self, layers)

    def classify_in_database(self, *, catalog: Any = None, as_of: Any = None) -> int:
        """Classify the stored list in SQL; see :func:`classify_in_database`."""
        return classify_in_database(self, catalog=catalog, as_of=as_of)


# --------------------------------------------------------------------------- in-database
#: Reference tables of in-database classification: kind -> (table, text columns).
REFERENCE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "district": ("bw_ref_district", ("code", "name_zh", "city_code", "city_zh")),
    "basin": ("bw_ref_basin", ("id",)),
    "region": ("bw_ref_region", ("id",)),
    "park": ("bw_ref_park", ("id",)),
}

#: Lowest-positioned polygon of a reference table whose interior contains the point (the
#: in-process rule: boundary excluded, first polygon in layer order wins).
_SPATIAL_SQL = """
CREATE TEMP TABLE _bw_spatial ON COMMIT DROP AS
SELECT e.fid,
    coalesce(d.city_zh, '') AS city, coalesce(d.name_zh, '') AS district,
    coalesce(d.code, '') AS district_code, coalesce(b.id, '') AS basin_id,
    coalesce(r.id, '') AS region_id, coalesce(p.id, '') AS park_id
FROM enterprises e
LEFT JOIN LATERAL (SELECT x.city_zh, x.name_zh, x.code FROM bw_ref_district x
                   WHERE ST_Contains(x.geom, e.geometry) ORDER BY x.pos LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT x.id FROM bw_ref_basin x
                   WHERE ST_Contains(x.geom, e.geometry) ORDER BY x.pos LIMIT 1) b ON true
LEFT JOIN LATERAL (SELECT x.id FROM bw_ref_region x
                   WHERE ST_Contains(x.geom, e.geometry) ORDER BY x.pos LIMIT 1) r ON true
LEFT JOIN LATERAL (SELECT x.id FROM bw_ref_park x
                   WHERE ST_Contains(x.geom, e.geometry) ORDER BY x.pos LIMIT 1) p ON true
"""

_UPDATE_SQL = """
UPDATE enterprises e SET
    city = s.city, district = s.district, district_code = s.district_code,
    basin_id = s.basin_id, region_id = s.region_id, park_id = s.park_id,
    verdict = c.verdict, standards = c.standards, rule_ids = c.rule_ids, reasons = c.reasons
FROM _bw_spatial s JOIN _bw_masks k ON k.fid = s.fid JOIN _bw_combo c ON c.m = k.m
WHERE e.fid = s.fid
"""


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
    log.info("reference layers in PostGIS: %s", counts)
    return counts


def classify_in_database(
    store: PostGISStore,
    *,
    catalog: Any = None,
    as_of: Any = None,
) -> int:
    """Classify the stored enterprises inside PostGIS and apply the rule catalog in SQL.

    Spatial attributes come from ``ST_Contains`` joins against the tables written by
    :func:`load_reference_layers` (GiST-indexed; the first polygon in layer order wins);
    rules are :mod:`api.store._sql_rules` expressions over the ``enterprises`` columns
    (a rule field the table lacks never matches, as in process). Updates ``city``,
    ``district``, ``district_code``, ``basin_id``, ``region_id``, ``park_id``, ``verdict``,
    ``standards``, ``rule_ids`` and ``reasons`` in one transaction. ``needs_review`` and
    ``review_reasons`` are left as stored: boundary bands and coarse-geocode checks are
    in-process only.

    Parameters
    ----------
    store
        The PostGIS store holding the enterprises.
    catalog
        Rule catalog (default :func:`layers.catalog.rules`).
    as_of
        Evaluation date (default today); rules not yet effective do not apply.

    Returns
    -------
    Number of enterprises updated.
    """
    from sqlalchemy import ARRAY, inspect
    from sqlalchemy import column as sa_column
    from sqlalchemy import table as sa_table

    from api.store import _sql_rules
    from geo.schema import LIST_SEP, REASON_SEP
    from layers.catalog import industries
    from layers.catalog import rules as default_rules

    catalog = catalog or default_rules()
    active = _sql_rules.active_rules(catalog, as_of)
    all_ids = [i.id for i in industries()]
    spatial_cols = ("city", "district", "district_code", "basin_id", "region_id", "park_id")
    with store.engine.begin() as conn:
        missing = [t for t, _ in REFERENCE_TABLES.values()
                   if not inspect(conn).has_table(t)]
        if missing:
            raise InvalidQueryError(
                f"reference tables {missing} are missing: call load_reference_layers first."
            )
        # the live table's columns (attribute columns added to it take part in rules)
        live = sa_table("enterprises", *[
            sa_column(c["name"], c["type"]) for c in inspect(conn).get_columns("enterprises")
        ])
        spatial = sa_table("_bw_spatial", sa_column("fid", BigInteger),
                           *[sa_column(c, Text) for c in spatial_cols])
        columns = {c.name: c for c in live.c if c.name not in spatial_cols}
        columns.update({c: spatial.c[c] for c in spatial_cols})

        conn.execute(text(_SPATIAL_SQL))
        conn.execute(text("CREATE TEMP TABLE _bw_masks (fid bigint, m boolean[]) "
                          "ON COMMIT DROP"))
        masks = sa_table("_bw_masks", sa_column("fid", BigInteger),
                         sa_column("m", ARRAY(Boolean)))
        conn.execute(insert(masks).from_select(
            ["fid", "m"],
            select(spatial.c.fid, _sql_rules.match_array(active, columns, all_ids))
            .select_from(spatial.join(live, live.c.fid == spatial.c.fid)),
        ))
        conn.execute(text("CREATE TEMP TABLE _bw_rules (ord integer, id text, verdict text, "
                          "rank integer, standards text[], reason text) ON COMMIT DROP"))
        rows = _sql_rules.rule_rows(catalog, active)
        if rows:
            conn.execute(text("INSERT INTO _bw_rules VALUES "
                              "(:ord, :id, :verdict, :rank, :standards, :reason)"), rows)
        conn.execute(text(_sql_rules.COMBO_SQL), {
            "default": catalog.default_verdict, "list_sep": LIST_SEP, "reason_sep": REASON_SEP,
        })
        n = conn.execute(text(_UPDATE_SQL)).rowcount
        conn.execute(text("ANALYZE enterprises"))
    log.info("classified %d enterprises in PostGIS (%d rules)", n, len(active))
    return int(n)
