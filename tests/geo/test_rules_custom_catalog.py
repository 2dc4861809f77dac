"""One-rule catalogs on the array paths the bundled catalog never takes (issue 16: the
"tests to add" of docs/testing.md) and on the uncached ``rules_for_point`` path.

Each expectation is written by hand from the predicate semantics in the geo.rules module
docstring (a missing value or an absent field never matches; ``is_empty`` is a known empty
string; booleans are never numbers), not from the code's output.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo.rules import apply_rules, rules_for_point
from layers.catalog import industries, parse_rule_catalog, rule_catalog_document

AS_OF = date(2019, 6, 30)


def _catalog(*when: dict[str, Any], effective: date = date(2019, 1, 1)) -> Any:
    raw = copy.deepcopy(rule_catalog_document())
    raw["rule"] = [{
        "id": "probe", "verdict": "rectify", "industries": ["paper"], "when": list(when),
        "standards": ["GB 4915-2013"], "effective": effective, "text_zh": "探针规则",
        "citation": "表0 第0项", "citation_text": "测试",
    }]
    return parse_rule_catalog(raw)


def _hits(frame: pd.DataFrame, *when: dict[str, Any]) -> list[bool]:
    out = apply_rules(frame.assign(industry_id="paper"), catalog=_catalog(*when), as_of=AS_OF)
    return out["rule_ids"].eq("probe").tolist()


NUM = pd.DataFrame({"annual_output_t": [400.0, 0.0, np.nan, 1.0]})   # a float column (NaN = missing)


@pytest.mark.parametrize(("op", "value", "want"), [
    ("is_empty", None, [False, False, False, False]),   # a number is never blank text
    ("not_empty", None, [True, True, False, True]),
    ("eq", 400, [True, False, False, False]),
    ("ne", 400, [False, True, False, True]),            # missing is not "not 400"
    ("in", [0, 1], [False, True, False, True]),
    ("not_in", [0, 1], [True, False, False, False]),
    ("eq", True, [False, False, False, False]),     # a flag value is no number: 1.0 ≠ true
    ("in", ["400"], [False, False, False, False]),      # text is no number on a float column
    ("le", 400, [True, True, False, True]),
    ("lt", 1, [False, True, False, False]),
])
def test_numeric_column_ops(op: str, value: Any, want: list[bool]) -> None:
    pred = {"field": "annual_output_t", "op": op} | ({} if value is None else {"value": value})
    assert _hits(NUM, pred) == want


DAYS = pd.DataFrame({"quality_deadline": pd.to_datetime(["2019-07-15", None, "2019-07-16"])})


@pytest.mark.parametrize(("op", "value", "want"), [
    ("not_empty", None, [True, False, True]),
    ("is_empty", None, [False, False, False]),
    ("eq", date(2019, 7, 15), [True, False, False]),
    ("ne", date(2019, 7, 15), [False, False, True]),
    ("in", [date(2019, 7, 16), date(2020, 1, 1)], [False, False, True]),
    ("not_in", [date(2019, 7, 16)], [True, False, False]),
    ("lt", date(2019, 7, 16), [True, False, False]),
    ("ge", date(2019, 7, 16), [False, False, True]),
])
def test_date_column_ops(op: str, value: Any, want: list[bool]) -> None:
    pred = {"field": "quality_deadline", "op": op} | ({} if value is None else {"value": value})
    assert _hits(DAYS, pred) == want


def test_boolean_flag_is_not_eq_one() -> None:
    """A yes/no column (nullable boolean) matches ``eq true``, never ``eq 1`` or ``eq 0``."""
    flags = pd.DataFrame({"discharge_permit": pd.array([True, False, None], dtype="boolean")})
    assert _hits(flags, {"field": "discharge_permit", "op": "eq", "value": True}) == [True, False, False]
    assert _hits(flags, {"field": "discharge_permit", "op": "eq", "value": 1}) == [False, False, False]
    assert _hits(flags, {"field": "discharge_permit", "op": "eq", "value": 0}) == [False, False, False]
    # (an object column mixing True and 1 is not tested: pandas' factorize hashes them as one
    # value, so whichever comes first decides both; docs/testing.md notes it)
    objs = pd.DataFrame({"discharge_permit": np.array([True, False, None], dtype=object)})
    assert _hits(objs, {"field": "discharge_permit", "op": "eq", "value": 1}) == [False] * 3
    assert _hits(objs, {"field": "discharge_permit", "op": "eq", "value": 0}) == [False] * 3
    nums = pd.DataFrame({"discharge_permit": np.array([1, "1", 2], dtype=object)})
    assert _hits(nums, {"field": "discharge_permit", "op": "eq", "value": 1}) == [True, True, False]


def test_absent_field_never_matches_not_even_ne() -> None:
    frame = pd.DataFrame({"other": [1.0, 2.0]})  # no annual_output_t column
    for op, value in (("ne", 5), ("not_in", [5]), ("not_empty", None), ("is_empty", None)):
        pred = {"field": "annual_output_t", "op": op} | ({} if value is None else {"value": value})
        assert _hits(frame, pred) == [False, False]


def test_rules_for_point_with_a_catalog() -> None:
    """The uncached look-up path (a catalog given): one entry per industry in the plan's
    order; the probe rule only for paper, and only once it is in force."""
    cat = _catalog({"field": "city", "op": "eq", "value": "广州市"}, effective=date(2019, 7, 1))
    attrs = {"city": "广州市", "industry_id": "dyeing", "not_a_rule_field": 1}
    before = rules_for_point(attrs, catalog=cat, as_of=date(2019, 6, 30))
    after = rules_for_point(attrs, catalog=cat, as_of=date(2019, 7, 1))
    assert [a["industry_id"] for a in after] == [i.id for i in industries()]
    assert [a["industry"] for a in after] == [i.name_zh for i in industries()]
    paper = next(a for a in after if a["industry_id"] == "paper")
    assert paper == {"industry_id": "paper", "industry": "造纸", "verdict": "rectify",
                     "verdict_label": "限期整改", "standards": ["GB 4915-2013"],
                     "rule_ids": ["probe"], "reasons": ["探针规则〔表0 第0项〕"]}
    others = [a for a in after if a["industry_id"] != "paper"]
    assert all(a["verdict"] == "no_action" and a["rule_ids"] == [] and a["reasons"] == []
               and a["standards"] == [] and a["verdict_label"] == "无需处置" for a in others)
    assert all(a["verdict"] == "no_action" for a in before)
    elsewhere = rules_for_point({"city": "深圳市"}, catalog=cat, as_of=date(2019, 7, 1))
    assert all(a["verdict"] == "no_action" for a in elsewhere)
