"""Rules engine: verdicts, standards, deadlines and reasons from the rule catalog.

The catalog (``layers/data/rules.toml`` and its parts, loaded by :func:`layers.catalog.rules`)
states each rule's conditions as data. This module evaluates them column-wise, never row by
row:

* each rule is evaluated on the rows that can match it only: the rows of its industries (and,
  for unit rules, of its unit types) come from a per-field group index, and every further
  predicate tests just the surviving rows (a loop over rules and predicates, never over rows);
* matched rules are packed into integer bitmasks per row; output strings are built once per
  *unique* bitmask and mapped back, so a million rows cost little more than the masks;
* ``scope = "unit"`` rules run on the equipment units (3 per enterprise is typical); their
  bits are OR-ed into their enterprise's, the enterprise verdict is the strongest of its own
  rules and its units', and its reasons end with the units they concern, each with its
  verdict and citations ("涉及设备：2号高炉（关停退出〔表5 第1项(1)〕）"), also the ``units``
  column (grouped string joins in C loops).

Semantics of a predicate ``{field, op, value}``: a field absent from the frame, or a missing
value (NaN/None/NaT/NA) in a row, makes the predicate false for that row -- unknown data never
triggers a rule, and never exempts from one (``unless``). ``is_empty`` means a known empty
string. Order ops compare exactly (``le 400`` holds at 400, ``lt 3`` does not hold at 3);
values parsed with units are converted exactly (decimal arithmetic), so a boundary written as
"1760毫米" is 1.76 m. ``@as_of`` is the evaluation date.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd

from geo.schema import LIST_SEP, REASON_SEP, RULES_COLUMNS, TEXT_DTYPE, UNIT_COLUMNS
from layers.catalog import (
    AS_OF,
    AllOf,
    AnyOf,
    Condition,
    Predicate,
    Rule,
    RuleCatalog,
    industries,
    read_data_toml,
    unit_types,
)
from layers.catalog import rules as default_rules

__all__ = [
    "RulesResult",
    "apply_rules",
    "evaluate_rules",
    "rule_masks",
    "rules_for_point",
    "REVIEW_CODES",
]

logger = logging.getLogger(__name__)

FrameT = TypeVar("FrameT", bound=pd.DataFrame)

_STR = TEXT_DTYPE
_NAT: Final = np.iinfo(np.int64).min
#: Rows per chunk when scanning a column for a known value (:meth:`_Columns.never_known`).
_SCAN: Final = 1 << 15
_EPOCH: Final = date(1970, 1, 1)
#: Order operators: one table for every evaluation path (numbers, dates, text).
_ORDER: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}
#: What ``deadline_status`` says when the strongest verdict asks for action but gives no date.
_ACTION_VERDICTS: Final = ("shutdown", "rectify")


def _review_codes() -> tuple[str, ...]:
    return tuple(read_data_toml("labels.toml").get("review_reasons", {}))


#: Review reason codes rules may write (labels.toml [review_reasons]).
REVIEW_CODES: Final = ("exemption_unverified", "fact_unverified", "limit_value_needed",
                       "recheck_missing", "approval_required", "unit_data_issue")


# --------------------------------------------------------------------------- value tests


def _is_missing(u: Any) -> bool:
    return u is None or (isinstance(u, float) and math.isnan(u)) or u is pd.NA or u is pd.NaT


def _as_number(u: Any) -> float | None:
    if isinstance(u, (bool, np.bool_)):
        return None
    try:
        f = float(u)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _as_date(u: Any) -> date | None:
    if isinstance(u, pd.Timestamp):
        return u.date()
    if isinstance(u, date):
        return u
    if isinstance(u, (bool, np.bool_, int, float, np.number)):
        return None
    try:
        return date.fromisoformat(str(u).strip()[:10])
    except ValueError:
        return None


def _norm_word(text: str) -> str:
    """One string in the form ``contains`` compares (as :func:`geo.equipment.normalise_text`)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[·•・]", ".", re.sub(r"\s+", "", folded))


@functools.lru_cache(maxsize=1024)
def _needles(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_norm_word(w) for w in words)


def _test_value(u: Any, op: str, value: Any) -> bool:
    """Evaluate a predicate on one distinct (non-missing) value.

    Order ops use :data:`_ORDER` (the same table as the array paths): ``le`` holds at the
    boundary, ``lt`` does not; booleans are never numbers; an unknown op raises.
    """
    if op == "is_empty":
        return isinstance(u, str) and u.strip() == ""
    if op == "not_empty":
        return not (isinstance(u, str) and u.strip() == "")
    if op == "contains":
        if not isinstance(u, str):
            return False
        text = _norm_word(u)
        return any(w in text for w in _needles(tuple(value)))
    if op in ("eq", "ne", "in", "not_in"):
        values = value if isinstance(value, list) else [value]
        hit = any(_equal(u, v) for v in values)
        return hit if op in ("eq", "in") else not hit
    compare = _ORDER.get(op)
    if compare is None:
        raise ValueError(f"unknown predicate op {op!r}; expected one of {sorted(_ORDER)}")
    left: Any
    right: Any
    if isinstance(value, date):
        left, right = _as_date(u), value
    else:
        left, right = _as_number(u), float(value)
    if left is None:
        return False
    return bool(compare(left, right))


def _equal(u: Any, v: Any) -> bool:
    """``eq`` on one value: booleans equal booleans only (a flag is never ``eq 1``, as the
    order ops never take it for a number), numbers compare as floats, dates as dates, text
    stripped."""
    if isinstance(v, (bool, np.bool_)) or isinstance(u, (bool, np.bool_)):
        both = isinstance(u, (bool, np.bool_)) and isinstance(v, (bool, np.bool_))
        return both and bool(u) == bool(v)
    if isinstance(v, (int, float)):
        f = _as_number(u)
        return f is not None and f == float(v)
    if isinstance(v, date):
        return _as_date(u) == v
    return isinstance(u, str) and u.strip() == v


# --------------------------------------------------------------------------- columns


class _Columns:
    """Per-field cache of the encodings predicates are evaluated on.

    Numeric columns become float arrays (NaN = missing), datetime columns int64 days
    (``_NAT`` = missing); all others are factorised once into ``codes`` (-1 = missing) and
    ``uniques`` so that value tests run on the few distinct values only. A unit frame has a
    ``parent`` (the enterprise frame) whose fields it reads through ``parent_idx``.
    """

    def __init__(
        self, df: pd.DataFrame, *, parent: _Columns | None = None,
        parent_idx: np.ndarray | None = None,
    ) -> None:
        self.df = df
        self.n = len(df)
        self.parent = parent
        self.parent_idx = parent_idx
        self._numeric: dict[str, np.ndarray | None] = {}
        self._days: dict[str, np.ndarray | None] = {}
        self._factor: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._filled: dict[str, np.ndarray | None] = {}
        self._unknown: dict[str, bool] = {}
        self._partial: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._parent_runs: tuple[np.ndarray, np.ndarray] | tuple[()] | None = None
        self._parent_seen: set[str] = set()
        self._names = frozenset(df.columns)

    def _own(self, field: str) -> bool:
        return field in self._names

    def has(self, field: str) -> bool:
        if field == "unit_text" and self.parent is not None:
            return True  # virtual, built from its parts for the rows that need it
        return self._own(field) or (self.parent is not None and self.parent.has(field))

    def numeric(self, field: str) -> np.ndarray | None:
        if field not in self._numeric:
            if not self._own(field):
                arr = self.parent.numeric(field) if self.parent is not None else None
                self._numeric[field] = None if arr is None else arr[self.parent_idx]
            else:
                s = self.df[field]
                ok = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                self._numeric[field] = (
                    s.to_numpy(dtype="float64", na_value=np.nan) if ok else None
                )
        return self._numeric[field]

    def days(self, field: str) -> np.ndarray | None:
        if field not in self._days:
            if not self._own(field):
                arr = self.parent.days(field) if self.parent is not None else None
                self._days[field] = None if arr is None else arr[self.parent_idx]
            else:
                s = self.df[field]
                if pd.api.types.is_datetime64_any_dtype(s):
                    d = s.to_numpy(dtype="datetime64[D]")
                    out = d.astype(np.int64)
                    out[np.isnat(d)] = _NAT
                    self._days[field] = out
                else:
                    self._days[field] = None
        return self._days[field]

    def factor(self, field: str) -> tuple[np.ndarray, np.ndarray]:
        if field not in self._factor:
            if not self._own(field):
                assert self.parent is not None
                codes, uniques = self.parent.factor(field)
                self._factor[field] = (codes[self.parent_idx], uniques)
            else:
                self._factor[field] = _factorize(self.df[field])
        return self._factor[field]

    def filled(self, field: str) -> np.ndarray | None:
        """Own text column: rows holding a non-empty string (one pass, no hashing); None
        when the column is not plain text."""
        if field not in self._filled:
            s = self.df[field]
            if s.dtype != object:
                self._filled[field] = None
            else:
                self._filled[field] = _not_blank_objects(s.to_numpy())
        return self._filled[field]

    def blank_text(self, field: str) -> bool:
        """Text that is blank or missing in every row (no ``contains`` holds): an own plain
        text column with no filled row, or the virtual ``unit_text`` whose own parts all
        are (its other parts are never tested)."""
        if field == "unit_text" and not self._own(field) and self.parent is not None:
            from geo.equipment import UNIT_TEXT_PARTS

            return all(not self._own(p) or self._unfilled(p) for p in UNIT_TEXT_PARTS)
        return self._own(field) and self._unfilled(field)

    def _unfilled(self, field: str) -> bool:
        filled = self.filled(field)
        return filled is not None and not filled.any()

    def never_known(self, field: str) -> bool:
        """A numeric or date field whose every value is missing (no predicate on it holds)."""
        if field not in self._unknown:
            self._unknown[field] = self._never_known(field)
        return self._unknown[field]

    def _never_known(self, field: str) -> bool:
        if not self.has(field) or field == "unit_text":
            return not self.has(field)
        arr = self.numeric(field)
        if arr is not None:  # chunks: a known value ends the scan (most columns have one early)
            return all(np.isnan(arr[k:k + _SCAN]).all() for k in range(0, len(arr), _SCAN))
        d = self.days(field)
        if d is not None:
            return all((d[k:k + _SCAN] == _NAT).all() for k in range(0, len(d), _SCAN))
        s = self.df[field] if self._own(field) else None
        if s is not None and isinstance(s.dtype, pd.BooleanDtype):
            return bool(s.array._mask.all())  # noqa: SLF001
        return False

    def codes_at(self, field: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes of the rows ``idx`` and the distinct values they index (-1 = missing).

        In a unit frame, when the field is not encoded yet and ``idx`` is a small share of
        the rows, only those rows are factorised (a rule's candidates among millions of
        units); parent fields are read at the parent rows of ``idx``.
        """
        if field in self._factor:
            codes, uniques = self._factor[field]
            return codes[idx], uniques
        if not self._own(field):
            assert self.parent is not None and self.parent_idx is not None
            parent = self.parent
            if (field not in parent._factor and 2 * len(idx) < parent.n
                    and parent.df[field].dtype != "category"):
                # a few units' enterprises (the boilers' city): not the whole column
                return self._partial_codes(
                    field, idx, lambda: parent.df[field].take(self.parent_idx[idx]))
            if field not in self._parent_seen:  # once: through the parent rows
                self._parent_seen.add(field)
                return parent.codes_at(field, self.parent_idx[idx])
            # asked again (the industry of each unit rule's candidates): the codes per
            # row once, then one narrow gather per call instead of two
            codes, uniques = self.factor(field)
            return codes[idx], uniques
        s = self.df[field]
        if (s.dtype == object or (isinstance(s.dtype, pd.StringDtype)
                                  and s.dtype.storage == "python")) and (
                4 * len(idx) < self.n if self.parent is not None else 64 * len(idx) < self.n):
            # a small share of the units (a rule's candidates), or a tiny one of the
            # enterprises (whose text columns other rules usually read whole): those rows only
            return self._partial_codes(
                field, idx, lambda: pd.Series(s.to_numpy(dtype=object)[idx], dtype=object))
        codes, uniques = self.factor(field)
        return codes[idx], uniques

    def _partial_codes(
        self, field: str, idx: np.ndarray, rows: Callable[[], pd.Series]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_factorize` of ``rows()`` (the field at ``idx``); the last encoding per
        field is kept, since rules seeded alike (the boiler rules, one industry's rules) test
        the same rows one after the other."""
        last = self._partial.get(field)
        if last is not None and np.array_equal(last[0], idx):
            return last[1], last[2]
        codes, uniques = _factorize(rows())
        self._partial[field] = (idx.copy(), codes, uniques)
        return codes, uniques

    def missing(self, field: str, idx: np.ndarray) -> np.ndarray:
        """Rows of ``idx`` whose value is missing (absent field, NaN/NA/NaT or '')."""
        if not self.has(field):
            return np.ones(len(idx), dtype=bool)
        arr = self.numeric(field)
        if arr is not None:
            return np.isnan(arr[idx])
        d = self.days(field)
        if d is not None:
            return d[idx] == _NAT
        codes, uniques = self.codes_at(field, idx)
        blank = np.fromiter(
            (_is_missing(u) or (isinstance(u, str) and not u.strip()) for u in uniques),
            dtype=bool, count=len(uniques),
        )
        return np.append(blank, True)[codes]

    def flag_rows(self, field: str, values: Sequence[Any]) -> np.ndarray:
        """Sorted rows of an own nullable boolean column equal to one of ``values`` (as
        :meth:`rows_where`: a flag equals booleans only, a missing value nothing)."""
        arr = self.df[field].array
        known = ~arr._mask  # noqa: SLF001
        wanted = {bool(v) for v in values if isinstance(v, (bool, np.bool_))}
        if wanted == {True, False}:
            return np.flatnonzero(known)
        if not wanted:
            return np.empty(0, dtype=np.int64)
        data = arr._data  # noqa: SLF001
        return np.flatnonzero(known & (data if True in wanted else ~data))

    def uniques(self, field: str) -> np.ndarray:
        """The distinct values of a field (a parent field's without reading it per row)."""
        if not self._own(field) and self.parent is not None:
            return self.parent.uniques(field)
        return self.factor(field)[1]

    def _by_parent(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(first row, row count) per parent row when the rows are listed by parent (units
        by enterprise, as joined); None otherwise."""
        if self._parent_runs is None:
            p = self.parent_idx
            assert self.parent is not None and p is not None
            if len(p) > 1 and (p[1:] < p[:-1]).any():
                self._parent_runs = ()
            else:
                counts = np.bincount(p, minlength=self.parent.n)
                self._parent_runs = (np.cumsum(counts) - counts, counts)
        return self._parent_runs or None

    def rows_where(self, field: str, values: Sequence[Any]) -> np.ndarray:
        """Sorted row numbers whose value equals one of ``values`` (group index lookup)."""
        if not self.has(field):
            return np.empty(0, dtype=np.int64)
        if not self._own(field) and self.parent is not None and (runs := self._by_parent()):
            # a parent field (units by their enterprise's industry): the parent's rows, then
            # their rows' runs -- no pass over this frame's rows
            first, count = runs[0], runs[1]
            prow = self.parent.rows_where(field, values)
            lens, starts = count[prow], first[prow]
            offsets = np.cumsum(lens) - lens
            return (np.arange(int(lens.sum()), dtype=np.int64)
                    + np.repeat(starts - offsets, lens)).astype(np.int64, copy=False)
        codes, uniques = self.factor(field)
        if field not in self._groups:
            # radix sort for 8/16-bit codes (one pass for 8); group bounds from the counts
            small = codes.astype(np.int8, copy=False) if len(uniques) < 127 else \
                codes.astype(np.int16, copy=False) if len(uniques) < 30000 else codes
            order = np.argsort(small, kind="stable")
            bounds = np.r_[0, np.cumsum(np.bincount(codes + 1, minlength=len(uniques) + 1))]
            self._groups[field] = (order, bounds)
        order, bounds = self._groups[field]
        wanted = [k for k, u in enumerate(uniques)
                  if not _is_missing(u) and any(_equal(u, v) for v in values)]
        if not wanted:
            return np.empty(0, dtype=np.int64)
        parts = [order[bounds[k + 1]:bounds[k + 2]] for k in wanted]
        size = sum(len(p) for p in parts)
        if len(parts) == 1:  # a stable argsort leaves each group in row order
            rows = parts[0].astype(np.int64, copy=False).view()  # the cached index itself:
            rows.flags.writeable = False  # read-only (no copy per rule)
            return rows
        if size > self.n // 8:  # a large share: a mask is O(n), no sort
            lut = np.zeros(len(uniques) + 1, dtype=bool)
            lut[wanted] = True
            return np.flatnonzero(lut[codes]).astype(np.int64)
        return np.sort(np.concatenate(parts)).astype(np.int64)


def _factorize(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 = missing) and distinct values; categoricals and nullable booleans without
    hashing their rows, their codes kept narrow (8-bit for a unit type: 1/8 of the memory
    traffic of every gather)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.array.codes, np.asarray(s.cat.categories, dtype=object)
    if isinstance(s.dtype, pd.BooleanDtype):
        arr = s.array
        codes = np.where(arr._mask, np.int8(-1), arr._data.view(np.int8))  # noqa: SLF001
        return codes, np.asarray([False, True], dtype=object)
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "python":
        # the strings' own object array: pandas' StringArray.factorize costs ~2.5x more
        s = s.to_numpy(dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return np.asarray(codes).astype(_code_dtype(len(uniques)), copy=False), \
        np.asarray(uniques, dtype=object)


def _categorical(
    codes: np.ndarray, texts: Sequence[str], *, at: np.ndarray | None = None, n: int = 0,
    fill: int = 0,
) -> pd.Categorical:
    """A text column as a categorical: ``texts`` per code (repeats allowed), no row strings.

    With ``at``, ``codes`` are those of the sorted rows ``at`` of ``n`` rows and every other
    row has the code ``fill`` (units no rule matched: one fill, one scatter)."""
    cat_codes, categories = pd.factorize(np.asarray(list(texts) or [""], dtype=object))
    # the codes in pandas' own width, checked on the few distinct ones: no pass over the rows
    lut = np.asarray(cat_codes).astype(_code_dtype(len(categories)))
    if at is None or len(at) == n:
        full = lut[codes]
    else:
        full = np.full(n, lut[fill], dtype=lut.dtype)
        full[at] = lut[codes]
    return pd.Categorical.from_codes(full, categories=list(categories), validate=False)


def _code_dtype(n: int) -> type[np.signedinteger[Any]]:
    """The integer type pandas stores the codes of ``n`` categories in."""
    for dtype in (np.int8, np.int16, np.int32):
        if n < np.iinfo(dtype).max:
            return dtype
    return np.int64


def _not_blank_objects(arr: np.ndarray) -> np.ndarray:
    """Rows of an object array holding a value other than '' and not missing.

    One comparison per row (no hashing, ~4x faster than factorising); the rows that differ
    from '' (few, in text columns that are mostly blank) are then tested for missing values.
    """
    try:
        out = np.asarray(arr != "", dtype=bool)
    except TypeError:  # pd.NA (its comparison has no truth value)
        out = pd.notna(arr)
    if out.shape != arr.shape:  # numpy could not compare element-wise
        out = pd.notna(arr)
    out[out] = pd.notna(arr[out]) & np.asarray(arr[out] != "", dtype=bool)
    return out


def _non_blank(s: pd.Series) -> np.ndarray:
    """Rows holding a value other than '' (tested once per distinct value)."""
    if s.dtype == object:
        return _not_blank_objects(s.to_numpy())
    codes, uniques = _factorize(s)
    keep = np.fromiter((not _is_missing(u) and u != "" for u in uniques), dtype=bool,
                       count=len(uniques))
    return np.append(keep, False)[codes]


def _row_positions(rows: pd.Series, wanted: pd.Series) -> np.ndarray:
    """Position of each ``wanted`` value in ``rows`` (-1 when absent), as
    ``Index.get_indexer``; without hashing when ``rows`` are consecutive integers."""
    r, w = rows.to_numpy(), wanted.to_numpy()
    if (len(r) and r.dtype.kind in "iu" and w.dtype.kind in "iu"
            and (np.diff(r) == 1).all()):
        pos = np.subtract(w, int(r[0]), dtype=np.int64)
        bad = pos.view(np.uint64) >= len(r)  # negatives wrap to huge: one comparison
        if bad.any():
            pos[bad] = -1
        return pos
    return pd.Index(rows).get_indexer(wanted)


def _days_of(value: date) -> int:
    return (value - _EPOCH).days


def _predicate_mask(cols: _Columns, p: Predicate, idx: np.ndarray, as_of: date) -> np.ndarray:
    """The predicate on the rows ``idx`` (missing values and absent fields are false)."""
    if not cols.has(p.field):
        return np.zeros(len(idx), dtype=bool)
    op = p.op
    v: Any = as_of if p.value == AS_OF else p.value
    arr = cols.numeric(p.field)
    if arr is not None and not isinstance(v, date) and op != "contains":
        x = arr[idx]
        if op in _ORDER:  # NaN (missing) compares false: no validity mask needed
            with np.errstate(invalid="ignore"):
                return _ORDER[op](x, float(v))
        valid = ~np.isnan(x)
        if op == "is_empty":
            return np.zeros(len(idx), dtype=bool)
        if op == "not_empty":
            return valid
        if op in ("in", "not_in", "eq", "ne"):
            vals = v if isinstance(v, list) else [v]
            nums = [float(y) for y in vals if isinstance(y, (int, float)) and not isinstance(y, bool)]
            hit = np.isin(x, nums) if nums else np.zeros(len(idx), dtype=bool)
            return (hit if op in ("in", "eq") else ~hit) & valid
        with np.errstate(invalid="ignore"):
            return _ORDER[op](x, float(v)) & valid
    if op == "contains":
        if p.field == "unit_text" and not cols._own("unit_text"):
            from geo.equipment import UNIT_TEXT_PARTS

            out = np.zeros(len(idx), dtype=bool)
            for part in UNIT_TEXT_PARTS:  # the text contains a word iff one part does
                if cols._own(part) and not out.all():
                    filled = cols.filled(part)
                    rest = ~out if filled is None else ~out & filled[idx]
                    out[rest] = _contains(cols, part, idx[rest], tuple(v))
            return out
        return _contains(cols, p.field, idx, tuple(v))
    d = cols.days(p.field)
    if d is not None:
        x = d[idx]
        valid = x != _NAT
        if op == "not_empty":
            return valid
        if not isinstance(v, (date, list)) or op in ("is_empty", "contains"):
            return valid if op in ("ne", "not_in") else np.zeros(len(idx), dtype=bool)
        if op in ("in", "not_in", "eq", "ne"):
            vals = v if isinstance(v, list) else [v]
            hit = np.isin(x, [_days_of(y) for y in vals if isinstance(y, date)])
            return (hit if op in ("in", "eq") else ~hit) & valid
        return _ORDER[op](x, _days_of(v)) & valid
    codes, uniques = cols.codes_at(p.field, idx)
    on_uniques = np.fromiter(
        (not _is_missing(u) and _test_value(u, op, v) for u in uniques),
        dtype=bool,
        count=len(uniques),
    )
    # code -1 (missing) picks the trailing False
    return np.append(on_uniques, False)[codes]


def _contains(cols: _Columns, field: str, idx: np.ndarray, words: tuple[str, ...]) -> np.ndarray:
    """Text of the rows ``idx`` contains one of ``words`` (normalised), tested once per
    distinct value of the column."""
    if not len(idx):
        return np.zeros(0, dtype=bool)
    codes, uniques = cols.codes_at(field, idx)
    needles = _needles(words)
    hit = np.fromiter(
        (isinstance(u, str) and any(w in _norm_word(u) for w in needles) for u in uniques),
        dtype=bool, count=len(uniques),
    )
    return np.append(hit, False)[codes]


def _condition_mask(cols: _Columns, cond: Condition, idx: np.ndarray, as_of: date) -> np.ndarray:
    if isinstance(cond, Predicate):
        return _predicate_mask(cols, cond, idx, as_of)
    if isinstance(cond, AnyOf):
        out = np.zeros(len(idx), dtype=bool)
        for c in cond.any:
            rest = ~out
            if not rest.any():
                break
            out[rest] |= _condition_mask(cols, c, idx[rest], as_of)
        return out
    assert isinstance(cond, AllOf)
    return np.isin(idx, _narrow(cols, cond.all, idx, as_of))


def _narrow(cols: _Columns, conds: Sequence[Condition], idx: np.ndarray, as_of: date) -> np.ndarray:
    """The rows of ``idx`` satisfying every condition (each tested on the survivors only)."""
    for c in conds:
        if not len(idx):
            break
        idx = idx[_condition_mask(cols, c, idx, as_of)]
    return idx


def _type_seed(rule: Rule) -> int | None:
    """Position in ``rule.when`` of a unit-type ``eq``/``in`` predicate (None when none).

    ``when`` is a conjunction, so any of its unit-type predicates can give the candidates:
    the rule is then tested on the units of those types only (never on all units)."""
    for k, c in enumerate(rule.when):
        if isinstance(c, Predicate) and c.field == "unit_type" and c.op in ("eq", "in"):
            return k
    return None


def _flag_seed(cols: _Columns, rule: Rule) -> int | None:
    """Position in ``rule.when`` of an ``eq``/``in`` predicate on a nullable boolean column
    of the frame (``energy_over_limit eq true``), whose rows come without a pass over the
    rows' codes (:meth:`_Columns.flag_rows`); None when none."""
    for k, c in enumerate(rule.when):
        if (isinstance(c, Predicate) and c.op in ("eq", "in") and cols._own(c.field)
                and isinstance(cols.df[c.field].dtype, pd.BooleanDtype)):
            return k
    return None


@functools.lru_cache(maxsize=256)
def _industry_predicate(allowed: tuple[str, ...]) -> Predicate:
    """``industry_id in allowed`` (built once per industry list: pydantic validation)."""
    return Predicate(field="industry_id", op="in", value=list(allowed))


def _seed_rows(
    cols: _Columns, rule: Rule, all_industries: Sequence[str]
) -> tuple[np.ndarray, list[Condition]]:
    """Candidate rows (the rule's industries, narrowed by a unit-type predicate of its
    ``when``) and the ``when`` conditions left to test on them."""
    allowed = list(all_industries) if "*" in rule.industries else list(rule.industries)
    k = _type_seed(rule)
    flag = None if k is not None else _flag_seed(cols, rule)
    if k is not None or flag is not None:
        first = rule.when[k if k is not None else flag]  # type: ignore[index]
        assert isinstance(first, Predicate)
        values = first.value if isinstance(first.value, list) else [first.value]
        rows = cols.rows_where("unit_type", values) if k is not None else \
            cols.flag_rows(first.field, values)
        industry = _industry_predicate(tuple(allowed))
        rest = [c for j, c in enumerate(rule.when) if j != (k if k is not None else flag)]
        return rows[_predicate_mask(cols, industry, rows, _EPOCH)], rest
    if "*" in rule.industries:
        _u = cols.uniques("industry_id")
        known = set(all_industries)
        return (cols.rows_where("industry_id", [u for u in _u if u in known])
                if len(_u) else np.empty(0, dtype=np.int64)), list(rule.when)
    return cols.rows_where("industry_id", allowed), list(rule.when)


def _match_rows(
    cols: _Columns, rule: Rule, all_industries: Sequence[str], as_of: date
) -> np.ndarray:
    """Sorted rows the rule applies to: industry, every ``when``, no ``unless``."""
    if any(_never_holds(cols, c) for c in rule.when):
        return np.empty(0, dtype=np.int64)  # e.g. a condition on an absent field
    seed, rest = _seed_rows(cols, rule, all_industries)
    rows = _narrow(cols, rest, seed, as_of)
    for cond in rule.unless:
        if not len(rows):
            break
        if not _never_holds(cols, cond):
            rows = rows[~_condition_mask(cols, cond, rows, as_of)]
    return rows


def _never_holds(cols: _Columns, cond: Condition) -> bool:
    """A condition no row satisfies, known without testing rows: a predicate on a field
    with no known value (:meth:`_Columns.never_known`) or ``contains`` (non-empty words) on
    text blank in every row (:meth:`_Columns.blank_text`); ``any`` of such conditions only,
    or ``all`` with one of them."""
    if isinstance(cond, Predicate):
        if cols.never_known(cond.field):
            return True
        return (cond.op == "contains" and all(_needles(tuple(cond.value)))
                and cols.blank_text(cond.field))
    if isinstance(cond, AnyOf):
        return all(_never_holds(cols, c) for c in cond.any)
    assert isinstance(cond, AllOf)
    return any(_never_holds(cols, c) for c in cond.all)


def _active_rules(catalog: RuleCatalog, as_of: date | None) -> list[Rule]:
    day = as_of or date.today()
    return [r for r in catalog.rules if r.effective <= day]


def rule_masks(
    df: pd.DataFrame, *, catalog: RuleCatalog | None = None, as_of: date | None = None
) -> dict[str, np.ndarray]:
    """Boolean mask per active enterprise-scope rule id (rules effective on ``as_of``).

    Parameters
    ----------
    df
        Frame with ``industry_id`` and whatever fields the rules test.
    catalog
        Rule catalog; defaults to the bundled one.
    as_of
        Evaluation date (default today); rules whose ``effective`` is later do not apply.
    """
    catalog = catalog or default_rules()
    day = as_of or date.today()
    cols = _Columns(df)
    all_ids = [i.id for i in industries()]
    out: dict[str, np.ndarray] = {}
    for r in _active_rules(catalog, day):
        if r.scope != "enterprise":
            continue
        mask = np.zeros(len(df), dtype=bool)
        mask[_match_rows(cols, r, all_ids, day)] = True
        out[r.id] = mask
    return out


# --------------------------------------------------------------------------- matching


@dataclass
class _Matches:
    """Matched rows per rule of one frame, and per-row aggregates."""

    rules: list[Rule]
    rows: list[np.ndarray]
    n: int

    def hit_words(self) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(rows some rule matched, :meth:`words` at those rows, each rule's rows as
        positions in them): no word per row of the frame (most rows match nothing)."""
        mask = np.zeros(self.n, dtype=bool)
        for rows in self.rows:
            mask[rows] = True
        hit = np.flatnonzero(mask)
        pos = _positions_in(hit, self.n, self.rows)
        words = np.zeros((max(1, math.ceil(len(self.rules) / 64)), len(hit)), dtype=np.uint64)
        for k, p in enumerate(pos):
            words[k // 64, p] |= np.uint64(1) << np.uint64(k % 64)
        return hit, words, pos

    def words(self) -> np.ndarray:
        n_words = max(1, math.ceil(len(self.rules) / 64))
        words = np.zeros((n_words, self.n), dtype=np.uint64)
        for k, rows in enumerate(self.rows):
            words[k // 64, rows] |= np.uint64(1) << np.uint64(k % 64)
        return words


def _match(cols: _Columns, active: Sequence[Rule], as_of: date) -> _Matches:
    all_ids = [i.id for i in industries()]
    return _Matches(
        rules=list(active),
        rows=[_match_rows(cols, r, all_ids, as_of) for r in active],
        n=cols.n,
    )


def _factorize_words(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row -> combination code, and the unique words (n_words x n_combos).

    Codes follow the rows' order of first appearance (:func:`_factorize_words_at`)."""
    hit, sub, none_code, uniq = _factorize_words_at(words)
    if len(hit) == words.shape[1]:  # every row hashed: the codes are the rows' already
        return sub, uniq
    codes = np.full(words.shape[1], none_code, dtype=np.int64)
    codes[hit] = sub
    return codes, uniq


def _factorize_words_at(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(rows some rule matched, their combination codes, the code of every other row, the
    unique words): :func:`_factorize_words` without a pass over the unmatched rows.

    Only rows some rule matched are hashed (most rows match none); words are factorised one
    at a time and their codes combined (no row sort). When most rows matched, all are hashed
    and returned."""
    n = words.shape[1]
    hit = np.flatnonzero(words.any(axis=0)) if words.shape[0] > 1 else np.flatnonzero(words[0])
    if 2 * len(hit) > n:  # most rows matched: hash them all
        codes, uniq = _factorize_rows(words)
        return np.arange(n), codes, 0, uniq
    return (hit, *_factorize_hit(words[:, hit], hit, n))


def _factorize_hit(
    words: np.ndarray, hit: np.ndarray, n: int
) -> tuple[np.ndarray, int, np.ndarray]:
    """:func:`_factorize_words_at` from the words of the rows ``hit`` only (sorted rows
    some rule matched, fewer than ``n``): their codes, the no-match code, the unique words."""
    if not len(hit):
        return np.zeros(0, dtype=np.int64), 0, np.zeros((words.shape[0], 1 if n else 0),
                                                        dtype=np.uint64)
    sub, uniq = _factorize_rows(words)
    gap = np.flatnonzero(hit != np.arange(len(hit)))
    none_first = int(gap[0]) if len(gap) else len(hit)  # the first row no rule matched
    # the no-match combination takes its place in the order of first appearance
    before = int(sub[:none_first].max()) + 1 if none_first else 0
    zero = np.zeros((words.shape[0], 1), dtype=words.dtype)
    return np.where(sub >= before, sub + 1, sub), before, \
        np.concatenate([uniq[:, :before], zero, uniq[:, before:]], axis=1)


def _factorize_fill(
    values: np.ndarray, at: np.ndarray, n: int, fill: Any
) -> tuple[np.ndarray, int, np.ndarray]:
    """``pd.factorize`` of a length-``n`` array that holds ``values`` at the sorted rows
    ``at`` and ``fill`` elsewhere, hashing ``values`` only.

    Returns the codes at ``at``, the code of the other rows (-1 when ``at`` is every row)
    and the distinct values in order of first appearance, as ``pd.factorize`` of the
    whole array gives them."""
    sub, uniq = pd.factorize(values)
    sub, uniq = np.asarray(sub, dtype=np.int64), np.asarray(uniq)
    if len(at) == n:
        return sub, -1, uniq
    gap = np.flatnonzero(at != np.arange(len(at)))
    first = int(gap[0]) if len(gap) else len(at)  # the first row holding `fill`
    before = int(sub[:first].max()) + 1 if first else 0  # values seen before that row
    seen = np.flatnonzero(uniq == fill)
    if len(seen) and seen[0] < before:
        return sub, int(seen[0]), uniq
    new = np.arange(len(uniq)) + (np.arange(len(uniq)) >= before)  # `fill` goes in at `before`
    rest = uniq
    if len(seen):  # `fill` first seen after that row: moved forward, those between shift
        f = int(seen[0])
        new[f + 1:] -= 1
        new[f] = before
        rest = np.delete(uniq, f)
    return new[sub], before, np.insert(rest, before, fill)


def _factorize_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniq = pd.factorize(words[0])
    codes, count = np.asarray(codes, dtype=np.int64), len(uniq)
    if words.shape[0] == 1:  # the distinct words are pandas' uniques
        return codes, np.asarray(uniq, dtype=words.dtype).reshape(1, -1)
    first = np.zeros(0, dtype=np.int64)
    for w in range(1, words.shape[0]):
        c, u = pd.factorize(words[w])
        codes, first = _factorize_small(codes * len(u) + np.asarray(c, dtype=np.int64),
                                        count * len(u))
        count = len(first)
    return codes, words[:, first]  # a row of each combination


def _factorize_small(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(keys)[0]`` (codes in order of first appearance) and the first row of
    each code, for integer keys in ``[0, size)``: without hashing when ``size`` is small
    (a table of each key's first row)."""
    if size > 4 * len(keys) + 4096:
        codes, uniq = pd.factorize(keys)
        codes = np.asarray(codes, dtype=np.int64)
        first = np.zeros(len(uniq), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        return codes, first
    first = np.full(size, len(keys), dtype=np.int64)
    first[keys[::-1]] = np.arange(len(keys))[::-1]  # the first row of each key
    seen = np.flatnonzero(first < len(keys))
    order = np.argsort(first[seen])
    rank = np.empty(size, dtype=np.int64)
    rank[seen[order]] = np.arange(len(seen))
    return rank[keys], first[seen[order]]


def _combo_ranks(
    combos: list[list[int]], rules: Sequence[Rule], rank_of: Mapping[str, int], default_rank: int
) -> np.ndarray:
    """Per rule combination, the strongest (lowest) verdict rank of its rules and the
    default verdict's: a row's rank is then one lookup by its combination code."""
    return np.asarray([min([default_rank, *(rank_of[rules[i].verdict] for i in c)])
                       for c in combos], dtype=np.int64)


def _combo_deadlines(
    combos: list[list[int]], rules: Sequence[Rule], crank: np.ndarray,
    rank_of: Mapping[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per combination (``crank``: its verdict rank): immediate, the earliest fixed
    deadline (days; int64 max when none) and undetermined, from its rules of that rank
    whose deadline does not depend on the row (immediate, a date, none for an action
    verdict). Deadlines read from a field are left to the rows."""
    imm = np.zeros(len(combos), dtype=bool)
    days = np.full(len(combos), np.iinfo(np.int64).max, dtype=np.int64)
    und = np.zeros(len(combos), dtype=bool)
    for k, combo in enumerate(combos):
        for rule in (rules[i] for i in combo):
            if rank_of[rule.verdict] != crank[k]:
                continue
            if rule.immediate:
                imm[k] = True
            elif rule.deadline_kind == "date":
                assert rule.deadline is not None
                days[k] = min(days[k], _days_of(rule.deadline))
            elif rule.deadline_kind == "none" and rule.verdict in _ACTION_VERDICTS:
                und[k] = True
    return imm, days, und


def _combo_rules(uniq_words: np.ndarray, n_rules: int) -> list[list[int]]:
    return [
        [i for i in range(n_rules) if (int(uniq_words[i // 64, k]) >> (i % 64)) & 1]
        for k in range(uniq_words.shape[1])
    ]


@dataclass
class _Deadlines:
    """Per-row aggregates of the rules that drive the row's verdict."""

    rank: np.ndarray        # strongest (lowest) verdict rank matched; default rank when none
    immediate: np.ndarray   # bool
    days: np.ndarray        # earliest dated deadline (days since epoch), _NAT when none
    undetermined: np.ndarray
    review: np.ndarray      # bitmask of review codes

    @classmethod
    def empty(cls, n: int, default_rank: int) -> _Deadlines:
        return cls(
            rank=np.full(n, default_rank, dtype=np.int64),
            immediate=np.zeros(n, dtype=bool),
            days=np.full(n, np.iinfo(np.int64).max, dtype=np.int64),
            undetermined=np.zeros(n, dtype=bool),
            review=np.zeros(n, dtype=np.int64),
        )

    def status_codes(self, as_of: date) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
        """(deadline codes, deadline texts, status codes, status texts) per row."""
        none = np.iinfo(np.int64).max
        dated = (self.days != none) & ~self.immediate
        day = _days_of(as_of)
        code = np.zeros(len(self.rank), dtype=np.int64)
        code[self.undetermined] = 1
        code[dated & (self.days >= day)] = 2
        code[dated & (self.days < day)] = 3
        code[self.immediate] = 4
        dcodes = np.zeros(len(self.rank), dtype=np.int64)
        at = np.flatnonzero(dated)
        names = [""]
        if len(at):
            c, u = pd.factorize(self.days[at])
            dcodes[at] = np.asarray(c) + 1
            names += [str(np.datetime64(int(d), "D")) for d in u]
        return dcodes, names, code, ["", "undetermined", "pending", "overdue", "immediate"]

    def status(self, as_of: date) -> tuple[Any, Any]:
        """``deadline`` (ISO text or '') and ``deadline_status`` text columns per row: ''
        everywhere, then the few distinct texts put at the rows they concern (strings only
        for the distinct dates)."""
        none = np.iinfo(np.int64).max
        at = np.flatnonzero((self.days != none) & ~self.immediate)  # dated rows
        days = self.days[at]
        status = _blank_texts(len(self.rank))
        status[self.undetermined] = "undetermined"
        status[at] = np.asarray(["pending", "overdue"], dtype=object)[
            (days < _days_of(as_of)).view(np.int8)]
        status[self.immediate] = "immediate"
        deadline = _blank_texts(len(self.rank))
        if len(at):
            sub, uniq = pd.factorize(days)
            names = np.asarray([str(np.datetime64(int(d), "D")) for d in uniq], dtype=object)
            deadline[at] = names[np.asarray(sub)]
        return _built_str(deadline), _built_str(status)


def _blank_texts(n: int) -> np.ndarray:
    """An object array of ``n`` references to one '' (``np.full`` is ~4x slower)."""
    out = np.empty(n, dtype=object)
    out[:] = ""
    return out


def _rule_deadline_rows(
    cols: _Columns, rule: Rule, rows: np.ndarray, action: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(deadline days per matched row or None, undetermined flags or None)."""
    kind = rule.deadline_kind
    if kind == "date":
        assert rule.deadline is not None
        return np.full(len(rows), _days_of(rule.deadline), dtype=np.int64), None
    if kind == "field":
        assert rule.deadline_field is not None
        d = cols.days(rule.deadline_field)
        vals = d[rows] if d is not None else np.full(len(rows), _NAT, dtype=np.int64)
        return np.where(vals == _NAT, np.iinfo(np.int64).max, vals), vals == _NAT
    if kind == "none" and action:
        return None, np.ones(len(rows), dtype=bool)
    return None, None


def _review_rows(cols: _Columns, rule: Rule, rows: np.ndarray) -> np.ndarray:
    """Matched rows the rule flags for review."""
    if rule.review_code is None or not len(rows):
        return np.empty(0, dtype=np.int64)
    if not rule.review_if_missing:
        return rows
    miss = np.zeros(len(rows), dtype=bool)
    for f in rule.review_if_missing:
        miss |= cols.missing(f, rows)
    return rows[miss]


def _aggregate(
    events: Sequence[tuple[Rule, np.ndarray, np.ndarray]],
    cols_of: Callable[[Rule], _Columns],
    n: int,
    rank_of: Mapping[str, int],
    default_rank: int,
    review_bit: Mapping[str, int],
    review_rows: dict[int, np.ndarray] | None = None,
    combo: tuple[np.ndarray, list[list[int]]] | None = None,
) -> _Deadlines:
    """Verdict rank, deadlines and review bits per target row.

    ``events`` are (rule, source rows, target rows): for enterprise rules both are the same
    rows; for unit rules the source rows are units and the targets their enterprises.
    ``review_rows`` (by ``id(rule)``) keeps each rule's flagged source rows for the next
    aggregation of the same matches (units, then their enterprises). ``combo`` (the
    combination code of each target row, and the combinations as positions in ``events``)
    gives the rank, ``immediate``, date and undetermined deadlines per combination, looked
    up per row; only deadlines read from a field are then computed per row.
    """
    if combo is not None:
        codes, combos = combo
        rules = [rule for rule, _src, _tgt in events]
        crank = _combo_ranks(combos, rules, rank_of, default_rank)
        imm, days, und = _combo_deadlines(combos, rules, crank, rank_of)
        agg = _Deadlines(rank=crank[codes], immediate=imm[codes], days=days[codes],
                         undetermined=und[codes], review=np.zeros(n, dtype=np.int64))
    else:
        agg = _Deadlines.empty(n, default_rank)
        for rule, _src, tgt in events:  # one value per rule: repeated targets need no .at
            agg.rank[tgt] = np.minimum(agg.rank[tgt], rank_of[rule.verdict])
    kept = {} if review_rows is None else review_rows
    for rule, src, tgt in events:
        cols = cols_of(rule)
        bits = kept.get(id(rule))
        if bits is None:
            bits = kept[id(rule)] = _review_rows(cols, rule, src)
        if len(bits):
            pos = np.searchsorted(src, bits)
            t = tgt[pos]
            agg.review[t] = agg.review[t] | (1 << review_bit[rule.review_code or ""])
        if combo is not None and (rule.immediate or rule.deadline_kind != "field"):
            continue  # looked up by combination above
        r = rank_of[rule.verdict]
        drive = agg.rank[tgt] == r
        if not drive.any():
            continue
        t = tgt[drive]
        if rule.immediate:
            agg.immediate[t] = True
            continue
        days, undetermined = _rule_deadline_rows(cols, rule, src[drive], rule.verdict in _ACTION_VERDICTS)
        if days is not None:
            np.minimum.at(agg.days, t, days)
        if undetermined is not None and undetermined.any():
            agg.undetermined[t[undetermined]] = True
    return agg


# --------------------------------------------------------------------------- strings


def _group_join(
    groups: np.ndarray, heads: np.ndarray | Callable[[np.ndarray], np.ndarray],
    tails: np.ndarray, tail_codes: np.ndarray, sep: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Join the texts ``heads[i] + tails[tail_codes[i]]`` with ``sep`` within runs of equal
    (sorted) ``groups``: (group keys, joined texts).

    The separator is put on the few ``tails`` (a second table, ``tail + sep``, for every
    text but a group's last), so each text costs one concatenation and the grouped join
    (``np.add.reduceat``) one more per further text of its group. ``heads`` may be a
    function of the rows' tails that returns the concatenated texts (:func:`_labelled`)."""
    if not len(groups):
        return groups, np.empty(0, dtype=object)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    table = np.asarray(tails, dtype=object)
    table = np.concatenate([table, np.add(table, sep)])
    codes = np.asarray(tail_codes, dtype=np.int64) + len(tails)
    codes[np.r_[starts[1:] - 1, len(groups) - 1]] -= len(tails)  # a group's last: no sep
    pieces = heads(table[codes]) if callable(heads) else \
        np.add(np.asarray(heads, dtype=object), table[codes])
    return groups[starts], np.add.reduceat(pieces, starts)


@dataclass
class _ComboText:
    verdict: list[str]
    standards: list[str]
    rule_ids: list[str]
    reasons: list[str]
    measures: list[str]


def _combo_text(
    combos: list[list[int]], rules: Sequence[Rule], catalog: RuleCatalog
) -> _ComboText:
    rank = {v.id: v.rank for v in catalog.verdicts}
    measures = {m.id: m for m in catalog.measures}
    out = _ComboText([], [], [], [], [])
    for combo in combos:
        matched = sorted((rules[i] for i in combo), key=lambda r: rank[r.verdict])
        out.verdict.append(matched[0].verdict if matched else catalog.default_verdict)
        out.standards.append(LIST_SEP.join(dict.fromkeys(s for r in matched for s in r.standards)))
        out.rule_ids.append(LIST_SEP.join(r.id for r in matched))
        ms = list(dict.fromkeys(m for r in matched for m in r.measures))
        out.measures.append(LIST_SEP.join(ms))
        out.reasons.append(REASON_SEP.join(
            [r.reason_zh for r in matched] + [measures[m].reason_zh for m in ms]
        ))
    return out


def _text(values: np.ndarray) -> Any:
    """A text column from an object array of few distinct strings (factorise + take)."""
    codes, uniq = pd.factorize(np.asarray(values, dtype=object))
    return pd.array(list(uniq), dtype=_STR).take(np.asarray(codes)) if len(values) \
        else pd.array([], dtype=_STR)


def _as_text(s: pd.Series) -> Any:
    """``s.astype(str)`` as values: the object array itself when it holds strings only (the
    engine's own text columns), so that no Arrow copy of it is made to factorise it."""
    if s.dtype == object or (isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "python"):
        vals = s.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(vals, skipna=False) in ("string", "empty"):
            return vals
    return s.astype(str)


def _review_text(existing: pd.Series | None, bits: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge rule review bits into existing ``review_reasons`` codes; (needs_review, reasons)."""
    codes = REVIEW_CODES
    if existing is None:
        ecodes, euniq = np.zeros(n, dtype=np.int64), np.asarray([""], dtype=object)
    else:
        ec, eu = pd.factorize(_as_text(existing.fillna("")))
        ecodes, euniq = np.asarray(ec), np.asarray(eu, dtype=object)
    key = ecodes * (1 << len(codes)) + bits
    kcodes, kuniq = pd.factorize(key)
    texts = []
    for k in kuniq:
        base = [c for c in str(euniq[int(k) >> len(codes)]).split(LIST_SEP) if c]
        extra = [c for i, c in enumerate(codes) if (int(k) >> i) & 1 and c not in base]
        texts.append(LIST_SEP.join(base + extra))
    reasons = np.asarray(texts, dtype=object)[np.asarray(kcodes)]
    return reasons != "", reasons


# --------------------------------------------------------------------------- unit results


@dataclass
class _UnitResults:
    """The unit result columns, and what the enterprises' unit texts are made of."""

    columns: dict[str, Any]  # verdict, rule_ids, reasons, deadline, ..., enterprise_index
    rows: np.ndarray  # the units that matched a rule or have a data issue (sorted)
    codes: np.ndarray  # their rule-combination codes (into combos)
    combos: list[list[int]]
    text: _ComboText
    issue: np.ndarray  # per unit: data_issues given
    review_rows: dict[int, np.ndarray]  # per unit rule (id): its matched units flagged for review


def _unit_results(
    um: _Matches, ucols: _Columns, units: pd.DataFrame, catalog: RuleCatalog, as_of: date,
    rank_of: Mapping[str, int], default_rank: int, review_bit: Mapping[str, int],
) -> _UnitResults:
    """Verdicts, deadlines and review codes of the units, computed on the units some rule
    matched or that have a data issue only: every other unit (most of them) gets the
    no-match values by one fill of its categorical codes."""
    n = len(units)
    hit, hwords, where = um.hit_words()
    if 2 * len(hit) > n:  # most units matched: all hashed (each unit its own position)
        hit, sub, none_code, uniq = _factorize_words_at(um.words())
        where = []
    else:
        sub, none_code, uniq = _factorize_hit(hwords, hit, n)
    combos = _combo_rules(uniq, len(um.rules))
    text = _combo_text(combos, um.rules, catalog)
    issue = _non_blank(units["data_issues"]) if "data_issues" in units \
        else np.zeros(n, dtype=bool)
    at = np.union1d(hit, np.flatnonzero(issue)) if issue.any() else hit
    codes = sub
    if len(at) != len(hit):
        codes = np.full(len(at), none_code, dtype=np.int64)
        codes[np.searchsorted(at, hit)] = sub
    if len(at) != len(hit) or not where:  # positions in `at`, not in `hit`
        where = _positions_in(at, n, um.rows)
    events = list(zip(um.rules, um.rows, where, strict=True))
    review_rows: dict[int, np.ndarray] = {}
    agg = _aggregate(events, lambda _r: ucols, len(at), rank_of, default_rank, review_bit,
                     review_rows, combo=(codes, combos))
    # the unit columns are categoricals: millions of units, a few hundred distinct texts
    cols: dict[str, Any] = {
        name: _categorical(codes, values, at=at, n=n, fill=none_code)
        for name, values in (("verdict", text.verdict), ("rule_ids", text.rule_ids),
                             ("reasons", text.reasons))
    }
    dl_codes, dl_texts, st_codes, st_texts = agg.status_codes(as_of)
    cols["deadline"] = _categorical(dl_codes, dl_texts, at=at, n=n)
    cols["deadline_status"] = _categorical(st_codes, st_texts, at=at, n=n)
    bits = agg.review | np.where(issue[at], 1 << review_bit["unit_data_issue"], 0)
    rv_codes, rv_fill, rv_uniq = _factorize_fill(bits, at, n, 0)
    rv_needs, rv_texts = _review_text(None, np.asarray(rv_uniq, dtype=np.int64), len(rv_uniq))
    needs = np.full(n, rv_fill >= 0 and bool(rv_needs[rv_fill]), dtype=bool)
    needs[at] = np.asarray(rv_needs, dtype=bool)[rv_codes]
    cols["needs_review"] = needs
    cols["review_reasons"] = _categorical(rv_codes, rv_texts, at=at, n=n, fill=rv_fill)
    cols["enterprise_index"] = ucols.parent_idx
    return _UnitResults(cols, at, codes, combos, text, issue, review_rows)


def _positions_in(at: np.ndarray, n: int, subsets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Positions in the sorted rows ``at`` (of ``n`` rows) of each subset's rows
    (``np.searchsorted(at, rows)`` for rows that are in ``at``): one scatter of a row ->
    position map, then a gather per subset."""
    where = np.empty(n, dtype=np.int32 if len(at) < 2**31 else np.int64)
    where[at] = np.arange(len(at), dtype=where.dtype)
    return [where[rows] for rows in subsets]


# --------------------------------------------------------------------------- public


@dataclass
class RulesResult:
    """Outcome of :func:`evaluate_rules`.

    Attributes
    ----------
    enterprises
        The input frame with :data:`geo.schema.RULES_COLUMNS` (and ``needs_review`` /
        ``review_reasons`` updated with the rules' review codes).
    units
        The units with ``verdict``, ``rule_ids``, ``reasons``, ``deadline``,
        ``deadline_status``, ``needs_review``, ``review_reasons`` (own rules only).
    """

    enterprises: pd.DataFrame
    units: pd.DataFrame


def evaluate_rules(
    gdf: FrameT,
    units: pd.DataFrame | None = None,
    *,
    catalog: RuleCatalog | None = None,
    as_of: date | None = None,
) -> RulesResult:
    """Decide every rule for enterprises and their equipment units.

    Parameters
    ----------
    gdf
        Classified enterprises (``industry_id`` and the fields rules read; ``row`` when
        ``units`` are given).
    units
        Equipment units with ``enterprise_row`` (the ``row`` of their enterprise), as from
        :func:`geo.equipment.join_units`; units of enterprises not in ``gdf`` are ignored.
    catalog
        Rule catalog; defaults to :func:`layers.catalog.rules`.
    as_of
        Evaluation date (default today): rules not yet effective do not apply, deadlines
        before it are overdue, ``@as_of`` predicates compare with it.

    Returns
    -------
    RulesResult
    """
    from geo.equipment import derive_unit_fields, empty_units

    catalog = catalog or default_rules()
    day = as_of or date.today()
    active = _active_rules(catalog, day)
    ent_rules = [r for r in active if r.scope == "enterprise"]
    unit_rules = [r for r in active if r.scope == "unit"]
    n = len(gdf)
    ecols = _Columns(gdf)

    if units is None:
        units = empty_units()
        units["enterprise_row"] = pd.Series([], dtype=np.int64)
    if len(units) and "row" not in gdf.columns:
        raise ValueError("evaluate_rules: units need the enterprises' 'row' column to join on")
    if len(units):
        pos = _row_positions(gdf["row"], units["enterprise_row"])
        if (pos < 0).any():
            logger.info("ignoring %d unit(s) of enterprises not in the frame", int((pos < 0).sum()))
            units = units[pos >= 0]
            pos = pos[pos >= 0]
    else:
        pos = np.empty(0, dtype=np.int64)
    units = derive_unit_fields(units.reset_index(drop=True), as_of=day)
    ucols = _Columns(units, parent=ecols, parent_idx=np.asarray(pos, dtype=np.int64))

    em = _match(ecols, ent_rules, day)
    um = _match(ucols, unit_rules, day)
    all_rules = [*ent_rules, *unit_rules]
    rank_of = {v.id: v.rank for v in catalog.verdicts}
    default_rank = rank_of[catalog.default_verdict]
    review_bit = {c: i for i, c in enumerate(REVIEW_CODES)}

    # ---------------------------------------------------------------- units
    ures = _unit_results(um, ucols, units, catalog, day, rank_of, default_rank, review_bit)
    u_out = pd.concat([units.drop(columns=[c for c in ures.columns if c in units]),
                       pd.DataFrame(ures.columns, index=units.index, copy=False)], axis=1)
    unit_issue = ures.issue

    # ---------------------------------------------------------------- enterprises
    upos = np.asarray(pos, dtype=np.int64)
    events = [(r, rows, rows) for r, rows in zip(em.rules, em.rows, strict=True)]
    events += [(r, rows, upos[rows]) for r, rows in zip(um.rules, um.rows, strict=True)]
    cols_by_rule = {id(r): ecols for r in ent_rules} | {id(r): ucols for r in unit_rules}
    words = np.zeros((max(1, math.ceil(len(all_rules) / 64)), n), dtype=np.uint64)
    for k, (_r, _src, tgt) in enumerate(events):
        # one bit per rule: repeated targets (an enterprise's units) write the same value
        words[k // 64, tgt] |= np.uint64(1) << np.uint64(k % 64)
    codes, uniq = _factorize_words(words)
    combos = _combo_rules(uniq, len(all_rules))
    text = _combo_text(combos, all_rules, catalog)
    eagg = _aggregate(events, lambda r: cols_by_rule[id(r)], n, rank_of, default_rank, review_bit,
                      dict(ures.review_rows), combo=(codes, combos))
    if unit_issue.any():
        t = upos[unit_issue]  # one bit for all: repeated enterprises need no ufunc.at
        eagg.review[t] = eagg.review[t] | (1 << review_bit["unit_data_issue"])

    out = gdf.copy(deep=False)  # only whole columns are set below: gdf is never modified
    strings = {
        "verdict": text.verdict, "standards": text.standards, "rule_ids": text.rule_ids,
        "reasons": text.reasons, "price_measures": text.measures,
    }
    touched, units_text = _units_text(ures, unit_rules, upos, units, catalog)
    for name, values in strings.items():
        if name == "reasons" and len(touched):  # with the units' text, built once
            _put(out, name, _name_units(text.reasons, codes, units_text, touched))
        else:  # take() on a tiny str array is ~10x faster than building 1M Python strings
            _put(out, name, _built_str(np.asarray(values or [""], dtype=object).take(codes)))
    deadline, status = eagg.status(day)
    _put(out, "deadline", deadline)
    _put(out, "deadline_status", status)
    runs = ucols._by_parent() if len(upos) else None  # units per enterprise, when counted
    _put(out, "unit_count", (runs[1] if runs else np.bincount(upos, minlength=n))
         .astype(np.int64, copy=False))
    _put(out, "units", _units_column(touched, units_text, n))
    flagged = np.flatnonzero(eagg.review)
    if "review_reasons" in gdf.columns and "needs_review" in gdf.columns and not len(flagged):
        pass  # no rule asks for review: the classification's flags stand as they are
    else:
        needs, reasons = _review_columns(gdf, eagg.review, flagged)
        _put(out, "needs_review", needs)
        _put(out, "review_reasons", reasons)
    cols = [c for c in out.columns if c not in RULES_COLUMNS] + list(RULES_COLUMNS)
    logger.debug("%d rules, %d rows, %d units, %d combinations", len(active), n, len(units),
                 len(combos))
    return RulesResult(enterprises=out[cols], units=u_out)


def _review_columns(gdf: FrameT, review: np.ndarray, flagged: np.ndarray) -> tuple[np.ndarray, Any]:
    """``needs_review`` and ``review_reasons`` of the enterprises: the classification's,
    with the review codes of the rules (bitmask ``review``) merged into the rows ``flagged``
    (those with a non-zero mask) only."""
    n = len(gdf)
    existing = gdf["review_reasons"] if "review_reasons" in gdf.columns else \
        pd.Series("", index=gdf.index, dtype=object)
    needs = gdf["needs_review"].fillna(False).astype(bool).to_numpy() \
        if "needs_review" in gdf.columns else np.zeros(n, dtype=bool)
    if existing.dtype == _STR and pd.api.types.infer_dtype(
            np.asarray(existing.array), skipna=False) in ("string", "empty"):  # no NA: ~3x isna
        # already the engine's text column (strings only): copy it and set the flagged
        # rows only (with the merged texts, strings too)
        column = np.asarray(existing.array).copy()
        if len(flagged):
            rn, rt = _review_text(existing.iloc[flagged].reset_index(drop=True),
                                  review[flagged], len(flagged))
            column[flagged], needs = rt, needs.copy()
            needs[flagged] |= rn
        return needs, _built_str(column)
    reasons = existing.fillna("").to_numpy(dtype=object).copy()
    if len(flagged):  # merge the rule codes into the rows they concern only
        rn, rt = _review_text(pd.Series(reasons[flagged]), review[flagged], len(flagged))
        reasons[flagged], needs = rt, needs.copy()
        needs[flagged] |= rn
    return needs, _text(reasons)


def _put(out: pd.DataFrame, name: str, values: Any) -> None:
    """Set the column ``name`` of ``out`` to the new array ``values`` without the copy
    ``out[name] = values`` makes of an array (a Series on the same index is not copied)."""
    out[name] = pd.Series(values, index=out.index, copy=False)


def _labels_at(units: pd.DataFrame, at: np.ndarray) -> np.ndarray:
    """Display labels of the units ``at`` (their id; type + sheet row when it is blank)."""
    from geo.equipment import unit_labels

    if "unit_id" not in units:
        return unit_labels(units.iloc[at]).to_numpy(dtype=object)
    uid = units["unit_id"].to_numpy(dtype=object)[at]
    # strings only (no NaN/None/NA, one C pass): blank is ''; else pandas' missing test too
    if pd.api.types.infer_dtype(uid, skipna=False) == "string":
        blank = np.flatnonzero(uid == "")
    else:  # missing first: pd.NA == '' is NA, which has no truth value
        miss = pd.isna(uid)
        blank = np.flatnonzero(miss | (np.where(miss, None, uid) == ""))
    if len(blank):
        cols = [c for c in ("unit_id", "unit_type", "source", "source_row") if c in units]
        uid[blank] = unit_labels(units[cols].iloc[at[blank]]).to_numpy(dtype=object)
    return uid


def _labelled(units: pd.DataFrame, at: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """``_labels_at(units, at) + tails``, one concatenation per unit, with the ids tested
    on the results (fresh in memory) instead of the ids: a missing or non-text id fails the
    concatenation or leaves a non-text result (then :func:`_labels_at` decides), and a
    blank id leaves the tail alone (those units get their type + sheet row label)."""
    if "unit_id" in units:
        uid = units["unit_id"].to_numpy(dtype=object)[at]
        try:
            pieces = np.add(uid, tails)
        except TypeError:  # NaN / None / a number as id
            pieces = None
        if pieces is not None and pd.api.types.infer_dtype(pieces, skipna=False) == "string":
            blank = np.flatnonzero(pieces == tails)
            if len(blank):
                pieces[blank] = np.add(_labels_at(units, at[blank]), tails[blank])
            return pieces
    return np.add(_labels_at(units, at), tails)


def _units_text(
    ures: _UnitResults, unit_rules: Sequence[Rule], upos: np.ndarray, units: pd.DataFrame,
    catalog: RuleCatalog,
) -> tuple[np.ndarray, np.ndarray]:
    """Per enterprise, its units that some rule matched, each with its verdict and the
    citations of its rules: "2号高炉（关停退出〔表5 第1项(1)〕）、3号转炉（…）".

    The suffix after a unit's label is the same for every unit of one rule combination, so
    the per-unit work is one concatenation and a grouped join (:func:`_group_join`).
    Returns the enterprises that have such units (sorted) and their texts.
    """
    vlabels = {v.id: v.label_zh for v in catalog.verdicts}
    named = np.asarray([len(c) > 0 for c in ures.combos], dtype=bool)
    if not len(ures.rows) or not named.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    suffix = np.asarray([
        "（" + vlabels[v] + "".join(dict.fromkeys(f"〔{unit_rules[i].citation}〕" for i in c)) + "）"
        for c, v in zip(ures.combos, ures.text.verdict, strict=True)
    ], dtype=object)
    sel = np.flatnonzero(named[ures.codes])
    at, combo = ures.rows[sel], ures.codes[sel]
    ent = upos[at]
    if len(ent) > 1 and (ent[1:] < ent[:-1]).any():  # units not listed by enterprise
        order = np.argsort(ent, kind="stable")
        at, ent, combo = at[order], ent[order], combo[order]
    return _group_join(ent, lambda tails: _labelled(units, at, tails), suffix, combo, "、")


def _built_str(values: np.ndarray) -> Any:
    """A text column of an object array that holds Python strings only (built by this
    module, or a copy of a text column without missing values), without pandas' check of
    each value."""
    template = pd.array([""], dtype=_STR)
    if not hasattr(template, "_from_backing_data"):  # not an ndarray-backed text array
        return pd.array(values, dtype=_STR)
    return template._from_backing_data(values)  # noqa: SLF001


def _units_column(keys: np.ndarray, joined: np.ndarray, n: int) -> Any:
    """The ``units`` column: ``joined`` at the enterprises ``keys``, '' elsewhere."""
    column = _blank_texts(n)  # one shared '' (no table, no index array)
    column[keys] = joined
    return _built_str(column)


def _name_units(
    combo_reasons: Sequence[str], codes: np.ndarray, units_text: np.ndarray, touched: np.ndarray
) -> Any:
    """The reasons per enterprise, with "涉及设备：<units>" appended where units matched.

    The head (the combination's reasons and the separator) is built once per combination;
    each touched enterprise costs one concatenation (``units_text`` is per touched one).
    """
    base = np.asarray(list(combo_reasons) or [""], dtype=object)
    head = np.asarray([r + (REASON_SEP if r else "") + "涉及设备：" for r in base], dtype=object)
    column = base.take(codes)
    column[touched] = np.add(head[codes[touched]], units_text)
    return _built_str(column)


def apply_rules(
    gdf: FrameT,
    *,
    units: pd.DataFrame | None = None,
    catalog: RuleCatalog | None = None,
    as_of: date | None = None,
) -> FrameT:
    """Add :data:`geo.schema.RULES_COLUMNS` to a classified frame (see :func:`evaluate_rules`).

    Parameters
    ----------
    gdf
        Output of :func:`geo.classify.classify` (any DataFrame with ``industry_id`` and the
        fields the rules test; missing fields simply do not trigger rules).
    units
        Optional equipment units (``enterprise_row`` = the enterprise's ``row``).
    catalog
        Rule catalog; defaults to :func:`layers.catalog.rules`.
    as_of
        Evaluation date (default today); rules not yet effective on it do not apply.

    Returns
    -------
    A copy of ``gdf`` with the rules columns. ``verdict`` is the strongest matched verdict
    (``no_action`` when none); ``standards``, ``rule_ids`` and ``price_measures`` are
    ``;``-separated; ``reasons`` are Chinese sentences with plan citations, ``；``-separated.
    """
    return evaluate_rules(gdf, units, catalog=catalog, as_of=as_of).enterprises  # type: ignore[return-value]


def unit_result_frame(result_units: pd.DataFrame, enterprises: pd.DataFrame) -> pd.DataFrame:
    """The per-unit output (:data:`geo.schema.UNIT_COLUMNS` + measures) for exports."""
    from geo.equipment import describe_units

    u = result_units
    ent = enterprises.reset_index(drop=True)
    pos = u["enterprise_index"].to_numpy()
    out = pd.DataFrame(
        {
            "enterprise_row": ent["row"].to_numpy()[pos] if len(u) else [],
            "uscc": ent["uscc"].to_numpy()[pos] if len(u) else [],
            "name": ent["name"].to_numpy()[pos] if len(u) else [],
            "industry": ent["industry"].to_numpy()[pos] if len(u) else [],
            "source": u["source"].to_numpy(),
            "source_row": u["source_row"].to_numpy(),
            "unit_id": u["unit_id"].to_numpy(),
            "unit_type": u["unit_type"].to_numpy(),
            "unit_type_zh": u["unit_type"].map(unit_types()).fillna("").to_numpy(),
            "measures": describe_units(u).to_numpy(),
            "verdict": u["verdict"].to_numpy(),
            "rule_ids": u["rule_ids"].to_numpy(),
            "reasons": u["reasons"].to_numpy(),
            "deadline": u["deadline"].to_numpy(),
            "deadline_status": u["deadline_status"].to_numpy(),
            "needs_review": u["needs_review"].to_numpy(),
            "review_reasons": u["review_reasons"].to_numpy(),
            "data_issues": u["data_issues"].to_numpy(),
        },
        columns=list(UNIT_COLUMNS),
    )
    from geo.equipment import equipment_spec

    spec = equipment_spec()
    extra = [c for c in u.columns if c in _measure_and_attribute_columns(spec)]
    for c in extra:
        out[c] = u[c].to_numpy()
    return out


def _measure_and_attribute_columns(spec: Mapping[str, Any]) -> list[str]:
    cols: list[str] = []
    for m, item in spec["measures"].items():
        if item.get("dimension") == "capacity":
            cols += sorted(set(spec["dimensions"]["capacity"]["columns"].values()))
        else:
            cols.append(m)
    cols += list(spec.get("numbers", {})) + list(spec.get("dates", {})) + list(spec["attributes"])
    return ["unit_type_raw", *cols, "energy_indicator_id"]


# --------------------------------------------------------------------------- point look-ups


def rules_for_point(
    attrs: Mapping[str, Any], *, catalog: RuleCatalog | None = None, as_of: date | None = None
) -> list[dict[str, Any]]:
    """What the enterprise-scope rules say at one location, for each of the 12 industries.

    Unit rules need an equipment inventory and are not part of a location look-up.

    Parameters
    ----------
    attrs
        Location attributes, typically one row of :func:`geo.classify.classify` output
        (``city``, ``basin_id``, ``region_id``, ``park_id``, ...) plus optional fields.
        ``industry_id`` is ignored.
    catalog, as_of
        As in :func:`apply_rules`.

    Returns
    -------
    One dict per industry, in the plan's order: ``industry_id``, ``industry`` (Chinese),
    ``verdict``, ``verdict_label`` (Chinese), ``standards``, ``rule_ids``, ``reasons`` (lists).
    """
    when = as_of or date.today()
    fields = _catalog_fields(catalog or default_rules())
    key = tuple(sorted((k, _hashable(v)) for k, v in attrs.items() if k in fields))
    answer = (
        _default_rules_for_key(key, when) if catalog is None else _rules_for_key(key, catalog, when)
    )
    return [{k: list(v) if isinstance(v, list) else v for k, v in item} for item in answer]


def _hashable(value: Any) -> Any:
    """A cache-key form of an attribute value (NaN and None both mean missing)."""
    return None if _is_missing(value) else value


def _catalog_fields(catalog: RuleCatalog) -> frozenset[str]:
    """Every column some enterprise-scope rule of ``catalog`` reads, besides ``industry_id``."""
    fields: set[str] = set()
    for rule in catalog.rules:
        if rule.scope == "enterprise":
            fields |= rule.fields()
    return frozenset(fields - {"industry_id"})


@functools.lru_cache(maxsize=4096)
def _default_rules_for_key(
    key: tuple[tuple[str, Any], ...], as_of: date
) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """:func:`_rules_for_key` with the bundled catalog, memoised (point look-ups repeat)."""
    return _rules_for_key(key, default_rules(), as_of)


def _rules_for_key(
    key: tuple[tuple[str, Any], ...], catalog: RuleCatalog, as_of: date
) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """:func:`rules_for_point` for the attributes the rules read."""
    inds = industries()
    base = dict(key)
    frame = pd.DataFrame([{**base, "industry_id": i.id} for i in inds])
    res = apply_rules(frame, catalog=catalog, as_of=as_of)
    labels = {v.id: v.label_zh for v in catalog.verdicts}

    def split(s: str, sep: str) -> list[str]:
        return [x for x in s.split(sep) if x]

    return tuple(
        (
            ("industry_id", ind.id),
            ("industry", ind.name_zh),
            ("verdict", row.verdict),
            ("verdict_label", labels[row.verdict]),
            ("standards", split(row.standards, LIST_SEP)),
            ("rule_ids", split(row.rule_ids, LIST_SEP)),
            ("reasons", split(row.reasons, REASON_SEP)),
        )
        for ind, row in zip(inds, res.itertuples(index=False), strict=True)
    )
