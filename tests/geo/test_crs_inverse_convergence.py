"""geo.crs inverses: documented convergence speed, and errors that name the bad CRS.

The GCJ-02 and BD-09 inverses iterate the public forward formula. Their docstrings promise
"three or four iterations reach the tolerance" (the offset field's gradient is ~1e-5, so
each step gains about five digits from a start within ~1e-3 degrees). A start further away
or a stop test that never fires still converges, only up to MAX_ITER times slower on every
row of a registry: these tests hold the iteration count to the promise.
"""

from __future__ import annotations

import numpy as np
import pytest

import geo.crs as crs
from geo.errors import UnknownCRSError

# 0.05-degree grid over the Guangdong bounding box (lon 109.6-117.4, lat 20.1-25.6)
LON, LAT = np.meshgrid(np.arange(109.6, 117.41, 0.05), np.arange(20.1, 25.61, 0.05))


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Replace forward function ``name`` in geo.crs by a wrapper counting its calls."""
    forward = getattr(crs, name)
    calls = [0]

    def wrapped(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls[0] += 1
        return forward(x, y)

    monkeypatch.setattr(crs, name, wrapped)
    return calls


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [("wgs84_to_gcj02", "gcj02_to_wgs84"), ("gcj02_to_bd09", "bd09_to_gcj02")],
)
def test_inverse_needs_at_most_four_forward_evaluations(
    monkeypatch: pytest.MonkeyPatch, forward: str, inverse: str
) -> None:
    shifted = getattr(crs, forward)(LON, LAT)
    calls = _counting(monkeypatch, forward)
    lon, lat = getattr(crs, inverse)(*shifted)
    # three or four iterations (docstring); each iteration evaluates the forward formula once
    assert calls[0] <= 4
    # and the answer is the grid we started from, to the stated tolerance (~0.1 mm)
    assert np.abs(lon - LON).max() < 1e-8 and np.abs(lat - LAT).max() < 1e-8


def test_inverse_stops_once_within_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    # a point already at its fixed point: one evaluation shows the error is ~0, then stop
    calls = _counting(monkeypatch, "gcj02_to_bd09")
    x, y = np.array([113.3]), np.array([23.1])
    target = crs.gcj02_to_bd09(x, y)
    calls[0] = 0
    start = (x.copy(), y.copy())
    out = crs._invert(crs.gcj02_to_bd09, target[0], target[1], start)
    assert calls[0] == 1
    np.testing.assert_array_equal(out[0], x)
    np.testing.assert_array_equal(out[1], y)


def test_from_wgs84_error_names_the_crs() -> None:
    with pytest.raises(UnknownCRSError, match="UTM50"):
        crs.from_wgs84([113.0], [23.0], "UTM50")


@pytest.mark.parametrize("name", ["WGS84", "GCJ02", "BD09"])
def test_whole_degree_integer_input_is_converted_as_floats(name: str) -> None:
    # numeric Excel columns can hold whole degrees as integers; the answer must not be
    # truncated to an integer array (oracle: the same call on float input)
    ints = (np.array([113, 114]), np.array([23, 22]))
    floats = (ints[0].astype(float), ints[1].astype(float))
    for got, want in ((crs.to_wgs84(*ints, name), crs.to_wgs84(*floats, name)),
                      (crs.from_wgs84(*ints, name), crs.from_wgs84(*floats, name))):
        assert got[0].dtype == np.float64 and got[1].dtype == np.float64
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    if name != "WGS84":  # and a shifted datum really moves the point off the whole degree
        assert not np.array_equal(crs.to_wgs84(*ints, name)[0], floats[0])
