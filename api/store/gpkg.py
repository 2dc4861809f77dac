"""Embedded store: one GeoPackage file written and read through pyogrio (GDAL).

Layers in the file: ``enterprises`` (points, GeoPackage FID = ``fid``, R-tree index) and
``loads`` (attribute table, the version history). A load writes a complete new file next to
the old one (``.load-<pid>-*.gpkg``, flushed to disk) and swaps it in with
:func:`os.replace`, so readers see either the old or the new version, and a failed or
killed load leaves the old file untouched (a killed loader's temporary file is removed by
the next :meth:`~GeoPackageStore.init`). Loads of several processes are serialised by an
``flock`` on ``<file>.lock``. The current list is cached in memory keyed by the file's
(inode, mtime, size) and queried with vectorised frame queries; :meth:`pinned` keeps one
such version for a whole request. The audit log is a SQLite file beside the store
(``<name>.audit.sqlite``, append-only, WAL).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from api.store.base import (
    BOOL_COLUMNS,
    FID,
    INTEGER_COLUMNS,
    POINT_COLUMNS,
    TEXT_COLUMNS,
    AuditEntry,
    CancelHook,
    FeatureQuery,
    LoadRecord,
    QueryResult,
    Store,
    parse_bool,
    prepare_enterprises,
    version_of_loads,
)
from api.store.frame import query_frame, select_positions
from api.store.geojson import FeaturePage, json_values, point_features_from_arrays
from geo.errors import InvalidQueryError
from geo.files import pid_alive
from geo.schema import ENFORCEMENT_COLUMNS

__all__ = ["GeoPackageStore"]

log = logging.getLogger(__name__)

_ENTERPRISES = "enterprises"
_LOADS = "loads"
_LOAD_COLUMNS = (
    "load_id", "loaded_at", "loaded_by", "source_name", "source_sha256", "accepted", "rejected",
)


#: Memoised counts kept per version (property-only queries repeat: districts, basins).
_COUNTS_MEMO = 4096


@dataclass
class _Version:
    """One version of the file in memory, with what queries need precomputed."""

    stamp: tuple[int, int, int] | None
    gdf: gpd.GeoDataFrame
    loads: list[LoadRecord]
    x: np.ndarray
    y: np.ndarray
    fid: np.ndarray
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    memo: dict[tuple[object, ...], dict[str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: fid -> row position (-1: no such fid), built on first use for this version
    by_fid: np.ndarray | None = None
    #: column -> JSON-ready object array (built on first use for this version)
    json_cols: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, stamp: tuple[int, int, int] | None, gdf: gpd.GeoDataFrame,
           loads: list[LoadRecord]) -> _Version:
        geoms = np.asarray(gdf.geometry.values)
        return cls(stamp, gdf, loads, np.asarray(shapely.get_x(geoms), dtype=np.float64),
                   np.asarray(shapely.get_y(geoms), dtype=np.float64),
                   gdf[FID].to_numpy(dtype=np.int64))

    def position(self, fid: int) -> int:
        """Row position of ``fid`` in this version, -1 if there is none (O(1))."""
        index = self.by_fid
        if index is None:
            top = int(self.fid.max()) + 1 if len(self.fid) else 0
            index = np.full(top, -1, dtype=np.int64)
            index[self.fid] = np.arange(len(self.fid))
            self.by_fid = index
        return int(index[fid]) if 0 <= fid < len(index) else -1

    def json_column(self, column: str) -> np.ndarray:
        """JSON-ready values of ``column`` (missing values None), computed once."""
        hit = self.json_cols.get(column)
        if hit is None:
            hit = json_values(self.gdf[column])
            self.json_cols[column] = hit
        return hit

    def features(self, pos: np.ndarray, columns: Sequence[str]) -> list[dict[str, object]]:
        """GeoJSON features of the rows at ``pos`` with ``columns`` as properties."""
        return point_features_from_arrays(
            self.fid[pos].tolist(), self.x[pos].tolist(), self.y[pos].tolist(), columns,
            [self.json_column(c)[pos].tolist() for c in columns])

    def factorized(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, labels)`` of a text/bool column as the query compares it (``str``)."""
        hit = self.codes.get(column)
        if hit is None:
            codes, labels = pd.factorize(self.gdf[column].astype(str), sort=False)
            hit = (codes.astype(np.int32), np.asarray(labels, dtype=object))
            with self.lock:
                self.codes[column] = hit
        return hit


def _columns(columns: Sequence[str] | None) -> Sequence[str]:
    return [FID, *ENFORCEMENT_COLUMNS] if columns is None else columns


def _unfiltered(q: FeatureQuery) -> bool:
    return (q.bbox is None and q.within is None and q.near is None and q.cql is None
            and not q.properties)


def _properties_only(q: FeatureQuery) -> bool:
    return (q.bbox is None and q.within is None and q.near is None and q.cql is None
            and all(c in TEXT_COLUMNS or c in BOOL_COLUMNS for c in q.properties))


def _empty() -> gpd.GeoDataFrame:
    cols = {c: pd.Series(dtype=object) for c in ENFORCEMENT_COLUMNS}
    return prepare_enterprises(gpd.GeoDataFrame(cols, geometry=[], crs="EPSG:4326"))


class GeoPackageStore(Store):
    """Store backed by one GeoPackage file.

    Parameters
    ----------
    path
        The ``.gpkg`` file (created on first load; parent directories on :meth:`init`).
    """

    provider = "gpkg"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: _Version | None = None
        self._pin: _Version | None = None
        self._origin: GeoPackageStore | None = None

    def init(self) -> None:
        """Create the data directory and the audit log; remove temporary files of loads
        whose process no longer exists (killed mid-load)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for tmp in self.path.parent.glob(".load-*.gpkg*"):
            m = re.match(r"\.load-(\d+)-", tmp.name)
            if m and not pid_alive(int(m.group(1))):
                tmp.unlink(missing_ok=True)
                log.warning("removed %s left by a killed load", tmp)
        with self._audit_db() as db:
            db.execute(_AUDIT_DDL)

    # -- one version per request -----------------------------------------------------------
    def pinned(self, *, cancel: CancelHook | None = None) -> GeoPackageStore:
        """A view answering every read from the version current now."""
        view = copy.copy(self)
        view._origin = self._origin or self
        view._pin = self._version()
        return view

    # -- reading ---------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _version(self) -> _Version:
        if self._pin is not None:
            return self._pin
        stamp = self._stamp()
        if stamp is None:
            return _Version.of(None, _empty(), [])
        with self._lock:
            if self._cache is not None and self._cache.stamp == stamp:
                return self._cache
            gdf = pyogrio.read_dataframe(self.path, layer=_ENTERPRISES, fid_as_index=True)
            gdf = gdf.reset_index().rename(columns={"index": FID})
            for col in INTEGER_COLUMNS:
                gdf[col] = gdf[col].astype("Int64")
            gdf = gdf.set_crs("EPSG:4326", allow_override=True)
            loads_df = pyogrio.read_dataframe(self.path, layer=_LOADS)
            loads = [
                LoadRecord(
                    load_id=int(r.load_id),
                    loaded_at=datetime.fromisoformat(str(r.loaded_at)),
                    loaded_by=str(r.loaded_by),
                    source_name=str(r.source_name),
                    source_sha256=str(r.source_sha256),
                    accepted=int(r.accepted),
                    rejected=int(r.rejected),
                )
                for r in loads_df.itertuples(index=False)
            ]
            loads.sort(key=lambda rec: rec.load_id, reverse=True)
            gdf.sindex  # build the STRtree once per version  # noqa: B018
            self._cache = _Version.of(stamp, gdf, loads)
            log.debug("read %d enterprises from %s", len(gdf), self.path)
            return self._cache

    def data_version_nowait(self) -> tuple[object, ...] | None:
        """The data version from the version read last, when the file's stamp still matches
        it (one ``stat``, no lock, no read); None when the file must be read first."""
        if self._pin is not None:
            return version_of_loads(self._pin.loads)
        cache = self._cache
        stamp = self._stamp()
        if cache is None or stamp is None or cache.stamp != stamp:
            return None
        return version_of_loads(cache.loads)

    def _state(self) -> tuple[gpd.GeoDataFrame, list[LoadRecord]]:
        v = self._version()
        return v.gdf, v.loads

    def warm(self) -> None:
        """Read the current list, build its STRtree and the count codes now."""
        v = self._version()
        for col in ("district_code", "industry", "verdict"):
            if col in v.gdf.columns:
                v.factorized(col)
        v.position(0)  # the fid index
        for col in _columns(None):  # the JSON-ready columns of the items routes
            v.json_column(col)
        log.info("warmed %d enterprises from %s", len(v.gdf), self.path)

    def query(self, q: FeatureQuery) -> QueryResult:
        """Features matching ``q``, ordered by fid."""
        gdf, _ = self._state()
        return query_frame(gdf, q)

    def get(self, fid: int) -> gpd.GeoDataFrame:
        """The feature with that fid (empty frame if none), through the fid index."""
        v = self._version()
        pos = v.position(fid)
        return v.gdf.iloc[[pos] if pos >= 0 else []]

    def geojson_feature(self, fid: int, columns: Sequence[str] | None = None,
                        ) -> dict[str, object] | None:
        """The feature with that fid as GeoJSON, from the version's column arrays."""
        v = self._version()
        pos = v.position(fid)
        if pos < 0:
            return None
        return v.features(np.array([pos]), _columns(columns))[0]

    async def geojson_feature_async(self, fid: int, columns: Sequence[str] | None = None,
                                    *, cancel: CancelHook | None = None,
                                    ) -> dict[str, object] | None:
        """:meth:`geojson_feature` on the event loop (the lean item path,
        :mod:`api.itemfast`): only from the version already in memory with its fid index
        and JSON columns built (one ``stat``, no lock, no read); ``cancel`` is unused.

        Raises
        ------
        LookupError
            When the file changed since it was read, or the version is not warmed yet (the
            route then reads it in its thread).
        """
        v = self._cache
        if (self._pin is not None or v is None or v.by_fid is None
                or v.stamp != self._stamp()):
            raise LookupError("the version in memory is not the current one")
        names = _columns(columns)
        if any(c not in v.json_cols for c in names):
            raise LookupError("JSON columns not built yet")
        pos = v.position(fid)
        if pos < 0:
            return None
        return v.features(np.array([pos]), names)[0]

    def geojson_page(self, q: FeatureQuery, columns: Sequence[str] | None = None,
                     ) -> FeaturePage:
        """The page of ``q`` as GeoJSON: positions selected (property-only queries through
        the column codes), then only the page's rows converted."""
        v = self._version()
        start = max(q.offset, 0)
        stop = None if q.limit is None else start + q.limit
        if _unfiltered(q):
            n = len(v.fid)
            pos = np.arange(min(start, n), n if stop is None else min(stop, n))
        else:
            selected = (self._property_positions(v, q) if _properties_only(q)
                        else select_positions(v.gdf, q))
            n = len(selected)
            pos = selected[start:stop]
        return FeaturePage(v.features(pos, _columns(columns)), len(pos), n)

    @staticmethod
    def _property_positions(v: _Version, q: FeatureQuery) -> np.ndarray:
        """Sorted positions matching a query of text/bool properties only (codes, no strings
        compared per row)."""
        mask = np.ones(len(v.fid), dtype=bool)
        for col, accepted in q.properties.items():
            codes, labels = v.factorized(col)
            if col in BOOL_COLUMNS:
                want = {str(parse_bool(a, col)) for a in accepted}
            else:
                want = {str(a) for a in accepted}
            ok = np.array([lab in want for lab in labels] + [False], dtype=bool)
            mask &= ok[codes]
        return np.flatnonzero(mask)

    def counts(self, q: FeatureQuery, column: str) -> dict[str, int]:
        """Matching features per value of ``column``."""
        return self.counts_many(q, [column])[column]

    def counts_many(self, q: FeatureQuery, columns: Sequence[str]) -> dict[str, dict[str, int]]:
        """Matching features per value of each column, in one selection.

        Queries by properties only (a district, a basin) are answered from per-column codes
        and remembered for the version; spatial ones select through the STRtree.
        """
        v = self._version()
        gdf = v.gdf
        for column in columns:
            if column not in gdf.columns:
                raise InvalidQueryError(f"{column}: unknown property.")
        q = q.unpaged()
        fast = (q.bbox is None and q.within is None and q.near is None and q.cql is None
                and all(c in TEXT_COLUMNS or c in BOOL_COLUMNS
                        for c in [*q.properties, *columns]))
        key = None
        if fast:
            key = tuple(sorted((c, tuple(str(a) for a in acc))
                               for c, acc in q.properties.items()))
            hits = {c: v.memo.get((key, c)) for c in columns}
            if all(h is not None for h in hits.values()):
                return {c: dict(h) for c, h in hits.items() if h is not None}
            pos = self._property_positions(v, q)
        else:
            pos = select_positions(gdf, q)
        out: dict[str, dict[str, int]] = {}
        for column in columns:
            if fast:
                codes, labels = v.factorized(column)
                n = np.bincount(codes[pos], minlength=len(labels))
                order = np.argsort(-n, kind="stable")
                out[column] = {str(labels[i]): int(n[i]) for i in order if n[i] > 0}
                if len(v.memo) < _COUNTS_MEMO:
                    with v.lock:
                        v.memo[(key, column)] = dict(out[column])
            else:
                vc = gdf[column].iloc[pos].value_counts()
                out[column] = {str(k): int(val) for k, val in vc.items()}
        return out

    def points(self, q: FeatureQuery) -> pd.DataFrame:
        """``fid``, ``lon``, ``lat`` and ``verdict`` of the matching features (categorical
        verdict), ordered by fid: no GeoDataFrame is built."""
        v = self._version()
        pos = select_positions(v.gdf, q.unpaged())
        codes, labels = v.factorized("verdict")
        verdict = pd.Categorical.from_codes(codes[pos], categories=pd.Index(labels, dtype=object))
        return pd.DataFrame({FID: v.fid[pos], "lon": v.x[pos], "lat": v.y[pos],
                             "verdict": verdict}, columns=list(POINT_COLUMNS))

    def loads(self) -> list[LoadRecord]:
        """Load history, newest first."""
        return list(self._state()[1])

    def extent(self) -> tuple[float, float, float, float] | None:
        """Bounding box of the current list."""
        gdf, _ = self._state()
        if len(gdf) == 0:
            return None
        b = gdf.total_bounds
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))

    # -- writing ---------------------------------------------------------------------------
    def load_enterprises(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        loaded_by: str,
        source_name: str,
        source_sha256: str,
        rejected: int = 0,
    ) -> LoadRecord:
        """Write a new file with the list and the extended history, then swap it in."""
        if self._origin is not None:  # a view: write, then read what was written
            rec = self._origin.load_enterprises(
                gdf, loaded_by=loaded_by, source_name=source_name,
                source_sha256=source_sha256, rejected=rejected)
            self._pin = self._origin._version()
            return rec
        frame = prepare_enterprises(gdf)
        self.init()
        with self._write_lock():
            return self._write(frame, loaded_by=loaded_by, source_name=source_name,
                               source_sha256=source_sha256, rejected=rejected)

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released by the kernel if this process dies
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write(self, frame: gpd.GeoDataFrame, *, loaded_by: str, source_name: str,
               source_sha256: str, rejected: int) -> LoadRecord:
        previous = self.loads()
        record = LoadRecord(
            load_id=(previous[0].load_id + 1) if previous else 1,
            loaded_at=datetime.now(UTC),
            loaded_by=loaded_by,
            source_name=source_name,
            source_sha256=source_sha256,
            accepted=len(frame),
            rejected=int(rejected),
        )
        history = pd.DataFrame(
            [r.to_dict() for r in [record, *previous]], columns=list(_LOAD_COLUMNS)
        )
        fd, tmp = tempfile.mkstemp(prefix=f".load-{os.getpid()}-", suffix=".gpkg",
                                   dir=self.path.parent)
        os.close(fd)
        os.unlink(tmp)  # GDAL wants to create the file itself
        try:
            pyogrio.write_dataframe(
                frame, tmp, layer=_ENTERPRISES, driver="GPKG", spatial_index=True
            )
            pyogrio.write_dataframe(history, tmp, layer=_LOADS, driver="GPKG")
            _fsync(Path(tmp))
            os.replace(tmp, self.path)
            _fsync(self.path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("load %d: %d enterprises into %s", record.load_id, len(frame), self.path)
        return record

    # -- audit log -------------------------------------------------------------------------
    def _audit_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".audit.sqlite")

    @contextlib.contextmanager
    def _audit_db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._audit_path(), timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    def record_audit(self, entry: AuditEntry) -> None:
        """Append an entry to the SQLite audit log beside the store."""
        with self._audit_db() as db:
            db.execute(_AUDIT_DDL)
            db.execute(
                "INSERT INTO audit_log (at, actor, role, action, target, outcome, client, "
                "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((entry.at or datetime.now(UTC)).isoformat(), entry.actor, entry.role,
                 entry.action, entry.target, entry.outcome, entry.client,
                 json.dumps(dict(entry.detail), ensure_ascii=False, default=str)),
            )

    def audit_entries(self, *, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """Audit log, newest first."""
        with self._audit_db() as db:
            db.execute(_AUDIT_DDL)
            rows = db.execute(
                "SELECT id, at, actor, role, action, target, outcome, client, detail "
                "FROM audit_log ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [AuditEntry(actor=r[2], role=r[3], action=r[4], target=r[5], outcome=r[6],
                           client=r[7], detail=json.loads(r[8] or "{}"),
                           at=datetime.fromisoformat(r[1]), entry_id=int(r[0]))
                for r in rows]


_AUDIT_DDL = (
    "CREATE TABLE IF NOT EXISTS audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "at TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, "
    "target TEXT NOT NULL, outcome TEXT NOT NULL, client TEXT NOT NULL, detail TEXT)"
)


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk (the swap survives a crash of the machine)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
