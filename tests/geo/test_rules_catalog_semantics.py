"""Predicate semantics of the rule catalog, value by value (geo.rules._test_value & co.).

Each case is the catalog's documented meaning written out by hand (rule_catalog docs and
the _test_value docstring): ``le``/``ge`` hold at the boundary and ``lt``/``gt`` do not;
booleans are never numbers; text is compared stripped; ``contains`` folds width, case,
spaces and middle dots; a date bound compares dates, ISO text included; missing or
unparseable values satisfy no order test. The expectations are not produced by the code.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from geo.rules import _as_date, _as_number, _equal, _is_missing, _norm_word, _test_value

D = date(2019, 7, 15)


@pytest.mark.parametrize(
    ("value", "want"),
    [("12.5", 12.5), (" 7 ", 7.0), (3, 3.0), (np.float32(2.5), 2.5), ("abc", None),
     (None, None), (float("nan"), None), ("nan", None), (True, None), (np.False_, None),
     ([1], None)],
)
def test_as_number(value: object, want: float | None) -> None:
    assert _as_number(value) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [(pd.Timestamp("2019-07-15 13:00"), D), (D, D), ("2019-07-15", D),
     (" 2019-07-15T08:00:00 ", D), ("2019-07-15 extra", D), ("15/07/2019", None),
     (20190715, None), (1.0, None), (True, None), (np.int64(5), None), (None, None)],
)
def test_as_date(value: object, want: date | None) -> None:
    assert _as_date(value) == want


def test_is_missing() -> None:
    assert all(_is_missing(v) for v in (None, float("nan"), pd.NA, pd.NaT))
    assert not any(_is_missing(v) for v in ("", 0, 0.0, False, "nan"))


@pytest.mark.parametrize(
    ("u", "v", "want"),
    [(True, True, True), (np.True_, True, True), (False, True, False), (1, True, False),
     ("True", True, False), (False, False, True), (np.False_, False, True),
     # a flag is never a number, either way round (as for the order ops)
     (True, 1, False), (False, 0, False), (np.True_, 1, False), (True, 1.0, False),
     ("400", 400, True), (" 400.0 ", 400, True), (400.5, 400, False), ("x", 400, False),
     ("2019-07-15", D, True), (pd.Timestamp("2019-07-15"), D, True), ("2019-07-16", D, False),
     (" 印染 ", "印染", True), ("印染厂", "印染", False), (5, "5", False)],
)
def test_equal(u: object, v: object, want: bool) -> None:
    assert _equal(u, v) is want


@pytest.mark.parametrize(
    ("u", "op", "value", "want"),
    [
        # order ops on numbers, at and either side of the bound
        (399.999, "lt", 400, True), (400, "lt", 400, False), ("400", "le", 400, True),
        (400.001, "le", 400, False), (400, "gt", 400, False), ("400.001", "gt", 400, True),
        (400, "ge", 400, True), (399.999, "ge", 400, False),
        # booleans, missing and unparseable values satisfy no order test
        (True, "ge", 0, False), (np.True_, "le", 400, False), ("n/a", "lt", 400, False),
        (None, "lt", 400, False),
        # dates: date and ISO text on the same footing; numbers are not dates
        (date(2019, 7, 14), "lt", D, True), ("2019-07-15", "lt", D, False),
        ("2019-07-15", "le", D, True), (pd.Timestamp("2019-07-16"), "gt", D, True),
        (D, "ge", D, True), (20190716, "gt", D, False), ("someday", "ge", D, False),
        # equality families
        (" 印染 ", "eq", "印染", True), ("印染", "ne", "印染", False), ("造纸", "ne", "印染", True),
        ("造纸", "in", ["印染", "造纸"], True), ("制革", "in", ["印染", "造纸"], False),
        ("制革", "not_in", ["印染", "造纸"], True), ("造纸", "not_in", ["印染", "造纸"], False),
        ("400", "in", [300, 400], True), (True, "in", [False], False),
        # emptiness: only blank text is empty (missing values are handled before this test)
        ("  ", "is_empty", None, True), ("x", "is_empty", None, False),
        (0, "is_empty", None, False), ("  ", "not_empty", None, False),
        ("x", "not_empty", None, True), (0, "not_empty", None, True),
        # contains: NFKC width folding, case, whitespace and middle dots
        ("ＰＯ ４２．５ 水泥", "contains", ["po42.5"], True),
        ("P·O 42.5", "contains", ["po42.5"], False), ("P·C 32.5", "contains", ["p.c32.5"], True),
        ("燃煤锅炉", "contains", ["燃气", "燃煤"], True),
        ("燃气锅炉", "contains", ["燃煤"], False), (42.5, "contains", ["42.5"], False),
    ],
)
def test_test_value(u: object, op: str, value: object, want: bool) -> None:
    assert _test_value(u, op, value) is want


def test_norm_word() -> None:
    assert _norm_word("Ｐ・Ｏ 42.5\t级") == "p.o42.5级"
    assert _norm_word("a • b · c") == "a.b.c"


def test_unknown_op_error_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'lte'.*\['ge', 'gt', 'le', 'lt'\]"):
        _test_value(1.0, "lte", 2)
