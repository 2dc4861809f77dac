"""Embedded store: one GeoPackage file written and read through pyogrio (GDAL).

Layers in the file: ``enterprises`` (points, GeoPackage FID = ``fid``, R-tree index) and
``loads`` (attribute table, the version history). A load writes a complete new file next to
the old one and swaps it in with :func:`os.replace`, so readers see either the old or the
new version and a failed load leaves the old file untouched. The current list is cached in
memory keyed by the file's (inode, mtime, size) and queried with vectorised frame queries.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from api.store.base import (
    FID,
    INTEGER_COLUMNS,
    FeatureQuery,
    LoadRecord,
    QueryResult,
    Store,
    prepare_enterprises,
)
from api.store.frame import mask_frame, query_frame
from geo.errors import InvalidQueryError
from geo.schema import ENFORCEMENT_COLUMNS

__all__ = ["GeoPackageStore"]

log = logging.getLogger(__name__)

_ENTERPRISES = "enterprises"
_LOADS = "loads"
_LOAD_COLUMNS = (
    "load_id", "loaded_at", "loaded_by", "source_name", "source_sha256", "accepted", "rejected",
)


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
        self._cache: tuple[tuple[int, int, int], gpd.GeoDataFrame, list[LoadRecord]] | None = None

    def init(self) -> None:
        """Create the data directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # -- reading ---------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _state(self) -> tuple[gpd.GeoDataFrame, list[LoadRecord]]:
        stamp = self._stamp()
        if stamp is None:
            return _empty(), []
        with self._lock:
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1], self._cache[2]
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
            self._cache = (stamp, gdf, loads)
            log.debug("read %d enterprises from %s", len(gdf), self.path)
            return gdf, loads

    def query(self, q: FeatureQuery) -> QueryResult:
        """Features matching ``q``, ordered by fid."""
        gdf, _ = self._state()
        return query_frame(gdf, q)

    def get(self, fid: int) -> gpd.GeoDataFrame:
        """The feature with that fid (empty frame if none)."""
        gdf, _ = self._state()
        return gdf.loc[gdf[FID] == fid]

    def counts(self, q: FeatureQuery, column: str) -> dict[str, int]:
        """Matching features per value of ``column``."""
        gdf, _ = self._state()
        if column not in gdf.columns:
            raise InvalidQueryError(f"{column}: unknown property.")
        vc = gdf.loc[mask_frame(gdf, q.unpaged()), column].value_counts()
        return {str(k): int(v) for k, v in vc.items()}

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
        frame = prepare_enterprises(gdf)
        self.init()
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
        fd, tmp = tempfile.mkstemp(prefix=".load-", suffix=".gpkg", dir=self.path.parent)
        os.close(fd)
        os.unlink(tmp)  # GDAL wants to create the file itself
        try:
            pyogrio.write_dataframe(
                frame, tmp, layer=_ENTERPRISES, driver="GPKG", spatial_index=True
            )
            pyogrio.write_dataframe(history, tmp, layer=_LOADS, driver="GPKG")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("load %d: %d enterprises into %s", record.load_id, len(frame), self.path)
        return record
