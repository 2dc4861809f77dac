"""Partitioned classification on Dask (dask-geopandas) for registries beyond one machine.

The registry is spatially partitioned (Hilbert curve distance of each point, so every
partition covers a compact area and touches few reference polygons), and each partition
goes through the same engine as a single process: :func:`geo.classify.classify` followed
by :func:`geo.rules.apply_rules`. Both are row-wise (a row's answer depends on that row and
the reference layers only), so the result equals the single-process one row for row; the
original row order is restored at the end.

On a cluster of several machines the client should not hold the registry: write it once as a
partitioned GeoParquet dataset (:func:`write_partitions`, spatially ordered) and run
:func:`classify_parquet`, where every worker reads its own partitions and writes its own
results; the client only holds the task graph.

Workers need the project installed (``layers/data`` ships with it) or ``layers`` passed
explicitly; the reference indexes are built once per worker process and cached.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np

from geo.classify import classify
from geo.rules import apply_rules

__all__ = ["classify_partitioned", "classify_partition", "write_partitions", "classify_parquet"]

logger = logging.getLogger(__name__)

#: Column carrying the input row position through the shuffle.
_POS = "_bw_pos"


def _curve_key(frame: gpd.GeoDataFrame, by: str) -> np.ndarray:
    """Space-filling-curve key of every point (missing points sort last)."""
    geoms = frame.geometry
    ok = ~(geoms.isna() | geoms.is_empty).to_numpy()
    key = np.full(len(frame), np.iinfo(np.int64).max, dtype=np.int64)
    if ok.any():
        sub = geoms[ok]
        if by == "hilbert":
            key[ok] = sub.hilbert_distance().to_numpy()
        elif by == "morton":
            import dask_geopandas.morton_distance as morton

            key[ok] = morton._morton_distance(sub, sub.total_bounds, 16).to_numpy()
        else:
            raise ValueError(f"spatial must be 'hilbert', 'morton' or None, got {by!r}")
    return key


def _tag_positions(
    part: gpd.GeoDataFrame, partition_info: dict[str, Any] | None = None
) -> gpd.GeoDataFrame:
    """Add the row position key: partition number * 2**32 + position in the partition."""
    number = partition_info["number"] if partition_info else 0
    out = part.copy()
    out[_POS] = np.arange(len(part), dtype=np.int64) + (np.int64(number) << np.int64(32))
    return out


def classify_partition(
    part: gpd.GeoDataFrame,
    *,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    as_of: date | None = None,
    town_radius_m: float | None = None,
) -> gpd.GeoDataFrame:
    """Classify one partition and apply the rules (the single-process engine).

    Parameters
    ----------
    part
        EPSG:4326 point GeoDataFrame (one Dask partition).
    layers, town_radius_m
        As in :func:`geo.classify.classify`.
    as_of
        As in :func:`geo.rules.apply_rules`.
    """
    return apply_rules(classify(part, layers=layers, town_radius_m=town_radius_m), as_of=as_of)


def classify_partitioned(
    data: Any,
    *,
    npartitions: int | None = None,
    client: Any = None,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    as_of: date | None = None,
    town_radius_m: float | None = None,
    spatial: str | None = "hilbert",
    compute: bool = True,
) -> Any:
    """Classify a registry partition by partition on Dask; same answers as one process.

    Parameters
    ----------
    data
        A ``geopandas.GeoDataFrame`` or a ``dask_geopandas.GeoDataFrame`` of EPSG:4326
        points (geocode output).
    npartitions
        Number of partitions (default: the input's, or 4 per worker thread of ``client``,
        or 8 without one).
    client
        A ``distributed.Client``; default the current/default Dask scheduler.
    layers, town_radius_m
        As in :func:`geo.classify.classify` (reference frames are shipped in the graph).
    as_of
        Rule evaluation date, as in :func:`geo.rules.apply_rules` (default today, fixed at
        call time so every partition uses the same day).
    spatial
        Spatial partitioning: ``"hilbert"`` or ``"morton"`` (an in-memory frame is sorted
        along the curve locally and cut into contiguous partitions; a Dask frame goes
        through ``dask_geopandas`` ``spatial_shuffle``), or None to keep the partitions.
    compute
        True: return a ``GeoDataFrame`` in the input's row order (input index kept).
        False: return the lazy ``dask_geopandas.GeoDataFrame`` (spatially ordered) to write
        with ``to_parquet`` when the result does not fit in memory.

    Returns
    -------
    GeoDataFrame (or lazy Dask GeoDataFrame) with the classify and rules columns, equal to
    ``apply_rules(classify(data))``.
    """
    import dask
    import dask_geopandas

    with dask.config.set({"dataframe.convert-string": False}):  # keep the input dtypes
        return _run(data, npartitions=npartitions, client=client, spatial=spatial,
                    compute=compute, kwargs={"layers": layers, "as_of": as_of or date.today(),
                                             "town_radius_m": town_radius_m},
                    from_geopandas=dask_geopandas.from_geopandas)


def _run(
    data: Any, *, npartitions: int | None, client: Any, spatial: str | None, compute: bool,
    kwargs: dict[str, Any], from_geopandas: Any,
) -> Any:
    if isinstance(data, gpd.GeoDataFrame):
        if npartitions is None:
            threads = sum(client.nthreads().values()) if client is not None else 2
            npartitions = max(1, min(len(data) // 10_000 + 1, 4 * threads))
        frame = data.copy()
        frame[_POS] = np.arange(len(frame), dtype=np.int64)
        if spatial is not None and len(frame):
            # in memory already: order along the curve here, cut into contiguous chunks
            # (spatial partitions without a distributed shuffle)
            key = _curve_key(frame, spatial)
            frame = frame.iloc[np.argsort(key, kind="stable")]
            spatial = None
        ddf = from_geopandas(frame, npartitions=npartitions, sort=False)
    else:
        ddf = data.map_partitions(_tag_positions, meta=_tag_positions(data._meta))
        if npartitions is not None and npartitions != ddf.npartitions and spatial is None:
            ddf = ddf.repartition(npartitions=npartitions)
    if spatial is not None:
        ddf = ddf.spatial_shuffle(by=spatial, npartitions=npartitions or ddf.npartitions)

    meta = classify_partition(ddf._meta, **kwargs)
    out = ddf.map_partitions(classify_partition, meta=meta, **kwargs)
    if not compute:
        return out
    result = client.compute(out).result() if client is not None else out.compute()
    result = result.sort_values(_POS, kind="stable").drop(columns=_POS)
    result = result.drop(columns=[c for c in result.columns if c == "hilbert_distance"])
    if isinstance(data, gpd.GeoDataFrame):
        result.index = data.index
    else:
        result = result.reset_index(drop=True)
    logger.debug("classified %d rows in %d partitions", len(result), out.npartitions)
    return gpd.GeoDataFrame(result, geometry=result.geometry.name, crs=result.crs)



def write_partitions(
    data: gpd.GeoDataFrame, path: Any, *, npartitions: int, spatial: str | None = "hilbert"
) -> int:
    """Write ``data`` as a GeoParquet dataset of ``npartitions`` files for the workers.

    Rows are ordered along the space-filling curve (``spatial``) and cut into contiguous
    partitions, so each file covers a compact area; a column ``_bw_row`` keeps each row's
    input position. Returns the number of files written.
    """
    from pathlib import Path

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    frame = data.reset_index(drop=True)
    frame["_bw_row"] = np.arange(len(frame), dtype=np.int64)
    if spatial is not None and len(frame):
        frame = frame.iloc[np.argsort(_curve_key(frame, spatial), kind="stable")]
    bounds = np.linspace(0, len(frame), max(1, npartitions) + 1).astype(int)
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        frame.iloc[lo:hi].to_parquet(out / f"part.{k:05d}.parquet", index=False)
    return len(bounds) - 1


def classify_parquet(
    source: Any,
    target: Any,
    *,
    client: Any = None,
    layers: Mapping[str, gpd.GeoDataFrame] | None = None,
    as_of: date | None = None,
    town_radius_m: float | None = None,
) -> int:
    """Classify a partitioned GeoParquet dataset on the workers, partition by partition.

    Each worker reads its partitions from ``source`` (e.g. written by
    :func:`write_partitions`; a path every worker can read) and writes the classified
    partitions to ``target`` (GeoParquet, one file per partition, input order): the data
    never passes through the client. Returns the number of partitions.
    """
    import dask
    import dask_geopandas

    day = as_of or date.today()
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dask_geopandas.read_parquet(source)
        out = _run(ddf, npartitions=None, client=client, spatial=None, compute=False,
                   kwargs={"layers": layers, "as_of": day, "town_radius_m": town_radius_m},
                   from_geopandas=dask_geopandas.from_geopandas)
        out = out.drop(columns=[_POS])
        job = out.to_parquet(target, write_index=False, compute=False)
        if client is not None:
            client.compute(job).result()
        else:
            job.compute()
    logger.debug("classified %d partitions of %s into %s", out.npartitions, source, target)
    return int(out.npartitions)
