"""geo.rules helpers, one at a time, against expectations written by hand (issue 16: the
mutation score of geo/rules.py).

Every expected value below is worked out from the documented semantics (module docstring of
geo.rules, the docstrings of the helpers) on inputs small enough to check on paper: row
numbers, bit patterns, ISO dates, joined texts. None is read back from the code under test.
The module's caches (``_needles``, ``_industry_predicate``, ``_default_rules_for_key``) are
cleared before every test so a mutated body is always executed (mutmut forks its runs from a
warm process).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

import geo.rules as R
from layers.catalog import AllOf, AnyOf, Predicate, parse_rule_catalog, rule_catalog_document

AS_OF = date(2019, 6, 30)
NONE = np.iinfo(np.int64).max


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    R._needles.cache_clear()
    R._industry_predicate.cache_clear()
    R._default_rules_for_key.cache_clear()


def _p(field: str, op: str, value: Any = None) -> Predicate:
    return Predicate(field=field, op=op, value=value)


def _rule(rid: str, verdict: str, **kw: Any) -> dict[str, Any]:
    base = {"id": rid, "verdict": verdict, "industries": ["steel"], "when": [],
            "standards": [], "effective": date(2019, 1, 1), "text_zh": f"规则{rid}",
            "citation": f"表{rid}", "citation_text": "测试"}
    return base | kw


def _catalog(*rules: dict[str, Any]) -> Any:
    raw = copy.deepcopy(rule_catalog_document())
    raw["rule"] = list(rules)
    return parse_rule_catalog(raw)


# --------------------------------------------------------------------------- small helpers


def test_days_of_counts_from_the_epoch() -> None:
    assert R._days_of(date(1970, 1, 1)) == 0
    assert R._days_of(date(1970, 1, 2)) == 1
    assert R._days_of(date(1969, 12, 31)) == -1
    assert R._days_of(date(2019, 6, 30)) == 18077  # 49 years incl. 12 leap days + 180


def test_factorize_each_dtype() -> None:
    cat = pd.Series(pd.Categorical(["b", None, "a", "b"], categories=["a", "b"]))
    codes, uniq = R._factorize(cat)
    assert codes.tolist() == [1, -1, 0, 1] and codes.dtype.kind == "i"   # signed: -1 = missing
    assert uniq.tolist() == ["a", "b"] and uniq.dtype == object
    flags = pd.Series(pd.array([True, None, False, True], dtype="boolean"))
    codes, uniq = R._factorize(flags)
    assert codes.tolist() == [1, -1, 0, 1] and codes.dtype.kind == "i"   # signed: -1 = missing
    assert uniq.tolist() == [False, True] and uniq.dtype == object
    codes, uniq = R._factorize(pd.Series(["x", None, "y", "x"], dtype=object))
    assert codes.tolist() == [0, -1, 1, 0] and uniq.tolist() == ["x", "y"]
    assert uniq.dtype == object


def test_categorical_takes_texts_per_code() -> None:
    c = R._categorical(np.array([2, 0, 1, 2]), ["a", "b", "a"])
    assert list(c) == ["a", "a", "b", "a"]
    assert sorted(c.categories) == ["a", "b"]  # repeats are one category
    empty = R._categorical(np.array([0, 0]), [])
    assert list(empty) == ["", ""]


def test_categorical_on_some_rows_fills_the_others() -> None:
    c = R._categorical(np.array([1, 0]), ["x", "y"], at=np.array([1, 3]), n=5, fill=0)
    assert list(c) == ["x", "y", "x", "x", "x"]
    assert list(c.categories) == ["x", "y"]  # the texts' order, whichever rows hold them
    every = R._categorical(np.array([1, 0]), ["x", "y"], at=np.array([0, 1]), n=2, fill=9)
    assert list(every) == ["y", "x"]         # every row given: the fill is not read


@pytest.mark.parametrize(("full", "at"), [
    ([0, 5, 0, 5, 3], [1, 3, 4]),            # the fill first at row 0
    ([5, 0, 0, 3], [0, 3]),                  # one value before the fill's first row
    ([5, 0, 0, 3], [0, 1, 3]),               # the fill also among the given rows, later
    ([0, 7, 0], [0, 1]),                     # the fill given at row 0 (seen first)
    ([2, 3, 0, 0], [0, 1, 2]),               # the fill given before the first other row
    ([4, 4], [0, 1]),                        # every row given: no fill code
    ([1, 0, 2, 0, 3, 4], [0, 2, 3, 4, 5]),   # the fill given later, values after it shift
    ([0, 0], []),                            # no row given
])
def test_factorize_fill_equals_pandas_on_the_whole_array(full: list[int], at: list[int]) -> None:
    values = np.asarray(full, dtype=np.int64)
    rows = np.asarray(at, dtype=np.int64)
    sub, fill_code, uniq = R._factorize_fill(values[rows], rows, len(full), 0)
    codes = np.full(len(full), fill_code, dtype=np.int64)
    codes[rows] = sub
    want_codes, want_uniq = pd.factorize(values)
    assert codes.tolist() == want_codes.tolist() and uniq.tolist() == want_uniq.tolist()
    assert (fill_code == -1) == (len(at) == len(full))


def test_non_blank() -> None:
    s = pd.Series(["a", "", None, "b", np.nan, " "], dtype=object)
    assert R._non_blank(s).tolist() == [True, False, False, True, False, True]


def test_row_positions_consecutive_and_not() -> None:
    rows = pd.Series([2, 3, 4, 5])
    assert R._row_positions(rows, pd.Series([5, 2, 9, 1, 4])).tolist() == [3, 0, -1, -1, 2]
    assert R._row_positions(rows, pd.Series([6])).tolist() == [-1]   # one past the end
    gaps = pd.Series([7, 2, 5])
    assert R._row_positions(gaps, pd.Series([5, 7, 3])).tolist() == [2, 0, -1]
    offset = pd.Series([10, 11, 12])
    assert R._row_positions(offset, pd.Series([12, 10, 13, 9])).tolist() == [2, 0, -1, -1]
    assert R._row_positions(pd.Series([], dtype=np.int64), pd.Series([1])).tolist() == [-1]
    step2 = pd.Series([2, 4, 6])                              # not consecutive: no offset
    assert R._row_positions(step2, pd.Series([4, 6, 3])).tolist() == [1, 2, -1]
    assert R._row_positions(rows, pd.Series(["3"])).tolist() == [-1]      # text is no row
    assert R._row_positions(pd.Series(["a", "b"]), pd.Series([0, 1])).tolist() == [-1, -1]
    assert R._row_positions(rows, pd.Series([5, 2])).dtype.kind == "i"
    # 32-bit rows wanted (a narrow enterprise_row column): the same positions, as int64
    got = R._row_positions(offset, pd.Series([12, 9, 13, 10, 11], dtype=np.int32))
    assert got.tolist() == [2, -1, -1, 0, 1] and got.dtype == np.int64


def test_group_join() -> None:
    def join(groups: list[int], texts: list[str], sep: str = "、") -> tuple[list, list]:
        tails = np.array(["", "!"], dtype=object)  # texts ending in "!" take the second tail
        heads = np.array([t.rstrip("!") for t in texts], dtype=object)
        codes = np.array([int(t.endswith("!")) for t in texts], dtype=np.int64)
        keys, joined = R._group_join(np.array(groups, dtype=np.int64), heads, tails, codes, sep)
        assert joined.dtype == object
        return keys.tolist(), joined.tolist()

    assert join([1, 1, 2, 5, 5, 5], ["a", "b!", "c", "d", "e", "f"]) == \
        ([1, 2, 5], ["a、b!", "c", "d、e、f"])
    assert join([3, 4], ["x!", "y"]) == ([3, 4], ["x!", "y"])
    assert join([7, 7], ["a!", "b!"], "; ") == ([7], ["a!; b!"])   # separator after the tail
    assert join([], []) == ([], [])
    keys, joined = R._group_join(np.array([7, 7]), np.array(["a", "b"]), np.array(["x"]),
                                 np.array([0, 0]), "、")   # <U1 texts
    assert joined.tolist() == ["ax、bx"]                    # not cut to the texts' width


def test_text_column() -> None:
    col = R._text(np.array(["b", "a", "b", ""], dtype=object))
    assert list(col) == ["b", "a", "b", ""] and col.dtype == R._STR
    empty = R._text(np.array([], dtype=object))
    assert len(empty) == 0 and empty.dtype == R._STR


def test_built_str_and_units_column() -> None:
    built = R._built_str(np.array(["y", "", "x"], dtype=object))
    assert list(built) == ["y", "", "x"] and built.dtype == R._STR
    col = R._units_column(np.array([1, 3]), np.array(["u1", "u3"], dtype=object), 5)
    assert list(col) == ["", "u1", "", "u3", ""] and col.dtype == R._STR


def test_name_units_appends_only_to_touched_rows() -> None:
    out = R._name_units(["甲", ""], np.array([0, 1, 0, 1]),
                        np.array(["A号", "B号"], dtype=object), np.array([2, 3]))
    assert list(out) == ["甲", "", "甲；涉及设备：A号", "涉及设备：B号"]
    out = R._name_units([], np.array([0, 0]), np.array(["C"], dtype=object), np.array([1]))
    assert list(out) == ["", "涉及设备：C"]


def test_review_text_merges_bits_in_code_order() -> None:
    codes = R.REVIEW_CODES  # bit i = REVIEW_CODES[i]
    need, text = R._review_text(None, np.array([0, 1, 0b101, 1 << 5]), 4)
    assert need.tolist() == [False, True, True, True]
    assert text.tolist() == ["", codes[0], f"{codes[0]};{codes[2]}", codes[5]]
    existing = pd.Series([f"near_park_boundary;{codes[1]}", None, "", "multiple_parks"])
    need, text = R._review_text(existing, np.array([0b10, 0b1000, 0, 0]), 4)
    assert text.tolist() == [f"near_park_boundary;{codes[1]}", codes[3], "",
                             "multiple_parks"]
    assert need.tolist() == [True, True, False, True]


def test_combo_rules_reads_bits_across_words() -> None:
    words = np.zeros((2, 3), dtype=np.uint64)
    words[0, 0] = 0b101
    words[1, 1] = 1                    # rule 64
    words[0, 2] = np.uint64(1) << np.uint64(63)
    words[1, 2] = 0b10                 # rule 65
    assert R._combo_rules(words, 66) == [[0, 2], [64], [63, 65]]
    assert R._combo_rules(words, 2) == [[0], [], []]   # only the first n_rules


def test_matches_words_pack_64_rules_per_word() -> None:
    rows = [np.array([], dtype=np.int64)] * 66
    rows = [np.array([0]), np.array([0, 2]), *rows[2:64], np.array([1]), np.array([2])]
    words = R._Matches(rules=[None] * 66, rows=rows, n=3).words()  # type: ignore[list-item]
    assert words.shape == (2, 3) and words.dtype == np.uint64
    assert words[0].tolist() == [0b11, 0, 0b10]
    assert words[1].tolist() == [0, 1, 0b10]
    one = R._Matches(rules=[None], rows=[np.array([1])], n=2).words()  # type: ignore[list-item]
    assert one.shape == (1, 2) and one[0].tolist() == [0, 1]
    none = R._Matches(rules=[], rows=[], n=2).words()
    assert none.shape == (1, 2) and none[0].tolist() == [0, 0]


@pytest.mark.parametrize(("row", "codes", "uniq"), [
    ([0, 5, 0, 5, 3], [0, 1, 0, 1, 2], [0, 5, 3]),      # few rows hit: sparse path
    ([5, 0, 0, 0, 3], [0, 1, 1, 1, 2], [5, 0, 3]),      # first row hit, then a gap
    ([5, 3, 0, 0, 0], [0, 1, 2, 2, 2], [5, 3, 0]),      # hits before the first gap
    ([5, 5, 3, 0], [0, 0, 1, 2], [5, 3, 0]),            # most rows hit: all hashed
    ([0, 0, 0], [0, 0, 0], [0]),                        # nothing hit
    ([0, 0, 7], [0, 0, 1], [0, 7]),
])
def test_factorize_words_first_appearance(row: list[int], codes: list[int],
                                          uniq: list[int]) -> None:
    words = np.asarray([row], dtype=np.uint64)
    got_codes, got_uniq = R._factorize_words(words)
    assert got_codes.tolist() == codes
    assert got_uniq.shape == (1, len(uniq)) and got_uniq[0].tolist() == uniq


def test_factorize_words_two_words_and_empty() -> None:
    words = np.asarray([[1, 1, 0, 1, 0, 0], [0, 2, 0, 0, 2, 0]], dtype=np.uint64)
    codes, uniq = R._factorize_words(words)
    assert codes.tolist() == [0, 1, 2, 0, 3, 2]
    assert uniq.T.tolist() == [[1, 0], [1, 2], [0, 0], [0, 2]]
    codes, uniq = R._factorize_words(np.zeros((1, 0), dtype=np.uint64))
    assert codes.tolist() == [] and uniq.shape == (1, 0)


def test_factorize_rows_combines_words() -> None:
    words = np.asarray([[1, 1, 2, 1], [0, 3, 0, 0]], dtype=np.uint64)
    codes, uniq = R._factorize_rows(words)
    assert codes.tolist() == [0, 1, 2, 0] and codes.dtype == np.int64
    assert uniq.T.tolist() == [[1, 0], [1, 3], [2, 0]]
    # 3 values in the first word, 2 in the second: (0, 1) and (2, 0) are distinct combinations
    words = np.asarray([[1, 2, 3, 1], [5, 6, 5, 6]], dtype=np.uint64)
    codes, uniq = R._factorize_rows(words)
    assert codes.tolist() == [0, 1, 2, 3]
    codes, uniq = R._factorize_rows(np.zeros((1, 0), dtype=np.uint64))
    assert codes.tolist() == [] and uniq.shape == (1, 0)


@pytest.mark.parametrize("size", [10_000, 10])
def test_factorize_small_hashed_and_by_table(size: int) -> None:
    """Codes in order of first appearance and the first row of each code, for a key space
    too large for the table (10,000 > 4 * 6 + 4096: hashed) and a small one (by table);
    worked out by hand: keys 9, 3, 9, 7, 3, 8 -> codes 0, 1, 0, 2, 1, 3; first rows 0, 1, 3, 5."""
    keys = np.array([9, 3, 9, 7, 3, 8], dtype=np.int64) + (size - 10)
    codes, first = R._factorize_small(keys, size)
    assert codes.tolist() == [0, 1, 0, 2, 1, 3] and codes.dtype == np.int64
    assert first.tolist() == [0, 1, 3, 5] and first.dtype == np.int64
    codes, first = R._factorize_small(np.zeros(0, dtype=np.int64), size)
    assert codes.tolist() == [] and first.tolist() == []


def test_factorize_rows_three_words_with_many_values() -> None:
    """Three words with 100 distinct values each (a key space of 100 x 100 x 100 > 4 x 200
    + 4096: the hashed path of ``_factorize_small``): rows i and i + 100 repeat each other,
    so the codes are 0..99 twice and each combination's first row is its code."""
    w = np.arange(200, dtype=np.uint64) % 100
    words = np.stack([w * 3 + 1, w * 5 + 2, w * 7 + 3])
    codes, uniq = R._factorize_rows(words)
    assert codes.tolist() == list(range(100)) * 2
    assert uniq.shape == (3, 100) and (uniq == words[:, :100]).all()


# --------------------------------------------------------------------------- deadlines


def _deadlines(days: list[int], immediate: list[bool], undetermined: list[bool]) -> Any:
    n = len(days)
    d = R._Deadlines.empty(n, 6)
    d.days[:] = days
    d.immediate[:] = immediate
    d.undetermined[:] = undetermined
    return d


def test_deadlines_empty() -> None:
    d = R._Deadlines.empty(3, 4)
    assert d.rank.tolist() == [4, 4, 4] and d.rank.dtype == np.int64
    assert d.immediate.tolist() == [False] * 3 and d.immediate.dtype == bool
    assert d.days.tolist() == [NONE] * 3 and d.days.dtype == np.int64
    assert d.undetermined.tolist() == [False] * 3 and d.undetermined.dtype == bool
    assert d.review.tolist() == [0] * 3 and d.review.dtype == np.int64


def test_deadline_status_on_both_sides_of_as_of() -> None:
    day = R._days_of(AS_OF)
    d = _deadlines([NONE, day - 1, day, day + 1, day + 1, NONE, day - 1],
                   [False, False, False, False, True, False, False],
                   [False, False, False, False, False, True, False])
    deadline, status = d.status(AS_OF)
    assert list(deadline) == ["", "2019-06-29", "2019-06-30", "2019-07-01", "", "",
                              "2019-06-29"]
    assert list(status) == ["", "overdue", "pending", "pending", "immediate",
                            "undetermined", "overdue"]
    dcodes, names, scodes, snames = d.status_codes(AS_OF)
    assert [names[c] for c in dcodes] == list(deadline)
    assert [snames[c] for c in scodes] == list(status)
    assert names[0] == "" and len(names) == 4          # '' and three distinct dates
    assert snames == ["", "undetermined", "pending", "overdue", "immediate"]


def test_deadline_status_without_dates() -> None:
    d = _deadlines([NONE, NONE], [False, True], [True, False])
    deadline, status = d.status(AS_OF)
    assert list(deadline) == ["", ""] and list(status) == ["undetermined", "immediate"]
    dcodes, names, scodes, _ = d.status_codes(AS_OF)
    assert dcodes.tolist() == [0, 0] and names == [""] and scodes.tolist() == [1, 4]


# --------------------------------------------------------------------------- columns


def _units_cols(ent: pd.DataFrame, units: pd.DataFrame, parent_idx: list[int]) -> Any:
    parent = R._Columns(ent)
    return parent, R._Columns(units, parent=parent, parent_idx=np.asarray(parent_idx))


ENT = pd.DataFrame({
    "city": ["广州市", "深圳市", None, "广州市", "佛山市", "广州市", "深圳市", "广州市"],
    "annual_output_t": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    "quality_deadline": pd.to_datetime(["2019-07-01", None, "1970-01-02", None, None, None,
                                        None, None]),
    "discharge_permit": pd.array([True, None, False, None, None, None, None, None],
                                 dtype="boolean"),
    "count": np.arange(8, dtype=np.int64),
})


def test_columns_numeric_days_and_parent_reads() -> None:
    c = R._Columns(ENT)
    assert np.array_equal(c.numeric("annual_output_t"),
                          [1.0, np.nan, 3, 4, 5, 6, 7, 8], equal_nan=True)
    assert c.numeric("count").dtype == np.float64 and c.numeric("count")[7] == 7.0
    assert c.numeric("city") is None and c.numeric("discharge_permit") is None
    nullable = R._Columns(pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}))
    assert np.array_equal(nullable.numeric("n"), [1.0, np.nan], equal_nan=True)   # NA → NaN
    assert c.numeric("absent") is None and c.days("absent") is None
    assert c.days("quality_deadline")[:3].tolist() == [18078, R._NAT, 1]
    assert c.days("quality_deadline").dtype == np.int64     # int64 days (docstring)
    assert c.days("annual_output_t") is None
    units = pd.DataFrame({"unit_type": ["a", "b", "c"]})
    _parent, u = _units_cols(ENT, units, [2, 0, 2])
    assert u.numeric("annual_output_t").tolist() == [3.0, 1.0, 3.0]
    assert u.days("quality_deadline").tolist() == [1, 18078, 1]
    assert u.numeric("city") is None and u.days("city") is None
    assert u.numeric("absent") is None and u.days("absent") is None
    codes, uniq = u.factor("city")
    assert [None if k < 0 else uniq[k] for k in codes] == [None, "广州市", None]
    assert u.has("city") and u.has("unit_type") and u.has("unit_text")
    assert not u.has("absent") and not R._Columns(ENT).has("unit_text")


def test_columns_filled() -> None:
    df = pd.DataFrame({"t": pd.Series(["a", "", None, np.nan, "b"], dtype=object),
                       "na": pd.Series(["a", pd.NA, ""], dtype=object).reindex(range(5)),
                       "n": np.arange(5.0)})
    c = R._Columns(df)
    assert c.filled("t").tolist() == [True, False, False, False, True]
    assert c.filled("na").tolist() == [True, False, False, False, False]
    assert c.filled("n") is None
    assert R._Columns(pd.DataFrame({"s": pd.Series(["a"], dtype="str")})).filled("s") is None
    assert c.filled("t") is c.filled("t")   # cached per field


def test_columns_never_known() -> None:
    df = pd.DataFrame({
        "all_nan": [np.nan, np.nan], "some": [np.nan, 1.0],
        "no_days": pd.to_datetime([None, None]), "a_day": pd.to_datetime([None, "2019-01-01"]),
        "no_flag": pd.array([None, None], dtype="boolean"),
        "a_flag": pd.array([None, True], dtype="boolean"), "text": [None, None],
    })
    c = R._Columns(df)
    assert c.never_known("absent")
    assert c.never_known("all_nan") and not c.never_known("some")
    assert c.never_known("no_days") and not c.never_known("a_day")
    assert c.never_known("no_flag") and not c.never_known("a_flag")
    assert not c.never_known("text")
    assert c.never_known("unit_text")                # an enterprise frame has none
    _p, u = _units_cols(df, pd.DataFrame({"x": [1]}), [1])
    assert not u.never_known("unit_text")            # virtual in a unit frame
    assert not u.never_known("some")                 # parent value at row 1 is known


def test_blank_text_and_never_holds() -> None:
    ent = pd.DataFrame({"industry_id": ["steel"], "n": [np.nan]})
    units = pd.DataFrame({"unit_type_raw": pd.Series(["", None], dtype=object),
                          "process": pd.Series(["", ""], dtype=object),
                          "note": pd.Series(["", "x"], dtype=object)})
    _p, u = _units_cols(ent, units, [0, 0])
    assert u.blank_text("unit_text") and u.blank_text("process")
    assert not u.blank_text("note") and not u.blank_text("absent")
    blank = Predicate(field="unit_text", op="contains", value=["平拉"])
    filled = Predicate(field="note", op="contains", value=["x"])
    # (the catalog refuses empty words; a blank one normalises to "", which every text holds)
    empty_word = Predicate.model_construct(field="unit_text", op="contains", value=[" "])
    is_empty = Predicate(field="process", op="is_empty")
    unknown = Predicate(field="n", op="gt", value=0)
    assert R._never_holds(u, blank) and R._never_holds(u, unknown)
    assert not R._never_holds(u, filled)
    assert not R._never_holds(u, empty_word)    # "" is in every text
    assert not R._never_holds(u, is_empty)      # blank text is what is_empty asks for
    assert R._never_holds(u, AnyOf(any=[blank, unknown]))
    assert not R._never_holds(u, AnyOf(any=[blank, filled]))
    assert R._never_holds(u, AllOf(all=[filled, blank]))
    assert not R._never_holds(u, AllOf(all=[filled, is_empty]))
    with_part = pd.DataFrame({"unit_type_raw": pd.Series(["", "平拉线"], dtype=object)})
    _p, v = _units_cols(ent, with_part, [0, 0])
    assert not v.blank_text("unit_text") and not R._never_holds(v, blank)


def test_columns_never_known_absent_unit_text() -> None:
    c = R._Columns(pd.DataFrame({"x": [1.0]}))
    assert c.never_known("unit_text") is True        # no parts, no parent: never known


def test_columns_codes_at_every_path() -> None:
    big = pd.DataFrame({"city": [f"c{i % 5}" for i in range(40)]})
    units = pd.DataFrame({"process": [f"p{i % 3}" for i in range(40)]})
    parent, u = _units_cols(big, units, list(range(39, -1, -1)))
    idx = np.array([0, 5, 39])
    codes, uniq = u.codes_at("city", idx)             # few rows of an unencoded parent
    assert [uniq[k] for k in codes] == ["c4", "c4", "c0"]
    codes, uniq = u.codes_at("process", idx)          # few rows of an own object column
    assert [uniq[k] for k in codes] == ["p0", "p2", "p0"]
    many = np.arange(30)
    codes, uniq = u.codes_at("city", many)            # most rows: the parent's encoding
    assert [uniq[k] for k in codes] == [f"c{(39 - i) % 5}" for i in range(30)]
    codes, uniq = u.codes_at("process", many)
    assert [uniq[k] for k in codes] == [f"p{i % 3}" for i in range(30)]
    codes, uniq = u.codes_at("process", idx)          # now cached: same answer
    assert [uniq[k] for k in codes] == ["p0", "p2", "p0"]
    codes, uniq = parent.codes_at("city", idx)
    assert [uniq[k] for k in codes] == ["c0", "c0", "c4"]
    objs = pd.DataFrame({"process": pd.Series([f"p{i % 3}" if i % 7 else None
                                               for i in range(40)], dtype=object)})
    _p1, u1 = _units_cols(big, objs, list(range(40)))
    codes, uniq = u1.codes_at("process", np.array([0, 5, 39, 1]))   # object column, few rows
    assert [None if k < 0 else uniq[k] for k in codes] == [None, "p2", "p0", "p1"]
    assert codes.dtype.kind == "i"
    cat = pd.DataFrame({"city": pd.Categorical([f"c{i % 4}" for i in range(40)])})
    _p2, u2 = _units_cols(cat, units, list(range(40)))
    codes, uniq = u2.codes_at("city", idx)
    assert [uniq[k] for k in codes] == ["c0", "c1", "c3"]


def test_columns_codes_at_two_own_text_fields_on_the_same_rows() -> None:
    """Two own text fields encoded on the same few rows (a rule's candidates read for two
    fields): each field answers with its own values, for units (3 rows of 40) and for
    enterprises (3 rows of 400, under 1/64); values by construction."""
    idx = np.array([1, 7, 20])
    def obj(values: list[str]) -> pd.Series:              # plain object text columns
        return pd.Series(values, dtype=object)

    units = pd.DataFrame({"process": obj([f"p{i}" for i in range(40)]),
                          "fuel": obj([f"f{i % 2}" for i in range(40)])})
    _parent, u = _units_cols(pd.DataFrame({"city": ["c"] * 40}), units, list(range(40)))
    ent = R._Columns(pd.DataFrame({"name": obj([f"n{i}" for i in range(400)]),
                                   "city": obj([f"c{i % 3}" for i in range(400)])}))
    for cols, first, second, want in ((u, "process", "fuel", ["f1", "f1", "f0"]),
                                      (ent, "name", "city", ["c1", "c1", "c2"])):
        codes, uniq = cols.codes_at(first, idx)
        assert [uniq[k] for k in codes] == [f"{first[0]}{i}" for i in (1, 7, 20)]
        codes, uniq = cols.codes_at(second, idx)
        assert [uniq[k] for k in codes] == want, second
        codes, uniq = cols.codes_at(first, idx)                  # and back
        assert [uniq[k] for k in codes] == [f"{first[0]}{i}" for i in (1, 7, 20)]


def test_columns_missing() -> None:
    df = pd.DataFrame({"t": ["x", "", "  ", None], "n": [1.0, np.nan, 0.0, np.nan],
                       "d": pd.to_datetime(["2019-01-01", None, None, "2019-01-02"])})
    c = R._Columns(df)
    idx = np.array([3, 0, 1, 2])
    assert c.missing("t", idx).tolist() == [True, False, True, True]
    assert c.missing("n", idx).tolist() == [True, False, True, False]
    assert c.missing("d", idx).tolist() == [False, False, True, True]
    assert c.missing("absent", idx).tolist() == [True] * 4
    assert all(c.missing(f, idx).dtype == bool for f in ("t", "n", "d"))
    assert c.missing("absent", idx).dtype == bool


def test_columns_rows_where() -> None:
    vals = ["a", "b", None, "a", "c", "b", "a", "d"] * 3
    c = R._Columns(pd.DataFrame({"f": vals}))
    want = lambda keep: [i for i, v in enumerate(vals) if v in keep]  # noqa: E731
    for keep in (["a"], ["b", "c"], ["a", "b", "c", "d"], ["d"], ["zz"], []):
        got = c.rows_where("f", keep)
        assert got.tolist() == want(keep), keep
        assert got.dtype == np.int64
    assert c.rows_where("absent", ["a"]).tolist() == []
    assert c.rows_where("absent", ["a"]).dtype == np.int64
    many = pd.DataFrame({"f": [f"v{i}" for i in range(100)]})
    c = R._Columns(many)
    assert c.rows_where("f", ["v3", "v1", "v99"]).tolist() == [1, 3, 99]
    assert c.rows_where("f", ["v3", "v1", "v99"]).dtype == np.int64    # row numbers


# --------------------------------------------------------------------------- predicates


def _mask(df: pd.DataFrame, p: Predicate, idx: list[int] | None = None,
          as_of: date = AS_OF) -> list[bool]:
    ix = np.arange(len(df)) if idx is None else np.asarray(idx, dtype=np.int64)
    got = R._predicate_mask(R._Columns(df), p, ix, as_of)
    assert got.dtype == bool   # a mask: 1.0 == True would hide a float array below
    return got.tolist()


NUMS = pd.DataFrame({"volume_m3": [399.0, 400.0, 401.0, np.nan]})


@pytest.mark.parametrize(("op", "value", "want"), [
    ("le", 400, [True, True, False, False]),
    ("lt", 400, [True, False, False, False]),
    ("ge", 400, [False, True, True, False]),
    ("gt", 400, [False, False, True, False]),
    ("ne", 400, [True, False, True, False]),
    ("not_in", [400, 401], [True, False, False, False]),
    ("eq", 400.0, [False, True, False, False]),
    ("in", [False, 399], [True, False, False, False]),   # False is not 0
])
def test_numeric_predicates_at_the_boundary(op: str, value: Any, want: list[bool]) -> None:
    assert _mask(NUMS, _p("volume_m3", op, value)) == want


def test_predicate_on_a_subset_of_rows() -> None:
    assert _mask(NUMS, _p("volume_m3", "ge", 400), [3, 1]) == [False, True]
    assert _mask(NUMS, _p("absent", "ne", 1), [0, 1]) == [False, False]


DATES = pd.DataFrame({"energy_deadline": pd.to_datetime(["2019-06-29", "2019-06-30",
                                                         "2019-07-01", None])})


@pytest.mark.parametrize(("op", "value", "want"), [
    ("lt", "@as_of", [True, False, False, False]),
    ("le", "@as_of", [True, True, False, False]),
    ("gt", "@as_of", [False, False, True, False]),
    ("ge", date(2019, 6, 30), [False, True, True, False]),
    ("eq", "@as_of", [False, True, False, False]),
    ("ne", "@as_of", [True, False, True, False]),
    ("in", [date(2019, 7, 1), "x"], [False, False, True, False]),
    ("not_in", [date(2019, 7, 1)], [True, True, False, False]),
    ("ne", "text", [True, True, True, False]),        # no date: every known date differs
    ("not_in", ["text"], [True, True, True, False]),
    ("eq", "text", [False] * 4),
    ("in", ["text"], [False] * 4),
    ("lt", 5, [False] * 4),
    ("is_empty", None, [False] * 4),
    ("not_empty", None, [True, True, True, False]),
])
def test_date_predicates(op: str, value: Any, want: list[bool]) -> None:
    assert _mask(DATES, _p("energy_deadline", op, value)) == want


def test_contains_on_a_number_column_is_false() -> None:
    assert _mask(NUMS, _p("volume_m3", "contains", ["4"])) == [False] * 4


def test_number_column_against_as_of_goes_to_the_value_test() -> None:
    # a date value on a numeric column: numbers are never dates, missing stays false
    assert _mask(NUMS, _p("volume_m3", "lt", "@as_of")) == [False] * 4


def test_text_predicates_and_contains() -> None:
    df = pd.DataFrame({"process": ["  热镀锌 ", "ＦＵＬＬ  Width", None, "", "冷轧·线"]})
    assert _mask(df, _p("process", "contains", ["热镀锌"])) == [True, False, False, False, False]
    assert _mask(df, _p("process", "contains", ["full width"])) == [False, True, False, False,
                                                                     False]
    assert _mask(df, _p("process", "contains", ["冷轧.线", "无"])) == [False, False, False, False,
                                                                    True]
    assert _mask(df, _p("process", "is_empty")) == [False, False, False, True, False]
    assert _mask(df, _p("process", "not_empty")) == [True, True, False, False, True]
    assert _mask(df, _p("process", "ne", "热镀锌")) == [False, True, False, True, True]
    assert _mask(df, _p("process", "contains", ["x"]), []) == []


def test_contains_over_the_unit_text_parts() -> None:
    ent = pd.DataFrame({"city": ["a", "b"]})
    units = pd.DataFrame({
        "unit_type_raw": ["燃煤锅炉", None, "", "窑"],
        "process": ["x", "燃煤", "y", None],
        "product": [None, "", "燃煤灰", "z"],
    })
    _parent, u = _units_cols(ent, units, [0, 1, 0, 1])
    got = R._predicate_mask(u, _p("unit_text", "contains", ["燃煤"]), np.arange(4), AS_OF)
    assert got.tolist() == [True, True, True, False]
    got = R._predicate_mask(u, _p("unit_text", "contains", ["z", "窑"]), np.array([3, 0]), AS_OF)
    assert got.tolist() == [True, False]
    only = pd.DataFrame({"process": ["燃煤", "x"]})
    _parent, u = _units_cols(ent, only, [0, 1])
    got = R._predicate_mask(u, _p("unit_text", "contains", ["燃煤"]), np.arange(2), AS_OF)
    assert got.tolist() == [True, False]
    objs = units.astype(object)                     # plain object columns: the filled path
    _parent, u = _units_cols(ent, objs, [0, 1, 0, 1])
    got = R._predicate_mask(u, _p("unit_text", "contains", ["燃煤"]), np.arange(4), AS_OF)
    assert got.tolist() == [True, True, True, False]
    own = pd.DataFrame({"unit_text": ["a 燃煤", "b"]})
    _parent, u = _units_cols(ent, own, [0, 1])
    got = R._predicate_mask(u, _p("unit_text", "contains", ["燃煤"]), np.arange(2), AS_OF)
    assert got.tolist() == [True, False]


def test_any_of_and_all_of() -> None:
    df = pd.DataFrame({"volume_m3": [100.0, 500.0, np.nan, 300.0],
                       "process": ["a", "b", "a", "c"]})
    cols = R._Columns(df)
    idx = np.arange(4)
    anyof = AnyOf(any=[_p("volume_m3", "lt", 200), _p("process", "eq", "c"),
                       _p("process", "eq", "a")])
    assert R._condition_mask(cols, anyof, idx, AS_OF).tolist() == [True, False, True, True]
    allof = AllOf(all=[_p("process", "in", ["a", "b"]), _p("volume_m3", "ge", 100)])
    assert R._condition_mask(cols, allof, idx, AS_OF).tolist() == [True, True, False, False]
    assert R._condition_mask(cols, allof, np.array([3, 1]), AS_OF).tolist() == [False, True]
    assert R._narrow(cols, [allof, _p("process", "eq", "b")], idx, AS_OF).tolist() == [1]
    every = AnyOf(any=[_p("process", "not_empty"), _p("volume_m3", "gt", 0)])
    assert R._condition_mask(cols, every, idx, AS_OF).tolist() == [True] * 4
    assert R._narrow(cols, [_p("process", "eq", "z"), _p("volume_m3", "lt", 1e9)], idx,
                     AS_OF).tolist() == []


# --------------------------------------------------------------------------- rules


def test_type_seed() -> None:
    cat = _catalog(
        _rule("a", "rectify", scope="unit", when=[_p("volume_m3", "le", 1).model_dump(),
                                                 {"field": "unit_type", "op": "in",
                                                  "value": ["blast_furnace"]}]),
        _rule("b", "rectify", scope="unit", when=[{"field": "unit_type", "op": "ne",
                                                  "value": "blast_furnace"}]),
        _rule("c", "rectify", scope="unit", when=[{"field": "unit_type", "op": "eq",
                                                  "value": "converter"}]),
        _rule("d", "rectify"),
    )
    assert [R._type_seed(r) for r in cat.rules] == [1, None, 0, None]


def test_active_rules_on_the_effective_day() -> None:
    cat = _catalog(_rule("a", "rectify", effective=date(2019, 6, 30)),
                   _rule("b", "rectify", effective=date(2019, 7, 1)))
    assert [r.id for r in R._active_rules(cat, AS_OF)] == ["a"]
    assert [r.id for r in R._active_rules(cat, date(2019, 7, 1))] == ["a", "b"]
    assert [r.id for r in R._active_rules(cat, None)] == ["a", "b"]   # today


def test_rule_masks_industries_when_unless() -> None:
    cat = _catalog(
        _rule("steel_gz", "rectify", when=[{"field": "city", "op": "eq", "value": "广州市"}],
              unless=[{"field": "annual_output_t", "op": "ge", "value": 5}]),
        _rule("any_big", "rectify", industries=["*"],
              when=[{"field": "annual_output_t", "op": "gt", "value": 2}]),
        _rule("later", "rectify", effective=date(2020, 1, 1)),
        _rule("unit", "rectify", scope="unit", when=[{"field": "unit_type", "op": "eq",
                                                     "value": "converter"}]),
        _rule("never", "rectify", when=[{"field": "furnace_volume_m3", "op": "le",
                                         "value": 1}]),
        _rule("due", "rectify", when=[{"field": "quality_deadline", "op": "lt",
                                       "value": "@as_of"}]),
    )
    df = pd.DataFrame({
        "industry_id": ["steel", "steel", "paper", "steel", "nope", None, "steel"],
        "city": ["广州市", "广州市", "广州市", "深圳市", "广州市", "广州市", "广州市"],
        "annual_output_t": [1.0, 5.0, 3.0, 3.0, 9.0, 9.0, np.nan],
        "furnace_volume_m3": [np.nan] * 7,
        "quality_deadline": pd.to_datetime(["2019-06-29", "2019-06-30", None, None, None, None,
                                            None]),
    })
    masks = R.rule_masks(df, catalog=cat, as_of=AS_OF)
    assert list(masks) == ["steel_gz", "any_big", "never", "due"]
    assert masks["due"].tolist() == [True] + [False] * 6     # before 2019-06-30 only
    assert masks["steel_gz"].tolist() == [True, False, False, False, False, False, True]
    assert masks["any_big"].tolist() == [False, True, True, True, False, False, False]
    assert masks["never"].tolist() == [False] * 7
    assert masks["steel_gz"].dtype == bool
    assert list(R.rule_masks(df, catalog=cat, as_of=date(2020, 1, 1))) == [
        "steel_gz", "any_big", "later", "never", "due"]
    assert R.rule_masks(df, catalog=cat, as_of=date(2020, 1, 1))["later"].tolist() == [
        True, True, False, True, False, False, True]


def test_wildcard_rule_on_a_frame_of_unknown_industries() -> None:
    cat = _catalog(_rule("w", "rectify", industries=["*"]))
    df = pd.DataFrame({"industry_id": pd.Series([None, None], dtype=object)})
    assert R.rule_masks(df, catalog=cat, as_of=AS_OF)["w"].tolist() == [False, False]


def test_catalog_fields_and_hashable() -> None:
    cat = _catalog(
        _rule("a", "rectify", when=[{"field": "city", "op": "eq", "value": "x"}],
              unless=[{"any": [{"field": "basin_id", "op": "eq", "value": "maozhou"}]}],
              review_code="fact_unverified", review_if_missing=["annual_output_t"]),
        _rule("u", "rectify", scope="unit", when=[{"field": "volume_m3", "op": "le",
                                                  "value": 1}]),
        _rule("i", "rectify", when=[{"field": "industry_id", "op": "eq", "value": "steel"}]),
    )
    assert R._catalog_fields(cat) == frozenset({"city", "basin_id", "annual_output_t"})
    assert R._hashable(float("nan")) is None and R._hashable(None) is None
    assert R._hashable(pd.NA) is None and R._hashable("x") == "x" and R._hashable(0) == 0


# --------------------------------------------------------------------------- evaluate_rules


PROBE = (
    _rule("bf", "shutdown", scope="unit",
          when=[{"field": "unit_type", "op": "eq", "value": "blast_furnace"},
                {"field": "volume_m3", "op": "le", "value": 400}],
          standards=["GB 28662-2012"], deadline=date(2019, 12, 31), text_zh="高炉小",
          citation="表5 第1项"),
    _rule("old", "rectify", scope="unit",
          when=[{"field": "unit_type", "op": "eq", "value": "converter"}],
          standards=["GB 28663-2012"], immediate=True, text_zh="转炉", citation="表5 第2项",
          review_code="fact_unverified"),
    _rule("gz", "rectify", when=[{"field": "city", "op": "eq", "value": "广州市"}],
          standards=["GB 4915-2013", "GB 28662-2012"], text_zh="广州", citation="表0",
          review_code="recheck_missing", review_if_missing=["annual_output_t"],
          measures=["tiered_price"]),
    _rule("qd", "basin_standard", industries=["paper"],
          when=[{"field": "quality_deadline", "op": "not_empty"}],
          deadline_field="quality_deadline", text_zh="期限", citation="表1"),
    _rule("bs", "basin_standard", industries=["paper"],
          when=[{"field": "city", "op": "eq", "value": "深圳市"}], text_zh="流域",
          citation="表2", measures=["tiered_price", "punitive_price"]),
)


def _probe_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ent = pd.DataFrame({
        "row": [2, 3, 4, 5, 6],
        "industry_id": ["steel", "steel", "paper", "paper", "steel"],
        "city": ["广州市", "深圳市", "深圳市", "深圳市", "佛山市"],
        "annual_output_t": [np.nan, 5.0, 1.0, 1.0, 1.0],
        "quality_deadline": pd.to_datetime(["2019-01-01", None, "2019-06-29", None, None]),
    })
    units = pd.DataFrame({
        "enterprise_row": [3, 2, 3, 9, 2, 6],
        "unit_type": ["blast_furnace", "blast_furnace", "blast_furnace", "blast_furnace",
                      "converter", "converter"],
        "unit_id": ["1号高炉", "", "3号高炉", "x", "转炉A", "转炉B"],
        "volume_m3": [400.0, 300.0, 401.0, 100.0, np.nan, np.nan],
        "source": "equipment", "source_row": [5, 6, 7, 8, 9, 10],
        "data_issues": ["", "", "", "", "", "numeric_invalid"],
    })
    return ent, units


def test_evaluate_rules_enterprises_and_units() -> None:
    ent, units = _probe_frames()
    res = R.evaluate_rules(ent, units, catalog=_catalog(*PROBE), as_of=AS_OF)
    e = res.enterprises
    assert e["row"].tolist() == [2, 3, 4, 5, 6]
    assert e["verdict"].tolist() == ["shutdown", "shutdown", "basin_standard",
                                     "basin_standard", "rectify"]
    assert e["rule_ids"].tolist() == ["bf;gz;old", "bf", "qd;bs", "bs", "old"]
    assert e["standards"].tolist() == ["GB 28662-2012;GB 4915-2013;GB 28663-2012",
                                       "GB 28662-2012", "", "", "GB 28663-2012"]
    assert e["price_measures"].tolist() == ["tiered_price", "", "tiered_price;punitive_price",
                                            "tiered_price;punitive_price", ""]
    shut = "炼铁高炉（设备清单第6行）（关停退出〔表5 第1项〕）、转炉A（限期整改〔表5 第2项〕）"
    assert e["units"].tolist() == [shut, "1号高炉（关停退出〔表5 第1项〕）", "", "",
                                   "转炉B（限期整改〔表5 第2项〕）"]
    tiered, punitive = (m.reason_zh for m in _measures("tiered_price", "punitive_price"))
    assert e["reasons"].tolist() == [
        f"高炉小〔表5 第1项〕；广州〔表0〕；转炉〔表5 第2项〕；{tiered}；涉及设备：{shut}",
        "高炉小〔表5 第1项〕；涉及设备：1号高炉（关停退出〔表5 第1项〕）",
        f"期限〔表1〕；流域〔表2〕；{tiered}；{punitive}",
        f"流域〔表2〕；{tiered}；{punitive}",
        "转炉〔表5 第2项〕；涉及设备：转炉B（限期整改〔表5 第2项〕）",
    ]
    # row 2: shutdown drives the deadline (bf, 2019-12-31); row 4: its own date field,
    # already past; row 5: basin_standard, no action verdict, no deadline; row 6: immediate
    assert e["deadline"].tolist() == ["2019-12-31", "2019-12-31", "2019-06-29", "", ""]
    assert e["deadline_status"].tolist() == ["pending", "pending", "overdue", "", "immediate"]
    assert e["unit_count"].tolist() == [2, 2, 0, 0, 1]
    assert e["needs_review"].tolist() == [True, False, False, False, True]
    assert e["review_reasons"].tolist() == ["fact_unverified;recheck_missing", "", "", "",
                                            "fact_unverified;unit_data_issue"]
    assert list(e.columns[-len(R.RULES_COLUMNS):]) == list(R.RULES_COLUMNS)
    assert "row" in e.columns and "city" in e.columns
    u = res.units
    assert u["unit_id"].tolist() == ["1号高炉", "", "3号高炉", "转炉A", "转炉B"]   # row 9 dropped
    assert u["enterprise_index"].tolist() == [1, 0, 1, 0, 4]
    assert list(u["verdict"]) == ["shutdown", "shutdown", "no_action", "rectify", "rectify"]
    assert list(u["rule_ids"]) == ["bf", "bf", "", "old", "old"]
    assert list(u["reasons"]) == ["高炉小〔表5 第1项〕"] * 2 + [""] + ["转炉〔表5 第2项〕"] * 2
    assert list(u["deadline"]) == ["2019-12-31", "2019-12-31", "", "", ""]
    assert list(u["deadline_status"]) == ["pending", "pending", "", "immediate", "immediate"]
    assert u["needs_review"].tolist() == [False, False, False, True, True]
    assert list(u["review_reasons"]) == ["", "", "", "fact_unverified",
                                         "fact_unverified;unit_data_issue"]


def _measures(*ids: str) -> list[Any]:
    cat = _catalog(_rule("x", "rectify"))
    return [next(m for m in cat.measures if m.id == i) for i in ids]


def test_evaluate_rules_keeps_classification_flags() -> None:
    ent, _units = _probe_frames()
    cat = _catalog(*PROBE)
    ent = ent.assign(review_reasons=["near_park_boundary", "", "multiple_parks", "", ""],
                     needs_review=[True, False, True, None, False])
    e = R.evaluate_rules(ent, catalog=cat, as_of=AS_OF).enterprises
    assert e["review_reasons"].tolist() == ["near_park_boundary;recheck_missing", "",
                                            "multiple_parks", "", ""]
    assert e["needs_review"].tolist() == [True, False, True, False, False]
    assert e["units"].tolist() == [""] * 5 and e["unit_count"].tolist() == [0] * 5
    as_str = ent.assign(review_reasons=ent["review_reasons"].astype(R._STR))
    e2 = R.evaluate_rules(as_str, catalog=cat, as_of=AS_OF).enterprises
    assert e2["review_reasons"].tolist() == e["review_reasons"].tolist()
    assert e2["needs_review"].tolist() == e["needs_review"].tolist()
    assert as_str["review_reasons"].tolist()[0] == "near_park_boundary"   # input untouched
    quiet = ent.assign(city="佛山市", quality_deadline=pd.NaT)
    e3 = R.evaluate_rules(quiet, catalog=cat, as_of=AS_OF).enterprises
    assert e3["review_reasons"].tolist() == ["near_park_boundary", "", "multiple_parks", "", ""]
    assert e3["needs_review"].tolist() == [True, False, True, None, False]   # as given
    bare = ent.drop(columns=["review_reasons", "needs_review"])
    e4 = R.evaluate_rules(bare, catalog=cat, as_of=AS_OF).enterprises
    assert e4["review_reasons"].tolist() == ["recheck_missing", "", "", "", ""]
    assert e4["needs_review"].tolist() == [True, False, False, False, False]


def test_evaluate_rules_errors_and_empty() -> None:
    ent, units = _probe_frames()
    cat = _catalog(*PROBE)
    with pytest.raises(ValueError, match=r"^evaluate_rules: units need the enterprises' 'row' "
                       r"column to join on$"):
        R.evaluate_rules(ent.drop(columns=["row"]), units, catalog=cat, as_of=AS_OF)
    empty = R.evaluate_rules(ent.iloc[:0], catalog=cat, as_of=AS_OF)
    assert len(empty.enterprises) == 0 and len(empty.units) == 0
    assert list(empty.enterprises.columns[-len(R.RULES_COLUMNS):]) == list(R.RULES_COLUMNS)
    later = R.evaluate_rules(ent, units, catalog=cat, as_of=date(2018, 12, 31)).enterprises
    assert later["verdict"].tolist() == ["no_action"] * 5
    assert later["deadline_status"].tolist() == [""] * 5


def test_evaluate_rules_on_units_listed_out_of_order() -> None:
    ent, units = _probe_frames()
    units = units.iloc[[2, 4, 0, 1]].reset_index(drop=True)   # rows 3, 2, 3, 2
    e = R.evaluate_rules(ent, units, catalog=_catalog(*PROBE), as_of=AS_OF).enterprises
    assert e["units"].tolist()[:2] == [
        "转炉A（限期整改〔表5 第2项〕）、炼铁高炉（设备清单第6行）（关停退出〔表5 第1项〕）",
        "1号高炉（关停退出〔表5 第1项〕）"]


def test_labels_at_without_a_unit_id_column() -> None:
    units = pd.DataFrame({"unit_type": ["blast_furnace", "converter"],
                          "source": ["registry", "equipment"], "source_row": [4, 7]})
    assert R._labels_at(units, np.array([1, 0])).tolist() == ["炼钢转炉（设备清单第7行）",
                                                             "炼铁高炉（名录第4行）"]
    no_ids = units.assign(unit_id=np.nan)                  # an all-blank (float) id column
    assert R._labels_at(no_ids, np.array([0])).tolist() == ["炼铁高炉（名录第4行）"]
    units = units.assign(unit_id=["A", None])
    assert R._labels_at(units, np.array([1, 0])).tolist() == ["炼钢转炉（设备清单第7行）", "A"]
    # a missing id beside a blank one (pandas' missing test path): both get type + sheet row
    mixed = pd.DataFrame({"unit_type": ["blast_furnace", "converter"] * 2,
                          "source": ["registry", "equipment"] * 2, "source_row": [4, 7, 9, 11],
                          "unit_id": pd.Series(["A", None, "", np.nan], dtype=object)})
    assert R._labels_at(mixed, np.arange(4)).tolist() == [
        "A", "炼钢转炉（设备清单第7行）", "炼铁高炉（名录第9行）", "炼钢转炉（设备清单第11行）"]
    # a nullable text column (pd.NA for the missing id): the same labels, no error
    for ids in (pd.array(["A", None, "", None], dtype="string"),
                pd.Series(["A", pd.NA, "", pd.NA], dtype=object)):
        assert R._labels_at(mixed.assign(unit_id=ids), np.arange(4)).tolist() == [
            "A", "炼钢转炉（设备清单第7行）", "炼铁高炉（名录第9行）", "炼钢转炉（设备清单第11行）"]


def test_labelled_tests_ids_on_the_texts_as_labels_at_does() -> None:
    base = pd.DataFrame({"unit_type": ["blast_furnace", "converter"] * 3,
                         "source": ["registry", "equipment"] * 3, "source_row": range(2, 8)})
    tails = np.array(["（甲）", "（乙）", "（甲）", "（乙）", "（甲）", "（乙）"], dtype=object)
    at = np.arange(6)
    for ids in (["A", "", "B", "C", "", "D"], ["A", None, "B", np.nan, "", "D"],
                ["A", pd.NA, "", "C", "x", "y"], [np.nan] * 6, ["A", 7, "", "B", "C", "D"]):
        units = base.assign(unit_id=pd.Series(ids, dtype=object))
        try:
            want = np.add(R._labels_at(units, at), tails).tolist()
        except TypeError:                                  # a number as id: both fail
            with pytest.raises(TypeError):
                R._labelled(units, at, tails)
            continue
        assert R._labelled(units, at, tails).tolist() == want
    assert R._labelled(base, at[:2], tails[:2]).tolist() == [
        "炼铁高炉（名录第2行）（甲）", "炼钢转炉（设备清单第3行）（乙）"]


def test_rules_for_point_default_catalog_and_missing_values() -> None:
    """Missing attribute values (NaN, None) are one key; the bundled catalog's answer has
    one entry per industry; the default path honours ``as_of``."""
    a = R.rules_for_point({"city": float("nan"), "basin_id": None}, as_of=AS_OF)
    b = R.rules_for_point({"city": None}, as_of=AS_OF)
    assert a == b and len(a) == 12
    # the catalog's rules take effect in 2019: in 2018 nothing applies anywhere
    past = R.rules_for_point({"basin_id": "maozhou", "city": "深圳市"}, as_of=date(2000, 1, 1))
    assert all(x["verdict"] == "no_action" and x["rule_ids"] == [] for x in past)


def test_unit_result_frame_joins_enterprise_fields() -> None:
    from geo.equipment import equipment_spec
    from geo.schema import UNIT_COLUMNS

    ent, units = _probe_frames()
    ent = ent.assign(uscc=["U2", "U3", "U4", "U5", "U6"], name=["甲", "乙", "丙", "丁", "戊"],
                     industry=["钢铁"] * 2 + ["造纸"] * 2 + ["钢铁"])
    res = R.evaluate_rules(ent, units, catalog=_catalog(*PROBE), as_of=AS_OF)
    by_row = res.enterprises.set_index(pd.Index(res.enterprises["row"], name="row"), drop=False)
    out = R.unit_result_frame(res.units, by_row)   # indexed by row numbers: read by position
    assert list(out.columns[:len(UNIT_COLUMNS)]) == list(UNIT_COLUMNS)
    assert "volume_m3" in out.columns and out["volume_m3"].tolist()[:3] == [400.0, 300.0, 401.0]
    assert out["enterprise_row"].tolist() == [3, 2, 3, 2, 6]
    assert out["uscc"].tolist() == ["U3", "U2", "U3", "U2", "U6"]
    assert out["name"].tolist() == ["乙", "甲", "乙", "甲", "戊"]
    assert out["industry"].tolist() == ["钢铁"] * 5
    assert out["unit_type_zh"].tolist() == ["炼铁高炉"] * 3 + ["炼钢转炉"] * 2
    assert out["source_row"].tolist() == [5, 6, 7, 9, 10]
    assert out["source"].tolist() == ["equipment"] * 5
    assert out["unit_type"].tolist() == ["blast_furnace"] * 3 + ["converter"] * 2
    assert list(out["rule_ids"]) == ["bf", "bf", "", "old", "old"]
    assert list(out["reasons"]) == ["高炉小〔表5 第1项〕"] * 2 + [""] + ["转炉〔表5 第2项〕"] * 2
    assert list(out["deadline"]) == ["2019-12-31", "2019-12-31", "", "", ""]
    assert list(out["review_reasons"]) == ["", "", "", "fact_unverified",
                                           "fact_unverified;unit_data_issue"]
    odd = R.unit_result_frame(res.units.assign(unit_type="no_such_type"), by_row)
    assert odd["unit_type_zh"].tolist() == [""] * 5          # an unknown type has no name
    assert out["unit_id"].tolist() == ["1号高炉", "", "3号高炉", "转炉A", "转炉B"]
    assert list(out["verdict"]) == ["shutdown", "shutdown", "no_action", "rectify", "rectify"]
    assert list(out["deadline_status"]) == ["pending", "pending", "", "immediate", "immediate"]
    assert out["needs_review"].tolist() == [False, False, False, True, True]
    assert out["data_issues"].tolist() == ["", "", "", "", "numeric_invalid"]
    assert out["measures"].tolist()[0].startswith("容积 400")
    none = R.unit_result_frame(res.units.iloc[:0], res.enterprises)
    assert len(none) == 0 and list(none.columns[:len(UNIT_COLUMNS)]) == list(UNIT_COLUMNS)
    cols = R._measure_and_attribute_columns(equipment_spec())
    assert cols[0] == "unit_type_raw" and cols[-1] == "energy_indicator_id"
    assert "volume_m3" in cols and "capacity_t_per_year" in cols and "volume" not in cols
    assert len(cols) == len(set(cols))
    for name in ("commission_year", "energy_value", "inspection_date"):   # [numbers], [dates]
        assert name in cols


def test_review_codes_are_the_labels_table() -> None:
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "layers" / "data" / "labels.toml"
    want = tuple(tomllib.loads(path.read_text(encoding="utf-8"))["review_reasons"])
    assert R._review_codes() == want
    assert want[:2] == ("near_basin_boundary", "near_region_boundary")
    assert set(R.REVIEW_CODES) <= set(want)


def test_rules_for_point_answers_are_copies_and_lists_split() -> None:
    """Changing a returned list never changes the next answer (the default path memoises);
    several rule ids come back as a list of ids."""
    first = R.rules_for_point({"basin_id": "maozhou"}, as_of=AS_OF)
    first[0]["rule_ids"].append("tampered")
    first[0]["reasons"].append("tampered")
    again = R.rules_for_point({"basin_id": "maozhou"}, as_of=AS_OF)
    assert "tampered" not in again[0]["rule_ids"] and "tampered" not in again[0]["reasons"]
    cat = _catalog(_rule("p1", "rectify", industries=["paper"]),
                   _rule("p2", "shutdown", industries=["paper"]))
    paper = next(a for a in R.rules_for_point({}, catalog=cat, as_of=AS_OF)
                 if a["industry_id"] == "paper")
    assert paper["rule_ids"] == ["p2", "p1"] and paper["verdict"] == "shutdown"
    assert paper["reasons"] == ["规则p2〔表p2〕", "规则p1〔表p1〕"]


def test_deadlines_from_a_field_and_none() -> None:
    """A deadline field: its date, 'undetermined' where the row has none or the frame lacks
    the column; an action verdict without any deadline is 'undetermined'; a verdict that
    asks for no action has no deadline status."""
    cat = _catalog(
        _rule("fd", "rectify", when=[{"field": "city", "op": "eq", "value": "广州市"}],
              deadline_field="quality_deadline"),
        _rule("nd", "shutdown", when=[{"field": "city", "op": "eq", "value": "深圳市"}]),
        _rule("ps", "priority_supervision", when=[{"field": "city", "op": "eq",
                                                   "value": "佛山市"}]),
    )
    df = pd.DataFrame({"industry_id": "steel", "city": ["广州市", "广州市", "深圳市", "佛山市"],
                       "quality_deadline": pd.to_datetime(["2019-08-01", None, None, None])})
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e["deadline"].tolist() == ["2019-08-01", "", "", ""]
    assert e["deadline_status"].tolist() == ["pending", "undetermined", "undetermined", ""]
    e = R.apply_rules(df.drop(columns=["quality_deadline"]), catalog=cat, as_of=AS_OF)
    assert e["deadline"].tolist() == ["", "", "", ""]
    assert e["deadline_status"].tolist() == ["undetermined", "undetermined", "undetermined", ""]


def test_apply_rules_passes_the_units() -> None:
    ent, units = _probe_frames()
    e = R.apply_rules(ent, units=units, catalog=_catalog(*PROBE), as_of=AS_OF)
    assert e["units"].tolist()[1] == "1号高炉（关停退出〔表5 第1项〕）"
    assert e["unit_count"].tolist() == [2, 2, 0, 0, 1]


def test_review_if_any_listed_field_is_missing_and_as_of_predicates() -> None:
    cat = _catalog(
        _rule("rv", "rectify", when=[{"field": "city", "op": "eq", "value": "广州市"}],
              review_code="recheck_missing",
              review_if_missing=["annual_output_t", "quality_deadline"]),
        _rule("late", "priority_supervision",
              when=[{"field": "quality_deadline", "op": "lt", "value": "@as_of"}]),
    )
    df = pd.DataFrame({"industry_id": "steel", "city": "广州市",
                       "annual_output_t": [1.0, np.nan, 1.0, np.nan],
                       "quality_deadline": pd.to_datetime(["2019-06-29", "2019-07-01", None,
                                                           None])})
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e["rule_ids"].tolist() == ["rv;late", "rv", "rv", "rv"]
    assert e["review_reasons"].tolist() == ["", "recheck_missing", "recheck_missing",
                                            "recheck_missing"]
    assert e["needs_review"].tolist() == [False, True, True, True]


def test_units_of_unknown_enterprises_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="geo.rules")
    ent, units = _probe_frames()
    R.evaluate_rules(ent, units, catalog=_catalog(*PROBE), as_of=AS_OF)
    text = [r.getMessage() for r in caplog.records if r.name == "geo.rules"]
    assert "ignoring 1 unit(s) of enterprises not in the frame" in text   # row 9
    assert "5 rules, 5 rows, 5 units, 5 combinations" in text


def test_unit_rules_seeded_by_type_lists_and_wildcards() -> None:
    cat = _catalog(
        _rule("lst", "rectify", scope="unit", industries=["*"],
              when=[{"field": "unit_type", "op": "in", "value": ["converter", "boiler"]}]),
    )
    ent, units = _probe_frames()
    res = R.evaluate_rules(ent, units, catalog=cat, as_of=AS_OF)
    assert list(res.units["rule_ids"]) == ["", "", "", "lst", "lst"]
    assert res.enterprises["rule_ids"].tolist() == ["lst", "", "", "", "lst"]


def test_as_of_inside_any_and_all_groups() -> None:
    """``@as_of`` is the evaluation date in nested groups too (mutants of
    ``_condition_mask`` that passed no date to an ``any`` member or an ``all`` group)."""
    due = {"field": "quality_deadline", "op": "lt", "value": "@as_of"}
    big = {"field": "annual_output_t", "op": "gt", "value": 100}
    gz = {"field": "city", "op": "eq", "value": "广州市"}
    cat = _catalog(
        _rule("any_due", "rectify", when=[gz, {"any": [big, due]}]),
        _rule("all_due", "rectify", when=[gz, {"any": [big, {"all": [
            due, {"field": "annual_output_t", "op": "gt", "value": 2}]}]}]),
    )
    df = pd.DataFrame({
        "industry_id": ["steel"] * 4,
        "city": ["广州市"] * 4,
        "annual_output_t": [3.0, 3.0, 200.0, 1.0],
        # 2019-06-29 is before AS_OF (2019-06-30), 2019-07-01 after it
        "quality_deadline": pd.to_datetime(["2019-06-29", "2019-07-01", None, "2019-06-01"]),
    })
    masks = R.rule_masks(df, catalog=cat, as_of=AS_OF)
    assert masks["any_due"].tolist() == [True, False, True, True]
    assert masks["all_due"].tolist() == [True, False, True, False]


def test_an_immediate_rule_does_not_hide_a_later_rules_deadline() -> None:
    """Two rules of one verdict: the first immediate (广州), the second with a deadline
    (深圳); each enterprise keeps its own (mutant of ``_aggregate``: ``continue`` ->
    ``break`` after an immediate rule dropped every later rule's deadline)."""
    cat = _catalog(
        _rule("now", "rectify", immediate=True,
              when=[{"field": "city", "op": "eq", "value": "广州市"}]),
        _rule("later", "rectify", deadline=date(2020, 12, 31),
              when=[{"field": "city", "op": "eq", "value": "深圳市"}]),
    )
    ent = pd.DataFrame({"row": [1, 2], "industry_id": ["steel", "steel"],
                        "city": ["广州市", "深圳市"]})
    e = R.evaluate_rules(ent, catalog=cat, as_of=AS_OF).enterprises
    assert e["rule_ids"].tolist() == ["now", "later"]
    assert e["deadline"].tolist() == ["", "2020-12-31"]
    assert e["deadline_status"].tolist() == ["immediate", "pending"]


# ------------------------------------------- speed paths of the engine (issue 16, 12-07)
# Expected rule ids worked out by hand from the rows; each test reaches a fast path of
# _Columns (flag seeds, a parent field's partial encoding reused, units by enterprise).


def test_flag_seed_eq_true_false_and_both() -> None:
    """A nullable-boolean column seeds its rule (flag_rows): eq true, eq false and
    in [true, false]; a missing flag matches none of them."""
    cat = _catalog(
        _rule("t", "rectify", when=[{"field": "emission_exceedance", "op": "eq", "value": True}]),
        _rule("f", "rectify", when=[{"field": "emission_exceedance", "op": "eq",
                                     "value": False}]),
        _rule("tf", "rectify", when=[{"field": "emission_exceedance", "op": "in",
                                      "value": [True, False]}]),
    )
    df = pd.DataFrame({"industry_id": "steel", "city": "广州市",
                       "emission_exceedance": pd.array([True, False, None, True],
                                                       dtype="boolean")})
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert [set(r.split(";")) - {""} for r in e["rule_ids"]] == [
        {"t", "tf"}, {"f", "tf"}, set(), {"t", "tf"}]


def test_unit_rules_on_a_parent_field_and_units_listed_by_enterprise() -> None:
    """Units sorted by enterprise (the runs path of rows_where for a parent field) and two
    converter rules on the enterprise's city (the second reuses the first's encoding of
    the same rows); ten enterprises, so the partial encoding is the one taken."""
    ent = pd.DataFrame({
        "row": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "industry_id": ["steel", "steel", "paper", "steel", "paper", "steel", "steel",
                        "steel", "steel", "steel"],
        "city": ["广州市", "佛山市", "广州市", "广州市", "佛山市", "佛山市", "深圳市",
                 "深圳市", "深圳市", "深圳市"],
        "basin_id": ["", "", "", "", "", "lianjiang", "", "", "", ""],
    })
    units = pd.DataFrame({
        "enterprise_row": [2, 2, 3, 5, 6, 6, 7],
        "unit_type": ["blast_furnace", "converter", "blast_furnace", "converter",
                      "converter", "blast_furnace", "converter"],
        "unit_id": [f"u{i}" for i in range(7)],
        "volume_m3": [300.0, np.nan, 350.0, np.nan, np.nan, 200.0, 100.0],
        "source": "equipment", "source_row": list(range(2, 9)), "data_issues": "",
    })
    cat = _catalog(
        _rule("v", "shutdown", scope="unit",
              when=[{"field": "volume_m3", "op": "le", "value": 400}]),
        _rule("c1", "rectify", scope="unit",
              when=[{"field": "unit_type", "op": "eq", "value": "converter"},
                    {"field": "city", "op": "eq", "value": "广州市"}]),
        _rule("c2", "rectify", scope="unit",
              when=[{"field": "unit_type", "op": "eq", "value": "converter"},
                    {"field": "city", "op": "eq", "value": "佛山市"}]),
        # another parent field on the same candidate rows: its own encoding, not city's
        _rule("cb", "rectify", scope="unit",
              when=[{"field": "unit_type", "op": "eq", "value": "converter"},
                    {"field": "basin_id", "op": "eq", "value": "lianjiang"}]),
    )
    res = R.evaluate_rules(ent, units, catalog=cat, as_of=AS_OF)
    # u0, u2 steel furnaces of 300 and 350 m³; u1, u3 converters in 广州; u4 a paper
    # works' converter (the rules are for steel); u5 a paper works' furnace; u6 a 100 m³
    # converter in 佛山, basin lianjiang
    assert list(res.units["rule_ids"]) == ["v", "c1", "v", "c1", "", "", "v;c2;cb"]
    assert res.enterprises["rule_ids"].tolist() == ["v;c1", "v", "", "c1", "", "v;c2;cb", "",
                                                    "", "", ""]


def test_flag_column_with_other_operators_is_not_seeded() -> None:
    """Only eq/in seed a rule by its flag rows; is_empty/not_empty on a nullable-boolean
    column are tested row by row (module docstring: a missing value never matches, and
    is_empty means a known blank text, which a flag never is)."""
    cat = _catalog(
        _rule("ne", "rectify", when=[{"field": "emission_exceedance", "op": "not_empty"}]),
        _rule("ie", "rectify", when=[{"field": "emission_exceedance", "op": "is_empty"}]),
    )
    df = pd.DataFrame({"industry_id": "steel", "city": "广州市",
                       "emission_exceedance": pd.array([True, False, None], dtype="boolean")})
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e["rule_ids"].tolist() == ["ne", "ne", ""]


def test_rule_review_merged_into_an_engine_text_review_column() -> None:
    """review_reasons already in the engine's text dtype (classify's output): a rule's
    review code is added to the rows it matches and sets needs_review there; other rows
    keep their own flag and text (worked out by hand)."""
    cat = _catalog(_rule("gz", "rectify", review_code="fact_unverified",
                         when=[{"field": "city", "op": "eq", "value": "广州市"}]))
    df = pd.DataFrame({
        "industry_id": "steel", "city": ["广州市", "深圳市", "广州市"],
        "needs_review": [False, True, True],
        "review_reasons": pd.array(["", "near_basin_boundary", "multiple_parks"],
                                   dtype=R._STR),
    })
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e["needs_review"].tolist() == [True, True, True]
    assert list(e["review_reasons"]) == ["fact_unverified", "near_basin_boundary",
                                         "multiple_parks;fact_unverified"]


def test_units_with_their_own_index_are_aligned_by_position() -> None:
    """A unit frame indexed 100.. (not 0..n-1): each unit keeps its own results."""
    ent, units = _probe_frames()
    units.index = range(100, 100 + len(units))
    res = R.evaluate_rules(ent, units, catalog=_catalog(*PROBE), as_of=AS_OF)
    u = res.units
    assert u["unit_id"].tolist() == ["1号高炉", "", "3号高炉", "转炉A", "转炉B"]
    assert list(u["rule_ids"]) == ["bf", "bf", "", "old", "old"]
    assert u["enterprise_index"].tolist() == [1, 0, 1, 0, 4]
    assert "index" not in u.columns  # the old index is dropped, not kept as a column
    assert res.enterprises["unit_count"].dtype == np.int64


def test_more_than_64_rules_keep_their_own_bits() -> None:
    """Rule matches are packed 64 to a word: with 65 rules matching one row, the 65th
    (index 64, bit 0 of the second word) is listed, and no other rule twice."""
    rules = [_rule(f"r{i:02d}", "rectify", when=[{"field": "city", "op": "eq",
                                                  "value": "广州市"}]) for i in range(65)]
    df = pd.DataFrame({"industry_id": "steel", "city": ["广州市", "深圳市"]})
    e = R.apply_rules(df, catalog=_catalog(*rules), as_of=AS_OF)
    assert e["rule_ids"].tolist() == [";".join(f"r{i:02d}" for i in range(65)), ""]


def test_more_than_64_unit_rules_on_few_matched_units() -> None:
    """65 unit rules matching the one blast furnace among four units (few units matched:
    only those get a word): the furnace lists all 65 rules in order, the rest none, and
    the enterprise lists them once (by hand)."""
    rules = [_rule(f"r{i:02d}", "rectify", scope="unit",
                   when=[{"field": "unit_type", "op": "eq", "value": "blast_furnace"}])
             for i in range(65)]
    ent = pd.DataFrame({"row": [2], "industry_id": ["steel"], "city": ["广州市"]})
    units = pd.DataFrame({"enterprise_row": [2] * 4, "unit_id": ["A", "B", "C", "D"],
                          "unit_type": ["converter", "blast_furnace", "converter", "converter"]})
    res = R.evaluate_rules(ent, units, catalog=_catalog(*rules), as_of=AS_OF)
    every = ";".join(f"r{i:02d}" for i in range(65))
    assert res.units["rule_ids"].tolist() == ["", every, "", ""]
    assert res.enterprises["rule_ids"].tolist() == [every]


def test_never_known_scans_every_chunk_of_a_long_column() -> None:
    """never_known reads the column in chunks of 32,768 rows: one known value in the first
    row, or past the second chunk, is a known column (rows built by hand)."""
    n = 70_000  # > 2 chunks
    nums = np.full(n, np.nan)
    nums[n - 1] = 1.0
    days = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    first = days.copy()
    first.iloc[0] = pd.Timestamp("2019-01-01")
    last = days.copy()
    last.iloc[n - 1] = pd.Timestamp("2019-01-01")
    df = pd.DataFrame({"v": nums, "empty": np.full(n, np.nan), "d0": first, "dn": days,
                       "dl": last})
    c = R._Columns(df)
    assert c.never_known("v") is False
    assert c.never_known("empty") is True
    assert c.never_known("d0") is False
    assert c.never_known("dn") is True
    assert c.never_known("dl") is False


def test_factorize_python_storage_strings() -> None:
    """The engine's text columns (python-storage strings) are factorised on their object
    array: same codes and values as any text column (written by hand)."""
    for dtype in (pd.StringDtype("python"), pd.StringDtype("pyarrow")):
        codes, uniq = R._factorize(pd.Series(["x", None, "y", "x"], dtype=dtype))
        assert codes.tolist() == [0, -1, 1, 0], dtype
        assert list(uniq) == ["x", "y"] and uniq.dtype == object, dtype


def test_aggregate_keeps_and_reuses_the_flagged_rows() -> None:
    """``review_rows``: filled with each rule's flagged source rows (by ``id(rule)``) and,
    when already there, used as given; without it the rows are computed (bits by hand)."""
    cat = _catalog(_rule("rv", "rectify", review_code="recheck_missing",
                         review_if_missing=["annual_output_t"]))
    rule = cat.rules[0]
    cols = R._Columns(pd.DataFrame({"annual_output_t": [np.nan, 1.0, np.nan]}))
    src = np.array([0, 1, 2])
    bit = {c: i for i, c in enumerate(R.REVIEW_CODES)}
    b = 1 << R.REVIEW_CODES.index("recheck_missing")
    agg = R._aggregate([(rule, src, src)], lambda _r: cols, 3, {"rectify": 1}, 9, bit)
    assert agg.review.tolist() == [b, 0, b] and agg.rank.tolist() == [1, 1, 1]
    kept: dict[int, np.ndarray] = {}
    agg = R._aggregate([(rule, src, src)], lambda _r: cols, 3, {"rectify": 1}, 9, bit, kept)
    assert list(kept) == [id(rule)] and kept[id(rule)].tolist() == [0, 2]
    assert agg.review.tolist() == [b, 0, b]
    given = {id(rule): np.array([1])}
    agg = R._aggregate([(rule, src, src)], lambda _r: cols, 3, {"rectify": 1}, 9, bit, given)
    assert agg.review.tolist() == [0, b, 0]


@pytest.mark.parametrize("by_combo", [False, True])
def test_aggregate_deadline_kinds_per_row_and_per_combination(by_combo: bool) -> None:
    """Immediate, dated, field and no deadline, per row (no ``combo``) and per rule
    combination (rows 0: rules 0 + 2, 1 and 2: rule 1, 3: rule 3, written out by hand):
    the field rule drives no row (outranked at row 0), the rule after it still counts."""
    cat = _catalog(
        _rule("imm", "shutdown", immediate=True),
        _rule("dt", "rectify", deadline=date(2019, 12, 31)),
        _rule("fd", "rectify", deadline_field="quality_deadline"),
        _rule("nd", "rectify", review_code="recheck_missing",
              review_if_missing=["annual_output_t"]),
    )
    imm, dt, fd, nd = cat.rules
    cols = R._Columns(pd.DataFrame({
        "quality_deadline": pd.to_datetime(["2019-07-01", None, None, "2019-08-01"]),
        "annual_output_t": [1.0, 1.0, 1.0, np.nan]}))
    rows = [np.array([0]), np.array([1, 2]), np.array([0]), np.array([3])]
    events = [(r, x, x) for r, x in zip((imm, dt, fd, nd), rows, strict=True)]
    bit = {c: i for i, c in enumerate(R.REVIEW_CODES)}
    combo = (np.array([0, 1, 1, 2]), [[0, 2], [1], [3]]) if by_combo else None
    agg = R._aggregate(events, lambda _r: cols, 4, {"shutdown": 0, "rectify": 1}, 9, bit,
                       combo=combo)
    assert agg.rank.tolist() == [0, 1, 1, 1]
    assert agg.immediate.tolist() == [True, False, False, False]
    dec31 = R._days_of(date(2019, 12, 31))
    assert agg.days.tolist() == [NONE, dec31, dec31, NONE]
    assert agg.undetermined.tolist() == [False, False, False, True]
    assert agg.review.tolist() == [0, 0, 0, 1 << R.REVIEW_CODES.index("recheck_missing")]


def _blast_furnace_rule(*, dated: bool = True) -> Any:
    """A catalog of one unit rule: blast furnaces shut down (by 2019-12-31, with review
    code ``recheck_missing`` when ``volume_m3`` is missing, if ``dated``)."""
    extra = dict(deadline=date(2019, 12, 31), review_code="recheck_missing",
                 review_if_missing=["volume_m3"]) if dated else {}
    return _catalog(_rule("bf", "shutdown", scope="unit",
                          when=[{"field": "unit_type", "op": "eq", "value": "blast_furnace"}],
                          **extra))


def _one_steel_enterprise() -> pd.DataFrame:
    """One steel enterprise (registry row 2) in 广州市."""
    return pd.DataFrame({"row": [2], "industry_id": ["steel"], "city": ["广州市"]})


def test_units_matched_few_the_others_get_the_no_match_values() -> None:
    """One unit of five matched (the first: its combination has code 0, the no-match one
    comes after), one unmatched unit with a data issue: every unmatched unit reads
    no_action / '' and only the one with the issue needs review (worked out by hand)."""
    cat, ent = _blast_furnace_rule(), _one_steel_enterprise()
    units = pd.DataFrame({
        "enterprise_row": [2] * 5,
        "unit_type": ["blast_furnace"] + ["converter"] * 4,
        "unit_id": ["A", "B", "C", "D", "E"],
        "volume_m3": [np.nan, 1.0, 1.0, 1.0, 1.0],
        "source": "equipment", "source_row": [5, 6, 7, 8, 9],
        "data_issues": ["", "", "numeric_invalid", "", ""],
    })
    u = R.evaluate_rules(ent, units, catalog=cat, as_of=AS_OF).units
    assert list(u["verdict"]) == ["shutdown"] + ["no_action"] * 4
    assert list(u["rule_ids"]) == ["bf", "", "", "", ""]
    assert list(u["deadline"]) == ["2019-12-31", "", "", "", ""]
    assert list(u["deadline_status"]) == ["pending", "", "", "", ""]
    assert u["needs_review"].tolist() == [True, False, True, False, False]
    assert list(u["review_reasons"]) == ["recheck_missing", "", "unit_data_issue", "", ""]


def test_units_with_an_issue_before_the_matched_ones() -> None:
    """A unit with a data issue listed before the matched units (rows 1 and 3 of 6): the
    rule's review code lands on the unit it flagged (row 1, no volume), not on the row
    before it; by hand."""
    cat, ent = _blast_furnace_rule(), _one_steel_enterprise()
    units = pd.DataFrame({
        "enterprise_row": [2] * 6,
        "unit_type": ["converter", "blast_furnace", "converter", "blast_furnace",
                      "converter", "converter"],
        "unit_id": ["A", "B", "C", "D", "E", "F"],
        "volume_m3": [1.0, np.nan, 1.0, 1.0, 1.0, 1.0],
        "source": "equipment", "source_row": [5, 6, 7, 8, 9, 10],
        "data_issues": ["numeric_invalid", "", "", "", "", ""],
    })
    u = R.evaluate_rules(ent, units, catalog=cat, as_of=AS_OF).units
    assert list(u["verdict"]) == ["no_action", "shutdown", "no_action", "shutdown",
                                  "no_action", "no_action"]
    assert list(u["deadline"]) == ["", "2019-12-31", "", "2019-12-31", "", ""]
    assert u["needs_review"].tolist() == [True, True, False, False, False, False]
    assert list(u["review_reasons"]) == ["unit_data_issue", "recheck_missing", "", "", "", ""]


def test_enterprise_text_columns_are_str_also_when_empty() -> None:
    """The enterprises' verdict/standards/rule_ids/reasons/price_measures/deadline columns are
    pandas' ``str`` dtype (NaN-missing strings), for a frame of rows and an empty one."""
    ent, units = _probe_frames()
    cat = _catalog(*PROBE)
    for frame, u in ((ent, units), (ent.iloc[:0], None)):
        e = R.evaluate_rules(frame, u, catalog=cat, as_of=AS_OF).enterprises
        for col in ("verdict", "standards", "rule_ids", "reasons", "price_measures",
                    "deadline", "deadline_status"):
            dtype = e[col].dtype
            assert isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan, (col, dtype)


def test_units_without_a_data_issues_column() -> None:
    """A unit frame without ``data_issues``: no unit has a data issue (by hand)."""
    cat, ent = _blast_furnace_rule(dated=False), _one_steel_enterprise()
    units = pd.DataFrame({"enterprise_row": [2, 2, 2], "unit_id": ["A", "B", "C"],
                          "unit_type": ["converter", "blast_furnace", "converter"]})
    res = R.evaluate_rules(ent, units, catalog=cat, as_of=AS_OF)
    assert list(res.units["verdict"]) == ["no_action", "shutdown", "no_action"]
    assert res.units["needs_review"].tolist() == [False, False, False]
    assert res.enterprises["needs_review"].tolist() == [False]


def test_unless_against_as_of() -> None:
    """An ``unless`` condition on ``@as_of``: the rows whose date is on or after the day
    evaluated are not matched (AS_OF = 2019-06-30, dates by hand)."""
    cat = _catalog(_rule("x", "rectify", when=[{"field": "city", "op": "eq", "value": "广州市"}],
                         unless=[{"field": "quality_deadline", "op": "ge", "value": "@as_of"}]))
    df = pd.DataFrame({"industry_id": "steel", "city": "广州市",
                       "quality_deadline": pd.to_datetime(["2019-06-29", "2019-06-30",
                                                           "2019-07-01"])})
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e["rule_ids"].tolist() == ["x", "", ""]


def test_review_columns_missing_cells_read_as_blank_and_unflagged() -> None:
    """The classification's review columns with missing cells, one row flagged by a rule:
    a missing reason reads as '' (engine text dtype and plain object), a missing flag as
    False, in the rows no rule flags too (by hand)."""
    b = 1 << R.REVIEW_CODES.index("recheck_missing")
    review, flagged = np.array([0, 0, b]), np.array([2])
    for reasons in (pd.array(["near_basin_boundary", pd.NA, ""], dtype=R._STR),
                    pd.Series(["near_basin_boundary", np.nan, ""], dtype=object)):
        for needs in (pd.Series([True, False, False]),
                      pd.Series([True, np.nan, False], dtype=object)):
            gdf = pd.DataFrame({"review_reasons": reasons, "needs_review": needs})
            got_needs, got_reasons = R._review_columns(gdf, review, flagged)
            assert got_needs.tolist() == [True, False, True]
            assert list(got_reasons) == ["near_basin_boundary", "", "recheck_missing"]


def test_enterprise_columns_follow_the_frame_index() -> None:
    """Enterprises indexed 10, 20, 30 (not 0..n-1): every rules column lines up with its
    row (the second row matched; values by hand)."""
    cat = _catalog(_rule("sz", "rectify", when=[{"field": "city", "op": "eq",
                                                 "value": "深圳市"}]))
    df = pd.DataFrame({"industry_id": "steel", "city": ["广州市", "深圳市", "佛山市"]},
                      index=[10, 20, 30])
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e.index.tolist() == [10, 20, 30]
    assert e["rule_ids"].tolist() == ["", "sz", ""]
    assert e["verdict"].tolist() == ["no_action", "rectify", "no_action"]
    assert e["deadline_status"].tolist() == ["", "undetermined", ""]
    assert e["unit_count"].tolist() == [0, 0, 0] and e["units"].tolist() == ["", "", ""]


def test_unit_rule_against_as_of() -> None:
    """A unit rule comparing its enterprise's date with ``@as_of`` (2019-06-30): only the
    furnace of the enterprise whose date is before it is matched (by hand)."""
    cat = _catalog(_rule("late", "rectify", scope="unit",
                         when=[{"field": "unit_type", "op": "eq", "value": "blast_furnace"},
                               {"field": "quality_deadline", "op": "lt", "value": "@as_of"}]))
    ent = pd.DataFrame({"row": [2, 3], "industry_id": "steel", "city": "广州市",
                        "quality_deadline": pd.to_datetime(["2019-01-01", "2019-12-01"])})
    units = pd.DataFrame({"enterprise_row": [2, 3], "unit_id": ["A", "B"],
                          "unit_type": ["blast_furnace", "blast_furnace"]})
    res = R.evaluate_rules(ent, units, catalog=cat, as_of=AS_OF)
    assert res.units["rule_ids"].tolist() == ["late", ""]
    assert res.enterprises["rule_ids"].tolist() == ["late", ""]


def test_units_text_lists_each_citation_once_and_keeps_the_listing_order() -> None:
    """A furnace matched by three shutdown rules with two distinct citations: its label is
    followed by the verdict and each citation once; with forty furnaces listed
    alternately for two enterprises, each enterprise lists its own in their order (the
    texts written out by hand)."""
    cat = _catalog(*[_rule(rid, "shutdown", scope="unit", citation=cit,
                           when=[{"field": "unit_type", "op": "eq", "value": "blast_furnace"}])
                     for rid, cit in (("x1", "表5 第1项"), ("x2", "表5 第2项"),
                                      ("x3", "表5 第1项"))])
    ent = pd.DataFrame({"row": [2, 3], "industry_id": "steel", "city": "广州市"})
    one = pd.DataFrame({"enterprise_row": [2], "unit_id": ["A"], "unit_type": ["blast_furnace"]})
    e = R.evaluate_rules(ent, one, catalog=cat, as_of=AS_OF).enterprises
    assert e["units"].tolist() == ["A（关停退出〔表5 第1项〕〔表5 第2项〕）", ""]
    ids = [f"u{i:02d}" for i in range(40)]
    many = pd.DataFrame({"enterprise_row": [3, 2] * 20, "unit_id": ids,
                         "unit_type": "blast_furnace"})
    e = R.evaluate_rules(ent, many, catalog=cat, as_of=AS_OF).enterprises
    tail = "（关停退出〔表5 第1项〕〔表5 第2项〕）"
    assert e["units"].tolist() == ["、".join(u + tail for u in ids[1::2]),
                                   "、".join(u + tail for u in ids[0::2])]


def test_engine_text_review_column_kept_when_no_rule_flags_a_row() -> None:
    """review_reasons in the engine's text dtype, no needs_review column and no rule with a
    review code matching: the texts are kept as given and no row is flagged (there is no
    flag to keep, and no rule asks for review)."""
    cat = _catalog(_rule("gz", "rectify", review_code="fact_unverified",
                         when=[{"field": "city", "op": "eq", "value": "珠海市"}]))
    df = pd.DataFrame({
        "industry_id": "steel", "city": ["广州市", "深圳市"],
        "review_reasons": pd.array(["", "near_basin_boundary"], dtype=R._STR),
    })
    e = R.apply_rules(df, catalog=cat, as_of=AS_OF)
    assert e["needs_review"].tolist() == [False, False]
    assert list(e["review_reasons"]) == ["", "near_basin_boundary"]
    assert e["rule_ids"].tolist() == ["", ""]


@pytest.mark.parametrize("n", [1, 126, 127, 200, 40_000])
def test_code_dtype_is_the_one_pandas_picks(n: int) -> None:
    """The code width for n categories equals pandas' own choice (the oracle), across the
    int8 -> int16 -> int32 boundaries."""
    assert R._code_dtype(n) == pd.Categorical(np.arange(n)).codes.dtype


def test_as_text_of_a_mixed_object_column_is_astype_str() -> None:
    """An object column holding numbers and text is not the engine's string array: it is
    converted as ``astype(str)`` does (second method: pandas)."""
    s = pd.Series([1, "a", 2.5], dtype=object)
    assert list(R._as_text(s)) == list(s.astype(str)) == ["1", "a", "2.5"]
