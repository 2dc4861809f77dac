"""map_bench: the per-view "where the time goes" breakdown of the last tile drawn."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

map_bench = pytest.importorskip("map_bench")


def _tile(fetch: float, sent: float, first: float, last: float, got: float, dec: float,
          drawn: float) -> dict[str, float]:
    return {"fetch": fetch, "start": fetch, "sent": sent, "first": first, "last": last,
            "bytes": got, "decoded": dec, "drawn": drawn, "server": 0.3}


def test_critical_path_splits_the_last_tile_drawn_into_its_steps() -> None:
    view = {"drawn": 130.0, "decode": 4.0, "draw": 6.0, "trace": [
        _tile(1, 2, 20, 21, 22, 30, 31),       # early tile: ignored
        _tile(3, 40, 90, 95, 100, 120, 125),   # the last drawn: waited for a connection
        {**_tile(5, 6, 7, 8, 9, 10, 11), "sent": None},  # incomplete entry: ignored
    ]}
    path = map_bench.critical_path(view)
    assert path is not None
    steps = [path[name] for name, _a, _b in map_bench._STEPS]
    assert steps == [3, 37, 50, 5, 5, 20, 5]
    assert sum(steps) == 125  # the steps add up to the tile's drawn time
    assert path["after (Leaflet load)"] == 5
    assert path["main-thread decode + draw, all tiles"] == 10


def test_views_without_a_trace_have_no_breakdown_row() -> None:
    assert map_bench.critical_path({"drawn": 40.0, "decode": 0, "draw": 0, "trace": []}) is None
    rows = map_bench.breakdown({"pan": [{"drawn": 40.0, "decode": 0, "draw": 0}]})
    assert len(rows) == 2  # header and rule only
