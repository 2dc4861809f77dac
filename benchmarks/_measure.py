"""One benchmark measurement, run in its own process so peak memory is per measurement.

Usage (called by ``benchmarks/run.py``)::

    python benchmarks/_measure.py '{"method": "cellindex", "layer": "districts", "size": 1000000,
                                    "repeat": 5, "seed": 2019, "postgis": null}'

Prints one JSON object: ``{"phases": {name: [seconds, ...]}, "peak_mb": float,
"matched": int, "note": str}``. ``peak_mb`` is the growth of the process's peak RSS
(``ru_maxrss``) over the measurement, after the layer and the coordinate arrays exist.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.catalog import DATA_DIR

_ROOT = DATA_DIR.parents[1]

__all__ = ["GUANGDONG_BBOX", "PRD_CITIES", "load_layer", "points", "enterprises", "measure"]

#: Guangdong's bounding box (lon/lat), taken from the districts layer's bounds.
GUANGDONG_BBOX = (109.65, 20.21, 117.32, 25.52)


def load_layer(layer: str) -> gpd.GeoDataFrame:
    """Read ``layers/data/<layer>.geojson`` (EPSG:4326)."""
    return gpd.read_file(DATA_DIR / f"{layer}.geojson")


def points(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded uniform points over Guangdong's bbox."""
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = GUANGDONG_BBOX
    return rng.uniform(xmin, xmax, size), rng.uniform(ymin, ymax, size)


#: Pearl River Delta cities (codes in ``cities.geojson``): where half the enterprises are.
PRD_CITIES = ("440100", "440300", "440400", "440600", "440700", "441200", "441300", "441900",
              "442000")


def enterprises(size: int, seed: int) -> gpd.GeoDataFrame:
    """Seeded synthetic enterprises concentrated like the bundled sample.

    Half the points fall uniformly in the nine Pearl River Delta cities, the other half
    uniformly over the whole province (land only); industries are assigned at random from
    ``layers/data/industries.toml``. Columns: ``lon``, ``lat``, ``industry_id``, geometry.
    """
    from geo.synthetic import sample_points
    from layers.catalog import industries

    rng = np.random.default_rng(seed)
    cities = load_layer("cities")
    prd = shapely.union_all(cities.loc[cities["code"].isin(PRD_CITIES), "geometry"].values)
    province = shapely.union_all(cities.geometry.values)
    half = size // 2
    x1, y1 = sample_points(prd, half, rng)
    x2, y2 = sample_points(province, size - half, rng)
    x, y = np.concatenate([x1, x2]), np.concatenate([y1, y2])
    perm = rng.permutation(size)
    x, y = x[perm], y[perm]
    ids = [i.id for i in industries()]
    return gpd.GeoDataFrame(
        {"lon": x, "lat": y, "industry_id": rng.choice(ids, size)},
        geometry=gpd.points_from_xy(x, y),
        crs=4326,
    )


def units(frame: gpd.GeoDataFrame, per_enterprise: float, seed: int,
          legacy_share: float = 1.0) -> pd.DataFrame:
    """Seeded equipment units for :func:`enterprises` (canonical columns, no file parsing).

    ``per_enterprise`` units on average (Poisson), typed and measured as the synthetic
    profile's ``[[units.<industry>]]`` entries (``layers/data/synthetic_profile.toml``:
    ranges that straddle the plan's thresholds) plus coal boilers for 10 %; units join on
    the frame's ``row`` (1..n). ``legacy_share`` < 1 keeps that share of units on the
    profile's ranges and gives the rest modern measures (3x the size, gas-fired boilers), for
    a mix where few units are obsolete.
    """
    from geo.equipment import _header_lookup, _norm_header, _type_lookup, _key
    from layers.catalog import read_data_toml

    rng = np.random.default_rng(seed + 7)
    profile = read_data_toml("synthetic_profile.toml")["units"]
    lookup = _header_lookup()
    ind = frame["industry_id"].to_numpy()
    n = len(frame)
    counts = rng.poisson(per_enterprise, n)
    owner = np.repeat(np.arange(n), counts)
    kind = rng.random(len(owner))
    parts: dict[str, Any] = {"enterprise_row": owner + 1, "source": "equipment",
                             "source_row": np.arange(len(owner)) + 2, "uscc": "", "name": "",
                             "unit_type": np.full(len(owner), "other", dtype=object),
                             "unit_type_raw": "", "data_issues": ""}
    for industry, entries in profile.items():
        mine = ind[owner] == industry
        for k, entry in enumerate(entries):
            sel = mine & (kind >= k / len(entries)) & (kind < (k + 1) / len(entries))
            parts["unit_type"][sel] = _type_lookup()[_key(entry["type"])]
            for head, (a, b) in entry.get("measures", {}).items():
                base, unit = _norm_header(head)
                col = lookup[base]
                if col == "capacity":
                    col = {"万吨/年": "capacity_t_per_year", "万标张/年": "capacity_hides_per_year",
                           "万平方米/年": "capacity_m2_per_year"}[unit]
                    vals = rng.uniform(a, b, int(sel.sum())) * 10_000
                else:
                    vals = rng.uniform(a, b, int(sel.sum()))
                parts.setdefault(col, np.full(len(owner), np.nan))[sel] = np.round(vals, 2)
    boiler = rng.random(len(owner)) < 0.1
    parts["unit_type"][boiler] = "coal_boiler"
    parts["boiler_tph"] = np.where(boiler, np.round(rng.uniform(2, 120, len(owner)), 1), np.nan)
    parts["fuel"] = np.where(boiler, "coal", "").astype(object)
    if legacy_share < 1:
        modern = rng.random(len(owner)) >= legacy_share
        for col, vals in parts.items():
            if col in ("volume_m3", "tonnage_t", "diameter_m", "current_ka", "width_m",
                       "speed_m_per_min", "power_mw") or col.startswith("capacity_"):
                vals[modern] = vals[modern] * 3
            elif col == "cadmium_pct":
                vals[modern] = vals[modern] * 0.3
        parts["fuel"][modern & boiler] = "natural_gas"
    out = pd.DataFrame(parts)
    out["unit_id"] = np.char.add("U", np.arange(len(out)).astype(str)).astype(object)
    from geo.equipment import ENUM_COLUMNS

    for c in ("uscc", "name", "unit_type_raw", "data_issues", "unit_id"):
        out[c] = out[c].astype(object)  # as geo.equipment produces them
    for c in ENUM_COLUMNS:
        if c in out:
            out[c] = out[c].astype(object).astype("category")
    return out


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------- methods
def _sjoin(gdf: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, repeat: int) -> dict[str, Any]:
    layer = gdf[["geometry"]]
    ph: dict[str, list[float]] = {"points": [], "query": []}
    matched = 0
    for _ in range(repeat):
        t, pts = _timed(lambda: gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326))
        ph["points"].append(t)
        t, res = _timed(lambda p=pts: gpd.sjoin(p, layer, predicate="within"))
        ph["query"].append(t)
        matched = len(res)
        del pts, res
    return {"phases": ph, "matched": matched}


def floor_pass(polys: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The floor: per polygon, bbox prefilter (x binary search + y test) then contains_xy."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    out = np.full(len(x), -1, dtype=np.intp)
    for i, (bx0, by0, bx1, by1) in enumerate(shapely.bounds(polys).tolist()):
        lo, hi = np.searchsorted(xs, bx0, "left"), np.searchsorted(xs, bx1, "right")
        cand = lo + np.flatnonzero((ys[lo:hi] >= by0) & (ys[lo:hi] <= by1))
        hit = cand[shapely.contains_xy(polys[i], xs[cand], ys[cand])]
        out[order[hit]] = i
    return out


def _floor(gdf: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, repeat: int) -> dict[str, Any]:
    polys = gdf.geometry.values.copy()
    shapely.prepare(polys)
    ph: dict[str, list[float]] = {"query": []}
    res = None
    for _ in range(repeat):
        t, res = _timed(lambda: floor_pass(polys, x, y))
        ph["query"].append(t)
    return {"phases": ph, "matched": int((res >= 0).sum())}


def _cellindex(gdf: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, repeat: int) -> dict[str, Any]:
    from geo.cellindex import CellIndex

    ph: dict[str, list[float]] = {"build": [], "query": []}
    idx = None
    for _ in range(min(repeat, 3)):
        t, idx = _timed(lambda: CellIndex.build(gdf))
        ph["build"].append(t)
    assert idx is not None
    idx.lookup(x[:1000], y[:1000])  # warm
    res = None
    for _ in range(repeat):
        t, res = _timed(lambda: idx.lookup(x, y))
        ph["query"].append(t)
    note = (
        f"{idx.nx}x{idx.ny} cells of {idx.cell_deg:.4f}°, {idx.nbytes / 1e6:.1f} MB, "
        f"{100 * idx.boundary_share:.1f}% boundary cells"
    )
    return {"phases": ph, "matched": int((res >= 0).sum()), "note": note}


def _lookup_one(gdf: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, repeat: int) -> dict[str, Any]:
    from geo.cellindex import CellIndex

    idx = CellIndex.build(gdf)
    xs, ys = x.tolist(), y.tolist()
    f = idx.lookup_one
    per_call: list[float] = []
    batch: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        t0 = time.perf_counter()
        for a, b in zip(xs, ys, strict=True):
            f(a, b)
        batch.append((time.perf_counter() - t0) / len(xs))
    for a, b in zip(xs, ys, strict=True):
        t0 = clock()
        f(a, b)
        per_call.append(clock() - t0)
    arr = np.asarray(per_call) / 1e9
    return {
        "phases": {"mean_per_call": batch},
        "matched": int(sum(f(a, b) >= 0 for a, b in zip(xs, ys, strict=True))),
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
    }


def _engine_units(size: int, seed: int, repeat: int, per_enterprise: float,
                  legacy_share: float = 1.0) -> dict[str, Any]:
    """classify + evaluate_rules with ``per_enterprise`` equipment units per enterprise."""
    from geo.classify import LAYER_KINDS, classify
    from geo.rules import evaluate_rules
    from layers import registry

    frame = enterprises(size, seed)
    frame["row"] = np.arange(1, size + 1)
    inventory = units(frame, per_enterprise, seed, legacy_share)
    for kind in LAYER_KINDS:
        registry.load_group(kind)
    ph: dict[str, list[float]] = {"cold": [], "classify": [], "rules": [], "query": [],
                                  "cpu": []}
    t0, _ = _timed(lambda: classify(frame))
    ph["cold"].append(t0)
    out = None
    for _ in range(repeat):
        c0 = time.process_time()  # CPU time: less sensitive than wall time to a busy machine
        t1, cl = _timed(lambda: classify(frame))
        t2, out = _timed(lambda: evaluate_rules(cl, inventory))
        ph["cpu"].append(time.process_time() - c0)
        ph["classify"].append(t1)
        ph["rules"].append(t2)
        ph["query"].append(t1 + t2)
    assert out is not None
    ent, unit = out.enterprises, out.units
    return {
        "phases": ph,
        "units": len(inventory),
        "matched": int((ent["district"] != "").sum()),
        "verdicts": {str(k): int(v) for k, v in ent["verdict"].value_counts().items()},
        "unit_verdicts": {str(k): int(v) for k, v in unit["verdict"].value_counts().items()},
        "obsolete_share": float((unit["verdict"].astype(str) != "no_action").mean()),
    }


def _engine(size: int, seed: int, repeat: int) -> dict[str, Any]:
    """classify + apply_rules on :func:`enterprises` (no file I/O).

    ``cold`` is the first classify call of the process after the reference files are read
    (so no file I/O): it builds and caches the layer indexes (and imports rasterio);
    ``classify``/``rules``/``query`` are the following (warm) calls. ``profile``
    is the per-function breakdown of one warm run (cProfile, top functions by own time).
    """
    import cProfile
    import pstats

    from geo.classify import LAYER_KINDS, classify
    from geo.rules import apply_rules
    from layers import registry

    frame = enterprises(size, seed)
    for kind in LAYER_KINDS:  # file I/O excluded: read (and cache) the reference layers
        registry.load_group(kind)
    ph: dict[str, list[float]] = {"cold": [], "classify": [], "rules": [], "query": [],
                                  "cpu": []}
    t0, _ = _timed(lambda: classify(frame))
    ph["cold"].append(t0)
    out = None
    for _ in range(repeat):
        c0 = time.process_time()  # CPU time: less sensitive than wall time to a busy machine
        t1, cl = _timed(lambda: classify(frame))
        t2, out = _timed(lambda: apply_rules(cl))
        ph["cpu"].append(time.process_time() - c0)
        ph["classify"].append(t1)
        ph["rules"].append(t2)
        ph["query"].append(t1 + t2)
    assert out is not None
    prof = cProfile.Profile()
    prof.enable()
    apply_rules(classify(frame))
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    def where(fn: str, line: int, name: str) -> str:
        short = fn.split("site-packages/")[-1].replace(str(_ROOT) + "/", "")
        return f"{short}:{line}({name})"

    rows = sorted(
        ((tt, where(*key)) for key, (_, _, tt, _, _) in stats.items()), reverse=True
    )
    total = sum(tt for tt, _ in rows)
    return {
        "phases": ph,
        "matched": int((out["district"] != "").sum()),
        "verdicts": {str(k): int(v) for k, v in out["verdict"].value_counts().items()},
        "profile": [[where, tt] for tt, where in rows[:8]],
        "profile_total": total,
    }


def _postgis(
    gdf: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, repeat: int, url: str, layer: str
) -> dict[str, Any]:
    import psycopg

    ph: dict[str, list[float]] = {"load": [], "query": []}
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        t0 = time.perf_counter()
        cur.execute("DROP TABLE IF EXISTS bench_pts_raw, bench_pts, bench_layer")
        cur.execute("CREATE UNLOGGED TABLE bench_pts_raw (id int, x float8, y float8)")
        buf = io.StringIO()
        np.savetxt(buf, np.column_stack([np.arange(len(x)), x, y]), fmt=["%d", "%.9f", "%.9f"],
                   delimiter="\t")
        with cur.copy("COPY bench_pts_raw (id, x, y) FROM STDIN") as cp:
            cp.write(buf.getvalue())
        cur.execute(
            "CREATE TABLE bench_pts AS SELECT id, ST_SetSRID(ST_MakePoint(x, y), 4326) AS geom "
            "FROM bench_pts_raw"
        )
        cur.execute("CREATE INDEX ON bench_pts USING gist (geom)")
        cur.execute("CREATE TABLE bench_layer (idx int, geom geometry(Geometry, 4326))")
        ewkb = shapely.to_wkb(
            shapely.set_srid(gdf.geometry.values, 4326), hex=True, include_srid=True
        )
        with cur.copy("COPY bench_layer (idx, geom) FROM STDIN") as cp:
            for i, h in enumerate(ewkb.tolist()):
                cp.write_row((i, h))
        cur.execute("CREATE INDEX ON bench_layer USING gist (geom)")
        cur.execute("ANALYZE bench_pts; ANALYZE bench_layer")
        ph["load"].append(time.perf_counter() - t0)
        q = ("SELECT count(*) FROM bench_pts p JOIN bench_layer l "
             "ON ST_Intersects(l.geom, p.geom)")
        matched = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            cur.execute(q)
            matched = int(cur.fetchone()[0])
            ph["query"].append(time.perf_counter() - t0)
        cur.execute("DROP TABLE IF EXISTS bench_pts_raw, bench_pts, bench_layer")
    return {"phases": ph, "matched": matched, "note": "client process; server memory not counted"}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement described by ``spec`` and return its result dict."""
    method, repeat = spec["method"], int(spec["repeat"])
    if method == "engine":  # its own points; the reference layers come from the registry
        rss0 = _maxrss_mb()
        res = _engine(int(spec["size"]), int(spec.get("seed", 2019)), repeat)
        res["peak_mb"] = max(_maxrss_mb() - rss0, 0.0)
        return res
    if method == "engine_units":
        rss0 = _maxrss_mb()
        res = _engine_units(int(spec["size"]), int(spec.get("seed", 2019)), repeat,
                            float(spec.get("per_enterprise", 3.0)),
                            float(spec.get("legacy_share", 1.0)))
        res["peak_mb"] = max(_maxrss_mb() - rss0, 0.0)
        return res
    gdf = load_layer(spec["layer"])
    x, y = points(int(spec["size"]), int(spec.get("seed", 2019)))
    rss0 = _maxrss_mb()
    if method == "sjoin":
        res = _sjoin(gdf, x, y, repeat)
    elif method == "floor":
        res = _floor(gdf, x, y, repeat)
    elif method == "cellindex":
        res = _cellindex(gdf, x, y, repeat)
    elif method == "lookup_one":
        res = _lookup_one(gdf, x, y, repeat)
    elif method == "postgis":
        res = _postgis(gdf, x, y, repeat, spec["postgis"], spec["layer"])
    else:
        raise SystemExit(f"unknown method {method!r}")
    res["peak_mb"] = max(_maxrss_mb() - rss0, 0.0)
    return res


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
