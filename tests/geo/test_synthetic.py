"""The synthetic registry generator and the shipped sample it produced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from geo.pipeline import SAMPLE_EQUIPMENT, SAMPLE_REGISTRY
from geo.schema import LIST_SEP
from geo.synthetic import (
    BAD_UNIT_KINDS,
    SYNTHETIC_NOTE,
    sample_points,
    synthetic_dataset,
    synthetic_registry,
    write_dataset,
)
from geo.uscc import validate_uscc
from layers.catalog import rules


def test_shipped_sample_is_reproducible(tmp_path: Path) -> None:
    shipped = pd.read_csv(SAMPLE_REGISTRY, dtype=str, keep_default_na=False)
    n = len(shipped)
    reg, equ = write_dataset(synthetic_dataset(n, seed=2019), tmp_path / "registry_x.csv")
    assert reg.read_bytes() == SAMPLE_REGISTRY.read_bytes()
    assert equ is not None and equ.name == "equipment_x.csv"
    assert equ.read_bytes() == SAMPLE_EQUIPMENT.read_bytes()


def test_sample_exercises_every_rule(sample_result) -> None:
    fired = {i for s in sample_result.enterprises["rule_ids"] for i in s.split(LIST_SEP) if i}
    assert {r.id for r in rules().rules} <= fired
    units = sample_result.units
    assert len(units) > 2 * len(sample_result.enterprises)  # several lines per enterprise
    assert units["verdict"].ne("no_action").mean() > 0.05
    # the deliberately bad equipment rows are reported, with the sheet they come from
    rej = sample_result.rejected
    bad = rej[rej["source"] == "equipment"]
    assert set(bad["reason"]) == set(BAD_UNIT_KINDS)
    eq_rows = len(pd.read_csv(SAMPLE_EQUIPMENT, dtype=str))
    assert len(units[units["source"] == "equipment"]) + len(bad) == eq_rows


def test_registry_is_realistic() -> None:
    reg = synthetic_registry(1500, seed=5)
    good = reg[reg["_bad_kind"] == ""]
    assert (validate_uscc(good["统一社会信用代码"]) == "").all()
    assert set(reg["坐标系"]) >= {"WGS84", "GCJ02", "BD09", "CGCS2000", ""}
    address_only = reg["经度"].isna()
    assert 0.05 < address_only.mean() < 0.2
    assert reg.loc[address_only, "地址"].str.startswith("广东省").mean() > 0.9
    assert (reg["数据说明"] == SYNTHETIC_NOTE).all()
    assert set(reg["_bad_kind"]) - {""}  # some deliberately bad rows


def test_sample_points_fall_inside_polygon() -> None:
    poly = shapely.Polygon([(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)])  # an L shape
    x, y = sample_points(poly, 5000, np.random.default_rng(0))
    assert len(x) == 5000
    assert shapely.contains_xy(poly, x, y).all()
    # uniform: the two arms have equal area, so hold about equal shares
    assert abs((x > 1).mean() - (y > 1).mean()) < 0.05


@pytest.mark.parametrize("n", [1, 2, 5, 10, 13])
def test_tiny_samples_are_mostly_good_rows(n: int) -> None:
    reg = synthetic_registry(n, seed=3)
    assert len(reg) == n
    assert (reg["_bad_kind"] == "").sum() >= n - n // 2


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_bad_sizes_are_user_errors(n: object) -> None:
    from geo.errors import GeoError

    with pytest.raises(GeoError, match="n: expected a whole number"):
        synthetic_registry(n)  # type: ignore[arg-type]
